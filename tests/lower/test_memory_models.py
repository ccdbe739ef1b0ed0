"""The native backend's memory plan on real converted models: never below the lower bound, never above TFLM.

For each model the lifetimes are rebuilt from the lowered program's steps (which buffer each kernel call
reads and writes) and checked here, independently of the planner: no two buffers alive at one step share
bytes (except an element-wise step, or a convolution the plan runs in place, writing over an input that
dies there, at the same offset),
the arena is at least lower_bound() of those lifetimes, at most what TFLM's greedy rule makes of the same
buffers (each kernel's scratch among them, alive at its step), and at most TFLM's own measured arena
(parity.tflm_arena_bytes) for the same .tflite plus the largest kernel scratch (TFLM's reference kernels use none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.lower.memory import BufferUse, greedy_tflm, lower_bound
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.tflite import convert, parity

ELEMENTWISE_IN_PLACE = ("ec_add",)  # kernels that may write their output over an input that dies at that step
# convolutions that write their first output over their first input, at the same offset (sizes may differ)
CONV_IN_PLACE = ("ec_depthwise_conv_inplace", "ec_conv_1x1_inplace")


@dataclass(frozen=True)
class Placed:
    """A buffer of the lowered program with the lifetime its steps give it."""

    name: str
    size: int
    offset: int
    first: int
    last: int


def lifetimes(program) -> list[Placed]:
    """Each buffer alive from the step that writes it (the model input: step 0) to the last step that reads it
    (the model output: the last step)."""
    first: dict[str, int] = {program.input.name: 0}
    last: dict[str, int] = {program.input.name: 0}
    for s, step in enumerate(program.steps):
        for name in step.outputs:
            first.setdefault(name, s)
            last[name] = max(last.get(name, s), s)
        for name in step.inputs:
            assert name in first, f"step {s} ({step.what}) reads {name} before any step writes it"
            last[name] = max(last[name], s)
    last[program.output.name] = max(len(program.steps) - 1, 0)
    placed = [Placed(b.name, b.size, b.offset, first[b.name], last[b.name]) for b in program.buffers if b.name in first]
    # each kernel's scratch: alive at its own step only
    at = {step.name: s for s, step in enumerate(program.steps)}
    return placed + [Placed(b.name, b.size, b.offset, at[step], at[step]) for step, b, _ in program.scratch]


def in_place_pairs(program, placed: dict[str, Placed]) -> set[frozenset[str]]:
    """(input, output) of element-wise steps whose input dies at that step: the one sharing that is allowed."""
    pairs = set()
    for s, step in enumerate(program.steps):
        if step.kernel in CONV_IN_PLACE and placed[step.inputs[0]].last == s:
            pairs.add(frozenset((step.inputs[0], step.outputs[0])))
        if step.kernel in ELEMENTWISE_IN_PLACE:
            for out in step.outputs:
                for name in step.inputs:
                    if placed[name].last == s:
                        pairs.add(frozenset((name, out)))
    return pairs


def check_native_plan(tflite: bytes):
    """Lower `tflite` and check its plan as the module docstring says; returns (native, bound, tflm) arenas."""
    lowered = NativeBackend().lower(tflite, weight_layouts(tflite))
    program = lowered.details.program
    placed = {p.name: p for p in lifetimes(program)}
    allowed = in_place_pairs(program, placed)
    arena = lowered.arena_bytes
    items = sorted(placed.values(), key=lambda p: p.first)
    for i, a in enumerate(items):
        assert 0 <= a.offset and a.offset + a.size <= arena, f"{a.name} runs past the arena of {arena} B"
        for b in items[i + 1 :]:
            if b.first > a.last or a.size == 0 or b.size == 0:
                continue
            if a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                shared_in_place = frozenset((a.name, b.name)) in allowed and a.offset == b.offset
                assert shared_in_place, f"{a.name} and {b.name} are alive together and overlap"
    # The lower bound over the program's own lifetimes, in-place pairs counted once.
    alias = {}
    for pair in allowed:
        x, y = sorted(pair, key=lambda n: placed[n].first)
        alias[y] = x
    uses = [BufferUse(p.name, p.size, p.first, p.last, alias.get(p.name)) for p in placed.values()]
    uses = _alias_targets_first(uses)
    bound = lower_bound(uses)
    tflm = parity.tflm_arena_bytes(tflite)
    assert program.in_place or lowered.arena_lower_bound <= arena  # the whole-tensor bound, unless in place
    assert bound <= arena, f"arena {arena} B is below the lower bound {bound} B of its own lifetimes"
    assert arena <= greedy_tflm(uses).arena_bytes, "TFLM's greedy rule packs the same buffers tighter"
    scratch = max((b.size for _, b, _ in program.scratch), default=0)  # TFLM's reference kernels use none
    assert arena <= tflm + scratch, f"native arena {arena} B is above TFLM's measured {tflm} B (+{scratch} scratch)"
    return arena, bound, tflm


def _alias_targets_first(uses: list[BufferUse]) -> list[BufferUse]:
    """An alias's lifetime is the union with its target's: give the target the whole span (as the planner does)."""
    spans = {u.name: (u.first, u.last) for u in uses}
    for u in uses:
        if u.alias_of is not None:
            lo, hi = spans[u.alias_of]
            spans[u.alias_of] = (min(lo, u.first), max(hi, u.last))
    return [BufferUse(u.name, u.size, *spans[u.name], u.alias_of) if u.alias_of is None else u for u in uses]


def _converted(model, shape: tuple[int, ...], *, per_channel: bool = True) -> bytes:
    calibration = np.random.default_rng(0).uniform(0, 1, (32, *shape)).astype(np.float32)
    return convert.to_tflite(
        model,
        quantize="int8",
        representative_data=calibration,
        per_channel=per_channel,
        num_calibration=32,
    )


def _residual_model():
    """Depthwise + average-pool + a residual ADD + global average pooling: the in-place ADD and MEAN paths."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 1)(y)
    x = layers.Add()([x, y])
    x = layers.AveragePooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def _mlp():
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(64,))
    x = layers.Dense(48, activation="relu")(inputs)
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def _mnist_cnn():
    from edgeclust import examples

    return examples.mnist_cnn()


def _digits_cnn():
    from edgeclust import examples

    return examples.digits_cnn()


MODELS = {
    "mnist_cnn": (_mnist_cnn, (28, 28, 1)),
    "digits_cnn": (_digits_cnn, (8, 8, 1)),
    "residual": (_residual_model, (12, 12, 3)),
    "mlp": (_mlp, (64,)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_native_arena_between_lower_bound_and_tflm(name):
    build, shape = MODELS[name]
    arena, bound, tflm = check_native_plan(_converted(build(), shape))
    assert bound <= arena <= tflm


def test_native_arena_per_tensor_model():
    build, shape = MODELS["digits_cnn"]
    check_native_plan(_converted(build(), shape, per_channel=False))

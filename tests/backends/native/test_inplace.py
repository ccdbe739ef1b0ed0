"""Convolutions run in place (inplace.py, ec_inplace.c): bit-exact against the tflite_micro interpreter on the
host and in QEMU, the arena below the whole-tensor bound, and the exact liveness check that guards every plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgeclust.backends.base import SelfTestCase
from edgeclust.backends.native import NativeBackend, inplace
from edgeclust.backends.native import plan as native_plan
from edgeclust.codegen.board import load_board
from edgeclust.device.build import build_make_project, write_project
from edgeclust.device.icount import run_icount
from edgeclust.errors import CodegenError
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.resources import boards_dir
from edgeclust.tflite.parity import run_tflm

KINDS = {
    "depthwise": inplace.InPlaceDepthwiseStep,
    "conv 1x1": inplace.InPlaceConvStep,
    "conv rows": inplace.ShiftedConvStep,
    "pointwise + depthwise": inplace.PointwiseDepthwiseStep,
}


def _separable(keras, values: int | None, nx):
    """Depthwise 3x3 (stride 1 and 2), 5x5 valid, 1x1 narrowing (forwards) and widening (backwards). One input
    channel: the first conv's scratch (its im2col windows) stays below the peak the in-place steps cut."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((12, 10, 1), batch_size=1)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(24, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(5, padding="valid", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(5)(x))
    if values:
        nx.weights_with_values(model, values)
    return model


@pytest.fixture(scope="module")
def separable(nx, keras):
    data = np.random.default_rng(0).normal(size=(64, 12, 10, 1)).astype(np.float32)
    return {
        (values, per_channel): nx.convert(_separable(keras, values, nx), data, per_channel=per_channel)
        for values in (None, 8)
        for per_channel in (True, False)
    }


@pytest.mark.parametrize("values", [None, 8])
@pytest.mark.parametrize("per_channel", [True, False])
def test_in_place_plans_are_bit_exact_and_below_the_bound(nx, separable, values, per_channel):
    lowered = nx.check_bit_exact(separable[(values, per_channel)])
    program = lowered.details.program
    kinds = {choice.kind for choice in program.in_place}
    assert {"depthwise", "conv 1x1", "conv rows"} <= kinds <= {*KINDS}
    assert program.arena_bytes < program.arena_lower_bound
    assert all(choice.saved_bytes >= 0 for choice in program.in_place)
    steps = {step.name: step for step in program.steps}
    assert {type(steps[c.step]) for c in program.in_place} <= set(KINDS.values())
    if values and per_channel:  # clustered: channels share scales, so in-place steps slice shared multipliers
        shared = {type(s) for s in program.steps if getattr(s, "requant", None) and s.requant.entries is not None}
        assert inplace.InPlaceDepthwiseStep in shared
    summary = lowered.summary
    assert summary["in_place"] and summary["arena_lower_bound"] == program.arena_lower_bound
    assert any(note.startswith(f"arena {program.arena_bytes:,} bytes, whole-tensor bound") for note in lowered.notes)


def test_whole_tensor_plan_when_in_place_is_off(nx, separable, monkeypatch):
    tflite = separable[(None, True)]
    with_tricks = NativeBackend().lower(tflite, weight_layouts(tflite)).details.program
    monkeypatch.setattr(native_plan, "CONV_IN_PLACE", False)
    whole = NativeBackend().lower(tflite, weight_layouts(tflite)).details.program
    assert not whole.in_place and whole.arena_bytes >= whole.arena_lower_bound == with_tricks.arena_lower_bound
    assert with_tricks.arena_bytes < whole.arena_bytes


def test_liveness_check_refuses_what_the_kernels_cannot_do(nx, separable):
    program = NativeBackend().lower(separable[(None, True)], ()).details.program
    offsets = {b.name: b.offset for b in program.buffers}
    sizes = {b.name: b.size for b in program.buffers}
    keep = (program.output.name,)
    inplace.check_steps(program.steps, offsets, sizes, keep=keep)  # the planner's own plan passes

    s, step = next((s, t) for s, t in enumerate(program.steps) if isinstance(t, inplace.InPlaceDepthwiseStep))
    # the window over the output it is read into
    with pytest.raises(CodegenError, match="over its own output"):
        inplace.check_steps(program.steps, offsets | {step.outputs[1]: offsets[step.outputs[0]]}, sizes, keep=keep)
    # the same overlap for the whole-tensor kernel, which reads its input after writing its output
    fields = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
    fields["outputs"] = step.outputs[:1]
    steps = list(program.steps)
    steps[s] = inplace.DepthwiseStep(**fields)
    with pytest.raises(CodegenError, match=f"step {s} .* over {step.inputs[0]!r}"):
        inplace.check_steps(tuple(steps), offsets, sizes, keep=keep)
    # an in-place output shifted off its input by one alignment unit
    shifted = offsets | {step.outputs[0]: offsets[step.inputs[0]] + 16}
    with pytest.raises(CodegenError):
        inplace.check_steps(program.steps, shifted, sizes, keep=keep)


def test_in_place_firmware_passes_its_self_test_in_qemu(nx, separable, tmp_path):
    board = load_board("qemu_mps2_an386", boards_dir())
    backend = NativeBackend()
    tflite = separable[(8, True)]
    lowered = backend.lower(tflite, weight_layouts(tflite))
    assert lowered.details.program.in_place
    x = nx.int8_inputs(tflite, 3)
    expected = run_tflm(tflite, x)  # the tflite_micro interpreter
    files = backend.render(lowered, board, [SelfTestCase(x[i], expected[i]) for i in range(len(x))])
    elf = build_make_project(write_project(files, tmp_path), board)
    status, lines = run_icount(elf, board)
    assert status == 0 and "self-test: PASS (3/3" in "\n".join(lines), lines


def _stem(keras, values: int | None, nx, channels: int = 3):
    """A MobileNet stem, whose input is the largest tensor but one: a stride-2 5x3 conv over the image (odd
    padding; its output written over the rows it consumed), a depthwise, a widening 1x1 and a stride-2
    depthwise (fused: the widest tensor never exists whole), then a 1x1 and a dilated depthwise."""
    keras.utils.set_random_seed(1)
    layers = keras.layers
    inputs = keras.Input((41, 33, channels), batch_size=1)
    x = layers.Conv2D(8, (5, 3), strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(24, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(20, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(4)(x))
    if values:
        nx.weights_with_values(model, values)
    return model


@pytest.fixture(scope="module")
def stems(nx, keras):
    data = np.random.default_rng(2).normal(size=(64, 41, 33, 3)).astype(np.float32)
    return {values: nx.convert(_stem(keras, values, nx), data) for values in (None, 16)}


@pytest.mark.parametrize("values", [None, 16])
def test_stem_runs_over_its_input_and_fuses_the_widest_pair(nx, stems, values):
    lowered = nx.check_bit_exact(stems[values])  # host build under ASan/UBSan, against tflite_micro
    program = lowered.details.program
    kinds = {choice.kind for choice in program.in_place}
    assert {"conv rows", "pointwise + depthwise"} <= kinds, kinds
    fused = next(s for s in program.steps if isinstance(s, inplace.PointwiseDepthwiseStep))
    widest = max(b.size for b in program.buffers)
    # the widening 1x1's output (21 x 17 x 24) is never planned; the ring holds three of its rows
    assert fused.pointwise.window.out_c == 24 and widest < 21 * 17 * 24
    assert program.arena_bytes < program.arena_lower_bound


def test_stem_firmware_passes_its_self_test_on_dsp_helium_and_plain_cores(nx, stems, tmp_path):
    for board in ("qemu_mps2_an386", "qemu_mps2_an500", "qemu_mps3_an547", "qemu_lm3s6965evb"):
        nx.qemu_self_test(stems[16], board, tmp_path / board)


def test_liveness_check_refuses_a_shift_too_small(nx, stems):
    program = NativeBackend().lower(stems[None], ()).details.program
    offsets = {b.name: b.offset for b in program.buffers}
    sizes = {b.name: b.size for b in program.buffers}
    keep = (program.output.name,)
    inplace.check_steps(program.steps, offsets, sizes, keep=keep)
    checked = set()  # what the loop below tried: both kinds of shifted step, and a shift one unit too small
    for step in program.steps:
        if isinstance(step, inplace.ShiftedConvStep | inplace.PointwiseDepthwiseStep):
            checked.add(type(step))
            lower = offsets | {step.outputs[0]: offsets[step.inputs[0]] - step.shift + 16}
            with pytest.raises(CodegenError, match=f"over {step.inputs[0]!r}"):
                inplace.check_steps(program.steps, lower, sizes, keep=keep)
            too_small = dataclasses.replace(step, shift=step.shift - 16) if step.shift >= 16 else None
            if too_small is not None:
                checked.add("too small")
                steps = tuple(too_small if t is step else t for t in program.steps)
                moved = offsets | {step.outputs[0]: offsets[step.inputs[0]] - too_small.shift}
                with pytest.raises(CodegenError):
                    inplace.check_steps(steps, moved, sizes, keep=keep)
    assert checked == {inplace.ShiftedConvStep, inplace.PointwiseDepthwiseStep, "too small"}

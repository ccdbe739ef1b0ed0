"""Convolutions in place (TinyEngine's trick): the output takes the input's bytes in the arena, so the two
never exist side by side; the kernel (ec_inplace.c) copies what it still has to read into a window buffer,
alive for its one call, before the writes that clobber it.

- DEPTHWISE_CONV_2D with depth multiplier 1: one channel at a time, the window holds one channel's input
  plane and its output plane (in_h * in_w + out_h * out_w bytes); output channel c only ever writes channel
  c's bytes, whose plane is in the window.
- CONV_2D 1x1, stride 1, no padding, no fused pool: EC_INPLACE_PIXELS pixels at a time, the window holds the
  block's input pixels; forwards when out_c <= in_c, backwards when the output is wider.

The plan chooses (plan.py): every eligible step whose input dies there is made in place, then each is undone
again where the arena does not grow without it (each one costs instructions: the window copy, and a plainer
loop than ec_kernels.c's). `check_steps` is the exact liveness check of a planned program, step by step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from edgeclust.backends.native.records import AddStep, ConvStep, DepthwiseStep, Step
from edgeclust.errors import CodegenError

PIXELS = 8  # EC_INPLACE_PIXELS in ec_inplace.h


@dataclass(frozen=True, eq=False)
class InPlaceDepthwiseStep(DepthwiseStep):
    """A DepthwiseStep whose output overwrites its input; outputs = (output, window)."""

    KERNEL: ClassVar[str] = "ec_depthwise_conv_inplace"

    @property
    def what(self) -> str:
        return f"{super().what}, in place (one channel's input and output planes in a window)"


@dataclass(frozen=True, eq=False)
class InPlaceConvStep(ConvStep):
    """A 1x1 ConvStep whose output overwrites its input; outputs = (output, window)."""

    KERNEL: ClassVar[str] = "ec_conv_1x1_inplace"

    @property
    def what(self) -> str:
        return f"{super().what}, in place ({PIXELS} input pixels at a time in a window)"


@dataclass(frozen=True)
class InPlaceChoice:
    """One step made in place: which, how, its window's bytes, and what the arena saved by it."""

    step: str
    kind: str  # "depthwise" or "conv 1x1"
    window_bytes: int
    copy_bytes: int  # bytes the kernel copies into its window (its added work)
    macs: int  # the step's multiply-accumulates, for scale
    saved_bytes: int = 0  # the arena without this choice, less the arena with it

    def facts(self) -> dict:
        return dataclasses.asdict(self)


def window_bytes(step: Step) -> int | None:
    """The window the in-place kernel needs for `step`, or None where it cannot run in place."""
    if type(step) is DepthwiseStep:
        w = step.window
        if step.depth_multiplier != 1 or w.in_c != w.out_c or w.out_h * w.out_w > w.in_h * w.in_w:
            return None
        return w.in_h * w.in_w + w.out_h * w.out_w
    if type(step) is ConvStep:
        w = step.window
        one_by_one = w.k_h == 1 and w.k_w == 1 and w.stride_h == 1 and w.stride_w == 1 and w.pad_h == w.pad_w == 0
        if not one_by_one or step.pool is not None or (w.out_h, w.out_w) != (w.in_h, w.in_w):
            return None
        return min(PIXELS, w.in_h * w.in_w) * w.in_c
    return None


def in_place_step(step: Step, window: str) -> Step:
    """The in-place record of `step` (an eligible DepthwiseStep or ConvStep), writing `window` too."""
    cls = InPlaceDepthwiseStep if isinstance(step, DepthwiseStep) else InPlaceConvStep
    values = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
    values["outputs"] = (*step.outputs, window)
    return cls(**values)


def choice_for(step: Step, window: int) -> InPlaceChoice:
    w = step.window
    depthwise = isinstance(step, DepthwiseStep)
    copy = w.in_h * w.in_w * w.in_c
    macs = w.out_h * w.out_w * w.out_c * (w.k_h * w.k_w if depthwise else w.in_c)
    return InPlaceChoice(step.name, "depthwise" if depthwise else "conv 1x1", window, copy, macs)


def check_steps(
    steps: Sequence[Step],
    offsets: Mapping[str, int],
    sizes: Mapping[str, int],
    *,
    keep: Sequence[str] = (),
) -> None:
    """The exact liveness check of a planned program: at each step, no byte the step writes belongs to a
    buffer still to be read (at this step by another rule than the kernel's own, or at a later one). A buffer
    lives from the step that writes it to the last that reads it (`keep`: to the end, the model's output).
    A write over a buffer read at the same step is allowed only where the kernel reads each input byte
    before it clobbers it: an ADD over an input at the same offset (element i read before written), an
    in-place convolution over its input at the same offset (the window copies what the writes clobber),
    under the shape rules of window_bytes(). CodegenError names the step and the buffers."""
    last: dict[str, int] = {}
    first: dict[str, int] = {}
    for s, step in enumerate(steps):
        for name in step.outputs:
            first.setdefault(name, s)
            last.setdefault(name, s)
        for name in step.inputs:
            last[name] = s
    for name in keep:
        last[name] = len(steps)

    def overlap(a: str, b: str) -> bool:
        return offsets[a] < offsets[b] + sizes[b] and offsets[b] < offsets[a] + sizes[a] and sizes[a] and sizes[b]

    for s, step in enumerate(steps):
        for out in step.outputs:
            for other, end in last.items():
                if other == out or first.get(other, 0) > s or end < s or not overlap(out, other):
                    continue
                if end == s and other in step.inputs and _reads_before_write(step, other, out, offsets):
                    continue
                if other in step.outputs and other != out:
                    raise CodegenError(f"step {s} ({step.name}) writes {out!r} over its own output {other!r}")
                raise CodegenError(
                    f"step {s} ({step.name}) writes {out!r} (bytes {offsets[out]}..{offsets[out] + sizes[out] - 1}) "
                    f"over {other!r} (bytes {offsets[other]}..{offsets[other] + sizes[other] - 1}), which step "
                    f"{end} still reads"
                )


def _reads_before_write(step: Step, src: str, out: str, offsets: Mapping[str, int]) -> bool:
    """Whether `step` writing `out` over input `src` is the kernel's in-place contract (see check_steps)."""
    if offsets[src] != offsets[out]:
        return False
    if isinstance(step, AddStep):
        return out == step.outputs[0]
    if isinstance(step, InPlaceDepthwiseStep | InPlaceConvStep):
        plain = DepthwiseStep if isinstance(step, DepthwiseStep) else ConvStep
        values = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
        window = window_bytes(plain(**values))
        return out == step.outputs[0] and src == step.inputs[0] and window is not None
    return False

"""Convolutions in place (TinyEngine's trick): the output takes the input's bytes in the arena, so the two
never exist side by side; the kernel (ec_inplace.c) copies what it still has to read into a window buffer,
alive for its one call, before the writes that clobber it.

- DEPTHWISE_CONV_2D with depth multiplier 1: one channel at a time, the window holds one channel's input
  plane and its output plane (in_h * in_w + out_h * out_w bytes); output channel c only ever writes channel
  c's bytes, whose plane is in the window.
- CONV_2D 1x1, stride 1, no padding, no fused pool: EC_INPLACE_PIXELS pixels at a time, the window holds the
  block's input pixels; forwards when out_c <= in_c, backwards when the output is wider.
- Any other CONV_2D without a fused pool, shifted (ShiftedConvStep): a band of output rows at a time, the
  output placed `shift` bytes below the input, the least shift at which no band reaches an input row that band
  or a later one still reads (shift_bytes); no window. The first layer of an image model, whose input is the
  largest tensor, writes its output over the rows it has consumed.

The plan chooses (plan.py): every eligible step whose input dies there is made in place, then each is undone
again where the arena does not grow without it (each one costs instructions: the window copy, and a plainer
loop than ec_kernels.c's). `check_steps` is the exact liveness check of a planned program, step by step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from edgeclust.align import TENSOR_ALIGNMENT, align
from edgeclust.backends.native.records import AddStep, ConvStep, DepthwiseStep, Step, Window
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


@dataclass(frozen=True, eq=False)
class ShiftedConvStep(ConvStep):
    """A ConvStep whose output starts `shift` bytes below its input and overwrites the input rows it has
    consumed (ec_conv_rows: a band of output rows at a time)."""

    KERNEL: ClassVar[str] = "ec_conv_rows"

    shift: int = 0

    @property
    def what(self) -> str:
        return f"{super().what}, by bands of rows over its consumed input ({self.shift} B below)"


@dataclass(frozen=True, eq=False)
class PointwiseDepthwiseStep(Step):
    """A 1x1 CONV_2D whose output only a DEPTHWISE_CONV_2D reads, fused (ec_pw_dw_rows): the pointwise output
    never exists whole, only the rows one depthwise output row reads, in a ring (outputs = (output, ring)); the
    output starts `shift` bytes below the input and overwrites the input rows already consumed."""

    KERNEL: ClassVar[str] = "ec_pw_dw_rows"
    OP: ClassVar[str] = "CONV_2D + DEPTHWISE_CONV_2D"

    pointwise: ConvStep
    depthwise: DepthwiseStep
    shift: int

    @property
    def what(self) -> str:
        return f"{self.pointwise.what} + {self.depthwise.what}, by rows ({ring_rows(self.depthwise.window)} in a ring)"

    def arrays(self):
        return self.pointwise.arrays() + self.depthwise.arrays()

    def packed(self):
        return self.pointwise.packed() + self.depthwise.packed()


@dataclass(frozen=True)
class InPlaceChoice:
    """One step made in place: which, how, its window's bytes, and what the arena saved by it."""

    step: str
    kind: str  # "depthwise", "conv 1x1", "conv rows" or "pointwise + depthwise"
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


def fusion_choice(pointwise: ConvStep, depthwise: DepthwiseStep) -> InPlaceChoice:
    """The report's line for a fused pair: the ring, the bytes moved within it, the pair's MACs."""
    w, pw = depthwise.window, pointwise.window
    kept = max(ring_rows(w) - w.stride_h, 0)  # rows moved to the ring's start before each output row
    macs = pw.out_h * pw.out_w * pw.out_c * pw.in_c + w.out_h * w.out_w * w.out_c * w.k_h * w.k_w
    moved = kept * w.in_w * w.in_c * w.out_h
    return InPlaceChoice(
        f"{pointwise.name}_{depthwise.name}", "pointwise + depthwise", ring_bytes(depthwise), moved, macs
    )


def shift_bytes(step: Step) -> int | None:
    """The shift a ShiftedConvStep of `step` needs (aligned, at least 0), or None where `step` cannot run so (a
    depthwise, a 1x1 that runs in place by window, a fused pool). The band of output rows [r, r + band_rows) is
    written less the shift, while the input rows from the first that band reads (_rows) on are still to be read."""
    if type(step) is not ConvStep or step.pool is not None or window_bytes(step) is not None:
        return None
    return _band_shift(step.window)


def _band_shift(w: Window) -> int:
    """ec_conv_rows's least shift: band by band, the output written so far less where its input still starts."""
    in_row, out_row = w.in_w * w.in_c, w.out_w * w.out_c
    band = band_rows(w)
    need = max(min(r + band, w.out_h) * out_row - _rows(w, r, 1)[0] * in_row for r in range(0, w.out_h, band))
    return align(max(need, 0), TENSOR_ALIGNMENT)


def band_rows(w: Window) -> int:
    """ec_conv_rows: the output rows a band holds, as many as make whole fours of pixels (1, 2 or 4)."""
    return 1 if w.out_w % 4 == 0 else 2 if w.out_w % 2 == 0 else 4


def ring_rows(w: Window) -> int:
    """The rows of the depthwise's input one of its output rows reads (ec_pw_dw_rows's ring holds as many)."""
    return min((w.k_h - 1) * w.dil_h + 1, w.in_h)


def fused_shift(pointwise: ConvStep, depthwise: DepthwiseStep) -> int | None:
    """The shift of the PointwiseDepthwiseStep of the two (aligned, at least 0), or None where they cannot be
    fused: `pointwise` a 1x1 convolution that could run in place (window_bytes), `depthwise` reading its output
    (type checks only: the plan checks that the output dies there); the shift itself is _ring_shift's."""
    if type(pointwise) is not ConvStep or window_bytes(pointwise) is None or type(depthwise) is not DepthwiseStep:
        return None
    w, pw = depthwise.window, pointwise.window
    if depthwise.inputs[0] != pointwise.outputs[0] or (w.in_h, w.in_w, w.in_c) != (pw.out_h, pw.out_w, pw.out_c):
        return None
    return _ring_shift(pw, w)


def _ring_shift(pw: Window, w: Window) -> int:
    """ec_pw_dw_rows's least shift: depthwise output row r is written once the pointwise input rows before the
    end of what rows 0..r read are consumed."""
    in_row, out_row = pw.in_w * pw.in_c, w.out_w * w.out_c
    read = 0
    need = 0
    for r in range(w.out_h):
        read = max(read, _rows(w, r, 1)[1])
        if read < w.in_h:
            need = max(need, (r + 1) * out_row - read * in_row)
    return align(need, TENSOR_ALIGNMENT)


def fuse(pointwise: ConvStep, depthwise: DepthwiseStep, ring: str, shift: int) -> PointwiseDepthwiseStep:
    """The fused step of the two, reading the pointwise's input and writing the depthwise's output and `ring`."""
    return PointwiseDepthwiseStep(
        name=f"{pointwise.name}_{depthwise.name}",  # as fusion_choice names it
        op_index=pointwise.op_index,
        inputs=pointwise.inputs,
        outputs=(depthwise.outputs[0], ring),
        pointwise=pointwise,
        depthwise=depthwise,
        shift=shift,
    )


def ring_bytes(depthwise: DepthwiseStep) -> int:
    w = depthwise.window
    return ring_rows(w) * w.in_w * w.in_c


def _rows(w: Window, r: int, n: int) -> tuple[int, int]:
    """ec_inplace.c ec_rows_read: the input rows [first, end) that output rows [r, r + n) read, clamped to the
    image, one row at least."""
    y0 = r * w.stride_h - w.pad_h
    first = min(max(y0, 0), w.in_h - 1)
    end = min(y0 + (n - 1) * w.stride_h + (w.k_h - 1) * w.dil_h + 1, w.in_h)
    return first, max(end, first + 1)


def least_shift(step: ShiftedConvStep | PointwiseDepthwiseStep) -> int:
    """The least shift the step's kernel allows between its input and its output (check_steps)."""
    if isinstance(step, PointwiseDepthwiseStep):
        return _ring_shift(step.pointwise.window, step.depthwise.window)
    return _band_shift(step.window)


def in_place_step(step: Step, window: str) -> Step:
    """The in-place record of `step` (an eligible DepthwiseStep or ConvStep), writing `window` too."""
    cls = InPlaceDepthwiseStep if isinstance(step, DepthwiseStep) else InPlaceConvStep
    values = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
    values["outputs"] = (*step.outputs, window)
    return cls(**values)


def shifted_step(step: ConvStep, shift: int) -> ShiftedConvStep:
    """The ShiftedConvStep of an eligible ConvStep (shift_bytes), its output `shift` bytes below its input."""
    return ShiftedConvStep(**{f.name: getattr(step, f.name) for f in dataclasses.fields(step)}, shift=shift)


def choice_for(step: Step, window: int | None) -> InPlaceChoice:
    w = step.window
    depthwise = isinstance(step, DepthwiseStep)
    copy = w.in_h * w.in_w * w.in_c
    macs = w.out_h * w.out_w * w.out_c * (w.k_h * w.k_w if depthwise else w.in_c)
    if window is None:  # no window, nothing copied: its cost is one kernel call per output row
        return InPlaceChoice(step.name, "conv rows", 0, 0, macs)
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
    if isinstance(step, ShiftedConvStep | PointwiseDepthwiseStep):  # the output `shift` below the input
        return (
            offsets[src] - offsets[out] == step.shift
            and out == step.outputs[0]
            and src == step.inputs[0]
            and step.shift >= least_shift(step)
        )
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

"""Data-movement and spatial ops for the native backend: records, lowerings and C emitters in one module.

PAD, PADV2, CONCATENATION, SPLIT, SPLIT_V, UNPACK, STRIDED_SLICE (on data), TILE: one strided copy each
(`ec_copy`, one step per input of a CONCATENATION and per used output of a SPLIT or UNPACK), its counts and
strides found by applying the op's semantics to an index array at generation time. SQUEEZE and EXPAND_DIMS
are aliases (like RESHAPE). RESIZE_NEAREST_NEIGHBOR gathers rows and columns from tables computed as TFLM's
GetNearestNeighbor does. MEAN over any axes (`ec_mean_nd`, TFLM's QuantizedMeanOrSum; global average pooling
over H and W keeps lowering._mean). TRANSPOSE_CONV with packed weights (`ec_transpose_conv`).

TFLM has no TILE kernel: the TFLM backend cannot run a model holding one, while the native kernel follows
TFLite's Tile (a copy of raw values) exactly. lowering.py registers these functions (LOWERINGS,
SUPPORTED_OPS, the input counts below) and emit_c.py the emitters; helpers of those modules are imported
inside the functions, since both import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeclust.backends.native.records import FlashArray, Step, Window, _WeightedStep
from edgeclust.backends.native.reduce import walk
from edgeclust.backends.native.refusals import dims4, quant, refuse, step_name
from edgeclust.errors import CodegenError

COPY_RANK = 8  # EC_COPY_RANK in ec_movement.h
NO_FILL = -129

OPS = (
    "PAD",
    "PADV2",
    "CONCATENATION",
    "SPLIT",
    "SPLIT_V",
    "UNPACK",
    "SQUEEZE",
    "EXPAND_DIMS",
    "TILE",
    "RESIZE_NEAREST_NEIGHBOR",
    "TRANSPOSE_CONV",
)
MIN_INPUTS = {
    "PAD": 2,
    "PADV2": 3,
    "SPLIT": 2,
    "SPLIT_V": 3,
    "TILE": 2,
    "RESIZE_NEAREST_NEIGHBOR": 2,
    "TRANSPOSE_CONV": 3,
}
MAX_INPUTS = {
    "PAD": 2,
    "PADV2": 3,
    "CONCATENATION": 1 << 16,
    "SPLIT": 2,
    "SPLIT_V": 3,
    "EXPAND_DIMS": 2,
    "SQUEEZE": 1,
    "TILE": 2,
    "RESIZE_NEAREST_NEIGHBOR": 2,
    "TRANSPOSE_CONV": 4,
}
MULTI_OUTPUT = ("SPLIT", "SPLIT_V", "UNPACK")
DATA_INPUT = {"SPLIT": 1, "TRANSPOSE_CONV": 2}  # which input is the int8 data (others: 0)
# pure copies that also move float32 values (the converter leaves float islands between a DEQUANTIZE and QUANTIZEs)
FLOAT_COPIES = frozenset({"SPLIT", "SPLIT_V", "UNPACK", "CONCATENATION"})


# ---- records ----


@dataclass(frozen=True, eq=False)
class CopyStep(Step):
    """A strided N-D copy (ec_copy): output[dst_offset + i . dst_stride] = input[src_offset + i . src_stride]."""

    KERNEL: ClassVar[str] = "ec_copy"

    op: str
    part: str
    output_size: int
    fill: int  # NO_FILL, or the value the whole output is set to first
    count: tuple[int, ...]
    src_stride: tuple[int, ...]
    dst_stride: tuple[int, ...]
    src_offset: int
    dst_offset: int

    @property
    def what(self) -> str:
        return f"{self.op} (op {self.op_index}){self.part}"


@dataclass(frozen=True, eq=False)
class ResizeNearestStep(Step):
    KERNEL: ClassVar[str] = "ec_resize_nearest"
    OP: ClassVar[str] = "RESIZE_NEAREST_NEIGHBOR"

    out_h: int
    out_w: int
    channels: int
    in_w: int
    rows: np.ndarray  # uint16, out_h
    cols: np.ndarray  # uint16, out_w

    def arrays(self) -> tuple[FlashArray, ...]:
        return (
            FlashArray(f"{self.name}_rows", self.rows, "tables"),
            FlashArray(f"{self.name}_cols", self.cols, "tables"),
        )


@dataclass(frozen=True, eq=False)
class MeanNdStep(Step):
    """MEAN over any axes: the input walked as kept dims then reduced dims (counts and strides)."""

    KERNEL: ClassVar[str] = "ec_mean_nd"
    OP: ClassVar[str] = "MEAN"

    kept_rank: int
    count_reduced: int
    count: tuple[int, ...]
    stride: tuple[int, ...]
    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int


@dataclass(frozen=True, eq=False)
class TransposeConvStep(_WeightedStep):
    """TRANSPOSE_CONV: filter rows per output channel (kh, kw, in_c); biases not folded."""

    KERNEL: ClassVar[str] = "ec_transpose_conv"
    OP: ClassVar[str] = "TRANSPOSE_CONV"

    window: Window
    input_offset: int


# ---- generation-time index arithmetic ----


def _affine(idx: np.ndarray) -> tuple[int, list[int]] | None:
    """(offset, strides) with idx[i] == offset + sum(i * strides) over idx's shape, or None."""
    idx = np.asarray(idx, np.int64)
    if idx.size == 0:
        return None
    offset = int(idx.reshape(-1)[0])
    strides, grid = [], np.full(idx.shape, offset, np.int64)
    for d, n in enumerate(idx.shape):
        at = [0] * idx.ndim
        if n > 1:
            at[d] = 1
        stride = int(idx[tuple(at)]) - offset if n > 1 else 0
        strides.append(stride)
        shape = [1] * idx.ndim
        shape[d] = n
        grid = grid + np.arange(n, dtype=np.int64).reshape(shape) * stride
    return (offset, strides) if np.array_equal(grid, idx) else None


def _merge(count: list[int], strides: list[list[int]], groups: list[int] | None = None):
    """Drop unit dims and merge neighbours that walk memory as one dim, in every stride list (not across groups)."""
    groups = groups or [0] * len(count)
    keep = [d for d, n in enumerate(count) if n > 1]
    c = [count[d] for d in keep]
    s = [[st[d] for d in keep] for st in strides]
    g = [groups[d] for d in keep]
    d = len(c) - 2
    while d >= 0:
        if g[d] == g[d + 1] and all(st[d] == st[d + 1] * c[d + 1] for st in s):
            c[d + 1] *= c[d]
            for st in s:
                del st[d]
            del c[d], g[d]
        d -= 1
    return c, s, g


def _copy_step(b, op, name: str, part: str, src_idx, dst_idx, src: int, dst: int, fill: int = NO_FILL) -> CopyStep:

    a, z = _affine(src_idx), _affine(dst_idx)
    if a is None or z is None or np.shape(src_idx) != np.shape(dst_idx):
        raise refuse(f"{op.name} (op {op.index}) as a strided copy")
    y = b.tensor(dst)
    size = 4 if y.dtype == "float32" else 1  # bytes a value: a float32 value is a run of four bytes
    shape, s_in, s_out = (
        list(np.shape(src_idx)) + [size],
        [st * size for st in a[1]] + [1],
        [st * size for st in z[1]] + [1],
    )
    count, (s_in, s_out), _ = _merge(shape, [s_in, s_out])
    if len(count) > COPY_RANK:
        raise refuse(f"{op.name} (op {op.index}) needing a {len(count)}-D copy (at most {COPY_RANK})")
    if not count:
        count, s_in, s_out = [1], [0], [0]
    return CopyStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(src),
        outputs=b.writes(dst, name),
        op=op.name,
        part=part,
        output_size=y.size * size,
        fill=fill,
        count=tuple(count),
        src_stride=tuple(s_in),
        dst_stride=tuple(s_out),
        src_offset=a[0] * size,
        dst_offset=z[0] * size,
    )


def _grid(t) -> np.ndarray:
    return np.arange(t.size, dtype=np.int64).reshape(t.shape)


def _constant(b, op, index: int, what: str) -> np.ndarray:

    t = b.tensor(index)
    if t.data is None:
        raise refuse(f"{op.name} (op {op.index}) with a run-time {what}")
    return np.asarray(t.data).astype(np.int64).reshape(-1)


def _axis(op, axis: int, rank: int) -> int:
    """An axis in -rank..rank-1 as TFLM accepts it, made non-negative."""

    if not -rank <= axis < rank:
        raise refuse(f"{op.name} (op {op.index}) along axis {axis} of a {rank}-D tensor")
    return axis % rank


def _same_values(b, op, *indices: int) -> None:
    """A pure copy's tensors: all float32 (the converter leaves float islands between a DEQUANTIZE and
    QUANTIZEs: values copied as they are), or all int8 quantized alike (_same_quant)."""

    if all(b.tensor(i).dtype == "float32" for i in indices):
        return
    _same_quant(b, op, *indices)


def _same_quant(b, op, *indices: int) -> None:

    if any(b.tensor(i).dtype != "int8" for i in indices):
        raise refuse(f"{op.name} (op {op.index}) on tensors other than int8")
    qs = [quant(b.tensor(i), "activation") for i in indices]
    for q in qs[1:]:
        if float(q.scale) != float(qs[0].scale) or q.zero_point != qs[0].zero_point:
            raise refuse(f"{op.name} (op {op.index}) whose inputs and output differ in scale or zero point (TFLM too)")


def _used(b, index: int) -> bool:
    return bool(b.graph.consumers(index)) or index in b.graph.outputs


# ---- lowerings (GraphOp -> steps appended to b.steps; None returned) ----


def lower_pad(b, op, _pool) -> None:
    """PAD / PADV2 (TFLM pad.cc PadImpl): the output set to the pad value, then the input copied inside it."""

    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    pads = _constant(b, op, op.inputs[1], "padding")
    if pads.size != 2 * len(x.shape) or pads.min() < 0:
        raise refuse(f"{op.name} (op {op.index}) with paddings {pads.tolist()}")
    pads = pads.reshape(-1, 2)
    _same_quant(b, op, op.inputs[0], op.outputs[0])
    if tuple(int(n + lo + hi) for n, (lo, hi) in zip(x.shape, pads)) != tuple(y.shape):
        raise CodegenError(
            f"{op.name} (op {op.index}) output {list(y.shape)} does not match its paddings; convert again"
        )
    yq = quant(y, "output")
    fill = yq.zero_point
    if op.name == "PADV2":
        value = b.tensor(op.inputs[2])
        vq = quant(value, "pad value")
        if value.data is None or value.dtype != "int8" or value.size != 1:
            raise refuse(f"PADV2 (op {op.index}) with a run-time or non-int8 pad value")
        if vq.zero_point != yq.zero_point or float(vq.scale) != float(yq.scale):
            raise refuse(f"PADV2 (op {op.index}) whose pad value is quantized unlike its output (TFLM too)")
        fill = int(np.asarray(value.data).reshape(-1)[0])
    inside = _grid(y)[tuple(slice(int(lo), int(lo) + n) for n, (lo, _) in zip(x.shape, pads))]
    b.steps.append(_copy_step(b, op, step_name(op), "", _grid(x), inside, op.inputs[0], op.outputs[0], fill))


def lower_concatenation(b, op, _pool) -> None:
    """CONCATENATION (TFLM reference_ops::Concatenation; TFLM requires every int8 input quantized as the
    output): one copy per input into its place along the axis."""

    y = b.tensor(op.outputs[0])
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise refuse(f"CONCATENATION (op {op.index}) with a fused activation")
    axis = _axis(op, int(op.options.get("axis", 0)), len(y.shape))
    _same_values(b, op, op.outputs[0], *op.inputs)
    start = 0
    for k, index in enumerate(op.inputs):
        x = b.tensor(index)
        if x.is_constant:
            raise refuse(f"CONCATENATION (op {op.index}) of a constant tensor")
        n = x.shape[axis] if len(x.shape) == len(y.shape) else -1
        if n < 0 or any(a != c for d, (a, c) in enumerate(zip(x.shape, y.shape)) if d != axis):
            raise CodegenError(
                f"CONCATENATION (op {op.index}) input {list(x.shape)} for {list(y.shape)}; convert again"
            )
        where = tuple(slice(start, start + n) if d == axis else slice(None) for d in range(len(y.shape)))
        name = f"{step_name(op)}_{k}"
        b.steps.append(_copy_step(b, op, name, f", input {k}", _grid(x), _grid(y)[where], index, op.outputs[0]))
        start += n
    if start != y.shape[axis]:
        raise CodegenError(f"CONCATENATION (op {op.index}) inputs do not fill its output; convert again")


def lower_split(b, op, _pool) -> None:
    """SPLIT, SPLIT_V (TFLM split.cc / split_v.cc) and UNPACK (unpack.cc): one copy per output that is read."""

    if op.name == "SPLIT":
        data, axis = op.inputs[1], int(_constant(b, op, op.inputs[0], "axis")[0])
    elif op.name == "SPLIT_V":
        data, axis = op.inputs[0], int(_constant(b, op, op.inputs[2], "axis")[0])
    else:
        data, axis = op.inputs[0], int(op.options.get("axis", 0))
    x = b.tensor(data)
    axis = _axis(op, axis, len(x.shape))
    start = 0
    for k, index in enumerate(op.outputs):
        y = b.tensor(index)
        n = 1 if op.name == "UNPACK" else y.shape[axis]
        _same_values(b, op, data, index)
        where = tuple(slice(start, start + n) if d == axis else slice(None) for d in range(len(x.shape)))
        part = _grid(x)[where]
        if part.size != y.size:
            raise CodegenError(f"{op.name} (op {op.index}) output {list(y.shape)} for {list(x.shape)}; convert again")
        if _used(b, index):
            name = f"{step_name(op)}_{k}"
            b.steps.append(
                _copy_step(b, op, name, f", output {k}", part, np.arange(y.size).reshape(part.shape), data, index)
            )
        start += n
    if start != x.shape[axis]:
        raise CodegenError(f"{op.name} (op {op.index}) outputs do not cover its input; convert again")


def lower_strided_slice(b, op, _pool) -> None:
    """STRIDED_SLICE on data (TFLM reference_ops::StridedSlice; ellipsis and new-axis masks, which TFLM
    ignores, are refused): the slice applied to an index array gives the copy."""

    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    o = op.options
    if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0) or o.get("offset", False):
        raise refuse(f"STRIDED_SLICE (op {op.index}) with ellipsis, new-axis or offset")
    begin, end = _constant(b, op, op.inputs[1], "begin"), _constant(b, op, op.inputs[2], "end")
    strides = _constant(b, op, op.inputs[3], "strides") if len(op.inputs) > 3 else np.ones_like(begin)
    if not len(begin) == len(end) == len(strides) == len(x.shape) or np.any(strides == 0):
        raise refuse(f"STRIDED_SLICE (op {op.index}) with begin {begin.tolist()} strides {strides.tolist()}")
    slices = []
    for d, n in enumerate(x.shape):
        if o.get("shrink_axis_mask", 0) >> d & 1:
            i = int(begin[d]) + (n if begin[d] < 0 else 0)
            if not 0 <= i < n:
                raise refuse(f"STRIDED_SLICE (op {op.index}) shrinking axis {d} at {int(begin[d])}")
            slices.append(slice(i, i + 1))
            continue
        lo = None if o.get("begin_mask", 0) >> d & 1 else int(begin[d])
        hi = None if o.get("end_mask", 0) >> d & 1 else int(end[d])
        slices.append(slice(lo, hi, int(strides[d])))
    part = _grid(x)[tuple(slices)]
    if part.size != y.size or y.size == 0:
        raise CodegenError(f"STRIDED_SLICE (op {op.index}) gives {part.size} values for {list(y.shape)}; convert again")
    _same_quant(b, op, op.inputs[0], op.outputs[0])
    b.steps.append(
        _copy_step(b, op, step_name(op), "", part, np.arange(y.size).reshape(part.shape), op.inputs[0], op.outputs[0])
    )


def lower_tile(b, op, _pool) -> None:
    """TILE (TFLite reference Tile; TFLM has no TILE kernel): copies with a zero stride over each repeat."""

    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    multiples = _constant(b, op, op.inputs[1], "multiples")
    if len(multiples) != len(x.shape) or multiples.min() < 1:
        raise refuse(f"TILE (op {op.index}) with multiples {multiples.tolist()}")
    if tuple(int(n * m) for n, m in zip(x.shape, multiples)) != tuple(y.shape):
        raise CodegenError(f"TILE (op {op.index}) output {list(y.shape)} does not match its multiples; convert again")
    expanded = tuple(v for n, m in zip(x.shape, multiples) for v in (int(m), n))
    src = np.broadcast_to(_grid(x).reshape(tuple(v for n in x.shape for v in (1, n))), expanded)
    dst = np.arange(y.size).reshape(expanded)
    b.steps.append(_copy_step(b, op, step_name(op), "", src, dst, op.inputs[0], op.outputs[0]))


def lower_alias(b, op, _pool) -> None:
    """SQUEEZE and EXPAND_DIMS: the same bytes under another shape (TFLM copies only when not in place)."""
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    if x.size != y.size:
        raise CodegenError(f"{op.name} (op {op.index}) from {list(x.shape)} to {list(y.shape)} changes the size")
    b.alias[op.outputs[0]] = b.root(op.inputs[0])


def nearest(out_size: int, in_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """TFLM GetNearestNeighbor for every output index (float32 arithmetic as in the kernel)."""
    f = np.float32
    if align_corners and out_size > 1:
        scale = f(in_size - 1) / f(out_size - 1)
    else:
        scale = f(in_size) / f(out_size)
    offset = f(0.5) if half_pixel else f(0.0)
    values = (np.arange(out_size).astype(np.float32) + offset) * f(scale)
    values = values.astype(np.float32)
    if align_corners:
        idx = np.where(values < 0, -np.floor(-values + f(0.5)), np.floor(values + f(0.5)))  # TfLiteRound
    else:
        idx = np.floor(values)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    if half_pixel:
        idx = np.maximum(idx, 0)
    return idx.astype(np.uint16)


def lower_resize_nearest(b, op, _pool) -> ResizeNearestStep:
    """RESIZE_NEAREST_NEIGHBOR (TFLM reference_ops::ResizeNearestNeighbor)."""

    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    in_h, in_w, c = dims4(x, "RESIZE_NEAREST_NEIGHBOR input")
    out_h, out_w, out_c = dims4(y, "RESIZE_NEAREST_NEIGHBOR output")
    size = _constant(b, op, op.inputs[1], "size")
    if out_c != c or tuple(size.tolist()) != (out_h, out_w) or max(in_h, in_w, out_h, out_w) > 65535:
        raise CodegenError(f"RESIZE_NEAREST_NEIGHBOR (op {op.index}) {list(x.shape)} -> {list(y.shape)}; convert again")
    _same_quant(b, op, op.inputs[0], op.outputs[0])
    align, half = bool(op.options.get("align_corners", False)), bool(op.options.get("half_pixel_centers", False))
    name = step_name(op)
    return ResizeNearestStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        out_h=out_h,
        out_w=out_w,
        channels=c,
        in_w=in_w,
        rows=nearest(out_h, in_h, align, half),
        cols=nearest(out_w, in_w, align, half),
    )


def lower_mean(b, op, pool):
    """MEAN: over H and W of a 4-D tensor lowering._mean; any other axes of a tensor up to 6-D ec_mean_nd
    (TFLM reduce_common.cc QuantizedMeanOrSum, multiplier from PrepareMeanOrSumHelper)."""
    from edgeclust.backends.native import fixed_point as fp
    from edgeclust.backends.native import lowering as L

    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    axes_data = _constant(b, op, op.inputs[1], "axis")
    axes = sorted({_axis(op, int(a), len(x.shape)) for a in axes_data})
    if len(x.shape) == 4 and axes == [1, 2]:
        return L._mean(b, op, pool)
    reduced = int(np.prod([x.shape[d] for d in axes], dtype=np.int64))
    if y.size != x.size // max(reduced, 1):
        raise CodegenError(f"MEAN (op {op.index}) output {list(y.shape)} for {list(x.shape)}; convert again")
    kept_rank, count, stride = walk(tuple(x.shape), axes)  # the same walk as REDUCE_MAX's
    if len(count) > COPY_RANK:
        raise refuse(f"MEAN (op {op.index}) over a {len(count)}-D walk")
    xq, yq = quant(x, "input"), quant(y, "output")
    multiplier, shift = fp.mean_params(xq.scale, yq.scale, reduced)
    name = step_name(op)
    return MeanNdStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        kept_rank=kept_rank,
        count_reduced=reduced,
        count=tuple(count),
        stride=tuple(stride),
        input_zero_point=xq.zero_point,
        output_zero_point=yq.zero_point,
        multiplier=multiplier,
        shift=shift,
    )


def lower_transpose_conv(b, op, _pool) -> TransposeConvStep:
    """TRANSPOSE_CONV int8 (TFLM transpose_conv.cc: padding from ComputePaddingHeightWidth over the output
    size, PopulateConvolutionQuantizationParams per channel); inputs: output shape, filter, input, [bias]."""
    import dataclasses

    from edgeclust.backends.native import lowering as L

    w, x, y = L._constant_filter(b, op, op.inputs[1]), b.tensor(op.inputs[2]), b.tensor(op.outputs[0])
    in_hwc, out_hwc = dims4(x, "TRANSPOSE_CONV input"), dims4(y, "TRANSPOSE_CONV output")
    if len(w.shape) != 4 or w.shape[0] != out_hwc[2] or w.shape[3] != in_hwc[2]:
        raise refuse(f"TRANSPOSE_CONV filter {list(w.shape)} for input {list(x.shape)}")
    shape = _constant(b, op, op.inputs[0], "output shape")
    if tuple(shape.tolist()) != tuple(y.shape):
        raise refuse(f"TRANSPOSE_CONV (op {op.index}) to shape {shape.tolist()} for output {list(y.shape)}")
    o = op.options
    stride_h, stride_w = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    k_h, k_w = w.shape[1], w.shape[2]
    padding = o.get("padding", "VALID")
    if padding not in ("SAME", "VALID") or not (
        1 <= stride_h <= 255 and 1 <= stride_w <= 255 and k_h <= 255 and k_w <= 255
    ):
        raise refuse(f"TRANSPOSE_CONV (op {op.index}) padding {padding}, stride {stride_h}x{stride_w}")
    pads = []
    for size, k, s in ((out_hwc[0], k_h, stride_h), (out_hwc[1], k_w, stride_w)):
        computed = (size + s - 1) // s if padding == "SAME" else (size + s - k) // s
        pads.append(max(0, (computed - 1) * s + k - size) // 2 if computed >= 0 else 0)
    for value in (*in_hwc, *out_hwc):
        if not 1 <= value <= 65535:
            raise refuse(f"TRANSPOSE_CONV with a dimension of {value} (1..65535 is supported)")
    rows = w.data.reshape(w.shape[0], -1)
    bias_op = dataclasses.replace(op, inputs=(op.inputs[2], op.inputs[1], op.inputs[3] if len(op.inputs) > 3 else -1))
    requant = L._requant(b, bias_op, np.zeros_like(rows), x, w, y, acc_rows=rows)  # zero rows: the bias stays unfolded
    name = step_name(op)
    return TransposeConvStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[2]),
        outputs=b.writes(op.outputs[0], name),
        weights=L._weights(b, op, w, rows, 0, lambda idx: idx.reshape(idx.shape[0], -1)),
        requant=requant,
        window=Window(*in_hwc, *out_hwc, k_h, k_w, stride_h, stride_w, 1, 1, pads[0], pads[1]),
        input_offset=-quant(x, "input").zero_point,
    )


LOWERINGS = {
    "PAD": lower_pad,
    "PADV2": lower_pad,
    "CONCATENATION": lower_concatenation,
    "SPLIT": lower_split,
    "SPLIT_V": lower_split,
    "UNPACK": lower_split,
    "SQUEEZE": lower_alias,
    "EXPAND_DIMS": lower_alias,
    "TILE": lower_tile,
    "RESIZE_NEAREST_NEIGHBOR": lower_resize_nearest,
    "TRANSPOSE_CONV": lower_transpose_conv,
}


# ---- C emitters (record -> params struct fields) ----


def _numbers(record, names: str):
    return [(name, str(int(getattr(record, name)))) for name in names.split()]


def _list(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}" if values else "{0}"


def emit_copy(step: CopyStep):
    fields = _numbers(step, "output_size fill") + [
        ("rank", str(len(step.count))),
        ("count", _list(step.count)),
        ("src_stride", _list(step.src_stride)),
        ("dst_stride", _list(step.dst_stride)),
    ]
    return [("ec_copy_params", step.name, fields + _numbers(step, "src_offset dst_offset"))]


def emit_resize(step: ResizeNearestStep):
    fields = _numbers(step, "out_h out_w channels in_w") + [
        ("rows", f"{step.name}_rows"),
        ("cols", f"{step.name}_cols"),
    ]
    return [("ec_resize_params", step.name, fields)]


def emit_mean_nd(step: MeanNdStep):
    fields = [("rank", str(len(step.count)))] + _numbers(step, "kept_rank count_reduced")
    fields += [("count", _list(step.count)), ("stride", _list(step.stride))]
    fields += _numbers(step, "input_zero_point output_zero_point multiplier shift")
    return [("ec_mean_nd_params", step.name, fields)]


def emit_transpose_conv(step: TransposeConvStep):
    from edgeclust.backends.native import emit_c as E

    fields = E._weighted(step) + [("win", E._window(step.window)), ("input_offset", str(step.input_offset))]
    return [("ec_transpose_conv_params", step.name, fields)]


EMITTERS = {
    CopyStep: emit_copy,
    ResizeNearestStep: emit_resize,
    MeanNdStep: emit_mean_nd,
    TransposeConvStep: emit_transpose_conv,
}

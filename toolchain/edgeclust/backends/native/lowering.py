"""Graph + weight layouts -> Program: kernel parameters computed as TFLM's Prepare does, weights packed.

Shape ops that only feed a RESHAPE (SHAPE, STRIDED_SLICE, PACK: what a dynamic batch adds) are folded away
for batch 1; RESHAPE is an alias; a CONV_2D whose only reader is a MAX_POOL_2D is fused with it; ADD runs in
place over an input that dies there. Anything else outside the supported set is one line (`unsupported`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgeclust.backends.native import fixed_point as fp
from edgeclust.backends.native.program import Buffer, ConstArray, PackedTensor, Program, Step
from edgeclust.errors import CodegenError
from edgeclust.lower import memory as memory_plan
from edgeclust.lower.graph import Graph, GraphOp, GraphTensor
from edgeclust.lower.pack import pack_rows
from edgeclust.lower.weights import WeightLayout

SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "MEAN",
    "ADD",
    "RESHAPE",
    "SOFTMAX",
    "QUANTIZE",
    "DEQUANTIZE",
    "SHAPE",
    "STRIDED_SLICE",
    "PACK",
)
SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
HINT = "use --backend tflm"
_MIN_INPUTS = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 2,
    "ADD": 2,
    "MEAN": 2,
    "SHAPE": 1,
    "STRIDED_SLICE": 4,
    "PACK": 1,
}
# as many inputs as TFLM's kernels accept (PACK: any number of values)
_MAX_INPUTS = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "FULLY_CONNECTED": 3,
    "ADD": 2,
    "MEAN": 2,
    "RESHAPE": 2,
    "STRIDED_SLICE": 5,
    "PACK": 1 << 16,
}
ALIGNMENT = 16


class Unsupported(CodegenError):
    """The model holds an op or option the native backend does not implement (one line, with the way out)."""


def _refuse(what: str) -> Unsupported:
    return Unsupported(f"the native backend does not support {what}; {HINT}")


@dataclass
class _Builder:
    graph: Graph
    layouts: dict[int, WeightLayout]
    consts: list[ConstArray] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    packed: list[PackedTensor] = field(default_factory=list)
    alias: dict[int, int] = field(default_factory=dict)  # tensor -> tensor whose memory it uses
    reads: list[tuple[int, ...]] = field(default_factory=list)  # per step: tensors read
    writes: list[tuple[int, ...]] = field(default_factory=list)

    def tensor(self, index: int) -> GraphTensor:
        if not 0 <= index < len(self.graph.tensors):
            raise CodegenError(f"an op refers to tensor {index}, which the model does not have; convert it again")
        return self.graph.tensors[index]

    def root(self, index: int) -> int:
        while index in self.alias:
            index = self.alias[index]
        return index

    def const(self, step: str, what: str, ctype: str, values, kind: str) -> str:
        name = f"{step}_{what}"
        self.consts.append(ConstArray(name, ctype, np.ascontiguousarray(values), kind))
        return name

    def add_step(self, step: Step, reads: Sequence[int], writes: Sequence[int]) -> None:
        self.steps.append(step)
        self.reads.append(tuple(self.root(t) for t in reads))
        self.writes.append(tuple(self.root(t) for t in writes))


def lower_graph(graph: Graph, layouts: Sequence[WeightLayout] = ()) -> Program:
    """The Program for `graph`; raises Unsupported (a CodegenError) naming what it cannot run."""
    reason = unsupported_reason(graph)
    if reason:
        raise Unsupported(reason)
    b = _Builder(graph, {layout.tensor: layout for layout in layouts})
    ops = [op for op in graph.ops if op.name not in SHAPE_OPS]
    fused: set[int] = set()
    for op in ops:
        if op.index in fused:
            continue
        pool = _fusable_pool(graph, op)
        if pool is not None:
            fused.add(pool.index)
        _LOWER[op.name](b, op, f"op{len(b.steps)}", pool)
    return _finish(b)


def unsupported_reason(graph: Graph) -> str | None:
    """One line naming the first op or option the native backend cannot run, or None."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return (
            f"models with {len(graph.inputs)} inputs and {len(graph.outputs)} outputs (one of each is "
            f"supported); {HINT}"
        )
    for t in (graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]):
        if t.dtype not in ("int8", "float32"):
            return f"a {t.dtype} model input or output ({t.name!r}); {HINT}"
    for op in graph.ops:  # every tensor an op touches must have a plausible shape and quantization
        for i in (*op.inputs, *op.outputs):
            if not -1 <= i < len(graph.tensors):
                return f"op {op.index} ({op.name}) refers to tensor {i}, which the model lacks; convert it again"
            if i >= 0 and (problem := _tensor_problem(graph.tensors[i])):
                return f"{problem}; convert the model again or {HINT}"
    shape_outputs = {t for op in graph.ops if op.name in SHAPE_OPS for t in op.outputs}
    for op in graph.ops:
        if op.name not in SUPPORTED_OPS:
            return f"the native backend does not support op {op.name}; {HINT}"
        if op.custom_options:
            return (
                f"op {op.index} ({op.name}) is a builtin operator with custom options, which TFLM refuses "
                "too; the model is damaged: convert it again"
            )
        needed, allowed = _MIN_INPUTS.get(op.name, 1), _MAX_INPUTS.get(op.name, 1)
        if len(op.outputs) != 1 or not needed <= len(op.inputs) <= allowed or any(i < 0 for i in op.inputs[:needed]):
            return (
                f"op {op.index} ({op.name}) has {len(op.inputs)} inputs and {len(op.outputs)} outputs; the model "
                "is damaged: convert it again"
            )
        if op.name in SHAPE_OPS:
            for t in op.outputs:
                for reader in graph.consumers(t):
                    feeds_shape = reader.name in SHAPE_OPS or (
                        reader.name == "RESHAPE" and reader.inputs[1:2] == (t,) and t not in reader.inputs[:1]
                    )
                    if not feeds_shape:
                        return f"{op.name} outside the shape arithmetic of a RESHAPE (op {op.index}); {HINT}"
            continue
        act = op.options.get("fused_activation_function", "NONE")
        if act not in ACTIVATIONS:
            return f"fused activation {act} on {op.name} (op {op.index}); {HINT}"
        data_inputs = [i for i in op.inputs[:1] if i >= 0] if op.name == "RESHAPE" else [i for i in op.inputs if i >= 0]
        for i in data_inputs + list(op.outputs):
            if not 0 <= i < len(graph.tensors):
                return f"op {op.index} ({op.name}) refers to tensor {i}, which the model lacks; convert it again"
        if op.name in ("RESHAPE",) and len(op.inputs) > 1 and op.inputs[1] >= 0:
            shape_input = op.inputs[1]
            if shape_input not in shape_outputs and not graph.tensors[shape_input].is_constant:
                return f"RESHAPE to a shape computed at run time (op {op.index}); {HINT}"
        activations = [graph.tensors[i] for i in op.inputs[:1] + op.outputs if i >= 0]
        expected = {"QUANTIZE": ("float32", "int8"), "DEQUANTIZE": ("int8", "float32")}.get(op.name, ("int8", "int8"))
        if activations and (activations[0].dtype, activations[-1].dtype) != expected:
            return (
                f"{op.name} from {activations[0].dtype} to {activations[-1].dtype} (op {op.index}); only int8 "
                f"kernels (and float edges) are native; {HINT}"
            )
    return None


MAX_ELEMENTS = 1 << 26  # no microcontroller tensor is larger; keeps sizes far from int32 and memory limits


def _tensor_problem(t: GraphTensor) -> str | None:
    """Why a tensor cannot be lowered as stored (bad dimensions, scales, zero points), or None."""
    if any(d < 1 for d in t.shape) or len(t.shape) > 6:
        return f"tensor {t.name!r} has shape {list(t.shape)}"
    if t.size > MAX_ELEMENTS:
        return f"tensor {t.name!r} has {t.size:,} elements"
    q = t.quant
    if q is not None and t.dtype in ("int8", "int32"):
        scales = np.asarray(q.scales, dtype=np.float64)
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0) or np.any(scales > 1e30):
            return f"tensor {t.name!r} has quantization scale(s) {q.scales[:3]}"
        if not q.zero_points_stored:
            return f"tensor {t.name!r} has quantization scales but no zero points"
        low, high = (-128, 127) if t.dtype == "int8" else (-(2**31), 2**31 - 1)
        if any(not low <= z <= high for z in q.zero_points):
            return f"tensor {t.name!r} has zero point(s) {q.zero_points[:3]}"
    return None


def _fusable_pool(graph: Graph, op: GraphOp) -> GraphOp | None:
    """The MAX_POOL_2D that alone reads this CONV_2D's output, when fusing it changes no result."""
    if op.name != "CONV_2D":
        return None
    out = op.outputs[0]
    readers = graph.consumers(out)
    if len(readers) != 1 or readers[0].name != "MAX_POOL_2D" or out in graph.outputs:
        return None
    pool = readers[0]
    a, b = graph.tensors[out].quant, graph.tensors[pool.outputs[0]].quant
    if a is None or b is None or a.scale != b.scale or a.zero_point != b.zero_point:
        return None
    return pool


# ---- helpers ----


def _quant(t: GraphTensor, what: str):
    if t.quant is None:
        raise _refuse(f"an unquantized {what} tensor ({t.name!r})")
    return t.quant


def _dims4(t: GraphTensor, what: str) -> tuple[int, int, int]:
    if len(t.shape) != 4 or t.shape[0] != 1:
        raise _refuse(f"{what} of shape {list(t.shape)} (NHWC with batch 1 is supported)")
    return t.shape[1], t.shape[2], t.shape[3]


def _window(op: GraphOp, in_hwc, out_hwc, k_h: int, k_w: int, *, dilation: bool) -> str:
    """The ec_window initializer, with TFLM's output size and padding (ComputePaddingHeightWidth)."""
    o = op.options
    stride_h, stride_w = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dil_h = int(o.get("dilation_h_factor", 1)) if dilation else 1
    dil_w = int(o.get("dilation_w_factor", 1)) if dilation else 1
    padding = o.get("padding", "VALID")
    for name, value in (
        ("stride", stride_h),
        ("stride", stride_w),
        ("dilation", dil_h),
        ("dilation", dil_w),
        ("filter size", k_h),
        ("filter size", k_w),
    ):
        if not 1 <= value <= 255:
            raise _refuse(f"{op.name} with {name} {value} (1..255 is supported)")
    if padding not in ("SAME", "VALID"):
        raise _refuse(f"{op.name} padding {padding}")
    pads = []
    for size, k, stride, dil, out in (
        (in_hwc[0], k_h, stride_h, dil_h, out_hwc[0]),
        (in_hwc[1], k_w, stride_w, dil_w, out_hwc[1]),
    ):
        effective = (k - 1) * dil + 1
        expected = (size + stride - 1) // stride if padding == "SAME" else (size + stride - effective) // stride
        if expected != out or out <= 0:
            raise CodegenError(
                f"{op.name} (op {op.index}) output size {out} does not match its input {size}, filter "
                f"{k}, stride {stride}, {padding}: the model is inconsistent; convert it again"
            )
        pads.append(max(0, ((out - 1) * stride + effective - size)) // 2)
    for value in (*in_hwc, *out_hwc):
        if not 1 <= value <= 65535:
            raise _refuse(f"{op.name} with a dimension of {value} (1..65535 is supported)")
    return (
        f"{{.in_h = {in_hwc[0]}, .in_w = {in_hwc[1]}, .in_c = {in_hwc[2]}, .out_h = {out_hwc[0]}, "
        f".out_w = {out_hwc[1]}, .out_c = {out_hwc[2]}, .k_h = {k_h}, .k_w = {k_w}, .stride_h = {stride_h}, "
        f".stride_w = {stride_w}, .dil_h = {dil_h}, .dil_w = {dil_w}, .pad_h = {pads[0]}, .pad_w = {pads[1]}}}"
    )


def _weights(b: _Builder, step: str, op: GraphOp, t: GraphTensor, rows: np.ndarray, channel_axis: int, to_rows) -> str:
    """Pack `rows` (out_channels, n) int8 from the tensor's layout when that pays; the ec_weights initializer."""
    layout = b.layouts.get(t.index)
    out_c, n = rows.shape
    use = None
    if layout is not None and layout.dtype == "int8" and layout.bits < 8 and layout.axis in (None, channel_axis):
        if tuple(layout.shape) == tuple(t.shape) and np.array_equal(layout.decode(), t.data):
            index_rows = to_rows(layout.indices).astype(np.uint8)
            packed = pack_rows(index_rows, layout.bits)
            tables = layout.tables.astype(np.int8)
            if packed.nbytes + tables.size < rows.size:
                use = (packed, tables)
    if use is None:
        name = b.const(step, "weights", "int8_t", rows.astype(np.int8).reshape(-1), "weights")
        b.packed.append(PackedTensor(t.index, t.name, op.name, 8, False, rows.size, rows.size, 0))
        return f"{{.data = (const uint8_t *){name}, .table = NULL, .row_stride = {n}, .table_stride = 0, .bits = 8}}"
    packed, tables = use
    data = b.const(step, "weights", "uint8_t", np.frombuffer(packed.data, np.uint8), "weights")
    table = b.const(step, "table", "int8_t", tables.reshape(-1), "tables")
    per_channel = layout.axis is not None
    b.packed.append(
        PackedTensor(t.index, t.name, op.name, layout.bits, per_channel, rows.size, packed.nbytes, int(tables.size))
    )
    return (
        f"{{.data = {data}, .table = {table}, .row_stride = {packed.row_stride}, "
        f".table_stride = {tables.shape[1] if per_channel else 0}, .bits = {layout.bits}}}"
    )


def _requant(
    b: _Builder,
    step: str,
    op: GraphOp,
    rows: np.ndarray,
    bias_index: int,
    x: GraphTensor,
    w: GraphTensor,
    y: GraphTensor,
    *,
    channel_axis: int = 0,
    float_product: bool = False,
) -> str:
    """Folded biases, per-channel multipliers/shifts and the activation range: the ec_requant initializer."""
    xq, wq, yq = _quant(x, "input"), _quant(w, "filter"), _quant(y, "output")
    out_c = rows.shape[0]
    if len(wq.scales) not in (1, out_c) or (wq.per_channel and wq.axis != channel_axis):
        raise CodegenError(
            f"{op.name} (op {op.index}) has {len(wq.scales)} filter scales along axis {wq.axis} for "
            f"{out_c} output channels on axis {channel_axis}; convert the model again"
        )
    if any(z != 0 for z in wq.zero_points):
        raise _refuse(f"{op.name} with asymmetric int8 weights")
    bias = np.zeros(out_c, np.int64)
    if bias_index >= 0:
        bt = b.tensor(bias_index)
        if bt.data is None or bt.dtype != "int32" or bt.size != out_c:
            raise _refuse(f"{op.name} bias {bt.name!r} ({bt.dtype}, {bt.size} values for {out_c} channels)")
        bias = bt.data.astype(np.int64).reshape(-1)
    folded = bias - xq.zero_point * rows.astype(np.int64).sum(axis=1)
    if folded.min(initial=0) < -(2**31) or folded.max(initial=0) > 2**31 - 1:
        raise CodegenError(f"{op.name} (op {op.index}): a folded bias leaves int32; the model's scales are broken")
    multipliers, shifts = [], []
    for c in range(out_c):
        scale = wq.scales[c if len(wq.scales) > 1 else 0]
        if float_product:  # TFLM GetQuantizedConvolutionMultipler: float product, then double
            real = float(np.float32(xq.scale) * np.float32(scale)) / float(yq.scale)
        else:  # TFLM PopulateConvolutionQuantizationParams and per-channel FC: all in double
            real = float(xq.scale) * float(scale) / float(yq.scale)
        m, s = fp.quantize_multiplier(real)
        multipliers.append(m)
        shifts.append(s)
    act_min, act_max = fp.activation_range(op.options.get("fused_activation_function", "NONE"), yq.scale, yq.zero_point)
    bias_name = b.const(step, "bias", "int32_t", folded.astype(np.int32), "biases")
    mult_name = b.const(step, "multiplier", "int32_t", np.array(multipliers, np.int32), "requant")
    shift_name = b.const(step, "shift", "int8_t", np.array(shifts, np.int8), "requant")
    return (
        f"{{.bias = {bias_name}, .multiplier = {mult_name}, .shift = {shift_name}, "
        f".output_zero_point = {yq.zero_point}, .act_min = {act_min}, .act_max = {act_max}}}"
    )


def _constant_filter(b: _Builder, op: GraphOp, index: int) -> GraphTensor:
    w = b.tensor(index)
    if w.data is None or w.dtype != "int8":
        raise _refuse(
            f"{op.name} with a {w.dtype} {'constant' if w.data is not None else 'run-time'} filter ({w.name!r})"
        )
    return w


# ---- one function per op ----


def _conv(b: _Builder, op: GraphOp, step: str, pool: GraphOp | None) -> None:
    x, w = b.tensor(op.inputs[0]), _constant_filter(b, op, op.inputs[1])
    y = b.tensor(op.outputs[0])
    in_hwc, out_hwc = _dims4(x, "CONV_2D input"), _dims4(y, "CONV_2D output")
    if len(w.shape) != 4 or w.shape[0] != out_hwc[2] or w.shape[3] != in_hwc[2]:
        raise _refuse(f"CONV_2D filter {list(w.shape)} for input {list(x.shape)} (grouped convolution)")
    rows = w.data.reshape(w.shape[0], -1)
    win = _window(op, in_hwc, out_hwc, w.shape[1], w.shape[2], dilation=True)
    weights = _weights(b, step, op, w, rows, 0, lambda idx: idx.reshape(idx.shape[0], -1))
    requant = _requant(b, step, op, rows, op.inputs[2] if len(op.inputs) > 2 else -1, x, w, y)
    extra: tuple = ()
    pool_ref = "NULL"
    out_index = op.outputs[0]
    what = f"CONV_2D (op {op.index})"
    if pool is not None:
        p_out = b.tensor(pool.outputs[0])
        p_hwc = _dims4(p_out, "MAX_POOL_2D output")
        fh, fw = int(pool.options.get("filter_height", 1)), int(pool.options.get("filter_width", 1))
        pwin = _window(pool, out_hwc, (p_hwc[0], p_hwc[1], out_hwc[2]), fh, fw, dilation=False)
        pq = _quant(p_out, "output")
        act_min, act_max = fp.activation_range(
            pool.options.get("fused_activation_function", "NONE"), pq.scale, pq.zero_point
        )
        pads = dict(part.split(" = ") for part in pwin.strip("{}").split(", "))
        extra = (
            (
                "ec_pool_fusion",
                f"{step}_pool",
                f"{{.k_h = {fh}, .k_w = {fw}, .stride_h = {pads['.stride_h']}, .stride_w = {pads['.stride_w']}, "
                f".pad_h = {pads['.pad_h']}, .pad_w = {pads['.pad_w']}, .out_h = {p_hwc[0]}, .out_w = {p_hwc[1]}, "
                f".act_min = {act_min}, .act_max = {act_max}}}",
            ),
        )
        pool_ref = f"&{step}_pool"
        out_index = pool.outputs[0]
        what += f" + MAX_POOL_2D (op {pool.index}), fused: the conv's output never exists whole"
    init = (
        f"{{.w = {weights}, .q = {requant}, .win = {win}, .input_zero_point = {_quant(x, 'input').zero_point}, "
        f".pool = {pool_ref}}}"
    )
    b.add_step(Step(step, "ec_conv", "ec_conv_params", init, (), (), what, extra), [op.inputs[0]], [out_index])


def _depthwise(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    x, w = b.tensor(op.inputs[0]), _constant_filter(b, op, op.inputs[1])
    y = b.tensor(op.outputs[0])
    in_hwc, out_hwc = _dims4(x, "DEPTHWISE_CONV_2D input"), _dims4(y, "DEPTHWISE_CONV_2D output")
    multiplier = int(op.options.get("depth_multiplier", 1)) or 1
    if len(w.shape) != 4 or w.shape[0] != 1 or w.shape[3] != out_hwc[2] or out_hwc[2] != in_hwc[2] * multiplier:
        raise _refuse(
            f"DEPTHWISE_CONV_2D filter {list(w.shape)} for input {list(x.shape)}, depth multiplier {multiplier}"
        )
    if not 1 <= multiplier <= 65535:
        raise _refuse(f"DEPTHWISE_CONV_2D depth multiplier {multiplier}")
    to_rows = lambda a: a.reshape(-1, a.shape[3]).T  # (1, kh, kw, oc) -> (oc, kh*kw)
    rows = np.ascontiguousarray(to_rows(w.data))
    win = _window(op, in_hwc, out_hwc, w.shape[1], w.shape[2], dilation=True)
    weights = _weights(b, step, op, w, rows, 3, lambda idx: np.ascontiguousarray(to_rows(idx)))
    requant = _requant(b, step, op, rows, op.inputs[2] if len(op.inputs) > 2 else -1, x, w, y, channel_axis=3)
    init = (
        f"{{.w = {weights}, .q = {requant}, .win = {win}, .input_zero_point = {_quant(x, 'input').zero_point}, "
        f".depth_multiplier = {multiplier}}}"
    )
    _add_plain_step(b, op, step, "ec_depthwise_conv", "ec_depthwise_params", init)


def _fully_connected(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    x, w = b.tensor(op.inputs[0]), _constant_filter(b, op, op.inputs[1])
    y = b.tensor(op.outputs[0])
    if len(w.shape) != 2:
        raise _refuse(f"FULLY_CONNECTED filter of shape {list(w.shape)}")
    out_n, in_n = w.shape
    if op.options.get("weights_format", 0) not in (0, "DEFAULT"):
        raise _refuse("FULLY_CONNECTED with shuffled weights")
    if x.size % in_n or y.size != (x.size // in_n) * out_n:
        raise CodegenError(
            f"FULLY_CONNECTED (op {op.index}): input {list(x.shape)} and output {list(y.shape)} do not "
            f"match a {out_n}x{in_n} filter; convert the model again"
        )
    rows = w.data.reshape(out_n, in_n)
    weights = _weights(b, step, op, w, rows, 0, lambda idx: idx.reshape(out_n, in_n))
    per_tensor = len(_quant(w, "filter").scales) == 1
    requant = _requant(b, step, op, rows, op.inputs[2] if len(op.inputs) > 2 else -1, x, w, y, float_product=per_tensor)
    init = f"{{.w = {weights}, .q = {requant}, .batches = {x.size // in_n}, .in_n = {in_n}, .out_n = {out_n}}}"
    _add_plain_step(b, op, step, "ec_fully_connected", "ec_fc_params", init)


def _pool_op(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    in_hwc, out_hwc = _dims4(x, f"{op.name} input"), _dims4(y, f"{op.name} output")
    if in_hwc[2] != out_hwc[2]:
        raise CodegenError(f"{op.name} (op {op.index}) changes the channel count; convert the model again")
    xq, yq = _quant(x, "input"), _quant(y, "output")
    if xq.scale != yq.scale or xq.zero_point != yq.zero_point:
        raise _refuse(f"{op.name} with different input and output quantization")
    fh, fw = int(op.options.get("filter_height", 1)), int(op.options.get("filter_width", 1))
    win = _window(op, in_hwc, out_hwc, fh, fw, dilation=False)
    act_min, act_max = fp.activation_range(op.options.get("fused_activation_function", "NONE"), yq.scale, yq.zero_point)
    kernel = "ec_max_pool" if op.name == "MAX_POOL_2D" else "ec_average_pool"
    init = f"{{.win = {win}, .act_min = {act_min}, .act_max = {act_max}}}"
    _add_plain_step(b, op, step, kernel, "ec_pool_params", init)


def _mean(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    axis_t = b.tensor(op.inputs[1])
    axes = sorted(int(a) % 4 for a in np.asarray(axis_t.data).reshape(-1)) if axis_t.data is not None else None
    if len(x.shape) != 4 or axes != [1, 2]:
        raise _refuse(
            f"MEAN over axes {axes} of a {len(x.shape)}-D tensor (global average pooling over H, W is supported)"
        )
    h, w, c = _dims4(x, "MEAN input")
    if y.size != c:
        raise CodegenError(f"MEAN (op {op.index}) output {list(y.shape)} for input {list(x.shape)}; convert again")
    xq, yq = _quant(x, "input"), _quant(y, "output")
    multiplier, shift = fp.mean_params(xq.scale, yq.scale, h * w)
    init = (
        f"{{.spatial = {h * w}, .channels = {c}, .input_zero_point = {xq.zero_point}, "
        f".output_zero_point = {yq.zero_point}, .multiplier = {multiplier}, .shift = {shift}}}"
    )
    _add_plain_step(b, op, step, "ec_mean_hw", "ec_mean_params", init)


def _add(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    x1, x2, y = b.tensor(op.inputs[0]), b.tensor(op.inputs[1]), b.tensor(op.outputs[0])
    if x1.shape != x2.shape or x1.size != y.size or x1.is_constant or x2.is_constant:
        raise _refuse(f"ADD with broadcasting or a constant operand ({list(x1.shape)} + {list(x2.shape)})")
    q1, q2, qy = _quant(x1, "input"), _quant(x2, "input"), _quant(y, "output")
    params = fp.add_params(q1.scale, q2.scale, qy.scale)
    act_min, act_max = fp.activation_range(op.options.get("fused_activation_function", "NONE"), qy.scale, qy.zero_point)
    init = (
        f"{{.size = {y.size}, .input1_offset = {-q1.zero_point}, .input2_offset = {-q2.zero_point}, "
        f".output_offset = {qy.zero_point}, .input1_multiplier = {params['input1_multiplier']}, "
        f".input2_multiplier = {params['input2_multiplier']}, .output_multiplier = {params['output_multiplier']}, "
        f".input1_shift = {params['input1_shift']}, .input2_shift = {params['input2_shift']}, "
        f".output_shift = {params['output_shift']}, .left_shift = {params['left_shift']}, "
        f".act_min = {act_min}, .act_max = {act_max}}}"
    )
    _add_plain_step(b, op, step, "ec_add", "ec_add_params", init, inputs=op.inputs[:2])


def _softmax(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    xq, yq = _quant(x, "input"), _quant(y, "output")
    if yq.zero_point != -128 or np.float32(yq.scale) != np.float32(1 / 256):
        raise _refuse("SOFTMAX with an output other than scale 1/256, zero point -128")
    if x.size != y.size or not x.shape:
        raise CodegenError(f"SOFTMAX (op {op.index}) input and output differ in size; convert the model again")
    depth = x.shape[-1]
    multiplier, shift, diff_min = fp.softmax_params(fp.f32(op.options.get("beta", 1.0)), xq.scale)
    init = (
        f"{{.outer = {x.size // depth}, .depth = {depth}, .input_multiplier = {multiplier}, "
        f".input_left_shift = {shift}, .diff_min = {diff_min}}}"
    )
    _add_plain_step(b, op, step, "ec_softmax", "ec_softmax_params", init)


def _quantize(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    _add_plain_step(b, op, step, "ec_quantize", "ec_quantize_params", _int8_side(b, op.outputs[0], "output"))


def _dequantize(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    _add_plain_step(b, op, step, "ec_dequantize", "ec_dequantize_params", _int8_side(b, op.inputs[0], "input"))


def _int8_side(b: _Builder, index: int, role: str) -> str:
    """The params of a float/int8 conversion: size, scale and zero point of its int8 tensor."""
    tensor = b.tensor(index)
    q = _quant(tensor, role)
    return f"{{.size = {tensor.size}, .scale = {_c_float(q.scale)}, .zero_point = {q.zero_point}}}"


def _reshape(b: _Builder, op: GraphOp, step: str, _pool) -> None:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    if x.size != y.size:
        raise CodegenError(
            f"RESHAPE (op {op.index}) from {list(x.shape)} to {list(y.shape)} changes the size; convert the model again"
        )
    b.alias[op.outputs[0]] = b.root(op.inputs[0])


def _add_plain_step(b: _Builder, op: GraphOp, step: str, kernel: str, params: str, init: str, inputs=None) -> None:
    """A step with no tables of its own, from op's inputs (the first by default) to its output."""
    label = f"{op.name} (op {op.index})"
    b.add_step(Step(step, kernel, params, init, (), (), label), list(inputs or op.inputs[:1]), [op.outputs[0]])


def _c_float(value: float) -> str:
    """A float32 value as a C literal that reads back to the same float."""
    return f"{float(np.float32(value))!r}f".replace("inff", "INFINITY")


_LOWER = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "MAX_POOL_2D": _pool_op,
    "AVERAGE_POOL_2D": _pool_op,
    "MEAN": _mean,
    "ADD": _add,
    "SOFTMAX": _softmax,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "RESHAPE": _reshape,
}


# ---- buffers, lifetimes and the plan ----


def _finish(b: _Builder) -> Program:
    graph = b.graph
    model_in, model_out = b.root(graph.inputs[0]), b.root(graph.outputs[0])
    n = len(b.steps)
    first: dict[int, int] = {model_in: 0}
    last: dict[int, int] = {model_in: 0}
    for s in range(n):
        for t in b.writes[s]:
            first.setdefault(t, s)
            last[t] = max(last.get(t, s), s)
        for t in b.reads[s]:
            if t not in first:
                raise CodegenError(f"tensor {graph.tensors[t].name!r} is read before any op writes it; convert again")
            last[t] = max(last[t], s)
    last[model_out] = max(n - 1, 0)
    if model_out not in first:
        first[model_out] = 0
    # ADD in place: its output takes the memory of an input that dies at that step.
    in_place: dict[int, int] = {}
    for s, step in enumerate(b.steps):
        if step.kernel == "ec_add":
            out = b.writes[s][0]
            for t in b.reads[s]:
                if last[t] == s and t != model_in and t not in in_place.values():
                    in_place[out] = t
                    break

    uses = [
        memory_plan.BufferUse(
            f"t{t}", _nbytes(graph.tensors[t]), first[t], last[t], f"t{in_place[t]}" if t in in_place else None
        )
        for t in sorted(first)
    ]
    plan = memory_plan.plan(uses, alignment=ALIGNMENT)
    memory_plan.check_plan(plan, uses)
    buffers = {
        t: Buffer(f"t{t}", _nbytes(graph.tensors[t]), graph.tensors[t].dtype, plan.offsets[f"t{t}"]) for t in first
    }
    steps = tuple(
        Step(
            s.name,
            s.kernel,
            s.params_type,
            s.initializer,
            tuple(f"t{t}" for t in b.reads[i]),
            tuple(f"t{t}" for t in b.writes[i]),
            s.what,
            s.extra,
        )
        for i, s in enumerate(b.steps)
    )
    op_names = tuple(sorted({op.name for op in graph.ops}))
    return Program(
        tuple(b.consts),
        steps,
        tuple(buffers[t] for t in sorted(buffers)),
        buffers[model_in],
        buffers[model_out],
        max(plan.arena_bytes, ALIGNMENT),
        plan.lower_bound,
        tuple(b.packed),
        op_names,
    )


def _nbytes(t: GraphTensor) -> int:
    return t.size * np.dtype(t.dtype).itemsize

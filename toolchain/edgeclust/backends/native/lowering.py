"""Graph + weight layouts -> Program: one typed step record per kernel call (records.py), its parameters
computed as TFLM's Prepare does, weights packed; validated here once, so the emitter decides nothing.

LOWERINGS maps each op name to its function (GraphOp -> record, or None for an alias); plan.py places buffers.

Shape ops that only feed a RESHAPE (SHAPE, STRIDED_SLICE, PACK: what a dynamic batch adds) are folded away
for batch 1; RESHAPE is an alias; a CONV_2D whose only reader is a MAX_POOL_2D is fused with it; ADD runs in
place over an input that dies there. Anything else outside the supported set is one line (`unsupported`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgeclust.backends.native import elementwise, movement, reduce
from edgeclust.backends.native import fixed_point as fp
from edgeclust.backends.native.plan import plan_program
from edgeclust.backends.native.program import Program
from edgeclust.backends.native.records import (
    AddStep,
    ConvStep,
    DepthwiseStep,
    DequantizeStep,
    FullyConnectedStep,
    MeanStep,
    PackedWeights,
    PoolFusion,
    PoolStep,
    QuantizeStep,
    Requant,
    SoftmaxStep,
    Step,
    Window,
)
from edgeclust.backends.native.refusals import HINT, Unsupported, step_name
from edgeclust.backends.native.refusals import activation_range as _activation_range
from edgeclust.backends.native.refusals import dims4 as _dims4
from edgeclust.backends.native.refusals import quant as _quant
from edgeclust.backends.native.refusals import refuse as _refuse
from edgeclust.codegen.carray import check_identifier
from edgeclust.errors import CodegenError
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
    *movement.OPS,
    *elementwise.SUPPORTED_OPS,
    *reduce.OPS,
)
SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
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
_MIN_INPUTS.update(movement.MIN_INPUTS)
_MAX_INPUTS.update(movement.MAX_INPUTS)
_MIN_INPUTS.update(elementwise.MIN_INPUTS)
_MAX_INPUTS.update(elementwise.MAX_INPUTS)
_MIN_INPUTS.update(reduce.INPUTS)
_MAX_INPUTS.update(reduce.INPUTS)


@dataclass
class _Builder:
    """What lowering has decided so far: the steps, and which buffer holds each tensor."""

    graph: Graph
    layouts: dict[int, WeightLayout]
    steps: list[Step] = field(default_factory=list)
    alias: dict[int, int] = field(default_factory=dict)  # tensor -> tensor whose memory it uses
    buffer_of: dict[int, str] = field(default_factory=dict)  # root tensor -> its buffer's name

    def tensor(self, index: int) -> GraphTensor:
        if not 0 <= index < len(self.graph.tensors):
            raise CodegenError(f"an op refers to tensor {index}, which the model does not have; convert it again")
        return self.graph.tensors[index]

    def root(self, index: int) -> int:
        while index in self.alias:
            index = self.alias[index]
        return index

    def reads(self, *indices: int) -> tuple[str, ...]:
        """The buffers holding these tensors; a tensor no step has written yet is an error."""
        names = []
        for index in indices:
            root = self.root(index)
            if root not in self.buffer_of:
                raise CodegenError(
                    f"tensor {self.graph.tensors[root].name!r} is read before any op writes it; convert again"
                )
            names.append(self.buffer_of[root])
        return tuple(names)

    def writes(self, index: int, step: str) -> tuple[str, ...]:
        """The buffer a step writes this tensor to: `<step>_output`, unless the tensor already has one."""
        root = self.root(index)
        return (self.buffer_of.setdefault(root, check_identifier(f"{step}_output")),)


def lower_graph(graph: Graph, layouts: Sequence[WeightLayout] = ()) -> Program:
    """The Program for `graph`; raises Unsupported (a CodegenError) naming what it cannot run, and
    CodegenError for a layout it cannot honour."""
    reason = unsupported_reason(graph)
    if reason:
        raise Unsupported(reason)
    b = _Builder(graph, {layout.tensor: layout for layout in layouts})
    model_in = graph.inputs[0]
    b.buffer_of[model_in] = "model_input"
    fused: set[int] = set()
    for op in graph.ops:
        if (op.name in SHAPE_OPS and _shape_only(graph, op)) or op.index in fused:
            continue
        pool = _fusable_pool(graph, op)
        if pool is not None:
            fused.add(pool.index)
        step = LOWERINGS[op.name](b, op, pool)
        if step is not None:
            b.steps.append(step)
    _check_layouts_used(b)
    return plan_program(b.graph, tuple(b.steps), b.buffer_of, b.root)


def _check_layouts_used(b: _Builder) -> None:
    """A layout for a tensor that no step reads as weights cannot be honoured: an error, not a silent drop."""
    used = {p.tensor for step in b.steps for p in step.packed()}
    for tensor, layout in b.layouts.items():
        if tensor not in used:
            raise CodegenError(
                f"a weight layout was given for tensor {tensor} ({layout.name!r}), which no native kernel reads "
                "as weights; decide layouts with edgeclust.pipeline.layouts.weight_layouts"
            )


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
    missing: dict[str, int] = {}  # every unsupported op at once, with its count
    for op in graph.ops:
        if op.name not in SUPPORTED_OPS:
            missing[op.name] = missing.get(op.name, 0) + 1
    if sum(missing.values()) == 1:
        return f"the native backend does not support op {next(iter(missing))}; {HINT}"
    if missing:
        listed = ", ".join(f"{name} x{count}" for name, count in missing.items())
        return f"the native backend does not support {sum(missing.values())} ops: {listed}; {HINT}"
    for op in graph.ops:
        if op.custom_options:
            return (
                f"op {op.index} ({op.name}) is a builtin operator with custom options, which TFLM refuses "
                "too; the model is damaged: convert it again"
            )
        needed, allowed = _MIN_INPUTS.get(op.name, 1), _MAX_INPUTS.get(op.name, 1)
        if (
            (len(op.outputs) != 1 and op.name not in movement.MULTI_OUTPUT)
            or not needed <= len(op.inputs) <= allowed
            or any(i < 0 for i in op.inputs[:needed])
        ):
            return (
                f"op {op.index} ({op.name}) has {len(op.inputs)} inputs and {len(op.outputs)} outputs; the model "
                "is damaged: convert it again"
            )
        if op.name in SHAPE_OPS and _shape_only(graph, op):
            continue
        if op.name in SHAPE_OPS and op.name != "STRIDED_SLICE":  # STRIDED_SLICE on data: movement.py
            return f"{op.name} outside the shape arithmetic of a RESHAPE (op {op.index}); {HINT}"
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
        first = movement.DATA_INPUT.get(op.name, 0)
        activations = [graph.tensors[i] for i in op.inputs[first : first + 1] + op.outputs if i >= 0]
        expected = {"QUANTIZE": ("float32", "int8"), "DEQUANTIZE": ("int8", "float32")}.get(op.name, ("int8", "int8"))
        dtypes = (activations[0].dtype, activations[-1].dtype) if activations else expected
        if dtypes != expected and not (op.name in movement.FLOAT_COPIES and dtypes == ("float32", "float32")):
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


def _shape_only(graph: Graph, op: GraphOp) -> bool:
    """A SHAPE, STRIDED_SLICE or PACK whose outputs only feed shape arithmetic (folded away for batch 1)."""
    for t in op.outputs:
        for reader in graph.consumers(t):
            if not (
                (reader.name in SHAPE_OPS and _shape_only(graph, reader))
                or (reader.name == "RESHAPE" and reader.inputs[1:2] == (t,) and t not in reader.inputs[:1])
            ):
                return False
    return not any(t in graph.outputs for t in op.outputs)


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


def _window(op: GraphOp, in_hwc, out_hwc, k_h: int, k_w: int, *, dilation: bool) -> Window:
    """The window geometry with TFLM's output size and padding (ComputePaddingHeightWidth)."""
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
    return Window(*in_hwc, *out_hwc, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pads[0], pads[1])


def _weights(b: _Builder, op: GraphOp, t: GraphTensor, rows: np.ndarray, channel_axis: int, to_rows) -> PackedWeights:
    """`rows` (out_channels, n) int8, packed from the tensor's layout when that saves bytes.

    A layout the kernel cannot read (another axis, shape or values) is a CodegenError naming the tensor; one that
    would not save bytes leaves the rows as int8, with the reason in `fallback`."""
    layout = b.layouts.get(t.index)
    plain = PackedWeights(
        t.index, t.name, op.name, np.ascontiguousarray(rows, np.int8).reshape(-1), None, rows.shape[1], 8, rows.size
    )
    if layout is None:
        return plain
    where = f"the weight layout of {t.name!r} (tensor {t.index}, {op.name} op {op.index})"
    if layout.axis not in (None, channel_axis):
        raise CodegenError(
            f"{where} has one table per index along axis {layout.axis}; the native kernel reads one table per "
            f"output channel, along axis {channel_axis}: decide layouts with edgeclust.pipeline.layouts"
        )
    if layout.dtype != "int8" or tuple(layout.shape) != tuple(t.shape) or not np.array_equal(layout.decode(), t.data):
        raise CodegenError(
            f"{where} does not decode to the tensor's values ({layout.dtype} {list(layout.shape)} for "
            f"{t.dtype} {list(t.shape)}): the layouts were decided for another model"
        )
    if layout.bits >= 8:
        return dataclasses.replace(plain, layout=layout, fallback="8-bit indices save nothing over int8")
    packed = pack_rows(to_rows(layout.indices).astype(np.uint8), layout.bits)
    tables = layout.tables.astype(np.int8)
    if packed.nbytes + tables.size >= rows.size:
        return dataclasses.replace(
            plain,
            layout=layout,
            fallback=f"{layout.bits}-bit indices and tables ({packed.nbytes + tables.size} B) are no smaller than "
            f"int8 ({rows.size} B)",
        )
    data = np.frombuffer(packed.data, np.uint8)
    return PackedWeights(t.index, t.name, op.name, data, tables, packed.row_stride, layout.bits, rows.size, layout)


def _requant(
    b: _Builder,
    op: GraphOp,
    rows: np.ndarray,
    x: GraphTensor,
    w: GraphTensor,
    y: GraphTensor,
    *,
    channel_axis: int = 0,
    float_product: bool = False,
    acc_rows: np.ndarray | None = None,
) -> Requant:
    """Folded biases, multipliers/shifts (per channel, or once for a per-tensor filter) and the activation range.
    acc_rows: the weights the accumulators sum, where `rows` are not them (zeros: a bias left unfolded)."""
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
    bias_index = op.inputs[2] if len(op.inputs) > 2 else -1
    if bias_index >= 0:
        bt = b.tensor(bias_index)
        if bt.data is None or bt.dtype != "int32" or bt.size != out_c:
            raise _refuse(f"{op.name} bias {bt.name!r} ({bt.dtype}, {bt.size} values for {out_c} channels)")
        bias = bt.data.astype(np.int64).reshape(-1)
    folded = bias - xq.zero_point * rows.astype(np.int64).sum(axis=1)
    if folded.min(initial=0) < -(2**31) or folded.max(initial=0) > 2**31 - 1:
        raise CodegenError(f"{op.name} (op {op.index}): a folded bias leaves int32; the model's scales are broken")
    multipliers, shifts = [], []
    for scale in wq.scales:
        if float_product:  # TFLM GetQuantizedConvolutionMultipler: float product, then double
            real = float(np.float32(xq.scale) * np.float32(scale)) / float(yq.scale)
        else:  # TFLM PopulateConvolutionQuantizationParams and per-channel FC: all in double
            real = float(xq.scale) * float(scale) / float(yq.scale)
        m, s = fp.quantize_multiplier(real)
        multipliers.append(m)
        shifts.append(s)
    multipliers, shifts = _nonzero_multipliers(op, multipliers, shifts, folded, rows if acc_rows is None else acc_rows)
    act_min, act_max = fp.activation_range(op.options.get("fused_activation_function", "NONE"), yq.scale, yq.zero_point)
    return Requant(
        folded.astype(np.int32),
        np.array(multipliers, np.int32),
        np.array(shifts, np.int8),
        yq.zero_point,
        act_min,
        act_max,
    )


def _nonzero_multipliers(op: GraphOp, multipliers, shifts, folded, rows) -> tuple[list, list]:
    """A zero multiplier (a scale below 2^-32: every output is the zero point) as (2^30, -31), which gives 0 too
    for every accumulator but -2^31 and 2^31 - 1, so that the kernels can put bit 30 of every multiplier back
    (records.Requant.multiplier_words). Refused where an accumulator could reach those two values."""
    if min(multipliers) > 0:
        return multipliers, shifts
    w = np.abs(rows.astype(np.int64)).reshape(rows.shape[0], -1).sum(axis=1)  # rows: one per output channel
    bound = int(np.abs(folded).max(initial=0) + 255 * w.max(initial=0))  # |x + input offset| <= 255
    if bound > 2**31 - 2:
        raise _refuse(f"{op.name} with a requantization scale below 2^-32 and accumulators that may reach 2^31")
    zero = [i for i, m in enumerate(multipliers) if m == 0]
    multipliers, shifts = list(multipliers), list(shifts)
    for i in zero:
        multipliers[i], shifts[i] = 2**30, -31
    return multipliers, shifts


def _constant_filter(b: _Builder, op: GraphOp, index: int) -> GraphTensor:
    w = b.tensor(index)
    if w.data is None or w.dtype != "int8":
        raise _refuse(
            f"{op.name} with a {w.dtype} {'constant' if w.data is not None else 'run-time'} filter ({w.name!r})"
        )
    return w


# ---- one function per op: GraphOp -> step record (None: no kernel call) ----


def _conv(b: _Builder, op: GraphOp, pool: GraphOp | None) -> ConvStep:
    x, w = b.tensor(op.inputs[0]), _constant_filter(b, op, op.inputs[1])
    y = b.tensor(op.outputs[0])
    in_hwc, out_hwc = _dims4(x, "CONV_2D input"), _dims4(y, "CONV_2D output")
    if len(w.shape) != 4 or w.shape[0] != out_hwc[2] or w.shape[3] != in_hwc[2]:
        raise _refuse(f"CONV_2D filter {list(w.shape)} for input {list(x.shape)} (grouped convolution)")
    rows = w.data.reshape(w.shape[0], -1)
    window = _window(op, in_hwc, out_hwc, w.shape[1], w.shape[2], dilation=True)
    weights = _weights(b, op, w, rows, 0, lambda idx: idx.reshape(idx.shape[0], -1))
    requant = _requant(b, op, rows, x, w, y)
    fusion = None
    out_index = op.outputs[0]
    if pool is not None:
        p_out = b.tensor(pool.outputs[0])
        p_hwc = _dims4(p_out, "MAX_POOL_2D output")
        fh, fw = int(pool.options.get("filter_height", 1)), int(pool.options.get("filter_width", 1))
        pw = _window(pool, out_hwc, (p_hwc[0], p_hwc[1], out_hwc[2]), fh, fw, dilation=False)
        act_min, act_max = _activation_range(pool, p_out)
        fusion = PoolFusion(
            pool.index, fh, fw, pw.stride_h, pw.stride_w, pw.pad_h, pw.pad_w, p_hwc[0], p_hwc[1], act_min, act_max
        )
        out_index = pool.outputs[0]
    name = step_name(op)
    return ConvStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(out_index, name),
        weights=weights,
        requant=requant,
        window=window,
        input_zero_point=_quant(x, "input").zero_point,
        pool=fusion,
    )


def _depthwise(b: _Builder, op: GraphOp, _pool) -> DepthwiseStep:
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

    def to_rows(a: np.ndarray) -> np.ndarray:  # (1, kh, kw, oc) -> (oc, kh*kw)
        return np.ascontiguousarray(a.reshape(-1, a.shape[3]).T)

    rows = to_rows(w.data)
    name = step_name(op)
    return DepthwiseStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        weights=_weights(b, op, w, rows, 3, to_rows),
        requant=_requant(b, op, rows, x, w, y, channel_axis=3),
        window=_window(op, in_hwc, out_hwc, w.shape[1], w.shape[2], dilation=True),
        input_zero_point=_quant(x, "input").zero_point,
        depth_multiplier=multiplier,
    )


def _fully_connected(b: _Builder, op: GraphOp, _pool) -> FullyConnectedStep:
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
    per_tensor = len(_quant(w, "filter").scales) == 1
    name = step_name(op)
    weights, order = fc_row_groups(_weights(b, op, w, rows, 0, lambda idx: idx.reshape(out_n, in_n)), rows)
    return FullyConnectedStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        weights=weights,
        requant=_requant(b, op, rows, x, w, y, float_product=per_tensor),
        batches=x.size // in_n,
        in_n=in_n,
        out_n=out_n,
        order=order,
    )


# fc_row_groups: the weights a group must average for its pair table to pay (building one costs ~400
# instructions on a DSP core; each weight through it saves ~1.8)
FC_GROUP_MIN_WEIGHTS = 256


def fc_row_groups(weights: PackedWeights, rows: np.ndarray) -> tuple[PackedWeights, np.ndarray | None]:
    """4-bit fully connected rows with a table per channel, re-indexed so that rows share tables in groups.

    Per-channel int8 quantisation gives each row its own 16 values, but rows with the same scale have the same
    ones, and the values of several rows fit one table of 16: rows are put in groups (first fit, rows with the
    most values first) whose values fit one table; each row's table (still one per row on flash, same stride)
    becomes its group's, its indices re-packed into it. The DSP kernel (ec_kernels.c ec_fc_4bit) then builds one
    256-entry pair table (one byte of two indices -> the int16 pair SMLAD takes) per group instead of looking
    each weight up. Returns the weights and the order (uint16, rows by group, bit 15 on each group's first
    row), or the weights unchanged and None where that does not apply or groups would average fewer than
    FC_GROUP_MIN_WEIGHTS weights (or one row). A group holds as many values as the widest row's table (the
    table stride, so the flash stays the same but for the order). The values each row decodes to are the same."""
    out_n, n = rows.shape
    if weights.table is None or weights.bits != 4 or not weights.per_channel or not 2 <= out_n < 1 << 15:
        return weights, None
    entries = int(weights.table.shape[1])  # the table stride stays: a group holds as many values as one row's table
    if n % 2:
        return weights, None
    values = [np.unique(r) for r in rows]
    groups: list[set[int]] = []
    member = np.zeros(out_n, np.int64)
    for r in sorted(range(out_n), key=lambda r: (-len(values[r]), r)):
        row_values = set(values[r].tolist())
        for g, group in enumerate(groups):
            if len(group | row_values) <= entries:
                group |= row_values
                member[r] = g
                break
        else:
            member[r] = len(groups)
            groups.append(row_values)
    if len(groups) * FC_GROUP_MIN_WEIGHTS > out_n * n or len(groups) == out_n:
        return weights, None
    tables = np.zeros((len(groups), entries), np.int8)
    for g, group in enumerate(groups):
        ordered = sorted(group)
        tables[g, : len(ordered)] = ordered
        tables[g, len(ordered) :] = ordered[-1]
    indices = np.empty((out_n, n), np.uint8)
    for r in range(out_n):
        used = len(groups[member[r]])
        indices[r] = np.searchsorted(tables[member[r], :used], rows[r])
    table = tables[member]
    if not np.array_equal(np.take_along_axis(table, indices.astype(np.int64), axis=1), rows):
        raise CodegenError(f"the row groups of {weights.name!r} do not decode to its values")  # a bug, not the model
    packed = pack_rows(indices, weights.bits)
    if packed.row_stride != weights.row_stride:
        return weights, None
    order = np.argsort(member, kind="stable").astype(np.uint16)
    first = np.ones(out_n, bool)
    first[1:] = member[order[1:]] != member[order[:-1]]
    order[first] |= 0x8000
    regrouped = dataclasses.replace(weights, data=np.frombuffer(packed.data, np.uint8), table=table)
    return regrouped, order


def _pool_op(b: _Builder, op: GraphOp, _pool) -> PoolStep:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    in_hwc, out_hwc = _dims4(x, f"{op.name} input"), _dims4(y, f"{op.name} output")
    if in_hwc[2] != out_hwc[2]:
        raise CodegenError(f"{op.name} (op {op.index}) changes the channel count; convert the model again")
    xq, yq = _quant(x, "input"), _quant(y, "output")
    if xq.scale != yq.scale or xq.zero_point != yq.zero_point:
        raise _refuse(f"{op.name} with different input and output quantization")
    fh, fw = int(op.options.get("filter_height", 1)), int(op.options.get("filter_width", 1))
    window = _window(op, in_hwc, out_hwc, fh, fw, dilation=False)
    act_min, act_max = _activation_range(op, y)
    name = step_name(op)
    return PoolStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        window=window,
        act_min=act_min,
        act_max=act_max,
        average=op.name == "AVERAGE_POOL_2D",
    )


def _mean(b: _Builder, op: GraphOp, _pool) -> MeanStep:
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
    name = step_name(op)
    return MeanStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        spatial=h * w,
        channels=c,
        input_zero_point=xq.zero_point,
        output_zero_point=yq.zero_point,
        multiplier=multiplier,
        shift=shift,
    )


def _add(b: _Builder, op: GraphOp, _pool) -> AddStep:
    x1, x2, y = b.tensor(op.inputs[0]), b.tensor(op.inputs[1]), b.tensor(op.outputs[0])
    if x1.shape != x2.shape or x1.size != y.size or x1.is_constant or x2.is_constant:
        raise _refuse(f"ADD with broadcasting or a constant operand ({list(x1.shape)} + {list(x2.shape)})")
    q1, q2, qy = _quant(x1, "input"), _quant(x2, "input"), _quant(y, "output")
    params = fp.add_params(q1.scale, q2.scale, qy.scale)
    act_min, act_max = _activation_range(op, y)
    name = step_name(op)
    return AddStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0], op.inputs[1]),
        outputs=b.writes(op.outputs[0], name),
        size=y.size,
        input1_offset=-q1.zero_point,
        input2_offset=-q2.zero_point,
        output_offset=qy.zero_point,
        act_min=act_min,
        act_max=act_max,
        **params,
    )


def _softmax(b: _Builder, op: GraphOp, _pool) -> SoftmaxStep:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    xq, yq = _quant(x, "input"), _quant(y, "output")
    if yq.zero_point != -128 or np.float32(yq.scale) != np.float32(1 / 256):
        raise _refuse("SOFTMAX with an output other than scale 1/256, zero point -128")
    if x.size != y.size or not x.shape:
        raise CodegenError(f"SOFTMAX (op {op.index}) input and output differ in size; convert the model again")
    depth = x.shape[-1]
    multiplier, shift, diff_min = fp.softmax_params(fp.f32(op.options.get("beta", 1.0)), xq.scale)
    name = step_name(op)
    return SoftmaxStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        outer=x.size // depth,
        depth=depth,
        input_multiplier=multiplier,
        input_left_shift=shift,
        diff_min=diff_min,
    )


def _quantize(b: _Builder, op: GraphOp, _pool) -> QuantizeStep:
    return _float_edge(b, op, QuantizeStep, b.tensor(op.outputs[0]), "output")


def _dequantize(b: _Builder, op: GraphOp, _pool) -> DequantizeStep:
    return _float_edge(b, op, DequantizeStep, b.tensor(op.inputs[0]), "input")


def _float_edge(b: _Builder, op: GraphOp, record, int8_side: GraphTensor, role: str):
    """A float/int8 conversion: size, scale and zero point of its int8 tensor."""
    q = _quant(int8_side, role)
    name = step_name(op)
    return record(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        size=int8_side.size,
        scale=float(np.float32(q.scale)),
        zero_point=q.zero_point,
    )


def _reshape(b: _Builder, op: GraphOp, _pool) -> None:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    if x.size != y.size:
        raise CodegenError(
            f"RESHAPE (op {op.index}) from {list(x.shape)} to {list(y.shape)} changes the size; convert the model again"
        )
    b.alias[op.outputs[0]] = b.root(op.inputs[0])


# op name -> its lowering function (GraphOp -> step record); emit_c.EMITTERS maps each record type to C
LOWERINGS = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "MAX_POOL_2D": _pool_op,
    "AVERAGE_POOL_2D": _pool_op,
    "MEAN": movement.lower_mean,  # H and W of 4-D: _mean above; other axes: ec_mean_nd
    "ADD": _add,
    "SOFTMAX": _softmax,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "RESHAPE": _reshape,
    "STRIDED_SLICE": movement.lower_strided_slice,  # on data; one feeding a RESHAPE's shape is folded away
    **movement.LOWERINGS,
}
LOWERINGS.update(elementwise.LOWERINGS)  # ADD (broadcast, constants), SUB, MUL, unary ops as tables
LOWERINGS.update(reduce.LOWERINGS)  # REDUCE_MAX

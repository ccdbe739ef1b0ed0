"""Elementwise int8 ops for the native backend: ADD, SUB and MUL with TFLite's broadcasting and constant operands,
and the unary ops (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6) as 256-entry lookup tables.

A unary int8 op has only 256 possible inputs, so its table is TFLM's own integer arithmetic run here over every
one of them (gemmlowp's fixed point, TFLM's Prepare parameters): the kernel is a table lookup and the result is
TFLM's bit for bit. Binary ops keep TFLM's per-element arithmetic (reference_integer_ops::Mul,
reference_ops::Add / Sub and their Broadcast*Slow forms) with generation-time parameters.

Records, lowering functions (`LOWERINGS`, entered in lowering.LOWERINGS) and emitters (`EMITTERS`, entered in
emit_c.EMITTERS) live here; the kernels in firmware_templates/runtime/native/ec_elementwise.c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeclust.backends.native import fixed_point as fp
from edgeclust.backends.native.records import FlashArray, Step
from edgeclust.backends.native.refusals import activation_range, refuse, step_name
from edgeclust.errors import CodegenError

UNARY_OPS = ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "RELU", "RELU6")
BINARY_OPS = ("ADD", "SUB", "MUL")
SUPPORTED_OPS = ("SUB", "MUL", *UNARY_OPS)
MIN_INPUTS = {"SUB": 2, "MUL": 2}
MAX_INPUTS = {"SUB": 2, "MUL": 2}
BINARY_CODES = {"ADD": 0, "SUB": 1, "MUL": 2}  # EC_BINARY_ADD, EC_BINARY_SUB, EC_BINARY_MUL in ec_elementwise.h
MAX_DIMS = 4

# ---- records ----


@dataclass(frozen=True, eq=False)
class LutStep(Step):
    """A unary int8 op as a 256-entry table: output[i] = table[(uint8_t)input[i]]."""

    KERNEL: ClassVar[str] = "ec_lut"

    op_name: str
    size: int
    table: np.ndarray  # int8, indexed by the input's bits as uint8

    @property
    def what(self) -> str:
        return f"{self.op_name} (op {self.op_index}), a table of TFLM's integer results for all 256 inputs"

    def arrays(self) -> tuple[FlashArray, ...]:
        return (FlashArray(f"{self.name}_table", self.table, "tables"),)


@dataclass(frozen=True, eq=False)
class BinaryStep(Step):
    """ADD, SUB or MUL over up to 4-D int8 tensors with broadcasting; `constant` holds a constant operand
    (input `constant_input`, 1 or 2) on flash, and the step then reads one buffer."""

    op_name: str
    dims: tuple[int, ...]  # the output's shape, padded on the left to 4-D
    strides1: tuple[int, ...]  # element strides of input 1 along the output's dims (0: broadcast)
    strides2: tuple[int, ...]
    input1_offset: int
    input2_offset: int
    output_offset: int
    input1_multiplier: int
    input2_multiplier: int
    output_multiplier: int
    input1_shift: int
    input2_shift: int
    output_shift: int
    left_shift: int
    act_min: int
    act_max: int
    constant_input: int = 0
    constant: np.ndarray | None = None

    @property
    def kernel(self) -> str:
        return "ec_binary_const" if self.constant is not None else "ec_binary"

    @property
    def what(self) -> str:
        const = f", input {self.constant_input} constant" if self.constant is not None else ""
        return f"{self.op_name} (op {self.op_index}{const})"

    def arrays(self) -> tuple[FlashArray, ...]:
        if self.constant is None:
            return ()
        return (FlashArray(f"{self.name}_constant", self.constant, "weights"),)


def _int8_values() -> np.ndarray:
    return np.arange(-128, 128)


def _table(values: dict[int, int]) -> np.ndarray:
    """int8 table indexed by the input's bits as uint8."""
    table = np.zeros(256, np.int8)
    for v, out in values.items():
        table[v & 0xFF] = max(-128, min(127, out))
    return table


def logistic_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """TFLM CalculateArithmeticOpDataLogistic + reference_integer_ops::Logistic for every int8 input."""
    multiplier, shift, radius = _sigmoid_params(input_scale, "LOGISTIC")
    out = {}
    for v in _int8_values().tolist():
        x = v - input_zero_point
        if x <= -radius:
            out[v] = -128
        elif x >= radius:
            out[v] = 127
        else:
            q0 = fp.gemmlowp_logistic(fp.mbqm(x, multiplier, shift), 4)
            out[v] = fp.rdbpot(q0, 31 - 8) - 128
    return _table(out)


def tanh_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """TFLM tanh CalculateArithmeticOpData + reference_integer_ops::Tanh for every int8 input."""
    multiplier, shift, radius = _sigmoid_params(input_scale, "TANH")
    out = {}
    for v in _int8_values().tolist():
        x = v - input_zero_point
        if x <= -radius:
            out[v] = -128
        elif x >= radius:
            out[v] = 127
        else:
            out[v] = fp.rdbpot(fp.gemmlowp_tanh(fp.mbqm(x, multiplier, shift), 4), 31 - 7)
    return _table(out)


def _sigmoid_params(input_scale: float, op: str) -> tuple[int, int, int]:
    """input_multiplier, input_left_shift, input_range_radius (kInputIntegerBits 4), as TFLM's Prepare."""
    multiplier, shift = fp.frexp_multiplier(float(input_scale) * float(1 << 27))
    if not 0 <= shift <= 30 or multiplier >= 2**31:
        raise refuse(f"{op} with input scale {float(input_scale):g} (TFLM's input shift {shift} is out of range)")
    radius = math.floor(1.0 * 15 * (1 << 27) / (1 << shift))
    return multiplier, shift, radius


def hard_swish_table(input_scale, input_zero_point: int, output_scale, output_zero_point: int) -> np.ndarray:
    """TFLM HardSwishPrepare + reference_ops::HardSwish<int8_t> for every int8 input."""
    f = np.float32
    hires_input_scale = f(f(1.0 / 128.0) * f(input_scale))
    reluish_scale = f(3.0 / 32768.0)
    out_m32, out_exp = fp.quantize_multiplier(float(f(hires_input_scale / f(output_scale))))
    rel_m32, rel_exp = fp.quantize_multiplier(float(f(hires_input_scale / reluish_scale)))
    if out_exp > 0:
        raise refuse("HARD_SWISH whose output multiplier is above one (TFLM refuses it too)")
    if not -31 <= rel_exp <= 31 or out_exp < -31:
        raise refuse("HARD_SWISH with scales whose shifts are out of TFLM's range")
    out_m16, rel_m16 = fp.downscale16(out_m32), fp.downscale16(rel_m32)
    out = {}
    for v in _int8_values().tolist():
        hires = fp.wrap16((v - input_zero_point) * 128)
        preshift = fp.srdhm16(hires, out_m16)
        reluish = hires
        if rel_exp > 0:
            reluish = fp.sat_left_shift16(reluish, rel_exp - 1)
        reluish = fp.srdhm16(reluish, rel_m16)
        if rel_exp > 0:
            reluish = fp.sat_left_shift16(reluish, 1)
        if rel_exp < 0:
            reluish = fp.rdbpot16(reluish, -rel_exp)
        reluish = fp.wrap16((reluish + (1 << 15)) >> 1)
        value = fp.rdbpot16(fp.sdhm16(reluish, preshift), -out_exp)
        out[v] = fp.wrap16(value + output_zero_point)
    return _table(out)


def leaky_relu_table(input_scale, input_zero_point: int, output_scale, output_zero_point: int, alpha) -> np.ndarray:
    """TFLM CalculateOpDataLeakyRelu + reference_ops::QuantizeLeakyRelu for every int8 input."""
    f = np.float32
    alpha_m, alpha_s = fp.quantize_multiplier(float(f(f(f(input_scale) * f(alpha)) / f(output_scale))))
    id_m, id_s = fp.quantize_multiplier(float(f(f(input_scale) / f(output_scale))))
    if alpha_m == fp.I32_MIN:
        raise refuse("LEAKY_RELU with alpha multiplier -2^31")
    out = {}
    for v in _int8_values().tolist():
        x = v - input_zero_point
        if x >= 0:
            out[v] = output_zero_point + fp.mbqm(x, id_m, id_s)
        else:
            scaled = fp.mbqm(x, abs(alpha_m), alpha_s)
            out[v] = output_zero_point + (-scaled if alpha_m < 0 else scaled)
    return _table(out)


def relu_table(input_scale, input_zero_point: int, output_scale, output_zero_point: int) -> np.ndarray:
    """TFLM CalculateReluOpData + ReluQuantized<int8_t> for every int8 input."""
    f = np.float32
    m, s = fp.quantize_multiplier(float(f(f(input_scale) / f(output_scale))))
    act_min = max(-128, output_zero_point)
    out = {}
    for v in _int8_values().tolist():
        out[v] = min(127, max(act_min, output_zero_point + fp.mbqm(v - input_zero_point, m, s)))
    return _table(out)


def relu6_table(input_scale, input_zero_point: int) -> np.ndarray:
    """TFLM Relu6Prepare + Relu6Quantized<int8_t>: clamp to [zero point, quantized 6] on the input's scale."""
    f = np.float32
    six = int(fp.tflite_round(float(f(f(6.0) / f(input_scale))))) + input_zero_point
    six = min(127, max(-128, six))
    lower, upper = _wrap8(input_zero_point), _wrap8(six)
    out = {v: upper if v > upper else lower if v < lower else v for v in _int8_values().tolist()}
    return _table(out)


def _wrap8(x: int) -> int:
    return ((x + 128) % 256) - 128


# ---- lowering: GraphOp -> record ----


def _quant(t, what: str):
    if t.quant is None or t.dtype != "int8":
        raise refuse(f"{what} tensor {t.name!r} that is not int8 with a scale ({t.dtype})")
    if t.quant.per_channel:
        raise refuse(f"{what} tensor {t.name!r} with per-channel quantization")
    return t.quant


def lower_unary(b, op, _pool) -> LutStep:
    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    if x.size != y.size:
        raise CodegenError(f"{op.name} (op {op.index}) input and output differ in size; convert the model again")
    xq, yq = _quant(x, f"{op.name} input"), _quant(y, f"{op.name} output")
    if op.name == "LOGISTIC":
        if yq.zero_point != -128:
            raise refuse("LOGISTIC with an output zero point other than -128 (TFLM refuses it too)")
        table = logistic_table(xq.scale, xq.zero_point)
    elif op.name == "TANH":
        table = tanh_table(xq.scale, xq.zero_point)
    elif op.name == "HARD_SWISH":
        table = hard_swish_table(xq.scale, xq.zero_point, yq.scale, yq.zero_point)
    elif op.name == "LEAKY_RELU":
        table = leaky_relu_table(xq.scale, xq.zero_point, yq.scale, yq.zero_point, op.options.get("alpha", 0.2))
    elif op.name == "RELU":
        table = relu_table(xq.scale, xq.zero_point, yq.scale, yq.zero_point)
    elif op.name == "RELU6":
        table = relu6_table(xq.scale, xq.zero_point)
    else:
        raise refuse(f"op {op.name}")
    name = step_name(op)
    return LutStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        op_name=op.name,
        size=y.size,
        table=table,
    )


def _padded(shape) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    return (1,) * (MAX_DIMS - len(shape)) + shape


def _strides(shape: tuple[int, ...], out: tuple[int, ...], op) -> tuple[int, ...]:
    """Element strides of an operand of `shape` along the output's dims (0 where it broadcasts)."""
    strides, step = [0] * MAX_DIMS, 1
    for axis in reversed(range(MAX_DIMS)):
        if shape[axis] == out[axis]:
            strides[axis] = step if shape[axis] > 1 else 0
        elif shape[axis] != 1:
            raise refuse(f"{op.name} (op {op.index}) broadcasting {list(shape)} to {list(out)}")
        step *= shape[axis]
    return tuple(strides)


def _binary_params(op, q1, q2, qy) -> dict:
    """TFLM's Prepare for int8 ADD (CalculateOpDataAdd), SUB (CalculateOpDataSub, in float) and MUL."""
    zero = {"input1_multiplier": 0, "input2_multiplier": 0, "input1_shift": 0, "input2_shift": 0, "left_shift": 0}
    if op.name == "ADD":
        return fp.add_params(q1.scale, q2.scale, qy.scale)
    if op.name == "MUL":
        m, s = fp.quantize_multiplier(float(q1.scale) * float(q2.scale) / float(qy.scale))
        return {**zero, "output_multiplier": m, "output_shift": s}
    f = np.float32
    left_shift = 20
    twice_max = f(2 * max(f(q1.scale), f(q2.scale)))
    values = {"left_shift": left_shift}
    for name, real in (
        ("input1", f(f(q1.scale) / twice_max)),
        ("input2", f(f(q2.scale) / twice_max)),
        ("output", f(twice_max / f((1 << left_shift) * f(qy.scale)))),
    ):
        if not 0 < float(real) < 1:
            raise refuse(f"SUB whose {name} scale ratio {float(real):g} is outside TFLM's range")
        values[f"{name}_multiplier"], values[f"{name}_shift"] = fp.quantize_multiplier(float(real))
    return values


def lower_binary(b, op, _pool) -> BinaryStep:

    x1, x2, y = b.tensor(op.inputs[0]), b.tensor(op.inputs[1]), b.tensor(op.outputs[0])
    for t in (x1, x2, y):
        if len(t.shape) > MAX_DIMS:
            raise refuse(f"{op.name} on a {len(t.shape)}-D tensor (up to {MAX_DIMS}-D is supported)")
    q1, q2, qy = _quant(x1, f"{op.name} input"), _quant(x2, f"{op.name} input"), _quant(y, f"{op.name} output")
    if x1.is_constant and x2.is_constant:
        raise refuse(f"{op.name} of two constants (op {op.index}); convert the model again")
    out = _padded(y.shape)
    s1, s2 = _padded(x1.shape), _padded(x2.shape)
    if s1 == s2:  # TFLM's elementwise path (ProcessBroadcastShapes: the extended shapes are equal)
        if s1 != out:
            raise CodegenError(f"{op.name} (op {op.index}) output {list(y.shape)} for inputs {list(x1.shape)}")
        strides1 = strides2 = _strides(out, out, op)
    else:
        strides1, strides2 = _strides(s1, out, op), _strides(s2, out, op)
        if any(max(a, c) != o for a, c, o in zip(s1, s2, out)):
            raise CodegenError(f"{op.name} (op {op.index}) output {list(y.shape)} is not the broadcast shape")
    params = _binary_params(op, q1, q2, qy)
    act_min, act_max = activation_range(op, y)
    constant_input, constant = 0, None
    data_inputs = []
    for position, (index, t) in enumerate(((op.inputs[0], x1), (op.inputs[1], x2)), 1):
        if t.is_constant:
            if t.data is None or t.dtype != "int8":
                raise refuse(f"{op.name} with a {t.dtype} constant operand ({t.name!r})")
            constant_input, constant = position, np.ascontiguousarray(t.data, np.int8).reshape(-1)
        else:
            data_inputs.append(index)
    name = step_name(op)
    return BinaryStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(*data_inputs),
        outputs=b.writes(op.outputs[0], name),
        op_name=op.name,
        dims=out,
        strides1=strides1,
        strides2=strides2,
        input1_offset=-q1.zero_point,
        input2_offset=-q2.zero_point,
        output_offset=qy.zero_point,
        act_min=act_min,
        act_max=act_max,
        constant_input=constant_input,
        constant=constant,
        **params,
    )


def lower_add(b, op, pool):
    """ADD of two same-shape run-time tensors keeps lowering's AddStep (it runs in place); any other ADD
    (broadcast, constant operand) is a BinaryStep."""
    from edgeclust.backends.native import lowering

    x1, x2 = b.tensor(op.inputs[0]), b.tensor(op.inputs[1])
    if x1.shape == x2.shape and not x1.is_constant and not x2.is_constant:
        return lowering._add(b, op, pool)
    return lower_binary(b, op, pool)


LOWERINGS = {"ADD": lower_add, "SUB": lower_binary, "MUL": lower_binary, **dict.fromkeys(UNARY_OPS, lower_unary)}


# ---- emitters: record -> [(params C type, name, fields)] ----


def _emit_lut(step: LutStep):
    return [("ec_lut_params", step.name, [("size", str(step.size)), ("table", f"{step.name}_table")])]


def _emit_binary(step: BinaryStep):
    numbers = (
        "input1_offset input2_offset output_offset input1_multiplier input2_multiplier output_multiplier "
        "input1_shift input2_shift output_shift left_shift act_min act_max"
    ).split()
    fields = [
        ("op", f"EC_BINARY_{step.op_name}"),
        ("constant_input", str(step.constant_input)),
        ("constant", f"{step.name}_constant" if step.constant is not None else "NULL"),
        ("dims", "{" + ", ".join(str(int(v)) for v in step.dims) + "}"),
        ("strides1", "{" + ", ".join(str(int(v)) for v in step.strides1) + "}"),
        ("strides2", "{" + ", ".join(str(int(v)) for v in step.strides2) + "}"),
    ] + [(n, str(int(getattr(step, n)))) for n in numbers]
    return [("ec_binary_params", step.name, fields)]


EMITTERS = {LutStep: _emit_lut, BinaryStep: _emit_binary}

"""TFLM's generation-time arithmetic in Python: QuantizeMultiplier, activation ranges, softmax scaling, and the
int32/int16 fixed point of gemmlowp and TFLM's reference kernels (the unary ops' tables run it over every input).

Each function reproduces the TFLM function it names, in double (and float32 where TFLM uses float), so the
multipliers and shifts written into the C match what the TFLM interpreter computes in its Prepare.
"""

from __future__ import annotations

import math

import numpy as np

from edgeclust.errors import CodegenError


def tflite_round(x: float) -> float:
    """std::round: half away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(multiplier: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier: (q31 significand, shift) with multiplier = q * 2^(shift - 31)."""
    if multiplier == 0.0:
        return 0, 0
    if not math.isfinite(multiplier):
        raise CodegenError(f"a requantization scale is {multiplier}; convert the model again (its scales are broken)")
    q, shift = math.frexp(multiplier)
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if q_fixed > 2**31 - 1 or q_fixed < -(2**31) or shift > 30:
        raise CodegenError(f"a requantization scale of {multiplier:g} is out of TFLM's range; check the model's scales")
    return q_fixed, shift


def f32(x) -> float:
    return float(np.float32(x))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for int8: RELU / RELU6 / RELU_N1_TO_1 / NONE."""

    def quantize(value: float) -> int:  # TFLM Quantize(): TfLiteRound(f / scale) in float
        return zero_point + int(tflite_round(f32(np.float32(value) / np.float32(scale))))

    if activation == "NONE":
        return -128, 127
    if activation == "RELU":
        return max(-128, quantize(0.0)), 127
    if activation == "RELU6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(-128, quantize(-1.0)), min(127, quantize(1.0))
    raise CodegenError(f"fused activation {activation} is not supported by the native backend; use --backend tflm")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLM CalculateSoftmaxParams for int8: (input_multiplier, input_left_shift, diff_min).

    PreprocessSoftmaxScaling calls QuantizeMultiplierGreaterThanOne, whose TFLITE_CHECK_GT(multiplier, 1.)
    aborts TFLM on a real multiplier <= 1: refused here under exactly that condition.
    """
    integer_bits = 5
    real = min(float(beta) * float(input_scale) * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    if not real > 1.0:
        raise CodegenError(
            f"this softmax cannot run on TFLM or native: its int8 input scale {float(input_scale):.3g} gives the "
            f"multiplier beta * scale * 2^26 = {real:.3g}, and TFLM needs more than 1 "
            "(QuantizeMultiplierGreaterThanOne); the logits reaching it are (nearly) constant: train the model, "
            "or calibrate on data that spreads them"
        )
    multiplier, shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return multiplier, shift, int(-1.0 * radius)


def add_params(scale1: float, scale2: float, output_scale: float) -> dict:
    """TFLM CalculateOpDataAdd for int8: left shift 20 and the three multipliers (smaller than one)."""
    left_shift = 20
    twice_max = 2 * float(max(np.float32(scale1), np.float32(scale2)))
    values = {"left_shift": left_shift}
    for name, real in (
        ("input1", float(scale1) / twice_max),
        ("input2", float(scale2) / twice_max),
        ("output", twice_max / ((1 << left_shift) * float(output_scale))),
    ):
        multiplier, shift = quantize_multiplier(real)
        if not 0 < real < 1 or shift > 0:
            raise CodegenError(f"ADD {name} scale ratio {real:g} is outside TFLM's range; use --backend tflm")
        values[f"{name}_multiplier"], values[f"{name}_shift"] = multiplier, shift
    return values


def mean_params(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """TFLM QuantizedMeanOrSum: QuantizeMultiplier(in/out) with 1/count folded in by its shift rule."""
    multiplier, shift = quantize_multiplier(float(input_scale) / float(output_scale))
    extra = min(count.bit_length() - 1, 32, 31 + shift)  # 63 - CountLeadingZeros(count), clamped as TFLM does
    if extra < 0:
        raise CodegenError("MEAN scale ratio is outside TFLM's range; use --backend tflm")
    return int((multiplier << extra) // count), shift - extra


I32_MIN, I32_MAX = -(2**31), 2**31 - 1


# ---- gemmlowp's and TFLM's integer arithmetic (exact: Python ints, int32/int16 wrap-around where C has it) ----


def wrap32(x: int) -> int:
    return ((x + 2**31) % 2**32) - 2**31


def wrap16(x: int) -> int:
    return ((x + 2**15) % 2**16) - 2**15


def tdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, int32."""
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return wrap32(tdiv(ab + nudge, 1 << 31))


def rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT, int32."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def sat_pot(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent>, int32."""
    if exponent > 0:
        threshold = (1 << (31 - exponent)) - 1
        if x > threshold:
            return I32_MAX
        if x < -threshold:
            return I32_MIN
        return wrap32(x << exponent)
    if exponent < 0:
        return rdbpot(x, -exponent)
    return x


def mbqm(x: int, multiplier: int, shift: int) -> int:
    """TFLM MultiplyByQuantizedMultiplier (double rounding)."""
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(wrap32(x * (1 << left)), multiplier), right)


def exp_quarter(a: int) -> int:
    """gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl (Q0.31)."""
    constant_term, one_third = 1895147668, 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp exp_on_negative_values for FixedPoint<int32, integer_bits>; Q0.31 out."""
    fractional = 31 - integer_bits
    one_quarter = 1 << (fractional - 2)
    a_mod = wrap32((a & (one_quarter - 1)) - one_quarter)
    result = exp_quarter(sat_pot(a_mod, integer_bits))
    remainder = wrap32(a_mod - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional + exponent)):
            result = srdhm(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    return I32_MAX if a == 0 else result


def rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    return tdiv(s + (1 if s >= 0 else -1), 2)


def newton_reciprocal(a: int) -> int:
    """The Newton-Raphson loop shared by gemmlowp's one_over_one_plus_x and one_minus_x_over_one_plus_x (F2)."""
    half_denominator = rounding_half_sum(a, I32_MAX)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + sat_pot(srdhm(x, one_minus), 2))
    return x


def gemmlowp_logistic(a: int, integer_bits: int = 4) -> int:
    """gemmlowp::logistic(FixedPoint<int32, integer_bits>) -> Q0.31."""
    if a == 0:
        return 1 << 30
    magnitude = a if a > 0 else wrap32(-a)
    positive = sat_pot(newton_reciprocal(exp_on_negative_values(wrap32(-magnitude), integer_bits)), 1)
    return positive if a > 0 else wrap32(I32_MAX - positive)


def gemmlowp_tanh(a: int, integer_bits: int = 4) -> int:
    """gemmlowp::tanh(FixedPoint<int32, integer_bits>) -> Q0.31."""
    if a == 0:
        return 0
    n = a if a < 0 else wrap32(-a)
    t = sat_pot(wrap32(newton_reciprocal(exp_on_negative_values(n, integer_bits + 1)) - (1 << 29)), 2)
    return wrap32(-t) if a < 0 else t


def srdhm16(a: int, b: int) -> int:
    if a == b == -(2**15):
        return 2**15 - 1
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return wrap16(tdiv(ab + nudge, 1 << 15))


def sdhm16(a: int, b: int) -> int:
    """TFLM reference_ops SaturatingDoublingHighMul (int16, truncating)."""
    if a == b == -(2**15):
        return 2**15 - 1
    return wrap16(tdiv(a * b, 1 << 15))


def rdbpot16(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT<int16_t>: mask and threshold are int16 too."""
    mask = wrap16((1 << exponent) - 1)
    remainder = wrap16(x & mask)
    threshold = wrap16((mask >> 1) + (1 if x < 0 else 0))
    return wrap16((x >> exponent) + (1 if remainder > threshold else 0))


def sat_left_shift16(x: int, amount: int) -> int:
    return min(max(x * (1 << amount), -(2**15)), 2**15 - 1)


def frexp_multiplier(real: float) -> tuple[int, int]:
    """TFLM's logistic/tanh Prepare: frexp, then TfLiteRound(q * 2^31) as int32 (no halving at 2^31)."""
    q, shift = math.frexp(real)
    multiplier = int(tflite_round(q * (1 << 31)))
    return multiplier, shift


def downscale16(multiplier: int) -> int:
    """TFLM DownScaleInt32ToInt16Multiplier."""
    if multiplier >= I32_MAX - (1 << 15):
        return 2**15 - 1
    return (multiplier + (1 << 15)) >> 16

"""TFLM's generation-time arithmetic in Python: QuantizeMultiplier, activation ranges, softmax scaling.

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

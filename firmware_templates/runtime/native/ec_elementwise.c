/* edgeclust native runtime: elementwise int8 kernels, bit-identical to TFLM's reference kernels. */
#include "ec_kernels.h"

#include <stddef.h>

/* LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6: TFLM reference_integer_ops::Logistic / Tanh,
 * reference_ops::HardSwish<int8_t> / QuantizeLeakyRelu, ReluQuantized / Relu6Quantized, each evaluated by the
 * generator on all 256 int8 inputs (the same integer arithmetic), so one lookup per element. */
void ec_lut(const ec_lut_params *p, const int8_t *input, int8_t *output) {
  const int8_t *table = p->table;
  for (uint32_t i = 0; i < p->size; ++i) output[i] = table[(uint8_t)input[i]];
}

/* gemmlowp SaturatingRoundingDoublingHighMul and RoundingDivideByPOT (as in ec_kernels.c). */
static inline int32_t ew_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t ew_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM MultiplyByQuantizedMultiplier (double rounding); int32 wrap-around where TFLM's C++ wraps. */
static inline int32_t ew_mbqm(int32_t x, int32_t multiplier, int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  return ew_rdbpot(ew_srdhm((int32_t)((uint32_t)x << left_shift), multiplier), right_shift);
}

/* One output element. MUL: reference_integer_ops::MulElementwise / BroadcastMul6DSlow. ADD: reference_integer_ops
 * AddElementwise / BroadcastAdd4DSlow. SUB: reference_ops::SubElementwise / BroadcastQuantSubSlow. */
static inline int8_t ew_one(const ec_binary_params *p, int32_t a, int32_t b) {
  int32_t v;
  a += p->input1_offset;
  b += p->input2_offset;
  if (p->op == EC_BINARY_MUL) {
    v = ew_mbqm(a * b, p->output_multiplier, p->output_shift);
  } else {
    const int32_t sa = ew_mbqm((int32_t)((uint32_t)a << p->left_shift), p->input1_multiplier, p->input1_shift);
    const int32_t sb = ew_mbqm((int32_t)((uint32_t)b << p->left_shift), p->input2_multiplier, p->input2_shift);
    const int32_t raw = p->op == EC_BINARY_SUB ? (int32_t)((uint32_t)sa - (uint32_t)sb)
                                               : (int32_t)((uint32_t)sa + (uint32_t)sb);
    v = ew_mbqm(raw, p->output_multiplier, p->output_shift);
  }
  v = (int32_t)((uint32_t)v + (uint32_t)p->output_offset);
  if (v < p->act_min) v = p->act_min;
  if (v > p->act_max) v = p->act_max;
  return (int8_t)v;
}

void ec_binary(const ec_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
  const uint32_t *d = p->dims, *s1 = p->strides1, *s2 = p->strides2;
  for (uint32_t i0 = 0; i0 < d[0]; ++i0) {
    for (uint32_t i1 = 0; i1 < d[1]; ++i1) {
      for (uint32_t i2 = 0; i2 < d[2]; ++i2) {
        const int8_t *a = input1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2];
        const int8_t *b = input2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
        for (uint32_t i3 = 0; i3 < d[3]; ++i3) {
          *output++ = ew_one(p, a[i3 * s1[3]], b[i3 * s2[3]]);
        }
      }
    }
  }
}

void ec_binary_const(const ec_binary_params *p, const int8_t *input, int8_t *output) {
  if (p->constant_input == 1) {
    ec_binary(p, p->constant, input, output);
  } else {
    ec_binary(p, input, p->constant, output);
  }
}

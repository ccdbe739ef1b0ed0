/* edgeclust native runtime: int8 kernels, bit-identical to TFLM's reference kernels (see ec_kernels.h). */
#include "ec_kernels.h"

#include <math.h>
#include <stddef.h>

/* 1: 4-bit rows accumulate per-index input sums, then multiply once per table entry (see ec_stream_dot). */
#ifndef EC_BUCKET_SUMS
#define EC_BUCKET_SUMS 0
#endif

#define EC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- fixed-point helpers (gemmlowp semantics, as TFLM's kernels/internal/common.h uses them) ---- */

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturating INT32_MIN * INT32_MIN. */
static inline int32_t ec_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (exponent 0..31). */
static inline int32_t ec_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* a + b and a * b with int32 wrap-around: TFLM's int32 accumulators wrap on every target it runs on, and a
 * hostile model must not make the C undefined (the host oracle runs under UBSan in the fuzz tests). */
static inline int32_t ec_add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t ec_mul_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }

/* x * 2^shift with int32 wrap-around, as TFLM's `x * (1 << left_shift)` behaves on every target. */
static inline int32_t ec_shl(int32_t x, int shift) { return (int32_t)((uint32_t)x << shift); }

/* TFLM MultiplyByQuantizedMultiplier (double rounding; TFLITE_SINGLE_ROUNDING is off in TFLM builds). */
int32_t ec_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  return ec_rdbpot(ec_srdhm(ec_shl(x, left_shift), multiplier), right_shift);
}

static inline int8_t ec_requantize(const ec_requant *q, int32_t acc, uint32_t channel) {
  int32_t v = ec_multiply_by_quantized_multiplier(acc, q->multiplier[channel], q->shift[channel]);
  v = ec_add_wrap(v, q->output_zero_point);
  v = EC_MAX(v, q->act_min);
  v = EC_MIN(v, q->act_max);
  return (int8_t)v;
}

/* ---- weight streams: one output channel's row, decoded as the loops walk it ---- */

typedef struct {
  const uint8_t *p;  /* next byte of the row */
  const int8_t *table;
  uint32_t buffer;   /* bits read but not yet used, lowest first */
  uint32_t count;    /* how many bits `buffer` holds */
  uint32_t bits, mask;
} ec_stream;

static inline void ec_stream_open(ec_stream *s, const ec_weights *w, uint32_t row) {
  s->p = w->data + (size_t)row * w->row_stride;
  s->table = w->table == NULL ? NULL : w->table + (size_t)row * w->table_stride;
  s->buffer = 0;
  s->count = 0;
  s->bits = w->bits;
  s->mask = (1u << w->bits) - 1u;
}

/* The next weight of the row. */
static inline int32_t ec_stream_next(ec_stream *s) {
  if (s->table == NULL) return (int8_t)*s->p++;
  if (s->count < s->bits) {
    s->buffer |= (uint32_t)(*s->p++) << s->count;
    s->count += 8;
  }
  const uint32_t index = s->buffer & s->mask;
  s->buffer >>= s->bits;
  s->count -= s->bits;
  return s->table[index];
}

/* sum(w[i] * x[i]) over the next n weights of the row. */
static inline int32_t ec_stream_dot(ec_stream *s, const int8_t *x, uint32_t n) {
  uint32_t acc = 0; /* wraps like TFLM's int32 accumulator */
  if (s->table == NULL) {
    const int8_t *w = (const int8_t *)s->p;
    for (uint32_t i = 0; i < n; ++i) acc += (uint32_t)((int32_t)w[i] * x[i]);
    s->p += n;
    return (int32_t)acc;
  }
  const int8_t *table = s->table;
  const uint32_t bits = s->bits, mask = s->mask;
  uint32_t buffer = s->buffer, count = s->count;
  const uint8_t *p = s->p;
  if (count == 0 && bits == 4) {
    /* Byte-aligned 4-bit indices: two weights per byte, no bit buffer. */
    const uint32_t pairs = n / 2;
#if EC_BUCKET_SUMS
    /* Bucket sums: add the inputs that share an index, then one multiply per table entry (exact). */
    int32_t bucket[16] = {0};
    for (uint32_t i = 0; i < pairs; ++i) {
      const uint32_t b = *p++;
      bucket[b & 15u] = ec_add_wrap(bucket[b & 15u], x[0]);
      bucket[b >> 4] = ec_add_wrap(bucket[b >> 4], x[1]);
      x += 2;
    }
    for (uint32_t k = 0; k < 16; ++k) acc += (uint32_t)table[k] * (uint32_t)bucket[k];
#else
    for (uint32_t i = 0; i < pairs; ++i) {
      const uint32_t b = *p++;
      acc += (uint32_t)((int32_t)table[b & 15u] * x[0] + (int32_t)table[b >> 4] * x[1]);
      x += 2;
    }
#endif
    n -= 2 * pairs;
  } else if (count == 0 && bits == 3) {
    /* Byte-aligned 3-bit indices: eight weights in every three bytes. */
    const uint32_t groups = n / 8;
    for (uint32_t i = 0; i < groups; ++i) {
      const uint32_t w = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
      p += 3;
      for (uint32_t j = 0; j < 8; ++j) acc += (uint32_t)((int32_t)table[(w >> (3 * j)) & 7u] * x[j]);
      x += 8;
    }
    n -= 8 * groups;
  } else if (count == 0 && bits == 2) {
    const uint32_t quads = n / 4;
    for (uint32_t i = 0; i < quads; ++i) {
      const uint32_t b = *p++;
      acc += (uint32_t)((int32_t)table[b & 3u] * x[0] + (int32_t)table[(b >> 2) & 3u] * x[1] +
                        (int32_t)table[(b >> 4) & 3u] * x[2] + (int32_t)table[b >> 6] * x[3]);
      x += 4;
    }
    n -= 4 * quads;
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (count < bits) {
      buffer |= (uint32_t)(*p++) << count;
      count += 8;
    }
    acc += (uint32_t)((int32_t)table[buffer & mask] * x[i]);
    buffer >>= bits;
    count -= bits;
  }
  s->buffer = buffer;
  s->count = count;
  s->p = p;
  return (int32_t)acc;
}

/* sum(w[i]) over the next n weights (the part of a window that lies in the padding). */
static inline int32_t ec_stream_sum(ec_stream *s, uint32_t n) {
  int32_t acc = 0;
  for (uint32_t i = 0; i < n; ++i) acc = ec_add_wrap(acc, ec_stream_next(s));
  return acc;
}

/* ---- CONV_2D (TFLM reference_integer_ops::ConvPerChannel), optionally with a fused MAX_POOL_2D ---- */

/* One conv output value before requantization: the accumulator of output (oy, ox, oc). */
static int32_t ec_conv_acc(const ec_conv_params *p, const int8_t *input, int oy, int ox, uint32_t oc) {
  const ec_window *w = &p->win;
  ec_stream s;
  ec_stream_open(&s, &p->w, oc);
  int32_t acc = p->q.bias[oc];
  const int in_y0 = oy * w->stride_h - w->pad_h;
  const int in_x0 = ox * w->stride_w - w->pad_w;
  for (int ky = 0; ky < w->k_h; ++ky) {
    const int iy = in_y0 + ky * w->dil_h;
    for (int kx = 0; kx < w->k_w; ++kx) {
      const int ix = in_x0 + kx * w->dil_w;
      if (iy >= 0 && iy < w->in_h && ix >= 0 && ix < w->in_w) {
        acc = ec_add_wrap(acc, ec_stream_dot(&s, input + ((size_t)iy * w->in_w + (size_t)ix) * w->in_c, w->in_c));
      } else {
        acc = ec_add_wrap(acc, ec_mul_wrap(ec_stream_sum(&s, w->in_c), p->input_zero_point));
      }
    }
  }
  return acc;
}

void ec_conv(const ec_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const ec_pool_fusion *pool = p->pool;
  if (pool == NULL) {
    int8_t *out = output;
    for (int oy = 0; oy < w->out_h; ++oy) {
      for (int ox = 0; ox < w->out_w; ++ox) {
        for (uint32_t oc = 0; oc < w->out_c; ++oc) {
          *out++ = ec_requantize(&p->q, ec_conv_acc(p, input, oy, ox, oc), oc);
        }
      }
    }
    return;
  }
  /* MAX_POOL_2D over the conv's output (TFLM reference_integer_ops::MaxPool), computed value by value. */
  int8_t *out = output;
  for (int py = 0; py < pool->out_h; ++py) {
    const int y0 = py * pool->stride_h - pool->pad_h;
    const int y_start = EC_MAX(0, y0), y_end = EC_MIN((int)w->out_h, y0 + pool->k_h);
    for (int px = 0; px < pool->out_w; ++px) {
      const int x0 = px * pool->stride_w - pool->pad_w;
      const int x_start = EC_MAX(0, x0), x_end = EC_MIN((int)w->out_w, x0 + pool->k_w);
      for (uint32_t oc = 0; oc < w->out_c; ++oc) {
        int32_t best = -128;
        for (int oy = y_start; oy < y_end; ++oy) {
          for (int ox = x_start; ox < x_end; ++ox) {
            const int32_t v = ec_requantize(&p->q, ec_conv_acc(p, input, oy, ox, oc), oc);
            best = EC_MAX(best, v);
          }
        }
        best = EC_MAX(best, pool->act_min);
        best = EC_MIN(best, pool->act_max);
        *out++ = (int8_t)best;
      }
    }
  }
}

/* ---- DEPTHWISE_CONV_2D (TFLM reference_integer_ops::DepthwiseConvPerChannel) ---- */

void ec_depthwise_conv(const ec_depthwise_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  int8_t *out = output;
  for (int oy = 0; oy < w->out_h; ++oy) {
    const int in_y0 = oy * w->stride_h - w->pad_h;
    for (int ox = 0; ox < w->out_w; ++ox) {
      const int in_x0 = ox * w->stride_w - w->pad_w;
      for (uint32_t oc = 0; oc < w->out_c; ++oc) {
        const uint32_t ic = oc / p->depth_multiplier;
        ec_stream s;
        ec_stream_open(&s, &p->w, oc);
        int32_t acc = p->q.bias[oc];
        for (int ky = 0; ky < w->k_h; ++ky) {
          const int iy = in_y0 + ky * w->dil_h;
          for (int kx = 0; kx < w->k_w; ++kx) {
            const int ix = in_x0 + kx * w->dil_w;
            const int32_t weight = ec_stream_next(&s);
            if (iy >= 0 && iy < w->in_h && ix >= 0 && ix < w->in_w) {
              acc = ec_add_wrap(acc, weight * input[((size_t)iy * w->in_w + (size_t)ix) * w->in_c + ic]);
            } else {
              acc = ec_add_wrap(acc, weight * p->input_zero_point);
            }
          }
        }
        *out++ = ec_requantize(&p->q, acc, oc);
      }
    }
  }
}

/* ---- FULLY_CONNECTED (TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel) ---- */

void ec_fully_connected(const ec_fc_params *p, const int8_t *input, int8_t *output) {
  for (uint32_t b = 0; b < p->batches; ++b) {
    const int8_t *x = input + (size_t)b * p->in_n;
    int8_t *out = output + (size_t)b * p->out_n;
    for (uint32_t oc = 0; oc < p->out_n; ++oc) {
      ec_stream s;
      ec_stream_open(&s, &p->w, oc);
      out[oc] = ec_requantize(&p->q, ec_add_wrap(p->q.bias[oc], ec_stream_dot(&s, x, p->in_n)), oc);
    }
  }
}

/* ---- MAX_POOL_2D and AVERAGE_POOL_2D (TFLM reference_integer_ops::MaxPool / AveragePool) ---- */

static void ec_pool(const ec_pool_params *p, const int8_t *input, int8_t *output, int average) {
  const ec_window *w = &p->win;
  int8_t *out = output;
  for (int oy = 0; oy < w->out_h; ++oy) {
    const int y0 = oy * w->stride_h - w->pad_h;
    const int y_start = EC_MAX(0, y0), y_end = EC_MIN((int)w->in_h, y0 + w->k_h);
    for (int ox = 0; ox < w->out_w; ++ox) {
      const int x0 = ox * w->stride_w - w->pad_w;
      const int x_start = EC_MAX(0, x0), x_end = EC_MIN((int)w->in_w, x0 + w->k_w);
      for (uint32_t c = 0; c < w->in_c; ++c) {
        int32_t acc = average ? 0 : -128;
        int32_t count = 0;
        for (int y = y_start; y < y_end; ++y) {
          for (int x = x_start; x < x_end; ++x) {
            const int32_t v = input[((size_t)y * w->in_w + (size_t)x) * w->in_c + c];
            acc = average ? ec_add_wrap(acc, v) : EC_MAX(acc, v);
            ++count;
          }
        }
        if (average && count > 0) {
          /* round half away from zero, as TFLM's AveragePool */
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        }
        acc = EC_MAX(acc, p->act_min);
        acc = EC_MIN(acc, p->act_max);
        *out++ = (int8_t)acc;
      }
    }
  }
}

void ec_max_pool(const ec_pool_params *p, const int8_t *input, int8_t *output) { ec_pool(p, input, output, 0); }

void ec_average_pool(const ec_pool_params *p, const int8_t *input, int8_t *output) {
  ec_pool(p, input, output, 1);
}

/* ---- MEAN over H and W (TFLM reduce_common.cc QuantizedMeanOrSum) ---- */

void ec_mean_hw(const ec_mean_params *p, const int8_t *input, int8_t *output) {
  for (uint32_t c = 0; c < p->channels; ++c) {
    int32_t sum = 0;
    for (uint32_t i = 0; i < p->spatial; ++i) sum = ec_add_wrap(sum, input[(size_t)i * p->channels + c]);
    const int32_t shifted = ec_add_wrap(sum, ec_mul_wrap(-p->input_zero_point, (int32_t)p->spatial));
    int32_t v = ec_multiply_by_quantized_multiplier(shifted, p->multiplier, p->shift) + p->output_zero_point;
    v = EC_MAX(v, -128);
    v = EC_MIN(v, 127);
    output[c] = (int8_t)v;
  }
}

/* ---- ADD of two same-shape tensors (TFLM reference_integer_ops::AddFunc) ---- */

void ec_add(const ec_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
  for (uint32_t i = 0; i < p->size; ++i) {
    const int32_t a = ec_shl(p->input1_offset + input1[i], p->left_shift);
    const int32_t b = ec_shl(p->input2_offset + input2[i], p->left_shift);
    const int32_t sa = ec_multiply_by_quantized_multiplier(a, p->input1_multiplier, p->input1_shift);
    const int32_t sb = ec_multiply_by_quantized_multiplier(b, p->input2_multiplier, p->input2_shift);
    int32_t v = ec_multiply_by_quantized_multiplier(sa + sb, p->output_multiplier, p->output_shift) +
                p->output_offset;
    v = EC_MAX(v, p->act_min);
    v = EC_MIN(v, p->act_max);
    output[i] = (int8_t)v;
  }
}

/* ---- SOFTMAX int8 -> int8 (TFLM reference_ops::Softmax, gemmlowp fixed point) ---- */

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0. */
static inline int32_t ec_sat_shl(int32_t x, int exponent) {
  const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return ec_shl(x, exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl). */
static int32_t ec_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668;    /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883; /* 1/3 */
  const int32_t x = a + (1 << 28);             /* a + 1/8 */
  const int32_t x2 = ec_srdhm(x, x);
  const int32_t x3 = ec_srdhm(x2, x);
  const int32_t x4 = ec_srdhm(x2, x2);
  const int32_t x4_over_4 = ec_rdbpot(x4, 2);
  const int32_t poly = ec_rdbpot(ec_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
  return constant_term + ec_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0, a in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values). */
static int32_t ec_exp_on_negative_values(int32_t a) {
  const int32_t one_quarter = 1 << 24;
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
  int32_t result = ec_exp_quarter(ec_sat_shl(a_mod_quarter_minus_one_quarter, 5));
  const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int k = 0; k < 7; ++k) { /* exp(-2^(k-2)) for each set bit of the remainder */
    if (remainder & (1 << (24 + k))) result = ec_srdhm(result, multipliers[k]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), Q0.31 (gemmlowp one_over_one_plus_x_for_x_in_0_1, Newton-Raphson). */
static int32_t ec_one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
  const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
  int32_t x = constant_48_over_17 + ec_srdhm(half_denominator, constant_neg_32_over_17);
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = ec_srdhm(half_denominator, x);
    const int32_t one_minus = (1 << 29) - half_denominator_times_x;
    x = x + ec_sat_shl(ec_srdhm(x, one_minus), 2);
  }
  return ec_sat_shl(x, 1);
}

static inline int ec_count_leading_zeros(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

void ec_softmax(const ec_softmax_params *p, const int8_t *input, int8_t *output) {
  for (uint32_t i = 0; i < p->outer; ++i) {
    const int8_t *x = input + (size_t)i * p->depth;
    int8_t *y = output + (size_t)i * p->depth;
    int32_t max_in_row = -128;
    for (uint32_t c = 0; c < p->depth; ++c) max_in_row = EC_MAX(max_in_row, x[c]);
    int32_t sum_of_exps = 0; /* Q12.19 */
    for (uint32_t c = 0; c < p->depth; ++c) {
      const int32_t diff = x[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t scaled = ec_multiply_by_quantized_multiplier(diff, p->input_multiplier, p->input_left_shift);
        sum_of_exps = ec_add_wrap(sum_of_exps, ec_rdbpot(ec_exp_on_negative_values(scaled), 12));
      }
    }
    /* TFLM GetReciprocal(sum_of_exps, 12). The sum is positive for any real model (the row's maximum adds
     * 1.0); a wrapped one (TFLM would abort at its exponent check) is pinned so no shift is out of range. */
    if (sum_of_exps <= 0) sum_of_exps = INT32_MAX;
    const int headroom_plus_one = ec_count_leading_zeros((uint32_t)sum_of_exps);
    const int num_bits_over_unit = 12 - headroom_plus_one;
    const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (1u << 31));
    const int32_t shifted_scale = ec_one_over_one_plus_x(shifted_sum_minus_one);
    const int exponent = EC_MIN(EC_MAX(num_bits_over_unit + 31 - 8, 0), 31);
    for (uint32_t c = 0; c < p->depth; ++c) {
      const int32_t diff = x[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t scaled = ec_multiply_by_quantized_multiplier(diff, p->input_multiplier, p->input_left_shift);
        const int32_t exp_in_0 = ec_exp_on_negative_values(scaled);
        int32_t v = ec_rdbpot(ec_srdhm(shifted_scale, exp_in_0), exponent) - 128;
        v = EC_MAX(v, -128);
        v = EC_MIN(v, 127);
        y[c] = (int8_t)v;
      } else {
        y[c] = -128;
      }
    }
  }
}

/* ---- QUANTIZE float -> int8 and DEQUANTIZE int8 -> float at the model's edges ---- */

void ec_quantize(const ec_quantize_params *p, const float *input, int8_t *output) {
  for (uint32_t i = 0; i < p->size; ++i) { /* TFLM reference_ops::AffineQuantize */
    int32_t v = (int32_t)roundf(input[i] / p->scale) + p->zero_point;
    v = EC_MAX(v, -128);
    v = EC_MIN(v, 127);
    output[i] = (int8_t)v;
  }
}

void ec_dequantize(const ec_dequantize_params *p, const int8_t *input, float *output) {
  for (uint32_t i = 0; i < p->size; ++i) { /* TFLM reference_ops::Dequantize */
    output[i] = (float)(p->scale * (double)((int32_t)input[i] - p->zero_point));
  }
}

/* edgeclust native runtime: int8 kernels, bit-identical to TFLM's reference kernels (see ec_kernels.h). */
#include "ec_kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* 1: 4-bit rows accumulate per-index input sums, then multiply once per table entry (see ec_stream_dot). */
#ifndef EC_BUCKET_SUMS
#define EC_BUCKET_SUMS 0
#endif

#define EC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- fixed-point helpers (gemmlowp semantics, as TFLM's kernels/internal/common.h uses them) ---- */

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturating INT32_MIN * INT32_MIN.
 * gemmlowp adds 2^30 (1 - 2^30 below zero) and divides truncating toward zero; both cases are the same as
 * adding 2^30 and shifting right arithmetically, one SMULL, one 64-bit add and a shift on Cortex-M. */
static inline int32_t ec_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
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
static inline int32_t ec_mbqm(int32_t x, int32_t multiplier, int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  return ec_rdbpot(ec_srdhm(ec_shl(x, left_shift), multiplier), right_shift);
}

int32_t ec_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  return ec_mbqm(x, multiplier, shift);
}

/* TFLM MultiplyByQuantizedMultiplier where shift < 0 (a right shift r = -shift in 1..31, so no left shift) and
 * multiplier >= 0 (QuantizeMultiplier's are), in one 64-bit sum and one shift. SaturatingRoundingDoublingHighMul
 * cannot saturate (multiplier != INT32_MIN) and is y = floor((p + 2^30) / 2^31), p = x * multiplier;
 * RoundingDivideByPOT is floor((y + c) / 2^r) with c = 2^(r-1), less one where y < 0; and for integers
 * floor((floor(a / 2^31) + c) / 2^r) = floor((a + c * 2^31) / 2^(31 + r)). y < 0 implies x < 0, and where x < 0
 * but y = 0 both c give 0, so the sign of x chooses c. `round` is ec_round_right(r). Checked against ec_mbqm
 * on 1.7e8 (x, multiplier) pairs for every r, with ties and the int32 edges. */
static inline int64_t ec_round_right(int r) { return ((int64_t)1 << 30) + ((int64_t)1 << (30 + r)); }
static inline int ec_right_form(int32_t multiplier, int shift) { return multiplier >= 0 && shift < 0 && shift >= -31; }
static inline int32_t ec_mbqm_right(int32_t x, int32_t multiplier, int r, int64_t round) {
  const int64_t v = (int64_t)x * multiplier + round + (int64_t)(x >> 31) * ((int64_t)1 << 31);
  return (int32_t)(v >> 32) >> (r - 1);
}

/* One output channel's requantization read once, for loops that requantize many outputs of the channel. */
typedef struct {
  int64_t round; /* ec_round_right(-shift) where `right` */
  int32_t multiplier, shift, zero_point, act_min, act_max, right;
  int32_t fast;    /* ec_rq_fast applies: right form with r = -shift in 2..23, activation range [-128, 127] */
  int32_t high;    /* its high word: 2^(r-2) + zero_point * 2^(r-1) */
} ec_rq;

static inline void ec_rq_load(ec_rq *r, const ec_requant *q, uint32_t channel) {
  const uint32_t i = channel * q->channel_stride;
  r->multiplier = ec_requant_multiplier(q, i);
  r->shift = ec_requant_shift(q, i);
  r->right = ec_right_form(r->multiplier, r->shift);
  r->round = r->right ? ec_round_right(-r->shift) : 0;
  r->zero_point = q->output_zero_point;
  r->act_min = q->act_min;
  r->act_max = q->act_max;
  r->fast = r->right && r->shift <= -2 && r->shift >= -23 && r->zero_point >= -128 && r->zero_point <= 127 &&
            r->act_min == -128 && r->act_max == 127;
  r->high = r->fast ? (int32_t)(1u << (-r->shift - 2)) + r->zero_point * (int32_t)(1u << (-r->shift - 1)) : 0;
}

/* ec_requantize with the channel's numbers from ec_rq_load. */
static inline int8_t ec_rq_apply(const ec_rq *r, int32_t acc) {
  int32_t v = r->right ? ec_mbqm_right(acc, r->multiplier, -r->shift, r->round) : ec_mbqm(acc, r->multiplier, r->shift);
  v = ec_add_wrap(v, r->zero_point);
  v = EC_MAX(v, r->act_min);
  v = EC_MIN(v, r->act_max);
  return (int8_t)v;
}

static inline int8_t ec_requantize(const ec_requant *q, int32_t acc, uint32_t channel) {
  const uint32_t i = channel * q->channel_stride;
  int32_t v = ec_mbqm(acc, ec_requant_multiplier(q, i), ec_requant_shift(q, i));
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

/* ---- fast paths: rows decoded once, register-blocked dot products (DSP: dual 16-bit MACs) ---- */

/* Cores with the DSP extension (Cortex-M4, M7, M33, M55) multiply two int16 pairs and accumulate in one
 * instruction (SMLAD) on operands widened by SXTB16; the plain C below computes the same sums elsewhere. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define EC_DSP 1
#else
#define EC_DSP 0
#endif

/* Cortex-M55 (Helium, MVE): the dot products and the decode of packed rows take sixteen int8 lanes a step. */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define EC_MVE 1
#else
#define EC_MVE 0
#endif

/* ec_rq_apply where r->fast: ec_mbqm_right plus the zero point (2 <= r <= 23), saturated to int8. ec_mbqm_right's
 * 64-bit sum x * multiplier + round + (x < 0 ? -2^31 : 0) has the low word 2^30 | (x & 2^31) and the high word
 * 2^(r-2) + (x >> 31) (-2^31 borrows one from the high word, which the bit 2^31 in the low word gives back modulo
 * 2^32); adding zero_point * 2^(r-1) to the high word before the final shift adds zero_point to the result exactly
 * (|high| < 2^31 for these r). One SMLAL, an AND/ORR, an ADD, a shift and an SSAT on Cortex-M4. */
static inline int8_t ec_rq_fast(const ec_rq *r, int32_t x) {
  const uint32_t lo = 0x40000000u | ((uint32_t)x & 0x80000000u);
  const uint32_t hi = (uint32_t)r->high + (uint32_t)(x >> 31);
  const int64_t v = (int64_t)(((uint64_t)hi << 32) | lo) + (int64_t)x * r->multiplier;
  const int32_t y = (int32_t)(v >> 32) >> (-r->shift - 1);
#if EC_DSP
  return (int8_t)__ssat(y, 8);
#else
  return (int8_t)EC_MIN(EC_MAX(y, -128), 127);
#endif
}

/* Decoded weights, widened inputs and tables the fast paths hold: two rows of EC_ROW_SCRATCH bytes each (or
 * EC_ROW_SCRATCH int16 values), set per kernel call by ec_use_scratch; the generator sizes each kernel's from
 * what its paths need (plan.py scratch_row_bytes). A path that does not fit falls back to a slower one. */
static int16_t *ec_row_scratch;
static uint32_t ec_row_scratch_bytes;

void ec_use_scratch(void *scratch, uint32_t row_bytes) {
  ec_row_scratch = (int16_t *)scratch;
  ec_row_scratch_bytes = scratch != NULL ? row_bytes : 0u;
}

#define EC_ROW_SCRATCH ec_row_scratch_bytes
#define EC_ROW(i) ((int8_t *)ec_row_scratch + (size_t)(i) * EC_ROW_SCRATCH)

#if EC_MVE
/* ec_row's 4-bit decode, sixteen weights a step: eight packed bytes widened to 16-bit lanes, their low and high
 * nibbles narrowed into the even and odd byte lanes (the bitstream's order), then one gather load (VLDRB with
 * offsets) from the table. Returns how many weights it decoded (a multiple of 16). */
static inline uint32_t ec_mve_decode4(const uint8_t *p, const int8_t *table, int8_t *dst, uint32_t n) {
  uint32_t i = 0;
  for (; i + 16u <= n; i += 16u, p += 8) {
    const uint16x8_t b = vldrbq_u16(p);
    uint8x16_t idx = vdupq_n_u8(0);
    idx = vmovnbq_u16(idx, vandq_u16(b, vdupq_n_u16(15)));
    idx = vmovntq_u16(idx, vshrq_n_u16(b, 4));
    vst1q_s8(dst + i, vldrbq_gather_offset_s8(table, idx));
  }
  return i;
}
#endif

/* Eight `bits`-bit indices (3, 5, 6 or 7: eight of them fill `bits` whole bytes, lowest bits first) decoded
 * through `table` into dst[0..7]: the bytes gathered into one 64-bit word, each index a constant shift of it
 * (the macro keeps `bits` a constant in each caller, so the shifts and masks are immediates). */
#define EC_DECODE8(p, bits, table, dst)                                                  \
  do {                                                                                   \
    uint64_t v_ = 0;                                                                     \
    for (uint32_t j_ = 0; j_ < (bits); ++j_) v_ |= (uint64_t)(p)[j_] << (8u * j_);       \
    const uint32_t lo_ = (uint32_t)v_;                                                    \
    const uint32_t m_ = (1u << (bits)) - 1u;                                              \
    (dst)[0] = (table)[lo_ & m_];                                                         \
    (dst)[1] = (table)[(lo_ >> (bits)) & m_];                                             \
    (dst)[2] = (table)[(uint32_t)(v_ >> (2u * (bits))) & m_];                             \
    (dst)[3] = (table)[(uint32_t)(v_ >> (3u * (bits))) & m_];                             \
    (dst)[4] = (table)[(uint32_t)(v_ >> (4u * (bits))) & m_];                             \
    (dst)[5] = (table)[(uint32_t)(v_ >> (5u * (bits))) & m_];                             \
    (dst)[6] = (table)[(uint32_t)(v_ >> (6u * (bits))) & m_];                             \
    (dst)[7] = (table)[(uint32_t)(v_ >> (7u * (bits))) & m_];                             \
  } while (0)

/* The weights of `row`, n of them, as int8: the flash row itself when it is plain int8, else decoded into dst. */
static const int8_t *ec_row(const ec_weights *w, uint32_t row, int8_t *dst, uint32_t n) {
  const uint8_t *p = w->data + (size_t)row * w->row_stride;
  if (w->table == NULL) return (const int8_t *)p;
  const int8_t *table = w->table + (size_t)row * w->table_stride;
  uint32_t i = 0;
  if (w->bits == 4) {
#if EC_MVE
    i = ec_mve_decode4(p, table, dst, n);
    p += i / 2u;
#endif
    for (; i + 2 <= n; i += 2) {
      const uint32_t b = *p++;
      dst[i] = table[b & 15u];
      dst[i + 1] = table[b >> 4];
    }
  } else if (w->bits == 2) {
    for (; i + 4 <= n; i += 4) {
      const uint32_t b = *p++;
      dst[i] = table[b & 3u];
      dst[i + 1] = table[(b >> 2) & 3u];
      dst[i + 2] = table[(b >> 4) & 3u];
      dst[i + 3] = table[b >> 6];
    }
  } else if (w->bits == 8) {
    for (; i < n; ++i) dst[i] = table[p[i]];
    return dst;
  } else if (w->bits == 3) {
    for (; i + 8 <= n; i += 8, p += 3) EC_DECODE8(p, 3u, table, dst + i);
  } else if (w->bits == 5) {
    for (; i + 8 <= n; i += 8, p += 5) EC_DECODE8(p, 5u, table, dst + i);
  } else if (w->bits == 6) {
    for (; i + 8 <= n; i += 8, p += 6) EC_DECODE8(p, 6u, table, dst + i);
  } else if (w->bits == 7) {
    for (; i + 8 <= n; i += 8, p += 7) EC_DECODE8(p, 7u, table, dst + i);
  }
  /* the rest (1-bit rows, and the tail of a row): a bitstream from bit i * bits of the row */
  if (i < n) {
    ec_stream s;
    ec_stream_open(&s, w, row);
    s.p = w->data + (size_t)row * w->row_stride + (size_t)i * w->bits / 8u;
    for (; i < n; ++i) dst[i] = (int8_t)ec_stream_next(&s);
  }
  return dst;
}

/* The weights of `row` in dst, decoded or copied: the blocked loops find both rows at a fixed distance. */
static inline const int8_t *ec_row_copy(const ec_weights *w, uint32_t row, int8_t *dst, uint32_t n) {
  const int8_t *r = ec_row(w, row, dst, n);
  if (r != dst) memcpy(dst, r, n);
  return dst;
}

static inline uint32_t ec_load32(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4); /* one unaligned LDR on ARMv7-M and later */
  return v;
}

#if EC_DSP
/* Four int8 as two int16 pairs, [x0, x2] and [x1, x3]; weights widened the same way pair up lane by lane. */
/* SXTB16 with its ROR #8 operand (GCC 12 does not fold a rotate into the intrinsic). */
static inline int16x2_t ec_sxtb16_ror8(uint32_t v) {
  int16x2_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
#define EC_WIDEN(v, lo, hi)      \
  do {                           \
    lo = __sxtb16(v);            \
    hi = ec_sxtb16_ror8(v);      \
  } while (0)

/* [lo, hi] as the int16 pair SMLAD takes (PKHBT; lo sign-extended from int8 keeps its low half). */
static inline int16x2_t ec_pkhbt(int32_t lo, int32_t hi) {
  int16x2_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
  return r;
}
#endif

#if EC_MVE
/* The dot products on Cortex-M55: VMLADAVA multiplies sixteen int8 lanes and adds the products into a 32-bit
 * scalar (wrapping, as TFLM's int32 accumulators do); the tail's loads are predicated (VCTP), lanes past n read
 * as zero and add nothing. CMSIS-NN's MVE kernels use the same instruction (arm_nn_mat_mult_nt_t_s8). */
static inline void ec_mve_dot_2x2(const int8_t *xa, const int8_t *xb, const int8_t *w0, const int8_t *w1, uint32_t n,
                                  int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (; n >= 16; n -= 16, xa += 16, xb += 16, w0 += 16, w1 += 16) {
    const int8x16_t va = vld1q_s8(xa), vb = vld1q_s8(xb), u = vld1q_s8(w0), v = vld1q_s8(w1);
    a0 = vmladavaq_s8(a0, va, u);
    a1 = vmladavaq_s8(a1, va, v);
    a2 = vmladavaq_s8(a2, vb, u);
    a3 = vmladavaq_s8(a3, vb, v);
  }
  if (n > 0) {
    const mve_pred16_t p = vctp8q(n);
    const int8x16_t va = vldrbq_z_s8(xa, p), vb = vldrbq_z_s8(xb, p);
    const int8x16_t u = vldrbq_z_s8(w0, p), v = vldrbq_z_s8(w1, p);
    a0 = vmladavaq_s8(a0, va, u);
    a1 = vmladavaq_s8(a1, va, v);
    a2 = vmladavaq_s8(a2, vb, u);
    a3 = vmladavaq_s8(a3, vb, v);
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

static inline void ec_mve_dot_1x2(const int8_t *x, const int8_t *w0, const int8_t *w1, uint32_t n, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1];
  for (; n >= 16; n -= 16, x += 16, w0 += 16, w1 += 16) {
    const int8x16_t vx = vld1q_s8(x);
    a0 = vmladavaq_s8(a0, vx, vld1q_s8(w0));
    a1 = vmladavaq_s8(a1, vx, vld1q_s8(w1));
  }
  if (n > 0) {
    const mve_pred16_t p = vctp8q(n);
    const int8x16_t vx = vldrbq_z_s8(x, p);
    a0 = vmladavaq_s8(a0, vx, vldrbq_z_s8(w0, p));
    a1 = vmladavaq_s8(a1, vx, vldrbq_z_s8(w1, p));
  }
  acc[0] = a0, acc[1] = a1;
}
#endif

/* acc[0..3] += (xa . w0, xa . w1, xb . w0, xb . w1) over n values: two pixels times two output channels, so
 * each weight and each input loaded serves two products (the register blocking of CMSIS-NN's
 * arm_nn_mat_mult_kernel_s8_s16). Sums wrap as TFLM's int32 accumulators do. */
static inline void ec_dot_2x2(const int8_t *xa, const int8_t *xb, const int8_t *w0, const int8_t *w1, uint32_t n,
                              int32_t *acc) {
#if EC_MVE
  ec_mve_dot_2x2(xa, xb, w0, w1, n, acc);
  return;
#endif
  uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1], a2 = (uint32_t)acc[2], a3 = (uint32_t)acc[3];
#if EC_DSP
  for (; n >= 4; n -= 4) {
    int16x2_t a_lo, a_hi, b_lo, b_hi, w_lo, w_hi;
    const uint32_t va = ec_load32(xa), vb = ec_load32(xb);
    xa += 4, xb += 4;
    EC_WIDEN(va, a_lo, a_hi);
    EC_WIDEN(vb, b_lo, b_hi);
    const uint32_t v0 = ec_load32(w0);
    w0 += 4;
    EC_WIDEN(v0, w_lo, w_hi);
    a0 = (uint32_t)__smlad(a_hi, w_hi, (int32_t)__smlad(a_lo, w_lo, (int32_t)a0));
    a2 = (uint32_t)__smlad(b_hi, w_hi, (int32_t)__smlad(b_lo, w_lo, (int32_t)a2));
    const uint32_t v1 = ec_load32(w1);
    w1 += 4;
    EC_WIDEN(v1, w_lo, w_hi);
    a1 = (uint32_t)__smlad(a_hi, w_hi, (int32_t)__smlad(a_lo, w_lo, (int32_t)a1));
    a3 = (uint32_t)__smlad(b_hi, w_hi, (int32_t)__smlad(b_lo, w_lo, (int32_t)a3));
  }
#else
  for (; n >= 2; n -= 2) {
    const int32_t xa0 = xa[0], xa1 = xa[1], xb0 = xb[0], xb1 = xb[1];
    const int32_t w00 = w0[0], w01 = w0[1], w10 = w1[0], w11 = w1[1];
    xa += 2, xb += 2, w0 += 2, w1 += 2;
    a0 += (uint32_t)(xa0 * w00) + (uint32_t)(xa1 * w01);
    a1 += (uint32_t)(xa0 * w10) + (uint32_t)(xa1 * w11);
    a2 += (uint32_t)(xb0 * w00) + (uint32_t)(xb1 * w01);
    a3 += (uint32_t)(xb0 * w10) + (uint32_t)(xb1 * w11);
  }
#endif
  for (; n > 0; --n) {
    const int32_t x0 = *xa++, x1 = *xb++, u = *w0++, v = *w1++;
    a0 += (uint32_t)(x0 * u);
    a1 += (uint32_t)(x0 * v);
    a2 += (uint32_t)(x1 * u);
    a3 += (uint32_t)(x1 * v);
  }
  acc[0] = (int32_t)a0, acc[1] = (int32_t)a1, acc[2] = (int32_t)a2, acc[3] = (int32_t)a3;
}

/* ec_dot_2x2 with the second row d bytes after the first (both in the scratch, or both on flash): one pointer
 * for the weights and a register offset for the second row, so the loop's operands all stay in registers. */
static inline void ec_dot_2x2_rows(const int8_t *xa, const int8_t *xb, const int8_t *w, size_t d, uint32_t n,
                                   int32_t *acc) {
#if EC_DSP && !EC_MVE
  uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1], a2 = (uint32_t)acc[2], a3 = (uint32_t)acc[3];
  const int8_t *end = xa + (n & ~3u);
  while (xa != end) {
    int16x2_t a_lo, a_hi, b_lo, b_hi, w_lo, w_hi;
    const uint32_t va = ec_load32(xa), vb = ec_load32(xb);
    xa += 4, xb += 4;
    EC_WIDEN(va, a_lo, a_hi);
    EC_WIDEN(vb, b_lo, b_hi);
    const uint32_t v0 = ec_load32(w);
    EC_WIDEN(v0, w_lo, w_hi);
    a0 = (uint32_t)__smlad(a_hi, w_hi, (int32_t)__smlad(a_lo, w_lo, (int32_t)a0));
    a2 = (uint32_t)__smlad(b_hi, w_hi, (int32_t)__smlad(b_lo, w_lo, (int32_t)a2));
    const uint32_t v1 = ec_load32(w + d);
    w += 4;
    EC_WIDEN(v1, w_lo, w_hi);
    a1 = (uint32_t)__smlad(a_hi, w_hi, (int32_t)__smlad(a_lo, w_lo, (int32_t)a1));
    a3 = (uint32_t)__smlad(b_hi, w_hi, (int32_t)__smlad(b_lo, w_lo, (int32_t)a3));
  }
  acc[0] = (int32_t)a0, acc[1] = (int32_t)a1, acc[2] = (int32_t)a2, acc[3] = (int32_t)a3;
  n &= 3u;
#endif
  ec_dot_2x2(xa, xb, w, w + d, n, acc);
}

/* acc[0..1] += (x . w0, x . w1) over n values: one pixel (or one FC input) times two output channels. */
static inline void ec_dot_1x2(const int8_t *x, const int8_t *w0, const int8_t *w1, uint32_t n, int32_t *acc) {
#if EC_MVE
  ec_mve_dot_1x2(x, w0, w1, n, acc);
  return;
#endif
  uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1];
#if EC_DSP
  for (; n >= 8; n -= 8) {
    const uint32_t vx = ec_load32(x), v0 = ec_load32(w0), v1 = ec_load32(w1);
    const uint32_t ux = ec_load32(x + 4), u0 = ec_load32(w0 + 4), u1 = ec_load32(w1 + 4);
    x += 8, w0 += 8, w1 += 8;
    int16x2_t x_lo, x_hi, w0_lo, w0_hi, w1_lo, w1_hi;
    EC_WIDEN(vx, x_lo, x_hi);
    EC_WIDEN(v0, w0_lo, w0_hi);
    EC_WIDEN(v1, w1_lo, w1_hi);
    a0 = (uint32_t)__smlad(x_hi, w0_hi, (int32_t)__smlad(x_lo, w0_lo, (int32_t)a0));
    a1 = (uint32_t)__smlad(x_hi, w1_hi, (int32_t)__smlad(x_lo, w1_lo, (int32_t)a1));
    EC_WIDEN(ux, x_lo, x_hi);
    EC_WIDEN(u0, w0_lo, w0_hi);
    EC_WIDEN(u1, w1_lo, w1_hi);
    a0 = (uint32_t)__smlad(x_hi, w0_hi, (int32_t)__smlad(x_lo, w0_lo, (int32_t)a0));
    a1 = (uint32_t)__smlad(x_hi, w1_hi, (int32_t)__smlad(x_lo, w1_lo, (int32_t)a1));
  }
#else
  for (; n >= 2; n -= 2) {
    const int32_t x0 = x[0], x1 = x[1];
    a0 += (uint32_t)(x0 * w0[0]) + (uint32_t)(x1 * w0[1]);
    a1 += (uint32_t)(x0 * w1[0]) + (uint32_t)(x1 * w1[1]);
    x += 2, w0 += 2, w1 += 2;
  }
#endif
  for (; n > 0; --n) {
    const int32_t v = *x++;
    a0 += (uint32_t)(v * *w0++);
    a1 += (uint32_t)(v * *w1++);
  }
  acc[0] = (int32_t)a0, acc[1] = (int32_t)a1;
}

/* sum(w[i]) over n values: a window's part that lies in the padding reads the input zero point. */
static inline int32_t ec_sum8(const int8_t *w, uint32_t n) {
  uint32_t s = 0;
  for (uint32_t i = 0; i < n; ++i) s += (uint32_t)(int32_t)w[i];
  return (int32_t)s;
}

/* One pixel's accumulators for two decoded rows (a window that crosses the padding): filter rows in the padding
 * and the padded ends of the others add zero point * sum(w); the inside part of a filter row is one run. */
static void ec_conv_pixel_1x2(const ec_conv_params *p, const int8_t *input, int in_y0, int in_x0, const int8_t *w0,
                              const int8_t *w1, int32_t *acc) {
  const ec_window *w = &p->win;
  const uint32_t c = w->in_c;
  const uint32_t row = (uint32_t)w->k_w * c;
  int32_t pad0 = 0, pad1 = 0; /* sum(w) over the padded taps */
  int kx0 = 0, kx1 = w->k_w;  /* the taps inside the input, when they are one run (dil_w == 1) */
  if (w->dil_w == 1) {
    kx0 = EC_MAX(0, -in_x0);
    kx1 = EC_MAX(kx0, EC_MIN((int)w->k_w, (int)w->in_w - in_x0));
  }
  for (int ky = 0; ky < w->k_h; ++ky) {
    const int iy = in_y0 + ky * w->dil_h;
    const int8_t *u0 = w0 + (size_t)ky * row, *u1 = w1 + (size_t)ky * row;
    if (iy < 0 || iy >= w->in_h) {
      pad0 = ec_add_wrap(pad0, ec_sum8(u0, row));
      pad1 = ec_add_wrap(pad1, ec_sum8(u1, row));
      continue;
    }
    const int8_t *x = input + (size_t)iy * w->in_w * c;
    if (w->dil_w == 1) {
      const uint32_t a = (uint32_t)kx0 * c, b = (uint32_t)kx1 * c;
      pad0 = ec_add_wrap(pad0, ec_add_wrap(ec_sum8(u0, a), ec_sum8(u0 + b, row - b)));
      pad1 = ec_add_wrap(pad1, ec_add_wrap(ec_sum8(u1, a), ec_sum8(u1 + b, row - b)));
      if (b > a) ec_dot_1x2(x + (size_t)(in_x0 + kx0) * c, u0 + a, u1 + a, b - a, acc);
      continue;
    }
    for (int kx = 0; kx < w->k_w; ++kx) {
      const int ix = in_x0 + kx * w->dil_w;
      const size_t off = (size_t)kx * c;
      if (ix >= 0 && ix < w->in_w) {
        ec_dot_1x2(x + (size_t)ix * c, u0 + off, u1 + off, c, acc);
      } else {
        pad0 = ec_add_wrap(pad0, ec_sum8(u0 + off, c));
        pad1 = ec_add_wrap(pad1, ec_sum8(u1 + off, c));
      }
    }
  }
  acc[0] = ec_add_wrap(acc[0], ec_mul_wrap(pad0, p->input_zero_point));
  acc[1] = ec_add_wrap(acc[1], ec_mul_wrap(pad1, p->input_zero_point));
}

/* Patches (im2col) for windows that cross the padding, so border pixels take the blocked dot products too:
 * up to EC_PATCH bytes per pixel on the stack; padded taps read the input zero point. */
#ifndef EC_PATCH
#define EC_PATCH 256
#endif
/* The taps of a window starting at `start` (stride `dil`, k taps) that fall inside [0, size): [first, end). */
static inline int ec_first_tap(int start, int dil) { return start >= 0 ? 0 : (-start + dil - 1) / dil; }
static inline int ec_end_tap(int start, int dil, int k, int size) {
  if (start >= size) return 0;
  return EC_MIN(k, (size - 1 - start) / dil + 1);
}

static void ec_conv_patch(const ec_conv_params *p, const int8_t *input, int in_y0, int in_x0, int8_t *patch) {
  const ec_window *w = &p->win;
  const size_t c = w->in_c, row = (size_t)w->k_w * c;
  const int8_t zp = (int8_t)p->input_zero_point;
  const int kx0 = ec_first_tap(in_x0, w->dil_w), kx1 = EC_MAX(kx0, ec_end_tap(in_x0, w->dil_w, w->k_w, w->in_w));
  for (int ky = 0; ky < w->k_h; ++ky, patch += row) {
    const int iy = in_y0 + ky * w->dil_h;
    if (iy < 0 || iy >= w->in_h) {
      memset(patch, zp, row);
      continue;
    }
    const int8_t *x = input + (size_t)iy * w->in_w * c;
    memset(patch, zp, (size_t)kx0 * c);
    if (w->dil_w == 1) {
      memcpy(patch + (size_t)kx0 * c, x + (size_t)(in_x0 + kx0) * c, (size_t)(kx1 - kx0) * c);
    } else {
      for (int kx = kx0; kx < kx1; ++kx) memcpy(patch + (size_t)kx * c, x + (size_t)(in_x0 + kx * w->dil_w) * c, c);
    }
    memset(patch + (size_t)kx1 * c, zp, row - (size_t)kx1 * c);
  }
}

/* Small filters (k <= EC_PATCH): pixel pairs outer, each pair's patches built once for a block of output
 * channels (CMSIS-NN arm_convolve_s8's order). Plain int8 rows are read from flash, all channels in one block;
 * packed rows are decoded into the scratch, as many channels a block as it holds (at least two). */
static int ec_conv_pixel_major(const ec_conv_params *p, const int8_t *input, int8_t *output, uint32_t k) {
  const ec_window *w = &p->win;
  const uint32_t oc_n = w->out_c;
  if (k > EC_PATCH) return 0;
  uint32_t block = oc_n;
  if (p->w.table != NULL) {
    block = (2u * EC_ROW_SCRATCH / k) & ~1u;
    if (block < 2u) return 0;
    if (block > oc_n) block = oc_n;
  }
  int8_t patch[2][EC_PATCH];
  for (uint32_t oc0 = 0; oc0 < oc_n; oc0 += block) {
    const uint32_t oc_end = oc0 + block < oc_n ? oc0 + block : oc_n;
    const int8_t *filter = (const int8_t *)p->w.data + (size_t)oc0 * p->w.row_stride;
    size_t stride = p->w.row_stride;
    if (p->w.table != NULL) {
      for (uint32_t oc = oc0; oc < oc_end; ++oc) ec_row(&p->w, oc, EC_ROW(0) + (size_t)(oc - oc0) * k, k);
      filter = EC_ROW(0);
      stride = k;
    }
    int8_t *out = output;
    for (int oy = 0; oy < w->out_h; ++oy) {
      const int in_y0 = oy * w->stride_h - w->pad_h;
      int ox = 0;
      for (; ox + 1 < w->out_w; ox += 2, out += 2 * (size_t)oc_n) {
        const int in_x0 = ox * w->stride_w - w->pad_w;
        ec_conv_patch(p, input, in_y0, in_x0, patch[0]);
        ec_conv_patch(p, input, in_y0, in_x0 + w->stride_w, patch[1]);
        const int8_t *f = filter;
        for (uint32_t oc = oc0; oc < oc_end; oc += 2, f += 2 * stride) {
          const int two = oc + 1 < oc_end;
          const int32_t b0 = p->q.bias[oc], b1 = two ? p->q.bias[oc + 1] : 0;
          int32_t acc[4] = {b0, b1, b0, b1};
          ec_dot_2x2(patch[0], patch[1], f, two ? f + stride : f, k, acc);
          out[oc] = ec_requantize(&p->q, acc[0], oc);
          out[oc_n + oc] = ec_requantize(&p->q, acc[2], oc);
          if (two) {
            out[oc + 1] = ec_requantize(&p->q, acc[1], oc + 1);
            out[oc_n + oc + 1] = ec_requantize(&p->q, acc[3], oc + 1);
          }
        }
      }
      if (ox < w->out_w) {
        ec_conv_patch(p, input, in_y0, ox * w->stride_w - w->pad_w, patch[0]);
        const int8_t *f = filter;
        for (uint32_t oc = oc0; oc < oc_end; oc += 2, f += 2 * stride) {
          const int two = oc + 1 < oc_end;
          int32_t acc[2] = {p->q.bias[oc], two ? p->q.bias[oc + 1] : 0};
          ec_dot_1x2(patch[0], f, two ? f + stride : f, k, acc);
          out[oc] = ec_requantize(&p->q, acc[0], oc);
          if (two) out[oc + 1] = ec_requantize(&p->q, acc[1], oc + 1);
        }
        out += oc_n;
      }
    }
  }
  return 1;
}

#if EC_DSP && !EC_MVE
/* A 4-bit row of c weights (c a multiple of 4) through its int8 table t, decoded straight into the int16 pairs
 * SMLAD takes, in SXTB16's order ([w0 w2] [w1 w3] every four: the inputs' pairs, ec_widen_pairs), into dst[0],
 * dst[1] of every four words: two rows decoded to dst and dst + 2 interleave, so the dot product reads both rows'
 * four weights with two LDRD from one pointer. Per eight weights one LDR of indices, eight UBFX and LDRSB, four
 * PKHBT and four STR: no int8 copy of the row, no SXTB16 of the weights in the pixel loop. */
__attribute__((noinline)) static void ec_row4_pairs(const uint8_t *p, const int8_t *t, uint32_t c, uint32_t *dst) {
  uint32_t i = 0;
  for (; i + 8u <= c; i += 8u, p += 4, dst += 8) {
    uint32_t h;
    memcpy(&h, p, 4);
    dst[0] = (uint32_t)ec_pkhbt(t[h & 15u], t[(h >> 8) & 15u]);
    dst[1] = (uint32_t)ec_pkhbt(t[(h >> 4) & 15u], t[(h >> 12) & 15u]);
    dst[4] = (uint32_t)ec_pkhbt(t[(h >> 16) & 15u], t[(h >> 24) & 15u]);
    dst[5] = (uint32_t)ec_pkhbt(t[(h >> 20) & 15u], t[h >> 28]);
  }
  if (i < c) {
    const uint32_t h = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
    dst[0] = (uint32_t)ec_pkhbt(t[h & 15u], t[(h >> 8) & 15u]);
    dst[1] = (uint32_t)ec_pkhbt(t[(h >> 4) & 15u], t[h >> 12]);
  }
}

/* acc[0..3] += (xa . w0, xa . w1, xb . w0, xb . w1), xb = xa + c, over c values (a multiple of 4), the rows as
 * ec_row4_pairs interleaves them: per four values two LDR and four SXTB16 of the inputs, two LDRD of the
 * weights, eight SMLAD (ec_dot_2x2_rows also widens the weights: two more LDR-less SXTB16 pairs). */
static inline void ec_dot16_2x2(const int8_t *xa, uint32_t c, const uint32_t *w, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (const int8_t *end = xa + c; xa != end; xa += 4, w += 4) {
    int16x2_t a_lo, a_hi, b_lo, b_hi;
    const uint32_t va = ec_load32(xa), vb = ec_load32(xa + c);
    EC_WIDEN(va, a_lo, a_hi);
    EC_WIDEN(vb, b_lo, b_hi);
    const int16x2_t u0 = (int16x2_t)w[0], u1 = (int16x2_t)w[1];
    a0 = __smlad(a_hi, u1, __smlad(a_lo, u0, a0));
    a2 = __smlad(b_hi, u1, __smlad(b_lo, u0, a2));
    const int16x2_t v0 = (int16x2_t)w[2], v1 = (int16x2_t)w[3];
    a1 = __smlad(a_hi, v1, __smlad(a_lo, v0, a1));
    a3 = __smlad(b_hi, v1, __smlad(b_lo, v0, a3));
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* acc[0..1] += (x . w0, x . w1) over c values, the rows as ec_row4_pairs interleaves them. */
static inline void ec_dot16_1x2(const int8_t *x, uint32_t c, const uint32_t *w, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1];
  for (const int8_t *end = x + c; x != end; x += 4, w += 4) {
    int16x2_t lo, hi;
    const uint32_t v = ec_load32(x);
    EC_WIDEN(v, lo, hi);
    a0 = __smlad(hi, (int16x2_t)w[1], __smlad(lo, (int16x2_t)w[0], a0));
    a1 = __smlad(hi, (int16x2_t)w[3], __smlad(lo, (int16x2_t)w[2], a1));
  }
  acc[0] = a0, acc[1] = a1;
}
#endif

/* One output channel pair (the second row d bytes after the first; two: whether there is a second channel) over
 * `pixels` pixels of c inputs: pixels two at a time (ec_dot_2x2_rows), requantized by ec_rq_fast where both
 * channels allow (`fast`), else ec_rq_apply. The requantization is copied to locals: the int8 stores could alias
 * it, and GCC would reload it. */
__attribute__((always_inline)) static inline void ec_1x1_loop(const int8_t *x, uint32_t pixels, uint32_t c,
                                                              const int8_t *w0, size_t d, int8_t *out, size_t oc_n,
                                                              int two, int32_t b0, int32_t b1, const ec_rq *rq0,
                                                              const ec_rq *rq1, int fast) {
  const ec_rq q0 = *rq0, q1 = *rq1;
  uint32_t px = 0;
  for (; px + 2 <= pixels; px += 2, x += 2 * (size_t)c, out += 2 * oc_n) {
    int32_t acc[4] = {b0, b1, b0, b1};
    ec_dot_2x2_rows(x, x + c, w0, d, c, acc);
    out[0] = fast ? ec_rq_fast(&q0, acc[0]) : ec_rq_apply(&q0, acc[0]);
    out[oc_n] = fast ? ec_rq_fast(&q0, acc[2]) : ec_rq_apply(&q0, acc[2]);
    if (two) {
      out[1] = fast ? ec_rq_fast(&q1, acc[1]) : ec_rq_apply(&q1, acc[1]);
      out[oc_n + 1] = fast ? ec_rq_fast(&q1, acc[3]) : ec_rq_apply(&q1, acc[3]);
    }
  }
  if (px < pixels) {
    int32_t acc[2] = {b0, b1};
    ec_dot_1x2(x, w0, w0 + d, c, acc);
    out[0] = ec_rq_apply(&q0, acc[0]);
    if (two) out[1] = ec_rq_apply(&q1, acc[1]);
  }
}

__attribute__((noinline)) static void ec_1x1_pair(const int8_t *x, uint32_t pixels, uint32_t c, const int8_t *w0,
                                                  size_t d, int8_t *out, size_t oc_n, int two, int32_t b0, int32_t b1,
                                                  const ec_rq *q0, const ec_rq *q1) {
  if (q0->fast && q1->fast) {
    ec_1x1_loop(x, pixels, c, w0, d, out, oc_n, two, b0, b1, q0, q1, 1);
  } else {
    ec_1x1_loop(x, pixels, c, w0, d, out, oc_n, two, b0, b1, q0, q1, 0);
  }
}

#if EC_DSP && !EC_MVE
/* ec_1x1_loop over two rows decoded as int16 pairs (ec_row4_pairs; w the interleaved words). */
__attribute__((always_inline)) static inline void ec_1x1_loop16(const int8_t *x, uint32_t pixels, uint32_t c,
                                                                const uint32_t *w, int8_t *out, size_t oc_n, int two,
                                                                int32_t b0, int32_t b1, const ec_rq *rq0,
                                                                const ec_rq *rq1, int fast) {
  const ec_rq q0 = *rq0, q1 = *rq1;
  uint32_t px = 0;
  for (; px + 2 <= pixels; px += 2, x += 2 * (size_t)c, out += 2 * oc_n) {
    int32_t acc[4] = {b0, b1, b0, b1};
    ec_dot16_2x2(x, c, w, acc);
    out[0] = fast ? ec_rq_fast(&q0, acc[0]) : ec_rq_apply(&q0, acc[0]);
    out[oc_n] = fast ? ec_rq_fast(&q0, acc[2]) : ec_rq_apply(&q0, acc[2]);
    if (two) {
      out[1] = fast ? ec_rq_fast(&q1, acc[1]) : ec_rq_apply(&q1, acc[1]);
      out[oc_n + 1] = fast ? ec_rq_fast(&q1, acc[3]) : ec_rq_apply(&q1, acc[3]);
    }
  }
  if (px < pixels) {
    int32_t acc[2] = {b0, b1};
    ec_dot16_1x2(x, c, w, acc);
    out[0] = ec_rq_apply(&q0, acc[0]);
    if (two) out[1] = ec_rq_apply(&q1, acc[1]);
  }
}

__attribute__((noinline)) static void ec_1x1_pair16(const int8_t *x, uint32_t pixels, uint32_t c, const uint32_t *w,
                                                    int8_t *out, size_t oc_n, int two, int32_t b0, int32_t b1,
                                                    const ec_rq *q0, const ec_rq *q1) {
  if (q0->fast && q1->fast) {
    ec_1x1_loop16(x, pixels, c, w, out, oc_n, two, b0, b1, q0, q1, 1);
  } else {
    ec_1x1_loop16(x, pixels, c, w, out, oc_n, two, b0, b1, q0, q1, 0);
  }
}
#endif

#if EC_MVE
__attribute__((noinline)) static void ec_mve_1x1_channel4(const ec_conv_params *p, uint32_t oc, const int8_t *x,
                                                          uint32_t pixels, int8_t *out);
#endif

/* 1x1 with 4-bit rows on DSP cores: each row pair decoded as int16 pairs (ec_row4_pairs, two rows of 2 * in_c
 * bytes in the scratch), then `pixels` pixels from x into output; then, where the scratch holds more than the rows
 * and `ahead` is given, up to ahead_max further pixels from `ahead` (in_c apart) with the same decoded rows, their
 * outputs held in the rest of the scratch and copied to output + pixels * out_c after the last row pair (so
 * `ahead` may be the not yet consumed input of an in-place 1x1, ec_conv_1x1_inplace). *ahead_done: how many.
 * 0 (nothing written) where the rows are not 4-bit, in_c is not a multiple of 4 or the rows do not fit. The
 * Cortex-M55 decodes each row in registers (ec_mve_1x1_channel4), any in_c, the whole scratch for the pixels ahead. */
static int ec_conv_1x1_4bit(const ec_conv_params *p, const int8_t *x, uint32_t pixels, const int8_t *ahead,
                            uint32_t ahead_max, int8_t *output, uint32_t *ahead_done) {
#if EC_DSP && !EC_MVE
  const uint32_t c = p->win.in_c, oc_n = p->win.out_c;
  const size_t room = 2u * (size_t)EC_ROW_SCRATCH, rows_bytes = 4u * (size_t)c;
  if (p->w.table == NULL || p->w.bits != 4 || c % 4u != 0 || rows_bytes > room) return 0;
  uint32_t more = ahead == NULL ? 0u : (uint32_t)((room - rows_bytes) / oc_n);
  if (more > ahead_max) more = ahead_max;
  uint32_t *rows = (uint32_t *)(void *)ec_row_scratch;
  int8_t *held = (int8_t *)(void *)(rows + c);
  const size_t rs = p->w.row_stride, ts = p->w.table_stride;
  for (uint32_t oc = 0; oc < oc_n; oc += 2) {
    const int two = oc + 1 < oc_n;
    const uint32_t oc1 = two ? oc + 1 : oc;
    ec_row4_pairs(p->w.data + oc * rs, p->w.table + oc * ts, c, rows);
    ec_row4_pairs(p->w.data + oc1 * rs, p->w.table + oc1 * ts, c, rows + 2);
    ec_rq q0, q1;
    ec_rq_load(&q0, &p->q, oc);
    ec_rq_load(&q1, &p->q, oc1);
    const int32_t b0 = p->q.bias[oc], b1 = p->q.bias[oc1];
    ec_1x1_pair16(x, pixels, c, rows, output + oc, oc_n, two, b0, b1, &q0, &q1);
    if (more > 0) ec_1x1_pair16(ahead, more, c, rows, held + oc, oc_n, two, b0, b1, &q0, &q1);
  }
  if (more > 0) memcpy(output + (size_t)pixels * oc_n, held, (size_t)more * oc_n);
  if (ahead_done != NULL) *ahead_done = more;
  return 1;
#else
#if EC_MVE
  /* 4-bit rows decoded in registers (ec_mve_1x1_channel4): the scratch holds only the outputs of the pixels
   * ahead, every channel over the block and over them */
  const uint32_t oc_n = p->win.out_c;
  if (p->w.table == NULL || p->w.bits != 4) return 0;
  uint32_t more = ahead == NULL ? 0u : (uint32_t)(2u * (size_t)EC_ROW_SCRATCH / oc_n);
  if (more > ahead_max) more = ahead_max;
  int8_t *held = (int8_t *)(void *)ec_row_scratch;
  for (uint32_t oc = 0; oc < oc_n; ++oc) {
    ec_mve_1x1_channel4(p, oc, x, pixels, output + oc);
    if (more > 0) ec_mve_1x1_channel4(p, oc, ahead, more, held + oc);
  }
  if (more > 0) memcpy(output + (size_t)pixels * oc_n, held, (size_t)more * oc_n);
  if (ahead_done != NULL) *ahead_done = more;
  return 1;
#else
  (void)p, (void)x, (void)pixels, (void)ahead, (void)ahead_max, (void)output, (void)ahead_done;
  return 0;
#endif
#endif
}

int ec_conv_1x1_ahead(const ec_conv_params *p, const int8_t *window, uint32_t n, const int8_t *ahead,
                      uint32_t ahead_max, int8_t *output, uint32_t *ahead_done) {
  *ahead_done = 0;
  if (p->pool != NULL) return 0;
  return ec_conv_1x1_4bit(p, window, n, ahead, ahead_max, output, ahead_done);
}

/* 1x1, stride 1, no padding: a matrix product, [pixels x in_c] times [in_c x out_c]. Output channels two at a
 * time, outer (CMSIS-NN arm_nn_mat_mult_nt_t_s8's 2x2 blocking: each weight and input load serves two products);
 * pixels two at a time over the whole image (rows do not break the pairs). Plain int8 rows are read on flash,
 * packed ones decoded into the scratch. */
static void ec_conv_1x1(const ec_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const uint32_t c = w->in_c, oc_n = w->out_c, pixels = (uint32_t)w->out_h * w->out_w;
#if EC_DSP && !EC_MVE
  if (ec_conv_1x1_4bit(p, input, pixels, NULL, 0, output, NULL)) return;
#endif
  for (uint32_t oc = 0; oc < oc_n; oc += 2) {
    const int two = oc + 1 < oc_n;
    const int8_t *w0;
    size_t d;
    if (p->w.table == NULL) {
      w0 = (const int8_t *)p->w.data + (size_t)oc * p->w.row_stride;
      d = two ? p->w.row_stride : 0u;
    } else {
      w0 = ec_row(&p->w, oc, EC_ROW(0), c);
      if (two) ec_row_copy(&p->w, oc + 1, EC_ROW(1), c);
      d = two ? EC_ROW_SCRATCH : 0u;
    }
    ec_rq q0, q1;
    ec_rq_load(&q0, &p->q, oc);
    ec_rq_load(&q1, &p->q, two ? oc + 1 : oc);
    ec_1x1_pair(input, pixels, c, w0, d, output + oc, oc_n, two, p->q.bias[oc], two ? p->q.bias[oc + 1] : 0, &q0,
                &q1);
  }
}

/* ---- CONV_2D through an int16 im2col: four output pixels widened once, every output channel over them ----
 * CMSIS-NN arm_convolve_s8's order (pixels outer, channels inner), blocked the other way round: four pixels
 * times one channel, so each weight word is widened once for four pixels and the pixels' int16 pairs come in
 * by LDM, four words an instruction. The group's windows are laid out for that: per four values of k, eight
 * words, [x0 x2] [x1 x3] (SXTB16's pairs) of pixel 0, then of pixels 1, 2, 3. */
#if !EC_MVE /* Cortex-M55 keeps the int8 paths, whose dot products are MVE's */

#if EC_DSP
/* One group of four values: one LDR and two SXTB16 of the weights, two LDM of the pixels' pairs (fixed
 * registers r8-r11: LDM wants them ascending), eight SMLAD. */
#define EC_DOT4PX_GROUP                 \
  "ldr %[v], [%[w]], #4\n\t"            \
  "sxtb16 %[t], %[v]\n\t"               \
  "sxtb16 %[v], %[v], ror #8\n\t"       \
  "ldmia %[x]!, {r8, r9, r10, r11}\n\t" \
  "smlad %[a0], r8, %[t], %[a0]\n\t"    \
  "smlad %[a0], r9, %[v], %[a0]\n\t"    \
  "smlad %[a1], r10, %[t], %[a1]\n\t"   \
  "smlad %[a1], r11, %[v], %[a1]\n\t"   \
  "ldmia %[x]!, {r8, r9, r10, r11}\n\t" \
  "smlad %[a2], r8, %[t], %[a2]\n\t"    \
  "smlad %[a2], r9, %[v], %[a2]\n\t"    \
  "smlad %[a3], r10, %[t], %[a3]\n\t"   \
  "smlad %[a3], r11, %[v], %[a3]\n\t"
#endif

/* a0..a3 += the dot products of the int8 row w (n values, a multiple of 4) with the group's four pixels xw. */
#if EC_DSP
#define EC_DOT_4PX(X, W, N, A0, A1, A2, A3)                                                                     \
  do {                                                                                                           \
    const uint32_t *x_ = (X), *end_ = x_ + 2u * (N);                                                            \
    const int8_t *w_ = (W);                                                                                      \
    uint32_t v_, t_;                                                                                             \
    if ((N) & 4u) {                                                                                              \
      __asm__ volatile(EC_DOT4PX_GROUP                                                                           \
                       : [a0] "+r"(A0), [a1] "+r"(A1), [a2] "+r"(A2), [a3] "+r"(A3), [x] "+r"(x_), [w] "+r"(w_), \
                         [v] "=&r"(v_), [t] "=&r"(t_)                                                            \
                       :                                                                                         \
                       : "r8", "r9", "r10", "r11", "memory");                                                    \
    }                                                                                                            \
    if (x_ != end_) {                                                                                            \
      __asm__ volatile("1:\n\t" EC_DOT4PX_GROUP EC_DOT4PX_GROUP                                                    \
                       "cmp %[x], %[end]\n\t"                                                                    \
                       "bne 1b\n\t"                                                                              \
                       : [a0] "+r"(A0), [a1] "+r"(A1), [a2] "+r"(A2), [a3] "+r"(A3), [x] "+r"(x_), [w] "+r"(w_), \
                         [v] "=&r"(v_), [t] "=&r"(t_)                                                            \
                       : [end] "r"(end_)                                                                         \
                       : "r8", "r9", "r10", "r11", "cc", "memory");                                              \
    }                                                                                                            \
  } while (0)
#else
static inline void ec_dot_4px_c(const uint32_t *xw, const int8_t *w, uint32_t n, int32_t *a) {
  uint32_t s[4] = {(uint32_t)a[0], (uint32_t)a[1], (uint32_t)a[2], (uint32_t)a[3]};
  for (uint32_t i = 0; i < n; i += 4, w += 4, xw += 8) {
    const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (uint32_t j = 0; j < 4; ++j) {
      const uint32_t lo = xw[2 * j], hi = xw[2 * j + 1];
      s[j] += (uint32_t)((int16_t)(lo & 0xFFFFu) * w0) + (uint32_t)((int16_t)(lo >> 16) * w2) +
              (uint32_t)((int16_t)(hi & 0xFFFFu) * w1) + (uint32_t)((int16_t)(hi >> 16) * w3);
    }
  }
  a[0] = (int32_t)s[0], a[1] = (int32_t)s[1], a[2] = (int32_t)s[2], a[3] = (int32_t)s[3];
}
#define EC_DOT_4PX(xw, w, n, a0, a1, a2, a3) \
  do {                                       \
    int32_t s_[4] = {a0, a1, a2, a3};        \
    ec_dot_4px_c((xw), (w), (n), s_);        \
    a0 = s_[0], a1 = s_[1], a2 = s_[2], a3 = s_[3]; \
  } while (0)
#endif

/* n int8 (a multiple of 4) widened into one pixel's slots of a group: dst[0], dst[1] every eight words;
 * sixteen values a pass. */
static inline void ec_im2col_widen(const int8_t *x, uint32_t n, uint32_t *dst) {
#if EC_DSP
  for (const int8_t *end = x + (n & ~15u); x != end; x += 16, dst += 32) {
    const uint32_t v0 = ec_load32(x), v1 = ec_load32(x + 4), v2 = ec_load32(x + 8), v3 = ec_load32(x + 12);
    dst[0] = (uint32_t)__sxtb16(v0), dst[1] = (uint32_t)ec_sxtb16_ror8(v0);
    dst[8] = (uint32_t)__sxtb16(v1), dst[9] = (uint32_t)ec_sxtb16_ror8(v1);
    dst[16] = (uint32_t)__sxtb16(v2), dst[17] = (uint32_t)ec_sxtb16_ror8(v2);
    dst[24] = (uint32_t)__sxtb16(v3), dst[25] = (uint32_t)ec_sxtb16_ror8(v3);
  }
  for (const int8_t *end = x + (n & 15u); x != end; x += 4, dst += 8) {
    const uint32_t v = ec_load32(x);
    dst[0] = (uint32_t)__sxtb16(v), dst[1] = (uint32_t)ec_sxtb16_ror8(v);
  }
#else
  for (const int8_t *end = x + n; x != end; x += 4, dst += 8) {
    dst[0] = (uint32_t)(uint16_t)(int16_t)x[0] | (uint32_t)(uint16_t)(int16_t)x[2] << 16;
    dst[1] = (uint32_t)(uint16_t)(int16_t)x[1] | (uint32_t)(uint16_t)(int16_t)x[3] << 16;
  }
#endif
}

/* The group's pixels from `pix` on (count of them; the others repeat the last). A window inside the input is
 * widened row by row where its filter rows are whole fours of values (`direct`), else copied row by row into
 * the int8 patch (k4 bytes, the tail past k zero) and widened from there; a window across the padding is built
 * by ec_conv_patch. */
__attribute__((noinline)) static void ec_im2col_group(const ec_conv_params *p, const int8_t *input, uint32_t pix,
                                                      uint32_t count, uint32_t k4, int direct, uint32_t *xw,
                                                      int8_t *patch) {
  const ec_window *w = &p->win;
  const uint32_t c = w->in_c, run = (uint32_t)w->k_w * c;
  const size_t in_row = (size_t)w->in_w * c, dy = (size_t)w->dil_h * in_row;
  for (uint32_t j = 0; j < 4; ++j) {
    const uint32_t q = pix + (j < count ? j : count - 1u);
    const int oy = (int)(q / w->out_w), ox = (int)(q % w->out_w);
    const int in_y0 = oy * w->stride_h - w->pad_h, in_x0 = ox * w->stride_w - w->pad_w;
    uint32_t *d = xw + 2u * j;
    if (w->dil_w == 1 && in_y0 >= 0 && in_y0 + (w->k_h - 1) * w->dil_h < w->in_h && in_x0 >= 0 &&
        in_x0 + w->k_w <= w->in_w) {
      const int8_t *x = input + (size_t)in_y0 * in_row + (size_t)in_x0 * c;
      if (direct) {
        for (int ky = 0; ky < w->k_h; ++ky, x += dy, d += 2u * run) ec_im2col_widen(x, run, d);
        continue;
      }
      int8_t *t = patch;
      for (int ky = 0; ky < w->k_h; ++ky, x += dy) {
        for (uint32_t i = 0; i < run; ++i) *t++ = x[i];
      }
    } else {
      ec_conv_patch(p, input, in_y0, in_x0, patch);
    }
    ec_im2col_widen(patch, k4, d);
  }
}

/* One group's outputs for the channels [oc0, oc_end): each row (`stride` apart from f) over the four pixels,
 * requantized by ec_rq_fast where the channel allows (`fast`: the layer's zero point and range do), the first
 * `count` stored. */
__attribute__((always_inline)) static inline void ec_im2col_channels_n(const ec_conv_params *p, const uint32_t *xw,
                                                                       const int8_t *f, size_t stride, uint32_t k4,
                                                                       uint32_t oc0, uint32_t oc_end,
                                                                       uint32_t count, int fast, int8_t *out) {
  const ec_requant rq_copy = p->q; /* a copy the int8 stores cannot alias: its pointers stay in registers */
  const ec_requant *rq = &rq_copy;
  const size_t oc_n = p->win.out_c;
  const uint32_t cs = rq->channel_stride;
  const int32_t zp = rq->output_zero_point;
  const int32_t *bias = rq->bias + oc0;
  out += oc0;
  for (uint32_t oc = oc0; oc < oc_end; ++oc, f += stride, ++out) {
    int32_t a0 = *bias++, a1 = a0, a2 = a0, a3 = a0;
    EC_DOT_4PX(xw, f, k4, a0, a1, a2, a3);
    const int32_t m = ec_requant_multiplier(rq, oc * cs), s = ec_requant_shift(rq, oc * cs);
    ec_rq q;
    if (fast && m >= 0 && s <= -2 && s >= -23) {
      q.multiplier = m, q.shift = s;
      q.high = (int32_t)(1u << (-s - 2)) + zp * (int32_t)(1u << (-s - 1));
      out[0] = ec_rq_fast(&q, a0);
      if (count > 1) out[oc_n] = ec_rq_fast(&q, a1);
      if (count > 2) out[2 * oc_n] = ec_rq_fast(&q, a2);
      if (count > 3) out[3 * oc_n] = ec_rq_fast(&q, a3);
    } else {
      ec_rq_load(&q, rq, oc);
      out[0] = ec_rq_apply(&q, a0);
      if (count > 1) out[oc_n] = ec_rq_apply(&q, a1);
      if (count > 2) out[2 * oc_n] = ec_rq_apply(&q, a2);
      if (count > 3) out[3 * oc_n] = ec_rq_apply(&q, a3);
    }
  }
}

/* ec_im2col_channels_n for a whole group of four pixels, and for fewer. */
__attribute__((noinline)) static void ec_im2col_channels4(const ec_conv_params *p, const uint32_t *xw,
                                                          const int8_t *f, size_t stride, uint32_t k4, uint32_t oc0,
                                                          uint32_t oc_end, int fast, int8_t *out) {
  ec_im2col_channels_n(p, xw, f, stride, k4, oc0, oc_end, 4, fast, out);
}

__attribute__((noinline)) static void ec_im2col_channels(const ec_conv_params *p, const uint32_t *xw,
                                                         const int8_t *f, size_t stride, uint32_t k4, uint32_t oc0,
                                                         uint32_t oc_end, uint32_t count, int fast, int8_t *out) {
  ec_im2col_channels_n(p, xw, f, stride, k4, oc0, oc_end, count, fast, out);
}

/* The int16 im2col path: the group's windows at the scratch's start (8 * k4 bytes, k4: k rounded up to a
 * multiple of 4), then an int8 patch (k4 bytes); plain int8 rows of k4 values are read on flash, other rows
 * (packed, or k not a multiple of 4) copied or decoded into the rest of the scratch, k4 bytes apart and zero
 * past k, as many channels a block as fit. 0 when the scratch holds not the windows and one row. */
static int ec_conv_im2col(const ec_conv_params *p, const int8_t *input, int8_t *output, uint32_t k) {
  const ec_window *w = &p->win;
  const uint32_t k4 = (k + 3u) & ~3u, oc_n = w->out_c;
  const size_t room = 2u * (size_t)EC_ROW_SCRATCH, cols = 9u * (size_t)k4;
  const int on_flash = p->w.table == NULL && k == k4;
  if (cols + (on_flash ? 0u : k4) > room) return 0;
  uint32_t block = on_flash ? oc_n : (uint32_t)((room - cols) / k4);
  if (block > oc_n) block = oc_n;
  uint32_t *xw = (uint32_t *)(void *)ec_row_scratch;
  int8_t *patch = (int8_t *)(xw + 2u * k4), *rows = patch + k4;
  memset(patch + k, 0, k4 - k);
  const int direct = ((uint32_t)w->k_w * w->in_c) % 4u == 0;
  const uint32_t pixels = (uint32_t)w->out_h * w->out_w;
  const int32_t zp = p->q.output_zero_point;
  const int fast = zp >= -128 && zp <= 127 && p->q.act_min == -128 && p->q.act_max == 127;
  for (uint32_t oc0 = 0; oc0 < oc_n; oc0 += block) {
    const uint32_t oc_end = oc0 + block < oc_n ? oc0 + block : oc_n;
    const int8_t *filter = (const int8_t *)p->w.data + (size_t)oc0 * p->w.row_stride;
    size_t stride = p->w.row_stride;
    if (!on_flash) {
      for (uint32_t oc = oc0; oc < oc_end; ++oc) {
        int8_t *r = rows + (size_t)(oc - oc0) * k4;
        ec_row_copy(&p->w, oc, r, k);
        memset(r + k, 0, k4 - k);
      }
      filter = rows;
      stride = k4;
    }
    for (uint32_t pix = 0; pix < pixels; pix += 4) {
      const uint32_t count = pixels - pix < 4u ? pixels - pix : 4u;
      ec_im2col_group(p, input, pix, count, k4, direct, xw, patch);
      int8_t *out = output + (size_t)pix * oc_n;
      if (count == 4) {
        ec_im2col_channels4(p, xw, filter, stride, k4, oc0, oc_end, fast, out);
      } else {
        ec_im2col_channels(p, xw, filter, stride, k4, oc0, oc_end, count, fast, out);
      }
    }
  }
  return 1;
}
#endif

#if EC_MVE
/* ---- CONV_2D on the Cortex-M55 (Helium): CMSIS-NN arm_convolve_s8's MVE path ----
 * Four output pixels' windows as int8 (im2col, the padding filled with the input zero point: the bias holds
 * input_offset * sum(w)), then each output channel over the four (arm_nn_mat_mul_core_4x_s8: one weight load
 * serves four VMLADAVA), the four accumulators requantized together (arm_requantize_mve: VQRDMULH and a
 * rounding shift, TFLM's double rounding) and stored by one scatter (VSTRB.32, outputs oc_n apart). */

/* acc + (x0 . w, x1 . w, x2 . w, x3 . w) over k values: a low-overhead loop (WLS/LE) of sixteen values a step,
 * five loads and four VMLADAVA (whose accumulators must be even registers: constraint Te), then the tail's loads
 * predicated (VCTP; lanes past k read as zero and add nothing). In assembly because GCC 12 at -Os spills the
 * five pointers of the intrinsics' loop. */
__attribute__((always_inline)) static inline int32x4_t ec_mve_dot_4x1(const int8_t *x0, const int8_t *x1,
                                                                      const int8_t *x2, const int8_t *x3,
                                                                      const int8_t *w, uint32_t k, int32_t acc) {
  int32_t a0 = acc, a1 = acc, a2 = acc, a3 = acc;
  __asm__ volatile(
      "lsr lr, %[k], #4\n\t"
      "wls lr, lr, 2f\n"
      "1:\n\t"
      "vldrb.8 q0, [%[w]], #16\n\t"
      "vldrb.8 q1, [%[x0]], #16\n\t"
      "vldrb.8 q2, [%[x1]], #16\n\t"
      "vmladava.s8 %[a0], q1, q0\n\t"
      "vldrb.8 q1, [%[x2]], #16\n\t"
      "vmladava.s8 %[a1], q2, q0\n\t"
      "vldrb.8 q2, [%[x3]], #16\n\t"
      "vmladava.s8 %[a2], q1, q0\n\t"
      "vmladava.s8 %[a3], q2, q0\n\t"
      "le lr, 1b\n"
      "2:\n\t"
      "ands %[k], %[k], #15\n\t"
      "beq 3f\n\t"
      "vctp.8 %[k]\n\t"
      "vpstttt\n\t"
      "vldrbt.8 q0, [%[w]]\n\t"
      "vldrbt.8 q1, [%[x0]]\n\t"
      "vldrbt.8 q2, [%[x1]]\n\t"
      "vldrbt.8 q3, [%[x2]]\n\t"
      "vmladava.s8 %[a0], q1, q0\n\t"
      "vpst\n\t"
      "vldrbt.8 q1, [%[x3]]\n\t"
      "vmladava.s8 %[a1], q2, q0\n\t"
      "vmladava.s8 %[a2], q3, q0\n\t"
      "vmladava.s8 %[a3], q1, q0\n"
      "3:\n\t"
      : [a0] "+Te"(a0), [a1] "+Te"(a1), [a2] "+Te"(a2), [a3] "+Te"(a3), [x0] "+r"(x0), [x1] "+r"(x1),
        [x2] "+r"(x2), [x3] "+r"(x3), [w] "+r"(w), [k] "+r"(k)
      :
      : "q0", "q1", "q2", "q3", "lr", "cc", "memory");
  int32x4_t v = vdupq_n_s32(a0); /* single-lane moves: VMOV of two lanes pairs its registers crosswise */
  v = vsetq_lane_s32(a1, v, 1);
  v = vsetq_lane_s32(a2, v, 2);
  return vsetq_lane_s32(a3, v, 3);
}

/* ec_mve_dot_4x1 over four windows interleaved in 16-byte chunks (ec_mve_put's layout: chunk i of window j at
 * x + 64 * i + 16 * j), so one pointer with immediate offsets reaches all four and the loop holds two pointers;
 * the tail's weights predicated (the windows' bytes past k are whatever the chunk holds: times zero). */
__attribute__((always_inline)) static inline int32x4_t ec_mve_dot_4x1i(const int8_t *x, const int8_t *w, uint32_t k,
                                                                       int32_t acc) {
  int32_t a0 = acc, a1 = acc, a2 = acc, a3 = acc;
  __asm__ volatile(
      "lsr lr, %[k], #4\n\t"
      "wls lr, lr, 2f\n"
      "1:\n\t"
      "vldrb.8 q0, [%[w]], #16\n\t"
      "vldrb.8 q1, [%[x]], #64\n\t"
      "vldrb.8 q2, [%[x], #-48]\n\t"
      "vmladava.s8 %[a0], q1, q0\n\t"
      "vldrb.8 q1, [%[x], #-32]\n\t"
      "vmladava.s8 %[a1], q2, q0\n\t"
      "vldrb.8 q2, [%[x], #-16]\n\t"
      "vmladava.s8 %[a2], q1, q0\n\t"
      "vmladava.s8 %[a3], q2, q0\n\t"
      "le lr, 1b\n"
      "2:\n\t"
      "ands %[k], %[k], #15\n\t"
      "beq 3f\n\t"
      "vctp.8 %[k]\n\t"
      "vpst\n\t"
      "vldrbt.8 q0, [%[w]]\n\t"
      "vldrb.8 q1, [%[x]]\n\t"
      "vldrb.8 q2, [%[x], #16]\n\t"
      "vmladava.s8 %[a0], q1, q0\n\t"
      "vldrb.8 q1, [%[x], #32]\n\t"
      "vmladava.s8 %[a1], q2, q0\n\t"
      "vldrb.8 q2, [%[x], #48]\n\t"
      "vmladava.s8 %[a2], q1, q0\n\t"
      "vmladava.s8 %[a3], q2, q0\n"
      "3:\n\t"
      : [a0] "+Te"(a0), [a1] "+Te"(a1), [a2] "+Te"(a2), [a3] "+Te"(a3), [x] "+r"(x), [w] "+r"(w), [k] "+r"(k)
      :
      : "q0", "q1", "q2", "lr", "cc", "memory");
  int32x4_t v = vdupq_n_s32(a0);
  v = vsetq_lane_s32(a1, v, 1);
  v = vsetq_lane_s32(a2, v, 2);
  return vsetq_lane_s32(a3, v, 3);
}

/* TFLM MultiplyByQuantizedMultiplier on four lanes (CMSIS-NN arm_requantize_mve): the left shift wraps as
 * ec_shl does, VQRDMULH is SaturatingRoundingDoublingHighMul, and RoundingDivideByPOT is VRSHL (round half up)
 * of x - 1 where x < 0 (saturating, so INT32_MIN stays), i.e. half away from zero; then the zero point (wrapping,
 * as ec_add_wrap) and the activation clamp. */
__attribute__((always_inline)) static inline int32x4_t ec_mve_requantize(int32x4_t v, int32_t multiplier, int32_t shift, int32_t zero_point,
                                          int32x4_t lo, int32x4_t hi) {
  if (shift > 0) v = vshlq_r_s32(v, shift);
  v = vqrdmulhq_n_s32(v, multiplier);
  if (shift < 0) v = vrshlq_n_s32(vqaddq_s32(v, vshrq_n_s32(v, 31)), shift);
  v = vaddq_n_s32(v, zero_point);
  return vminq_s32(vmaxq_s32(v, lo), hi);
}

/* n bytes from src into window position m of an interleaved window (chunk i at dst + 64 * i): whole chunks by
 * one load and store each where m starts one, the rest in pieces that stay inside a chunk, each a predicated load
 * and store. */
__attribute__((always_inline)) static inline void ec_mve_put(int8_t *dst, uint32_t m, const int8_t *src, uint32_t n) {
  if ((m & 15u) == 0) {
    for (; n >= 16u; n -= 16u, m += 16u, src += 16) vst1q_s8(dst + 4u * m, vld1q_s8(src));
  }
  while (n > 0) {
    const uint32_t off = m & 15u, len = EC_MIN(16u - off, n);
    const mve_pred16_t p = vctp8q(len);
    vstrbq_p_s8(dst + 4u * (m - off) + off, vldrbq_z_s8(src, p), p);
    m += len, src += len, n -= len;
  }
}

/* Four pixels' values, n each from x0..x3, interleaved in dst (ec_mve_dot_4x1i's layout; the last chunk's bytes
 * past n are read only where they lie before x_j + n). */
__attribute__((always_inline)) static inline void ec_mve_interleave(int8_t *dst, const int8_t *x0, const int8_t *x1,
                                                                    const int8_t *x2, const int8_t *x3, uint32_t n) {
  for (uint32_t i = 0; i < n; i += 16u, dst += 64) {
    const mve_pred16_t p = vctp8q(n - i);
    vst1q_s8(dst, vldrbq_z_s8(x0 + i, p));
    vst1q_s8(dst + 16, vldrbq_z_s8(x1 + i, p));
    vst1q_s8(dst + 32, vldrbq_z_s8(x2 + i, p));
    vst1q_s8(dst + 48, vldrbq_z_s8(x3 + i, p));
  }
}

/* One output pixel's window (k values, filter rows in order) into slot dst of the interleaved windows (dst + 16 *
 * j for window j): a window inside the input, filter rows one run each (dil_w 1), is copied row by row; another
 * is filled with the input zero point and its taps inside the input copied over it (TFLM skips padded taps; the
 * folded bias makes the zero point add nothing). */
static void ec_mve_window(const ec_conv_params *p, const int8_t *input, int in_y0, int in_x0, uint32_t k,
                          int8_t *dst) {
  const ec_window *w = &p->win;
  const uint32_t c = w->in_c, run = (uint32_t)w->k_w * c;
  const size_t in_row = (size_t)w->in_w * c;
  if (w->dil_w == 1 && in_y0 >= 0 && in_y0 + (w->k_h - 1) * w->dil_h < w->in_h && in_x0 >= 0 &&
      in_x0 + w->k_w <= w->in_w) {
    const int8_t *x = input + (size_t)in_y0 * in_row + (size_t)in_x0 * c;
    uint32_t m = 0;
    for (int ky = 0; ky < w->k_h; ++ky, x += (size_t)w->dil_h * in_row, m += run) ec_mve_put(dst, m, x, run);
    return;
  }
  const int8x16_t zp = vdupq_n_s8((int8_t)p->input_zero_point);
  for (uint32_t i = 0; i < k; i += 16u) vst1q_s8(dst + 4u * i, zp);
  const int kx0 = ec_first_tap(in_x0, w->dil_w), kx1 = EC_MAX(kx0, ec_end_tap(in_x0, w->dil_w, w->k_w, w->in_w));
  if (kx1 == kx0) return;
  uint32_t m = 0;
  for (int ky = 0; ky < w->k_h; ++ky, m += run) {
    const int iy = in_y0 + ky * w->dil_h;
    if (iy < 0 || iy >= w->in_h) continue;
    const int8_t *x = input + (size_t)iy * in_row;
    if (w->dil_w == 1) {
      ec_mve_put(dst, m + (uint32_t)kx0 * c, x + (size_t)(in_x0 + kx0) * c, (uint32_t)(kx1 - kx0) * c);
    } else {
      for (int kx = kx0; kx < kx1; ++kx) ec_mve_put(dst, m + (uint32_t)kx * c, x + (size_t)(in_x0 + kx * w->dil_w) * c, c);
    }
  }
}

/* Output channels [oc0, oc_end) over four pixels' interleaved windows xi (k values each), rows `stride` apart
 * from f; `count` (1..4) pixels stored from out, oc_n apart. */
__attribute__((noinline)) static void ec_mve_channels(const ec_requant *q, const int8_t *xi, const int8_t *f,
                                                      size_t stride, uint32_t k, uint32_t oc0, uint32_t oc_end,
                                                      uint32_t oc_n, uint32_t count, int8_t *out) {
  const ec_requant rq = *q; /* a copy the int8 stores cannot alias: its pointers stay in registers */
  q = &rq;
  const uint32_t cs = q->channel_stride;
  const int32_t zp = q->output_zero_point;
  const int32x4_t lo = vdupq_n_s32(q->act_min), hi = vdupq_n_s32(q->act_max);
  const uint32x4_t offs = vmulq_n_u32(vidupq_n_u32(0, 1), oc_n);
  const mve_pred16_t keep = vctp32q(count);
  const int32_t *bias = q->bias;
  for (uint32_t oc = oc0; oc < oc_end; ++oc, f += stride) {
    const int32x4_t acc = ec_mve_dot_4x1i(xi, f, k, bias[oc]);
    const int32x4_t v = ec_mve_requantize(acc, ec_requant_multiplier(q, oc * cs), ec_requant_shift(q, oc * cs), zp, lo, hi);
    vstrbq_scatter_offset_p_s32(out + oc, offs, v, keep);
  }
}

/* CONV_2D through the int8 im2col: the scratch holds four windows interleaved (4 * k16 bytes, k16: k rounded up
 * to 16), then for packed rows as many decoded rows (k apart) as fit, one at least; plain int8 rows are read on
 * flash. 0 where the scratch is short (plan.py's sizing for the int16 im2col, 9 * k4 bytes and more, holds this
 * wherever k >= 7). */
static int ec_mve_conv_im2col(const ec_conv_params *p, const int8_t *input, int8_t *output, uint32_t k) {
  const ec_window *w = &p->win;
  const uint32_t oc_n = w->out_c;
  const size_t room = 2u * (size_t)EC_ROW_SCRATCH, cols = 4u * (size_t)((k + 15u) & ~15u);
  const int packed = p->w.table != NULL;
  if (cols + (packed ? k : 0u) > room) return 0;
  uint32_t block = packed ? (uint32_t)((room - cols) / k) : oc_n;
  if (block > oc_n) block = oc_n;
  int8_t *buf = (int8_t *)ec_row_scratch, *rows = buf + cols;
  const uint32_t pixels = (uint32_t)w->out_h * w->out_w;
  for (uint32_t oc0 = 0; oc0 < oc_n; oc0 += block) {
    const uint32_t oc_end = oc0 + block < oc_n ? oc0 + block : oc_n;
    const int8_t *filter = (const int8_t *)p->w.data + (size_t)oc0 * p->w.row_stride;
    size_t stride = p->w.row_stride;
    if (packed) {
      for (uint32_t oc = oc0; oc < oc_end; ++oc) ec_row_copy(&p->w, oc, rows + (size_t)(oc - oc0) * k, k);
      filter = rows;
      stride = k;
    }
    int oy = 0, ox = 0;
    for (uint32_t pix = 0; pix < pixels; pix += 4) {
      const uint32_t count = pixels - pix < 4u ? pixels - pix : 4u;
      for (uint32_t j = 0; j < count; ++j) {
        ec_mve_window(p, input, oy * w->stride_h - w->pad_h, ox * w->stride_w - w->pad_w, k, buf + 16u * j);
        if (++ox == w->out_w) ox = 0, ++oy;
      }
      ec_mve_channels(&p->q, buf, filter, stride, k, oc0, oc_end, oc_n, count, output + (size_t)pix * oc_n);
    }
  }
  return 1;
}

/* One output channel (row f of c weights) of a 1x1 convolution over `pixels` pixels from x, four at a time;
 * the requantization read once. */
__attribute__((noinline)) static void ec_mve_1x1_channel(const ec_requant *q, uint32_t oc, const int8_t *x,
                                                         uint32_t c, uint32_t pixels, const int8_t *f, uint32_t oc_n,
                                                         int8_t *out) {
  const int32_t zp = q->output_zero_point, b = q->bias[oc];
  const int32_t m = ec_requant_multiplier(q, oc * q->channel_stride), s = ec_requant_shift(q, oc * q->channel_stride);
  const int32x4_t lo = vdupq_n_s32(q->act_min), hi = vdupq_n_s32(q->act_max);
  const uint32x4_t offs = vmulq_n_u32(vidupq_n_u32(0, 1), oc_n);
  const size_t step = 4u * (size_t)c, out_step = 4u * (size_t)oc_n;
  uint32_t pix = 0;
  for (; pix + 4u <= pixels; pix += 4u, x += step, out += out_step) {
    const int32x4_t acc = ec_mve_dot_4x1(x, x + c, x + 2u * c, x + 3u * c, f, c, b);
    vstrbq_scatter_offset_s32(out, offs, ec_mve_requantize(acc, m, s, zp, lo, hi));
  }
  if (pix < pixels) {
    const uint32_t count = pixels - pix;
    const int8_t *x1 = count > 1 ? x + c : x, *x2 = count > 2 ? x1 + c : x1;
    const int32x4_t acc = ec_mve_dot_4x1(x, x1, x2, x2, f, c, b);
    vstrbq_scatter_offset_p_s32(out, offs, ec_mve_requantize(acc, m, s, zp, lo, hi), vctp32q(count));
  }
}

/* acc + (x0 . row, x1 . row, x2 . row, x3 . row) over k weights of one 4-bit row r with table t, decoded in
 * registers as ec_mve_fc4_rows does: per 32 weights one VLDRB of packed bytes, VAND and VSHR for the even and
 * odd weights' indices, two gathers from the table, then each pixel's 32 inputs split into even and odd lanes
 * (VLD20/VLD21) and two VMLADAVA: 22 instructions per 128 MACs, no decoded copy of the row. The last k % 32
 * weights sixteen at a time, predicated (lanes past k neither gathered nor added). */
__attribute__((always_inline)) static inline int32x4_t ec_mve_dot4_4x1(const int8_t *x0, const int8_t *x1,
                                                                       const int8_t *x2, const int8_t *x3,
                                                                       const uint8_t *r, const int8_t *t, uint32_t k,
                                                                       int32_t acc, uint8x16_t mask) {
  int32_t a0 = acc, a1 = acc, a2 = acc, a3 = acc;
  const uint32_t blocks = k / 32u;
  register uint32_t count __asm__("lr") = blocks; /* the loop counter in LR itself: one register fewer (-Os) */
  __asm__ volatile(
      "wls lr, lr, 2f\n"
      "1:\n\t"
      "vldrb.u8 q2, [%[r]], #16\n\t"
      "vand q3, q2, %q[mask]\n\t"
      "vshr.u8 q2, q2, #4\n\t"
      "vldrb.u8 q4, [%[t], q3]\n\t"
      "vldrb.u8 q5, [%[t], q2]\n\t"
      "vld20.8 {q0, q1}, [%[x0]]\n\t"
      "vld21.8 {q0, q1}, [%[x0]]!\n\t"
      "vmladava.s8 %[a0], q0, q4\n\t"
      "vmladava.s8 %[a0], q1, q5\n\t"
      "vld20.8 {q0, q1}, [%[x1]]\n\t"
      "vld21.8 {q0, q1}, [%[x1]]!\n\t"
      "vmladava.s8 %[a1], q0, q4\n\t"
      "vmladava.s8 %[a1], q1, q5\n\t"
      "vld20.8 {q0, q1}, [%[x2]]\n\t"
      "vld21.8 {q0, q1}, [%[x2]]!\n\t"
      "vmladava.s8 %[a2], q0, q4\n\t"
      "vmladava.s8 %[a2], q1, q5\n\t"
      "vld20.8 {q0, q1}, [%[x3]]\n\t"
      "vld21.8 {q0, q1}, [%[x3]]!\n\t"
      "vmladava.s8 %[a3], q0, q4\n\t"
      "vmladava.s8 %[a3], q1, q5\n\t"
      "le lr, 1b\n"
      "2:\n\t"
      : [a0] "+Te"(a0), [a1] "+Te"(a1), [a2] "+Te"(a2), [a3] "+Te"(a3), [x0] "+r"(x0), [x1] "+r"(x1),
        [x2] "+r"(x2), [x3] "+r"(x3), [r] "+r"(r), "+r"(count)
      : [t] "r"(t), [mask] "w"(mask)
      : "q0", "q1", "q2", "q3", "q4", "q5", "memory");
  for (uint32_t i = blocks * 32u; i < k; i += 16u, x0 += 16, x1 += 16, x2 += 16, x3 += 16, r += 8) {
    const mve_pred16_t p = vctp8q(k - i);
    const uint16x8_t b = vldrbq_z_u16(r, vctp16q((k - i + 1u) / 2u));
    uint8x16_t idx = vmovnbq_u16(vdupq_n_u8(0), vandq_u16(b, vdupq_n_u16(15)));
    idx = vmovntq_u16(idx, vshrq_n_u16(b, 4));
    const int8x16_t w = vldrbq_gather_offset_z_s8(t, idx, p);
    a0 = vmladavaq_s8(a0, vldrbq_z_s8(x0, p), w);
    a1 = vmladavaq_s8(a1, vldrbq_z_s8(x1, p), w);
    a2 = vmladavaq_s8(a2, vldrbq_z_s8(x2, p), w);
    a3 = vmladavaq_s8(a3, vldrbq_z_s8(x3, p), w);
  }
  int32x4_t v = vdupq_n_s32(a0);
  v = vsetq_lane_s32(a1, v, 1);
  v = vsetq_lane_s32(a2, v, 2);
  return vsetq_lane_s32(a3, v, 3);
}

/* One output channel (4-bit row oc, decoded in registers: ec_mve_dot4_4x1) of a 1x1 convolution over `pixels`
 * pixels from x (c values apart), four at a time, stored oc_n apart from out; the requantization read once. */
__attribute__((noinline)) static void ec_mve_1x1_channel4(const ec_conv_params *p, uint32_t oc, const int8_t *x,
                                                          uint32_t pixels, int8_t *out) {
  const ec_requant *q = &p->q;
  const uint32_t c = p->win.in_c, oc_n = p->win.out_c;
  const uint8_t *r = p->w.data + (size_t)oc * p->w.row_stride;
  const int8_t *t = p->w.table + (size_t)oc * p->w.table_stride;
  const int32_t zp = q->output_zero_point, b = q->bias[oc];
  const int32_t m = ec_requant_multiplier(q, oc * q->channel_stride), s = ec_requant_shift(q, oc * q->channel_stride);
  const int32x4_t lo = vdupq_n_s32(q->act_min), hi = vdupq_n_s32(q->act_max);
  const uint32x4_t offs = vmulq_n_u32(vidupq_n_u32(0, 1), oc_n);
  const uint8x16_t mask = vdupq_n_u8(15);
  const size_t step = 4u * (size_t)c, out_step = 4u * (size_t)oc_n;
  uint32_t pix = 0;
  for (; pix + 4u <= pixels; pix += 4u, x += step, out += out_step) {
    const int32x4_t acc = ec_mve_dot4_4x1(x, x + c, x + 2u * c, x + 3u * c, r, t, c, b, mask);
    vstrbq_scatter_offset_s32(out, offs, ec_mve_requantize(acc, m, s, zp, lo, hi));
  }
  if (pix < pixels) {
    const uint32_t count = pixels - pix;
    const int8_t *x1 = count > 1 ? x + c : x, *x2 = count > 2 ? x1 + c : x1;
    const int32x4_t acc = ec_mve_dot4_4x1(x, x1, x2, x2, r, t, c, b, mask);
    vstrbq_scatter_offset_p_s32(out, offs, ec_mve_requantize(acc, m, s, zp, lo, hi), vctp32q(count));
  }
}

/* 1x1, stride 1, no padding (CMSIS-NN arm_convolve_1x1_s8_fast: arm_nn_mat_mult_nt_t_s8): plain int8 rows (on
 * flash), in_c <= EC_MVE_1X1_WIDE: four pixels at a time interleaved on the stack, every output channel over them
 * (ec_mve_channels, pixels outer); else each output channel over the whole image, four pixels (in_c values apart)
 * at a time: 4-bit rows decoded in registers (ec_mve_1x1_channel4), other packed rows decoded once into the
 * scratch. 0 where such a row does not fit it. */
#define EC_MVE_1X1_WIDE 256 /* four pixels interleaved: 1 KB of stack */
static int ec_mve_conv_1x1(const ec_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const uint32_t c = w->in_c, oc_n = w->out_c, pixels = (uint32_t)w->out_h * w->out_w;
  if (p->w.table == NULL && c <= EC_MVE_1X1_WIDE) {
    int8_t xi[4 * EC_MVE_1X1_WIDE];
    for (uint32_t pix = 0; pix < pixels; pix += 4) {
      const uint32_t count = pixels - pix < 4u ? pixels - pix : 4u;
      const int8_t *x0 = input + (size_t)pix * c;
      const int8_t *x1 = count > 1 ? x0 + c : x0, *x2 = count > 2 ? x1 + c : x1, *x3 = count > 3 ? x2 + c : x2;
      ec_mve_interleave(xi, x0, x1, x2, x3, c);
      ec_mve_channels(&p->q, xi, (const int8_t *)p->w.data, p->w.row_stride, c, 0u, oc_n, oc_n, count,
                      output + (size_t)pix * oc_n);
    }
    return 1;
  }
  if (p->w.table != NULL && p->w.bits == 4) {
    for (uint32_t oc = 0; oc < oc_n; ++oc) ec_mve_1x1_channel4(p, oc, input, pixels, output + oc);
    return 1;
  }
  if (p->w.table != NULL && c > EC_ROW_SCRATCH) return 0;
  for (uint32_t oc = 0; oc < oc_n; ++oc) {
    ec_mve_1x1_channel(&p->q, oc, input, c, pixels, ec_row(&p->w, oc, EC_ROW(0), c), oc_n, output + oc);
  }
  return 1;
}
#endif

/* CONV_2D without a fused pool (TFLM reference_integer_ops::ConvPerChannel): output channels two at a time,
 * their rows decoded once, then every output pixel; two pixels of a row whose windows lie inside the input
 * share each weight and input load (ec_dot_2x2). 0 when the rows do not fit the scratch. */
static int ec_conv_fast(const ec_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const uint32_t k = (uint32_t)w->k_h * w->k_w * w->in_c;
  const int one_by_one = w->k_h == 1 && w->k_w == 1 && w->stride_h == 1 && w->stride_w == 1 && w->pad_h == 0 &&
                         w->pad_w == 0 && w->out_h == w->in_h && w->out_w == w->in_w;
#if EC_MVE
  if (one_by_one ? ec_mve_conv_1x1(p, input, output) : ec_mve_conv_im2col(p, input, output, k)) return 1;
#endif
  if (p->w.table != NULL && k > EC_ROW_SCRATCH) return 0;
  if (one_by_one) {
    ec_conv_1x1(p, input, output);
    return 1;
  }
#if !EC_MVE
  if (ec_conv_im2col(p, input, output, k)) return 1;
#endif
  if (ec_conv_pixel_major(p, input, output, k)) return 1;
  const int contiguous = w->dil_w == 1; /* a filter row's k_w * in_c inputs are one run */
  const uint32_t seg = contiguous ? (uint32_t)w->k_w * w->in_c : w->in_c;
  const int segs = contiguous ? 1 : w->k_w;
  const size_t in_row = (size_t)w->in_w * w->in_c;
  const int y_reach = (w->k_h - 1) * w->dil_h, x_reach = (w->k_w - 1) * w->dil_w;
  for (uint32_t oc = 0; oc < w->out_c; oc += 2) {
    const int two = oc + 1 < w->out_c;
    const int8_t *w0 = ec_row(&p->w, oc, EC_ROW(0), k);
    const int8_t *w1 = two ? ec_row(&p->w, oc + 1, EC_ROW(1), k) : w0;
    const int32_t b0 = p->q.bias[oc], b1 = two ? p->q.bias[oc + 1] : 0;
    ec_rq q0, q1;
    ec_rq_load(&q0, &p->q, oc);
    ec_rq_load(&q1, &p->q, two ? oc + 1 : oc);
    for (int oy = 0; oy < w->out_h; ++oy) {
      const int in_y0 = oy * w->stride_h - w->pad_h;
      const int y_inside = in_y0 >= 0 && in_y0 + y_reach < w->in_h;
      int8_t *out = output + (size_t)oy * w->out_w * w->out_c + oc;
      int ox = 0;
      for (; ox + 1 < w->out_w; ox += 2) {
        const int xa0 = ox * w->stride_w - w->pad_w, xb0 = xa0 + w->stride_w;
        int32_t acc[4] = {b0, b1, b0, b1};
        if (y_inside && xa0 >= 0 && xb0 + x_reach < w->in_w) {
          const int8_t *xa = input + (size_t)in_y0 * in_row + (size_t)xa0 * w->in_c;
          const int8_t *xb = input + (size_t)in_y0 * in_row + (size_t)xb0 * w->in_c;
          const int8_t *u0 = w0, *u1 = w1;
          for (int ky = 0; ky < w->k_h; ++ky) {
            for (int s = 0; s < segs; ++s) {
              const size_t dx = (size_t)s * w->dil_w * w->in_c;
              ec_dot_2x2(xa + dx, xb + dx, u0, u1, seg, acc);
              u0 += seg, u1 += seg;
            }
            xa += (size_t)w->dil_h * in_row, xb += (size_t)w->dil_h * in_row;
          }
        } else if (k <= EC_PATCH) {
          int8_t patch[2][EC_PATCH];
          ec_conv_patch(p, input, in_y0, xa0, patch[0]);
          ec_conv_patch(p, input, in_y0, xb0, patch[1]);
          ec_dot_2x2(patch[0], patch[1], w0, w1, k, acc);
        } else {
          ec_conv_pixel_1x2(p, input, in_y0, xa0, w0, w1, acc);
          ec_conv_pixel_1x2(p, input, in_y0, xb0, w0, w1, acc + 2);
        }
        out[0] = ec_rq_apply(&q0, acc[0]);
        out[w->out_c] = ec_rq_apply(&q0, acc[2]);
        if (two) {
          out[1] = ec_rq_apply(&q1, acc[1]);
          out[w->out_c + 1] = ec_rq_apply(&q1, acc[3]);
        }
        out += 2 * (size_t)w->out_c;
      }
      if (ox < w->out_w) {
        int32_t acc[2] = {b0, b1};
        const int x0 = ox * w->stride_w - w->pad_w;
        if (k <= EC_PATCH) {
          int8_t patch[EC_PATCH];
          ec_conv_patch(p, input, in_y0, x0, patch);
          ec_dot_1x2(patch, w0, w1, k, acc);
        } else {
          ec_conv_pixel_1x2(p, input, in_y0, x0, w0, w1, acc);
        }
        out[0] = ec_rq_apply(&q0, acc[0]);
        if (two) out[1] = ec_rq_apply(&q1, acc[1]);
      }
    }
  }
  return 1;
}

/* DEPTHWISE_CONV_2D (TFLM reference_integer_ops::DepthwiseConvPerChannel), channel by channel: the channel's
 * filter decoded once and held in registers (3x3 unrolled), its multiplier read once, every output pixel whose
 * window lies inside the input without bounds checks. 0 when the filter has more taps than the fast path holds. */
#define EC_DW_MAX_TAPS 64

/* `count` outputs of one channel along a row, 3x3 windows all inside the input: x the first window's corner,
 * cs and rs the distances between its columns and rows. Its own function, specialised for the one-shift
 * requantization, so that the weights get the registers (inside ec_depthwise_fast GCC spills them). */

__attribute__((always_inline)) static inline void ec_dw3x3_loop(const int8_t *x, int8_t *out, uint32_t count,
                                                                size_t x_step, size_t out_step, size_t cs,
                                                                size_t rs, const int8_t *f, int32_t bias,
                                                                const ec_rq *rq, int right) {
#if EC_DSP
  /* the weights as four int16 pairs and one: five registers; each input pair joined with PKHBT for SMLAD */
  const int16x2_t f01 = ec_pkhbt(f[0], f[1]), f23 = ec_pkhbt(f[2], f[3]);
  const int16x2_t f45 = ec_pkhbt(f[4], f[5]), f67 = ec_pkhbt(f[6], f[7]);
  const int32_t f8 = f[8];
  for (; count > 0; --count, x += x_step, out += out_step) {
    const int8_t *x1 = x + rs, *x2 = x1 + rs;
    int32_t acc = __smlad(ec_pkhbt(x[0], x[cs]), f01, bias + f8 * x2[2 * cs]);
    acc = __smlad(ec_pkhbt(x[2 * cs], x1[0]), f23, acc);
    acc = __smlad(ec_pkhbt(x1[cs], x1[2 * cs]), f45, acc);
    acc = __smlad(ec_pkhbt(x2[0], x2[cs]), f67, acc);
#else
  const int32_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4], f5 = f[5], f6 = f[6], f7 = f[7], f8 = f[8];
  for (; count > 0; --count, x += x_step, out += out_step) {
    const int8_t *x1 = x + rs, *x2 = x1 + rs;
    uint32_t sum = (uint32_t)bias;
    sum += (uint32_t)(f0 * x[0]) + (uint32_t)(f1 * x[cs]) + (uint32_t)(f2 * x[2 * cs]);
    sum += (uint32_t)(f3 * x1[0]) + (uint32_t)(f4 * x1[cs]) + (uint32_t)(f5 * x1[2 * cs]);
    sum += (uint32_t)(f6 * x2[0]) + (uint32_t)(f7 * x2[cs]) + (uint32_t)(f8 * x2[2 * cs]);
    const int32_t acc = (int32_t)sum;
#endif
    int32_t v = right ? ec_mbqm_right(acc, rq->multiplier, -rq->shift, rq->round)
                      : ec_mbqm(acc, rq->multiplier, rq->shift);
    v = ec_add_wrap(v, rq->zero_point);
    v = EC_MAX(v, rq->act_min);
    *out = (int8_t)EC_MIN(v, rq->act_max);
  }
}

__attribute__((noinline)) static void ec_dw3x3_run(const int8_t *x, int8_t *out, uint32_t count, size_t x_step,
                                                   size_t out_step, size_t cs, size_t rs, const int8_t *f,
                                                   int32_t bias, const ec_rq *rq) {
  if (rq->right) {
    ec_dw3x3_loop(x, out, count, x_step, out_step, cs, rs, f, bias, rq, 1);
  } else {
    ec_dw3x3_loop(x, out, count, x_step, out_step, cs, rs, f, bias, rq, 0);
  }
}

static int ec_depthwise_planes_scratch(const ec_depthwise_params *p, const int8_t *input, int8_t *output);

static int ec_depthwise_fast(const ec_depthwise_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const uint32_t taps = (uint32_t)w->k_h * w->k_w;
  if (ec_depthwise_planes_scratch(p, input, output)) return 1;
  if (taps > EC_DW_MAX_TAPS) return 0;
  const size_t c_in = w->in_c, c_out = w->out_c;
  int32_t offset[EC_DW_MAX_TAPS]; /* input offset of each tap from the window's corner */
  for (int ky = 0, t = 0; ky < w->k_h; ++ky) {
    for (int kx = 0; kx < w->k_w; ++kx, ++t) {
      offset[t] = (int32_t)(((size_t)ky * w->dil_h * w->in_w + (size_t)kx * w->dil_w) * c_in);
    }
  }
  const int y_reach = (w->k_h - 1) * w->dil_h, x_reach = (w->k_w - 1) * w->dil_w;
  const int is3x3 = taps == 9 && w->k_h == 3;
  for (uint32_t oc = 0; oc < c_out; ++oc) {
    const uint32_t ic = oc / p->depth_multiplier;
    int8_t filter[EC_DW_MAX_TAPS];
    const int8_t *f = ec_row(&p->w, oc, filter, taps);
    const int32_t f0 = f[0], f1 = f[1 % taps], f2 = f[2 % taps], f3 = f[3 % taps], f4 = f[4 % taps];
    const int32_t f5 = f[5 % taps], f6 = f[6 % taps], f7 = f[7 % taps], f8 = f[8 % taps];
    const int32_t o1 = offset[1 % taps], o2 = offset[2 % taps], o3 = offset[3 % taps], o4 = offset[4 % taps];
    const int32_t o5 = offset[5 % taps], o6 = offset[6 % taps], o7 = offset[7 % taps], o8 = offset[8 % taps];
    const int32_t bias = p->q.bias[oc];
    ec_rq rq;
    ec_rq_load(&rq, &p->q, oc);
    uint32_t f_sum = 0;
    for (uint32_t t = 0; t < taps; ++t) f_sum += (uint32_t)(int32_t)f[t];
    const int8_t *in_c = input + ic;
    int8_t *out = output + oc;
    for (int oy = 0; oy < w->out_h; ++oy) {
      const int in_y0 = oy * w->stride_h - w->pad_h;
      const int y_inside = in_y0 >= 0 && in_y0 + y_reach < w->in_h;
      for (int ox = 0; ox < w->out_w; ++ox, out += c_out) {
        const int in_x0 = ox * w->stride_w - w->pad_w;
        if (is3x3 && y_inside && in_x0 >= 0) { /* the run of windows inside the input, from here on */
          const int last = (w->in_w - 1 - x_reach + w->pad_w) / w->stride_w; /* the last such ox */
          if (last >= ox) {
            const uint32_t count = (uint32_t)(EC_MIN(last, w->out_w - 1) - ox + 1);
            ec_dw3x3_run(in_c + ((size_t)in_y0 * w->in_w + (size_t)in_x0) * c_in, out, count,
                         (size_t)w->stride_w * c_in, c_out, (size_t)w->dil_w * c_in, (size_t)w->dil_h * w->in_w * c_in,
                         f, bias, &rq);
            ox += (int)count - 1, out += (count - 1) * c_out;
            continue;
          }
        }
        uint32_t acc = (uint32_t)bias;
        if (y_inside && in_x0 >= 0 && in_x0 + x_reach < w->in_w) {
          const int8_t *x = in_c + ((size_t)in_y0 * w->in_w + (size_t)in_x0) * c_in;
          if (is3x3) {
            acc += (uint32_t)(f0 * x[0]) + (uint32_t)(f1 * x[o1]) + (uint32_t)(f2 * x[o2]);
            acc += (uint32_t)(f3 * x[o3]) + (uint32_t)(f4 * x[o4]) + (uint32_t)(f5 * x[o5]);
            acc += (uint32_t)(f6 * x[o6]) + (uint32_t)(f7 * x[o7]) + (uint32_t)(f8 * x[o8]);
          } else {
            for (uint32_t t = 0; t < taps; ++t) acc += (uint32_t)((int32_t)f[t] * x[offset[t]]);
          }
        } else {
          /* taps in the padding read the zero point: zp * sum(f) less zp * f over the taps inside */
          uint32_t inside_sum = 0;
          const int ky0 = ec_first_tap(in_y0, w->dil_h), ky1 = ec_end_tap(in_y0, w->dil_h, w->k_h, w->in_h);
          const int kx0 = ec_first_tap(in_x0, w->dil_w), kx1 = ec_end_tap(in_x0, w->dil_w, w->k_w, w->in_w);
          const size_t x_step = (size_t)w->dil_w * c_in;
          for (int ky = ky0; ky < ky1; ++ky) {
            const int8_t *f_row = f + (size_t)ky * w->k_w;
            const int8_t *x = in_c + ((size_t)(in_y0 + ky * w->dil_h) * w->in_w + (size_t)(in_x0 + kx0 * w->dil_w)) * c_in;
            for (int kx = kx0; kx < kx1; ++kx, x += x_step) {
              acc += (uint32_t)((int32_t)f_row[kx] * *x);
              inside_sum += (uint32_t)(int32_t)f_row[kx];
            }
          }
          acc += (f_sum - inside_sum) * (uint32_t)p->input_zero_point;
        }
        *out = ec_rq_apply(&rq, (int32_t)acc);
      }
    }
  }
  return 1;
}

/* ---- DEPTHWISE_CONV_2D 3x3 over padded planes: every window inside, no border cases ----
 * Each input channel is copied into a plane with its padding written out (the input zero point), so every
 * output's 3x3 window lies inside the plane and is one unrolled sum; a row of a plane is contiguous, so one
 * 32-bit load brings four neighbours: with stride 1, two adjacent outputs take each row's three taps as one
 * SMLAD over [x0, x2] / [x1, x3] and one 16-bit multiply (CMSIS-NN arm_depthwise_conv_3x3_s8 works four channels
 * of one pixel instead; the sums are TFLM's DepthwiseConvPerChannel either way, the padding reading the zero
 * point as TFLM's offset makes it contribute nothing). */

/* The plane of a 3x3, dilation-1 window: rows of pw bytes, ph rows (the padding included), 4 bytes of slack for
 * the word loads past the last tap. 0 when the window is not 3x3 with dilation 1 and stride 1 or 2. */
static uint32_t ec_dw_plane_bytes(const ec_window *w, uint32_t *pw, uint32_t *ph) {
  if (w->k_h != 3 || w->k_w != 3 || w->dil_h != 1 || w->dil_w != 1) return 0;
  if (w->stride_h < 1 || w->stride_h > 2 || w->stride_w < 1 || w->stride_w > 2) return 0;
  *pw = (uint32_t)(w->out_w - 1) * w->stride_w + 3u;
  *ph = (uint32_t)(w->out_h - 1) * w->stride_h + 3u;
  return *pw * *ph + 4u;
}

/* One channel's outputs (out_step apart) from its plane; `fast`: rq->fast (ec_rq_fast), else ec_rq_apply. */
__attribute__((always_inline)) static inline void ec_dw3x3_plane_loop(const int8_t *plane, uint32_t pw,
                                                                      const ec_window *w, int8_t *out,
                                                                      size_t out_step, const int8_t *f,
                                                                      int32_t bias, const ec_rq *rq, int fast) {
  const uint32_t sw = w->stride_w, row_step = (uint32_t)w->stride_h * pw, out_h = w->out_h, out_w = w->out_w;
  /* the requantization in locals: the int8 stores below could alias *rq, and GCC would reload it */
  ec_rq q = *rq;
#if EC_DSP
  /* per filter row: [f0, f2] for SMLAD, f1 in a 16-bit half (rows 0 and 1 share one register) */
  const int16x2_t g0 = ec_pkhbt(f[0], f[2]), g1 = ec_pkhbt(f[3], f[5]), g2 = ec_pkhbt(f[6], f[8]);
  const int16x2_t h01 = ec_pkhbt(f[1], f[4]);
  const int32_t h2 = f[7];
#endif
  const int32_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4], f5 = f[5], f6 = f[6], f7 = f[7], f8 = f[8];
  for (uint32_t oy = 0; oy < out_h; ++oy, plane += row_step) {
    const int8_t *x = plane;
    uint32_t ox = 0;
#if EC_DSP
    if (sw == 1) {
      for (; ox + 2 <= out_w; ox += 2, x += 2, out += 2 * out_step) {
        /* outputs ox and ox + 1: row taps (x0, x1, x2) and (x1, x2, x3) */
        const uint32_t v0 = ec_load32(x), v1 = ec_load32(x + pw), v2 = ec_load32(x + 2 * pw);
        const int16x2_t l0 = __sxtb16(v0), u0 = ec_sxtb16_ror8(v0); /* [x0, x2], [x1, x3] */
        int32_t a = __smlad(l0, g0, bias), b = __smlad(u0, g0, bias);
        a = __smlabb(u0, h01, a), b = __smlatb(l0, h01, b);
        const int16x2_t l1 = __sxtb16(v1), u1 = ec_sxtb16_ror8(v1);
        a = __smlad(l1, g1, a), b = __smlad(u1, g1, b);
        a = __smlabt(u1, h01, a), b = __smlatt(l1, h01, b);
        const int16x2_t l2 = __sxtb16(v2), u2 = ec_sxtb16_ror8(v2);
        a = __smlad(l2, g2, a), b = __smlad(u2, g2, b);
        a = __smlabb(u2, h2, a), b = __smlatb(l2, h2, b);
        if (fast) {
          out[0] = ec_rq_fast(&q, a);
          out[out_step] = ec_rq_fast(&q, b);
        } else {
          out[0] = ec_rq_apply(&q, a);
          out[out_step] = ec_rq_apply(&q, b);
        }
      }
    }
#endif
    for (; ox < out_w; ++ox, x += sw, out += out_step) {
      const int8_t *x1 = x + pw, *x2 = x1 + pw;
      uint32_t sum = (uint32_t)bias;
      sum += (uint32_t)(f0 * x[0]) + (uint32_t)(f1 * x[1]) + (uint32_t)(f2 * x[2]);
      sum += (uint32_t)(f3 * x1[0]) + (uint32_t)(f4 * x1[1]) + (uint32_t)(f5 * x1[2]);
      sum += (uint32_t)(f6 * x2[0]) + (uint32_t)(f7 * x2[1]) + (uint32_t)(f8 * x2[2]);
      out[0] = fast ? ec_rq_fast(&q, (int32_t)sum) : ec_rq_apply(&q, (int32_t)sum);
    }
  }
}

#if !EC_MVE
__attribute__((noinline)) static void ec_dw3x3_plane(const int8_t *plane, uint32_t pw, const ec_window *w,
                                                     int8_t *out, size_t out_step, const int8_t *f, int32_t bias,
                                                     const ec_rq *rq) {
  if (rq->fast) {
    ec_dw3x3_plane_loop(plane, pw, w, out, out_step, f, bias, rq, 1);
  } else {
    ec_dw3x3_plane_loop(plane, pw, w, out, out_step, f, bias, rq, 0);
  }
}
#endif

#if EC_MVE
/* Four adjacent outputs' 3x3 sums from a plane (rows pw apart; `unit`: stride 1, else 2, a gather by xo); `full`:
 * four (else the loads are predicated by p). */
__attribute__((always_inline)) static inline int32x4_t ec_mve_dw3x3_4(const int8_t *x, uint32_t pw, int unit,
                                                                      uint32x4_t xo, mve_pred16_t p, int full,
                                                                      int32_t f0, int32_t f1, int32_t f2, int32_t f3,
                                                                      int32_t f4, int32_t f5, int32_t f6, int32_t f7,
                                                                      int32_t f8, int32_t bias) {
#define EC_DW_TAP(ptr, wt)                                                                                   \
  acc = vmlaq_n_s32(acc,                                                                                     \
                    unit ? (full ? vldrbq_s32(ptr) : vldrbq_z_s32(ptr, p))                                   \
                         : (full ? vldrbq_gather_offset_s32(ptr, xo) : vldrbq_gather_offset_z_s32(ptr, xo, p)), \
                    wt)
  const int8_t *x1 = x + pw, *x2 = x1 + pw;
  int32x4_t acc = vdupq_n_s32(bias);
  EC_DW_TAP(x, f0);
  EC_DW_TAP(x + 1, f1);
  EC_DW_TAP(x + 2, f2);
  EC_DW_TAP(x1, f3);
  EC_DW_TAP(x1 + 1, f4);
  EC_DW_TAP(x1 + 2, f5);
  EC_DW_TAP(x2, f6);
  EC_DW_TAP(x2 + 1, f7);
  EC_DW_TAP(x2 + 2, f8);
#undef EC_DW_TAP
  return acc;
}

/* One channel's outputs (out_step apart) from its plane on the Cortex-M55: four outputs of a row a step, int32
 * lanes, each tap one widening load of the four windows' inputs (VLDRB.S32; stride 2: a gather) and one VMLA by
 * the tap's weight held in a register; requantized together (ec_mve_requantize) and stored by one scatter. A
 * row's last group short of four predicated. The sums are ec_dw3x3_plane_loop's. */
__attribute__((noinline)) static void ec_mve_dw3x3_plane(const int8_t *plane, uint32_t pw, const ec_window *w,
                                                         int8_t *out, size_t out_step, const int8_t *f, int32_t bias,
                                                         const ec_requant *q, uint32_t oc) {
  const uint32_t sw = w->stride_w, row_step = (uint32_t)w->stride_h * pw, out_h = w->out_h, out_w = w->out_w;
  const int32_t m = ec_requant_multiplier(q, oc * q->channel_stride), s = ec_requant_shift(q, oc * q->channel_stride);
  const int32_t zp = q->output_zero_point;
  const int32x4_t lo = vdupq_n_s32(q->act_min), hi = vdupq_n_s32(q->act_max);
  const uint32x4_t offs = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)out_step), xo = vidupq_n_u32(0, 2);
  const int32_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4], f5 = f[5], f6 = f[6], f7 = f[7], f8 = f[8];
  for (uint32_t oy = 0; oy < out_h; ++oy, plane += row_step) {
    const int8_t *x = plane;
    uint32_t ox = 0;
    for (; ox + 4u <= out_w; ox += 4, x += 4u * sw, out += 4u * out_step) {
      const int32x4_t acc = ec_mve_dw3x3_4(x, pw, sw == 1, xo, vctp32q(4), 1, f0, f1, f2, f3, f4, f5, f6, f7, f8, bias);
      vstrbq_scatter_offset_s32(out, offs, ec_mve_requantize(acc, m, s, zp, lo, hi));
    }
    if (ox < out_w) {
      const mve_pred16_t p = vctp32q(out_w - ox);
      const int32x4_t acc = ec_mve_dw3x3_4(x, pw, sw == 1, xo, p, 0, f0, f1, f2, f3, f4, f5, f6, f7, f8, bias);
      vstrbq_scatter_offset_p_s32(out, offs, ec_mve_requantize(acc, m, s, zp, lo, hi), p);
      out += (out_w - ox) * out_step;
    }
  }
}
#endif

#if EC_MVE
/* One filter row's three taps for four adjacent outputs: three widening loads at x (a low register, as VLDRB.S32
 * wants), x + 1, x + 2 and three VMLA by the taps' weights (in assembly: GCC 12 makes each offset address a
 * pointer of its own and spills them). */
__attribute__((always_inline)) static inline int32x4_t ec_mve_dw_row(int32x4_t acc, const int8_t *x, int32_t f0,
                                                                     int32_t f1, int32_t f2) {
  __asm__("vldrb.s32 q0, [%[x]]\n\t"
          "vmla.s32 %q[acc], q0, %[f0]\n\t"
          "vldrb.s32 q0, [%[x], #1]\n\t"
          "vmla.s32 %q[acc], q0, %[f1]\n\t"
          "vldrb.s32 q0, [%[x], #2]\n\t"
          "vmla.s32 %q[acc], q0, %[f2]\n\t"
          : [acc] "+w"(acc)
          : [x] "l"(x), [f0] "r"(f0), [f1] "r"(f1), [f2] "r"(f2), "m"(*(const int8_t(*)[6])x)
          : "q0");
  return acc;
}

/* A 3x3, stride 1 channel from its plane on the Cortex-M55, the plane read as one run: the outputs at plane
 * positions i = oy * pw + ox, ox < out_w, four positions a step (the two past each row's end are computed and not
 * stored); tab holds each step's output offsets (groups of four) and which of its lanes are outputs (pred). */
__attribute__((noinline)) static void ec_mve_dw3x3_run(const int8_t *plane, uint32_t pw, uint32_t steps,
                                                       const uint32_t *tab, const mve_pred16_t *pred, int8_t *out,
                                                       const int8_t *f, int32_t bias, const ec_requant *q,
                                                       uint32_t oc) {
  const int32_t m = ec_requant_multiplier(q, oc * q->channel_stride), s = ec_requant_shift(q, oc * q->channel_stride);
  const int32_t zp = q->output_zero_point;
  const int32x4_t lo = vdupq_n_s32(q->act_min), hi = vdupq_n_s32(q->act_max);
  const int32_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4], f5 = f[5], f6 = f[6], f7 = f[7], f8 = f[8];
  for (uint32_t g = 0; g < steps; ++g, plane += 4) {
    int32x4_t acc = vdupq_n_s32(bias);
    acc = ec_mve_dw_row(acc, plane, f0, f1, f2);
    acc = ec_mve_dw_row(acc, plane + pw, f3, f4, f5);
    acc = ec_mve_dw_row(acc, plane + 2u * pw, f6, f7, f8);
    vstrbq_scatter_offset_p_s32(out, vld1q_u32(tab + 4u * g), ec_mve_requantize(acc, m, s, zp, lo, hi), pred[g]);
  }
}
#define EC_MVE_DW_STEPS 64 /* ec_mve_dw3x3_run's table on the stack: 1 KB of offsets */
#endif

/* DEPTHWISE_CONV_2D 3x3 through planes (see above), `plane` holding plane_bytes: 0 when it does not apply. The
 * input and output may be the same bytes with depth multiplier 1 (ec_inplace.c): channel c's plane is copied
 * before its outputs, which write only channel c, are. */
int ec_depthwise_planes(const ec_depthwise_params *p, const int8_t *input, int8_t *output, int8_t *plane,
                        uint32_t plane_bytes) {
  const ec_window *w = &p->win;
  uint32_t pw, ph;
  const uint32_t need = ec_dw_plane_bytes(w, &pw, &ph);
  if (need == 0 || need > plane_bytes || w->pad_h > 1 || w->pad_w > 1) return 0;
  const size_t c_in = w->in_c, c_out = w->out_c;
  /* the padding, once: the copies below write only the inside */
  memset(plane, (int8_t)p->input_zero_point, need);
  const uint32_t rows = EC_MIN((uint32_t)w->in_h, ph - w->pad_h), cols = EC_MIN((uint32_t)w->in_w, pw - w->pad_w);
#if EC_MVE
  /* stride 1 and a plane of EC_MVE_DW_STEPS groups or fewer: the run's output offsets and lanes, once */
  const uint32_t run = (uint32_t)(w->out_h - 1) * pw + w->out_w, steps = (run + 3u) / 4u;
  const int flat = w->stride_h == 1 && w->stride_w == 1 && steps <= EC_MVE_DW_STEPS;
  uint32_t tab[4 * EC_MVE_DW_STEPS];
  mve_pred16_t pred[EC_MVE_DW_STEPS];
  if (flat) {
    for (uint32_t g = 0; g < steps; ++g) {
      uint32_t lanes = 0;
      for (uint32_t j = 0; j < 4; ++j) {
        const uint32_t i = 4u * g + j, oy = i / pw, ox = i % pw;
        const int valid = i < run && ox < w->out_w;
        tab[4u * g + j] = valid ? (oy * w->out_w + ox) * (uint32_t)c_out : 0u;
        lanes |= valid ? 0xFu << (4u * j) : 0u;
      }
      pred[g] = (mve_pred16_t)lanes;
    }
  }
#endif
  for (uint32_t ic = 0; ic < c_in; ++ic) {
    const int8_t *src = input + ic;
    for (uint32_t y = 0; y < rows; ++y) {
      int8_t *dst = plane + (size_t)(y + w->pad_h) * pw + w->pad_w;
      const int8_t *s = src + (size_t)y * w->in_w * c_in;
      for (uint32_t x = 0; x < cols; ++x, s += c_in) dst[x] = *s;
    }
    for (uint32_t m = 0; m < p->depth_multiplier; ++m) {
      const uint32_t oc = ic * p->depth_multiplier + m;
      int8_t filter[9];
      const int8_t *f = ec_row(&p->w, oc, filter, 9);
#if EC_MVE
      if (flat) {
        ec_mve_dw3x3_run(plane, pw, steps, tab, pred, output + oc, f, p->q.bias[oc], &p->q, oc);
      } else {
        ec_mve_dw3x3_plane(plane, pw, w, output + oc, c_out, f, p->q.bias[oc], &p->q, oc);
      }
#else
      ec_rq rq;
      ec_rq_load(&rq, &p->q, oc);
      ec_dw3x3_plane(plane, pw, w, output + oc, c_out, f, p->q.bias[oc], &rq);
#endif
    }
  }
  return 1;
}

/* ec_depthwise_planes in the row scratch (its two rows), where the input and output are apart. */
static int ec_depthwise_planes_scratch(const ec_depthwise_params *p, const int8_t *input, int8_t *output) {
  return ec_depthwise_planes(p, input, output, EC_ROW(0), 2u * EC_ROW_SCRATCH);
}

/* ec_mbqm_right for r >= 2 with its 64-bit addend built from two words: ec_round_right(r) is 2^(r-2) : 2^30
 * (high : low word) and x < 0 adds -2^31, that is -1 : 2^31 (no carry: the low word's bit 31 is clear). */
static inline int32_t ec_mbqm_right2(int32_t x, int32_t multiplier, int r) {
  const uint32_t lo = 0x40000000u | ((uint32_t)x & 0x80000000u);
  const uint32_t hi = (1u << (r - 2)) + (uint32_t)(x >> 31);
  const int64_t v = (int64_t)(((uint64_t)hi << 32) | lo) + (int64_t)x * multiplier;
  return (int32_t)(v >> 32) >> (r - 1);
}

/* ec_requantize through ec_mbqm_right2 where it applies (multiplier >= 0, a right shift of 2 or more). */
static inline int8_t ec_requantize_r2(const ec_requant *q, int32_t acc, uint32_t channel) {
  const uint32_t i = channel * q->channel_stride;
  const int32_t m = ec_requant_multiplier(q, i), shift = ec_requant_shift(q, i);
  int32_t v = m >= 0 && shift <= -2 ? ec_mbqm_right2(acc, m, -shift) : ec_mbqm(acc, m, shift);
  v = ec_add_wrap(v, q->output_zero_point);
  v = EC_MAX(v, q->act_min);
  return (int8_t)EC_MIN(v, q->act_max);
}

/* FULLY_CONNECTED (TFLM reference_integer_ops::FullyConnected). Every weight is used once per inference, so
 * the loads and the decoding are the cost. Plain int8 rows: on DSP cores the inputs are widened once into int16
 * pairs in the scratch, then four rows a pass over them (CMSIS-NN arm_nn_vec_mat_mult_t_s8 takes two and widens
 * each input word per pass), so a load of widened inputs serves four rows; elsewhere two rows a pass. 4-bit rows on DSP cores meet inputs widened once into int16 (the scratch): with one table for the
 * tensor, a 256-entry table (built per call on the stack, 1 KB) turns one byte of two indices into the int16
 * pair SMLAD takes; with a table per channel whose rows share tables in groups (p->order: the generator's
 * lowering.fc_row_groups), the same through one pair table per group in the scratch, four rows a pass (ec_fc_group;
 * ~1.6 instructions a weight against ~3.4); else two rows a pass, each index looked up in the row's int8 table on
 * flash and multiplied by SMLABB / SMLABT. Other rows take the streaming loop. 0 when no fast path applies. */
#if EC_DSP
/* acc[0..3] += x . (four int8 rows, `stride` apart from w) over n values (a multiple of 4, at least 4), x
 * widened (ec_widen_pairs). The loop is written out (GCC 12 spills three of its thirteen registers): per four
 * inputs one LDRD of the widened inputs and, per row, one LDR, two SXTB16 and two SMLAD. */
__attribute__((noinline)) static void ec_dot_4rows(const uint32_t *xw, const int8_t *w, size_t stride, uint32_t n,
                                                   int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int8_t *w2 = w + 2 * stride;
  const uint32_t *end = xw + n / 2;
  uint32_t xl, xh, v, t;
  __asm__ volatile(
      "1:\n\t"
      "ldrd %[xl], %[xh], [%[x]], #8\n\t"
      "ldr %[v], [%[w], %[s]]\n\t"
      "sxtb16 %[t], %[v]\n\t"
      "sxtb16 %[v], %[v], ror #8\n\t"
      "smlad %[a1], %[xl], %[t], %[a1]\n\t"
      "smlad %[a1], %[xh], %[v], %[a1]\n\t"
      "ldr %[v], [%[w]], #4\n\t"
      "sxtb16 %[t], %[v]\n\t"
      "sxtb16 %[v], %[v], ror #8\n\t"
      "smlad %[a0], %[xl], %[t], %[a0]\n\t"
      "smlad %[a0], %[xh], %[v], %[a0]\n\t"
      "ldr %[v], [%[w2], %[s]]\n\t"
      "sxtb16 %[t], %[v]\n\t"
      "sxtb16 %[v], %[v], ror #8\n\t"
      "smlad %[a3], %[xl], %[t], %[a3]\n\t"
      "smlad %[a3], %[xh], %[v], %[a3]\n\t"
      "ldr %[v], [%[w2]], #4\n\t"
      "sxtb16 %[t], %[v]\n\t"
      "sxtb16 %[v], %[v], ror #8\n\t"
      "smlad %[a2], %[xl], %[t], %[a2]\n\t"
      "smlad %[a2], %[xh], %[v], %[a2]\n\t"
      "cmp %[x], %[end]\n\t"
      "bne 1b\n\t"
      : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(xw), [w] "+r"(w), [w2] "+r"(w2),
        [xl] "=&r"(xl), [xh] "=&r"(xh), [v] "=&r"(v), [t] "=&r"(t)
      : [s] "r"(stride), [end] "r"(end)
      : "cc", "memory");
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* n int8 (a multiple of 4 of them) widened into int16 pairs in SXTB16's order, [x0 x2] [x1 x3] every four. */
static void ec_widen_pairs(const int8_t *x, uint32_t n, uint32_t *xw) {
  for (uint32_t i = 0; i + 4 <= n; i += 4, xw += 2) {
    const uint32_t v = ec_load32(x + i);
    xw[0] = (uint32_t)__sxtb16(v);
    xw[1] = (uint32_t)ec_sxtb16_ror8(v);
  }
}

/* The 256 int16 pairs (table[low nibble], table[high nibble]) one byte of two 4-bit indices stands for.
 * (noinline here and below: inlined, GCC 12 rebuilds the stack tables' addresses inside the loops.) */
__attribute__((noinline)) static void ec_pair_table(const int8_t *table, uint32_t entries, uint32_t *pairs) {
  for (uint32_t hi = 0; hi < entries; ++hi) {
    const uint32_t high = (uint32_t)(int32_t)table[hi] << 16;
    uint32_t *row = pairs + hi * 16u;
    for (uint32_t lo = 0; lo < entries; ++lo) row[lo] = ((uint32_t)(int32_t)table[lo] & 0xFFFFu) | high;
  }
}

/* sum(w[i] * x[i]) over a 4-bit row of n (even) weights through its pair table, x as int16. */
__attribute__((noinline)) static int32_t ec_dot_pairs(const uint8_t *r, const uint32_t *pairs, const int16_t *x,
                                                      uint32_t n, int32_t acc) {
  uint32_t i = 0;
  for (; i + 4 <= n; i += 4, r += 2, x += 4) {
    int16x2_t xl, xh;
    memcpy(&xl, x, 4);
    memcpy(&xh, x + 2, 4);
    acc = __smlad(xl, (int16x2_t)pairs[r[0]], acc);
    acc = __smlad(xh, (int16x2_t)pairs[r[1]], acc);
  }
  if (i < n) {
    int16x2_t xl;
    memcpy(&xl, x, 4);
    acc = __smlad(xl, (int16x2_t)pairs[r[0]], acc);
  }
  return acc;
}

/* acc[0..1] += x . (4-bit rows r0, r1 through their int8 tables t0, t1) over n (even) values, x as int16:
 * eight indices of each row a word, each looked up and multiplied into the bottom or top half of an input pair. */
#define EC_NIB(h, k) (((h) >> (4 * (k))) & 15u)
#define EC_4BIT_STEP(j)                                                   \
  do {                                                                    \
    int32_t xp;                                                           \
    memcpy(&xp, x + 2 * (j), 4);                                          \
    a0 = __smlabb(t0[EC_NIB(h0, 2 * (j))], xp, a0);                       \
    a1 = __smlabb(t1[EC_NIB(h1, 2 * (j))], xp, a1);                       \
    a0 = __smlabt(t0[EC_NIB(h0, 2 * (j) + 1)], xp, a0);                   \
    a1 = __smlabt(t1[EC_NIB(h1, 2 * (j) + 1)], xp, a1);                   \
  } while (0)
__attribute__((noinline)) static void ec_dot_4bit_2rows(const uint8_t *r0, const uint8_t *r1, const int8_t *t0,
                                                        const int8_t *t1, const int16_t *x, uint32_t n,
                                                        int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1];
  const int16_t *end = x + (n & ~7u);
  for (; x != end; x += 8, r0 += 4, r1 += 4) {
    uint32_t h0, h1;
    memcpy(&h0, r0, 4);
    memcpy(&h1, r1, 4);
    EC_4BIT_STEP(0);
    EC_4BIT_STEP(1);
    EC_4BIT_STEP(2);
    EC_4BIT_STEP(3);
  }
  for (uint32_t i = n & 7u; i > 0; i -= 2, x += 2, ++r0, ++r1) {
    const uint32_t h0 = *r0, h1 = *r1;
    EC_4BIT_STEP(0);
  }
  acc[0] = a0, acc[1] = a1;
}
#undef EC_4BIT_STEP
#undef EC_NIB

/* ec_pair_table for a table of `entries` (1..16), in about 400 instructions instead of ~1,650 (it is built once
 * per group of rows, ec_fc_4bit): row 0 (high nibble 0) built entry by entry, then each row hi is row hi - 1 with
 * (t[hi] - t[hi - 1]) << 16 added to every entry (the low halves stay), eight entries an LDM, eight ADD and an
 * STM (fixed registers r4-r11). The words of indices past `entries` hold whatever they held: never read. */
/* Eight words of the previous row with delta << 16 added, stored as the next row's (ec_pair_table16's loop). */
#define EC_PAIR_ROW8                                          \
  "ldmia %[src]!, {r4, r5, r6, r7, r8, r9, r10, r11}\n\t"  \
  "add r4, r4, %[delta], lsl #16\n\t"                       \
  "add r5, r5, %[delta], lsl #16\n\t"                       \
  "add r6, r6, %[delta], lsl #16\n\t"                       \
  "add r7, r7, %[delta], lsl #16\n\t"                       \
  "add r8, r8, %[delta], lsl #16\n\t"                       \
  "add r9, r9, %[delta], lsl #16\n\t"                       \
  "add r10, r10, %[delta], lsl #16\n\t"                     \
  "add r11, r11, %[delta], lsl #16\n\t"                     \
  "stmia %[dst]!, {r4, r5, r6, r7, r8, r9, r10, r11}\n\t"
__attribute__((noinline)) static void ec_pair_table16(const int8_t *t, uint32_t entries, uint32_t *pairs) {
  /* indices from `entries` on never occur: their rows and columns of the table are left as they are */
  const int32_t t0 = t[0];
  for (uint32_t k = 0; k < entries; ++k) pairs[k] = (uint32_t)ec_pkhbt(t[k], t0);
  if (entries < 2u) return;
  const uint32_t *src = pairs;
  uint32_t *dst = pairs + 16;
  const int8_t *th = t, *end = t + entries - 1u;
  int32_t prev, delta;
  __asm__ volatile(
      "1:\n\t"
      "ldrsb %[prev], [%[th]], #1\n\t"
      "ldrsb %[delta], [%[th]]\n\t"
      "sub %[delta], %[delta], %[prev]\n\t"
      EC_PAIR_ROW8 EC_PAIR_ROW8
      "cmp %[th], %[end]\n\t"
      "bne 1b\n\t"
      : [th] "+r"(th), [src] "+r"(src), [dst] "+r"(dst), [prev] "=&r"(prev), [delta] "=&r"(delta)
      : [end] "r"(end)
      : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "cc", "memory");
}
#undef EC_PAIR_ROW8

/* Accumulators of m rows order[0..m) (bit 15 aside) of one group through its pair table, x the n inputs as
 * int16, into acc: two rows a pass, an odd last row alone. The dot product is written out (GCC 12 reloads the
 * inputs word by word and copies the row pointers): per eight values of the two rows one LDM of the inputs'
 * four int16 pairs (fixed registers r8-r11: LDM wants them ascending), then per row four LDRB of index bytes,
 * four LDR of their pairs and four SMLAD, 1.69 instructions a weight. */
#define EC_PAIRS_1ROW_STEP(X)                 \
  "ldrb %[t], [%[r0]], #1\n\t"                \
  "ldr %[t], [%[pt], %[t], lsl #2]\n\t"       \
  "smlad %[a0], " X ", %[t], %[a0]\n\t"
#define EC_PAIRS_2ROWS_STEP(X)                \
  "ldrb %[t], [%[r0]], #1\n\t"                \
  "ldr %[t], [%[pt], %[t], lsl #2]\n\t"       \
  "smlad %[a0], " X ", %[t], %[a0]\n\t"       \
  "ldrb %[u], [%[r1]], #1\n\t"                \
  "ldr %[u], [%[pt], %[u], lsl #2]\n\t"       \
  "smlad %[a1], " X ", %[u], %[a1]\n\t"
/* Four rows a pass where the pair table follows the inputs (n a multiple of 16: the loop, sixteen values a step,
 * ends where the table starts, which frees a register): per four values one LDRD of two int16 pairs, then per
 * row two LDRB, two LDR and two SMLAD, 1.59 instructions a weight. */
#define EC_PAIRS_4ROWS_STEP(R, A, X)          \
  "ldrb %[t], [" R "], #1\n\t"                \
  "ldr %[t], [%[pt], %[t], lsl #2]\n\t"       \
  "smlad " A ", " X ", %[t], " A "\n\t"
#define EC_PAIRS_4ROWS_HALF                                                                                \
  "ldrd %[xl], %[xh], [%[x]], #8\n\t" EC_PAIRS_4ROWS_STEP("%[r0]", "%[a0]", "%[xl]")                        \
      EC_PAIRS_4ROWS_STEP("%[r0]", "%[a0]", "%[xh]") EC_PAIRS_4ROWS_STEP("%[r1]", "%[a1]", "%[xl]")           \
          EC_PAIRS_4ROWS_STEP("%[r1]", "%[a1]", "%[xh]") EC_PAIRS_4ROWS_STEP("%[r2]", "%[a2]", "%[xl]")       \
              EC_PAIRS_4ROWS_STEP("%[r2]", "%[a2]", "%[xh]") EC_PAIRS_4ROWS_STEP("%[r3]", "%[a3]", "%[xl]")   \
                  EC_PAIRS_4ROWS_STEP("%[r3]", "%[a3]", "%[xh]")
#if !EC_MVE /* GCC 12 finds no thirteen registers for it on the Cortex-M55 (whose MVE path takes these rows) */
__attribute__((noinline)) static void ec_dot_pairs_4rows(const uint8_t *data, size_t rs, const int32_t *bias,
                                                         const uint16_t *order, uint32_t passes,
                                                         const uint32_t *pairs, const int16_t *x, int32_t *acc) {
  for (; passes > 0; --passes, order += 4, acc += 4) {
    const uint32_t o0 = order[0] & 0x7FFFu, o1 = order[1] & 0x7FFFu, o2 = order[2] & 0x7FFFu;
    const uint32_t o3 = order[3] & 0x7FFFu;
    const uint8_t *r0 = data + o0 * rs, *r1 = data + o1 * rs, *r2 = data + o2 * rs, *r3 = data + o3 * rs;
    int32_t a0 = bias[o0], a1 = bias[o1], a2 = bias[o2], a3 = bias[o3];
    const int16_t *xp = x;
    uint32_t t, xl, xh;
    __asm__ volatile("1:\n\t" EC_PAIRS_4ROWS_HALF EC_PAIRS_4ROWS_HALF EC_PAIRS_4ROWS_HALF EC_PAIRS_4ROWS_HALF
                     "cmp %[x], %[pt]\n\t"
                     "bne 1b\n\t"
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(xp), [r0] "+r"(r0),
                       [r1] "+r"(r1), [r2] "+r"(r2), [r3] "+r"(r3), [t] "=&r"(t), [xl] "=&r"(xl), [xh] "=&r"(xh)
                     : [pt] "r"(pairs)
                     : "cc", "memory");
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
  }
}
#endif

__attribute__((noinline)) static void ec_fc_group_dots(const ec_fc_params *p, const uint16_t *order, uint32_t m,
                                                       const uint32_t *pairs, const int16_t *x, int32_t *acc) {
  const uint8_t *data = p->w.data;
  const size_t rs = p->w.row_stride;
  const int32_t *bias = p->q.bias;
  const uint32_t n = p->in_n;
  const int16_t *x_end = x + (n & ~7u);
  uint32_t i = 0;
#if !EC_MVE
  if (n % 16u == 0 && (const void *)x_end == (const void *)pairs) {
    ec_dot_pairs_4rows(data, rs, bias, order, m / 4u, pairs, x, acc);
    i = m & ~3u;
  }
#endif
  for (; i + 2u <= m; i += 2) {
    const uint32_t oc0 = order[i] & 0x7FFFu, oc1 = order[i + 1] & 0x7FFFu;
    const uint8_t *r0 = data + oc0 * rs, *r1 = data + oc1 * rs;
    int32_t a0 = bias[oc0], a1 = bias[oc1];
    const int16_t *xp = x;
    if (xp != x_end) {
      uint32_t t, u;
      __asm__ volatile("1:\n\t"
                       "ldmia %[x]!, {r8, r9, r10, r11}\n\t" EC_PAIRS_2ROWS_STEP("r8") EC_PAIRS_2ROWS_STEP("r9")
                           EC_PAIRS_2ROWS_STEP("r10") EC_PAIRS_2ROWS_STEP("r11") "cmp %[x], %[end]\n\t"
                                                                                 "bne 1b\n\t"
                       : [a0] "+r"(a0), [a1] "+r"(a1), [x] "+r"(xp), [r0] "+r"(r0), [r1] "+r"(r1), [t] "=&r"(t),
                         [u] "=&r"(u)
                       : [pt] "r"(pairs), [end] "r"(x_end)
                       : "r8", "r9", "r10", "r11", "cc", "memory");
    }
    for (uint32_t k = n & 7u; k > 0; k -= 2, xp += 2) {
      int16x2_t xv;
      memcpy(&xv, xp, 4);
      a0 = __smlad(xv, (int16x2_t)pairs[*r0++], a0);
      a1 = __smlad(xv, (int16x2_t)pairs[*r1++], a1);
    }
    acc[i] = a0;
    acc[i + 1] = a1;
  }
  if (i < m) { /* the last row alone: per eight values one LDM, four LDRB, four LDR and four SMLAD */
    const uint32_t oc = order[i] & 0x7FFFu;
    const uint8_t *r0 = data + oc * rs;
    int32_t a0 = bias[oc];
    const int16_t *xp = x;
    if (xp != x_end) {
      uint32_t t;
      __asm__ volatile("1:\n\t"
                       "ldmia %[x]!, {r8, r9, r10, r11}\n\t" EC_PAIRS_1ROW_STEP("r8") EC_PAIRS_1ROW_STEP("r9")
                           EC_PAIRS_1ROW_STEP("r10") EC_PAIRS_1ROW_STEP("r11") "cmp %[x], %[end]\n\t"
                                                                               "bne 1b\n\t"
                       : [a0] "+r"(a0), [x] "+r"(xp), [r0] "+r"(r0), [t] "=&r"(t)
                       : [pt] "r"(pairs), [end] "r"(x_end)
                       : "r8", "r9", "r10", "r11", "cc", "memory");
    }
    for (uint32_t k = n & 7u; k > 0; k -= 2, xp += 2) {
      int16x2_t xv;
      memcpy(&xv, xp, 4);
      a0 = __smlad(xv, (int16x2_t)pairs[*r0++], a0);
    }
    acc[i] = a0;
  }
}

__attribute__((noinline)) static int32_t ec_mbqm_call(int32_t x, int32_t multiplier, int shift) {
  return ec_mbqm(x, multiplier, shift);
}

/* out[order[i]] = the requantized acc[i], i < m: ec_requantize_r2, its one-shift form inline and the general
 * one a call (ec_mbqm_call), so the loop's numbers stay in registers. */
__attribute__((noinline)) static void ec_fc_group_requant(const ec_requant *q, const uint16_t *order, uint32_t m,
                                                          const int32_t *acc, int8_t *out) {
  const ec_requant rq = *q; /* a copy the int8 stores cannot alias: its pointers stay in registers */
  q = &rq;
  const uint32_t cmask = q->channel_stride != 0 ? 0x7FFFu : 0u;
  const int32_t zp = q->output_zero_point, lo = q->act_min, hi = q->act_max;
  for (const uint16_t *end = order + m; order != end; ++order) {
    const uint32_t oc = *order & 0x7FFFu, c = oc & cmask;
    const int32_t x = *acc++, mm = ec_requant_multiplier(q, c), sh = ec_requant_shift(q, c);
    int32_t v;
    if (mm >= 0 && sh <= -2) {
      const uint32_t low = 0x40000000u | ((uint32_t)x & 0x80000000u);
      const uint32_t high = (0x40000000u >> (sh + 32)) + (uint32_t)(x >> 31); /* 2^(-sh-2): -31 <= sh <= -2 */
      const int64_t r = (int64_t)(((uint64_t)high << 32) | low) + (int64_t)x * mm;
      v = (int32_t)(r >> 32) >> (-sh - 1);
    } else {
      v = ec_mbqm_call(x, mm, sh);
    }
    v = ec_add_wrap(v, zp);
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    out[oc] = (int8_t)v;
  }
}

/* One group of `count` rows order[0..count) that share a table (ec_fc_4bit), sixteen rows at a time: their
 * accumulators first, then their requantization, each loop with its numbers in registers. */
static void ec_fc_group(const ec_fc_params *p, const uint16_t *order, uint32_t count, const uint32_t *pairs,
                        const int16_t *x, int8_t *out) {
  int32_t acc[16];
  for (uint32_t i = 0; i < count; i += 16u) {
    const uint32_t m = count - i < 16u ? count - i : 16u;
    ec_fc_group_dots(p, order + i, m, pairs, x, acc);
    ec_fc_group_requant(&p->q, order + i, m, acc, out);
  }
}
#undef EC_PAIRS_1ROW_STEP
#undef EC_PAIRS_2ROWS_STEP
#undef EC_PAIRS_4ROWS_STEP
#undef EC_PAIRS_4ROWS_HALF

/* 4-bit rows: one pair table for the whole tensor (built once per call, on the stack); rows in groups that
 * share a table (p->order) through one pair table per group in `pairs` (256 words of scratch; NULL: none), two
 * rows of a group a pass; else each row's own int8 table. */
static void ec_fc_4bit(const ec_fc_params *p, const int16_t *x16, uint32_t *pairs, int8_t *out) {
  const uint32_t n = p->in_n, out_n = p->out_n;
  const uint32_t stride = p->w.table_stride;
  const uint8_t *data = p->w.data;
  const size_t rs = p->w.row_stride;
  if (stride == 0) {
    uint32_t stack_pairs[256];
    ec_pair_table(p->w.table, 16, stack_pairs);
    for (uint32_t oc = 0; oc < out_n; ++oc) {
      out[oc] = ec_requantize_r2(&p->q, ec_dot_pairs(data + oc * rs, stack_pairs, x16, n, p->q.bias[oc]), oc);
    }
    return;
  }
  const int8_t *t = p->w.table;
  if (p->order != NULL && pairs != NULL) {
    const uint16_t *order = p->order;
    for (uint32_t i = 0; i < out_n;) {
      uint32_t count = 1;
      while (i + count < out_n && !(order[i + count] & 0x8000u)) ++count;
      ec_pair_table16(t + (order[i] & 0x7FFFu) * stride, stride < 16u ? stride : 16u, pairs);
      ec_fc_group(p, order + i, count, pairs, x16, out);
      i += count;
    }
    return;
  }
  for (uint32_t oc = 0; oc < out_n; oc += 2) {
    const int two = oc + 1 < out_n;
    const uint32_t oc1 = two ? oc + 1 : oc;
    int32_t acc[2] = {p->q.bias[oc], p->q.bias[oc1]};
    ec_dot_4bit_2rows(data + oc * rs, data + oc1 * rs, t + oc * stride, t + oc1 * stride, x16, n, acc);
    out[oc] = ec_requantize_r2(&p->q, acc[0], oc);
    if (two) out[oc + 1] = ec_requantize_r2(&p->q, acc[1], oc + 1);
  }
}
#endif

/* Plain int8 rows, one batch. */
static void ec_fc_int8(const ec_fc_params *p, const int8_t *x, int8_t *out) {
  const uint32_t n = p->in_n, out_n = p->out_n;
  const size_t stride = p->w.row_stride;
  const int8_t *w = (const int8_t *)p->w.data;
  uint32_t oc = 0;
#if EC_DSP
  if (n >= 4 && (n & ~3u) <= EC_ROW_SCRATCH) {
    uint32_t *xw = (uint32_t *)(void *)ec_row_scratch; /* n & ~3 int16 */
    const uint32_t n4 = n & ~3u;
    ec_widen_pairs(x, n4, xw);
    for (; oc + 4 <= out_n; oc += 4) {
      int32_t acc[4] = {p->q.bias[oc], p->q.bias[oc + 1], p->q.bias[oc + 2], p->q.bias[oc + 3]};
      const int8_t *r = w + oc * stride;
      ec_dot_4rows(xw, r, stride, n4, acc);
      for (uint32_t i = n4; i < n; ++i) {
        const int32_t v = x[i];
        acc[0] += v * r[i], acc[1] += v * r[stride + i], acc[2] += v * r[2 * stride + i];
        acc[3] += v * r[3 * stride + i];
      }
      for (uint32_t j = 0; j < 4; ++j) out[oc + j] = ec_requantize_r2(&p->q, acc[j], oc + j);
    }
  }
#endif
  for (; oc < out_n; oc += 2) {
    const int two = oc + 1 < out_n;
    const int8_t *w0 = w + oc * stride;
    int32_t acc[2] = {p->q.bias[oc], two ? p->q.bias[oc + 1] : 0};
    ec_dot_1x2(x, w0, two ? w0 + stride : w0, n, acc);
    out[oc] = ec_requantize_r2(&p->q, acc[0], oc);
    if (two) out[oc + 1] = ec_requantize_r2(&p->q, acc[1], oc + 1);
  }
}

static int ec_fully_connected_fast(const ec_fc_params *p, const int8_t *input, int8_t *output) {
  const uint32_t n = p->in_n;
#if EC_DSP
  if (p->w.table != NULL && p->w.bits == 4 && n % 2 == 0 && n <= EC_ROW_SCRATCH) {
    int16_t *x16 = ec_row_scratch; /* n int16, then a group's pair table (256 words) where the scratch holds it */
    uint32_t *pairs = 2u * (size_t)n + 1024u <= 2u * (size_t)EC_ROW_SCRATCH ? (uint32_t *)(void *)(x16 + n) : NULL;
    for (uint32_t b = 0; b < p->batches; ++b) {
      const int8_t *x = input + (size_t)b * n;
      uint32_t i = 0;
      for (; i + 4u <= n; i += 4u) { /* [x0 x1] [x2 x3]: SXTB16's pairs [x0 x2] [x1 x3] repacked */
        const uint32_t v = ec_load32(x + i);
        const uint32_t even = (uint32_t)__sxtb16(v), odd = (uint32_t)ec_sxtb16_ror8(v);
        const uint32_t w[2] = {(even & 0xFFFFu) | (odd << 16), (odd & 0xFFFF0000u) | (even >> 16)};
        memcpy(x16 + i, w, 8);
      }
      for (; i < n; ++i) x16[i] = x[i];
      ec_fc_4bit(p, x16, pairs, output + (size_t)b * p->out_n);
    }
    return 1;
  }
#endif
  if (p->w.table != NULL) return 0;
  for (uint32_t b = 0; b < p->batches; ++b) ec_fc_int8(p, input + (size_t)b * n, output + (size_t)b * p->out_n);
  return 1;
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
  const int row_inside = w->dil_w == 1 && in_x0 >= 0 && in_x0 + w->k_w <= w->in_w;
  for (int ky = 0; ky < w->k_h; ++ky) {
    const int iy = in_y0 + ky * w->dil_h;
    if (row_inside && iy >= 0 && iy < w->in_h) {
      /* the whole filter row lies inside the input: k_w * in_c contiguous inputs, one stream */
      const int8_t *x = input + ((size_t)iy * w->in_w + (size_t)in_x0) * w->in_c;
      acc = ec_add_wrap(acc, ec_stream_dot(&s, x, (uint32_t)w->k_w * w->in_c));
      continue;
    }
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

/* CONV_2D with its fused MAX_POOL_2D, fast: pool outputs outer, output channels in blocks inner (CMSIS-NN
 * arm_convolve_s8's pixel-major order), so a window's conv pixels are located (or built as patches) once for the
 * block's channels. A channel's requantization is non-decreasing in its accumulator where the multiplier is >= 0
 * and there is no left shift (SRDHM, the rounding shift, the zero point and the clamp all are), so only the
 * window's largest accumulator is requantized: TFLM's MaxPool of the requantized values, bit for bit.
 * DSP cores take the window's pixels four at a time, widened once into int16 pairs, so the loop widens only the
 * weights and every weight load serves four pixels; the Cortex-M55 interleaves the four (ec_mve_put) for
 * ec_mve_dot_4x1i; elsewhere (and for pixels longer than EC_POOL_WIDE values or not one run) two pixels times two
 * channels (ec_dot_2x2). 0 (the value-by-value path) for a channel with a
 * left shift, rows that do not fit the scratch, or windows across the padding longer than EC_PATCH. */
#define EC_POOL_BLOCK 64 /* channels a block holds: int32 maxima on the stack */
#define EC_POOL_WIDE 64  /* values of a pixel the DSP path widens (4 pixels: 1 KB of stack; MVE: 320 bytes) */

static inline int ec_rq_monotone(const ec_requant *q, uint32_t channel) {
  const uint32_t i = channel * q->channel_stride;
  return ec_requant_multiplier(q, i) >= 0 && ec_requant_shift(q, i) <= 0;
}

/* out[c] = the pool's clamp of the conv's requantization of top[c], for `count` channels from oc0 whose
 * requantization ec_rq_monotone accepts (multiplier >= 0, shift <= 0); `empty`: the window had no pixel, and
 * TFLM's MaxPool gives the lowest int8. */
static void ec_pool_requantize(const ec_requant *q, const ec_pool_fusion *pool, uint32_t oc0, uint32_t count,
                               const int32_t *top, int empty, int8_t *out) {
  const ec_requant rq = *q; /* a copy the int8 stores cannot alias: its pointers stay in registers */
  q = &rq;
  const uint32_t cs = q->channel_stride;
  const int32_t zp = q->output_zero_point;
  /* the conv's clamp then the pool's: one clamp to the ranges' intersection, or a constant where they miss */
  int32_t lo = EC_MAX(q->act_min, pool->act_min), hi = EC_MIN(q->act_max, pool->act_max);
  if (empty || lo > hi) {
    int32_t v = empty ? -128 : EC_MIN(EC_MAX(q->act_min, pool->act_min), q->act_max);
    v = EC_MIN(EC_MAX(v, pool->act_min), pool->act_max);
    lo = hi = v;
  }
  for (uint32_t c = 0; c < count; ++c) {
    const int32_t m = ec_requant_multiplier(q, (oc0 + c) * cs), s = ec_requant_shift(q, (oc0 + c) * cs);
    int32_t v = s <= -2 ? ec_mbqm_right2(top[c], m, -s) : ec_mbqm(top[c], m, s);
    v = ec_add_wrap(v, zp);
    out[c] = (int8_t)EC_MIN(EC_MAX(v, lo), hi);
  }
}

/* One or two conv pixels' inputs: `segs` runs of `seg` values, dy apart (the filter rows), in the input or in a
 * patch; xb NULL for one pixel. */
typedef struct {
  const int8_t *xa, *xb;
  size_t dy;
  uint32_t segs, seg;
} ec_pool_px;

/* top[c] = max(top[c], the conv accumulators of the pixels) for `count` channels whose rows (int8, `stride`
 * apart) start at w. */
__attribute__((noinline)) static void ec_conv_pool_block(const ec_pool_px *x, const int8_t *w, size_t stride,
                                                         const int32_t *bias, uint32_t count, int32_t *top) {
  const uint32_t segs = x->segs, seg = x->seg;
  const size_t dy = x->dy;
  uint32_t c = 0;
  for (; c + 2 <= count; c += 2, w += 2 * stride) {
    const int8_t *xa = x->xa, *xb = x->xb, *w0 = w, *w1 = w + stride;
    int32_t acc[4] = {bias[c], bias[c + 1], bias[c], bias[c + 1]};
    if (xb != NULL) {
      for (uint32_t s = 0; s < segs; ++s, xa += dy, xb += dy, w0 += seg, w1 += seg) ec_dot_2x2(xa, xb, w0, w1, seg, acc);
      acc[0] = EC_MAX(acc[0], acc[2]);
      acc[1] = EC_MAX(acc[1], acc[3]);
    } else {
      for (uint32_t s = 0; s < segs; ++s, xa += dy, w0 += seg, w1 += seg) ec_dot_1x2(xa, w0, w1, seg, acc);
    }
    top[c] = EC_MAX(top[c], acc[0]);
    top[c + 1] = EC_MAX(top[c + 1], acc[1]);
  }
  if (c < count) {
    const int8_t *xa = x->xa, *xb = x->xb != NULL ? x->xb : x->xa, *w0 = w;
    int32_t acc[2] = {bias[c], bias[c]};
    for (uint32_t s = 0; s < segs; ++s, xa += dy, xb += dy, w0 += seg) {
      int32_t t[4] = {0, 0, 0, 0};
      ec_dot_2x2(xa, xb, w0, w0, seg, t);
      acc[0] = ec_add_wrap(acc[0], t[0]);
      acc[1] = ec_add_wrap(acc[1], t[2]);
    }
    top[c] = EC_MAX(top[c], EC_MAX(acc[0], acc[1]));
  }
}

#if EC_DSP && !EC_MVE /* the Cortex-M55 takes ec_mve_pool_run4 */
/* Pixel j (of 4) of a group, n int8 values (a multiple of 4), widened into xw: for every 4 values, eight words,
 * [x0 x2] [x1 x3] of pixel 0, then of pixels 1, 2, 3. */
static void ec_pool_widen(const int8_t *x, uint32_t n, uint32_t j, uint32_t *xw) {
  uint32_t *d = xw + 2 * j;
  uint32_t i = 0;
  for (; i + 4 <= n; i += 4, d += 8) {
    const uint32_t v = ec_load32(x + i);
    d[0] = (uint32_t)__sxtb16(v);
    d[1] = (uint32_t)ec_sxtb16_ror8(v);
  }
}

/* top[c] = max(top[c], the accumulators of the 4 widened pixels) over n values (a multiple of 4) for `count`
 * channels whose rows follow each other from w (n apart). */
__attribute__((noinline)) static void ec_pool_run4(const uint32_t *xw, uint32_t n, const int8_t *w,
                                                   const int32_t *bias, uint32_t count, int32_t *top) {
  const uint32_t *xend = xw + 2 * n;
  for (int32_t *end = top + count; top != end; ++top) {
    int32_t a0 = *bias++, a1 = a0, a2 = a0, a3 = a0;
    for (const uint32_t *x = xw; x != xend; x += 8) {
      const uint32_t v = ec_load32(w);
      w += 4;
      const int16x2_t wl = __sxtb16(v), wh = ec_sxtb16_ror8(v);
      a0 = __smlad((int16x2_t)x[0], wl, a0);
      a0 = __smlad((int16x2_t)x[1], wh, a0);
      a1 = __smlad((int16x2_t)x[2], wl, a1);
      a1 = __smlad((int16x2_t)x[3], wh, a1);
      a2 = __smlad((int16x2_t)x[4], wl, a2);
      a2 = __smlad((int16x2_t)x[5], wh, a2);
      a3 = __smlad((int16x2_t)x[6], wl, a3);
      a3 = __smlad((int16x2_t)x[7], wh, a3);
    }
    const int32_t m = EC_MAX(EC_MAX(a0, a1), EC_MAX(a2, a3));
    *top = EC_MAX(*top, m);
  }
}
#endif

#if EC_MVE
/* top[c] = max(top[c], the accumulators of n (1..4) pixels) on the Cortex-M55: the pixels' k values interleaved
 * in xi (ec_mve_put's layout), each channel's row (`stride` apart from w) over the four slots by ec_mve_dot_4x1i,
 * the maximum of the first n lanes and top[c] by one VMAXV (predicated: the slots past n hold nothing). */
__attribute__((noinline)) static void ec_mve_pool_run4(const int8_t *xi, uint32_t k, uint32_t n, const int8_t *w,
                                                       size_t stride, const int32_t *bias, uint32_t count,
                                                       int32_t *top) {
  const mve_pred16_t p = vctp32q(n);
  for (uint32_t c = 0; c < count; ++c, w += stride) {
    top[c] = vmaxvq_p_s32(top[c], ec_mve_dot_4x1i(xi, w, k, bias[c]), p);
  }
}
#endif

/* The pixel's inputs as runs: in the input where its window lies inside (a filter row one run: dil_w 1), else a
 * patch (ec_conv_pool_fast has checked that k <= EC_PATCH wherever a pixel needs one). */
static void ec_conv_pool_locate(const ec_conv_params *p, const int8_t *input, int oy, int ox, int8_t *patch,
                                ec_pool_px *px) {
  const ec_window *w = &p->win;
  const uint32_t k = (uint32_t)w->k_h * w->k_w * w->in_c;
  const int in_y0 = oy * w->stride_h - w->pad_h, in_x0 = ox * w->stride_w - w->pad_w;
  const int inside = in_y0 >= 0 && in_y0 + (w->k_h - 1) * w->dil_h < w->in_h && in_x0 >= 0 &&
                     in_x0 + (w->k_w - 1) * w->dil_w < w->in_w;
  if (inside && (w->dil_w == 1 || w->k_w == 1)) {
    px->xa = input + ((size_t)in_y0 * w->in_w + (size_t)in_x0) * w->in_c;
    px->segs = w->k_h, px->seg = (uint32_t)w->k_w * w->in_c;
    px->dy = (size_t)w->dil_h * w->in_w * w->in_c;
    if (w->k_h == 1 || px->dy == px->seg) px->segs = 1, px->seg = k, px->dy = 0;
    return;
  }
  ec_conv_patch(p, input, in_y0, in_x0, patch);
  px->xa = patch;
  px->segs = 1, px->seg = k, px->dy = 0;
}

static int ec_conv_pool_fast(const ec_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const ec_pool_fusion *pool = p->pool;
  const uint32_t k = (uint32_t)w->k_h * w->k_w * w->in_c, oc_n = w->out_c;
  for (uint32_t oc = 0; oc < oc_n; ++oc) {
    if (!ec_rq_monotone(&p->q, oc)) return 0;
  }
  if (k > EC_PATCH) { /* no patches: every conv pixel's window inside the input, its filter rows runs */
    const int last_y = (w->out_h - 1) * w->stride_h - w->pad_h + (w->k_h - 1) * w->dil_h;
    const int last_x = (w->out_w - 1) * w->stride_w - w->pad_w + (w->k_w - 1) * w->dil_w;
    if (w->pad_h != 0 || w->pad_w != 0 || last_y >= w->in_h || last_x >= w->in_w) return 0;
    if (w->dil_w != 1 && w->k_w != 1) return 0;
  }
  uint32_t block = EC_POOL_BLOCK;
  if (p->w.table != NULL) {
    block = EC_MIN(block, (2u * EC_ROW_SCRATCH / k) & ~1u);
    if (block < 2u) return 0;
  }
  int8_t patch[2][EC_PATCH];
  int32_t top[EC_POOL_BLOCK];
#if EC_MVE
  int8_t xi[4u * (EC_POOL_WIDE + 16u)]; /* four pixels interleaved (ec_mve_put) */
#elif EC_DSP
  uint32_t xw[2 * EC_POOL_WIDE + 8]; /* four pixels widened (ec_pool_widen) */
#endif
  for (uint32_t oc0 = 0; oc0 < oc_n; oc0 += block) {
    const uint32_t count = EC_MIN(block, oc_n - oc0);
    const int8_t *rows = (const int8_t *)p->w.data + (size_t)oc0 * p->w.row_stride;
    size_t stride = p->w.row_stride;
    if (p->w.table != NULL) {
      for (uint32_t c = 0; c < count; ++c) ec_row(&p->w, oc0 + c, EC_ROW(0) + (size_t)c * k, k);
      rows = EC_ROW(0), stride = k;
    }
    const int32_t *bias = p->q.bias + oc0;
    int8_t *out = output + oc0;
    for (int py = 0; py < pool->out_h; ++py) {
      const int y0 = py * pool->stride_h - pool->pad_h;
      const int y_start = EC_MAX(0, y0), y_end = EC_MIN((int)w->out_h, y0 + pool->k_h);
      for (int px = 0; px < pool->out_w; ++px, out += oc_n) {
        const int x0 = px * pool->stride_w - pool->pad_w;
        const int x_start = EC_MAX(0, x0), x_end = EC_MIN((int)w->out_w, x0 + pool->k_w);
        for (uint32_t c = 0; c < count; ++c) top[c] = INT32_MIN;
        /* the window's conv pixels in row order: (oy, ox) the next one */
        int oy = x_start < x_end ? y_start : y_end, ox = x_start;
#if EC_DSP || EC_MVE
        uint32_t j = 0; /* pixels widened into xw (interleaved into xi) */
#endif
        ec_pool_px held = {NULL, NULL, 0, 0, 0}; /* a pixel waiting for a second (the pair path) */
        while (oy < y_end) {
          ec_pool_px cur;
          ec_conv_pool_locate(p, input, oy, ox, patch[held.xa == patch[0]], &cur);
          if (++ox == x_end) ox = x_start, ++oy;
#if EC_MVE
          if (cur.segs == 1 && k <= EC_POOL_WIDE) {
            ec_mve_put(xi + 16u * j, 0u, cur.xa, k);
            if (++j == 4) {
              ec_mve_pool_run4(xi, k, 4u, rows, stride, bias, count, top);
              j = 0;
            }
            continue;
          }
#elif EC_DSP
          if (cur.segs == 1 && k <= EC_POOL_WIDE && k % 4u == 0 && stride == k) {
            ec_pool_widen(cur.xa, k, j, xw);
            if (++j == 4 || oy >= y_end) {
              for (; j < 4; ++j) ec_pool_widen(cur.xa, k, j, xw); /* a group short of 4 repeats its last */
              ec_pool_run4(xw, k, rows, bias, count, top);
              j = 0;
            }
            continue;
          }
#endif
          cur.xb = NULL;
          if (held.xa != NULL && held.segs == cur.segs && held.dy == cur.dy) {
            held.xb = cur.xa;
            ec_conv_pool_block(&held, rows, stride, bias, count, top);
            held.xa = NULL;
          } else {
            if (held.xa != NULL) ec_conv_pool_block(&held, rows, stride, bias, count, top);
            held = cur;
          }
        }
        if (held.xa != NULL) ec_conv_pool_block(&held, rows, stride, bias, count, top);
#if EC_MVE
        if (j > 0) ec_mve_pool_run4(xi, k, j, rows, stride, bias, count, top); /* a group short of four */
#endif
        ec_pool_requantize(&p->q, pool, oc0, count, top, y_start >= y_end || x_start >= x_end, out);
      }
    }
  }
  return 1;
}

void ec_conv(const ec_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const ec_pool_fusion *pool = p->pool;
  if (pool == NULL && ec_conv_fast(p, input, output)) return;
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
  if (ec_conv_pool_fast(p, input, output)) return;
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
  if (ec_depthwise_fast(p, input, output)) return;
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

#if EC_MVE
/* ---- FULLY_CONNECTED on the Cortex-M55 (Helium) ---- */

/* (acc0, acc1) += (x . row0, x . row1) over n weights of two 4-bit rows with tables t0, t1. Thirty-two weights
 * a step: VLD20/VLD21 split 32 inputs into their even and odd lanes, and one VLDRB of 16 packed bytes per row
 * gives the even weights' indices (low nibbles, VAND) and the odd ones' (high nibbles, VSHR), each looked up by
 * one gather load (VLDRB with offsets) from the row's table and multiplied by VMLADAVA (CMSIS-NN's
 * arm_nn_vec_mat_mult_t_s8 uses VMLADAVA on int8 rows; the gather decode is ours). Seventeen instructions per
 * 64 MACs in a low-overhead loop (WLS/LE); in assembly so that the accumulators sit in even registers
 * (constraint Te) and nothing spills. The last n % 32 weights sixteen at a time, predicated (lanes past n add
 * nothing; the gathers of those lanes are predicated off, so no table is read past its entries). */
__attribute__((always_inline)) static inline void ec_mve_fc4_rows(const int8_t *x, const uint8_t *r0,
                                                                  const uint8_t *r1, const int8_t *t0,
                                                                  const int8_t *t1, uint32_t n, uint8x16_t mask,
                                                                  int32_t *acc0, int32_t *acc1) {
  int32_t a0 = 0, a1 = 0;
  uint32_t blocks = n / 32u;
  __asm__ volatile(
      "wls lr, %[blocks], 2f\n"
      "1:\n\t"
      "vld20.8 {q0, q1}, [%[x]]\n\t"
      "vld21.8 {q0, q1}, [%[x]]!\n\t"
      "vldrb.u8 q2, [%[r0]], #16\n\t"
      "vand q3, q2, %q[mask]\n\t"
      "vshr.u8 q2, q2, #4\n\t"
      "vldrb.u8 q4, [%[t0], q3]\n\t"
      "vmladava.s8 %[a0], q0, q4\n\t"
      "vldrb.u8 q3, [%[t0], q2]\n\t"
      "vmladava.s8 %[a0], q1, q3\n\t"
      "vldrb.u8 q2, [%[r1]], #16\n\t"
      "vand q3, q2, %q[mask]\n\t"
      "vshr.u8 q2, q2, #4\n\t"
      "vldrb.u8 q4, [%[t1], q3]\n\t"
      "vmladava.s8 %[a1], q0, q4\n\t"
      "vldrb.u8 q3, [%[t1], q2]\n\t"
      "vmladava.s8 %[a1], q1, q3\n\t"
      "le lr, 1b\n"
      "2:\n\t"
      : [a0] "+Te"(a0), [a1] "+Te"(a1), [x] "+r"(x), [r0] "+r"(r0), [r1] "+r"(r1)
      : [t0] "r"(t0), [t1] "r"(t1), [blocks] "r"(blocks), [mask] "w"(mask)
      : "q0", "q1", "q2", "q3", "q4", "lr", "memory");
  for (uint32_t i = blocks * 32u; i < n; i += 16u, x += 16, r0 += 8, r1 += 8) {
    const mve_pred16_t p = vctp8q(n - i);
    const mve_pred16_t pb = vctp16q((n - i + 1u) / 2u);
    const int8x16_t vx = vldrbq_z_s8(x, p);
    const uint16x8_t b0 = vldrbq_z_u16(r0, pb), b1 = vldrbq_z_u16(r1, pb);
    uint8x16_t i0 = vmovnbq_u16(vdupq_n_u8(0), vandq_u16(b0, vdupq_n_u16(15)));
    uint8x16_t i1 = vmovnbq_u16(vdupq_n_u8(0), vandq_u16(b1, vdupq_n_u16(15)));
    i0 = vmovntq_u16(i0, vshrq_n_u16(b0, 4));
    i1 = vmovntq_u16(i1, vshrq_n_u16(b1, 4));
    a0 = vmladavaq_s8(a0, vx, vldrbq_gather_offset_z_s8(t0, i0, p));
    a1 = vmladavaq_s8(a1, vx, vldrbq_gather_offset_z_s8(t1, i1, p));
  }
  *acc0 = a0, *acc1 = a1;
}

/* ec_requantize on the four channels oc..oc+3 (lanes from `count` on neither read nor stored): each lane's
 * multiplier word and shift as ec_requant_multiplier / ec_requant_shift read them (through q->entry where the
 * channels share words), then ec_mve_requantize's arithmetic with a shift per lane (VSHL left, VRSHL right of
 * x - 1 where x < 0: CMSIS-NN's arm_requantize_mve_32x4) and one VSTRB of the four bytes. */
__attribute__((always_inline)) static inline void ec_mve_requantize4(const ec_requant *q, uint32_t oc,
                                                                     uint32_t count, int32x4_t acc, int8_t *out) {
  const mve_pred16_t p = vctp32q(count);
  const int32x4_t zero = vdupq_n_s32(0);
  int32x4_t word, shift;
  if (q->entry != NULL) { /* channels that share words: each lane's by its entry */
    const uint32x4_t e = vldrbq_z_u32(q->entry + oc, p);
    word = vldrwq_gather_shifted_offset_z_s32(q->multiplier, e, p);
    shift = q->shift_stride ? vldrbq_gather_offset_z_s32(q->shift, e, p) : vdupq_n_s32(q->shift[0]);
  } else {
    word = q->channel_stride ? vldrwq_z_s32(q->multiplier + oc, p) : vdupq_n_s32(q->multiplier[0]);
    shift = q->shift_stride ? vldrbq_z_s32(q->shift + oc, p) : vdupq_n_s32(q->shift[0]);
  }
  shift = vaddq_s32(shift, vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(word), 30)));
  const int32x4_t multiplier = vorrq_s32(vandq_s32(word, vdupq_n_s32(0x3FFFFFFF)), vdupq_n_s32(0x40000000));
  const int32x4_t right = vminq_s32(shift, zero);
  int32x4_t v = vshlq_s32(vaddq_s32(acc, vldrwq_z_s32(q->bias + oc, p)), vmaxq_s32(shift, zero));
  v = vqrdmulhq_s32(v, multiplier);
  v = vrshlq_s32(vqaddq_s32(v, vshrq_n_s32(vandq_s32(v, right), 31)), right);
  v = vaddq_n_s32(v, q->output_zero_point);
  v = vminq_s32(vmaxq_s32(v, vdupq_n_s32(q->act_min)), vdupq_n_s32(q->act_max));
  vstrbq_p_s32(out + oc, v, p);
}

/* FULLY_CONNECTED on Cortex-M55: output channels four at a time, two rows per dot product (4-bit rows through
 * ec_mve_fc4_rows, plain int8 rows through ec_dot_1x2's VMLADAVA), the four requantized together
 * (ec_mve_requantize4). Rows past out_n repeat the last row; their results are not stored. 0 for other widths. */
static int ec_mve_fully_connected(const ec_fc_params *p, const int8_t *input, int8_t *output) {
  const uint32_t n = p->in_n, out_n = p->out_n;
  const int packed4 = p->w.table != NULL && p->w.bits == 4;
  if (p->w.table != NULL && !packed4) return 0;
  const uint8x16_t mask = vdupq_n_u8(15);
  const size_t rs = p->w.row_stride, ts = p->w.table_stride;
  for (uint32_t b = 0; b < p->batches; ++b) {
    const int8_t *x = input + (size_t)b * n;
    int8_t *out = output + (size_t)b * out_n;
    for (uint32_t oc = 0; oc < out_n; oc += 4) {
      const uint32_t count = out_n - oc < 4u ? out_n - oc : 4u;
      int32_t acc[4];
      for (uint32_t j = 0; j < 4u; j += 2u) {
        const uint32_t c0 = oc + j < out_n ? oc + j : out_n - 1u;
        const uint32_t c1 = c0 + 1u < out_n ? c0 + 1u : c0;
        const uint8_t *r0 = p->w.data + c0 * rs, *r1 = p->w.data + c1 * rs;
        if (packed4) {
          ec_mve_fc4_rows(x, r0, r1, p->w.table + c0 * ts, p->w.table + c1 * ts, n, mask, acc + j, acc + j + 1);
        } else {
          acc[j] = acc[j + 1] = 0;
          ec_dot_1x2(x, (const int8_t *)r0, (const int8_t *)r1, n, acc + j);
        }
      }
      ec_mve_requantize4(&p->q, oc, count, vldrwq_s32(acc), out);
    }
  }
  return 1;
}
#endif

void ec_fully_connected(const ec_fc_params *p, const int8_t *input, int8_t *output) {
#if EC_MVE
  if (ec_mve_fully_connected(p, input, output)) return;
#endif
  if (ec_fully_connected_fast(p, input, output)) return;
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

#if EC_MVE
/* ec_pool on the Cortex-M55: each output pixel's window, sixteen channels a step (the last step predicated).
 * MAX_POOL_2D: one VMAX of sixteen int8 lanes per window pixel. AVERAGE_POOL_2D: the sums in four int32x4
 * (VLDRB.S32 widening), then TFLM's rounding division per channel. Same sums and order-free maxima as ec_pool. */
static void ec_mve_pool(const ec_pool_params *p, const int8_t *input, int8_t *output, int average) {
  const ec_window *w = &p->win;
  const uint32_t c_n = w->in_c;
  const int8_t lo8 = (int8_t)EC_MAX(p->act_min, -128), hi8 = (int8_t)EC_MIN(p->act_max, 127);
  int8_t *out = output;
  for (int oy = 0; oy < w->out_h; ++oy) {
    const int y0 = oy * w->stride_h - w->pad_h;
    const int y_start = EC_MAX(0, y0), y_end = EC_MIN((int)w->in_h, y0 + w->k_h);
    for (int ox = 0; ox < w->out_w; ++ox, out += c_n) {
      const int x0 = ox * w->stride_w - w->pad_w;
      const int x_start = EC_MAX(0, x0), x_end = EC_MIN((int)w->in_w, x0 + w->k_w);
      const int32_t count = EC_MAX(0, y_end - y_start) * EC_MAX(0, x_end - x_start);
      for (uint32_t c = 0; c < c_n; c += 16u) {
        const uint32_t n = c_n - c < 16u ? c_n - c : 16u;
        const mve_pred16_t pc = vctp8q(n);
        if (!average) {
          int8x16_t m = vdupq_n_s8(-128);
          for (int y = y_start; y < y_end; ++y) {
            const int8_t *x = input + ((size_t)y * w->in_w + (size_t)x_start) * c_n + c;
            for (int i = x_start; i < x_end; ++i, x += c_n) m = vmaxq_s8(m, vldrbq_z_s8(x, pc));
          }
          m = vminq_s8(vmaxq_s8(m, vdupq_n_s8(lo8)), vdupq_n_s8(hi8));
          vstrbq_p_s8(out + c, m, pc);
          continue;
        }
        const mve_pred16_t p0 = vctp32q(n), p1 = vctp32q(n > 4u ? n - 4u : 0u);
        const mve_pred16_t p2 = vctp32q(n > 8u ? n - 8u : 0u), p3 = vctp32q(n > 12u ? n - 12u : 0u);
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int y = y_start; y < y_end; ++y) {
          const int8_t *x = input + ((size_t)y * w->in_w + (size_t)x_start) * c_n + c;
          for (int i = x_start; i < x_end; ++i, x += c_n) {
            a0 = vaddq_s32(a0, vldrbq_z_s32(x, p0));
            a1 = vaddq_s32(a1, vldrbq_z_s32(x + 4, p1));
            a2 = vaddq_s32(a2, vldrbq_z_s32(x + 8, p2));
            a3 = vaddq_s32(a3, vldrbq_z_s32(x + 12, p3));
          }
        }
        int32_t sums[16];
        vst1q_s32(sums, a0), vst1q_s32(sums + 4, a1), vst1q_s32(sums + 8, a2), vst1q_s32(sums + 12, a3);
        for (uint32_t j = 0; j < n; ++j) {
          int32_t acc = sums[j];
          /* round half away from zero, as TFLM's AveragePool */
          if (count > 0) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          acc = EC_MAX(acc, p->act_min);
          acc = EC_MIN(acc, p->act_max);
          out[c + j] = (int8_t)acc;
        }
      }
    }
  }
}
#endif

static void ec_pool(const ec_pool_params *p, const int8_t *input, int8_t *output, int average) {
#if EC_MVE
  ec_mve_pool(p, input, output, average);
  return;
#endif
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

/* ---- ADD of two same-shape tensors (TFLM reference_integer_ops::AddElementwise) ---- */

/* TFLM's arithmetic, element by element. */
static void ec_add_plain(const ec_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
  for (uint32_t i = 0; i < p->size; ++i) {
    const int32_t a = ec_shl(p->input1_offset + input1[i], p->left_shift);
    const int32_t b = ec_shl(p->input2_offset + input2[i], p->left_shift);
    const int32_t sa = ec_multiply_by_quantized_multiplier(a, p->input1_multiplier, p->input1_shift);
    const int32_t sb = ec_multiply_by_quantized_multiplier(b, p->input2_multiplier, p->input2_shift);
    int32_t v = ec_add_wrap(ec_multiply_by_quantized_multiplier(ec_add_wrap(sa, sb), p->output_multiplier,
                                                                p->output_shift),
                            p->output_offset);
    v = EC_MAX(v, p->act_min);
    v = EC_MIN(v, p->act_max);
    output[i] = (int8_t)v;
  }
}

/* Each input's scaled value, MultiplyByQuantizedMultiplierSmallerThanOneExp((x + offset) << left_shift), depends
 * on its int8 alone: two tables of 256 int32 (built per call in the scratch, 2 KB) leave per element two
 * lookups, a wrapping add and the output's requantization, ec_rq_fast with the output offset in its high word
 * where the output multiplier allows (right shift 2..23), else ec_mbqm_right; TFLM's own arithmetic for fewer
 * than 512 elements (plan.py ADD_TABLES_FROM: the tables cost ~15k instructions) or a scratch too small. 17
 * instructions an element on Cortex-M4 where TFLM's arithmetic takes 104. */
__attribute__((noinline)) static void ec_add_tables(const ec_add_params *p, int32_t *t) {
  for (int32_t v = -128; v < 128; ++v) {
    t[(uint8_t)v] = ec_mbqm(ec_shl(p->input1_offset + v, p->left_shift), p->input1_multiplier, p->input1_shift);
    t[256 + (uint8_t)v] = ec_mbqm(ec_shl(p->input2_offset + v, p->left_shift), p->input2_multiplier,
                                  p->input2_shift);
  }
}

/* The elements through the tables t (input 1) and t + 256 (input 2), requantized by ec_rq_fast's arithmetic
 * (multiplier m, high word `high`, right shift r - 1 after the high word), clamped below at lo (the top of the
 * range is 127: the saturation). */
__attribute__((noinline)) static void ec_add_fast(const int32_t *t, const uint8_t *a, const uint8_t *b, int8_t *out,
                                                  uint32_t n, int32_t m, int32_t high, int32_t r, int32_t lo) {
  const int32_t *t2 = t + 256;
  int8_t *end = out + n;
#if EC_DSP
  /* GCC 12 spills the loop's operands; written out it is 17 instructions an element */
  if (out != end) {
    const int32_t sh = r - 1;
    uint32_t x, y, z;
    __asm__ volatile(
        "1:\n\t"
        "ldrb %[x], [%[a]], #1\n\t"
        "ldrb %[y], [%[b]], #1\n\t"
        "ldr %[x], [%[t], %[x], lsl #2]\n\t"
        "ldr %[y], [%[t2], %[y], lsl #2]\n\t"
        "add %[x], %[x], %[y]\n\t"
        "and %[y], %[x], #0x80000000\n\t"
        "orr %[y], %[y], #0x40000000\n\t"
        "add %[z], %[high], %[x], asr #31\n\t"
        "smlal %[y], %[z], %[x], %[m]\n\t"
        "asr %[z], %[z], %[sh]\n\t"
        "ssat %[z], #8, %[z]\n\t"
        "cmp %[z], %[lo]\n\t"
        "it lt\n\t"
        "movlt %[z], %[lo]\n\t"
        "strb %[z], [%[out]], #1\n\t"
        "cmp %[out], %[end]\n\t"
        "bne 1b\n\t"
        : [a] "+r"(a), [b] "+r"(b), [out] "+r"(out), [x] "=&r"(x), [y] "=&r"(y), [z] "=&r"(z)
        : [t] "r"(t), [t2] "r"(t2), [end] "r"(end), [high] "r"(high), [m] "r"(m), [sh] "r"(sh), [lo] "r"(lo)
        : "cc", "memory");
  }
#else
  for (; out != end; ++out) {
    const int32_t x = ec_add_wrap(t[*a++], t2[*b++]);
    const uint32_t wl = 0x40000000u | ((uint32_t)x & 0x80000000u);
    const uint32_t wh = (uint32_t)high + (uint32_t)(x >> 31);
    const int64_t v = (int64_t)(((uint64_t)wh << 32) | wl) + (int64_t)x * m;
    const int32_t y = (int32_t)(v >> 32) >> (r - 1);
    *out = (int8_t)EC_MAX(EC_MIN(EC_MAX(y, -128), 127), lo);
  }
#endif
}

void ec_add(const ec_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
  const int32_t m = p->output_multiplier, shift = p->output_shift, zp = p->output_offset;
  const int32_t lo = p->act_min, hi = p->act_max;
  if (p->size < 512u || EC_ROW_SCRATCH < 1024u || !ec_right_form(m, shift) || lo < -128 || hi > 127) {
    ec_add_plain(p, input1, input2, output);
    return;
  }
  int32_t *t = (int32_t *)(void *)ec_row_scratch;
  ec_add_tables(p, t);
  const uint8_t *a = (const uint8_t *)input1, *b = (const uint8_t *)input2;
  const int r = -shift;
  if (r >= 2 && r <= 23 && zp >= -128 && zp <= 127 && hi == 127) {
    const int32_t high = (int32_t)(1u << (r - 2)) + zp * (int32_t)(1u << (r - 1));
    ec_add_fast(t, a, b, output, p->size, m, high, r, lo);
    return;
  }
  const int64_t round = ec_round_right(r);
  for (uint32_t i = 0; i < p->size; ++i) {
    const int32_t v = ec_add_wrap(ec_mbqm_right(ec_add_wrap(t[a[i]], t[256 + b[i]]), m, r, round), zp);
    output[i] = (int8_t)EC_MIN(EC_MAX(v, lo), hi);
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

/* edgeclust native runtime: int8 kernels that match TensorFlow Lite Micro's reference kernels bit for bit.
 *
 * Weights stay packed on flash: each output channel's row is a little-endian bitstream of `bits`-bit
 * indices into an int8 table (one per tensor or per channel), decoded inside the kernels' inner loops.
 * A row with no table holds plain int8 values. Biases arrive folded with input_offset * sum(w), so the
 * inner loops multiply raw int8 inputs; padded positions read the input zero point, which adds exactly
 * what the folded bias took away. No dynamic allocation: every buffer is an offset into one arena. */
#ifndef EDGECLUST_EC_KERNELS_H_
#define EDGECLUST_EC_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#include "ec_elementwise.h" /* ADD / SUB / MUL with broadcasting, unary ops as tables */

#ifdef __cplusplus
extern "C" {
#endif

/* The scratch the next kernel calls may use for decoded weight rows, widened inputs and tables: two rows of
 * row_bytes bytes at `scratch` (4-byte aligned), or none (NULL, 0). ec_model_invoke() gives each kernel that
 * uses scratch its own, in the arena beside the buffers alive at that step; a fast path that does not fit it
 * takes a slower one. */
void ec_use_scratch(void *scratch, uint32_t row_bytes);

/* One weight tensor on flash, one row per output channel. */
typedef struct {
  const uint8_t *data;   /* packed indices, or int8 values when table is NULL */
  const int8_t *table;   /* shared values; NULL for plain int8 rows */
  uint32_t row_stride;   /* bytes from one row to the next */
  uint16_t table_stride; /* entries between consecutive channels' tables; 0: one table for all */
  uint8_t bits;          /* bits per index (1..8); 8 with no table for plain int8 */
} ec_weights;

/* Requantization of one output channel's int32 accumulator to int8. */
typedef struct {
  const int32_t *bias;       /* per output channel, folded with input_offset * sum(w) */
  const int32_t *multiplier; /* from QuantizeMultiplier at generation time: per channel, or one for all */
  const int8_t *shift;       /* shift_stride apart: see ec_requant_shift */
  uint32_t channel_stride;   /* 1: multiplier and shift per output channel; 0: one pair for every channel */
  int32_t output_zero_point;
  int32_t act_min, act_max;
  uint32_t shift_stride; /* channel_stride, or 0 where the multiplier words carry the channels' shifts */
  const uint8_t *entry;  /* NULL, or per channel: which multiplier word (and shift byte) it shares */
} ec_requant;

/* Entry i (channel * channel_stride) of a requantization. A multiplier word is bits 29..0 of a multiplier in
 * [2^30, 2^31) (bit 30 set, as QuantizeMultiplier gives; edgeclust stores a zero multiplier as 2^30 with shift
 * -31, the same for every accumulator it can reach) and, in bits 31..30, a number the shift byte is added to:
 * 0..3 over one byte for every channel (shift_stride 0), or 1 over a byte per channel. */
static inline uint32_t ec_requant_entry(const ec_requant *q, uint32_t i) {
  return q->entry != NULL ? q->entry[i] : i;
}
static inline int32_t ec_requant_multiplier(const ec_requant *q, uint32_t i) {
  return (int32_t)(((uint32_t)q->multiplier[ec_requant_entry(q, i)] & 0x3FFFFFFFu) | 0x40000000u);
}
static inline int32_t ec_requant_shift(const ec_requant *q, uint32_t i) {
  const uint32_t e = ec_requant_entry(q, i);
  return q->shift[e * q->shift_stride] + (int32_t)((uint32_t)q->multiplier[e] >> 30);
}
/* Channel c of q alone, as a one-channel kernel call reads it (its entry 0): the bias, and the multiplier and
 * shift by their entry where channels share them, else their own. */
static inline ec_requant ec_requant_channel(const ec_requant *q, uint32_t c) {
  ec_requant one = *q;
  one.bias = q->bias + c;
  if (q->entry != NULL) {
    one.entry = q->entry + c; /* the shared words stay where they are */
  } else {
    one.multiplier = q->multiplier + (size_t)c * q->channel_stride;
    one.shift = q->shift + (size_t)c * q->shift_stride;
  }
  return one;
}

/* A 2-D window over an NHWC tensor (batch 1): stride, dilation and top/left padding. */
typedef struct {
  uint16_t in_h, in_w, in_c;
  uint16_t out_h, out_w, out_c;
  uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w;
  int16_t pad_h, pad_w;
} ec_window;

/* MAX_POOL_2D fused into the conv that feeds it: the conv's output only ever exists one value at a time. */
typedef struct {
  uint8_t k_h, k_w, stride_h, stride_w;
  int16_t pad_h, pad_w;
  uint16_t out_h, out_w;
  int32_t act_min, act_max;
} ec_pool_fusion;

typedef struct {
  ec_weights w;
  ec_requant q;
  ec_window win;
  int32_t input_zero_point;
  const ec_pool_fusion *pool; /* NULL: plain conv */
} ec_conv_params;

typedef struct {
  ec_weights w;
  ec_requant q;
  ec_window win;
  int32_t input_zero_point;
  uint16_t depth_multiplier;
} ec_depthwise_params;

typedef struct {
  ec_weights w;
  ec_requant q;
  uint32_t batches, in_n, out_n;
  /* NULL, or 4-bit rows with a table per channel whose rows share tables in groups: the rows by group, bit 15
   * set on each group's first row (its table is the group's; the DSP kernel builds one pair table per group) */
  const uint16_t *order;
} ec_fc_params;

typedef struct {
  ec_window win; /* k_* is the filter, out_c == in_c; dilation unused */
  int32_t act_min, act_max;
} ec_pool_params;

typedef struct {
  uint32_t spatial, channels;
  int32_t input_zero_point, output_zero_point;
  int32_t multiplier; /* QuantizeMultiplier(in_scale / out_scale), 1/N folded in by TFLM's shift rule */
  int32_t shift;
} ec_mean_params;

typedef struct {
  uint32_t size;
  int32_t input1_offset, input2_offset, output_offset;
  int32_t input1_multiplier, input2_multiplier, output_multiplier;
  int32_t input1_shift, input2_shift, output_shift;
  int32_t left_shift;
  int32_t act_min, act_max;
} ec_add_params;

typedef struct {
  uint32_t outer, depth;
  int32_t input_multiplier, input_left_shift, diff_min;
} ec_softmax_params;

typedef struct {
  uint32_t size;
  float scale;
  int32_t zero_point;
} ec_quantize_params;

typedef struct {
  uint32_t size;
  double scale;
  int32_t zero_point;
} ec_dequantize_params;

int32_t ec_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

void ec_conv(const ec_conv_params *p, const int8_t *input, int8_t *output);
/* For ec_conv_1x1_inplace (a 1x1 CONV_2D, stride 1, no padding, no pool): n pixels from `window` into output,
 * and with the same decoded rows up to ahead_max pixels from `ahead` (the input after them, read before any of
 * it is written) into output + n * out_c, as many as the kernel's scratch holds (*ahead_done). 1 when done, 0
 * (nothing written) where the fast path does not apply: 4-bit rows on a DSP core (not Helium), in_c a multiple
 * of 4, the decoded rows fitting the scratch. */
int ec_conv_1x1_ahead(const ec_conv_params *p, const int8_t *window, uint32_t n, const int8_t *ahead,
                      uint32_t ahead_max, int8_t *output, uint32_t *ahead_done);
void ec_depthwise_conv(const ec_depthwise_params *p, const int8_t *input, int8_t *output);
void ec_fully_connected(const ec_fc_params *p, const int8_t *input, int8_t *output);
void ec_max_pool(const ec_pool_params *p, const int8_t *input, int8_t *output);
void ec_average_pool(const ec_pool_params *p, const int8_t *input, int8_t *output);
void ec_mean_hw(const ec_mean_params *p, const int8_t *input, int8_t *output);
void ec_add(const ec_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void ec_softmax(const ec_softmax_params *p, const int8_t *input, int8_t *output);
void ec_quantize(const ec_quantize_params *p, const float *input, int8_t *output);
void ec_dequantize(const ec_dequantize_params *p, const int8_t *input, float *output);

#include "ec_movement.h" /* data-movement and spatial kernels (ec_movement.c) */
#include "ec_reduce.h" /* REDUCE_MAX (ec_reduce.c) */
#include "ec_inplace.h" /* in-place depthwise and 1x1 convolutions (ec_inplace.c) */

#ifdef __cplusplus
}
#endif

#endif /* EDGECLUST_EC_KERNELS_H_ */

/* edgeclust native runtime: data-movement and spatial kernels (see ec_movement.h), bit-identical to TFLM's
 * reference kernels. Copies move raw int8 values, as TFLM's do: the lowering checks that input and output
 * share scale and zero point where TFLM requires it. */
#include <stddef.h>
#include <string.h>

#include "ec_kernels.h"

/* Odometer over count[0..rank): advances idx, returns the change of the source and destination offsets. */
static inline void ec_step_index(uint32_t *idx, const uint32_t *count, const int32_t *a_stride,
                                 const int32_t *b_stride, uint32_t rank, int32_t *a, int32_t *b) {
  for (uint32_t d = rank; d-- > 0;) {
    if (++idx[d] < count[d]) {
      *a += a_stride[d];
      if (b_stride != NULL) *b += b_stride[d];
      return;
    }
    idx[d] = 0;
    *a -= a_stride[d] * (int32_t)(count[d] - 1);
    if (b_stride != NULL) *b -= b_stride[d] * (int32_t)(count[d] - 1);
  }
}

/* PAD / PADV2 (TFLM reference_ops::PadImpl), CONCATENATION (reference_ops::Concatenation), SPLIT, SPLIT_V,
 * UNPACK, STRIDED_SLICE (reference_ops::StridedSlice), TILE (TFLite's Tile): one strided copy each. */
void ec_copy(const ec_copy_params *p, const void *input_bytes, void *output_bytes) {
  const int8_t *input = (const int8_t *)input_bytes;
  int8_t *output = (int8_t *)output_bytes;
  if (p->fill >= -128 && p->fill <= 127) memset(output, (int8_t)p->fill, p->output_size);
  if (p->rank == 0) return;
  uint32_t idx[EC_COPY_RANK] = {0};
  uint32_t outer = 1;
  for (uint32_t d = 0; d + 1 < p->rank; ++d) outer *= p->count[d];
  const uint32_t inner = p->count[p->rank - 1];
  const int32_t s_in = p->src_stride[p->rank - 1], s_out = p->dst_stride[p->rank - 1];
  int32_t src = p->src_offset, dst = p->dst_offset;
  for (uint32_t o = 0; o < outer; ++o) {
    if (s_in == 1 && s_out == 1) {
      memcpy(output + dst, input + src, inner);
    } else {
      for (uint32_t i = 0; i < inner; ++i) output[dst + (int32_t)i * s_out] = input[src + (int32_t)i * s_in];
    }
    ec_step_index(idx, p->count, p->src_stride, p->dst_stride, p->rank - 1, &src, &dst);
  }
}

/* RESIZE_NEAREST_NEIGHBOR (TFLM reference_ops::ResizeNearestNeighbor): source rows and columns computed at
 * generation time with TFLM's GetNearestNeighbor. */
void ec_resize_nearest(const ec_resize_params *p, const int8_t *input, int8_t *output) {
  for (uint32_t y = 0; y < p->out_h; ++y) {
    const int8_t *row = input + (size_t)p->rows[y] * p->in_w * p->channels;
    for (uint32_t x = 0; x < p->out_w; ++x) {
      memcpy(output, row + (size_t)p->cols[x] * p->channels, p->channels);
      output += p->channels;
    }
  }
}

/* MEAN int8 over any axes (TFLM reduce_common QuantizedMeanOrSum: int32 sums, sum - zp * N, one
 * MultiplyByQuantizedMultiplier with 1/N folded into the multiplier, + output zero point, clamp). */
void ec_mean_nd(const ec_mean_nd_params *p, const int8_t *input, int8_t *output) {
  uint32_t kept_idx[EC_COPY_RANK] = {0};
  uint32_t outputs = 1;
  for (uint32_t d = 0; d < p->kept_rank; ++d) outputs *= p->count[d];
  const uint32_t red_rank = p->rank - p->kept_rank;
  const uint32_t *red_count = p->count + p->kept_rank;
  const int32_t *red_stride = p->stride + p->kept_rank;
  int32_t base = 0, unused = 0;
  for (uint32_t o = 0; o < outputs; ++o) {
    uint32_t red_idx[EC_COPY_RANK] = {0};
    uint32_t sum = 0; /* int32 with wrap-around, as TFLM's accumulator */
    int32_t at = base;
    for (uint32_t i = 0; i < p->count_reduced; ++i) {
      sum += (uint32_t)(int32_t)input[at];
      ec_step_index(red_idx, red_count, red_stride, NULL, red_rank, &at, &unused);
    }
    const uint32_t shifted = sum - (uint32_t)p->input_zero_point * p->count_reduced;
    int32_t v = ec_multiply_by_quantized_multiplier((int32_t)shifted, p->multiplier, p->shift);
    v = (int32_t)((uint32_t)v + (uint32_t)p->output_zero_point);
    v = v < -128 ? -128 : (v > 127 ? 127 : v);
    output[o] = (int8_t)v;
    ec_step_index(kept_idx, p->count, p->stride, NULL, p->kept_rank, &base, &unused);
  }
}

/* One weight of a packed row (LSB-first indices into the row's table, or plain int8). */
static inline int32_t ec_weight_at(const ec_weights *w, uint32_t row, uint32_t j) {
  const uint8_t *data = w->data + (size_t)row * w->row_stride;
  if (w->table == NULL) return (int8_t)data[j];
  const uint32_t bit = j * w->bits, byte = bit >> 3, shift = bit & 7u;
  uint32_t v = data[byte] >> shift;
  if (shift + w->bits > 8u) v |= (uint32_t)data[byte + 1] << (8u - shift);
  return w->table[(size_t)row * w->table_stride + (v & ((1u << w->bits) - 1u))];
}

/* TRANSPOSE_CONV int8 (TFLM reference_integer_ops::TransposeConv): each output value is the sum of
 * (x + input_offset) * w over the input pixels whose scatter reaches it, + bias, requantized per channel.
 * Gathered per output value instead of scattered through an int32 scratch: the same integer sum. */
void ec_transpose_conv(const ec_transpose_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *g = &p->win;
  for (int oy = 0; oy < g->out_h; ++oy) {
    for (int ox = 0; ox < g->out_w; ++ox) {
      for (uint32_t oc = 0; oc < g->out_c; ++oc) {
        uint32_t acc = 0;
        for (int ky = 0; ky < g->k_h; ++ky) {
          const int ny = oy + g->pad_h - ky;
          if (ny < 0 || ny % g->stride_h != 0 || ny / g->stride_h >= g->in_h) continue;
          const int iy = ny / g->stride_h;
          for (int kx = 0; kx < g->k_w; ++kx) {
            const int nx = ox + g->pad_w - kx;
            if (nx < 0 || nx % g->stride_w != 0 || nx / g->stride_w >= g->in_w) continue;
            const int ix = nx / g->stride_w;
            const int8_t *x = input + ((size_t)iy * g->in_w + (size_t)ix) * g->in_c;
            const uint32_t j0 = ((uint32_t)ky * g->k_w + (uint32_t)kx) * g->in_c;
            for (uint32_t ic = 0; ic < g->in_c; ++ic) {
              acc += (uint32_t)((x[ic] + p->input_offset) * ec_weight_at(&p->w, oc, j0 + ic));
            }
          }
        }
        acc += (uint32_t)p->q.bias[oc];
        const uint32_t i = oc * p->q.channel_stride;
        int32_t v = ec_multiply_by_quantized_multiplier((int32_t)acc, ec_requant_multiplier(&p->q, i),
                                                    ec_requant_shift(&p->q, i));
        v = (int32_t)((uint32_t)v + (uint32_t)p->q.output_zero_point);
        v = v < p->q.act_min ? p->q.act_min : (v > p->q.act_max ? p->q.act_max : v);
        *output++ = (int8_t)v;
      }
    }
  }
}

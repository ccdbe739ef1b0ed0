/* In-place convolutions: see ec_inplace.h. TFLM reference_integer_ops::DepthwiseConvPerChannel and
 * ConvPerChannel arithmetic (biases folded with input_offset * sum(w), padded taps read the input zero point,
 * int32 accumulators that wrap, MultiplyByQuantizedMultiplier), bit for bit. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ec_kernels.h"

static inline int32_t ec_ip_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t ec_ip_mul(int32_t a, int32_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }

static inline int8_t ec_ip_requantize(const ec_requant *q, int32_t acc, uint32_t channel) {
  const uint32_t i = channel * q->channel_stride;
  int32_t v = ec_multiply_by_quantized_multiplier(acc, q->multiplier[i], q->shift[i]);
  v = ec_ip_add(v, q->output_zero_point);
  if (v < q->act_min) v = q->act_min;
  if (v > q->act_max) v = q->act_max;
  return (int8_t)v;
}

/* The first n weights of row `row`, decoded (plain int8 rows, or `bits`-bit little-endian indices into the
 * row's table). */
static void ec_ip_decode(const ec_weights *w, uint32_t row, uint32_t n, int32_t *out) {
  const uint8_t *p = w->data + (size_t)row * w->row_stride;
  if (w->table == NULL) {
    for (uint32_t i = 0; i < n; ++i) out[i] = (int8_t)p[i];
    return;
  }
  const int8_t *table = w->table + (size_t)row * w->table_stride;
  const uint32_t bits = w->bits, mask = (1u << bits) - 1u;
  uint32_t buffer = 0, count = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (count < bits) {
      buffer |= (uint32_t)(*p++) << count;
      count += 8;
    }
    out[i] = table[buffer & mask];
    buffer >>= bits;
    count -= bits;
  }
}

void ec_depthwise_conv_inplace(const ec_depthwise_params *p, const int8_t *input, int8_t *output, int8_t *window) {
  const ec_window *w = &p->win;
  const uint32_t channels = w->in_c, taps = (uint32_t)w->k_h * w->k_w;
  const uint32_t in_pixels = (uint32_t)w->in_h * w->in_w;
  const int32_t zp = p->input_zero_point;
  int32_t wk[EC_INPLACE_MAX_TAPS];
  for (uint32_t c = 0; c < channels; ++c) {
    ec_ip_decode(&p->w, c, taps, wk);
    const int8_t *src = input + c;
    for (uint32_t i = 0; i < in_pixels; ++i) window[i] = src[(size_t)i * channels];
    const int32_t bias = p->q.bias[c];
    int8_t *dst = output + c;
    for (int oy = 0; oy < w->out_h; ++oy) {
      const int y0 = oy * w->stride_h - w->pad_h;
      const int rows_inside = y0 >= 0 && y0 + (w->k_h - 1) * w->dil_h < w->in_h;
      for (int ox = 0; ox < w->out_w; ++ox) {
        const int x0 = ox * w->stride_w - w->pad_w;
        int32_t acc = bias;
        const int32_t *wt = wk;
        if (rows_inside && x0 >= 0 && x0 + (w->k_w - 1) * w->dil_w < w->in_w) {
          const int8_t *row = window + (size_t)y0 * w->in_w + x0;
          for (int ky = 0; ky < w->k_h; ++ky, row += (size_t)w->dil_h * w->in_w) {
            for (int kx = 0; kx < w->k_w; ++kx) acc = ec_ip_add(acc, ec_ip_mul(*wt++, row[kx * w->dil_w]));
          }
        } else {
          for (int ky = 0; ky < w->k_h; ++ky) {
            const int iy = y0 + ky * w->dil_h;
            for (int kx = 0; kx < w->k_w; ++kx) {
              const int ix = x0 + kx * w->dil_w;
              const int inside = iy >= 0 && iy < w->in_h && ix >= 0 && ix < w->in_w;
              acc = ec_ip_add(acc, ec_ip_mul(*wt++, inside ? window[(size_t)iy * w->in_w + ix] : zp));
            }
          }
        }
        *dst = ec_ip_requantize(&p->q, acc, c);
        dst += channels;
      }
    }
  }
}

void ec_conv_1x1_inplace(const ec_conv_params *p, const int8_t *input, int8_t *output, int8_t *window) {
  const uint32_t in_c = p->win.in_c, out_c = p->win.out_c;
  const uint32_t pixels = (uint32_t)p->win.in_h * p->win.in_w;
  const uint32_t blocks = (pixels + EC_INPLACE_PIXELS - 1u) / EC_INPLACE_PIXELS;
  /* each block is a 1 x n image through ec_conv (its 1x1 matrix product, the same arithmetic) */
  ec_conv_params block_params = *p;
  block_params.win.in_h = 1u;
  block_params.win.out_h = 1u;
  for (uint32_t b = 0; b < blocks; ++b) {
    /* forwards when the output is no wider than the input, else from the last block back */
    const uint32_t block = out_c <= in_c ? b : blocks - 1u - b;
    const uint32_t first = block * EC_INPLACE_PIXELS;
    const uint32_t n = pixels - first < EC_INPLACE_PIXELS ? pixels - first : EC_INPLACE_PIXELS;
    memcpy(window, input + (size_t)first * in_c, (size_t)n * in_c);
    block_params.win.in_w = (uint16_t)n;
    block_params.win.out_w = (uint16_t)n;
    ec_conv(&block_params, window, output + (size_t)first * out_c);
  }
}

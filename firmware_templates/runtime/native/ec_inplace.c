/* In-place convolutions: see ec_inplace.h. The arithmetic is ec_kernels.c's own (TFLM's reference, bit for
 * bit): each call here hands ec_depthwise_conv or ec_conv a piece small enough to sit in the window. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ec_kernels.h"

void ec_depthwise_conv_inplace(const ec_depthwise_params *p, const int8_t *input, int8_t *output, int8_t *window) {
  const ec_window *w = &p->win;
  const uint32_t channels = w->in_c;
  const uint32_t in_pixels = (uint32_t)w->in_h * w->in_w, out_pixels = (uint32_t)w->out_h * w->out_w;
  if (ec_depthwise_planes(p, input, output, window, in_pixels + out_pixels)) return;
  int8_t *plane_out = window + in_pixels;
  /* each channel is a one-channel image through ec_depthwise_conv (its fast paths, the same arithmetic) */
  ec_depthwise_params one = *p;
  one.win.in_c = 1u;
  one.win.out_c = 1u;
  for (uint32_t c = 0; c < channels; ++c) {
    const int8_t *src = input + c;
    for (uint32_t i = 0; i < in_pixels; ++i) window[i] = src[(size_t)i * channels];
    one.w.data = p->w.data + (size_t)c * p->w.row_stride;
    one.w.table = p->w.table == NULL ? NULL : p->w.table + (size_t)c * p->w.table_stride;
    one.q.bias = p->q.bias + c;
    one.q.multiplier = p->q.multiplier + (size_t)c * p->q.channel_stride;
    one.q.shift = p->q.shift + (size_t)c * p->q.channel_stride;
    ec_depthwise_conv(&one, window, plane_out);
    int8_t *dst = output + c;
    for (uint32_t i = 0; i < out_pixels; ++i) dst[(size_t)i * channels] = plane_out[i];
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

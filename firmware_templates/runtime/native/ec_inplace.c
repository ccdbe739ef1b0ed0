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
    one.q = ec_requant_channel(&p->q, c);
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
  if (out_c <= in_c) {
    /* forwards: a write never reaches a pixel not yet copied. The pixels after the block are still whole, so
     * with 4-bit rows (ec_conv_1x1_ahead) each row pair decoded once serves the block and as many of the pixels
     * after it as the scratch holds outputs for (their inputs all read before any of theirs is written). */
    for (uint32_t first = 0; first < pixels;) {
      const uint32_t n = pixels - first < EC_INPLACE_PIXELS ? pixels - first : EC_INPLACE_PIXELS;
      memcpy(window, input + (size_t)first * in_c, (size_t)n * in_c);
      uint32_t ahead = 0;
      const int8_t *rest = input + (size_t)(first + n) * in_c;
      if (!ec_conv_1x1_ahead(p, window, n, rest, pixels - first - n, output + (size_t)first * out_c, &ahead)) {
        block_params.win.in_w = (uint16_t)n;
        block_params.win.out_w = (uint16_t)n;
        ec_conv(&block_params, window, output + (size_t)first * out_c);
      }
      first += n + ahead;
    }
    return;
  }
  for (uint32_t b = 0; b < blocks; ++b) {
    /* backwards, from the last block (the output then ends past the input) */
    const uint32_t first = (blocks - 1u - b) * EC_INPLACE_PIXELS;
    const uint32_t n = pixels - first < EC_INPLACE_PIXELS ? pixels - first : EC_INPLACE_PIXELS;
    memcpy(window, input + (size_t)first * in_c, (size_t)n * in_c);
    block_params.win.in_w = (uint16_t)n;
    block_params.win.out_w = (uint16_t)n;
    ec_conv(&block_params, window, output + (size_t)first * out_c);
  }
}

/* The input rows [*first, *end) that output rows [r, r + n) read, clamped to the image and one row at least (a
 * window wholly in the padding still gets an image to stand on); returns the first window row, in the padding
 * when < 0 (inplace.py _rows mirrors it). */
static int ec_rows_read(const ec_window *w, uint32_t r, uint32_t n, int *first, int *end) {
  const int y0 = (int)r * w->stride_h - w->pad_h;
  int f = y0 > 0 ? y0 : 0, e = y0 + (int)(n - 1u) * w->stride_h + (w->k_h - 1) * w->dil_h + 1;
  if (f > (int)w->in_h - 1) f = (int)w->in_h - 1;
  if (e > (int)w->in_h) e = (int)w->in_h;
  if (e <= f) e = f + 1;
  *first = f;
  *end = e;
  return y0;
}

void ec_conv_rows(const ec_conv_params *p, const int8_t *input, int8_t *output) {
  const ec_window *w = &p->win;
  const size_t in_row = (size_t)w->in_w * w->in_c, out_row = (size_t)w->out_w * w->out_c;
  /* bands of whole fours of pixels where the row allows (ec_conv's groups of four pixels stay full) */
  const uint32_t band = w->out_w % 4u == 0 ? 1u : w->out_w % 2u == 0 ? 2u : 4u;
  ec_conv_params rows = *p;
  for (uint32_t r = 0; r < w->out_h; r += band) {
    const uint32_t n = w->out_h - r < band ? w->out_h - r : band;
    int first, end;
    const int y0 = ec_rows_read(w, r, n, &first, &end);
    /* the rows [first, end) as a small image; rows of the windows outside it are the padding they were */
    rows.win.in_h = (uint16_t)(end - first);
    rows.win.out_h = (uint16_t)n;
    rows.win.pad_h = (int16_t)(first - y0);
    ec_conv(&rows, input + (size_t)first * in_row, output + (size_t)r * out_row);
  }
}

void ec_pw_dw_rows(const ec_pw_dw_params *p, const int8_t *input, int8_t *output, int8_t *ring) {
  const ec_window *pw = &p->pw->win, *dw = &p->dw->win;
  const size_t in_row = (size_t)pw->in_w * pw->in_c, mid_row = (size_t)dw->in_w * dw->in_c;
  const size_t out_row = (size_t)dw->out_w * dw->out_c;
  ec_conv_params conv = *p->pw;
  ec_depthwise_params depth = *p->dw;
  depth.win.out_h = 1u;
  int lo = 0, hi = 0; /* the pointwise rows [lo, hi) are in the ring, row lo at its start */
  for (uint32_t r = 0; r < dw->out_h; ++r) {
    int first, end;
    const int y0 = ec_rows_read(dw, r, 1u, &first, &end);
    if (first >= hi) {
      lo = hi = first; /* nothing in the ring is read again */
    } else if (first > lo) {
      memmove(ring, ring + (size_t)(first - lo) * mid_row, (size_t)(hi - first) * mid_row);
      lo = first;
    }
    if (end > hi) { /* the pointwise rows [hi, end), as a small image */
      conv.win.in_h = (uint16_t)(end - hi);
      conv.win.out_h = (uint16_t)(end - hi);
      ec_conv(&conv, input + (size_t)hi * in_row, ring + (size_t)(hi - lo) * mid_row);
      hi = end;
    }
    depth.win.in_h = (uint16_t)(end - first);
    depth.win.pad_h = (int16_t)(first - y0);
    ec_depthwise_conv(&depth, ring, output + (size_t)r * out_row);
  }
}

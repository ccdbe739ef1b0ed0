/* In-place convolutions (ec_inplace.c): the output overwrites the input in the arena, so the two tensors never
 * exist side by side. Each kernel copies what it still has to read into a small window buffer (planned in the
 * arena, alive for the one call) before the writes that clobber it; the arithmetic is TFLM's reference, as the
 * kernels in ec_kernels.c compute it. `input` and `output` may be the same pointer (that is the point) or not. */
#ifndef EDGECLUST_EC_INPLACE_H_
#define EDGECLUST_EC_INPLACE_H_

/* included from ec_kernels.h, after the params structs */

/* pixels a 1x1 convolution in place takes per block (its window holds as many input pixels) */
#define EC_INPLACE_PIXELS 8

/* DEPTHWISE_CONV_2D 3x3 (dilation 1, stride 1 or 2, padding 0 or 1) one channel at a time through a padded
 * copy of the channel's plane in `plane` (plane_bytes): ec_kernels.c's fastest depthwise path; output channel c
 * writes only channel c's bytes after its plane is copied, so the output may overwrite the input (depth
 * multiplier 1). 0 when it does not apply (another window, or a plane larger than plane_bytes). */
int ec_depthwise_planes(const ec_depthwise_params *p, const int8_t *input, int8_t *output, int8_t *plane,
                        uint32_t plane_bytes);

/* DEPTHWISE_CONV_2D with depth multiplier 1, one channel at a time: ec_depthwise_planes with `window` as its
 * plane where that fits (in_h * in_w + out_h * out_w bytes); else the channel's input plane (in_h * in_w bytes)
 * is copied to `window`, ec_depthwise_conv writes the output plane after it (out_h * out_w bytes), and that is
 * copied over the input's same channel (only that channel's bytes are written). */
void ec_depthwise_conv_inplace(const ec_depthwise_params *p, const int8_t *input, int8_t *output, int8_t *window);

/* CONV_2D with a 1x1 filter, stride 1 and no padding, EC_INPLACE_PIXELS pixels at a time: the block's input
 * pixels (in_c bytes each) are copied to `window`, then its outputs written (ec_conv on a 1 x n image). Forwards when out_c <= in_c (a
 * write never reaches a pixel not yet copied), backwards otherwise (the output then ends past the input). */
void ec_conv_1x1_inplace(const ec_conv_params *p, const int8_t *input, int8_t *output, int8_t *window);

/* CONV_2D a band of output rows at a time (ec_conv on the rows that band reads; a band is as many rows as make
 * whole fours of pixels: 1, 2 or 4), so the output may start below the input and overwrite the input rows
 * already consumed: band b's bytes may reach up to where its first input row starts (the plan's
 * ShiftedConvStep; first row = clamp(r * stride_h - pad_h, 0, in_h - 1) for the band's first output row r).
 * Each band's call is TFLM's ConvPerChannel on those rows, bit for bit. */
void ec_conv_rows(const ec_conv_params *p, const int8_t *input, int8_t *output);

/* A 1x1 CONV_2D and the DEPTHWISE_CONV_2D that alone reads its output, fused row by row: for each depthwise
 * output row, the pointwise rows it reads that `ring` lacks are computed into it (ec_conv on those rows, rows
 * still needed moved to the ring's start), then the row itself (ec_depthwise_conv on the ring's rows). The
 * pointwise output never exists whole: the ring holds (k_h - 1) * dil_h + 1 of its rows. The output may start
 * below the input and overwrite input rows already consumed (the plan's PointwiseDepthwiseStep). */
typedef struct {
  const ec_conv_params *pw;
  const ec_depthwise_params *dw;
} ec_pw_dw_params;

void ec_pw_dw_rows(const ec_pw_dw_params *p, const int8_t *input, int8_t *output, int8_t *ring);

#endif /* EDGECLUST_EC_INPLACE_H_ */

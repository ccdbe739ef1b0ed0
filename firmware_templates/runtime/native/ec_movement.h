/* edgeclust native runtime: data-movement and spatial kernels (PAD, CONCATENATION, SPLIT, UNPACK,
 * STRIDED_SLICE, TILE, RESIZE_NEAREST_NEIGHBOR, MEAN over any axes, TRANSPOSE_CONV). Included by
 * ec_kernels.h; the kernels live in ec_movement.c. */
#ifndef EDGECLUST_EC_MOVEMENT_H_
#define EDGECLUST_EC_MOVEMENT_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EC_COPY_RANK 8

/* An N-D strided copy of bytes: for every index i over count[], output[dst_offset + sum(i * dst_stride)] =
 * input[src_offset + sum(i * src_stride)] (strides in bytes, possibly 0 or negative; a float32 tensor's value
 * is an innermost run of four). When fill is in -128..127 the whole output (output_size bytes) is set to it
 * first (PAD). */
typedef struct {
  uint32_t output_size;
  int32_t fill; /* -129: no fill */
  uint32_t rank;
  uint32_t count[EC_COPY_RANK];
  int32_t src_stride[EC_COPY_RANK];
  int32_t dst_stride[EC_COPY_RANK];
  int32_t src_offset, dst_offset;
} ec_copy_params;

/* RESIZE_NEAREST_NEIGHBOR over an NHWC tensor: the source row and column of each output row and column. */
typedef struct {
  uint32_t out_h, out_w, channels, in_w;
  const uint16_t *rows; /* out_h entries */
  const uint16_t *cols; /* out_w entries */
} ec_resize_params;

/* MEAN (QuantizedMeanOrSum): the input walked as kept dims (outer, kept_rank of them) then reduced dims;
 * one output per kept index, in order. multiplier/shift have 1/count folded in as TFLM does. */
typedef struct {
  uint32_t rank, kept_rank, count_reduced;
  uint32_t count[EC_COPY_RANK];
  int32_t stride[EC_COPY_RANK];
  int32_t input_zero_point, output_zero_point;
  int32_t multiplier, shift;
} ec_mean_nd_params;

/* TRANSPOSE_CONV (batch 1, NHWC): filter rows per output channel (kh, kw, in_c), packed like the conv's. */
typedef struct {
  ec_weights w;
  ec_requant q; /* bias unfolded (border pixels see fewer taps) */
  ec_window win; /* in_* the op's input, out_* its output, k_* the filter; pad_* as TFLM's Prepare */
  int32_t input_offset; /* -input zero point */
} ec_transpose_conv_params;

void ec_copy(const ec_copy_params *p, const void *input, void *output);
void ec_resize_nearest(const ec_resize_params *p, const int8_t *input, int8_t *output);
void ec_mean_nd(const ec_mean_nd_params *p, const int8_t *input, int8_t *output);
void ec_transpose_conv(const ec_transpose_conv_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* EDGECLUST_EC_MOVEMENT_H_ */

/* edgeclust native runtime: elementwise int8 kernels (ADD, SUB, MUL with broadcasting; unary ops as tables).
 * Included by ec_kernels.h. */
#ifndef EDGECLUST_EC_ELEMENTWISE_H_
#define EDGECLUST_EC_ELEMENTWISE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A unary int8 op (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6): TFLM's integer results for all 256
 * inputs, computed at generation time; indexed by the input's bits as uint8_t. */
typedef struct {
  uint32_t size;
  const int8_t *table;
} ec_lut_params;

enum { EC_BINARY_ADD = 0, EC_BINARY_SUB = 1, EC_BINARY_MUL = 2 };

/* ADD / SUB / MUL over the output's shape padded to 4-D; each input's element strides along those dims (0 where
 * it broadcasts). constant_input 1 or 2: that input is `constant` (on flash), and the kernel reads one buffer. */
typedef struct {
  uint8_t op;
  uint8_t constant_input;
  const int8_t *constant;
  uint32_t dims[4];
  uint32_t strides1[4], strides2[4];
  int32_t input1_offset, input2_offset, output_offset;
  int32_t input1_multiplier, input2_multiplier, output_multiplier;
  int32_t input1_shift, input2_shift, output_shift;
  int32_t left_shift; /* ADD / SUB: 20 */
  int32_t act_min, act_max;
} ec_binary_params;

void ec_lut(const ec_lut_params *p, const int8_t *input, int8_t *output);
void ec_binary(const ec_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void ec_binary_const(const ec_binary_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* EDGECLUST_EC_ELEMENTWISE_H_ */

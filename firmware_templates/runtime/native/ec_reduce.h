/* edgeclust native runtime: reductions (REDUCE_MAX). Included by ec_kernels.h; the kernels live in
 * ec_reduce.c. */
#ifndef EDGECLUST_EC_REDUCE_H_
#define EDGECLUST_EC_REDUCE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EC_REDUCE_RANK 6

/* REDUCE_MAX: the input walked as kept dims (the first kept_rank of count[], outer) then reduced dims;
 * strides in elements. outputs = the product of the kept counts, one output each, in walk order. */
typedef struct {
  uint32_t rank, kept_rank, outputs;
  uint32_t count[EC_REDUCE_RANK];
  int32_t stride[EC_REDUCE_RANK];
} ec_reduce_max_params;

void ec_reduce_max(const ec_reduce_max_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* EDGECLUST_EC_REDUCE_H_ */

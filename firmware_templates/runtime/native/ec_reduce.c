/* edgeclust native runtime: reductions (see ec_reduce.h), bit-identical to TFLM's reference kernels. */
#include <string.h>

#include "ec_kernels.h"

/* Odometer over count[0..rank): advances idx and moves *at by the strides. */
static inline void ec_reduce_step(uint32_t *idx, const uint32_t *count, const int32_t *stride, uint32_t rank,
                                  int32_t *at) {
  for (uint32_t d = rank; d-- > 0;) {
    if (++idx[d] < count[d]) {
      *at += stride[d];
      return;
    }
    idx[d] = 0;
    *at -= stride[d] * (int32_t)(count[d] - 1);
  }
}

/* REDUCE_MAX int8 (TFLM reduce_common.cc EvalMaxHelper: reference_ops::ReduceGeneric from -128 with
 * max(current, in) over the raw values; input and output share scale and zero point). The maximum is
 * order-free, so the reduced dims are walked outside and the kept dims inside, the innermost kept dim as a
 * plain loop over the outputs (contiguous for global max pooling over H, W). */
void ec_reduce_max(const ec_reduce_max_params *p, const int8_t *input, int8_t *output) {
  memset(output, -128, p->outputs);
  const uint32_t kept = p->kept_rank, red_rank = p->rank - kept;
  const uint32_t *red_count = p->count + kept;
  const int32_t *red_stride = p->stride + kept;
  uint32_t reduced = 1;
  for (uint32_t d = 0; d < red_rank; ++d) reduced *= red_count[d];
  const uint32_t inner = kept ? p->count[kept - 1] : 1u;
  const int32_t step = kept ? p->stride[kept - 1] : 0;
  const uint32_t outer_rank = kept ? kept - 1 : 0u;
  const uint32_t outer = p->outputs / inner;
  uint32_t red_idx[EC_REDUCE_RANK] = {0};
  int32_t red_at = 0;
  for (uint32_t r = 0; r < reduced; ++r) {
    uint32_t kept_idx[EC_REDUCE_RANK] = {0};
    int32_t at = red_at;
    int8_t *out = output;
    for (uint32_t o = 0; o < outer; ++o) {
      const int8_t *in = input + at;
      if (step == 1) {
        for (uint32_t j = 0; j < inner; ++j) out[j] = in[j] > out[j] ? in[j] : out[j];
      } else {
        for (uint32_t j = 0; j < inner; ++j) {
          const int8_t v = in[(int32_t)j * step];
          out[j] = v > out[j] ? v : out[j];
        }
      }
      out += inner;
      ec_reduce_step(kept_idx, p->count, p->stride, outer_rank, &at);
    }
    ec_reduce_step(red_idx, red_count, red_stride, red_rank, &red_at);
  }
}

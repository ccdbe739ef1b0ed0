/* The boot self-test's cases: inputs and the outputs the host oracle computed for them. */
#ifndef EDGECLUST_EC_SELF_TEST_H_
#define EDGECLUST_EC_SELF_TEST_H_

#include <stdint.h>

#include "ec_model.h"

extern const uint32_t ec_self_test_count;
extern const uint8_t ec_self_test_inputs[][EC_MODEL_INPUT_BYTES];
extern const uint8_t ec_self_test_outputs[][EC_MODEL_OUTPUT_BYTES];

#endif /* EDGECLUST_EC_SELF_TEST_H_ */

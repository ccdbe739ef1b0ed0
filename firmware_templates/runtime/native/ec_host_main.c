/* Host oracle for the edgeclust native runtime: the same generated C, compiled with the host's gcc.
 * Reads examples (EC_MODEL_INPUT_BYTES each, raw) from stdin until it ends and writes each output
 * (EC_MODEL_OUTPUT_BYTES, raw) to stdout. Exit status 2 when the input ends inside an example. */
#include <stdio.h>

#include "ec_model.h"

int main(void) {
  for (;;) {
    const size_t got = fread(ec_model_input(), 1, EC_MODEL_INPUT_BYTES, stdin);
    if (got == 0) break;
    if (got != EC_MODEL_INPUT_BYTES) {
      fprintf(stderr, "ec_host: input ended inside an example (%zu of %u bytes)\n", got, EC_MODEL_INPUT_BYTES);
      return 2;
    }
    ec_model_invoke();
    if (fwrite(ec_model_output(), 1, EC_MODEL_OUTPUT_BYTES, stdout) != EC_MODEL_OUTPUT_BYTES) return 3;
  }
  return fflush(stdout) == 0 ? 0 : 3;
}

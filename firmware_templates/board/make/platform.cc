// Semihosting console (QEMU, or a debug probe that serves semihosting such as OpenOCD): printf goes to the
// host, and on the QEMU boards the run ends with exit(status), which becomes QEMU's exit status.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "main_functions.h"
#include "platform.h"

extern "C" void initialise_monitor_handles(void);

void platform_init() {
  initialise_monitor_handles();
  setvbuf(stdout, nullptr, _IONBF, 0);
}

int platform_printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int n = vprintf(format, args);
  va_end(args);
  return n;
}

void platform_delay_ms(unsigned int ms) {
  // No timer is set up: a calibrated busy wait is enough for a demo loop.
  for (volatile unsigned int i = 0; i < ms * 4000u; ++i) {
  }
}

int main() {
  setup();
#if EDGECLUST_EXIT_AFTER_SELF_TEST
  return self_test_status();
#else
  while (true) loop();
#endif
}

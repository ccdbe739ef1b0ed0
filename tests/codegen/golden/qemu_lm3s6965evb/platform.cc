// Bare-metal boards: printf goes to the board's console (console.c: semihosting on the emulated boards that
// say so, the part's UART otherwise); on the QEMU boards main's status ends the run (startup.c).
#include <cstdarg>
#include <cstdio>

#include "console.h"
#include "main_functions.h"
#include "platform.h"

void platform_init() {
  console_init();
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

// Raspberry Pi Pico: console on USB serial and UART0 through the Pico SDK's stdio.
#include <cstdarg>
#include <cstdio>

#include "main_functions.h"
#include "pico/stdlib.h"
#include "platform.h"

void platform_init() {
  stdio_init_all();
  sleep_ms(2000);  // time for the USB serial port to come up
}

int platform_printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int n = vprintf(format, args);
  va_end(args);
  return n;
}

void platform_delay_ms(unsigned int ms) { sleep_ms(ms); }

int main() {
  setup();
  while (true) loop();
}

// ESP32-S3: console on the USB/UART bridge through ESP-IDF's stdio; FreeRTOS runs app_main.
#include <cstdarg>
#include <cstdio>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "main_functions.h"
#include "platform.h"

void platform_init() {}

int platform_printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int n = vprintf(format, args);
  va_end(args);
  return n;
}

void platform_delay_ms(unsigned int ms) { vTaskDelay(pdMS_TO_TICKS(ms)); }

extern "C" void app_main(void) {
  setup();
  while (true) loop();
}

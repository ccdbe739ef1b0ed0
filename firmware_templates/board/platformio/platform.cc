// Arduino: console on the USB serial port (115200 baud); the Arduino core calls setup() and loop().
#include <Arduino.h>

#include <cstdarg>
#include <cstdio>

#include "platform.h"

void platform_init() {
  Serial.begin(115200);
  const unsigned long start = millis();
  while (!Serial && millis() - start < 3000) {
  }
}

int platform_printf(const char* format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  const int n = vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  Serial.print(line);
  return n;
}

void platform_delay_ms(unsigned int ms) { delay(ms); }

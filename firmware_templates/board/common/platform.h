// What main.cc needs from the board: start its console, print, wait. One platform.cc per board family.
#ifndef EDGECLUST_PLATFORM_H_
#define EDGECLUST_PLATFORM_H_

void platform_init();
int platform_printf(const char* format, ...) __attribute__((format(printf, 1, 2)));
void platform_delay_ms(unsigned int ms);

#endif  // EDGECLUST_PLATFORM_H_

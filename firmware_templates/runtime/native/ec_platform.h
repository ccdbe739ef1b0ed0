/* What the native runtime's main.c needs from the board: a console, an exit status, a cycle counter. */
#ifndef EDGECLUST_EC_PLATFORM_H_
#define EDGECLUST_EC_PLATFORM_H_

#include <stdint.h>

void ec_platform_init(void);
void ec_print(const char *text);
void ec_print_u32(uint32_t value);
/* Ends the run with `status` (QEMU: its exit status); returns only on boards that cannot stop. */
void ec_exit(int status);
/* Restarts the cycle counter; ec_ticks_elapsed() gives the ticks since (24-bit SysTick on Cortex-M). */
void ec_ticks_start(void);
uint32_t ec_ticks_elapsed(void);

#endif /* EDGECLUST_EC_PLATFORM_H_ */

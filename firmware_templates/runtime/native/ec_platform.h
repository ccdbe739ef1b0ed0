/* What the native runtime's main.c needs from the board: a console, an exit status, a cycle counter. */
#ifndef EDGECLUST_EC_PLATFORM_H_
#define EDGECLUST_EC_PLATFORM_H_

#include <stdint.h>

void ec_platform_init(void);
void ec_print(const char *text);
void ec_print_u32(uint32_t value);
void ec_print_u64(uint64_t value);
/* Ends the run with `status` (QEMU: its exit status); returns only on boards that cannot stop. */
void ec_exit(int status);
/* Restarts the counter; ec_ticks_elapsed() gives the ticks since: SysTick on the processor clock with its
 * wraps counted in its interrupt, so the count never wraps; on a real board whose core has DWT->CYCCNT, cycles. */
void ec_ticks_start(void);
uint64_t ec_ticks_elapsed(void);
/* "ticks" (SysTick) or "cycles" (DWT->CYCCNT): what ec_ticks_elapsed() counts. */
const char *ec_ticks_unit(void);

#endif /* EDGECLUST_EC_PLATFORM_H_ */

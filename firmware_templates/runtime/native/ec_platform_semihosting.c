/* Semihosting console for the native runtime (QEMU, or a debug probe that serves semihosting), without
 * printf: SYS_WRITE0 for text, SYS_EXIT_EXTENDED for the status. SysTick on the processor clock counts
 * ticks; under `qemu-system-arm -icount shift=0` it counts instructions (one tick per 40 on mps2-an386). */
#include "ec_platform.h"

#define EC_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define EC_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define EC_SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint32_t ec_tick_start;

static int ec_semihost(int operation, const void *argument) {
  register int r0 __asm__("r0") = operation;
  register const void *r1 __asm__("r1") = argument;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void ec_platform_init(void) {
  EC_SYST_RVR = 0x00FFFFFFu;
  EC_SYST_CVR = 0u;
  EC_SYST_CSR = 5u; /* enable, processor clock, no interrupt */
}

void ec_print(const char *text) { (void)ec_semihost(0x04 /* SYS_WRITE0 */, text); }

void ec_print_u32(uint32_t value) {
  char digits[11];
  int i = 10;
  digits[i] = '\0';
  do {
    digits[--i] = (char)('0' + value % 10u);
    value /= 10u;
  } while (value != 0u);
  ec_print(&digits[i]);
}

void ec_exit(int status) {
  const uint32_t args[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
  (void)ec_semihost(0x20 /* SYS_EXIT_EXTENDED */, args);
}

void ec_ticks_start(void) { ec_tick_start = EC_SYST_CVR; }

uint32_t ec_ticks_elapsed(void) { return (ec_tick_start - EC_SYST_CVR) & 0x00FFFFFFu; /* counts down */ }

/* The native runtime's console, without printf, through the board's console that startup.c carries
 * (board/make/console.h; semihosting on the emulated boards whose board file says so, the part's UART
 * otherwise, so no BKPT runs on a board without a debugger). SysTick on the processor clock counts ticks;
 * under `qemu-system-arm -icount shift=0` it counts instructions (one tick per 40 on mps2-an386). */
#include "ec_platform.h"

/* from the board's startup.c (console.h) */
void console_init(void);
void console_write(const char *text);
void console_exit(int status) __attribute__((noreturn));

#define EC_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define EC_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define EC_SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint32_t ec_tick_start;

void ec_platform_init(void) {
  console_init();
  EC_SYST_RVR = 0x00FFFFFFu;
  EC_SYST_CVR = 0u;
  EC_SYST_CSR = 5u; /* enable, processor clock, no interrupt */
}

void ec_print(const char *text) { console_write(text); }

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

void ec_exit(int status) { console_exit(status); }

void ec_ticks_start(void) { ec_tick_start = EC_SYST_CVR; }

uint32_t ec_ticks_elapsed(void) { return (ec_tick_start - EC_SYST_CVR) & 0x00FFFFFFu; /* counts down */ }

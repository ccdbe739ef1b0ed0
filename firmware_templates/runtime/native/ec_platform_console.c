/* The native runtime's console, without printf, through the board's console that startup.c carries
 * (board/make/console.h; semihosting on the emulated boards whose board file says so, the part's UART
 * otherwise, so no BKPT runs on a board without a debugger).
 *
 * Timing: SysTick on the processor clock, reloaded at 2^24 with its interrupt counting the wraps, so a count is
 * 64 bits and never wraps (under `qemu-system-arm -icount shift=0` it counts instructions: one tick per 40 on
 * mps2-an386; edgeclust.device.icount calibrates each machine). On a real board (the firmware does not exit
 * after its self-test) whose core has the DWT cycle counter (Cortex-M3 and up), cycles from DWT->CYCCNT. */
#include "ec_platform.h"

/* from the board's startup.c (console.h) */
void console_init(void);
void console_write(const char *text);
void console_exit(int status) __attribute__((noreturn));

#define EC_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define EC_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define EC_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define EC_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define EC_DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define EC_DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define EC_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

#ifndef EDGECLUST_EXIT_AFTER_SELF_TEST
#define EDGECLUST_EXIT_AFTER_SELF_TEST 1
#endif

static volatile uint32_t ec_systick_wraps;
static uint64_t ec_tick_start;
static int ec_use_cyccnt;

/* Replaces startup.c's weak default: one more wrap of the 24-bit SysTick. */
void SysTick_Handler(void) { ec_systick_wraps = ec_systick_wraps + 1u; }

/* Ticks since SysTick started: wraps * 2^24 + the down-counter's progress, read so that no wrap is lost or
 * counted twice (the interrupt's count is re-read until it is the same on both sides of the counter's read). */
static uint64_t ec_systick_now(void) {
  uint32_t wraps, value, pending;
  do {
    wraps = ec_systick_wraps;
    value = EC_SYST_CVR & 0x00FFFFFFu;
    /* a wrap whose interrupt has not run yet (ICSR.PENDSTSET): count it, and read the counter after it */
    pending = EC_ICSR & (1u << 26);
    if (pending) value = EC_SYST_CVR & 0x00FFFFFFu;
  } while (wraps != ec_systick_wraps);
  /* the interrupt comes as the counter reaches 0, so 0 starts a period: progress (2^24 - value) mod 2^24 */
  return ((uint64_t)(wraps + (pending ? 1u : 0u)) << 24) + ((0x01000000u - value) & 0x00FFFFFFu);
}

void ec_platform_init(void) {
  console_init();
#if !EDGECLUST_EXIT_AFTER_SELF_TEST && (defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || \
                                        defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__))
  /* A real board: trace on (DEMCR.TRCENA), then the cycle counter where DWT has one (CTRL.NOCYCCNT clear). */
  EC_DEMCR |= 1u << 24;
  if ((EC_DWT_CTRL & (1u << 25)) == 0u) {
    EC_DWT_CYCCNT = 0u;
    EC_DWT_CTRL |= 1u;
    ec_use_cyccnt = EC_DWT_CYCCNT != 0u || EC_DWT_CYCCNT != 0u;
  }
#endif
  ec_systick_wraps = 0u;
  EC_SYST_RVR = 0x00FFFFFFu;
  EC_SYST_CVR = 0u;
  EC_SYST_CSR = 7u; /* enable, interrupt on each wrap, processor clock */
}

void ec_print(const char *text) { console_write(text); }

void ec_print_u64(uint64_t value) {
  char digits[21];
  int i = 20;
  digits[i] = '\0';
  do {
    digits[--i] = (char)('0' + (int)(value % 10u));
    value /= 10u;
  } while (value != 0u);
  ec_print(&digits[i]);
}

void ec_print_u32(uint32_t value) { ec_print_u64(value); }

void ec_exit(int status) { console_exit(status); }

void ec_ticks_start(void) { ec_tick_start = ec_use_cyccnt ? EC_DWT_CYCCNT : ec_systick_now(); }

uint64_t ec_ticks_elapsed(void) {
  if (ec_use_cyccnt) return (uint32_t)(EC_DWT_CYCCNT - (uint32_t)ec_tick_start); /* 32 bits: seconds at 1 GHz */
  return ec_systick_now() - ec_tick_start;
}

const char *ec_ticks_unit(void) { return ec_use_cyccnt ? "cycles" : "ticks"; }

/* Port for Arm's MPS3 board with the AN547 FPGA image (Corstone SSE-300 with a Cortex-M55 and
 * Helium, MVE) as QEMU emulates it, run by converter/device/qemu.py as
 *     qemu-system-arm -M mps3-an547 -icount shift=0,align=off,sleep=off -kernel firmware.elf
 * Bare metal: this file is the whole board (vector table, reset, UART, counter, main), linked
 * with mps3_an547.ld.
 *
 * Start-up: the Cortex-M55 resets with the FPU and MVE off (CPACR.CP10/CP11 = 0); the first
 * floating-point or vector instruction would take a UsageFault. The compiler may put MVE
 * instructions anywhere in C built for this core (gcc 12 vectorizes loops at -O2, the
 * .data/.bss loops here included), so the reset handler is assembly: it enables CP10 and CP11,
 * synchronizes, and only then enters C. And nothing here relies on the loader: .data is copied
 * from its load address in flash and .bss zeroed, as on a real board (newlib's rdimon start-up
 * code does not copy .data; -nostartfiles leaves it out).
 *
 * Serial link: UART0, a CMSDK APB UART at 0x59303000 (the Secure alias: the image runs
 * Secure), polled, as on the mps2-an386 (firmware/ports/mps2_an386/).
 *
 * Counter: executed instructions (not Cortex-M55 cycles; QEMU has no timing model). Under
 * -icount shift=0 virtual time advances 1 ns per instruction, and SysTick runs on the 32 MHz
 * system clock, so a tick lasts 31.25 instructions: the tick edges fall 31 or 32 instructions
 * apart, in a pattern that repeats every 4 ticks (125 instructions). Each read locates itself
 * on that pattern (sqz_mps3_sample), which makes the counts exact and repeatable. */
#include <stdint.h>

#include "model.h"
#include "sqz/port.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0_DATA REG(0x59303000u)
#define UART0_STATE REG(0x59303004u)
#define UART0_CTRL REG(0x59303008u)
#define UART0_BAUDDIV REG(0x59303010u)
#define UART_TX_FULL 0x1u
#define UART_RX_FULL 0x2u
#define UART_TX_EN 0x1u
#define UART_RX_EN 0x2u
#define UART_BAUD 115200u /* QEMU ignores it on a socket; a real MPS3 needs a divisor >= 16 */

#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SYST_ENABLE_TICKINT_CPUCLK 0x7u
#define SYST_RELOAD 0xFFFFFFu /* the full 24 bits: one period is 2^24 ticks */

#define SCB_AIRCR REG(0xE000ED0Cu)
#define AIRCR_SYSRESETREQ 0x05FA0004u

#define SYSCLK_HZ 32000000u
/* Instructions per 4 ticks (1 GHz of icount virtual time / SYSCLK_HZ = 31.25 per tick). */
#define INSTRUCTIONS_PER_4_TICKS 125u
/* Instructions per iteration of the loop in sqz_mps3_sample: 94 * 4 = 3 * 125 + 1, so each
 * sample lies 3 ticks and 1/125 of a 4-tick pattern after the last; 125 iterations walk the
 * whole pattern, one instruction at a time. */
#define SAMPLE_PERIOD 94u
#define SAMPLE_LIMIT 126u             /* iterations before giving up (no -icount) */
#define WRAP_HANDLER_INSTRUCTIONS 5u /* sqz_mps3_systick, exception entry and exit not counted */

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[];

void sqz_reset_handler(void);
void sqz_mps3_start(void);
void sqz_mps3_systick(void);
void sqz_mps3_sample(uint32_t out[4]);
int main(void);

static uint8_t arena[SQZ_MODEL_ARENA_BYTES] __attribute__((aligned(16)));

/* SysTick periods completed; written only by sqz_mps3_systick. */
volatile uint32_t sqz_mps3_wraps;
/* Instructions spent in sqz_mps3_sample's phase search so far: left out of the count. */
static uint64_t search_instructions;

/* A fault means a bug; asking for a reset makes QEMU (run with -no-reboot) exit, which the
 * host sees at once as a closed link instead of waiting out a RUN timeout. */
static void fault_handler(void)
{
    SCB_AIRCR = AIRCR_SYSRESETREQ;
    for (;;) {
    }
}

/* No device interrupt is ever enabled, so the table stops after the system exceptions. Its
 * entries are addresses (the first is the initial stack pointer), so it is a table of
 * integers: ISO C has no pointer type that holds both. */
#define VEC(f) ((uintptr_t)(f))
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    VEC(__stack_top), VEC(sqz_reset_handler), VEC(fault_handler), /* NMI */
    VEC(fault_handler), /* HardFault */
    VEC(fault_handler), VEC(fault_handler), VEC(fault_handler), /* MemManage, Bus, Usage */
    VEC(fault_handler), /* SecureFault */
    0, 0, 0, VEC(fault_handler), VEC(fault_handler), 0, VEC(fault_handler), /* SVC.. */
    VEC(sqz_mps3_systick),
};

/* CPACR (0xE000ED88): CP10 and CP11 full access, bits 20-23, then DSB and ISB so that the
 * next instruction sees it; only then C. */
__asm__(
    "    .section .text.sqz_reset_handler,\"ax\",%progbits\n"
    "    .syntax unified\n"
    "    .thumb\n"
    "    .global sqz_reset_handler\n"
    "    .type sqz_reset_handler, %function\n"
    "    .thumb_func\n"
    "sqz_reset_handler:\n"
    "    ldr   r0, =0xE000ED88\n"
    "    ldr   r1, [r0]\n"
    "    orr   r1, r1, #0x00F00000\n"
    "    str   r1, [r0]\n"
    "    dsb\n"
    "    isb\n"
    "    b     sqz_mps3_start\n"
    "    .ltorg\n"
    "    .size sqz_reset_handler, . - sqz_reset_handler\n");

void sqz_mps3_start(void)
{
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *p = __bss_start; p < __bss_end;) {
        *p++ = 0;
    }
    main();
    fault_handler();
}

/* Both routines are assembly because their instruction counts are part of the measurement:
 * the handler's 5 are subtracted per wrap, and the search loop must take exactly
 * SAMPLE_PERIOD instructions per iteration.
 *
 * sqz_mps3_sample samples SYST_CVR every 94 instructions with interrupts masked. Successive
 * samples differ by 3 ticks, except once in 125 iterations by 4: that sample lies exactly on
 * the first instruction of the 4-tick pattern (the tick count T, from the start of the
 * counter, is then the same modulo 4 at every read, and the instructions elapsed are
 * 125 * T / 4 plus a constant). It stops there and stores {the sample, iterations, a SysTick
 * wrap pending (ICSR.PENDSTSET), sqz_mps3_wraps}. Without -icount no such sample is found and
 * it gives up after SAMPLE_LIMIT iterations. */
__asm__(
    "    .section .text.sqz_mps3_systick,\"ax\",%progbits\n"
    "    .syntax unified\n"
    "    .thumb\n"
    "    .global sqz_mps3_systick\n"
    "    .type sqz_mps3_systick, %function\n"
    "    .thumb_func\n"
    "sqz_mps3_systick:\n"
    "    ldr   r0, =sqz_mps3_wraps\n"
    "    ldr   r1, [r0]\n"
    "    adds  r1, r1, #1\n"
    "    str   r1, [r0]\n"
    "    bx    lr\n"
    "    .ltorg\n"
    "    .size sqz_mps3_systick, . - sqz_mps3_systick\n"
    "\n"
    "    .section .text.sqz_mps3_sample,\"ax\",%progbits\n"
    "    .global sqz_mps3_sample\n"
    "    .type sqz_mps3_sample, %function\n"
    "    .thumb_func\n"
    "sqz_mps3_sample:\n"
    "    push  {r4, r5}\n"
    "    mrs   r5, primask\n"
    "    cpsid i\n"
    "    ldr   r1, =0xE000E018\n"      /* SYST_CVR */
    "    ldr   r2, [r1]\n"             /* first sample */
    "    mov   r12, #0\n"
    "    .rept 7\n"                    /* with the loop's 85: the next sample 94 later */
    "    nop\n"
    "    .endr\n"
    "1:\n"
    "    .rept 85\n"
    "    nop\n"
    "    .endr\n"
    "    ldr   r3, [r1]\n"
    "    add   r12, r12, #1\n"
    "    subs  r4, r2, r3\n"           /* ticks since the last sample, modulo 2^24 so that */
    "    lsls  r4, r4, #8\n"           /* the reload 0 -> 0xFFFFFF counts as one */
    "    mov   r2, r3\n"
    "    cmp   r4, #0x400\n"
    "    beq   2f\n"
    "    cmp   r12, #126\n"            /* SAMPLE_LIMIT */
    "    blo   1b\n"
    "2:\n"
    "    str   r3, [r0]\n"
    "    str   r12, [r0, #4]\n"
    "    ldr   r1, =0xE000ED04\n"      /* ICSR */
    "    ldr   r2, [r1]\n"
    "    ubfx  r2, r2, #26, #1\n"      /* PENDSTSET */
    "    str   r2, [r0, #8]\n"
    "    ldr   r1, =sqz_mps3_wraps\n"
    "    ldr   r2, [r1]\n"
    "    str   r2, [r0, #12]\n"
    "    msr   primask, r5\n"
    "    pop   {r4, r5}\n"
    "    bx    lr\n"
    "    .ltorg\n"
    "    .size sqz_mps3_sample, . - sqz_mps3_sample\n");

void sqz_port_init(void)
{
    UART0_BAUDDIV = SYSCLK_HZ / UART_BAUD;
    UART0_CTRL = UART_TX_EN | UART_RX_EN;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_ENABLE_TICKINT_CPUCLK;
}

int32_t sqz_port_read(uint8_t *buf, int32_t max)
{
    int32_t n = 0;
    while (n < max && (UART0_STATE & UART_RX_FULL)) {
        buf[n++] = (uint8_t)UART0_DATA;
    }
    return n;
}

void sqz_port_write(const uint8_t *buf, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        while (UART0_STATE & UART_TX_FULL) {
        }
        UART0_DATA = buf[i];
    }
}

/* Instructions executed outside this function (and outside the wrap handler) up to a fixed
 * point inside it: the difference of two reads counts exactly the code between them, plus a
 * constant for the fixed part of a read. The arithmetic is branch-free so that this fixed part
 * is the same whatever the sample. */
uint64_t sqz_port_counter(void)
{
    uint32_t s[4]; /* sample, iterations, wrap pending, wraps handled */
    sqz_mps3_sample(s);
    const uint32_t v = s[0];
    /* A wrap that went pending during the search precedes the sample if the sample is 0 (the
     * last tick of a period: the exception is raised on reaching 0) or near the top. */
    const uint32_t after_wrap = s[2] & ((((v - 1u) >> 23) + 0x1FFu) >> 9);
    const uint32_t at_zero = (v - 1u) >> 31;
    /* Periods are counted from 1 so that the 0 read just after enabling stays positive. */
    const uint64_t periods = (uint64_t)s[3] + after_wrap + 1u;
    const uint64_t ticks = (periods << 24) + SYST_RELOAD - v - ((uint64_t)at_zero << 24);
    const uint32_t found = (s[1] - SAMPLE_LIMIT) >> 31; /* an edge was found */
    search_instructions += (uint64_t)(found * SAMPLE_PERIOD * s[1]);
    /* T * 125 / 4, T being the same modulo 4 at every found edge: the floor drops the same
     * fraction each time. */
    return ((ticks * INSTRUCTIONS_PER_4_TICKS) >> 2) - search_instructions -
           (uint64_t)WRAP_HANDLER_INSTRUCTIONS * s[3];
}

uint8_t *sqz_port_arena(uint32_t bytes)
{
    return bytes <= sizeof arena ? arena : 0;
}

int main(void)
{
    sqz_port_init();
    sqz_app_init();
    for (;;) {
        sqz_app_poll();
    }
}

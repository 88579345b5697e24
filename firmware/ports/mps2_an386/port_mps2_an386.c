/* Port for Arm's MPS2 board with the AN386 FPGA image (Cortex-M4) as QEMU emulates it, run by
 * converter/device/qemu.py as
 *     qemu-system-arm -M mps2-an386 -icount shift=0,align=off,sleep=off -kernel firmware.elf
 * Bare metal: this file is the whole board (vector table, reset, UART, counter, main), linked
 * with mps2_an386.ld.
 *
 * Serial link: UART0, a CMSDK APB UART, polled. QEMU gives it a one-byte receive buffer but
 * hands it the next byte only once the guest has read the last, so a host that sends 4 KB
 * frames at full speed is throttled by the socket, never overrun.
 *
 * Counter: executed instructions (not Cortex-M4 cycles; QEMU has no timing model). Under
 * -icount shift=0 virtual time advances 1 ns per instruction, and SysTick runs on the 25 MHz
 * processor clock, so it ticks every 40 instructions. Read naively it would round each
 * measurement to a tick at a phase set by when the host's last byte happened to arrive, so one
 * input run twice would give counts up to 40 apart; each read therefore locates its exact
 * phase within the tick first (sqz_mps2_sample), which makes the counts exact and repeatable.
 */
#include <stdint.h>

#include "model.h"
#include "sqz/port.h"
#include "sqz_target.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0_DATA REG(0x40004000u)
#define UART0_STATE REG(0x40004004u)
#define UART0_CTRL REG(0x40004008u)
#define UART0_BAUDDIV REG(0x40004010u)
#define UART_TX_FULL 0x1u
#define UART_RX_FULL 0x2u
#define UART_TX_EN 0x1u
#define UART_RX_EN 0x2u
#define UART_BAUD 115200u /* QEMU ignores it on a socket; a real MPS2 needs a divisor >= 16 */

#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SYST_ENABLE_TICKINT_CPUCLK 0x7u
#define SYST_RELOAD 0xFFFFFFu /* the full 24 bits: one period is 2^24 ticks */

#define SCB_AIRCR REG(0xE000ED0Cu)
#define SCB_CPACR REG(0xE000ED88u)
#define AIRCR_SYSRESETREQ 0x05FA0004u
#define CPACR_CP10_CP11_FULL (0xFu << 20)

#define SYSCLK_HZ 25000000u
#define TICK_INSTRUCTIONS 40u /* 1 GHz of icount virtual time / SYSCLK_HZ */
#define SAMPLE_PERIOD 41u     /* instructions per iteration of the loop in sqz_mps2_sample */
#define WRAP_HANDLER_INSTRUCTIONS 5u /* sqz_mps2_systick, exception entry and exit not counted */

extern uint32_t __stack_top[], __data_start[], __data_end[], __data_load[], __bss_start[],
    __bss_end[];

void sqz_reset_handler(void);
void sqz_mps2_systick(void);
void sqz_mps2_sample(uint32_t out[4]);
int main(void);

static uint8_t arena[SQZ_MODEL_ARENA_BYTES] __attribute__((aligned(16)));

/* SysTick periods completed; written only by sqz_mps2_systick. */
volatile uint32_t sqz_mps2_wraps;
/* Instructions spent in sqz_mps2_sample's phase search so far: left out of the count. */
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
 * entries are addresses (the first is the initial stack pointer, not a function), so it is a
 * table of integers: ISO C has no pointer type that holds both. */
#define VEC(f) ((uintptr_t)(f))
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    VEC(__stack_top), VEC(sqz_reset_handler), VEC(fault_handler), /* NMI */
    VEC(fault_handler), /* HardFault */
    VEC(fault_handler), VEC(fault_handler), VEC(fault_handler), /* MemManage, Bus, Usage */
    0, 0, 0, 0, VEC(fault_handler), VEC(fault_handler), 0, VEC(fault_handler), /* SVC.. */
    VEC(sqz_mps2_systick),
};

void sqz_reset_handler(void)
{
    /* Nothing here uses the FPU (soft-float ABI), but should anything be built with
     * -mfloat-abi=hard one day, its first float instruction must not fault. */
    SCB_CPACR |= CPACR_CP10_CP11_FULL;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
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
 * sqz_mps2_sample samples SYST_CVR every 41 instructions with interrupts masked. A tick lasts
 * 40, so successive samples differ by one tick, except once in 40 iterations by two: that
 * sample sits exactly on a tick edge. It stops there and stores {the sample, iterations, a
 * SysTick wrap pending (ICSR.PENDSTSET), sqz_mps2_wraps}. Without -icount no edge is found and
 * it gives up after 41 iterations. */
__asm__(
    "    .section .text.sqz_mps2_systick,\"ax\",%progbits\n"
    "    .syntax unified\n"
    "    .thumb\n"
    "    .global sqz_mps2_systick\n"
    "    .type sqz_mps2_systick, %function\n"
    "    .thumb_func\n"
    "sqz_mps2_systick:\n"
    "    ldr   r0, =sqz_mps2_wraps\n"
    "    ldr   r1, [r0]\n"
    "    adds  r1, r1, #1\n"
    "    str   r1, [r0]\n"
    "    bx    lr\n"
    "    .ltorg\n"
    "    .size sqz_mps2_systick, . - sqz_mps2_systick\n"
    "\n"
    "    .section .text.sqz_mps2_sample,\"ax\",%progbits\n"
    "    .global sqz_mps2_sample\n"
    "    .type sqz_mps2_sample, %function\n"
    "    .thumb_func\n"
    "sqz_mps2_sample:\n"
    "    push  {r4, r5}\n"
    "    mrs   r5, primask\n"
    "    cpsid i\n"
    "    ldr   r1, =0xE000E018\n"      /* SYST_CVR */
    "    ldr   r2, [r1]\n"             /* first sample */
    "    mov   r12, #0\n"
    "    .rept 7\n"                    /* with the loop's 32: the next sample 41 later */
    "    nop\n"
    "    .endr\n"
    "1:\n"
    "    .rept 32\n"
    "    nop\n"
    "    .endr\n"
    "    ldr   r3, [r1]\n"
    "    add   r12, r12, #1\n"
    "    subs  r4, r2, r3\n"           /* ticks since the last sample, modulo 2^24 so that */
    "    lsls  r4, r4, #8\n"           /* the reload 0 -> 0xFFFFFF counts as one */
    "    mov   r2, r3\n"
    "    cmp   r4, #0x200\n"
    "    beq   2f\n"
    "    cmp   r12, #41\n"
    "    blo   1b\n"
    "2:\n"
    "    str   r3, [r0]\n"
    "    str   r12, [r0, #4]\n"
    "    ldr   r1, =0xE000ED04\n"      /* ICSR */
    "    ldr   r2, [r1]\n"
    "    ubfx  r2, r2, #26, #1\n"      /* PENDSTSET */
    "    str   r2, [r0, #8]\n"
    "    ldr   r1, =sqz_mps2_wraps\n"
    "    ldr   r2, [r1]\n"
    "    str   r2, [r0, #12]\n"
    "    msr   primask, r5\n"
    "    pop   {r4, r5}\n"
    "    bx    lr\n"
    "    .ltorg\n"
    "    .size sqz_mps2_sample, . - sqz_mps2_sample\n");

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
    sqz_mps2_sample(s);
    const uint32_t v = s[0];
    /* A wrap that went pending during the search precedes the sample if the sample is 0 (the
     * last tick of a period: the exception is raised on reaching 0) or near the top. */
    const uint32_t after_wrap = s[2] & ((((v - 1u) >> 23) + 0x1FFu) >> 9);
    const uint32_t at_zero = (v - 1u) >> 31;
    /* Periods are counted from 1 so that the 0 read just after enabling stays positive. */
    const uint64_t periods = (uint64_t)s[3] + after_wrap + 1u;
    const uint64_t ticks = (periods << 24) + SYST_RELOAD - v - ((uint64_t)at_zero << 24);
    const uint32_t found = (s[1] - SAMPLE_PERIOD) >> 31; /* an edge was found */
    search_instructions += (uint64_t)(found * SAMPLE_PERIOD * s[1]);
    return ticks * TICK_INSTRUCTIONS - search_instructions -
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

/* Port for the ESP32-S3 (Xtensa LX7 with the PIE SIMD unit) as QEMU's esp32s3 machine emulates
 * it, run by converter/device/qemu.py as
 *     qemu-system-xtensa -M esp32s3 -m 8M -drive file=flash.bin,if=mtd,... -kernel firmware.elf
 * Bare metal: this file, start_esp32s3_qemu.S and esp32s3_qemu.ld are the whole board.
 *
 * Serial link: UART0, polled, on QEMU's TCP socket. QEMU paces reception at the programmed baud
 * rate once the 128-byte receive FIFO is full, so the port sets the fastest rate that still
 * moves data in large bursts (5 Mbaud); a read takes everything the FIFO holds at once.
 *
 * Counter: ICOUNT, the debug option's count of retired instructions (the one debuggers use to
 * single-step; silicon has it too). QEMU keeps it exact: every instruction counts 1, a 16-lane
 * PIE multiply-accumulate as much as a nop. It is not CCOUNT: QEMU derives CCOUNT from its
 * virtual clock, which also advances while it runs the idle second core. ICOUNT counts only at
 * interrupt level 0, so window overflow/underflow handlers (run with PS.EXCM set) are not
 * counted, on silicon as here. The debug handler in start_esp32s3_qemu.S extends it past 32 bits.
 *
 * Memory: the arena is a static array in internal SRAM, or, when the converter placed it in
 * PSRAM (SQZ_ARENA_IN_PSRAM), PSRAM pages mapped by the cache MMU at 0x3D000000. QEMU needs only
 * the MMU entries; a real chip would first need the PSRAM controller and cache set up (ESP-IDF
 * does that; the Arduino port, firmware/ports/esp32_arduino, is the one for real boards).
 */
#include <stdint.h>

#include "model.h"
#include "sqz/port.h"
#include "sqz_target.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0_FIFO REG(0x60000000u)
#define UART0_CLKDIV REG(0x60000014u)
#define UART0_STATUS REG(0x6000001Cu)
#define RXFIFO_COUNT(status) ((status)&0x3FFu)
#define TXFIFO_COUNT(status) (((status) >> 16) & 0x3FFu)
#define UART_FIFO_BYTES 128u
#define APB_HZ 80000000u
#define UART_BAUD 5000000u

#define MMU_TABLE ((volatile uint32_t *)0x600C5000u)
#define MMU_PSRAM (1u << 15)
#define MMU_PAGE_BYTES 0x10000u
#define DCACHE_WINDOW 0x3C000000u
/* PSRAM above the 16 MB the flash-mapped data may use. */
#define PSRAM_WINDOW 0x3D000000u

/* One ICOUNT wrap: the debug exception is raised instead of the increment past 0xFFFFFFFF, and
 * its handler restarts the count at 0 (start_esp32s3_qemu.S). */
#define ICOUNT_WRAP 0xFFFFFFFFull

extern volatile uint32_t sqz_s3_icount_wraps;

int main(void);

/* 16 bytes when the arena is in PSRAM: no internal SRAM is spent on it. */
static uint8_t internal_arena[SQZ_ARENA_IN_PSRAM ? 16 : SQZ_MODEL_ARENA_BYTES]
    __attribute__((aligned(16)));

void sqz_port_init(void)
{
    UART0_CLKDIV = APB_HZ / UART_BAUD;
    /* Count instructions run at interrupt level 0, from 0. */
    __asm__ volatile("wsr.icount %0\n\t"
                     "wsr.icountlevel %1\n\t"
                     "isync" ::"a"(0),
                     "a"(1)
                     : "memory");
}

int32_t sqz_port_read(uint8_t *buf, int32_t max)
{
    uint32_t waiting = RXFIFO_COUNT(UART0_STATUS);
    int32_t n = 0;
    while (n < max && waiting > 0u) {
        buf[n++] = (uint8_t)UART0_FIFO;
        --waiting;
    }
    return n;
}

void sqz_port_write(const uint8_t *buf, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        while (TXFIFO_COUNT(UART0_STATUS) >= UART_FIFO_BYTES) {
        }
        UART0_FIFO = buf[i];
    }
}

/* Instructions retired before a fixed point inside this function: the difference of two reads
 * is the code between them plus a constant. The count and the wrap count are read at interrupt
 * level 1, where ICOUNT stands still, so no wrap can fall between them, and the arithmetic is
 * done there too, so that the instructions counted per read are the same whatever the values. */
uint64_t sqz_port_counter(void)
{
    uint32_t ps;
    uint32_t lo;
    uint32_t hi;
    uint32_t tmp;
    /* total = wraps * (2^32 - 1) + icount = (wraps << 32) - wraps + icount */
    __asm__ volatile("rsil   %[ps], 1\n\t"
                     "rsr.icount %[lo]\n\t"
                     "l32i   %[hi], %[wraps], 0\n\t"
                     "sub    %[tmp], %[lo], %[hi]\n\t" /* low word: icount - wraps */
                     "bgeu   %[lo], %[hi], 1f\n\t"     /* borrow? */
                     "addi   %[hi], %[hi], -1\n"
                     "1:\n\t"
                     "mov    %[lo], %[tmp]\n\t"
                     "wsr.ps %[ps]\n\t"
                     "rsync"
                     : [ps] "=&a"(ps), [lo] "=&a"(lo), [hi] "=&a"(hi), [tmp] "=&a"(tmp)
                     : [wraps] "a"(&sqz_s3_icount_wraps)
                     : "memory");
    return ((uint64_t)hi << 32) | lo;
}

uint8_t *sqz_port_arena(uint32_t bytes)
{
    if (!SQZ_ARENA_IN_PSRAM) {
        return bytes <= sizeof internal_arena ? internal_arena : 0;
    }
    if (bytes > (uint32_t)SQZ_PSRAM_BYTES) {
        return 0;
    }
    const uint32_t first = (PSRAM_WINDOW - DCACHE_WINDOW) / MMU_PAGE_BYTES;
    for (uint32_t page = 0; page * MMU_PAGE_BYTES < bytes; ++page) {
        MMU_TABLE[first + page] = MMU_PSRAM | page;
    }
    __asm__ volatile("memw" ::: "memory");
    return (uint8_t *)PSRAM_WINDOW;
}

int main(void)
{
    sqz_port_init();
    sqz_app_init();
    for (;;) {
        sqz_app_poll();
    }
}

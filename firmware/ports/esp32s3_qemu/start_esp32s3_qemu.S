/* Reset and exception handling of the bare-metal ESP32-S3 port (Xtensa LX7, windowed ABI).
 *
 * QEMU's -kernel boot jumps to _start with the CPU as it leaves reset: VECBASE in the (empty)
 * ROM, PS.EXCM set, no stack. _start installs the vector table below, sets up one live register
 * window, enables the coprocessors (the PIE SIMD unit faults on silicon until CPENABLE allows
 * it), copies .data, zeroes .bss, maps the flash pages that hold .drom and calls main.
 *
 * Vectors:
 *  - window overflow/underflow: spill and refill register windows (the Xtensa ISA's standard
 *    sequences; the stack frame layout is the ABI's);
 *  - debug (level 6): ICOUNT, the retired-instruction counter sqz_port_counter() reads, raises
 *    it when it is about to wrap past 2^32 - 1; the handler adds one wrap to sqz_s3_icount_wraps
 *    and restarts ICOUNT from 0, so counts of billions of instructions stay exact;
 *  - everything else is a firmware bug: sqz_s3_fatal reports the cause on QEMU's stderr
 *    (semihosting) and resets the chip; QEMU runs with -no-reboot and exits, which the host
 *    sees at once as a closed link.
 */
#define PS_WOE (1 << 18)
#define PS_UM (1 << 5)
#define DEBUGCAUSE_ICOUNT 0
#define MMU_TABLE 0x600C5000
#define MMU_PAGE_SHIFT 16
/* .drom sits at flash offset 0x10000 (esp32s3_qemu.ld, converter/device/qemu.py): flash page 1. */
#define DROM_FLASH_PAGE 1
#define RTC_CNTL_OPTIONS0 0x60008000
#define SW_SYS_RESET 0x80000000
#define SEMIHOSTING_SYS_WRITE 4
#define STDERR 2

/* ------------------------------------------------------------------------------------------ */
        .section .sqz_vectors, "ax"
        .align  1024
        .global sqz_s3_vectors
sqz_s3_vectors:
        /* Window overflow: a call found the next frame's registers still live; store them to
         * the save area of the frame they belong to (below its stack pointer, or for 8- and
         * 12-register frames, in the extension area of the caller's caller). */
        .org    0x000                   /* WindowOverflow4 */
        s32e    a0, a5, -16
        s32e    a1, a5, -12
        s32e    a2, a5, -8
        s32e    a3, a5, -4
        rfwo
        .org    0x040                   /* WindowUnderflow4 */
        l32e    a0, a5, -16
        l32e    a1, a5, -12
        l32e    a2, a5, -8
        l32e    a3, a5, -4
        rfwu
        .org    0x080                   /* WindowOverflow8 */
        s32e    a0, a9, -16
        l32e    a0, a1, -12             /* the caller's caller's stack pointer */
        s32e    a1, a9, -12
        s32e    a2, a9, -8
        s32e    a3, a9, -4
        s32e    a4, a0, -32
        s32e    a5, a0, -28
        s32e    a6, a0, -24
        s32e    a7, a0, -20
        rfwo
        .org    0x0C0                   /* WindowUnderflow8 */
        l32e    a1, a9, -12
        l32e    a0, a9, -16
        l32e    a7, a1, -12
        l32e    a2, a9, -8
        l32e    a4, a7, -32
        l32e    a3, a9, -4
        l32e    a5, a7, -28
        l32e    a6, a7, -24
        l32e    a7, a7, -20
        rfwu
        .org    0x100                   /* WindowOverflow12 */
        s32e    a0, a13, -16
        l32e    a0, a1, -12
        s32e    a1, a13, -12
        s32e    a2, a13, -8
        s32e    a3, a13, -4
        s32e    a4, a0, -48
        s32e    a5, a0, -44
        s32e    a6, a0, -40
        s32e    a7, a0, -36
        s32e    a8, a0, -32
        s32e    a9, a0, -28
        s32e    a10, a0, -24
        s32e    a11, a0, -20
        rfwo
        .org    0x140                   /* WindowUnderflow12 */
        l32e    a1, a13, -12
        l32e    a0, a13, -16
        l32e    a11, a1, -12
        l32e    a2, a13, -8
        l32e    a4, a11, -48
        l32e    a8, a11, -32
        l32e    a3, a13, -4
        l32e    a5, a11, -44
        l32e    a6, a11, -40
        l32e    a7, a11, -36
        l32e    a9, a11, -28
        l32e    a10, a11, -24
        l32e    a11, a11, -20
        rfwu
        .org    0x180                   /* level 2 interrupt */
        j       sqz_s3_fatal
        .org    0x1C0                   /* level 3 */
        j       sqz_s3_fatal
        .org    0x200                   /* level 4 */
        j       sqz_s3_fatal
        .org    0x240                   /* level 5 */
        j       sqz_s3_fatal
        .org    0x280                   /* debug exception (level 6) */
        wsr.excsave6 a0
        j       sqz_s3_debug
        .org    0x2C0                   /* NMI */
        j       sqz_s3_fatal
        .org    0x300                   /* kernel exception */
        j       sqz_s3_fatal
        .org    0x340                   /* user exception */
        j       sqz_s3_fatal
        .org    0x3C0                   /* double exception */
        j       sqz_s3_fatal
        .org    0x400

/* ------------------------------------------------------------------------------------------ */
        .section .text.sqz_s3_start, "ax"
        .literal_position
        .align  4
        .global _start
        .type   _start, @function
_start:
        movi    a2, sqz_s3_vectors
        wsr.vecbase a2
        movi    a2, 0
        wsr.intenable a2
        wsr.windowbase a2
        rsync
        movi    a2, 1
        wsr.windowstart a2
        movi    a2, PS_WOE | PS_UM      /* EXCM clear, interrupt level 0 */
        wsr.ps  a2
        rsync
        movi    a2, 0xFF
        wsr.cpenable a2
        rsync
        movi    sp, _sqz_stack_top
        movi    a0, 0                   /* ends backtraces */

        movi    a2, _sqz_data_load
        movi    a3, _sqz_data_start
        movi    a4, _sqz_data_end
1:      bgeu    a3, a4, 2f
        l32i    a5, a2, 0
        s32i    a5, a3, 0
        addi    a2, a2, 4
        addi    a3, a3, 4
        j       1b
2:      movi    a3, _sqz_bss_start
        movi    a4, _sqz_bss_end
        movi    a5, 0
3:      bgeu    a3, a4, 4f
        s32i    a5, a3, 0
        addi    a3, a3, 4
        j       3b

        /* Entry i of the MMU table maps the 64 KB page at 0x3C000000 + i * 64 KB; its value
         * is the flash page number (bit 15 clear: flash, not PSRAM). */
4:      movi    a2, MMU_TABLE
        movi    a3, DROM_FLASH_PAGE
        movi    a4, _sqz_drom_start
        movi    a5, _sqz_drom_end
5:      bgeu    a4, a5, 6f
        s32i    a3, a2, 0
        addi    a2, a2, 4
        addi    a3, a3, 1
        movi    a6, 1 << MMU_PAGE_SHIFT
        add     a4, a4, a6
        j       5b
6:      memw
        /* _start's own frame is never returned to and makes only call4s: it needs no stack. */
        call4   main
        j       sqz_s3_fatal
        .size   _start, . - _start

/* ------------------------------------------------------------------------------------------ */
        .section .text.sqz_s3_debug, "ax"
        .literal_position
        .align  4
sqz_s3_debug:                           /* a0 is in EXCSAVE6 */
        movi    a0, sqz_s3_debug_scratch
        s32i    a2, a0, 0
        rsr.debugcause a2
        bbci    a2, DEBUGCAUSE_ICOUNT, 1f
        movi    a2, sqz_s3_icount_wraps
        l32i    a0, a2, 0
        addi    a0, a0, 1
        s32i    a0, a2, 0
        movi    a2, 0
        wsr.icount a2
        movi    a0, sqz_s3_debug_scratch
        l32i    a2, a0, 0
        rsr.excsave6 a0
        rfi     6
1:      j       sqz_s3_fatal

        .section .data.sqz_s3_fatal, "aw"
sqz_s3_fatal_message:
        .ascii  "sqz esp32s3: fatal exception "
sqz_s3_fatal_message_cause:
        .ascii  "........ at "
sqz_s3_fatal_message_pc:
        .ascii  "........, address "
sqz_s3_fatal_message_address:
        .ascii  "........\n"
sqz_s3_fatal_message_end:
        .equ    SQZ_S3_FATAL_MESSAGE_BYTES, sqz_s3_fatal_message_end - sqz_s3_fatal_message


/* Report "sqz esp32s3: fatal exception <EXCCAUSE> at <EPC1>, address <EXCVADDR>" on QEMU's
 * stderr with a semihosting write, then reset. It may run on any vector, with the stack in
 * any state: it uses only registers and static memory, and never returns. */
        .section .text.sqz_s3_fatal, "ax"
        .literal_position
        .align  4
        .global sqz_s3_fatal
sqz_s3_fatal:
        movi    a2, sqz_s3_fatal_message_cause
        rsr.exccause a3
        call0   sqz_s3_put_hex
        movi    a2, sqz_s3_fatal_message_pc
        rsr.epc1 a3
        call0   sqz_s3_put_hex
        movi    a2, sqz_s3_fatal_message_address
        rsr.excvaddr a3
        call0   sqz_s3_put_hex
        movi    a2, SEMIHOSTING_SYS_WRITE
        movi    a3, STDERR
        movi    a4, sqz_s3_fatal_message
        movi    a5, SQZ_S3_FATAL_MESSAGE_BYTES
        simcall
        movi    a2, RTC_CNTL_OPTIONS0
        movi    a3, SW_SYS_RESET
        s32i    a3, a2, 0
        memw
7:      waiti   15
        j       7b

/* Writes a3 as 8 hex digits at a2. Clobbers a2-a6. */
sqz_s3_put_hex:
        movi    a4, 8
8:      extui   a5, a3, 28, 4
        slli    a3, a3, 4
        movi    a6, 10
        blt     a5, a6, 9f
        addi    a5, a5, 'a' - '0' - 10
9:      addi    a5, a5, '0'
        s8i     a5, a2, 0
        addi    a2, a2, 1
        addi    a4, a4, -1
        bnez    a4, 8b
        ret

        .section .bss.sqz_s3_debug, "aw", @nobits
        .align  4
sqz_s3_debug_scratch:
        .space  4
        .global sqz_s3_icount_wraps
sqz_s3_icount_wraps:
        .space  4

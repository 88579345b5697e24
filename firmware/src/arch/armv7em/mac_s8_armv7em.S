/* The pair loops of the armv7em conv kernel (mac.h has the layouts and the contract), in
 * assembly because the multiply-accumulate loop needs every register: four accumulators, four
 * patch words read by one LDM, two filter words read by one LDRD, a scratch register and two
 * pointers and a count, which a C compiler does not allocate without spilling. Per four taps of
 * two pixels and two output channels: 14 instructions for 16 multiply-accumulates. The output
 * stage is requantize_fast() of conv_s8_armv7em.c: six instructions per value. mac.c computes
 * the same in C (the host's build, where this file assembles to nothing). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

    .syntax unified
    .thumb
    .text

/* The job (sqz_pair_job), copied to the stack. */
    .equ JOB_PATCH, 0
    .equ JOB_QUADS, 4
    .equ JOB_BIAS, 8
    .equ JOB_QUANT, 12
    .equ JOB_OUT, 16
    .equ JOB_PITCH, 20
    .equ JOB_PAIRS, 24
    .equ JOB_BYTES, 28

/* One quad, two pixels x two channels. r0 patch and r1 filter advance; r4-r7 patch words,
 * r12/lr filter words, r3 scratch; r8 r9 pixel 0's sums (channel 0, 1), r10 r11 pixel 1's. */
    .macro QUAD_2X2
    ldm     r0!, {r4, r5, r6, r7}
    ldrd    r12, lr, [r1], #8
    sxtb16  r3, r12
    sxtb16  r12, r12, ror #8
    smlad   r8, r4, r3, r8
    smlad   r8, r5, r12, r8
    smlad   r10, r6, r3, r10
    smlad   r10, r7, r12, r10
    sxtb16  r3, lr
    sxtb16  lr, lr, ror #8
    smlad   r9, r4, r3, r9
    smlad   r9, r5, lr, r9
    smlad   r11, r6, r3, r11
    smlad   r11, r7, lr, r11
    .endm

/* One quad, pixel 0 x two channels. r4 r5 patch words, r6 r7 filter words, r12 scratch. */
    .macro QUAD_1X2
    ldrd    r4, r5, [r0], #16
    ldrd    r6, r7, [r1], #8
    sxtb16  r12, r6
    sxtb16  r6, r6, ror #8
    smlad   r8, r4, r12, r8
    smlad   r8, r5, r6, r8
    sxtb16  r12, r7
    sxtb16  r7, r7, ror #8
    smlad   r9, r4, r12, r9
    smlad   r9, r5, r7, r9
    .endm

/* r2 quads: the loop, two quads per pass after an odd one. The quad macros set no flags, so
 * Z from LSRS still says whether pairs of quads remain. */
    .macro QUAD_LOOP quad
    lsrs    r2, r2, #1
    bcc     1f
    \quad
1:  beq     3f
2:  \quad
    \quad
    subs    r2, r2, #1
    bne     2b
3:
    .endm

/* acc = requantize_fast(acc) with m, hi, sh the channel's sqz_fast_quant; r12 and lr are
 * scratch. (acc * m + lo:hi) >> 32 >> sh, lo = 2^30 or 0xC0000000 and hi one less for
 * negative acc. */
    .macro REQUANT acc, m, hi, sh
    and     r12, \acc, #0x80000000
    eor     r12, r12, #0x40000000
    add     lr, \hi, \acc, asr #31
    smlal   r12, lr, \acc, \m
    asr     lr, lr, \sh
    ssat    \acc, #8, lr
    .endm

/* Entry: r0 job, r1 filter. Copies the job onto the stack, which the loops then address. */
    .macro PROLOGUE
    push    {r4-r11, lr}
    sub     sp, sp, #JOB_BYTES
    ldm     r0, {r2, r3, r4, r5, r6, r7, r12}
    stm     sp, {r2, r3, r4, r5, r6, r7, r12}
    .endm

/* r8 r9: channel 0 and 1 of a pixel; r10 r11 of the other. Loads both channels' biases
 * (r3 scratch) and the patch (r0) and quad count (r2) for the loop. */
    .macro PAIR_START
    ldrd    r0, r2, [sp, #JOB_PATCH]
    ldr     r3, [sp, #JOB_BIAS]
    ldrd    r8, r9, [r3], #8
    str     r3, [sp, #JOB_BIAS]
    .endm

    .macro PAIR_END label
    ldr     r2, [sp, #JOB_PAIRS]
    subs    r2, r2, #1
    str     r2, [sp, #JOB_PAIRS]
    bne     \label
    add     sp, sp, #JOB_BYTES
    pop     {r4-r11, pc}
    .endm

/* void sqz_armv7em_pairs_2px_asm(const sqz_pair_job *job, const int8_t *filter) */
    .global sqz_armv7em_pairs_2px_asm
    .type   sqz_armv7em_pairs_2px_asm, %function
    .p2align 2
    .thumb_func
sqz_armv7em_pairs_2px_asm:
    PROLOGUE
.Lpair2:
    PAIR_START
    mov     r10, r8
    mov     r11, r9
    QUAD_LOOP QUAD_2X2
    ldr     r0, [sp, #JOB_QUANT]
    ldm     r0!, {r2, r3, r4, r5, r6, r7}   /* mult, hi, shift of channel 0, then 1 */
    str     r0, [sp, #JOB_QUANT]
    REQUANT r8, r2, r3, r4
    REQUANT r10, r2, r3, r4
    REQUANT r9, r5, r6, r7
    REQUANT r11, r5, r6, r7
    ldrd    r0, r2, [sp, #JOB_OUT]          /* pixel 0's output, pitch */
    bfi     r8, r9, #8, #8
    bfi     r10, r11, #8, #8
    strh    r8, [r0]                        /* may be unaligned: Armv7-M allows it */
    strh    r10, [r0, r2]
    adds    r0, r0, #2
    str     r0, [sp, #JOB_OUT]
    PAIR_END .Lpair2
    .size   sqz_armv7em_pairs_2px_asm, . - sqz_armv7em_pairs_2px_asm

/* void sqz_armv7em_pairs_1px_asm(const sqz_pair_job *job, const int8_t *filter) */
    .global sqz_armv7em_pairs_1px_asm
    .type   sqz_armv7em_pairs_1px_asm, %function
    .p2align 2
    .thumb_func
sqz_armv7em_pairs_1px_asm:
    PROLOGUE
.Lpair1:
    PAIR_START
    QUAD_LOOP QUAD_1X2
    ldr     r0, [sp, #JOB_QUANT]
    ldm     r0!, {r2, r3, r4, r5, r6, r7}
    str     r0, [sp, #JOB_QUANT]
    REQUANT r8, r2, r3, r4
    REQUANT r9, r5, r6, r7
    ldr     r0, [sp, #JOB_OUT]
    bfi     r8, r9, #8, #8
    strh    r8, [r0], #2
    str     r0, [sp, #JOB_OUT]
    PAIR_END .Lpair1
    .size   sqz_armv7em_pairs_1px_asm, . - sqz_armv7em_pairs_1px_asm

#endif

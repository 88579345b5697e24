/* The channel-pair loop of the armv7em conv kernel (mac.h has the layouts and the contract),
 * in assembly because its multiply-accumulate loop needs every register: four accumulators,
 * four patch words read by one LDM, two weight words per LDRD, and three pointers and counts,
 * which a C compiler does not allocate without spilling. Per four taps of two pixels and two
 * output channels: 11 instructions for 16 multiply-accumulates, and the loop unrolled four
 * times. The output stage is
 * sqz_requantize_doubled (mac.h), four instructions per value. mac.c computes the same in C
 * (the host's build, where this file assembles to nothing). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

    .syntax unified
    .thumb
    .text

/* sqz_pair_job, copied to the stack. */
    .equ JOB_QUANT, 0      /* mult, hi2, shift of channel 0, then of channel 1 */
    .equ JOB_BIAS, 24
    .equ JOB_WIDE, 32      /* then quads */
    .equ JOB_OUT, 40       /* then pitch */
    .equ JOB_PATCH, 48
    .equ JOB_PAIRS, 52
    .equ JOB_TAIL, 56
    .equ JOB_FILTER, 60
    .equ JOB_BYTES, 68     /* 64 and a pad word: the frame stays 8-byte aligned */

/* One quad of two pixels x two channels. r0 patch and r1 weights advance; r4-r7 patch words,
 * r12/lr weight words; r8 r9 the first pixel's sums (channel 0, 1), r10 r11 the second's. */
    .macro QUAD_2X2
    ldm     r0!, {r4, r5, r6, r7}
    ldrd    r12, lr, [r1], #8
    smlad   r8, r4, r12, r8
    smlad   r8, r5, lr, r8
    smlad   r10, r6, r12, r10
    smlad   r10, r7, lr, r10
    ldrd    r12, lr, [r1], #8
    smlad   r9, r4, r12, r9
    smlad   r9, r5, lr, r9
    smlad   r11, r6, r12, r11
    smlad   r11, r7, lr, r11
    .endm

/* One quad of one pixel x two channels (the second pixel's words are skipped). */
    .macro QUAD_1X2
    ldrd    r4, r5, [r0], #16
    ldm     r1!, {r6, r7, r12, lr}
    smlad   r8, r4, r6, r8
    smlad   r8, r5, r7, r8
    smlad   r9, r4, r12, r9
    smlad   r9, r5, lr, r9
    .endm

/* r2 quads: the loop, four quads per pass after the odd one and the odd pair. The quad macros
 * set no flags, so C and Z from the LSRS before them still tell what remains. */
    .macro QUAD_LOOP quad
    lsrs    r2, r2, #1          /* C: an odd quad */
    bcc     1f
    \quad
1:  lsrs    r2, r2, #1          /* C: an odd pair of quads; Z: no passes of four */
    bcc     2f
    \quad
    \quad
2:  beq     4f
3:  \quad
    \quad
    \quad
    \quad
    subs    r2, r2, #1
    bne     3b
4:
    .endm

/* One quad of a channel pair's weights, widened: r1 filter and r0 wide advance. */
    .macro WIDEN_QUAD
    ldrd    r4, r5, [r1], #8
    sxtb16  r6, r4
    sxtb16  r7, r4, ror #8
    sxtb16  r8, r5
    sxtb16  r9, r5, ror #8
    stm     r0!, {r6, r7, r8, r9}
    .endm

    .macro WIDEN_LOOP
    QUAD_LOOP WIDEN_QUAD
    .endm

/* acc = sqz_requantize_doubled(acc) for the channel whose constants are m, hi2, sh. */
    .macro REQUANT acc, m, hi2, sh
    add     lr, \hi2, \acc, asr #31
    smmlar  \acc, \acc, \m, lr
    asr     \acc, \acc, \sh
    ssat    \acc, #8, \acc
    .endm

/* void sqz_armv7em_pair_asm(const sqz_pair_job *job) */
    .global sqz_armv7em_pair_asm
    .type   sqz_armv7em_pair_asm, %function
    .p2align 2
    .thumb_func
sqz_armv7em_pair_asm:
    push    {r4-r11, lr}
    sub     sp, sp, #JOB_BYTES
    ldm     r0!, {r1, r2, r3, r4, r5, r6, r7, r8}
    stm     sp, {r1, r2, r3, r4, r5, r6, r7, r8}
    ldm     r0, {r1, r2, r3, r4, r5, r6, r7, r8}
    add     r12, sp, #JOB_BIAS + 8
    stm     r12, {r1, r2, r3, r4, r5, r6, r7, r8}
    /* Widen the pair's weights: r1 filter, r0 wide, r2 quads. */
    ldr     r1, [sp, #JOB_FILTER]
    ldrd    r0, r2, [sp, #JOB_WIDE]
    WIDEN_LOOP
    ldr     r0, [sp, #JOB_PATCH]        /* r0 runs through the patches */
    ldr     r3, [sp, #JOB_PAIRS]        /* r3 counts the pixel pairs */
    cmp     r3, #0
    beq     .Ltail
.Lpixels:
    ldrd    r8, r9, [sp, #JOB_BIAS]
    mov     r10, r8
    mov     r11, r9
    ldrd    r1, r2, [sp, #JOB_WIDE]
    QUAD_LOOP QUAD_2X2
    ldm     sp, {r1, r2, r4, r5, r6, r7}
    REQUANT r8, r1, r2, r4
    REQUANT r10, r1, r2, r4
    REQUANT r9, r5, r6, r7
    REQUANT r11, r5, r6, r7
    ldrd    r1, r2, [sp, #JOB_OUT]      /* the first pixel's output, pitch */
    bfi     r8, r9, #8, #8
    bfi     r10, r11, #8, #8
    strh    r8, [r1]                    /* may be unaligned: Armv7-M allows it */
    strh    r10, [r1, r2]
    add     r1, r1, r2, lsl #1
    str     r1, [sp, #JOB_OUT]
    subs    r3, r3, #1
    bne     .Lpixels
.Ltail:
    ldr     r3, [sp, #JOB_TAIL]
    cmp     r3, #0
    beq     .Ldone
    ldrd    r8, r9, [sp, #JOB_BIAS]
    ldrd    r1, r2, [sp, #JOB_WIDE]
    QUAD_LOOP QUAD_1X2
    ldm     sp, {r1, r2, r4, r5, r6, r7}
    REQUANT r8, r1, r2, r4
    REQUANT r9, r5, r6, r7
    ldr     r1, [sp, #JOB_OUT]
    bfi     r8, r9, #8, #8
    strh    r8, [r1]
.Ldone:
    add     sp, sp, #JOB_BYTES
    pop     {r4-r11, pc}
    .size   sqz_armv7em_pair_asm, . - sqz_armv7em_pair_asm

/* void sqz_armv7em_widen_patch(uint32_t *patch, const int8_t *in, int32_t quads): four input
 * bytes per quad (any alignment) to one pixel's two doubled patch words, 16 bytes apart. */
    .macro WIDEN_PATCH_QUAD
    ldr     r3, [r1], #4
    sxtb16  r12, r3
    sxtb16  r3, r3, ror #8
    sadd16  r12, r12, r12
    sadd16  r3, r3, r3
    strd    r12, r3, [r0], #16
    .endm

    .global sqz_armv7em_widen_patch
    .type   sqz_armv7em_widen_patch, %function
    .p2align 2
    .thumb_func
sqz_armv7em_widen_patch:
    QUAD_LOOP WIDEN_PATCH_QUAD
    bx      lr
    .size   sqz_armv7em_widen_patch, . - sqz_armv7em_widen_patch

#endif

#if defined(__ELF__)
/* No executable stack needed (the host linker warns without this note). */
    .section .note.GNU-stack, "", %progbits
#endif

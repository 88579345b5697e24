/* The multiply-accumulate loops of the armv7em conv kernel (see mac.h for the layouts), in
 * assembly because they need every register: four accumulators, four patch words read by one
 * LDM, two filter words read by one LDRD, and a scratch register, 14 per loop in all, which a
 * C compiler does not allocate without spills. Per four taps of two pixels and two output
 * channels: 14 instructions for 16 multiply-accumulates. mac.c is the same in C (the host's
 * build, where this file assembles to nothing). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

    .syntax unified
    .thumb
    .text

/* r0 patch, r1 filter (both advanced), r4-r7 patch words, r12/lr filter words, r3 scratch,
 * r8 r9 pixel 0's sums (channel 0, 1), r10 r11 pixel 1's. */
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

/* void sqz_armv7em_mac_2x2_asm(const uint32_t *patch, const int8_t *filter, int32_t quads,
 *                              int32_t *acc) */
    .global sqz_armv7em_mac_2x2_asm
    .type   sqz_armv7em_mac_2x2_asm, %function
    .p2align 2
    .thumb_func
sqz_armv7em_mac_2x2_asm:
    push    {r3-r11, lr}
    ldrd    r8, r9, [r3]
    mov     r10, r8
    mov     r11, r9
    lsrs    r2, r2, #1          /* pairs of quads; C = an odd one first */
    bcc     1f
    QUAD_2X2                    /* sets no flags: Z still says whether pairs remain */
1:  beq     3f
2:  QUAD_2X2
    QUAD_2X2
    subs    r2, r2, #1
    bne     2b
3:  ldr     r3, [sp]
    stm     r3, {r8-r11}
    pop     {r3-r11, pc}
    .size   sqz_armv7em_mac_2x2_asm, . - sqz_armv7em_mac_2x2_asm

/* r0 patch (pixel 0's words only), r1 filter, r4 r5 patch words, r6 r7 filter words,
 * r12 scratch, r8 r9 the sums. */
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

/* void sqz_armv7em_mac_1x2_asm(const uint32_t *patch, const int8_t *filter, int32_t quads,
 *                              int32_t *acc) */
    .global sqz_armv7em_mac_1x2_asm
    .type   sqz_armv7em_mac_1x2_asm, %function
    .p2align 2
    .thumb_func
sqz_armv7em_mac_1x2_asm:
    push    {r4-r10, lr}
    ldrd    r8, r9, [r3]
    lsrs    r2, r2, #1
    bcc     1f
    QUAD_1X2
1:  beq     3f
2:  QUAD_1X2
    QUAD_1X2
    subs    r2, r2, #1
    bne     2b
3:  strd    r8, r9, [r3]
    pop     {r4-r10, pc}
    .size   sqz_armv7em_mac_1x2_asm, . - sqz_armv7em_mac_1x2_asm

#endif

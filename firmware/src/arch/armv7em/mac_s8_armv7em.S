/* The channel-pair loop of the armv7em conv kernel (mac.h has the layouts and the contract),
 * in assembly because its multiply-accumulate loop needs every register: six accumulators
 * (three pixels, two channels), four weight words and two patch words, and two pointers, which
 * a C compiler does not allocate without spilling. mac.c computes the same in C (the host's
 * build, where this file assembles to nothing).
 *
 * Written for cycles, not instructions (Cortex-M4 TRM r0p1, 3.3: LDM and LDRD cost 1+N, a
 * single LDR 2, or 1 right after another single LDR that it does not depend on). Per quad (four
 * taps) of three pixels and two channels: the two int8 weight words and the first pixel's two
 * patch words in one run of four single loads (5 cycles), four SXTB16 widening the weights in
 * the registers, two runs of two loads for the other pixels (3 each) and 12 SMLADs: 27 cycles
 * for 24 multiply-accumulates. The weights are read from flash as they are, never copied.
 * Loads use immediate offsets from two pointers that move once per sixteen quads; there is no
 * register left for a counter, so the loop ends when the weight pointer reaches its end (kept
 * on the stack: 7 cycles per 16 quads) and is entered part-way (TBH) for quad counts that are
 * not multiples of 16. The last one or two pixels of a block take loops unrolled fewer times
 * (less code: flash stays within 1% of the 2x2 kernel this replaced).
 * The output stage is sqz_requantize_doubled (mac.h), four instructions per value. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

    .syntax unified
    .thumb
    .text

/* sqz_pair_job, copied to the stack, then the loop's own words. */
    .equ F_QUANT, 0        /* mult, hi2, shift of channel 0, then of channel 1 */
    .equ F_BIAS, 24
    .equ F_FILTER, 32
    .equ F_QUADS, 36
    .equ F_OUT, 40         /* then pitch */
    .equ F_PATCH, 48
    .equ F_TRIPLES, 52
    .equ F_TAIL, 56
    .equ F_W0, 64          /* the weight pointer to enter with: filter - 8 * entry */
    .equ F_ADJ, 68         /* bytes to step the patch pointer back before entering: 24 * entry */
    .equ F_ENTRY, 72       /* the quad of the unrolled loop to enter at: (-quads) mod UNROLL */
    .equ F_WEND, 76        /* the weight pointer's end: filter + 8 * quads */
    .equ F_W0_TWO, 80      /* the same three for the two-pixel loop, unrolled TWO_UNROLL times */
    .equ F_ADJ_TWO, 84
    .equ F_ENTRY_TWO, 88
    .equ F_W0_ONE, 92      /* and for the one-pixel loop, unrolled ONE_UNROLL times */
    .equ F_ADJ_ONE, 96
    .equ F_ENTRY_ONE, 100
    .equ F_BYTES, 108      /* and a pad word: with the nine registers pushed, 8-byte aligned */

    .equ UNROLL, 16
    .equ TWO_UNROLL, 8     /* the tails (at most once per block) keep to less code */
    .equ ONE_UNROLL, 8
    .equ PATCH_QUAD, 24    /* bytes of one quad of a pixel triple */
    .equ WEIGHT_QUAD, 8    /* bytes of one quad of a channel pair */

/* Registers in the loops: r0 patch, r1 weights (both fixed within 16 quads, then advanced);
 * r2 r3 channel 0's widened taps (0 and 2, 1 and 3), r4 r5 channel 1's; r6 r7 one pixel's two
 * patch words; accumulators r8 r9 (pixel 0, channels 0 and 1), r10 r11 (pixel 1), r12 lr
 * (pixel 2). The loaded registers are low so that most loads are 16-bit instructions. */

/* The weights of quad j and the first pixel's patch words: four single loads, pipelined. */
    .macro LOAD_W_P0 j
    ldr     r3, [r1, #(WEIGHT_QUAD * \j)]
    ldr     r5, [r1, #(WEIGHT_QUAD * \j + 4)]
    ldr     r6, [r0, #(PATCH_QUAD * \j)]
    ldr     r7, [r0, #(PATCH_QUAD * \j + 4)]
    sxtb16  r2, r3
    sxtb16  r3, r3, ror #8
    sxtb16  r4, r5
    sxtb16  r5, r5, ror #8
    .endm

/* Pixel k's two patch words of quad j (k > 0). */
    .macro LOAD_P j, k
    ldr     r6, [r0, #(PATCH_QUAD * \j + 8 * \k)]
    ldr     r7, [r0, #(PATCH_QUAD * \j + 8 * \k + 4)]
    .endm

/* Both channels' sums of one pixel whose patch words are pa, pb: acc0 += patch . channel 0,
 * acc1 += patch . channel 1. */
    .macro MAC2 acc0, acc1, pa=r6, pb=r7
    smlad   \acc0, \pa, r2, \acc0
    smlad   \acc0, \pb, r3, \acc0
    smlad   \acc1, \pa, r4, \acc1
    smlad   \acc1, \pb, r5, \acc1
    .endm

    .macro QUAD3 j
    LOAD_W_P0 \j
    MAC2    r8, r9
    LOAD_P  \j, 1
    MAC2    r10, r11
    LOAD_P  \j, 2
    MAC2    r12, lr
    .endm

/* Two pixels: r12 and lr are free, so the second pixel's words join the first run of loads
 * (six loads, 7 cycles, instead of 5 + 3). */
    .macro QUAD1 j
    LOAD_W_P0 \j
    MAC2    r8, r9
    .endm

    .macro QUAD2 j
    ldr     r3, [r1, #(WEIGHT_QUAD * \j)]
    ldr     r5, [r1, #(WEIGHT_QUAD * \j + 4)]
    ldr     r6, [r0, #(PATCH_QUAD * \j)]
    ldr     r7, [r0, #(PATCH_QUAD * \j + 4)]
    ldr     r12, [r0, #(PATCH_QUAD * \j + 8)]
    ldr     lr, [r0, #(PATCH_QUAD * \j + 12)]
    sxtb16  r2, r3
    sxtb16  r3, r3, ror #8
    sxtb16  r4, r5
    sxtb16  r5, r5, ror #8
    MAC2    r8, r9
    MAC2    r10, r11, r12, lr
    .endm

/* The unrolled loops over all quads of one group of pixels, entered at quad F_ENTRY (or
 * F_ENTRY_TWO, F_ENTRY_ONE) through a table of offsets, with r0 stepped back and r1 set by
 * GROUP_START. */
    .macro QUAD_LOOP16 quad
    ldr     r2, [sp, #F_ENTRY]
    tbh     [pc, r2, lsl #1]
1:  .hword  (20f - 1b) / 2, (21f - 1b) / 2, (22f - 1b) / 2, (23f - 1b) / 2
    .hword  (24f - 1b) / 2, (25f - 1b) / 2, (26f - 1b) / 2, (27f - 1b) / 2
    .hword  (28f - 1b) / 2, (29f - 1b) / 2, (30f - 1b) / 2, (31f - 1b) / 2
    .hword  (32f - 1b) / 2, (33f - 1b) / 2, (34f - 1b) / 2, (35f - 1b) / 2
    .p2align 2
20: \quad   0
21: \quad   1
22: \quad   2
23: \quad   3
24: \quad   4
25: \quad   5
26: \quad   6
27: \quad   7
28: \quad   8
29: \quad   9
30: \quad   10
31: \quad   11
32: \quad   12
33: \quad   13
34: \quad   14
35: \quad   15
    add     r0, r0, #(PATCH_QUAD * UNROLL)
    add     r1, r1, #(WEIGHT_QUAD * UNROLL)
    ldr     r6, [sp, #F_WEND]
    cmp     r1, r6
    bne     20b
    .endm

    .macro QUAD_LOOP8 quad, entry
    ldr     r2, [sp, #\entry]
    tbh     [pc, r2, lsl #1]
1:  .hword  (20f - 1b) / 2, (21f - 1b) / 2, (22f - 1b) / 2, (23f - 1b) / 2
    .hword  (24f - 1b) / 2, (25f - 1b) / 2, (26f - 1b) / 2, (27f - 1b) / 2
    .p2align 2
20: \quad   0
21: \quad   1
22: \quad   2
23: \quad   3
24: \quad   4
25: \quad   5
26: \quad   6
27: \quad   7
    adds    r0, r0, #(PATCH_QUAD * 8)
    adds    r1, r1, #(WEIGHT_QUAD * 8)
    ldr     r6, [sp, #F_WEND]
    cmp     r1, r6
    bne     20b
    .endm

    .macro QUAD_LOOP4 quad, entry
    ldr     r2, [sp, #\entry]
    tbb     [pc, r2]
1:  .byte   (20f - 1b) / 2, (21f - 1b) / 2, (22f - 1b) / 2, (23f - 1b) / 2
    .p2align 2
20: \quad   0
21: \quad   1
22: \quad   2
23: \quad   3
    adds    r0, r0, #(PATCH_QUAD * 4)
    adds    r1, r1, #(WEIGHT_QUAD * 4)
    ldr     r6, [sp, #F_WEND]
    cmp     r1, r6
    bne     20b
    .endm

/* Bias into the accumulators, the pointers stepped back for the entry (w0: F_W0 or
 * F_W0_TWO, F_W0_ONE, each followed by its patch step). */
    .macro GROUP_START nacc, w0
    ldrd    r8, r9, [sp, #F_BIAS]
    .if \nacc >= 4
    mov     r10, r8
    mov     r11, r9
    .endif
    .if \nacc >= 6
    mov     r12, r8
    mov     lr, r9
    .endif
    ldrd    r1, r2, [sp, #\w0]
    subs    r0, r0, r2
    .endm

/* acc = sqz_requantize_doubled(acc) for the channel whose constants are m, hi2, sh. */
    .macro REQUANT acc, m, hi2, sh
    add     r7, \hi2, \acc, asr #31
    smmlar  \acc, \acc, \m, r7
    asr     \acc, \acc, \sh
    ssat    \acc, #8, \acc
    .endm

/* The entry quad, weight pointer and patch step of a loop unrolled n times (r3 quads, r6
 * filter): stored at w0, w0 + 4 and entry. */
    .macro ENTRY_OF n, w0, entry
    rsbs    r2, r3, #0
    and     r2, r2, #(\n - 1)
    add     r4, r2, r2, lsl #1          /* 3 * entry */
    lsls    r4, r4, #3                  /* PATCH_QUAD * entry */
    sub     r5, r6, r2, lsl #3          /* filter - WEIGHT_QUAD * entry */
    strd    r5, r4, [sp, #\w0]
    str     r2, [sp, #\entry]
    .endm

/* void sqz_armv7em_pair_asm(const sqz_pair_job *job) */
    .global sqz_armv7em_pair_asm
    .type   sqz_armv7em_pair_asm, %function
    .p2align 2
    .thumb_func
sqz_armv7em_pair_asm:
    push    {r4-r11, lr}
    sub     sp, sp, #F_BYTES
    ldm     r0!, {r1, r2, r3, r4, r5, r6, r7, r8}
    stm     sp, {r1, r2, r3, r4, r5, r6, r7, r8}
    ldm     r0, {r1, r2, r3, r4, r5, r6, r7, r8}
    add     r12, sp, #F_BIAS + 8
    stm     r12, {r1, r2, r3, r4, r5, r6, r7, r8}
    /* The loops' entries and the weights' end, once per job. */
    ldr     r3, [sp, #F_QUADS]
    ldr     r6, [sp, #F_FILTER]
    ENTRY_OF UNROLL, F_W0, F_ENTRY
    ENTRY_OF TWO_UNROLL, F_W0_TWO, F_ENTRY_TWO
    ENTRY_OF ONE_UNROLL, F_W0_ONE, F_ENTRY_ONE
    add     r6, r6, r3, lsl #3          /* filter + WEIGHT_QUAD * quads */
    str     r6, [sp, #F_WEND]
    ldr     r0, [sp, #F_PATCH]          /* r0 runs through the patches */
    ldr     r3, [sp, #F_TRIPLES]
    cmp     r3, #0
    beq     .Ltail
.Ltriples:
    GROUP_START 6, F_W0
    QUAD_LOOP16 QUAD3
    ldm     sp, {r1, r2, r3, r4, r5, r6}
    REQUANT r8, r1, r2, r3
    REQUANT r10, r1, r2, r3
    REQUANT r12, r1, r2, r3
    REQUANT r9, r4, r5, r6
    REQUANT r11, r4, r5, r6
    REQUANT lr, r4, r5, r6
    ldrd    r1, r2, [sp, #F_OUT]        /* the first pixel's output, pitch */
    bfi     r8, r9, #8, #8
    bfi     r10, r11, #8, #8
    bfi     r12, lr, #8, #8
    strh    r8, [r1]                    /* may be unaligned: Armv7-M allows it */
    strh    r10, [r1, r2]
    add     r1, r1, r2, lsl #1
    strh    r12, [r1]
    add     r1, r1, r2
    str     r1, [sp, #F_OUT]
    ldr     r3, [sp, #F_TRIPLES]
    subs    r3, r3, #1
    str     r3, [sp, #F_TRIPLES]
    bne     .Ltriples
.Ltail:
    ldr     r3, [sp, #F_TAIL]
    cmp     r3, #1
    blt     .Ldone
    beq     .Lone
    GROUP_START 4, F_W0_TWO
    QUAD_LOOP8 QUAD2, F_ENTRY_TWO
    ldm     sp, {r1, r2, r3, r4, r5, r6}
    REQUANT r8, r1, r2, r3
    REQUANT r10, r1, r2, r3
    REQUANT r9, r4, r5, r6
    REQUANT r11, r4, r5, r6
    ldrd    r1, r2, [sp, #F_OUT]
    bfi     r8, r9, #8, #8
    bfi     r10, r11, #8, #8
    strh    r8, [r1]
    strh    r10, [r1, r2]
    b       .Ldone
.Lone:
    GROUP_START 2, F_W0_ONE
    QUAD_LOOP8 QUAD1, F_ENTRY_ONE
    ldm     sp, {r1, r2, r3, r4, r5, r6}
    REQUANT r8, r1, r2, r3
    REQUANT r9, r4, r5, r6
    ldr     r1, [sp, #F_OUT]
    bfi     r8, r9, #8, #8
    strh    r8, [r1]
.Ldone:
    add     sp, sp, #F_BYTES
    pop     {r4-r11, pc}
    .size   sqz_armv7em_pair_asm, . - sqz_armv7em_pair_asm

/* void sqz_armv7em_widen_patch(uint32_t *patch, const int8_t *in, int32_t quads): four input
 * bytes per quad (any alignment) to one pixel's two doubled patch words, PATCH_QUAD bytes
 * apart. */
    .macro WIDEN_PATCH_QUAD
    ldr     r3, [r1], #4
    sxtb16  r12, r3
    sxtb16  r3, r3, ror #8
    sadd16  r12, r12, r12
    sadd16  r3, r3, r3
    strd    r12, r3, [r0], #PATCH_QUAD
    .endm

    .global sqz_armv7em_widen_patch
    .type   sqz_armv7em_widen_patch, %function
    .p2align 2
    .thumb_func
sqz_armv7em_widen_patch:
    lsrs    r2, r2, #1          /* C: an odd quad */
    bcc     1f
    WIDEN_PATCH_QUAD
1:  lsrs    r2, r2, #1          /* C: an odd pair of quads; Z: no passes of four */
    bcc     2f
    WIDEN_PATCH_QUAD
    WIDEN_PATCH_QUAD
2:  beq     4f
3:  WIDEN_PATCH_QUAD
    WIDEN_PATCH_QUAD
    WIDEN_PATCH_QUAD
    WIDEN_PATCH_QUAD
    subs    r2, r2, #1
    bne     3b
4:  bx      lr
    .size   sqz_armv7em_widen_patch, . - sqz_armv7em_widen_patch

#endif

#if defined(__ELF__)
/* No executable stack needed (the host linker warns without this note). */
    .section .note.GNU-stack, "", %progbits
#endif

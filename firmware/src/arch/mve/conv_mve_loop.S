/* The block loop of the Helium conv kernel (conv_mve.h has the job and the output stage's
 * proof). Assembly because its multiply-accumulate loop needs eight 32-bit sums in the even
 * registers VMLADAVA writes (r0, r2, ..., r12 and lr), two input pointers, a weight pointer and
 * a count, which leaves no register for a C compiler to spill with: per 16 taps of two pixels
 * and four output channels, 14 instructions for 128 multiply-accumulates, the loop unrolled
 * four times; per pixel pair, 24 more for the biases, the output stage, the store and the loop.
 * conv_mve.c computes the same in C where MVE is absent (the host's build, where this file
 * assembles to nothing). */
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

    .syntax unified
    .thumb
    .text

    .equ JOB_FILTER, 32       /* then chunks */
    .equ JOB_IN, 40
    .equ JOB_PAIRS, 44
    .equ JOB_OUT, 48
    .equ JOB_IN_STEP, 52      /* then out_step */
    .equ JOB_OUT_STEP, 56
    .equ JOB_QUADS, 60
    .equ JOB_BIAS_AT, 64
    .equ JOB_MULT_AT, 68
    .equ JOB_SHIFT_AT, 72
    .equ JOB_ODD, 76
    .equ JOB_END, 80
    .equ JOB_ZP32, 84
    .equ JOB_OUT_STEP4, 88
    .equ JOB_GROUPS, 92
    .equ JOB_OFFSETS, 96
    .equ JOB_ZERO_POINT, 112
    .equ JOB_LO, 128
    .equ JOB_HI, 144
    .equ JOB_OFFSETS4, 160
    .equ JOB_MULT2, 176
    .equ JOB_SHIFT2, 192

/* 16 taps of both pixels and four channels. r1, r3: the pixels' inputs; r5: the quad's
 * weights (channel 0's 16, channel 1's, 2's, 3's); sums r0 r2 r4 r6 (pixel 0, channels 0-3)
 * and r8 r10 r12 lr (pixel 1). q4 and q5 take the weights in turn. */
    .macro CHUNK2
    vldrb.u8    q0, [r1], #16
    vldrb.u8    q1, [r3], #16
    vldrb.u8    q4, [r5], #16
    vmladava.s8 r0, q0, q4
    vmladava.s8 r8, q1, q4
    vldrb.u8    q5, [r5], #16
    vmladava.s8 r2, q0, q5
    vmladava.s8 r10, q1, q5
    vldrb.u8    q4, [r5], #16
    vmladava.s8 r4, q0, q4
    vmladava.s8 r12, q1, q4
    vldrb.u8    q5, [r5], #16
    vmladava.s8 r6, q0, q5
    vmladava.s8 lr, q1, q5
    .endm

/* 16 taps of one pixel (r1) and four channels: sums r0 r2 r4 r6. */
    .macro CHUNK1
    vldrb.u8    q0, [r1], #16
    vldrb.u8    q4, [r5], #16
    vmladava.s8 r0, q0, q4
    vldrb.u8    q5, [r5], #16
    vmladava.s8 r2, q0, q5
    vldrb.u8    q4, [r5], #16
    vmladava.s8 r4, q0, q4
    vldrb.u8    q5, [r5], #16
    vmladava.s8 r6, q0, q5
    .endm

/* r7 chunks of \chunk: one if r7 is odd, two if bit 1 is set, then four per pass. The chunks
 * set no flags, so C and Z from the LSRS still tell what remains. */
    .macro CHUNKS chunk
    lsrs    r7, r7, #1              /* C: an odd chunk */
    bcc     1f
    \chunk
1:  lsrs    r7, r7, #1              /* C: a pair of chunks; Z: no passes of four */
    bcc     2f
    \chunk
    \chunk
2:  beq     4f
3:  \chunk
    \chunk
    \chunk
    \chunk
    subs    r7, r7, #1
    bne     3b
4:
    .endm

/* The activation's narrower bounds (clamp = 1) on the int8 bytes of q0. */
    .macro CLAMP clamp
    .if \clamp
    vldrw.u32   q4, [r9, #JOB_LO]   /* 16 bytes: the job is word-aligned */
    vldrw.u32   q5, [r9, #JOB_HI]
    vmax.s8 q0, q0, q4
    vmin.s8 q0, q0, q5
    .endif
    .endm

/* void NAME(sqz_mve_job *job) */
    .macro BLOCK name, clamp
    .global \name
    .type \name, %function
    .thumb_func
\name:
    push    {r3-r11, lr}            /* 10 words: sp stays 8-byte aligned */
    vpush   {d8-d15}                /* q4-q7 are callee-saved */
    sub     sp, sp, #32             /* the eight sums, stored to be read as two vectors */
    mov     r9, r0
    vldrh.u16   q6, [r9, #JOB_OFFSETS]
    vldrh.u16   q7, [r9, #JOB_ZERO_POINT]
.Lquad\@:
    /* The quad's biases (twice), multipliers and shifts. */
    ldr     r0, [r9, #JOB_BIAS_AT]
    ldm     r0!, {r2, r4, r6, r8}
    str     r0, [r9, #JOB_BIAS_AT]
    strd    r2, r4, [r9]
    strd    r6, r8, [r9, #8]
    strd    r2, r4, [r9, #16]
    strd    r6, r8, [r9, #24]
    ldr     r0, [r9, #JOB_MULT_AT]
    vldrw.u32   q2, [r0], #16
    str     r0, [r9, #JOB_MULT_AT]
    ldr     r0, [r9, #JOB_SHIFT_AT]
    vldrb.s32   q3, [r0], #4
    str     r0, [r9, #JOB_SHIFT_AT]
    ldr     r1, [r9, #JOB_IN]
    ldrd    r0, r2, [r9, #JOB_IN_STEP]
    add     r3, r1, r0
    ldr     r11, [r9, #JOB_OUT]
    ldr     r0, [r9, #JOB_PAIRS]
    mla     r0, r0, r2, r11
    str     r0, [r9, #JOB_END]
    cmp     r0, r11
    beq     .Lsingle\@
.Lpair\@:
    ldm     r9, {r0, r2, r4, r6, r8, r10, r12, lr}      /* the sums start at the biases */
    ldrd    r5, r7, [r9, #JOB_FILTER]
    CHUNKS  CHUNK2
    stm     sp, {r0, r2, r4, r6, r8, r10, r12, lr}
    vldrw.u32   q0, [sp]            /* pixel 0, channels 0-3 */
    vldrw.u32   q1, [sp, #16]       /* pixel 1 */
    vqrdmulh.s32    q0, q0, q2
    vqrdmulh.s32    q1, q1, q2
    vrshl.s32   q0, q0, q3
    vrshl.s32   q1, q1, q3
    vqmovnb.s32 q0, q0              /* int16 lanes: pixel 0, 1, 0, 1, ... */
    vqmovnt.s32 q0, q1
    vqadd.s16   q0, q0, q7
    vqmovnb.s16 q0, q0              /* int8 in the low byte of each 16-bit lane */
    CLAMP   \clamp
    vstrb.16    q0, [r11, q6]       /* r11 + 0, + pitch, + 1, + pitch + 1, ... */
    ldrd    r0, r2, [r9, #JOB_IN_STEP]
    mov     r1, r3                  /* the next pair: the pixel after r3's, which r3 reached */
    add     r3, r3, r0
    add     r11, r11, r2
    ldr     r0, [r9, #JOB_END]
    cmp     r11, r0
    bne     .Lpair\@
.Lsingle\@:
    ldr     r0, [r9, #JOB_ODD]
    cmp     r0, #0
    beq     .Lnext\@
    ldm     r9, {r0, r2, r4, r6}
    ldrd    r5, r7, [r9, #JOB_FILTER]
    CHUNKS  CHUNK1
    stm     sp, {r0, r2, r4, r6}
    vldrw.u32   q0, [sp]
    vqrdmulh.s32    q0, q0, q2
    vrshl.s32   q0, q0, q3
    vqmovnb.s32 q0, q0              /* int16 in the low half of each 32-bit lane */
    vqadd.s16   q0, q0, q7
    vqmovnb.s16 q0, q0              /* int8 in the low byte of each 32-bit lane */
    CLAMP   \clamp
    mov     r0, r11                 /* the narrowing store takes a low register */
    vstrb.32    q0, [r0]
.Lnext\@:
    /* r5 ran through the quad's weights: the next quad's follow. */
    str     r5, [r9, #JOB_FILTER]
    ldr     r0, [r9, #JOB_OUT]
    adds    r0, r0, #4
    str     r0, [r9, #JOB_OUT]
    ldr     r0, [r9, #JOB_QUADS]
    subs    r0, r0, #1
    str     r0, [r9, #JOB_QUADS]
    bne     .Lquad\@
    add     sp, sp, #32
    vpop    {d8-d15}
    pop     {r3-r11, pc}
    .size \name, . - \name
    .endm

    BLOCK sqz_mve_block_sat, 0
    BLOCK sqz_mve_block_clamp, 1

/* The activation's narrower bounds on q0, with q1 as the only free register. */
    .macro CLAMP_Q1 clamp
    .if \clamp
    vldrw.u32   q1, [r9, #JOB_LO]
    vmax.s8 q0, q0, q1
    vldrw.u32   q1, [r9, #JOB_HI]
    vmin.s8 q0, q0, q1
    .endif
    .endm

/* One chunk per pixel: the quad's weights stay in q4-q7. r1: the pixels' inputs, one after
 * the other; r3: out_step; r5: where the quad's pairs end; r7: the output zero point. */
    .macro BLOCK_K1 name, clamp
    .global \name
    .type \name, %function
    .thumb_func
\name:
    push    {r3-r11, lr}
    vpush   {d8-d15}
    sub     sp, sp, #32
    mov     r9, r0
    ldr     r7, [r9, #JOB_ZP32]
.Lquad\@:
    ldr     r0, [r9, #JOB_BIAS_AT]
    ldm     r0!, {r2, r4, r6, r8}
    str     r0, [r9, #JOB_BIAS_AT]
    strd    r2, r4, [r9]
    strd    r6, r8, [r9, #8]
    strd    r2, r4, [r9, #16]
    strd    r6, r8, [r9, #24]
    ldr     r0, [r9, #JOB_MULT_AT]
    vldrw.u32   q2, [r0], #16
    str     r0, [r9, #JOB_MULT_AT]
    ldr     r0, [r9, #JOB_SHIFT_AT]
    vldrb.s32   q3, [r0], #4
    str     r0, [r9, #JOB_SHIFT_AT]
    ldr     r0, [r9, #JOB_FILTER]
    vldrb.u8    q4, [r0], #16
    vldrb.u8    q5, [r0], #16
    vldrb.u8    q6, [r0], #16
    vldrb.u8    q7, [r0], #16
    str     r0, [r9, #JOB_FILTER]
    ldr     r1, [r9, #JOB_IN]
    ldr     r3, [r9, #JOB_OUT_STEP]
    ldr     r11, [r9, #JOB_OUT]
    ldr     r5, [r9, #JOB_PAIRS]
    mla     r5, r5, r3, r11
    cmp     r5, r11
    beq     .Lsingle\@
.Lpair\@:
    ldm     r9, {r0, r2, r4, r6, r8, r10, r12, lr}
    vldrb.u8    q0, [r1], #16
    vldrb.u8    q1, [r1], #16
    vmladava.s8 r0, q0, q4
    vmladava.s8 r2, q0, q5
    vmladava.s8 r4, q0, q6
    vmladava.s8 r6, q0, q7
    vmladava.s8 r8, q1, q4
    vmladava.s8 r10, q1, q5
    vmladava.s8 r12, q1, q6
    vmladava.s8 lr, q1, q7
    stm     sp, {r0, r2, r4, r6, r8, r10, r12, lr}
    vldrw.u32   q0, [sp]
    vldrw.u32   q1, [sp, #16]
    vqrdmulh.s32    q0, q0, q2
    vqrdmulh.s32    q1, q1, q2
    vrshl.s32   q0, q0, q3
    vrshl.s32   q1, q1, q3
    vqmovnb.s32 q0, q0
    vqmovnt.s32 q0, q1
    vqadd.s16   q0, q0, r7
    vqmovnb.s16 q0, q0
    CLAMP_Q1 \clamp
    vldrh.u16   q1, [r9, #JOB_OFFSETS]
    vstrb.16    q0, [r11, q1]
    add     r11, r11, r3
    cmp     r11, r5
    bne     .Lpair\@
.Lsingle\@:
    ldr     r0, [r9, #JOB_ODD]
    cmp     r0, #0
    beq     .Lnext\@
    ldm     r9, {r0, r2, r4, r6}
    vldrb.u8    q0, [r1]
    vmladava.s8 r0, q0, q4
    vmladava.s8 r2, q0, q5
    vmladava.s8 r4, q0, q6
    vmladava.s8 r6, q0, q7
    stm     sp, {r0, r2, r4, r6}
    vldrw.u32   q0, [sp]
    vqrdmulh.s32    q0, q0, q2
    vrshl.s32   q0, q0, q3
    vqmovnb.s32 q0, q0
    vqadd.s16   q0, q0, r7
    vqmovnb.s16 q0, q0
    CLAMP_Q1 \clamp
    mov     r0, r11
    vstrb.32    q0, [r0]
.Lnext\@:
    ldr     r0, [r9, #JOB_OUT]
    adds    r0, r0, #4
    str     r0, [r9, #JOB_OUT]
    ldr     r0, [r9, #JOB_QUADS]
    subs    r0, r0, #1
    str     r0, [r9, #JOB_QUADS]
    bne     .Lquad\@
    add     sp, sp, #32
    vpop    {d8-d15}
    pop     {r3-r11, pc}
    .size \name, . - \name
    .endm

    BLOCK_K1 sqz_mve_block_k1_sat, 0
    BLOCK_K1 sqz_mve_block_k1_clamp, 1

/* One channel pair of a quad (its weights at r0 + 32 * \half: chunk 0 of each channel, then
 * chunk 1 64 bytes on) over `groups` groups of four pixels. Sums: pixel i's two channels in
 * r(4i) and r(4i + 2) (r12 and lr for pixel 3), so that the stored sums read as
 * {p0c0, p0c1, p1c0, p1c1} and {p2c0, p2c1, p3c0, p3c1}. */
    .macro CPAIR_K2 half, clamp
    ldr     r0, [r9, #JOB_BIAS_AT]
    ldrd    r2, r4, [r0], #8
    str     r0, [r9, #JOB_BIAS_AT]
    strd    r2, r4, [r9]
    strd    r2, r4, [r9, #8]
    strd    r2, r4, [r9, #16]
    strd    r2, r4, [r9, #24]
    ldr     r0, [r9, #JOB_MULT_AT]
    ldrd    r2, r4, [r0], #8
    str     r0, [r9, #JOB_MULT_AT]
    strd    r2, r4, [r9, #JOB_MULT2]
    strd    r2, r4, [r9, #JOB_MULT2 + 8]
    vldrw.u32   q2, [r9, #JOB_MULT2]
    ldr     r0, [r9, #JOB_SHIFT_AT]
    ldrsb   r2, [r0], #1
    ldrsb   r4, [r0], #1
    str     r0, [r9, #JOB_SHIFT_AT]
    strd    r2, r4, [r9, #JOB_SHIFT2]
    strd    r2, r4, [r9, #JOB_SHIFT2 + 8]
    vldrw.u32   q3, [r9, #JOB_SHIFT2]
    ldr     r0, [r9, #JOB_FILTER]
    vldrb.u8    q4, [r0, #(32 * \half)]
    vldrb.u8    q5, [r0, #(32 * \half + 64)]
    vldrb.u8    q6, [r0, #(32 * \half + 16)]
    vldrb.u8    q7, [r0, #(32 * \half + 80)]
    ldr     r1, [r9, #JOB_IN]
    ldr     r11, [r9, #JOB_OUT]
    ldr     r3, [r9, #JOB_OUT_STEP4]
    ldr     r5, [r9, #JOB_GROUPS]
    mla     r5, r5, r3, r11
1:
    ldm     r9, {r0, r2, r4, r6, r8, r10, r12, lr}
    vldrb.u8    q0, [r1], #16
    vldrb.u8    q1, [r1], #16
    vmladava.s8 r0, q0, q4
    vmladava.s8 r0, q1, q5
    vmladava.s8 r2, q0, q6
    vmladava.s8 r2, q1, q7
    vldrb.u8    q0, [r1], #16
    vldrb.u8    q1, [r1], #16
    vmladava.s8 r4, q0, q4
    vmladava.s8 r4, q1, q5
    vmladava.s8 r6, q0, q6
    vmladava.s8 r6, q1, q7
    vldrb.u8    q0, [r1], #16
    vldrb.u8    q1, [r1], #16
    vmladava.s8 r8, q0, q4
    vmladava.s8 r8, q1, q5
    vmladava.s8 r10, q0, q6
    vmladava.s8 r10, q1, q7
    vldrb.u8    q0, [r1], #16
    vldrb.u8    q1, [r1], #16
    vmladava.s8 r12, q0, q4
    vmladava.s8 r12, q1, q5
    vmladava.s8 lr, q0, q6
    vmladava.s8 lr, q1, q7
    stm     sp, {r0, r2, r4, r6, r8, r10, r12, lr}
    vldrw.u32   q0, [sp]
    vldrw.u32   q1, [sp, #16]
    vqrdmulh.s32    q0, q0, q2
    vqrdmulh.s32    q1, q1, q2
    vrshl.s32   q0, q0, q3
    vrshl.s32   q1, q1, q3
    vqmovnb.s32 q0, q0              /* int16: p0c0 p2c0 p0c1 p2c1 p1c0 p3c0 p1c1 p3c1 */
    vqmovnt.s32 q0, q1
    vqadd.s16   q0, q0, r7
    vqmovnb.s16 q0, q0
    CLAMP_Q1 \clamp
    vldrh.u16   q1, [r9, #JOB_OFFSETS4]
    vstrb.16    q0, [r11, q1]
    add     r11, r11, r3
    cmp     r11, r5
    bne     1b
    ldr     r0, [r9, #JOB_OUT]
    adds    r0, r0, #2
    str     r0, [r9, #JOB_OUT]
    .endm

/* Two chunks per pixel: a channel pair's weights stay in q4-q7; r1: the pixels' inputs, one
 * after the other; r3: out_step4; r5: where the groups end; r7: the output zero point. */
    .macro BLOCK_K2 name, clamp
    .global \name
    .type \name, %function
    .thumb_func
\name:
    push    {r3-r11, lr}
    vpush   {d8-d15}
    sub     sp, sp, #32
    mov     r9, r0
    ldr     r7, [r9, #JOB_ZP32]
.Lquad\@:
    CPAIR_K2 0, \clamp
    CPAIR_K2 1, \clamp
    ldr     r0, [r9, #JOB_FILTER]
    adds    r0, r0, #128
    str     r0, [r9, #JOB_FILTER]
    ldr     r0, [r9, #JOB_QUADS]
    subs    r0, r0, #1
    str     r0, [r9, #JOB_QUADS]
    bne     .Lquad\@
    add     sp, sp, #32
    vpop    {d8-d15}
    pop     {r3-r11, pc}
    .size \name, . - \name
    .endm

    BLOCK_K2 sqz_mve_block_k2_sat, 0
    BLOCK_K2 sqz_mve_block_k2_clamp, 1

/* void sqz_mve_patches(const sqz_mve_patch_job *job): r1 the rows, r4 the patch being
 * written, r5 the pixel's offset in a row, r6 seg, r7 step, r8 pixels, r9 kh, r10 pad; per
 * filter row a tail-predicated copy (LR counts bytes down by 16). */
    .global sqz_mve_patches
    .type sqz_mve_patches, %function
    .thumb_func
sqz_mve_patches:
    push    {r4-r11, lr}
    ldm     r0, {r1, r4, r5, r6, r7, r8, r9, r10}
    vmov.i8 q1, #0
1:
    mov     r2, r9
    mov     r11, r1
2:
    ldr     r3, [r11], #4
    add     r3, r3, r5
    mov     r12, r4
    dlstp.8 lr, r6
3:
    vldrb.u8    q0, [r3], #16
    vstrb.8     q0, [r12], #16
    letp    lr, 3b
    add     r4, r4, r6
    subs    r2, r2, #1
    bne     2b
    cmp     r10, #0
    beq     5f
    mov     r12, r4
    dlstp.8 lr, r10
4:
    vstrb.8     q1, [r12], #16
    letp    lr, 4b
    add     r4, r4, r10
5:
    add     r5, r5, r7
    subs    r8, r8, #1
    bne     1b
    pop     {r4-r11, pc}
    .size sqz_mve_patches, . - sqz_mve_patches

#endif

#if defined(__ELF__)
/* No executable stack needed (the host linker warns without this note). */
    .section .note.GNU-stack, "", %progbits
#endif

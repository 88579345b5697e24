/* The pixel-pair loop of the Helium conv kernel (conv_mve.h has the job and the output stage's
 * proof). Assembly because its multiply-accumulate loop needs eight 32-bit sums in the even
 * registers VMLADAVA writes (r0, r2, ..., r12 and lr), two input pointers, a weight pointer and
 * a count, which leaves no register for a C compiler to spill with: per 16 taps of two pixels
 * and four output channels, 14 instructions for 128 multiply-accumulates, the loop unrolled
 * twice. conv_mve.c computes the same in C where MVE is absent (the host's build, where this
 * file assembles to nothing). */
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

    .syntax unified
    .thumb
    .text

    .equ JOB_IN, 32
    .equ JOB_CHUNKS, 36
    .equ JOB_FILTER, 40
    .equ JOB_PAIRS, 44        /* then out_step */
    .equ JOB_IN_STEP, 52
    .equ JOB_OUT, 56
    .equ JOB_MULT, 64
    .equ JOB_SHIFT, 80
    .equ JOB_OFFSETS, 96
    .equ JOB_ZERO_POINT, 112
    .equ JOB_LO, 128
    .equ JOB_HI, 144

/* 16 taps of both pixels and four channels. r1, r3: the pixels' inputs; r5: the quad's
 * weights (channel 0's 16, channel 1's, 2's, 3's); sums r0 r2 r4 r6 (pixel 0, channels 0-3)
 * and r8 r10 r12 lr (pixel 1). q4 and q5 take the weights in turn. */
    .macro CHUNK
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

/* void NAME(sqz_mve_job *job): clamp = 1 adds the activation's narrower bounds. */
    .macro PAIRS name, clamp
    .global \name
    .type \name, %function
    .thumb_func
\name:
    push    {r3-r11, lr}            /* 10 words: sp stays 8-byte aligned */
    vpush   {d8-d15}                /* q4-q7 are callee-saved */
    sub     sp, sp, #32             /* the eight sums, stored to be read as two vectors */
    mov     r9, r0
    vldrw.u32   q2, [r9, #JOB_MULT]
    vldrw.u32   q3, [r9, #JOB_SHIFT]
    vldrh.u16   q6, [r9, #JOB_OFFSETS]
    vldrh.u16   q7, [r9, #JOB_ZERO_POINT]
    ldr     r1, [r9, #JOB_IN]
    ldr     r3, [r9, #JOB_IN_STEP]
    add     r3, r1, r3
    ldr     r11, [r9, #JOB_OUT]
1:
    ldm     r9, {r0, r2, r4, r6, r8, r10, r12, lr}      /* the sums start at the biases */
    ldr     r5, [r9, #JOB_FILTER]
    ldr     r7, [r9, #JOB_CHUNKS]
    lsrs    r7, r7, #1              /* C: an odd chunk; Z: no pairs of chunks */
    bcc     2f
    CHUNK
2:
    beq     4f                      /* CHUNK sets no flags */
3:
    CHUNK
    CHUNK
    subs    r7, r7, #1
    bne     3b
4:
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
    .if \clamp
    vldrw.u32   q4, [r9, #JOB_LO]   /* 16 bytes: the job is word-aligned */
    vldrw.u32   q5, [r9, #JOB_HI]
    vmax.s8 q0, q0, q4
    vmin.s8 q0, q0, q5
    .endif
    vstrb.16    q0, [r11, q6]       /* r11 + 0, + pitch, + 1, + pitch + 1, ... */
    ldrd    r0, r2, [r9, #JOB_PAIRS]
    ldr     r4, [r9, #JOB_IN_STEP]
    add     r11, r11, r2
    mov     r1, r3                  /* the next pair: the pixel after r3's, which r3 reached */
    add     r3, r3, r4
    subs    r0, r0, #1
    str     r0, [r9, #JOB_PAIRS]
    bne     1b
    add     sp, sp, #32
    vpop    {d8-d15}
    pop     {r3-r11, pc}
    .size \name, . - \name
    .endm

    PAIRS sqz_mve_pairs_sat, 0
    PAIRS sqz_mve_pairs_clamp, 1

#endif

#if defined(__ELF__)
/* No executable stack needed (the host linker warns without this note). */
    .section .note.GNU-stack, "", %progbits
#endif

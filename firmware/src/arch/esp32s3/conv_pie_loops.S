/* The PIE loops of the ESP32-S3 conv row kernel (see conv_pie.h for the method and the
 * requantization's arithmetic). One function per (vectors in the last chunk N = 1..7, mode):
 *   sqz_pie_conv_<N>_rf   ReLU-style clamp (act_min >= zp), int8 range: clamps
 *   sqz_pie_conv_<N>_rm   ReLU-style clamp, other bounds: max, min
 *   sqz_pie_conv_<N>_gf   any clamp (sign fix-up), int8 range
 *   sqz_pie_conv_<N>_gm   any clamp, other bounds
 * each void f(sqz_pie_job *job), windowed ABI, calling nothing. A patch of N vectors runs
 * in one pass per channel; a longer one (job->chunks > 0) in passes of 7 vectors whose partial
 * sums go to job->partial (the first pass starts from the record's value), then a last pass of
 * N vectors that requantizes.
 *
 * Registers: a2 job, a3 patch pointer (next vector to load), a4 its increment when it crosses
 * to the next pixel, a5 output pointer, a6 output pixel stride, a7 channel record (or partial
 * sums), a8 2M, a9 K, a10 D (general mode), a11 the value, a12 scratch / loop counts / sign,
 * a13 a14 activation bounds, a15 weights; SAR = r. q0..q6 weights, q7 the patch vector. The
 * general modes' records are twice as long (they hold D).
 *
 * Every multiply-accumulate also loads the next patch vector; the load that ends a pixel's
 * patch adds a4 (the step to the next pixel's patch) instead of 16. The last pixel of a pass is
 * peeled so that nothing is loaded past the row's last patch. Patch vector loads that read the
 * register they overwrite use its old value (as ESP-NN's dot product relies on). */
#include "conv_pie.h"

/* Other cores (host builds) use conv_pie.c's C twins: nothing to assemble there. */
#if defined(__XTENSA__)
    .text

/* MAC j of a pixel's n: the load of vector (j + 1) mod n is the one that steps to the next
 * pixel when j == (n - 2) mod n. fin = 1: the pass's last MAC, no load. */
    .macro PIE_MAC j, n, fin
    .if (\fin) && (\j == \n - 1)
    ee.vmulas.s8.accx q\j, q7
    .elseif \j == ((\n + \n - 2) % \n)
    ee.vmulas.s8.accx.ld.xp q7, a3, a4, q\j, q7
    .else
    ee.vmulas.s8.accx.ld.ip q7, a3, 16, q\j, q7
    .endif
    .endm

    .macro PIE_MACS n, fin
    PIE_MAC 0, \n, \fin
    .if \n > 1
    PIE_MAC 1, \n, \fin
    .endif
    .if \n > 2
    PIE_MAC 2, \n, \fin
    .endif
    .if \n > 3
    PIE_MAC 3, \n, \fin
    .endif
    .if \n > 4
    PIE_MAC 4, \n, \fin
    .endif
    .if \n > 5
    PIE_MAC 5, \n, \fin
    .endif
    .if \n > 6
    PIE_MAC 6, \n, \fin
    .endif
    .endm

/* The chunk's weight vectors into q0..q(n-1). */
    .macro PIE_WEIGHTS n
    ee.vld.128.ip q0, a15, 16
    .if \n > 1
    ee.vld.128.ip q1, a15, 16
    .endif
    .if \n > 2
    ee.vld.128.ip q2, a15, 16
    .endif
    .if \n > 3
    ee.vld.128.ip q3, a15, 16
    .endif
    .if \n > 4
    ee.vld.128.ip q4, a15, 16
    .endif
    .if \n > 5
    ee.vld.128.ip q5, a15, 16
    .endif
    .if \n > 6
    ee.vld.128.ip q6, a15, 16
    .endif
    .endm

/* Pixel 0's first patch vector; with one vector per pass, its load is the pixel step. */
    .macro PIE_PRELOAD n
    .if \n == 1
    ee.vld.128.xp q7, a3, a4
    .else
    ee.vld.128.ip q7, a3, 16
    .endif
    .endm

/* Per-channel constants from the record at a7: a8 = 2M, a9 = K, SAR = r, a10 = D (general
 * mode). */
    .macro PIE_CONSTANTS gen
    l32i a8, a7, 8
    l32i a9, a7, 12
    l32i a12, a7, 4
    ssr a12
    .if \gen
    l32i a10, a7, 16
    .endif
    .endm

/* a11 = ACCX (u = value + D, unsigned) -> the output byte at a5, then a5 to the next pixel. */
    .macro PIE_REQUANT gen, mm
    rur.accx_0 a11
    .if \gen
    saltu a12, a11, a10
    .endif
    muluh a11, a11, a8
    .if \gen
    sub a11, a11, a12
    .endif
    add a11, a11, a9
    sra a11, a11
    .if \mm
    max a11, a11, a13
    min a11, a11, a14
    .else
    clamps a11, a11, 7
    .endif
    s8i a11, a5, 0
    add a5, a5, a6
    .endm

/* a5 = this channel's output at pixel 0; the job's pointer moves on to the next channel. */
    .macro PIE_NEXT_OUT
    l32i a5, a2, SQZ_PIE_JOB_OUT
    addi a12, a5, 1
    s32i a12, a2, SQZ_PIE_JOB_OUT
    .endm

    .macro PIE_CONV_FN n, mode, gen, mm
    .align 4
    .global sqz_pie_conv_\n\()_\mode
    .type sqz_pie_conv_\n\()_\mode, @function
sqz_pie_conv_\n\()_\mode:
    entry a1, 32
    l32i a6, a2, SQZ_PIE_JOB_OSTR
    .if \mm
    l32i a13, a2, SQZ_PIE_JOB_ACTMIN
    l32i a14, a2, SQZ_PIE_JOB_ACTMAX
    .endif
    l32i a15, a2, SQZ_PIE_JOB_W
    l32i a7, a2, SQZ_PIE_JOB_REC
    l32i a12, a2, SQZ_PIE_JOB_CHUNKS
    bnez a12, .Lchunked_\n\()_\mode

    /* The whole patch in one pass. */
    l32i a4, a2, SQZ_PIE_JOB_INC
.Lchannel_\n\()_\mode:
    PIE_WEIGHTS \n
    PIE_CONSTANTS \gen
    l32i a3, a2, SQZ_PIE_JOB_IN
    PIE_PRELOAD \n
    PIE_NEXT_OUT
    l32i a12, a2, SQZ_PIE_JOB_PIX1
    loopgtz a12, .Lpixels_end_\n\()_\mode
    ee.ld.accx.ip a7, 0
    PIE_MACS \n, 0
    PIE_REQUANT \gen, \mm
.Lpixels_end_\n\()_\mode:
    ee.ld.accx.ip a7, 0
    PIE_MACS \n, 1
    PIE_REQUANT \gen, \mm
    addi a7, a7, SQZ_PIE_RECORD << \gen
    l32i a12, a2, SQZ_PIE_JOB_NCH
    addi a12, a12, -1
    s32i a12, a2, SQZ_PIE_JOB_NCH
    bnez a12, .Lchannel_\n\()_\mode
    retw.n

    /* Chunked: a first pass of 7 vectors from the record's start value into the partial
     * sums, more passes of 7 from and to them, a last pass of n that requantizes. */
.Lchunked_\n\()_\mode:
    s32i a7, a2, SQZ_PIE_JOB_SREC
    l32i a3, a2, SQZ_PIE_JOB_IN
    l32i a4, a2, SQZ_PIE_JOB_INC7
    addi a12, a3, 16 * SQZ_PIE_CHUNK
    s32i a12, a2, SQZ_PIE_JOB_CBASE
    PIE_WEIGHTS 7
    PIE_PRELOAD 7
    mov a8, a7
    l32i a7, a2, SQZ_PIE_JOB_PART
    l32i a12, a2, SQZ_PIE_JOB_PIX1
    loopgtz a12, .Lfirst_end_\n\()_\mode
    ee.ld.accx.ip a8, 0
    PIE_MACS 7, 0
    ee.st.accx.ip a7, 8
.Lfirst_end_\n\()_\mode:
    ee.ld.accx.ip a8, 0
    PIE_MACS 7, 1
    ee.st.accx.ip a7, 8
    l32i a12, a2, SQZ_PIE_JOB_CHUNKS
    addi a12, a12, -1
    beqz a12, .Llast_\n\()_\mode
    s32i a12, a2, SQZ_PIE_JOB_CCNT
.Lmid_\n\()_\mode:
    PIE_WEIGHTS 7
    l32i a3, a2, SQZ_PIE_JOB_CBASE
    addi a12, a3, 16 * SQZ_PIE_CHUNK
    s32i a12, a2, SQZ_PIE_JOB_CBASE
    PIE_PRELOAD 7
    l32i a7, a2, SQZ_PIE_JOB_PART
    l32i a12, a2, SQZ_PIE_JOB_PIX1
    loopgtz a12, .Lmid_end_\n\()_\mode
    ee.ld.accx.ip a7, 0
    PIE_MACS 7, 0
    ee.st.accx.ip a7, 8
.Lmid_end_\n\()_\mode:
    ee.ld.accx.ip a7, 0
    PIE_MACS 7, 1
    ee.st.accx.ip a7, 8
    l32i a12, a2, SQZ_PIE_JOB_CCNT
    addi a12, a12, -1
    s32i a12, a2, SQZ_PIE_JOB_CCNT
    bnez a12, .Lmid_\n\()_\mode

.Llast_\n\()_\mode:
    l32i a7, a2, SQZ_PIE_JOB_SREC
    PIE_CONSTANTS \gen
    PIE_WEIGHTS \n
    l32i a3, a2, SQZ_PIE_JOB_CBASE
    l32i a4, a2, SQZ_PIE_JOB_INC
    PIE_PRELOAD \n
    l32i a7, a2, SQZ_PIE_JOB_PART
    PIE_NEXT_OUT
    l32i a12, a2, SQZ_PIE_JOB_PIX1
    loopgtz a12, .Llast_end_\n\()_\mode
    ee.ld.accx.ip a7, 8
    PIE_MACS \n, 0
    PIE_REQUANT \gen, \mm
.Llast_end_\n\()_\mode:
    ee.ld.accx.ip a7, 8
    PIE_MACS \n, 1
    PIE_REQUANT \gen, \mm
    l32i a7, a2, SQZ_PIE_JOB_SREC
    addi a7, a7, SQZ_PIE_RECORD << \gen
    l32i a12, a2, SQZ_PIE_JOB_NCH
    addi a12, a12, -1
    s32i a12, a2, SQZ_PIE_JOB_NCH
    bnez a12, .Lchunked_\n\()_\mode
    retw.n
    .size sqz_pie_conv_\n\()_\mode, . - sqz_pie_conv_\n\()_\mode
    .endm

    .macro PIE_CONV_MODES n
    PIE_CONV_FN \n, rf, 0, 0
    PIE_CONV_FN \n, rm, 0, 1
    PIE_CONV_FN \n, gf, 1, 0
    PIE_CONV_FN \n, gm, 1, 1
    .endm

    PIE_CONV_MODES 1
    PIE_CONV_MODES 2
    PIE_CONV_MODES 3
    PIE_CONV_MODES 4
    PIE_CONV_MODES 5
    PIE_CONV_MODES 6
    PIE_CONV_MODES 7
#endif

/* The conv kernel's block loop for Helium (conv_mve_loop.S) and its job. Internal.
 *
 * One call runs a block of output pixels (their inputs one run of `chunks` 16-byte chunks
 * each, `in_step` bytes apart) through every whole quad of output channels: per quad, the
 * pixels two by two, then an odd last pixel alone. Per 16 taps of a pair of pixels: two input
 * vectors, four weight vectors and eight VMLADAVA (each 16 int8 multiply-accumulates into a
 * general-purpose register). The eight sums start from the quad's biases and go through the
 * output stage below, then one scatter store writes the pair's eight bytes.
 *
 * Output stage, on four channels of a pixel at a time (32-bit lanes):
 *     VQRDMULH by the multipliers   = TFLite's SaturatingRoundingDoublingHighMul, exactly, for
 *                                     every input (both saturate INT32_MIN * INT32_MIN alike)
 *     VRSHL by the (negative) shifts = a rounding right shift, half up
 *     saturating narrow to int16, saturating add of the output zero point, narrow to int8
 * TFLite's RoundingDivideByPOT rounds half away from zero, which differs from VRSHL only for
 * negative values, and the job is only given layers whose activation clamps at or above the
 * output zero point (a ReLU): there, a negative value gives at most zero either way, so the
 * output is the clamp's lower bound either way. Every shift must be a right shift (shift <=
 * 0); conv_mve.c checks both conditions and runs any other layer through the reference formula.
 * The narrowing stages saturate exactly as a clamp to [-128, 127] of the value plus the zero
 * point (an int16 beyond +-32767 stays beyond the int8 range after adding a zero point of
 * magnitude at most 128); a narrower activation is clamped after it (sqz_mve_block_clamp). */
#ifndef SQZ_CONV_MVE_H
#define SQZ_CONV_MVE_H

#include <stdint.h>

/* 16-byte chunks of a pixel's inputs: the reduction runs in whole chunks. */
#define SQZ_MVE_CHUNK 16
/* Output channels per pass of the pair loop. */
#define SQZ_MVE_QUAD 4

/* The assembly addresses these fields by offset (checked in conv_mve.c); it updates the
 * fields marked "advances" as it goes. */
typedef struct {
    int32_t bias[8];         /*   0: the current quad's biases, twice (one LDM sets 8 sums) */
    const int8_t *filter;    /*  32: the current quad's weights (advances) */
    int32_t chunks;          /*  36: 16-byte chunks per pixel */
    const int8_t *in;        /*  40: the first pixel's inputs */
    int32_t pairs;           /*  44: pixel pairs */
    int8_t *out;             /*  48: the first pixel's output for the current quad (advances) */
    int32_t in_step;         /*  52: bytes from one pixel's inputs to the next (16 * chunks) */
    int32_t out_step;        /*  56: bytes from one pixel pair's outputs to the next */
    int32_t quads;           /*  60: whole quads of output channels (counted down) */
    const int32_t *bias_at;  /*  64: the current quad's biases in the layer's array (advances) */
    const int32_t *mult_at;  /*  68: its multipliers (advances) */
    const int8_t *shift_at;  /*  72: its shifts, <= 0 (advances) */
    int32_t odd;             /*  76: 1: one more pixel after the pairs */
    int8_t *end;             /*  80: the current quad's output past its last pair */
    int32_t zero_point32;    /*  84: the output zero point (k1, k2) */
    int32_t out_step4;       /*  88: bytes from one group of 4 pixels' outputs to the next (k2) */
    int32_t groups;          /*  92: groups of 4 pixels (k2) */
    uint16_t offsets[8];     /*  96: scatter offsets of a pair's 8 bytes: 0, pitch, 1, ... */
    int16_t zero_point[8];   /* 112: the output zero point, in every 16-bit lane */
    int8_t lo[16];           /* 128: the activation's bounds, in every byte (clamp only) */
    int8_t hi[16];           /* 144 */
    uint16_t offsets4[8];    /* 160: of 4 pixels x 2 channels (k2): 0, 2p, 1, 2p + 1, p, ... */
    int32_t mult2[4];        /* 176: the current channel pair's multipliers, twice (k2) */
    int32_t shift2[4];       /* 192: and shifts */
} sqz_mve_job;

/* Patches of a run of output pixels whose windows lie inside the input (conv_mve_loop.S). */
typedef struct {
    const int8_t *const *rows; /*  0: the window's input rows, all present */
    int8_t *patch;             /*  4: the first pixel's patch; the others follow, `len` apart */
    int32_t offset;            /*  8: bytes from a row's start to the first pixel's window */
    int32_t seg;               /* 12: bytes of one filter row's window, kw * c */
    int32_t step;              /* 16: bytes from one pixel's window to the next, stride * c */
    int32_t pixels;            /* 20 */
    int32_t kh;                /* 24: filter rows */
    int32_t pad;               /* 28: zero bytes after the taps, to the end of the patch */
} sqz_mve_patch_job;

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
/* Copies each filter row's window with a tail-predicated loop (DLSTP/LETP: 3 instructions per
 * 16 bytes, the last partial vector included). */
void sqz_mve_patches(const sqz_mve_patch_job *job);
/* Any number of chunks. _sat: the activation is all of int8 (a ReLU with output zero point
 * -128); _clamp: narrower, the result clamped to [lo, hi] too. */
void sqz_mve_block_sat(sqz_mve_job *job);
void sqz_mve_block_clamp(sqz_mve_job *job);
/* One chunk per pixel (a 1x1 conv over 16 channels): a quad's four weight vectors stay in
 * registers while the pixels stream past, two at a time (an odd last one alone). */
void sqz_mve_block_k1_sat(sqz_mve_job *job);
void sqz_mve_block_k1_clamp(sqz_mve_job *job);
/* Two chunks per pixel (conv1's 27 taps, a 1x1 over 32 channels): a channel pair's four weight
 * vectors stay in registers, pixels four at a time (`groups` of them: the caller runs the
 * others through sqz_mve_block_*). */
void sqz_mve_block_k2_sat(sqz_mve_job *job);
void sqz_mve_block_k2_clamp(sqz_mve_job *job);
#endif

#endif

/* The ESP32-S3 PIE conv row kernel: what its C driver (conv_pie.c), its assembly loops
 * (conv_pie_loops.S) and its scratch-size function (conv_pie_size.c, plain C, also compiled on
 * the host to check the converter's mirror) share.
 *
 * How it computes. The converter lays each output channel's weights out as one OHWI row,
 * every filter row's kw * c weights zero-padded to a multiple of 16, L bytes in all (16-byte
 * aligned), so an output is a dot product of L/16 vectors with the pixel's receptive field (its
 * "patch", the same L bytes). The patch is the input pixel itself for an aligned 1x1 conv, else
 * the driver copies the receptive fields of a block of output pixels of the row into scratch
 * (the input zero point for padding). The assembly
 * then runs channel by channel: the channel's weight vectors sit in q0..q6, and one
 * ee.vmulas.s8.accx.ld per 16 MACs streams the patches of the row through q7 into ACCX (40 bits:
 * no 20-bit QACC lane can saturate). Patches longer than 7 vectors go in chunks of 7 whose
 * partial sums are parked in scratch (ee.st.accx / ee.ld.accx), 2 instructions per chunk.
 *
 * Requantization, TFLite's MultiplyByQuantizedMultiplier exactly, in 6 scalar instructions per
 * output with per-channel constants in registers (record below, written by the converter):
 *   ACCX starts at bias + D, so it ends at u = x + D, x the accumulator plus bias; D >= |x| and
 *   D + |x| < 2^32 make u an unsigned 32-bit value (and ACCX never negative: QEMU mishandles a
 *   negative value loaded with ee.ld.accx), and D * M = 2^30 + k * 2^31 for an integer k;
 *   P  = muluh(u, 2M) = floor((x * M + D * M) / 2^31) = y + k, where
 *   y  = floor((x * M + 2^30) / 2^31) is SaturatingRoundingDoublingHighMul(x, M) (M < 2^31);
 *   out = (P + K) >> r, K = -k + (2^(r-1) if r > 0) + zp * 2^r (modulo 2^32)
 * which is RoundingDivideByPOT(y, r) plus the zero point: a floor of a quotient by 2^r of y
 * plus half. RoundingDivideByPOT rounds half away from zero, this rounds half up: they differ
 * only for a negative quotient, whose output a ReLU-style clamp (act_min >= zp) sends to
 * act_min anyway. Without such a clamp ("general" mode, r >= 1 and M > 2^30, so that y < 0
 * exactly when x < 0, i.e. u < D) one is subtracted for negative x (saltu, sub). Then clamps to
 * int8 (or max/min to the activation bounds), s8i, and the next pixel. The converter
 * (converter/arch/esp32s3.py) solves for D, bounds x and proves that nothing overflows; it
 * declines left shifts (effective scales of 1/2 or more), rare in convolutions. */
#ifndef SQZ_ARCH_ESP32S3_CONV_PIE_H
#define SQZ_ARCH_ESP32S3_CONV_PIE_H

/* Weight vectors per chunk: q0..q6 hold them, q7 streams the patches. */
#define SQZ_PIE_CHUNK 7
/* Most bytes of gathered patches per call of the assembly: longer rows go in blocks. */
#define SQZ_PIE_PATCH_BYTES 8192
/* Bytes per channel record (converter/arch/esp32s3.py writes them): {bias + D, r, 2M, K},
 * and in the general modes D and three zero words after them (twice the size). ee.ld.accx loads
 * the first two words into ACCX: its bits 32..39 then hold r, which never reaches the low 32
 * bits the requantization reads. */
#define SQZ_PIE_RECORD 16

/* Offsets into sqz_pie_job, for the assembly. */
#define SQZ_PIE_JOB_IN 0
#define SQZ_PIE_JOB_INC 4
#define SQZ_PIE_JOB_INC7 8
#define SQZ_PIE_JOB_PIX1 12
#define SQZ_PIE_JOB_PIX 16
#define SQZ_PIE_JOB_W 20
#define SQZ_PIE_JOB_OUT 24
#define SQZ_PIE_JOB_OSTR 28
#define SQZ_PIE_JOB_NCH 32
#define SQZ_PIE_JOB_REC 36
#define SQZ_PIE_JOB_CHUNKS 40
#define SQZ_PIE_JOB_PART 44
#define SQZ_PIE_JOB_ACTMIN 48
#define SQZ_PIE_JOB_ACTMAX 52
#define SQZ_PIE_JOB_SREC 56
#define SQZ_PIE_JOB_CBASE 60
#define SQZ_PIE_JOB_CCNT 64

#ifndef __ASSEMBLER__
#include <stdint.h>

#include "sqz/kernels.h"

/* One call of the assembly: `nch` output channels of one output row. The assembly advances
 * `out` by one channel per channel and counts `nch` down; the last three fields are its own. */
typedef struct {
    const int8_t *in;  /* first vector of pixel 0's patch (16-byte aligned) */
    int32_t inc;       /* pitch - 16 * (vectors of the last chunk - 1) */
    int32_t inc7;      /* pitch - 16 * (SQZ_PIE_CHUNK - 1) */
    int32_t pix1;      /* output pixels - 1 */
    int32_t pix;       /* output pixels */
    const int8_t *w;   /* first weight vector of the group's first channel */
    int8_t *out;       /* the group's first channel at pixel 0 */
    int32_t ostr;      /* output_pixel_stride */
    int32_t nch;       /* channels in the group */
    const int32_t *rec; /* the first channel's record, 16-byte aligned */
    int32_t chunks;    /* full chunks of SQZ_PIE_CHUNK vectors before the last one */
    void *partial;     /* 8 bytes per pixel, 8-byte aligned (chunked patches only) */
    int32_t act_min, act_max;
    const int32_t *save_rec;
    const int8_t *chunk_base;
    int32_t chunk_count;
} sqz_pie_job;

/* Where a row call keeps what in its scratch (offsets from the 16-aligned start). */
typedef struct {
    int32_t row_len;   /* L: the padded patch, kh * run_len */
    int32_t run_len;   /* a filter row's kw * c taps rounded up to 16 */
    int32_t direct;    /* 1: patches are the input pixels themselves (aligned 1x1) */
    int32_t pixels;    /* output pixels per block (the whole row when direct) */
    int32_t partial;   /* offset of the partial sums (0 bytes unless chunked) */
    int32_t patches;   /* offset of the patches (0 bytes when direct) */
    int32_t bytes;     /* scratch size, 16 bytes of alignment slack included */
} sqz_pie_layout;

void sqz_pie_conv_layout(const sqz_conv_params *params, const sqz_dims *input_dims,
                         const sqz_dims *filter_dims, const sqz_dims *output_dims,
                         sqz_pie_layout *layout);
#endif

#endif

/* The inner loops of the armv7em conv kernel. Internal.
 *
 * A patch holds the receptive fields of output pixels, three by three: per group of four taps
 * (a "quad"), two words of the first pixel (taps 0 and 2, then 1 and 3, as int16 lanes), then
 * two of the second, then two of the third. A row's pixel triples follow one another; the last
 * one or two pixels of a row fill the first slots of one more triple.
 *
 * Patch values are doubled (2 * x still fits an int16 lane), so the sums are doubled too: the
 * output stage needs that (sqz_requantize_doubled).
 *
 * The filter's output channels come in pairs (four int8 taps of one, four of the other, quad by
 * quad), read straight from flash: each quad's two weight words are widened in the loop by
 * SXTB16 into the lanes of the patch words and used for all three pixels. */
#ifndef SQZ_ARMV7EM_MAC_H
#define SQZ_ARMV7EM_MAC_H

#include <stdint.h>

#include "dsp.h"

#define SQZ_PIXELS_PER_GROUP 3
#define SQZ_PATCH_WORDS_PER_QUAD (2 * SQZ_PIXELS_PER_GROUP)

/* One output channel's requantization on a doubled accumulator (2 * acc), the constants of
 * sqz_requantize_doubled. */
typedef struct {
    int32_t mult;
    int32_t hi2;   /* ((2 * output offset + 1) << (r - 1)), r the right shift */
    int32_t shift; /* r */
} sqz_quant2;

/* One pair of output channels over a block of patches; the assembly relies on this layout. */
typedef struct {
    sqz_quant2 q0, q1;
    int32_t bias0, bias1;  /* doubled */
    const int8_t *filter;  /* the pair's weights, word-aligned for the assembly */
    int32_t quads;
    int8_t *out;           /* the first pixel's output for channel 0 */
    int32_t pitch;         /* bytes from one pixel's output to the next */
    const uint32_t *patch;
    int32_t triples;       /* full pixel triples in the block */
    int32_t tail;          /* 0, 1 or 2: pixels in one more, partial, triple */
    int32_t reserved;      /* keeps the job sixteen words */
} sqz_pair_job;

/* TFLite's output stage, clamp(RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m),
 * r) + offset), for a right shift 1 <= r <= 22, m >= 0, on acc2 = 2 * acc (|acc| < 2^30):
 *
 *     ((hi2 - [acc < 0]) * 2^32 + acc2 * m + 2^31) >> 32 >> r,  then saturated to int8
 *
 * with hi2 = (2 * offset + 1) << (r - 1). It is twice the numerator of the exact form
 * (acc * m + 2^30 + (2^(r-1) - [acc < 0]) * 2^31 + offset * 2^(31+r)) >> (31 + r): nested
 * floor divisions by powers of two compose, and the high-mul's result is negative exactly when
 * acc is (the one exception, a zero result, rounds to zero either way); the saturating case
 * needs m = INT32_MIN, which a multiplier never is. The first shift is SMMLAR's (a rounding
 * most-significant-word multiply-accumulate), so the whole stage is four instructions. For
 * r <= 22 no term overflows. */
static inline int32_t sqz_requantize_doubled(int32_t acc2, const sqz_quant2 *q)
{
    const int64_t ra = (int64_t)q->hi2 + (acc2 >> 31);
    const int64_t y = ra * 4294967296LL + (int64_t)acc2 * q->mult + 2147483648LL;
    return sqz_ssat8((int32_t)(y >> 32) >> q->shift);
}

/* Every pixel of the job's block for its channel pair: bias, dot products, requantization
 * (saturated to int8; a narrower activation is clamped by the caller) and the stores. */
void sqz_armv7em_pair_c(const sqz_pair_job *job);
#if SQZ_DSP_NATIVE
/* The same in assembly (mac_s8_armv7em.S); LDM and LDRD need word-aligned buffers. */
void sqz_armv7em_pair_asm(const sqz_pair_job *job);
#endif

/* `quads` groups of four input bytes (any alignment) widened and doubled into one pixel's
 * patch words. */
void sqz_armv7em_widen_patch_c(uint32_t *patch, const int8_t *in, int32_t quads);
#if SQZ_DSP_NATIVE
void sqz_armv7em_widen_patch(uint32_t *patch, const int8_t *in, int32_t quads);
#else
#define sqz_armv7em_widen_patch sqz_armv7em_widen_patch_c
#endif

/* Plain dot products on the int8 filter (the general output stage and an odd last channel),
 * for the pixel whose patch words start at `slot` (a triple's patch + 2 * its slot), added to
 * acc: acc[0] for channel 0, acc[1] for channel 1 of the pair. */
void sqz_armv7em_dot_pair(const uint32_t *slot, const int8_t *filter, int32_t quads,
                          int32_t *acc);
/* One output channel (a filter row alone): acc[0]. */
void sqz_armv7em_dot_single(const uint32_t *slot, const int8_t *filter, int32_t quads,
                            int32_t *acc);

#endif

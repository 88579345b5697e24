/* The inner loops of the armv7em conv kernel: multiply-accumulate and requantize every pair of
 * output channels for one or two output pixels. Internal.
 *
 * Patches hold SQZ_PATCH_WORDS_PER_QUAD words per group of four taps ("quad"): two words for
 * pixel 0 (taps 0 and 2, then 1 and 3, as int16 lanes: the lanes SXTB16 gives the weights),
 * then two for pixel 1. Filters hold output channels in pairs, four int8 taps of one channel
 * then four of the other, quad by quad. */
#ifndef SQZ_ARMV7EM_MAC_H
#define SQZ_ARMV7EM_MAC_H

#include <stdint.h>

#include "dsp.h"

#define SQZ_PATCH_WORDS_PER_QUAD 4

/* Requantization constants of one output channel (see requantize_fast() in
 * conv_s8_armv7em.c), built per row call into scratch. */
typedef struct {
    int32_t mult;
    int32_t hi;    /* (2 * output offset + 1) << (r - 2), r the right shift */
    int32_t shift; /* r - 1 */
} sqz_fast_quant;

/* What the pair loops read; the assembly relies on this exact layout (7 words). */
typedef struct {
    const uint32_t *patch;
    int32_t quads;
    const int32_t *bias;        /* the first pair's; advanced by the loop */
    const sqz_fast_quant *quant; /* likewise */
    int8_t *out;                /* pixel 0's output for the first pair; likewise */
    int32_t pitch;              /* bytes from pixel 0's output to pixel 1's */
    int32_t pairs;              /* output channel pairs, at least 1 */
} sqz_pair_job;

typedef void (*sqz_pair_fn)(const sqz_pair_job *job, const int8_t *filter);

/* Every channel pair of `job` for two pixels, or for pixel 0 alone (a row's odd last pixel):
 * bias, dot products, requantization (saturated to int8; a narrower activation is clamped by
 * the caller) and the stores. */
void sqz_armv7em_pairs_2px_c(const sqz_pair_job *job, const int8_t *filter);
void sqz_armv7em_pairs_1px_c(const sqz_pair_job *job, const int8_t *filter);
#if SQZ_DSP_NATIVE
/* The same in assembly (mac_s8_armv7em.S); LDM and LDRD need a word-aligned filter and patch. */
void sqz_armv7em_pairs_2px_asm(const sqz_pair_job *job, const int8_t *filter);
void sqz_armv7em_pairs_1px_asm(const sqz_pair_job *job, const int8_t *filter);
#endif

/* Plain dot products (no requantization) for the general output stage: acc[0], acc[1] hold
 * the two channels' biases on entry; on return acc[0], acc[1] are pixel 0's sums and acc[2],
 * acc[3] pixel 1's (when `two`). */
void sqz_armv7em_dot_pair(const uint32_t *patch, const int8_t *filter, int32_t quads, int two,
                          int32_t *acc);
/* One output channel (an odd last one): acc[0] and acc[1] both start at its bias. */
void sqz_armv7em_dot_single(const uint32_t *patch, const int8_t *filter, int32_t quads,
                            int two, int32_t *acc);

static inline int32_t sqz_requantize_fast(int32_t acc, const sqz_fast_quant *f)
{
    const int32_t neg = acc >> 31; /* 0 or -1 */
    const uint32_t lo = 0x40000000u ^ ((uint32_t)neg << 31);
    const uint32_t hi = (uint32_t)(f->hi + neg);
    const int64_t y = (int64_t)(((uint64_t)hi << 32) | lo) + (int64_t)acc * f->mult;
    return sqz_ssat8((int32_t)(y >> 32) >> f->shift);
}

#endif

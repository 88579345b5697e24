/* The multiply-accumulate loops of the armv7em conv kernel. Internal.
 *
 * Patches hold SQZ_PATCH_WORDS_PER_QUAD words per group of four taps: two words for pixel 0
 * (taps 0 and 2, then 1 and 3, as int16 lanes), two for pixel 1. Filters hold output channels
 * in pairs, four int8 taps of one channel then four of the other. On entry acc[0] and acc[1]
 * hold the two channels' biases; on return acc[0], acc[1] are pixel 0's sums, acc[2], acc[3]
 * pixel 1's. */
#ifndef SQZ_ARMV7EM_MAC_H
#define SQZ_ARMV7EM_MAC_H

#include <stdint.h>

#include "dsp.h"

#define SQZ_PATCH_WORDS_PER_QUAD 4

typedef void (*sqz_mac_fn)(const uint32_t *patch, const int8_t *filter, int32_t quads,
                           int32_t *acc);

/* Two pixels x two output channels, and one pixel x two channels (a row's odd last pixel). */
void sqz_armv7em_mac_2x2_c(const uint32_t *patch, const int8_t *filter, int32_t quads,
                           int32_t *acc);
void sqz_armv7em_mac_1x2_c(const uint32_t *patch, const int8_t *filter, int32_t quads,
                           int32_t *acc);

#if SQZ_DSP_NATIVE
/* The same in assembly (mac_s8_armv7em.S): LDM and LDRD need word-aligned filters. */
void sqz_armv7em_mac_2x2_asm(const uint32_t *patch, const int8_t *filter, int32_t quads,
                             int32_t *acc);
void sqz_armv7em_mac_1x2_asm(const uint32_t *patch, const int8_t *filter, int32_t quads,
                             int32_t *acc);
#endif

static inline sqz_mac_fn sqz_mac_2x2_for(const void *filter)
{
#if SQZ_DSP_NATIVE
    if (((uintptr_t)filter & 3u) == 0) {
        return sqz_armv7em_mac_2x2_asm;
    }
#endif
    (void)filter;
    return sqz_armv7em_mac_2x2_c;
}

static inline sqz_mac_fn sqz_mac_1x2_for(const void *filter)
{
#if SQZ_DSP_NATIVE
    if (((uintptr_t)filter & 3u) == 0) {
        return sqz_armv7em_mac_1x2_asm;
    }
#endif
    (void)filter;
    return sqz_armv7em_mac_1x2_c;
}

/* One output channel (an odd last one) for one or two pixels: acc[0] and acc[1] both start
 * at its bias; acc[1] is pixel 1's when `two`. */
void sqz_mac_single_oc(const uint32_t *patch, const int8_t *filter, int32_t quads, int two,
                       int32_t *acc);

#endif

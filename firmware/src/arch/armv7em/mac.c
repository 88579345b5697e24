/* The multiply-accumulate loops in C, bit for bit what mac_s8_armv7em.S computes: the host's
 * implementation, and the target's for filters that are not word-aligned and for an odd last
 * output channel. */
#include "mac.h"

void sqz_armv7em_mac_2x2_c(const uint32_t *patch, const int8_t *filter, int32_t quads,
                           int32_t *acc)
{
    int32_t s00 = acc[0], s01 = acc[1], s10 = acc[0], s11 = acc[1];
    const uint32_t *a = patch;
    const int8_t *w = filter;
    for (int32_t q = 0; q < quads; ++q, a += SQZ_PATCH_WORDS_PER_QUAD, w += 8) {
        const uint32_t w0 = sqz_load32(w);
        const uint32_t w1 = sqz_load32(w + 4);
        const uint32_t e0 = sqz_sxtb16(w0), o0 = sqz_sxtb16_ror8(w0);
        const uint32_t e1 = sqz_sxtb16(w1), o1 = sqz_sxtb16_ror8(w1);
        s00 = sqz_smlad(a[0], e0, s00);
        s00 = sqz_smlad(a[1], o0, s00);
        s10 = sqz_smlad(a[2], e0, s10);
        s10 = sqz_smlad(a[3], o0, s10);
        s01 = sqz_smlad(a[0], e1, s01);
        s01 = sqz_smlad(a[1], o1, s01);
        s11 = sqz_smlad(a[2], e1, s11);
        s11 = sqz_smlad(a[3], o1, s11);
    }
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

void sqz_armv7em_mac_1x2_c(const uint32_t *patch, const int8_t *filter, int32_t quads,
                           int32_t *acc)
{
    int32_t s0 = acc[0], s1 = acc[1];
    const uint32_t *a = patch;
    const int8_t *w = filter;
    for (int32_t q = 0; q < quads; ++q, a += SQZ_PATCH_WORDS_PER_QUAD, w += 8) {
        const uint32_t w0 = sqz_load32(w);
        const uint32_t w1 = sqz_load32(w + 4);
        s0 = sqz_smlad(a[0], sqz_sxtb16(w0), s0);
        s0 = sqz_smlad(a[1], sqz_sxtb16_ror8(w0), s0);
        s1 = sqz_smlad(a[0], sqz_sxtb16(w1), s1);
        s1 = sqz_smlad(a[1], sqz_sxtb16_ror8(w1), s1);
    }
    acc[0] = s0;
    acc[1] = s1;
}

void sqz_mac_single_oc(const uint32_t *patch, const int8_t *filter, int32_t quads, int two,
                       int32_t *acc)
{
    int32_t s0 = acc[0], s1 = acc[1];
    const uint32_t *a = patch;
    const int8_t *w = filter;
    for (int32_t q = 0; q < quads; ++q, a += SQZ_PATCH_WORDS_PER_QUAD, w += 4) {
        const uint32_t w0 = sqz_load32(w);
        const uint32_t e = sqz_sxtb16(w0), o = sqz_sxtb16_ror8(w0);
        s0 = sqz_smlad(a[0], e, s0);
        s0 = sqz_smlad(a[1], o, s0);
        if (two) {
            s1 = sqz_smlad(a[2], e, s1);
            s1 = sqz_smlad(a[3], o, s1);
        }
    }
    acc[0] = s0;
    acc[1] = s1;
}

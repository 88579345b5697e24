/* The loops in C. sqz_armv7em_pair_c is bit for bit what mac_s8_armv7em.S computes: the
 * host's implementation, and the target's for buffers that are not word-aligned. */
#include <stddef.h>

#include "mac.h"

void sqz_armv7em_widen_patch_c(uint32_t *patch, const int8_t *in, int32_t quads)
{
    for (int32_t q = 0; q < quads; ++q, in += 4, patch += SQZ_PATCH_WORDS_PER_QUAD) {
        const uint32_t x = sqz_load32(in);
        const uint32_t e = sqz_sxtb16(x), o = sqz_sxtb16_ror8(x);
        patch[0] = sqz_sadd16(e, e);
        patch[1] = sqz_sadd16(o, o);
    }
}

static void widen_pair(uint32_t *wide, const int8_t *filter, int32_t quads)
{
    const int8_t *w = filter;
    for (int32_t q = 0; q < quads; ++q, w += 8, wide += SQZ_WIDE_WORDS_PER_QUAD) {
        const uint32_t w0 = sqz_load32(w);
        const uint32_t w1 = sqz_load32(w + 4);
        wide[0] = sqz_sxtb16(w0);
        wide[1] = sqz_sxtb16_ror8(w0);
        wide[2] = sqz_sxtb16(w1);
        wide[3] = sqz_sxtb16_ror8(w1);
    }
}

void sqz_armv7em_pair_c(const sqz_pair_job *job)
{
    widen_pair(job->wide, job->filter, job->quads);
    const uint32_t *a = job->patch;
    int8_t *out = job->out;
    const int32_t n = job->pairs + job->tail;
    for (int32_t i = 0; i < n; ++i, out += 2 * (size_t)job->pitch) {
        const int two = i < job->pairs;
        int32_t s00 = job->bias0, s01 = job->bias1, s10 = job->bias0, s11 = job->bias1;
        const uint32_t *w = job->wide;
        for (int32_t q = 0; q < job->quads; ++q, a += SQZ_PATCH_WORDS_PER_QUAD,
                     w += SQZ_WIDE_WORDS_PER_QUAD) {
            s00 = sqz_smlad(a[0], w[0], s00);
            s00 = sqz_smlad(a[1], w[1], s00);
            s01 = sqz_smlad(a[0], w[2], s01);
            s01 = sqz_smlad(a[1], w[3], s01);
            if (two) {
                s10 = sqz_smlad(a[2], w[0], s10);
                s10 = sqz_smlad(a[3], w[1], s10);
                s11 = sqz_smlad(a[2], w[2], s11);
                s11 = sqz_smlad(a[3], w[3], s11);
            }
        }
        out[0] = (int8_t)sqz_requantize_doubled(s00, &job->q0);
        out[1] = (int8_t)sqz_requantize_doubled(s01, &job->q1);
        if (two) {
            out[job->pitch] = (int8_t)sqz_requantize_doubled(s10, &job->q0);
            out[job->pitch + 1] = (int8_t)sqz_requantize_doubled(s11, &job->q1);
        }
    }
}

void sqz_armv7em_dot_pair(const uint32_t *patch, const int8_t *filter, int32_t quads, int two,
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
        s01 = sqz_smlad(a[0], e1, s01);
        s01 = sqz_smlad(a[1], o1, s01);
        if (two) {
            s10 = sqz_smlad(a[2], e0, s10);
            s10 = sqz_smlad(a[3], o0, s10);
            s11 = sqz_smlad(a[2], e1, s11);
            s11 = sqz_smlad(a[3], o1, s11);
        }
    }
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

void sqz_armv7em_dot_single(const uint32_t *patch, const int8_t *filter, int32_t quads,
                            int two, int32_t *acc)
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

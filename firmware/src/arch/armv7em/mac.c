/* The pair loops in C, bit for bit what mac_s8_armv7em.S computes: the host's implementation,
 * and the target's for a filter that is not word-aligned. */
#include <stddef.h>

#include "mac.h"

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

static void pairs(const sqz_pair_job *job, const int8_t *filter, int two)
{
    const size_t row_len = 4 * (size_t)job->quads;
    const int32_t *bias = job->bias;
    const sqz_fast_quant *q = job->quant;
    int8_t *out = job->out;
    const int8_t *w = filter;
    for (int32_t i = 0; i < job->pairs; ++i, bias += 2, q += 2, out += 2, w += 2 * row_len) {
        int32_t acc[4] = {bias[0], bias[1], 0, 0};
        sqz_armv7em_dot_pair(job->patch, w, job->quads, two, acc);
        out[0] = (int8_t)sqz_requantize_fast(acc[0], &q[0]);
        out[1] = (int8_t)sqz_requantize_fast(acc[1], &q[1]);
        if (two) {
            out[job->pitch] = (int8_t)sqz_requantize_fast(acc[2], &q[0]);
            out[job->pitch + 1] = (int8_t)sqz_requantize_fast(acc[3], &q[1]);
        }
    }
}

void sqz_armv7em_pairs_2px_c(const sqz_pair_job *job, const int8_t *filter)
{
    pairs(job, filter, 1);
}

void sqz_armv7em_pairs_1px_c(const sqz_pair_job *job, const int8_t *filter)
{
    pairs(job, filter, 0);
}

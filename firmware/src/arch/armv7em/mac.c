/* The loops in C. sqz_armv7em_pair_c is bit for bit what mac_s8_armv7em.S computes: the
 * host's implementation, and the target's for a filter that is not word-aligned. */
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

/* sum += the dot product of one pixel's patch words with a channel's four taps per quad,
 * widened as the assembly widens them. */
static int32_t dot_slot(const uint32_t *slot, const int8_t *w, int32_t quads, int32_t stride,
                        int32_t sum)
{
    for (int32_t q = 0; q < quads; ++q, slot += SQZ_PATCH_WORDS_PER_QUAD, w += stride) {
        const uint32_t x = sqz_load32(w);
        sum = sqz_smlad(slot[0], sqz_sxtb16(x), sum);
        sum = sqz_smlad(slot[1], sqz_sxtb16_ror8(x), sum);
    }
    return sum;
}

void sqz_armv7em_pair_c(const sqz_pair_job *job)
{
    const uint32_t *a = job->patch;
    int8_t *out = job->out;
    const int32_t groups = job->triples + (job->tail ? 1 : 0);
    const size_t group_words = SQZ_PATCH_WORDS_PER_QUAD * (size_t)job->quads;
    for (int32_t g = 0; g < groups; ++g, a += group_words) {
        const int32_t n = g < job->triples ? SQZ_PIXELS_PER_GROUP : job->tail;
        for (int32_t k = 0; k < n; ++k, out += job->pitch) {
            const int32_t s0 = dot_slot(a + 2 * k, job->filter, job->quads, 8, job->bias0);
            const int32_t s1 = dot_slot(a + 2 * k, job->filter + 4, job->quads, 8, job->bias1);
            out[0] = (int8_t)sqz_requantize_doubled(s0, &job->q0);
            out[1] = (int8_t)sqz_requantize_doubled(s1, &job->q1);
        }
    }
}

void sqz_armv7em_dot_pair(const uint32_t *slot, const int8_t *filter, int32_t quads,
                          int32_t *acc)
{
    acc[0] = dot_slot(slot, filter, quads, 8, acc[0]);
    acc[1] = dot_slot(slot, filter + 4, quads, 8, acc[1]);
}

void sqz_armv7em_dot_single(const uint32_t *slot, const int8_t *filter, int32_t quads,
                            int32_t *acc)
{
    acc[0] = dot_slot(slot, filter, quads, 4, acc[0]);
}

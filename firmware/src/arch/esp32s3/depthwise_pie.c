/* DEPTHWISE_CONV_2D with depth multiplier 1 on the ESP32-S3's PIE: sixteen channels per
 * instruction. Contract, records and layout: sqz_depthwise_s8_row (sqz/kernels.h); here the
 * channel count is a multiple of 16 and the filter has at most 25 taps (the converter checks
 * both, converter/arch/esp32s3.py).
 *
 * How. Channels are the vector lanes: for each tap, one unaligned 16-byte load of the input
 * pixel's channels (ee.ld.128.usar + ee.src.q), one aligned load of the tap's weights and one
 * ee.vmulas.s8.qacc accumulate the products in QACC's sixteen 20-bit lanes. At most 25 taps of
 * products of at most 2^14 stay below 2^19, so no lane saturates. QACC is then stored (its two
 * halves are eight 20-bit lanes each, packed little-endian) and each lane unpacked, the bias
 * added, and the record kernels' 32-bit output stage applied (runtime/depthwise.h). Built for
 * another core (the host), a plain-C twin computes the same sums, so host tests cover the
 * layout and the output stage; the vector code runs on the S3 (or its QEMU). */
#include <stddef.h>
#include <stdint.h>

#include "../../runtime/depthwise.h"
#include "sqz/kernels.h"
#include "sqz/kernels_esp32s3.h"

/* Taps the 20-bit lanes take without saturating: 25 * 128 * 128 < 2^19 (mirrored). */
#define SQZ_DW_PIE_MAX_TAPS 25
/* QACC dump: QACC_L's 160 bits at 0, QACC_H's at 32 (each as 16 + 4 bytes). */
#define SQZ_DW_PIE_DUMP 64

int32_t sqz_depthwise_s8_pie_scratch_size(const sqz_conv_params *params,
                                          const sqz_dims *input_dims,
                                          const sqz_dims *filter_dims,
                                          const sqz_dims *output_dims)
{
    (void)params;
    (void)filter_dims;
    (void)output_dims;
    /* Alignment slack, the dump, and the zero-point pixel with 16 bytes to over-read. */
    return 16 + SQZ_DW_PIE_DUMP + input_dims->c + 16;
}

#if defined(__XTENSA__)
/* Lane i (0..7) of a dumped QACC half: bits 20i .. 20i + 19, sign-extended. */
static inline int32_t lane20(const uint32_t *d, int i)
{
    const int bit = 20 * i;
    const int k = bit >> 5;
    const int s = bit & 31;
    uint32_t v = d[k] >> s;
    if (s > 12) {
        v |= d[k + 1] << (32 - s);
    }
    return (int32_t)(v << 12) >> 12;
}

/* sums[l] = sum over taps of px[t][c0 + l] * w[t * c + c0 + l], l = 0..15. */
static void block_sums(const int8_t *const *px, int32_t taps, const int8_t *weights,
                       int32_t c, int32_t c0, uint32_t *dump, int32_t *sums)
{
    __asm__ volatile("ee.zero.qacc" ::: "memory");
    const int8_t *w = weights + c0;
    for (int32_t t = 0; t < taps; ++t, w += c) {
        const int8_t *x = px[t] + c0;
        const int8_t *wa = w;
        __asm__ volatile("ee.ld.128.usar.ip q0, %[x], 16\n\t"
                         "ee.vld.128.ip q1, %[x], 0\n\t"
                         "ee.src.q q0, q0, q1\n\t"
                         "ee.vld.128.ip q2, %[w], 0\n\t"
                         "ee.vmulas.s8.qacc q0, q2\n"
                         : [x] "+a"(x), [w] "+a"(wa)
                         :
                         : "memory");
    }
    uint32_t *p = dump;
    __asm__ volatile("ee.st.qacc_l.l.128.ip %[p], 16\n\t"
                     "ee.st.qacc_l.h.32.ip %[p], 16\n\t"
                     "ee.st.qacc_h.l.128.ip %[p], 16\n\t"
                     "ee.st.qacc_h.h.32.ip %[p], 16\n"
                     : [p] "+a"(p)
                     :
                     : "memory");
    for (int i = 0; i < 8; ++i) {
        sums[i] = lane20(dump, i);
        sums[8 + i] = lane20(dump + 8, i);
    }
}
#else /* not the ESP32-S3: the plain-C twin (host builds and tests) */
static void block_sums(const int8_t *const *px, int32_t taps, const int8_t *weights,
                       int32_t c, int32_t c0, uint32_t *dump, int32_t *sums)
{
    (void)dump;
    for (int32_t l = 0; l < 16; ++l) {
        int32_t s = 0;
        for (int32_t t = 0; t < taps; ++t) {
            s += (int32_t)px[t][c0 + l] * weights[(size_t)t * c + c0 + l];
        }
        sums[l] = s;
    }
}
#endif

sqz_status sqz_depthwise_s8_pie_row(const sqz_context *ctx, const sqz_conv_params *params,
                                    const sqz_per_channel_quant *quant,
                                    const sqz_dims *input_dims,
                                    const int8_t *const *input_rows,
                                    const sqz_dims *filter_dims, const void *filter,
                                    const sqz_dims *bias_dims, const int32_t *bias,
                                    const sqz_dims *output_dims, int8_t *output_row)
{
    (void)quant; /* the records hold the requantization and the bias */
    (void)bias;
    const sqz_status st = sqz_dw_check(ctx, params, input_dims, input_rows, filter_dims,
                                       filter, bias_dims, output_dims, output_row);
    if (st != SQZ_OK) {
        return st;
    }
    const int32_t c = input_dims->c;
    if (c % 16 != 0 || filter_dims->h * filter_dims->w > SQZ_DW_PIE_MAX_TAPS ||
        ((uintptr_t)filter & 15u) != 0) {
        return SQZ_ERR_SHAPE;
    }
    if (ctx->size < sqz_depthwise_s8_pie_scratch_size(params, input_dims, filter_dims,
                                                      output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    uint8_t *base = (uint8_t *)(((uintptr_t)ctx->buf + 15u) & ~(uintptr_t)15u);
    uint32_t *dump = (uint32_t *)base;
    int8_t *zero_px = (int8_t *)(base + SQZ_DW_PIE_DUMP);
    const int8_t zp = (int8_t)(-params->input_offset);
    for (int32_t ch = 0; ch < c; ++ch) {
        zero_px[ch] = zp;
    }
    const int8_t *rec = (const int8_t *)filter;
    const int8_t *weights = rec + (size_t)c * SQZ_DW_RECORD;
    const int32_t offset = params->output_offset;
    const int32_t lo = params->activation.min;
    const int32_t hi = params->activation.max;
    const int8_t *px[SQZ_DW_MAX_TAPS];
    int32_t sums[16];

    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const int32_t taps =
            sqz_dw_taps(params, input_dims, filter_dims, input_rows, zero_px, ox, px);
        int8_t *out = output_row + (size_t)ox * params->output_pixel_stride;
        for (int32_t c0 = 0; c0 < c; c0 += 16) {
            block_sums(px, taps, weights, c, c0, dump, sums);
            for (int32_t l = 0; l < 16; ++l) {
                const int32_t ch = c0 + l;
                const int32_t acc = sums[l] + sqz_dw_field(rec, ch, 0);
                const int32_t x = (int32_t)((uint32_t)acc << sqz_dw_field(rec, ch, 2));
                const int32_t y = (int32_t)(((int64_t)x * sqz_dw_field(rec, ch, 1) +
                                             ((int64_t)1 << 31)) >> 32);
                out[ch] = sqz_dw_finish(y, sqz_dw_field(rec, ch, 3), offset, lo, hi);
            }
        }
    }
    return SQZ_OK;
}

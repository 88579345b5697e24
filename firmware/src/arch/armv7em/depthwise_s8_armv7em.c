/* DEPTHWISE_CONV_2D with depth multiplier 1 on Armv7E-M (the grouped conv with one input and
 * one output channel per group). Layout and contract: sqz/kernels_armv7em.h.
 *
 * Why this shape. A depthwise output is a short sum (9 products for 3x3), so the output stage
 * costs as much as the products: the portable kernel's exact requantization takes about 30
 * instructions per output on a Cortex-M4. Here the converter proves, per channel, that the
 * accumulator times 2^left stays below 2^30 in magnitude (converter/arch/armv7em.py); then
 * TFLite's SaturatingRoundingDoublingHighMul(x, M) = floor((x * M + 2^30) / 2^31) is exactly
 * SMMULR(2x, M) = floor((2x * M + 2^31) / 2^32), and RoundingDivideByPOT needs no 64-bit add:
 * about 10 instructions in all. The products go four channels at a time: one word of input and
 * one of weights, SXTB16 into the even and odd channels' halfwords, and SMLABB/SMLATT into four
 * accumulators held in registers. */
#include <stddef.h>
#include <stdint.h>

#include "dsp.h"
#include "sqz/kernels_armv7em.h"

/* Most taps (kh * kw) the kernel takes; the converter refuses larger filters. */
#define SQZ_DW_MAX_TAPS 32

/* Per output channel, before the weights: what the output stage needs (written by the
 * converter, see the header). */
typedef struct {
    int32_t bias;       /* folded: bias + input_offset * sum of the channel's taps */
    int32_t multiplier; /* M, 2^30 <= M < 2^31 */
    int32_t left;       /* left shift + 1 (the doubling of SMMULR's operand) */
    int32_t right;      /* right shift, 0..31 */
} dw_record;

static int32_t round4(int32_t n)
{
    return (n + 3) / 4 * 4;
}

int32_t sqz_depthwise_s8_armv7em_scratch_size(const sqz_conv_params *params,
                                              const sqz_dims *input_dims,
                                              const sqz_dims *filter_dims,
                                              const sqz_dims *output_dims)
{
    (void)params;
    (void)filter_dims;
    (void)output_dims;
    return round4(input_dims->c); /* one pixel of the input zero point */
}

/* Field `k` of record `ch` (sqz_load32: the host build does not align the weights; on the
 * Cortex-M it is one LDR). */
static inline int32_t field(const int8_t *rec, int32_t ch, int32_t k)
{
    return (int32_t)sqz_load32(rec + (size_t)ch * sizeof(dw_record) + 4 * k);
}

static inline int8_t output_stage(int32_t acc, const int8_t *rec, int32_t ch, int32_t offset,
                                  int32_t lo, int32_t hi)
{
    const int32_t y = sqz_smmulr((int32_t)((uint32_t)acc << field(rec, ch, 2)),
                                 field(rec, ch, 1));
    /* Rounding half away from zero: add half, minus one below zero, then shift. The proof
     * bounds |y| by 2^30, so nothing overflows. */
    const int32_t right = field(rec, ch, 3);
    const int32_t v =
        (right ? (y + (int32_t)(1u << (right - 1)) + (y >> 31)) >> right : y) + offset;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

sqz_status sqz_depthwise_s8_armv7em_row(const sqz_context *ctx, const sqz_conv_params *params,
                                        const sqz_per_channel_quant *quant,
                                        const sqz_dims *input_dims,
                                        const int8_t *const *input_rows,
                                        const sqz_dims *filter_dims, const void *filter,
                                        const sqz_dims *bias_dims, const int32_t *bias,
                                        const sqz_dims *output_dims, int8_t *output_row)
{
    (void)quant; /* the records hold the requantization and the bias */
    (void)bias;
    if (!ctx || !params || !input_dims || !input_rows || !filter_dims || !filter ||
        !bias_dims || !output_dims || !output_row) {
        return SQZ_ERR_ARG;
    }
    const int32_t c = input_dims->c;
    const int32_t kh = filter_dims->h;
    const int32_t kw = filter_dims->w;
    if (filter_dims->c != 1 || filter_dims->n != c || output_dims->c != c ||
        bias_dims->c != c || input_dims->n != output_dims->n ||
        params->output_pixel_stride < c || kh * kw > SQZ_DW_MAX_TAPS || kh < 1 || kw < 1) {
        return SQZ_ERR_SHAPE;
    }
    if (params->stride.w < 1 || params->dilation.w < 1) {
        return SQZ_ERR_ARG;
    }
    if (ctx->buf == NULL || ctx->size < sqz_depthwise_s8_armv7em_scratch_size(
                                            params, input_dims, filter_dims, output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    const int8_t *rec = (const int8_t *)filter;
    const int8_t *weights = rec + (size_t)c * sizeof(dw_record);
    int8_t *zero_px = (int8_t *)ctx->buf;
    const int8_t zp = (int8_t)(-params->input_offset);
    for (int32_t ch = 0; ch < c; ++ch) {
        zero_px[ch] = zp;
    }
    const int32_t offset = params->output_offset;
    const int32_t lo = params->activation.min;
    const int32_t hi = params->activation.max;
    const int32_t in_w = input_dims->w;
    const int32_t taps = kh * kw;
    const int8_t *px[SQZ_DW_MAX_TAPS];

    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const int32_t ix0 = ox * params->stride.w - params->padding.w;
        int32_t t = 0;
        for (int32_t ky = 0; ky < kh; ++ky) {
            const int8_t *row = input_rows[ky];
            for (int32_t kx = 0; kx < kw; ++kx, ++t) {
                const int32_t ix = ix0 + kx * params->dilation.w;
                px[t] = (row && ix >= 0 && ix < in_w) ? row + (size_t)ix * c : zero_px;
            }
        }
        int8_t *out = output_row + (size_t)ox * params->output_pixel_stride;
        int32_t ch = 0;
        for (; ch + 4 <= c; ch += 4) {
            int32_t a0 = field(rec, ch, 0), a1 = field(rec, ch + 1, 0);
            int32_t a2 = field(rec, ch + 2, 0), a3 = field(rec, ch + 3, 0);
            const int8_t *w = weights + ch;
            for (int32_t k = 0; k < taps; ++k, w += c) {
                const uint32_t x = sqz_load32(px[k] + ch);
                const uint32_t wv = sqz_load32(w);
                const uint32_t xe = sqz_sxtb16(x), we = sqz_sxtb16(wv);
                const uint32_t xo = sqz_sxtb16_ror8(x), wo = sqz_sxtb16_ror8(wv);
                a0 = sqz_smlabb(xe, we, a0);
                a2 = sqz_smlatt(xe, we, a2);
                a1 = sqz_smlabb(xo, wo, a1);
                a3 = sqz_smlatt(xo, wo, a3);
            }
            out[ch] = output_stage(a0, rec, ch, offset, lo, hi);
            out[ch + 1] = output_stage(a1, rec, ch + 1, offset, lo, hi);
            out[ch + 2] = output_stage(a2, rec, ch + 2, offset, lo, hi);
            out[ch + 3] = output_stage(a3, rec, ch + 3, offset, lo, hi);
        }
        for (; ch < c; ++ch) {
            int32_t a = field(rec, ch, 0);
            const int8_t *w = weights + ch;
            for (int32_t k = 0; k < taps; ++k, w += c) {
                a += (int32_t)px[k][ch] * w[0];
            }
            out[ch] = output_stage(a, rec, ch, offset, lo, hi);
        }
    }
    return SQZ_OK;
}

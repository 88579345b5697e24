/* DEPTHWISE_CONV_2D with depth multiplier 1 on Armv7E-M: the portable record kernel's method
 * (runtime/depthwise.h) with the DSP extension. The products go four channels at a time: one
 * word of input and one of weights, SXTB16 into the even and odd channels' halfwords, and
 * SMLABB/SMLATT into four accumulators held in registers; the high multiply of the output stage
 * is one SMMULR. Layout and contract: sqz/kernels_armv7em.h. */
#include <stddef.h>
#include <stdint.h>

#include "../../runtime/depthwise.h"
#include "dsp.h"
#include "sqz/kernels_armv7em.h"

int32_t sqz_depthwise_s8_armv7em_scratch_size(const sqz_conv_params *params,
                                              const sqz_dims *input_dims,
                                              const sqz_dims *filter_dims,
                                              const sqz_dims *output_dims)
{
    (void)params;
    (void)filter_dims;
    (void)output_dims;
    return sqz_dw_scratch_size(input_dims);
}

static inline int8_t output_stage(int32_t acc, const int8_t *rec, int32_t ch, int32_t offset,
                                  int32_t lo, int32_t hi)
{
    const int32_t x = (int32_t)((uint32_t)acc << sqz_dw_field(rec, ch, 2));
    return sqz_dw_finish(sqz_smmulr(x, sqz_dw_field(rec, ch, 1)), sqz_dw_field(rec, ch, 3),
                         offset, lo, hi);
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
    const sqz_status st = sqz_dw_check(ctx, params, input_dims, input_rows, filter_dims,
                                       filter, bias_dims, output_dims, output_row);
    if (st != SQZ_OK) {
        return st;
    }
    const int32_t c = input_dims->c;
    const int8_t *rec = (const int8_t *)filter;
    const int8_t *weights = rec + (size_t)c * SQZ_DW_RECORD;
    const int8_t *zero_px = sqz_dw_zero_pixel(ctx, params, c);
    const int32_t offset = params->output_offset;
    const int32_t lo = params->activation.min;
    const int32_t hi = params->activation.max;
    const int8_t *px[SQZ_DW_MAX_TAPS];

    const int rows_inside = sqz_dw_rows_in_image(filter_dims, input_rows);
    int prev_inside = 0;
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const int32_t taps = sqz_dw_next_taps(params, input_dims, filter_dims, input_rows,
                                              zero_px, rows_inside, ox, &prev_inside, px);
        int8_t *out = output_row + (size_t)ox * params->output_pixel_stride;
        int32_t ch = 0;
        for (; ch + 4 <= c; ch += 4) {
            int32_t a0 = sqz_dw_field(rec, ch, 0), a1 = sqz_dw_field(rec, ch + 1, 0);
            int32_t a2 = sqz_dw_field(rec, ch + 2, 0), a3 = sqz_dw_field(rec, ch + 3, 0);
            const int8_t *w = weights + ch;
            for (int32_t t = 0; t < taps; ++t, w += c) {
                const uint32_t x = sqz_load32(px[t] + ch);
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
            int32_t a = sqz_dw_field(rec, ch, 0);
            const int8_t *w = weights + ch;
            for (int32_t t = 0; t < taps; ++t, w += c) {
                a += (int32_t)px[t][ch] * w[0];
            }
            out[ch] = output_stage(a, rec, ch, offset, lo, hi);
        }
    }
    return SQZ_OK;
}

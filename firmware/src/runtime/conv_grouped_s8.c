#include <stddef.h>

#include "fixedpoint.h"
#include "sqz/kernels.h"

/* Grouped and depthwise convolution: each output channel reads only its group's input
 * channels (filter_dims->c of them). A depthwise conv with depth multiplier m is the grouped
 * conv with one group per input channel and m output channels per group, so one kernel runs
 * both (the converter lowers DEPTHWISE_CONV_2D's 1 x kh x kw x (c*m) filter into this layout).
 *
 * Why taps outermost and channels innermost: a group has few input channels (one, for
 * depthwise), so the per-channel dot products of the dense kernel would be a few values long.
 * Running each tap over all output channels at once instead makes the inner loop as long as
 * the layer is wide, and for depthwise with multiplier 1 it is a plain elementwise
 * multiply-accumulate the compiler vectorises. */

static int32_t round4(int32_t n)
{
    return (n + 3) / 4 * 4;
}

int32_t sqz_conv_s8_grouped_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims)
{
    (void)params;
    (void)filter_dims;
    /* One int32 accumulator per output channel, then one pixel of the input zero point (what
     * an out-of-image tap reads). */
    return output_dims->c * (int32_t)sizeof(int32_t) + round4(input_dims->c);
}

static sqz_status check_args(const sqz_context *ctx, const sqz_conv_params *params,
                             const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                             const int8_t *const *input_rows, const sqz_dims *filter_dims,
                             const void *filter, const int32_t *bias,
                             const sqz_dims *bias_dims, const sqz_dims *output_dims,
                             const int8_t *output_row)
{
    if (!ctx || !params || !quant || !input_dims || !input_rows || !filter_dims || !filter ||
        !bias_dims || !bias || !output_dims || !output_row || !quant->multiplier ||
        !quant->shift) {
        return SQZ_ERR_ARG;
    }
    if (filter_dims->c < 1 || input_dims->c % filter_dims->c != 0) {
        return SQZ_ERR_SHAPE;
    }
    const int32_t groups = input_dims->c / filter_dims->c;
    if (output_dims->c != filter_dims->n || output_dims->c % groups != 0 ||
        bias_dims->c != output_dims->c || input_dims->n != output_dims->n ||
        params->output_pixel_stride < output_dims->c) {
        return SQZ_ERR_SHAPE;
    }
    if (params->stride.h < 1 || params->stride.w < 1 || params->dilation.h < 1 ||
        params->dilation.w < 1 || filter_dims->h > SQZ_MAX_FILTER_ROWS) {
        return SQZ_ERR_ARG;
    }
    if (ctx->buf == NULL ||
        ctx->size < sqz_conv_s8_grouped_scratch_size(params, input_dims, filter_dims,
                                                     output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    return SQZ_OK;
}

/* acc[o] += x[o] * w[o]: depthwise with multiplier 1, the common case. */
static void mac_elementwise(int32_t *acc, const int8_t *x, const int8_t *w, int32_t n)
{
    for (int32_t o = 0; o < n; ++o) {
        acc[o] += (int32_t)x[o] * w[o];
    }
}

/* One tap of a general grouped conv: for each group g, each of its input channels i meets the
 * group's output channels, whose weights for (tap, i) are contiguous. */
static void mac_grouped(int32_t *acc, const int8_t *x, const int8_t *w, int32_t groups,
                        int32_t in_per_group, int32_t out_per_group, int32_t out_c)
{
    for (int32_t i = 0; i < in_per_group; ++i) {
        const int8_t *wi = w + (size_t)i * out_c;
        for (int32_t g = 0; g < groups; ++g) {
            const int32_t v = x[g * in_per_group + i];
            int32_t *a = acc + g * out_per_group;
            const int8_t *wg = wi + g * out_per_group;
            for (int32_t j = 0; j < out_per_group; ++j) {
                a[j] += v * wg[j];
            }
        }
    }
}

sqz_status sqz_conv_s8_grouped_row(const sqz_context *ctx, const sqz_conv_params *params,
                                   const sqz_per_channel_quant *quant,
                                   const sqz_dims *input_dims, const int8_t *const *input_rows,
                                   const sqz_dims *filter_dims, const void *filter_data,
                                   const sqz_dims *bias_dims, const int32_t *bias,
                                   const sqz_dims *output_dims, int8_t *output_row)
{
    const sqz_status st = check_args(ctx, params, quant, input_dims, input_rows, filter_dims,
                                     filter_data, bias, bias_dims, output_dims, output_row);
    if (st != SQZ_OK) {
        return st;
    }
    const int8_t *filter = (const int8_t *)filter_data;
    const int32_t c = input_dims->c;
    const int32_t in_w = input_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t in_per_group = filter_dims->c;
    const int32_t groups = c / in_per_group;
    const int32_t out_per_group = out_c / groups;
    const int32_t kh = filter_dims->h;
    const int32_t kw = filter_dims->w;
    const size_t tap_len = (size_t)in_per_group * out_c; /* filter values per tap */
    int32_t *acc = (int32_t *)ctx->buf;
    int8_t *zero_px = (int8_t *)(acc + out_c);
    const int8_t zp = (int8_t)(-params->input_offset);
    for (int32_t ch = 0; ch < c; ++ch) {
        zero_px[ch] = zp;
    }
    const int elementwise = in_per_group == 1 && out_per_group == 1;
    const int32_t offset = params->output_offset;
    const int32_t lo = params->activation.min;
    const int32_t hi = params->activation.max;

    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        for (int32_t o = 0; o < out_c; ++o) {
            acc[o] = bias[o];
        }
        const int32_t ix0 = ox * params->stride.w - params->padding.w;
        const int8_t *w = filter;
        for (int32_t ky = 0; ky < kh; ++ky) {
            const int8_t *row = input_rows[ky];
            for (int32_t kx = 0; kx < kw; ++kx, w += tap_len) {
                /* An out-of-image tap reads the input zero point, which the folded bias
                 * cancels: exactly the reference's skipped tap. */
                const int32_t ix = ix0 + kx * params->dilation.w;
                const int8_t *px = (row && ix >= 0 && ix < in_w) ? row + (size_t)ix * c
                                                                   : zero_px;
                if (elementwise) {
                    mac_elementwise(acc, px, w, out_c);
                } else {
                    mac_grouped(acc, px, w, groups, in_per_group, out_per_group, out_c);
                }
            }
        }
        int8_t *out = output_row + (size_t)ox * params->output_pixel_stride;
        for (int32_t o = 0; o < out_c; ++o) {
            const int32_t v = sqz_requantize(acc[o], quant->multiplier[o], quant->shift[o]);
            out[o] = (int8_t)sqz_clamp(v + offset, lo, hi);
        }
    }
    return SQZ_OK;
}

#include <stddef.h>

#include "conv_internal.h"
#include "fixedpoint.h"
#include "sqz/kernels.h"

/* Kept separate so the compiler sees one tight int8 dot product it can vectorise. */
static int32_t dot_s8(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

static int32_t sum_s8(const int8_t *a, int32_t n)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += a[i];
    }
    return acc;
}

int32_t sqz_conv_s8_scratch_size(const sqz_dims *input_dims, const sqz_dims *filter_dims,
                                 const sqz_dims *output_dims)
{
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
}

/* One output pixel, all output channels. Out-of-image taps hold the input zero point (see the
 * header for why that is exact with the folded bias). */
static void conv_pixel(const sqz_conv_params *p, const sqz_per_channel_quant *q,
                       const sqz_dims *in_d, const int8_t *in_batch, const sqz_dims *f_d,
                       const int8_t *filter, const int32_t *bias, int32_t out_c, int32_t iy0,
                       int32_t ix0, int8_t *out_px)
{
    const int32_t in_c = in_d->c;
    const int32_t kh = f_d->h;
    const int32_t kw = f_d->w;
    const int32_t zp = -p->input_offset;
    const int32_t row_pitch = in_d->w * in_c;
    const int interior = iy0 >= 0 && ix0 >= 0 && iy0 + (kh - 1) * p->dilation.h < in_d->h &&
                         ix0 + (kw - 1) * p->dilation.w < in_d->w;
    const int32_t taps = kh * kw * in_c;

    for (int32_t oc = 0; oc < out_c; ++oc) {
        const int8_t *w = filter + (size_t)oc * taps;
        int32_t acc = bias[oc];
        if (interior && p->dilation.w == 1) {
            /* A filter row spans kw * in_c contiguous bytes of the input row. */
            const int8_t *src = in_batch + (size_t)iy0 * row_pitch + (size_t)ix0 * in_c;
            for (int32_t ky = 0; ky < kh; ++ky) {
                acc += dot_s8(src + (size_t)ky * p->dilation.h * row_pitch, w + ky * kw * in_c,
                              kw * in_c);
            }
        } else {
            for (int32_t ky = 0; ky < kh; ++ky) {
                const int32_t iy = iy0 + ky * p->dilation.h;
                for (int32_t kx = 0; kx < kw; ++kx) {
                    const int32_t ix = ix0 + kx * p->dilation.w;
                    const int8_t *wt = w + (ky * kw + kx) * in_c;
                    if (iy >= 0 && iy < in_d->h && ix >= 0 && ix < in_d->w) {
                        acc += dot_s8(in_batch + (size_t)iy * row_pitch + (size_t)ix * in_c, wt,
                                      in_c);
                    } else {
                        acc += zp * sum_s8(wt, in_c);
                    }
                }
            }
        }
        acc = sqz_requantize(acc, q->multiplier[oc], q->shift[oc]) + p->output_offset;
        out_px[oc] = (int8_t)sqz_clamp(acc, p->activation.min, p->activation.max);
    }
}

void sqz_conv_row_s8(const sqz_conv_params *params, const sqz_per_channel_quant *quant,
                     const sqz_dims *input_dims, const int8_t *input_batch,
                     const sqz_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                     const sqz_dims *output_dims, int32_t oy, int8_t *output_row)
{
    const int32_t iy0 = oy * params->stride.h - params->padding.h;
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const int32_t ix0 = ox * params->stride.w - params->padding.w;
        conv_pixel(params, quant, input_dims, input_batch, filter_dims, filter, bias,
                   output_dims->c, iy0, ix0,
                   output_row + (size_t)ox * params->output_pixel_stride);
    }
}

sqz_status sqz_conv_s8(const sqz_context *ctx, const sqz_conv_params *params,
                       const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                       const int8_t *input, const sqz_dims *filter_dims, const int8_t *filter,
                       const sqz_dims *bias_dims, const int32_t *bias,
                       const sqz_dims *output_dims, int8_t *output)
{
    (void)ctx;
    if (!params || !quant || !input_dims || !input || !filter_dims || !filter || !bias_dims ||
        !bias || !output_dims || !output || !quant->multiplier || !quant->shift) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != filter_dims->c || output_dims->c != filter_dims->n ||
        bias_dims->c != output_dims->c || input_dims->n != output_dims->n ||
        params->output_pixel_stride < output_dims->c) {
        return SQZ_ERR_SHAPE;
    }
    if (params->stride.h < 1 || params->stride.w < 1 || params->dilation.h < 1 ||
        params->dilation.w < 1) {
        return SQZ_ERR_ARG;
    }
    const size_t in_batch = (size_t)input_dims->h * input_dims->w * input_dims->c;
    const size_t out_row = (size_t)output_dims->w * params->output_pixel_stride;
    for (int32_t b = 0; b < output_dims->n; ++b) {
        for (int32_t oy = 0; oy < output_dims->h; ++oy) {
            sqz_conv_row_s8(params, quant, input_dims, input + b * in_batch, filter_dims, filter,
                            bias, output_dims, oy,
                            output + ((size_t)b * output_dims->h + oy) * out_row);
        }
    }
    return SQZ_OK;
}

#include <stddef.h>

#include "conv_internal.h"
#include "fixedpoint.h"
#include "pool_window.h"
#include "sqz/kernels.h"

/* The ring of conv rows, then (2-byte aligned) the conv's own widened-row scratch. */
static int32_t ring_bytes(const sqz_dims *pool_filter_dims, const sqz_dims *conv_output_dims)
{
    const int32_t bytes = pool_filter_dims->h * conv_output_dims->w * conv_output_dims->c;
    return (bytes + 1) & ~1;
}

int32_t sqz_conv_pool_s8_scratch_size(const sqz_conv_params *conv_params,
                                      const sqz_dims *input_dims, const sqz_dims *filter_dims,
                                      const sqz_dims *pool_filter_dims,
                                      const sqz_dims *conv_output_dims)
{
    return ring_bytes(pool_filter_dims, conv_output_dims) +
           sqz_conv_s8_scratch_size(conv_params, input_dims, filter_dims, conv_output_dims);
}

sqz_status sqz_conv_pool_s8(const sqz_context *ctx, const sqz_conv_params *conv_params,
                            const sqz_per_channel_quant *quant,
                            const sqz_pool_params *pool_params, const sqz_dims *pool_filter_dims,
                            const sqz_dims *conv_output_dims, const sqz_dims *input_dims,
                            const int8_t *input, const sqz_dims *filter_dims,
                            const int8_t *filter, const sqz_dims *bias_dims, const int32_t *bias,
                            const sqz_dims *output_dims, int8_t *output)
{
    if (!ctx || !conv_params || !quant || !pool_params || !pool_filter_dims ||
        !conv_output_dims || !input_dims || !input || !filter_dims || !filter || !bias_dims ||
        !bias || !output_dims || !output || !quant->multiplier || !quant->shift) {
        return SQZ_ERR_ARG;
    }
    const sqz_dims *cd = conv_output_dims;
    if (input_dims->c != filter_dims->c || cd->c != filter_dims->n || bias_dims->c != cd->c ||
        output_dims->c != cd->c || input_dims->n != cd->n || output_dims->n != cd->n ||
        conv_params->output_pixel_stride != cd->c) {
        return SQZ_ERR_SHAPE;
    }
    const int32_t ring_rows = pool_filter_dims->h;
    if (ring_rows < 1 || ctx->buf == NULL ||
        ctx->size < sqz_conv_pool_s8_scratch_size(conv_params, input_dims, filter_dims,
                                                  pool_filter_dims, cd)) {
        return SQZ_ERR_SCRATCH;
    }
    int8_t *ring = (int8_t *)ctx->buf;
    int16_t *widened = (int16_t *)(void *)(ring + ring_bytes(pool_filter_dims, cd));
    const size_t row_bytes = (size_t)cd->w * cd->c;
    const int32_t c = cd->c;
    const size_t in_batch = (size_t)input_dims->h * input_dims->w * input_dims->c;

    for (int32_t b = 0; b < cd->n; ++b) {
        const int8_t *in_b = input + b * in_batch;
        int32_t next_row = 0; /* conv rows below this one are already in the ring */
        for (int32_t py = 0; py < output_dims->h; ++py) {
            const sqz_span ys = sqz_pool_span(py, pool_params->stride.h, pool_params->padding.h,
                                              pool_filter_dims->h, cd->h);
            const int32_t y0 = ys.origin, fy0 = ys.start, fy1 = ys.end;
            /* Conv rows are produced in order; a row needed by this window but not yet computed
             * overwrites the ring slot of a row no later window can need. */
            if (next_row < y0 + fy0) {
                next_row = y0 + fy0;
            }
            for (; next_row < y0 + fy1; ++next_row) {
                sqz_conv_row_s8(conv_params, quant, input_dims, in_b, filter_dims, filter, bias,
                                cd, next_row, widened,
                                ring + (size_t)(next_row % ring_rows) * row_bytes);
            }
            for (int32_t px = 0; px < output_dims->w; ++px) {
                const sqz_span xs = sqz_pool_span(px, pool_params->stride.w,
                                                  pool_params->padding.w, pool_filter_dims->w,
                                                  cd->w);
                const int32_t x0 = xs.origin, fx0 = xs.start, fx1 = xs.end;
                int8_t *out = output + (((size_t)b * output_dims->h + py) * output_dims->w + px) * c;
                for (int32_t ch = 0; ch < c; ++ch) {
                    int32_t m = INT8_MIN;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        const int8_t *row = ring + (size_t)((y0 + fy) % ring_rows) * row_bytes;
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            const int32_t v = row[(size_t)(x0 + fx) * c + ch];
                            m = v > m ? v : m;
                        }
                    }
                    out[ch] = (int8_t)sqz_clamp(m, pool_params->activation.min,
                                                pool_params->activation.max);
                }
            }
        }
    }
    return SQZ_OK;
}

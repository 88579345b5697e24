#include <stddef.h>

#include "fixedpoint.h"
#include "pool_window.h"
#include "sqz/kernels.h"

/* MAX_POOL_2D and AVERAGE_POOL_2D differ only in how a window's in-image values reduce, so
 * both kernels share the window walk. Neither rescales: the reference does not either. */
typedef enum { POOL_MAX, POOL_AVG } pool_kind;

static int32_t window_max(const int8_t *input, const sqz_dims *in_d, int32_t b, int32_t ch,
                          sqz_span ys, sqz_span xs)
{
    const int32_t c = in_d->c;
    int32_t m = INT8_MIN;
    for (int32_t fy = ys.start; fy < ys.end; ++fy) {
        const int8_t *row = input + (((size_t)b * in_d->h + ys.origin + fy) * in_d->w) * c;
        for (int32_t fx = xs.start; fx < xs.end; ++fx) {
            const int32_t v = row[(size_t)(xs.origin + fx) * c + ch];
            m = v > m ? v : m;
        }
    }
    return m;
}

static int32_t window_avg(const int8_t *input, const sqz_dims *in_d, int32_t b, int32_t ch,
                          sqz_span ys, sqz_span xs)
{
    const int32_t c = in_d->c;
    int32_t sum = 0;
    for (int32_t fy = ys.start; fy < ys.end; ++fy) {
        const int8_t *row = input + (((size_t)b * in_d->h + ys.origin + fy) * in_d->w) * c;
        for (int32_t fx = xs.start; fx < xs.end; ++fx) {
            sum += row[(size_t)(xs.origin + fx) * c + ch];
        }
    }
    /* Padding is excluded from the count; integer rounding half away from zero. */
    const int32_t count = (ys.end - ys.start) * (xs.end - xs.start);
    return sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
}

static sqz_status pool_s8(pool_kind kind, const sqz_pool_params *params,
                          const sqz_dims *input_dims, const int8_t *input,
                          const sqz_dims *filter_dims, const sqz_dims *output_dims,
                          int8_t *output)
{
    if (!params || !input_dims || !input || !filter_dims || !output_dims || !output) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != output_dims->c || input_dims->n != output_dims->n) {
        return SQZ_ERR_SHAPE;
    }
    const int32_t c = input_dims->c;
    for (int32_t b = 0; b < output_dims->n; ++b) {
        for (int32_t oy = 0; oy < output_dims->h; ++oy) {
            const sqz_span ys = sqz_pool_span(oy, params->stride.h, params->padding.h,
                                              filter_dims->h, input_dims->h);
            for (int32_t ox = 0; ox < output_dims->w; ++ox) {
                const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                                  filter_dims->w, input_dims->w);
                if (ys.end <= ys.start || xs.end <= xs.start) {
                    return SQZ_ERR_SHAPE; /* a window entirely in the padding */
                }
                int8_t *out =
                    output + (((size_t)b * output_dims->h + oy) * output_dims->w + ox) * c;
                for (int32_t ch = 0; ch < c; ++ch) {
                    const int32_t v = kind == POOL_MAX
                                          ? window_max(input, input_dims, b, ch, ys, xs)
                                          : window_avg(input, input_dims, b, ch, ys, xs);
                    out[ch] = (int8_t)sqz_clamp(v, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return SQZ_OK;
}

sqz_status sqz_max_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output)
{
    return pool_s8(POOL_MAX, params, input_dims, input, filter_dims, output_dims, output);
}

sqz_status sqz_avg_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output)
{
    return pool_s8(POOL_AVG, params, input_dims, input, filter_dims, output_dims, output);
}

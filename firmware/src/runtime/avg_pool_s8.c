#include <stddef.h>

#include "fixedpoint.h"
#include "pool_window.h"
#include "sqz/kernels.h"

sqz_status sqz_avg_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output)
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
            const int32_t iy0 = ys.origin, fy0 = ys.start, fy1 = ys.end;
            for (int32_t ox = 0; ox < output_dims->w; ++ox) {
                const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                                  filter_dims->w, input_dims->w);
                const int32_t ix0 = xs.origin, fx0 = xs.start, fx1 = xs.end;
                /* Padding is excluded from the average, as in the reference. */
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                if (count <= 0) {
                    return SQZ_ERR_SHAPE;
                }
                int8_t *out =
                    output + (((size_t)b * output_dims->h + oy) * output_dims->w + ox) * c;
                for (int32_t ch = 0; ch < c; ++ch) {
                    int32_t sum = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        const int8_t *row =
                            input + (((size_t)b * input_dims->h + iy0 + fy) * input_dims->w) * c;
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            sum += row[(size_t)(ix0 + fx) * c + ch];
                        }
                    }
                    /* Rounds half away from zero, in integers, like the reference. */
                    const int32_t avg =
                        sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    out[ch] =
                        (int8_t)sqz_clamp(avg, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return SQZ_OK;
}

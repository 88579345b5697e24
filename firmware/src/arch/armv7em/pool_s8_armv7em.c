/* MAX_POOL_2D, push form, for Armv7E-M: four channels per SSUB8 + SEL pair, which is a signed
 * byte-wise maximum. Same contract as sqz_max_pool_s8_push (sqz/kernels.h); the activation
 * clamp commutes with max, so clamping each row's window maximum is exact. */
#include <stddef.h>

#include "../../runtime/pool_window.h"
#include "dsp.h"
#include "sqz/kernels_armv7em.h"

static uint32_t splat(int32_t v)
{
    return (uint32_t)(uint8_t)(int8_t)v * 0x01010101u;
}

sqz_status sqz_max_pool_s8_armv7em_push(const sqz_pool_params *params,
                                        const sqz_dims *input_dims, const int8_t *input_row,
                                        int32_t in_y, const sqz_dims *filter_dims,
                                        const sqz_dims *output_dims,
                                        int8_t *const *output_rows, int32_t first_out,
                                        int32_t n_out)
{
    if (!params || !input_dims || !input_row || !filter_dims || !output_dims ||
        (n_out > 0 && !output_rows)) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != output_dims->c || n_out < 0 || n_out > SQZ_MAX_FILTER_ROWS ||
        in_y < 0 || in_y >= input_dims->h) {
        return SQZ_ERR_SHAPE;
    }
    /* Output rows this input row starts are written, the others folded in with max. */
    int init[SQZ_MAX_FILTER_ROWS];
    for (int32_t j = 0; j < n_out; ++j) {
        const int32_t y0 = (first_out + j) * params->stride.h - params->padding.h;
        init[j] = in_y == (y0 > 0 ? y0 : 0);
        if (!output_rows[j]) {
            return SQZ_ERR_ARG;
        }
    }
    const int32_t c = input_dims->c;
    const int32_t c4 = c & ~3;
    const int32_t lo = params->activation.min;
    const int32_t hi = params->activation.max;
    const uint32_t lo4 = splat(lo);
    const uint32_t hi4 = splat(hi);
    const int clamp_lo = lo > INT8_MIN;
    const int clamp_hi = hi < INT8_MAX;
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                          filter_dims->w, input_dims->w);
        if (xs.end <= xs.start) {
            return SQZ_ERR_SHAPE;
        }
        const int8_t *in = input_row + (size_t)(xs.origin + xs.start) * c;
        const int32_t width = xs.end - xs.start;
        const size_t out_at = (size_t)ox * c;
        int32_t ch = 0;
        for (; ch < c4; ch += 4) {
            uint32_t m = sqz_load32(in + ch);
            for (int32_t fx = 1; fx < width; ++fx) {
                m = sqz_max_s8x4(m, sqz_load32(in + (size_t)fx * c + ch));
            }
            if (clamp_lo) {
                m = sqz_max_s8x4(m, lo4);
            }
            if (clamp_hi) {
                m = sqz_min_s8x4(m, hi4);
            }
            for (int32_t j = 0; j < n_out; ++j) {
                int8_t *o = output_rows[j] + out_at + ch;
                sqz_store32(o, init[j] ? m : sqz_max_s8x4(sqz_load32(o), m));
            }
        }
        for (; ch < c; ++ch) {
            int32_t m = INT8_MIN;
            for (int32_t fx = 0; fx < width; ++fx) {
                const int32_t v = in[(size_t)fx * c + ch];
                m = v > m ? v : m;
            }
            m = m < lo ? lo : (m > hi ? hi : m);
            for (int32_t j = 0; j < n_out; ++j) {
                int8_t *o = output_rows[j] + out_at + ch;
                *o = (int8_t)(init[j] || m > *o ? m : *o);
            }
        }
    }
    return SQZ_OK;
}

/* MAX_POOL_2D, push form, for Helium: 16 channels per VMAX.S8, the last vector of a pixel
 * tail-predicated (any channel count). Same contract as sqz_max_pool_s8_push (sqz/kernels.h);
 * the activation clamp commutes with max, so clamping each row's window maximum is exact.
 *
 * When the input row starts an output row (its window's first row), the row's horizontal
 * window maxima are written there, then that output row is folded into the others this input
 * row belongs to; otherwise the maxima are folded into each output row directly. Without MVE
 * (the host's build) this is the portable kernel. */
#include <stddef.h>
#include <string.h>

#include "../../runtime/pool_window.h"
#include "sqz/kernels_mve.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
#include <arm_mve.h>

typedef struct {
    int8x16_t lo, hi;
    int clamp;
} act_range;

static inline int8x16_t clamp16(int8x16_t m, const act_range *a)
{
    return a->clamp ? vminq_s8(vmaxq_s8(m, a->lo), a->hi) : m;
}

/* One output pixel's window maxima over `width` input pixels from `in`, written into o, or
 * with `fold` folded into what o holds: whole vectors unpredicated (the common 3-wide window
 * unrolled), then one predicated vector for the last c % 16 channels. */
static inline void pixel_max(int8_t *o, const int8_t *in, int32_t c, int32_t width, int fold,
                             const act_range *a)
{
    const size_t cs = (size_t)c;
    int32_t ch = 0;
    if (width == 3) {
        for (; ch + 16 <= c; ch += 16) {
            const int8_t *x = in + ch;
            int8x16_t m = vmaxq_s8(vmaxq_s8(vldrbq_s8(x), vldrbq_s8(x + cs)),
                                   vldrbq_s8(x + 2 * cs));
            m = clamp16(m, a);
            vstrbq_s8(o + ch, fold ? vmaxq_s8(m, vldrbq_s8(o + ch)) : m);
        }
    } else {
        for (; ch + 16 <= c; ch += 16) {
            const int8_t *x = in + ch;
            int8x16_t m = vldrbq_s8(x);
            for (int32_t fx = 1; fx < width; ++fx) {
                m = vmaxq_s8(m, vldrbq_s8(x + (size_t)fx * cs));
            }
            m = clamp16(m, a);
            vstrbq_s8(o + ch, fold ? vmaxq_s8(m, vldrbq_s8(o + ch)) : m);
        }
    }
    if (ch < c) {
        const mve_pred16_t p = vctp8q((uint32_t)(c - ch));
        const int8_t *x = in + ch;
        int8x16_t m = vldrbq_z_s8(x, p);
        for (int32_t fx = 1; fx < width; ++fx) {
            m = vmaxq_s8(m, vldrbq_z_s8(x + (size_t)fx * cs, p));
        }
        m = clamp16(m, a);
        if (fold) {
            m = vmaxq_s8(m, vldrbq_z_s8(o + ch, p));
        }
        vstrbq_p_s8(o + ch, m, p);
    }
}

/* out = max(out, in) over n bytes. */
static void fold_row(int8_t *out, const int8_t *in, int32_t n)
{
    for (; n >= 16; n -= 16, in += 16, out += 16) {
        vstrbq_s8(out, vmaxq_s8(vldrbq_s8(out), vldrbq_s8(in)));
    }
    if (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(out, vmaxq_s8(vldrbq_z_s8(out, p), vldrbq_z_s8(in, p)), p);
    }
}

sqz_status sqz_max_pool_s8_mve_push(const sqz_pool_params *params, const sqz_dims *input_dims,
                                    const int8_t *input_row, int32_t in_y,
                                    const sqz_dims *filter_dims, const sqz_dims *output_dims,
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
    /* The output rows this input row starts (their windows' first row inside the input):
     * those are written, the others folded into. `start` is the first of them, if any. */
    int init[SQZ_MAX_FILTER_ROWS];
    int32_t start = -1;
    for (int32_t j = 0; j < n_out; ++j) {
        const int32_t y0 = (first_out + j) * params->stride.h - params->padding.h;
        if (!output_rows[j]) {
            return SQZ_ERR_ARG;
        }
        init[j] = in_y == (y0 > 0 ? y0 : 0);
        if (init[j] && start < 0) {
            start = j;
        }
    }
    if (n_out == 0) {
        return SQZ_OK;
    }
    const int32_t c = input_dims->c;
    const int32_t out_w = output_dims->w;
    act_range a;
    a.lo = vdupq_n_s8((int8_t)params->activation.min);
    a.hi = vdupq_n_s8((int8_t)params->activation.max);
    a.clamp = params->activation.min > INT8_MIN || params->activation.max < INT8_MAX;
    for (int32_t ox = 0; ox < out_w; ++ox) {
        const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                          filter_dims->w, input_dims->w);
        if (xs.end <= xs.start) {
            return SQZ_ERR_SHAPE;
        }
        const int8_t *in = input_row + (size_t)(xs.origin + xs.start) * (size_t)c;
        const int32_t width = xs.end - xs.start;
        const size_t at = (size_t)ox * (size_t)c;
        if (start >= 0) {
            pixel_max(output_rows[start] + at, in, c, width, 0, &a);
            continue;
        }
        for (int32_t j = 0; j < n_out; ++j) {
            pixel_max(output_rows[j] + at, in, c, width, 1, &a);
        }
    }
    if (start >= 0) {
        const int32_t n = out_w * c;
        for (int32_t j = 0; j < n_out; ++j) {
            if (j == start) {
                continue;
            }
            if (init[j]) { /* several windows start here when the padding clips them */
                memcpy(output_rows[j], output_rows[start], (size_t)n);
            } else {
                fold_row(output_rows[j], output_rows[start], n);
            }
        }
    }
    return SQZ_OK;
}

#else

sqz_status sqz_max_pool_s8_mve_push(const sqz_pool_params *params, const sqz_dims *input_dims,
                                    const int8_t *input_row, int32_t in_y,
                                    const sqz_dims *filter_dims, const sqz_dims *output_dims,
                                    int8_t *const *output_rows, int32_t first_out,
                                    int32_t n_out)
{
    return sqz_max_pool_s8_push(params, input_dims, input_row, in_y, filter_dims, output_dims,
                                output_rows, first_out, n_out);
}

#endif

/* MAX_POOL_2D, push form, for Armv7E-M: four channels per SSUB8 + SEL pair, which is a signed
 * byte-wise maximum. Same contract as sqz_max_pool_s8_push (sqz/kernels.h); the activation
 * clamp commutes with max, so clamping each row's window maximum is exact.
 *
 * When the input row starts an output row (its window's first row), the row's horizontal
 * window maxima are written there, then that output row is folded into the others this input
 * row belongs to, a plain four-bytes-at-a-time maximum; otherwise the maxima are folded into
 * each output row directly. */
#include <stddef.h>
#include <string.h>

#include "../../runtime/pool_window.h"
#include "dsp.h"
#include "sqz/kernels_armv7em.h"

static inline int32_t sqz_clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static uint32_t splat(int32_t v)
{
    return (uint32_t)(uint8_t)(int8_t)v * 0x01010101u;
}

/* The maximum of four channels over `width` pixels `c` bytes apart. */
static inline uint32_t window_max4(const int8_t *in, size_t c, int32_t width)
{
    uint32_t m = sqz_load32(in);
    if (width == 3) {
        m = sqz_max_s8x4(m, sqz_load32(in + c));
        m = sqz_max_s8x4(m, sqz_load32(in + 2 * c));
    } else {
        for (int32_t fx = 1; fx < width; ++fx) {
            m = sqz_max_s8x4(m, sqz_load32(in + (size_t)fx * c));
        }
    }
    return m;
}

static inline int32_t window_max1(const int8_t *in, size_t c, int32_t width)
{
    int32_t m = INT8_MIN;
    for (int32_t fx = 0; fx < width; ++fx) {
        const int32_t v = in[(size_t)fx * c];
        m = v > m ? v : m;
    }
    return m;
}

typedef struct {
    int32_t lo, hi;
    uint32_t lo4, hi4;
    int clamp;
} act_range;

static inline uint32_t clamp4(const act_range *a, uint32_t m)
{
    return sqz_min_s8x4(sqz_max_s8x4(m, a->lo4), a->hi4);
}

/* n4 groups of four channels of a 3-wide window, each the maximum of three loads. */
static void max3(int8_t *o, const int8_t *in, size_t c, int32_t n4, int fold)
{
    const int8_t *p0 = in;
    const int8_t *p1 = in + c;
    const int8_t *p2 = in + 2 * c;
    const int8_t *end = in + 4 * (size_t)n4;
    if (fold) {
        do {
            const uint32_t m = sqz_max_s8x4(sqz_max_s8x4(sqz_load32(p0), sqz_load32(p1)),
                                            sqz_load32(p2));
            sqz_store32(o, sqz_max_s8x4(sqz_load32(o), m));
            p0 += 4;
            p1 += 4;
            p2 += 4;
            o += 4;
        } while (p0 != end);
    } else {
        do {
            sqz_store32(o, sqz_max_s8x4(sqz_max_s8x4(sqz_load32(p0), sqz_load32(p1)),
                                        sqz_load32(p2)));
            p0 += 4;
            p1 += 4;
            p2 += 4;
            o += 4;
        } while (p0 != end);
    }
}

/* One output pixel's window maxima (`width` input pixels from `in`), written into o, or with
 * `fold` folded into what o holds. The common 3-wide window without a clamp has its own loops:
 * three loads and two SSUB8/SEL pairs per four channels. */
static inline void pixel_max(int8_t *o, const int8_t *in, int32_t c, int32_t width, int fold,
                             const act_range *a)
{
    const int32_t c4 = c & ~3;
    int32_t ch = 0;
    if (width == 3 && !a->clamp && c4 > 0) {
        max3(o, in, (size_t)c, c4 / 4, fold);
        ch = c4;
    } else {
        for (; ch < c4; ch += 4) {
            uint32_t m = window_max4(in + ch, (size_t)c, width);
            m = a->clamp ? clamp4(a, m) : m;
            sqz_store32(o + ch, fold ? sqz_max_s8x4(sqz_load32(o + ch), m) : m);
        }
    }
    for (; ch < c; ++ch) {
        const int32_t m = sqz_clamp_s8(window_max1(in + ch, (size_t)c, width), a->lo, a->hi);
        o[ch] = (int8_t)(fold && o[ch] > m ? o[ch] : m);
    }
}

/* out = max(out, in) over n bytes. */
static void fold_row(int8_t *out, const int8_t *in, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        sqz_store32(out + i, sqz_max_s8x4(sqz_load32(out + i), sqz_load32(in + i)));
    }
    for (; i < n; ++i) {
        out[i] = in[i] > out[i] ? in[i] : out[i];
    }
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
    a.lo = params->activation.min;
    a.hi = params->activation.max;
    a.lo4 = splat(a.lo);
    a.hi4 = splat(a.hi);
    a.clamp = a.lo > INT8_MIN || a.hi < INT8_MAX;
    for (int32_t ox = 0; ox < out_w; ++ox) {
        const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                          filter_dims->w, input_dims->w);
        if (xs.end <= xs.start) {
            return SQZ_ERR_SHAPE;
        }
        const int8_t *in = input_row + (size_t)(xs.origin + xs.start) * c;
        const int32_t width = xs.end - xs.start;
        const size_t at = (size_t)ox * c;
        if (start >= 0) {
            pixel_max(output_rows[start] + at, in, c, width, 0, &a);
            continue;
        }
        for (int32_t j = 0; j < n_out; ++j) {
            pixel_max(output_rows[j] + at, in, c, width, 1, &a);
        }
    }
    if (start >= 0) {
        const size_t n = (size_t)out_w * c;
        for (int32_t j = 0; j < n_out; ++j) {
            if (j == start) {
                continue;
            }
            if (init[j]) { /* several windows start here when the padding clips them */
                memcpy(output_rows[j], output_rows[start], n);
            } else {
                fold_row(output_rows[j], output_rows[start], n);
            }
        }
    }
    return SQZ_OK;
}

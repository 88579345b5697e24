#include <stddef.h>

#include "fixedpoint.h"
#include "pool_window.h"
#include "sqz/kernels.h"

/* MAX_POOL_2D and AVERAGE_POOL_2D differ only in how a window's in-image values reduce, so
 * both kernels share the window walk. Neither rescales: the reference does not either. */
typedef enum { POOL_MAX, POOL_AVG } pool_kind;

static sqz_status pool_row(pool_kind kind, const sqz_pool_params *params,
                           const sqz_dims *input_dims, const int8_t *const *input_rows,
                           const sqz_dims *filter_dims, const sqz_dims *output_dims,
                           int8_t *output_row)
{
    if (!params || !input_dims || !input_rows || !filter_dims || !output_dims || !output_row) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != output_dims->c || input_dims->n != output_dims->n ||
        filter_dims->h < 1 || filter_dims->h > SQZ_MAX_FILTER_ROWS) {
        return SQZ_ERR_SHAPE;
    }
    /* The window's rows inside the input: the executor passes NULL for the others. */
    const int8_t *rows[SQZ_MAX_FILTER_ROWS];
    int32_t n_rows = 0;
    for (int32_t fy = 0; fy < filter_dims->h; ++fy) {
        if (input_rows[fy]) {
            rows[n_rows++] = input_rows[fy];
        }
    }
    if (n_rows == 0) {
        return SQZ_ERR_SHAPE; /* a window entirely in the padding */
    }
    const int32_t c = input_dims->c;
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                          filter_dims->w, input_dims->w);
        if (xs.end <= xs.start) {
            return SQZ_ERR_SHAPE;
        }
        int8_t *out = output_row + (size_t)ox * c;
        const size_t first = (size_t)(xs.origin + xs.start) * c;
        const int32_t width = xs.end - xs.start;
        /* Padding is excluded from the average's count. */
        const int32_t count = n_rows * width;
        for (int32_t ch = 0; ch < c; ++ch) {
            int32_t acc = kind == POOL_MAX ? INT8_MIN : 0;
            for (int32_t r = 0; r < n_rows; ++r) {
                const int8_t *p = rows[r] + first + ch;
                for (int32_t fx = 0; fx < width; ++fx) {
                    const int32_t v = p[(size_t)fx * c];
                    if (kind == POOL_MAX) {
                        acc = v > acc ? v : acc;
                    } else {
                        acc += v;
                    }
                }
            }
            if (kind == POOL_AVG) {
                /* Integer rounding half away from zero, as the reference. */
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
            }
            out[ch] = (int8_t)sqz_clamp(acc, params->activation.min, params->activation.max);
        }
    }
    return SQZ_OK;
}

int32_t sqz_pool_s8_ring_rows(const sqz_dims *filter_dims)
{
    return filter_dims->h;
}

sqz_status sqz_max_pool_s8_row(const sqz_pool_params *params, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const sqz_dims *output_dims, int8_t *output_row)
{
    return pool_row(POOL_MAX, params, input_dims, input_rows, filter_dims, output_dims,
                    output_row);
}

sqz_status sqz_avg_pool_s8_row(const sqz_pool_params *params, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const sqz_dims *output_dims, int8_t *output_row)
{
    return pool_row(POOL_AVG, params, input_dims, input_rows, filter_dims, output_dims,
                    output_row);
}

static sqz_status pool_s8(sqz_pool_row_fn row, const sqz_pool_params *params,
                          const sqz_dims *input_dims, const int8_t *input,
                          const sqz_dims *filter_dims, const sqz_dims *output_dims,
                          int8_t *output)
{
    if (!params || !input_dims || !input || !filter_dims || !output_dims || !output) {
        return SQZ_ERR_ARG;
    }
    if (filter_dims->h < 1 || filter_dims->h > SQZ_MAX_FILTER_ROWS) {
        return SQZ_ERR_SHAPE;
    }
    const size_t in_row = (size_t)input_dims->w * input_dims->c;
    const size_t out_row = (size_t)output_dims->w * output_dims->c;
    const int8_t *rows[SQZ_MAX_FILTER_ROWS];
    for (int32_t b = 0; b < output_dims->n; ++b) {
        const int8_t *in_b = input + (size_t)b * input_dims->h * in_row;
        for (int32_t oy = 0; oy < output_dims->h; ++oy) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (int32_t j = 0; j < filter_dims->h; ++j) {
                const int32_t iy = iy0 + j;
                rows[j] = (iy >= 0 && iy < input_dims->h) ? in_b + (size_t)iy * in_row : NULL;
            }
            const sqz_status st = row(params, input_dims, rows, filter_dims, output_dims,
                                      output + ((size_t)b * output_dims->h + oy) * out_row);
            if (st != SQZ_OK) {
                return st;
            }
        }
    }
    return SQZ_OK;
}

sqz_status sqz_max_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output)
{
    return pool_s8(sqz_max_pool_s8_row, params, input_dims, input, filter_dims, output_dims,
                   output);
}

sqz_status sqz_avg_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output)
{
    return pool_s8(sqz_avg_pool_s8_row, params, input_dims, input, filter_dims, output_dims,
                   output);
}

static int32_t floor_div(int32_t a, int32_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

void sqz_pool_s8_push_span(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const sqz_dims *filter_dims, const sqz_dims *output_dims,
                           int32_t in_y, int32_t *first_out, int32_t *n_out)
{
    (void)input_dims;
    const int32_t s = params->stride.h;
    const int32_t y = in_y + params->padding.h;
    int32_t lo = floor_div(y - filter_dims->h, s) + 1;
    int32_t hi = floor_div(y, s);
    lo = lo < 0 ? 0 : lo;
    hi = hi > output_dims->h - 1 ? output_dims->h - 1 : hi;
    *first_out = lo;
    *n_out = hi >= lo ? hi - lo + 1 : 0;
}

sqz_status sqz_max_pool_s8_push(const sqz_pool_params *params, const sqz_dims *input_dims,
                                const int8_t *input_row, int32_t in_y,
                                const sqz_dims *filter_dims, const sqz_dims *output_dims,
                                int8_t *const *output_rows, int32_t first_out, int32_t n_out)
{
    if (!params || !input_dims || !input_row || !filter_dims || !output_dims ||
        (n_out > 0 && !output_rows)) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != output_dims->c || n_out < 0 || n_out > SQZ_MAX_FILTER_ROWS ||
        in_y < 0 || in_y >= input_dims->h) {
        return SQZ_ERR_SHAPE;
    }
    /* Which of the output rows this input row starts: those are initialised, not maxed. */
    int init[SQZ_MAX_FILTER_ROWS];
    for (int32_t j = 0; j < n_out; ++j) {
        const int32_t y0 = (first_out + j) * params->stride.h - params->padding.h;
        init[j] = in_y == (y0 > 0 ? y0 : 0);
        if (!output_rows[j]) {
            return SQZ_ERR_ARG;
        }
    }
    const int32_t c = input_dims->c;
    const int32_t lo = params->activation.min;
    const int32_t hi = params->activation.max;
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                          filter_dims->w, input_dims->w);
        if (xs.end <= xs.start) {
            return SQZ_ERR_SHAPE;
        }
        const int8_t *in = input_row + (size_t)(xs.origin + xs.start) * c;
        const int32_t width = xs.end - xs.start;
        /* One pass per output row, each a plain loop over the channels: the row this input
         * row starts is overwritten, the others take the maximum. */
        for (int32_t j = 0; j < n_out; ++j) {
            int8_t *o = output_rows[j] + (size_t)ox * c;
            for (int32_t ch = 0; ch < c; ++ch) {
                int32_t m = in[ch];
                for (int32_t fx = 1; fx < width; ++fx) {
                    const int32_t v = in[(size_t)fx * c + ch];
                    m = v > m ? v : m;
                }
                m = sqz_clamp(m, lo, hi);
                if (!init[j]) {
                    m = o[ch] > m ? o[ch] : m;
                }
                o[ch] = (int8_t)m;
            }
        }
    }
    return SQZ_OK;
}

#include <stddef.h>

#include "fixedpoint.h"
#include "node.h"
#include "sqz/kernels.h"

/* Why the input is widened to int16 first: an int16 x int8 dot product with an int32
 * accumulator is the pattern compilers vectorise well (x86 pmaddwd, Arm SMLAD), while a pure
 * int8 x int8 one costs a sign extension of both operands in the inner loop. Widening costs one
 * pass over the input rows a conv row needs; the products then dominate.
 *
 * The dot products run in blocks of 16 with a fixed trip count, which even gcc -O2's cheap
 * vectoriser accepts, and four output pixels share each pass over a filter, so the filter's
 * bytes are loaded and widened once per four pixels. */
#define SQZ_BLOCK 16
#define SQZ_PIXELS 4

static int32_t dot_s16_s8(const int16_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    int32_t i = 0;
    for (; i + SQZ_BLOCK <= n; i += SQZ_BLOCK) {
        int32_t s = 0;
        for (int32_t j = 0; j < SQZ_BLOCK; ++j) {
            s += a[i + j] * (int16_t)b[i + j];
        }
        acc += s;
    }
    for (; i < n; ++i) {
        acc += a[i] * (int16_t)b[i];
    }
    return acc;
}

/* One block of the four-pixel dot product; `len` is a compile-time constant at each use, so
 * the loop has a fixed trip count the vectoriser accepts. */
#define SQZ_DOT4_BLOCK(len)                                                                    \
    do {                                                                                       \
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                \
        for (int32_t j = 0; j < (len); ++j) {                                                  \
            const int16_t w = b[i + j];                                                        \
            s0 += a0[i + j] * w;                                                               \
            s1 += a1[i + j] * w;                                                               \
            s2 += a2[i + j] * w;                                                               \
            s3 += a3[i + j] * w;                                                               \
        }                                                                                      \
        r0 += s0;                                                                              \
        r1 += s1;                                                                              \
        r2 += s2;                                                                              \
        r3 += s3;                                                                              \
    } while (0)

/* acc[p] += dot(a[p], b) for four pixels at once. Long blocks first: every block ends in a
 * horizontal sum per pixel, which a longer block pays less often. */
static void dot4_s16_s8(const int16_t *a0, const int16_t *a1, const int16_t *a2,
                        const int16_t *a3, const int8_t *b, int32_t n, int32_t *acc)
{
    int32_t r0 = 0, r1 = 0, r2 = 0, r3 = 0;
    int32_t i = 0;
    for (; i + 2 * SQZ_BLOCK <= n; i += 2 * SQZ_BLOCK) {
        SQZ_DOT4_BLOCK(2 * SQZ_BLOCK);
    }
    for (; i + SQZ_BLOCK <= n; i += SQZ_BLOCK) {
        SQZ_DOT4_BLOCK(SQZ_BLOCK);
    }
    for (; i < n; ++i) {
        const int16_t w = b[i];
        r0 += a0[i] * w;
        r1 += a1[i] * w;
        r2 += a2[i] * w;
        r3 += a3[i] * w;
    }
    acc[0] += r0;
    acc[1] += r1;
    acc[2] += r2;
    acc[3] += r3;
}

/* Columns of input a conv row touches, padding included: the widened row's width. */
static int32_t padded_width(const sqz_conv_params *p, const sqz_dims *filter_dims,
                            const sqz_dims *output_dims)
{
    return (output_dims->w - 1) * p->stride.w + (filter_dims->w - 1) * p->dilation.w + 1;
}

static int is_pointwise(const sqz_dims *filter_dims)
{
    return filter_dims->h == 1 && filter_dims->w == 1;
}

/* Undilated k x k filters go through patches: four output pixels' receptive fields, widened
 * into scratch and zero-padded to a block multiple (the filter rows are padded alike), so each
 * output channel needs one long dot product per pixel group. That is a partial im2col of four
 * pixels, never of the whole image. */
static int uses_patches(const sqz_conv_params *p, const sqz_dims *filter_dims)
{
    return !is_pointwise(filter_dims) && p->dilation.w == 1 && p->dilation.h == 1;
}

static int32_t patch_len(const sqz_dims *filter_dims)
{
    const int32_t taps = filter_dims->h * filter_dims->w * filter_dims->c;
    return (taps + SQZ_BLOCK - 1) / SQZ_BLOCK * SQZ_BLOCK;
}

int32_t sqz_conv_s8_filter_row_len(const sqz_conv_params *params, const sqz_dims *filter_dims)
{
    return uses_patches(params, filter_dims)
               ? patch_len(filter_dims)
               : filter_dims->h * filter_dims->w * filter_dims->c;
}

int32_t sqz_conv_s8_scratch_size(const sqz_conv_params *params, const sqz_dims *input_dims,
                                 const sqz_dims *filter_dims, const sqz_dims *output_dims)
{
    int32_t row;
    if (is_pointwise(filter_dims)) {
        row = SQZ_PIXELS * input_dims->c;
    } else if (uses_patches(params, filter_dims)) {
        row = SQZ_PIXELS * patch_len(filter_dims);
    } else {
        row = filter_dims->h * padded_width(params, filter_dims, output_dims) * input_dims->c;
    }
    return row * (int32_t)sizeof(int16_t);
}

int32_t sqz_conv_s8_ring_rows(const sqz_conv_params *params, const sqz_dims *filter_dims)
{
    return (filter_dims->h - 1) * params->dilation.h + 1;
}

/* Widens `width` pixels of an input row, starting at column x0, into dst; pixels outside the
 * row (and every pixel of a NULL row: top or bottom padding) hold the input zero point, which
 * with the folded bias contributes exactly what the reference's skipped taps contribute. */
static void widen_row(const int8_t *row, int32_t in_w, int32_t c, int32_t x0, int32_t width,
                      int16_t zp, int16_t *dst)
{
    for (int32_t px = 0; px < width; ++px) {
        const int32_t ix = x0 + px;
        int16_t *d = dst + (size_t)px * c;
        if (row && ix >= 0 && ix < in_w) {
            const int8_t *s = row + (size_t)ix * c;
            for (int32_t ch = 0; ch < c; ++ch) {
                d[ch] = s[ch];
            }
        } else {
            for (int32_t ch = 0; ch < c; ++ch) {
                d[ch] = zp;
            }
        }
    }
}

/* Output stage constants, copied into locals: the output is written through int8_t
 * pointers, which may alias anything, so values read through pointers would be reloaded after
 * every store. */
typedef struct {
    int32_t offset, act_min, act_max;
} out_stage;

/* Stores acc[0..count) for output channel oc, `stride` bytes apart. */
static inline void requantize_store(const out_stage *o, const sqz_per_channel_quant *q,
                                    int32_t oc, const int32_t *acc, int32_t count, int8_t *out,
                                    size_t stride)
{
    const int32_t mult = q->multiplier[oc];
    const int32_t shift = q->shift[oc];
    const int32_t offset = o->offset;
    const int32_t lo = o->act_min;
    const int32_t hi = o->act_max;
    for (int32_t k = 0; k < count; ++k) {
        const int32_t v = sqz_requantize(acc[k], mult, shift) + offset;
        out[(size_t)k * stride] = (int8_t)sqz_clamp(v, lo, hi);
    }
}

static sqz_status check_args(const sqz_context *ctx, const sqz_conv_params *params,
                             const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                             const sqz_dims *filter_dims, const void *filter,
                             const sqz_dims *bias_dims, const int32_t *bias,
                             const sqz_dims *output_dims, const void *output)
{
    if (!ctx || !params || !quant || !input_dims || !filter_dims || !filter || !bias_dims ||
        !bias || !output_dims || !output || !quant->multiplier || !quant->shift) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != filter_dims->c || output_dims->c != filter_dims->n ||
        bias_dims->c != output_dims->c || input_dims->n != output_dims->n ||
        params->output_pixel_stride < output_dims->c) {
        return SQZ_ERR_SHAPE;
    }
    if (params->stride.h < 1 || params->stride.w < 1 || params->dilation.h < 1 ||
        params->dilation.w < 1 || filter_dims->h > SQZ_MAX_FILTER_ROWS) {
        return SQZ_ERR_ARG;
    }
    if (ctx->buf == NULL ||
        ctx->size < sqz_conv_s8_scratch_size(params, input_dims, filter_dims, output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    return SQZ_OK;
}

sqz_status sqz_conv_s8_row(const sqz_context *ctx, const sqz_conv_params *params,
                           const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                           const int8_t *const *input_rows, const sqz_dims *filter_dims,
                           const void *filter_data, const sqz_dims *bias_dims,
                           const int32_t *bias, const sqz_dims *output_dims, int8_t *output_row)
{
    const sqz_status st = check_args(ctx, params, quant, input_dims, filter_dims, filter_data,
                                     bias_dims, bias, output_dims, output_row);
    if (st != SQZ_OK || !input_rows) {
        return st != SQZ_OK ? st : SQZ_ERR_ARG;
    }
    const int8_t *filter = (const int8_t *)filter_data;
    int16_t *scratch = (int16_t *)ctx->buf;
    const int32_t c = input_dims->c;
    const int32_t in_w = input_dims->w;
    const int16_t zp = (int16_t)(-params->input_offset);
    const int32_t out_c = output_dims->c;
    const out_stage ostage = {params->output_offset, params->activation.min,
                              params->activation.max};
    const size_t pitch = (size_t)params->output_pixel_stride;

    if (is_pointwise(filter_dims)) {
        /* A 1x1 conv is a matrix product: widen a group of pixels, then one pass over each
         * output channel's weights serves the whole group. */
        for (int32_t ox = 0; ox < output_dims->w; ox += SQZ_PIXELS) {
            const int32_t group = output_dims->w - ox < SQZ_PIXELS ? output_dims->w - ox
                                                                   : SQZ_PIXELS;
            const int16_t *px[SQZ_PIXELS];
            for (int32_t k = 0; k < SQZ_PIXELS; ++k) {
                /* A short last group repeats its last pixel rather than leave the fast path. */
                const int32_t kk = k < group ? k : group - 1;
                px[k] = scratch + kk * c;
                if (k < group) {
                    widen_row(input_rows[0], in_w, c,
                              (ox + k) * params->stride.w - params->padding.w, 1, zp,
                              scratch + k * c);
                }
            }
            int8_t *out_px = output_row + (size_t)ox * params->output_pixel_stride;
            const int8_t *w = filter;
            for (int32_t oc = 0; oc < out_c; ++oc, w += c) {
                int32_t acc[SQZ_PIXELS] = {bias[oc], bias[oc], bias[oc], bias[oc]};
                dot4_s16_s8(px[0], px[1], px[2], px[3], w, c, acc);
                requantize_store(&ostage, quant, oc, acc, group, out_px + oc, pitch);
            }
        }
        return SQZ_OK;
    }

    const int32_t kh = filter_dims->h;
    const int32_t kw = filter_dims->w;
    if (uses_patches(params, filter_dims)) {
        const int32_t len = patch_len(filter_dims);
        for (int32_t ox = 0; ox < output_dims->w; ox += SQZ_PIXELS) {
            const int32_t group = output_dims->w - ox < SQZ_PIXELS ? output_dims->w - ox
                                                                   : SQZ_PIXELS;
            for (int32_t k = 0; k < SQZ_PIXELS; ++k) {
                int16_t *patch = scratch + k * len;
                const int32_t ix0 = (ox + (k < group ? k : group - 1)) * params->stride.w -
                                    params->padding.w;
                for (int32_t ky = 0; ky < kh; ++ky) {
                    /* One filter row of the receptive field is kw * c contiguous values. */
                    widen_row(input_rows[ky], in_w, c, ix0, kw, zp, patch + ky * kw * c);
                }
                /* Zeros past the receptive field meet the filter row's zero padding. */
                for (int32_t i = kh * kw * c; i < len; ++i) {
                    patch[i] = 0;
                }
            }
            int8_t *out_px = output_row + (size_t)ox * params->output_pixel_stride;
            const int8_t *w = filter;
            for (int32_t oc = 0; oc < out_c; ++oc, w += len) {
                int32_t acc[SQZ_PIXELS] = {bias[oc], bias[oc], bias[oc], bias[oc]};
                dot4_s16_s8(scratch, scratch + len, scratch + 2 * len, scratch + 3 * len, w, len,
                            acc);
                requantize_store(&ostage, quant, oc, acc, group, out_px + oc, pitch);
            }
        }
        return SQZ_OK;
    }
    /* Dilated filters: widened input rows, one pixel and one tap row at a time. */
    const int32_t width = padded_width(params, filter_dims, output_dims);
    const size_t row_len = (size_t)width * c;
    for (int32_t ky = 0; ky < kh; ++ky) {
        widen_row(input_rows[ky], in_w, c, -params->padding.w, width, zp,
                  scratch + ky * row_len);
    }
    const int32_t taps = kh * kw * c;
    const size_t step = (size_t)params->stride.w * c; /* widened values between output pixels */
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        int8_t *out_px = output_row + (size_t)ox * params->output_pixel_stride;
        const int8_t *w = filter;
        for (int32_t oc = 0; oc < out_c; ++oc, w += taps) {
            int32_t acc = bias[oc];
            for (int32_t ky = 0; ky < kh; ++ky) {
                const int16_t *src = scratch + ky * row_len + (size_t)ox * step;
                const int8_t *wk = w + ky * kw * c;
                for (int32_t kx = 0; kx < kw; ++kx) {
                    acc += dot_s16_s8(src + (size_t)kx * params->dilation.w * c, wk + kx * c, c);
                }
            }
            requantize_store(&ostage, quant, oc, &acc, 1, out_px + oc, pitch);
        }
    }
    return SQZ_OK;
}

sqz_status sqz_conv_s8(const sqz_context *ctx, const sqz_conv_params *params,
                       const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                       const int8_t *input, const sqz_dims *filter_dims, const int8_t *filter,
                       const sqz_dims *bias_dims, const int32_t *bias,
                       const sqz_dims *output_dims, int8_t *output)
{
    const sqz_status st = check_args(ctx, params, quant, input_dims, filter_dims, filter,
                                     bias_dims, bias, output_dims, output);
    if (st != SQZ_OK || !input) {
        return st != SQZ_OK ? st : SQZ_ERR_ARG;
    }
    const size_t in_row = (size_t)input_dims->w * input_dims->c;
    const size_t out_row = (size_t)output_dims->w * params->output_pixel_stride;
    const int8_t *rows[SQZ_MAX_FILTER_ROWS];
    for (int32_t b = 0; b < output_dims->n; ++b) {
        const int8_t *in_b = input + (size_t)b * input_dims->h * in_row;
        for (int32_t oy = 0; oy < output_dims->h; ++oy) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (int32_t j = 0; j < filter_dims->h; ++j) {
                const int32_t iy = iy0 + j * params->dilation.h;
                rows[j] = (iy >= 0 && iy < input_dims->h) ? in_b + (size_t)iy * in_row : NULL;
            }
            const sqz_status rs = sqz_conv_s8_row(
                ctx, params, quant, input_dims, rows, filter_dims, filter, bias_dims, bias,
                output_dims, output + ((size_t)b * output_dims->h + oy) * out_row);
            if (rs != SQZ_OK) {
                return rs;
            }
        }
    }
    return SQZ_OK;
}

/* Call k of a layer making rows_per_call rows per call: rows [y0, y0 + n) of batch item b,
 * as the converter's row scheduler (converter/passes/stream.py, call_rows) assumes. */
static sqz_status conv_rows(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_conv_layer *l = nd->layer.conv;
    const sqz_conv_params *p = &l->params;
    const int32_t per = l->rows_per_call;
    const int32_t out_h = l->output_dims.h;
    const int32_t kh = l->filter_dims.h;
    if (!l->rows || per > SQZ_MAX_ROWS_PER_CALL || per * kh > SQZ_MAX_CALL_WINDOW_ROWS) {
        return SQZ_ERR_UNSUPPORTED;
    }
    const int32_t chunks = (out_h + per - 1) / per;
    const int32_t b = k / chunks;
    const int32_t y0 = (k % chunks) * per;
    const int32_t n = out_h - y0 < per ? out_h - y0 : per;
    const int8_t *in_rows[SQZ_MAX_CALL_WINDOW_ROWS];
    int8_t *out_rows[SQZ_MAX_ROWS_PER_CALL];
    for (int32_t r = 0; r < n; ++r) {
        const int32_t row = b * out_h + y0 + r;
        sqz_window_rows(arena, &nd->input, l->input_dims.h, out_h, row, p->stride.h,
                        p->padding.h, p->dilation.h, kh, in_rows + r * kh);
        out_rows[r] = (int8_t *)sqz_row_at(arena, &nd->output, row);
    }
    const sqz_context ctx = sqz_node_scratch(nd, arena);
    return l->rows(&ctx, p, &l->quant, &l->input_dims, in_rows, &l->filter_dims, l->filter,
                   &l->bias_dims, l->bias, n, &l->output_dims, out_rows);
}

sqz_status sqz_node_conv(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_conv_layer *l = nd->layer.conv;
    const sqz_conv_params *p = &l->params;
    const sqz_context ctx = sqz_node_scratch(nd, arena);
    const int8_t *rows[SQZ_MAX_FILTER_ROWS];
    if (l->filter_dims.h > SQZ_MAX_FILTER_ROWS) {
        return SQZ_ERR_UNSUPPORTED;
    }
    if (l->rows_per_call > 1) {
        return conv_rows(nd, k, arena);
    }
    sqz_window_rows(arena, &nd->input, l->input_dims.h, l->output_dims.h, k, p->stride.h,
                    p->padding.h, p->dilation.h, l->filter_dims.h, rows);
    /* The kernel variant the converter chose (and laid the weights out for). */
    return l->row(&ctx, p, &l->quant, &l->input_dims, rows, &l->filter_dims, l->filter,
                  &l->bias_dims, l->bias, &l->output_dims,
                  (int8_t *)sqz_row_at(arena, &nd->output, k));
}

/* What the two depthwise kernels with output-stage records share (runtime/depthwise_s8.c, the
 * portable one, and arch/armv7em/depthwise_s8_armv7em.c): the record layout, the argument
 * checks, the taps' pixel pointers and the output stage after the high multiply. Internal to
 * those kernels; the layout is documented with sqz_depthwise_s8_row in sqz/kernels.h.
 *
 * Why records. A depthwise output is a short sum (9 products for 3x3), so the output stage
 * costs as much as the products: the exact general requantization (fixedpoint.h) takes about
 * 30 instructions per output on a Cortex-M4, with 64-bit rounding. The converter proves, per
 * channel, that the accumulator times 2^left stays below 2^30 in magnitude
 * (converter/arch/portable.py, depthwise_records); then TFLite's
 * SaturatingRoundingDoublingHighMul(x, M) = floor((x * M + 2^30) / 2^31) equals
 * floor((2x * M + 2^31) / 2^32), the rounded high word of one 32x32 product (SMMULR on
 * Armv7E-M), and RoundingDivideByPOT of a value below 2^30 needs no 64-bit addition. */
#ifndef SQZ_RUNTIME_DEPTHWISE_H
#define SQZ_RUNTIME_DEPTHWISE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sqz/kernels.h"

/* Most taps (kh * kw) the kernels take; the converter refuses larger filters. */
#define SQZ_DW_MAX_TAPS 32
/* Bytes per channel record: {bias, M, left + 1, right} as int32. */
#define SQZ_DW_RECORD 16

/* Field k of channel ch's record. The records are 4-byte aligned (sqz_dw_check; every
 * target's weights are 16-byte aligned), which the compiler is told: without it, memcpy of an
 * int8_t array is four byte loads on the S3, whose 32-bit loads must be aligned. */
static inline int32_t sqz_dw_field(const int8_t *records, int32_t ch, int32_t k)
{
    const int8_t *p = records + (size_t)ch * SQZ_DW_RECORD + 4 * k;
#if defined(__GNUC__)
    p = (const int8_t *)__builtin_assume_aligned(p, 4);
#endif
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline int32_t sqz_dw_scratch_size(const sqz_dims *input_dims)
{
    return (input_dims->c + 3) / 4 * 4; /* one pixel of the input zero point */
}

static inline sqz_status sqz_dw_check(const sqz_context *ctx, const sqz_conv_params *params,
                                      const sqz_dims *input_dims,
                                      const int8_t *const *input_rows,
                                      const sqz_dims *filter_dims, const void *filter,
                                      const sqz_dims *bias_dims, const sqz_dims *output_dims,
                                      const int8_t *output_row)
{
    if (!ctx || !params || !input_dims || !input_rows || !filter_dims || !filter ||
        !bias_dims || !output_dims || !output_row) {
        return SQZ_ERR_ARG;
    }
    const int32_t c = input_dims->c;
    const int32_t kh = filter_dims->h;
    const int32_t kw = filter_dims->w;
    if (filter_dims->c != 1 || filter_dims->n != c || output_dims->c != c ||
        bias_dims->c != c || input_dims->n != output_dims->n ||
        params->output_pixel_stride < c || kh < 1 || kw < 1 || kh * kw > SQZ_DW_MAX_TAPS) {
        return SQZ_ERR_SHAPE;
    }
    if (params->stride.w < 1 || params->dilation.w < 1 || ((uintptr_t)filter & 3u) != 0) {
        return SQZ_ERR_ARG;
    }
    if (ctx->buf == NULL || ctx->size < sqz_dw_scratch_size(input_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    return SQZ_OK;
}

/* Fills the scratch with the input zero point (what an out-of-image tap reads) and returns it. */
static inline const int8_t *sqz_dw_zero_pixel(const sqz_context *ctx,
                                              const sqz_conv_params *params, int32_t c)
{
    int8_t *px = (int8_t *)ctx->buf;
    const int8_t zp = (int8_t)(-params->input_offset);
    for (int32_t ch = 0; ch < c; ++ch) {
        px[ch] = zp;
    }
    return px;
}

/* px[t]: the input pixel tap t of output pixel ox reads, or the zero-point pixel. */
static inline int32_t sqz_dw_taps(const sqz_conv_params *params, const sqz_dims *input_dims,
                                  const sqz_dims *filter_dims, const int8_t *const *input_rows,
                                  const int8_t *zero_px, int32_t ox, const int8_t **px)
{
    const int32_t ix0 = ox * params->stride.w - params->padding.w;
    const int32_t in_w = input_dims->w;
    const int32_t c = input_dims->c;
    int32_t t = 0;
    for (int32_t ky = 0; ky < filter_dims->h; ++ky) {
        const int8_t *row = input_rows[ky];
        for (int32_t kx = 0; kx < filter_dims->w; ++kx, ++t) {
            const int32_t ix = ix0 + kx * params->dilation.w;
            px[t] = (row && ix >= 0 && ix < in_w) ? row + (size_t)ix * c : zero_px;
        }
    }
    return t;
}

/* Whether every input row of the call is in the image (no top or bottom padding). */
static inline int sqz_dw_rows_in_image(const sqz_dims *filter_dims,
                                       const int8_t *const *input_rows)
{
    for (int32_t ky = 0; ky < filter_dims->h; ++ky) {
        if (!input_rows[ky]) {
            return 0;
        }
    }
    return 1;
}

/* Whether output pixel ox reads only in-image columns. */
static inline int sqz_dw_columns_in_image(const sqz_conv_params *params,
                                          const sqz_dims *input_dims,
                                          const sqz_dims *filter_dims, int32_t ox)
{
    const int32_t ix0 = ox * params->stride.w - params->padding.w;
    return ix0 >= 0 && ix0 + (filter_dims->w - 1) * params->dilation.w < input_dims->w;
}

/* px[] for output pixel ox, given px[] of pixel ox - 1 (`prev_inside`: it read no padding):
 * between two pixels that read no padding every tap moves by stride.w pixels, three
 * instructions a tap instead of recomputing its column and bounds. Returns the tap count. */
static inline int32_t sqz_dw_next_taps(const sqz_conv_params *params,
                                       const sqz_dims *input_dims,
                                       const sqz_dims *filter_dims,
                                       const int8_t *const *input_rows, const int8_t *zero_px,
                                       int rows_inside, int32_t ox, int *prev_inside,
                                       const int8_t **px)
{
    const int inside = rows_inside &&
                       sqz_dw_columns_in_image(params, input_dims, filter_dims, ox);
    const int32_t taps = filter_dims->h * filter_dims->w;
    if (inside && *prev_inside) {
        const size_t step = (size_t)params->stride.w * (size_t)input_dims->c;
        for (int32_t t = 0; t < taps; ++t) {
            px[t] += step;
        }
    } else {
        sqz_dw_taps(params, input_dims, filter_dims, input_rows, zero_px, ox, px);
    }
    *prev_inside = inside;
    return taps;
}

/* After the high multiply y = SaturatingRoundingDoublingHighMul: RoundingDivideByPOT by the
 * record's right shift (half added, one less below zero; |y| < 2^30 keeps it in 32 bits), the
 * output zero point and the clamp. */
static inline int8_t sqz_dw_finish(int32_t y, int32_t right, int32_t offset, int32_t lo,
                                   int32_t hi)
{
    const int32_t v =
        (right ? (y + (int32_t)(1u << (right - 1)) + (y >> 31)) >> right : y) + offset;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#endif

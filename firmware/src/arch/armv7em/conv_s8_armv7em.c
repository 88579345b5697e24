/* CONV_2D for Armv7E-M: dual 16-bit multiply-accumulates (SMLAD) over two output pixels and
 * two output channels at a time.
 *
 * Why this shape: SMLAD multiplies two int16 pairs per instruction, so both operands must be
 * int16 lanes. The input is widened once per output pixel into a patch (its receptive field, a
 * partial im2col of two pixels), in the lane order SXTB16 gives the weights: taps 0 and 2 in
 * the first word, 1 and 3 in the second. The weights stay int8 in flash and are widened in
 * registers, each widened word serving two pixels, each widened input word two output
 * channels. Per four taps of two pixels and two channels, that is 8 SMLADs for 16 MACs plus
 * two loads and four SXTB16s (mac_s8_armv7em.S).
 *
 * The output stage is TFLite's requantization, exactly: see requantize_fast() for the closed
 * form that folds both roundings and the output offset into one 64-bit multiply-accumulate. */
#include <stddef.h>

#include "../../runtime/fixedpoint.h"
#include "dsp.h"
#include "mac.h"
#include "sqz/kernels_armv7em.h"

static int32_t taps_of(const sqz_dims *filter_dims)
{
    return filter_dims->h * filter_dims->w * filter_dims->c;
}

/* Groups of four taps per output channel (the last one zero-padded). */
static int32_t quads_of(const sqz_dims *filter_dims)
{
    return (taps_of(filter_dims) + 3) / 4;
}

int32_t sqz_conv_s8_armv7em_filter_row_len(const sqz_conv_params *params,
                                           const sqz_dims *filter_dims)
{
    (void)params;
    return 4 * quads_of(filter_dims);
}

int32_t sqz_conv_s8_armv7em_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims)
{
    (void)params;
    (void)input_dims;
    (void)output_dims;
    return SQZ_PATCH_WORDS_PER_QUAD * (int32_t)sizeof(uint32_t) * quads_of(filter_dims);
}

/* ---- patches ---------------------------------------------------------------------------------
 *
 * A patch holds two pixels' receptive fields: for quad q (taps 4q .. 4q + 3), words 4q and
 * 4q + 1 belong to pixel 0, words 4q + 2 and 4q + 3 to pixel 1, so one LDM reads both. */

static uint32_t pack_lanes(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}

/* Channel counts that are multiples of 4: every quad lies inside one input pixel, so four
 * input bytes become a quad with one load and two SXTB16s. */
static void patch_pixel_c4(uint32_t *d, const int8_t *const *rows, int32_t kh, int32_t kw,
                           int32_t c, int32_t in_w, int32_t ix0, uint32_t zp2)
{
    for (int32_t ky = 0; ky < kh; ++ky) {
        const int8_t *row = rows[ky];
        for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t ix = ix0 + kx;
            if (row && ix >= 0 && ix < in_w) {
                const int8_t *s = row + (size_t)ix * c;
                for (int32_t ch = 0; ch < c; ch += 4, d += SQZ_PATCH_WORDS_PER_QUAD) {
                    const uint32_t x = sqz_load32(s + ch);
                    d[0] = sqz_sxtb16(x);
                    d[1] = sqz_sxtb16_ror8(x);
                }
            } else {
                /* Outside the input: the zero point, which the folded bias cancels. */
                for (int32_t ch = 0; ch < c; ch += 4, d += SQZ_PATCH_WORDS_PER_QUAD) {
                    d[0] = zp2;
                    d[1] = zp2;
                }
            }
        }
    }
}

/* Any channel count (conv1's 3, odd test shapes): tap by tap, quads may straddle pixels. */
static void patch_pixel_any(uint32_t *d, const int8_t *const *rows, int32_t kh, int32_t kw,
                            int32_t c, int32_t in_w, int32_t ix0, int32_t zp)
{
    int32_t v[4];
    int32_t n = 0;
    for (int32_t ky = 0; ky < kh; ++ky) {
        const int8_t *row = rows[ky];
        for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t ix = ix0 + kx;
            const int8_t *s = (row && ix >= 0 && ix < in_w) ? row + (size_t)ix * c : NULL;
            for (int32_t ch = 0; ch < c; ++ch) {
                v[n++] = s ? s[ch] : zp;
                if (n == 4) {
                    d[0] = pack_lanes(v[0], v[2]);
                    d[1] = pack_lanes(v[1], v[3]);
                    d += SQZ_PATCH_WORDS_PER_QUAD;
                    n = 0;
                }
            }
        }
    }
    if (n) {
        /* The filter rows are zero-padded alike, so these taps contribute nothing. */
        while (n < 4) {
            v[n++] = 0;
        }
        d[0] = pack_lanes(v[0], v[2]);
        d[1] = pack_lanes(v[1], v[3]);
    }
}

/* ---- output stage ----------------------------------------------------------------------------
 *
 * TFLite computes clamp(RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), r) +
 * offset). For a right shift r >= 2 (no left shift) and m >= 0 that equals
 *
 *     (acc * m + 2^30 + (2^(r-1) - [acc < 0]) * 2^31 + offset * 2^(31+r)) >> (31 + r)
 *
 * because nested floor divisions by powers of two compose, and the high-mul's result is
 * negative exactly when acc is (the one exception, a zero result, rounds to zero either way).
 * The saturating case needs m = INT32_MIN, which a multiplier never is. Split into words, the
 * constant is hi = (2 * offset + 1) << (r - 2) and lo = 2^30, and acc < 0 subtracts 2^31:
 * lo becomes 0xC0000000 with a borrow from hi. One SMLAL then does the multiply and every
 * rounding, and the result is the high word shifted right by r - 1. For r <= 22 the sum stays
 * below 2^63 whatever acc is. Other shifts take the reference formula (sqz_requantize). */
#define FAST_MIN_RIGHT_SHIFT 2
#define FAST_MAX_RIGHT_SHIFT 22

typedef struct {
    int32_t mult;
    int32_t hi;    /* (2 * offset + 1) << (r - 2) */
    int32_t shift; /* r - 1 */
} fast_quant;

static inline fast_quant fast_quant_of(const sqz_per_channel_quant *q, int32_t oc,
                                       int32_t twice_offset_plus_one)
{
    fast_quant f;
    f.mult = q->multiplier[oc];
    f.shift = -(int32_t)q->shift[oc] - 1;
    f.hi = (int32_t)((uint32_t)twice_offset_plus_one << f.shift) >> 1;
    return f;
}

static inline int32_t requantize_fast(int32_t acc, const fast_quant *f)
{
    const int32_t neg = acc >> 31; /* 0 or -1 */
    const uint32_t lo = 0x40000000u ^ ((uint32_t)neg << 31);
    const uint32_t hi = (uint32_t)(f->hi + neg);
    const int64_t y = (int64_t)(((uint64_t)hi << 32) | lo) + (int64_t)acc * f->mult;
    return sqz_ssat8((int32_t)(y >> 32) >> f->shift);
}

static int all_fast(const sqz_per_channel_quant *q, int32_t n)
{
    for (int32_t oc = 0; oc < n; ++oc) {
        const int32_t r = -(int32_t)q->shift[oc];
        if (r < FAST_MIN_RIGHT_SHIFT || r > FAST_MAX_RIGHT_SHIFT || q->multiplier[oc] < 0) {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    int32_t offset, act_min, act_max;
    int fast;  /* every channel takes requantize_fast */
    int clamp; /* the activation is narrower than int8 */
} out_stage;

static inline int8_t finish(const out_stage *o, const sqz_per_channel_quant *q, int32_t oc,
                            const fast_quant *f, int32_t acc)
{
    int32_t v;
    if (o->fast) {
        v = requantize_fast(acc, f);
    } else {
        v = sqz_requantize(acc, q->multiplier[oc], q->shift[oc]) + o->offset;
    }
    if (o->clamp || !o->fast) {
        v = sqz_clamp(v, o->act_min, o->act_max);
    }
    return (int8_t)v;
}

/* ---- the row kernel ------------------------------------------------------------------------ */

static sqz_status check_args(const sqz_context *ctx, const sqz_conv_params *params,
                             const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                             const int8_t *const *input_rows, const sqz_dims *filter_dims,
                             const void *filter, const sqz_dims *bias_dims,
                             const int32_t *bias, const sqz_dims *output_dims,
                             const void *output)
{
    if (!ctx || !params || !quant || !input_dims || !input_rows || !filter_dims || !filter ||
        !bias_dims || !bias || !output_dims || !output || !quant->multiplier ||
        !quant->shift) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != filter_dims->c || output_dims->c != filter_dims->n ||
        bias_dims->c != output_dims->c || input_dims->n != output_dims->n ||
        params->output_pixel_stride < output_dims->c) {
        return SQZ_ERR_SHAPE;
    }
    if (params->stride.h < 1 || params->stride.w < 1 || filter_dims->h < 1 ||
        filter_dims->w < 1 || filter_dims->h > SQZ_MAX_FILTER_ROWS) {
        return SQZ_ERR_ARG;
    }
    if (params->dilation.h != 1 || params->dilation.w != 1) {
        return SQZ_ERR_UNSUPPORTED; /* the converter gives dilated convs the portable kernel */
    }
    if (ctx->buf == NULL || ((uintptr_t)ctx->buf & 3u) != 0 ||
        ctx->size < sqz_conv_s8_armv7em_scratch_size(params, input_dims, filter_dims,
                                                     output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    return SQZ_OK;
}

sqz_status sqz_conv_s8_armv7em_row(const sqz_context *ctx, const sqz_conv_params *params,
                                   const sqz_per_channel_quant *quant,
                                   const sqz_dims *input_dims,
                                   const int8_t *const *input_rows,
                                   const sqz_dims *filter_dims, const void *filter_data,
                                   const sqz_dims *bias_dims, const int32_t *bias,
                                   const sqz_dims *output_dims, int8_t *output_row)
{
    const sqz_status st = check_args(ctx, params, quant, input_dims, input_rows, filter_dims,
                                     filter_data, bias_dims, bias, output_dims, output_row);
    if (st != SQZ_OK) {
        return st;
    }
    const int8_t *filter = (const int8_t *)filter_data;
    uint32_t *patch = (uint32_t *)ctx->buf;
    const int32_t kh = filter_dims->h;
    const int32_t kw = filter_dims->w;
    const int32_t c = input_dims->c;
    const int32_t in_w = input_dims->w;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t quads = quads_of(filter_dims);
    const size_t row_len = 4 * (size_t)quads;
    const int32_t zp = -params->input_offset;
    const uint32_t zp2 = pack_lanes(zp, zp);
    const size_t pitch = (size_t)params->output_pixel_stride;
    const int32_t step = params->stride.w;
    const int32_t pad = params->padding.w;
    const sqz_mac_fn mac2 = sqz_mac_2x2_for(filter);
    const sqz_mac_fn mac1 = sqz_mac_1x2_for(filter);
    out_stage o;
    o.offset = params->output_offset;
    o.act_min = params->activation.min;
    o.act_max = params->activation.max;
    o.fast = all_fast(quant, out_c);
    o.clamp = o.act_min > INT8_MIN || o.act_max < INT8_MAX;
    const int32_t k1 = 2 * o.offset + 1;

    for (int32_t ox = 0; ox < out_w; ox += 2) {
        const int two = ox + 1 < out_w;
        for (int32_t p = 0; p < 1 + two; ++p) {
            uint32_t *d = patch + 2 * p;
            const int32_t ix0 = (ox + p) * step - pad;
            if ((c & 3) == 0) {
                patch_pixel_c4(d, input_rows, kh, kw, c, in_w, ix0, zp2);
            } else {
                patch_pixel_any(d, input_rows, kh, kw, c, in_w, ix0, zp);
            }
        }
        int8_t *o0 = output_row + (size_t)ox * pitch;
        int8_t *o1 = o0 + pitch;
        const int8_t *w = filter;
        int32_t oc = 0;
        for (; oc + 1 < out_c; oc += 2, w += 2 * row_len) {
            int32_t acc[4] = {bias[oc], bias[oc + 1], 0, 0};
            fast_quant f0 = {0, 0, 0}, f1 = {0, 0, 0};
            if (o.fast) {
                f0 = fast_quant_of(quant, oc, k1);
                f1 = fast_quant_of(quant, oc + 1, k1);
            }
            if (two) {
                mac2(patch, w, quads, acc);
                o1[oc] = finish(&o, quant, oc, &f0, acc[2]);
                o1[oc + 1] = finish(&o, quant, oc + 1, &f1, acc[3]);
            } else {
                mac1(patch, w, quads, acc);
            }
            o0[oc] = finish(&o, quant, oc, &f0, acc[0]);
            o0[oc + 1] = finish(&o, quant, oc + 1, &f1, acc[1]);
        }
        if (oc < out_c) {
            /* An odd last output channel: its filter row follows the pairs alone. */
            int32_t acc[2] = {bias[oc], bias[oc]};
            sqz_mac_single_oc(patch, w, quads, two, acc);
            fast_quant f = {0, 0, 0};
            if (o.fast) {
                f = fast_quant_of(quant, oc, k1);
            }
            o0[oc] = finish(&o, quant, oc, &f, acc[0]);
            if (two) {
                o1[oc] = finish(&o, quant, oc, &f, acc[1]);
            }
        }
    }
    return SQZ_OK;
}

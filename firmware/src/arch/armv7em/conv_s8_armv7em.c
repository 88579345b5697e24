/* CONV_2D for Armv7E-M: dual 16-bit multiply-accumulates (SMLAD) over two output pixels and
 * two output channels at a time.
 *
 * Why this shape: SMLAD multiplies two int16 pairs per instruction, so both operands must be
 * int16 lanes. The input is widened once per output pixel into a patch (its receptive field, a
 * partial im2col of two pixels) in the lane order SXTB16 gives the weights: taps 0 and 2 in
 * one word, 1 and 3 in the next. The weights stay int8 in flash and are widened in registers,
 * each widened word serving two pixels, each patch word two output channels: per four taps of
 * two pixels and two channels, 8 SMLADs for 16 MACs plus two loads and four SXTB16s
 * (mac_s8_armv7em.S, or mac.c in C).
 *
 * Scratch: the patch (16 bytes per four taps), the per-channel requantization constants (12
 * bytes per output channel), and for channel counts that are not multiples of 4 the receptive
 * field's bytes gathered before widening (4 bytes per four taps). */
#include <stddef.h>

#include "../../runtime/fixedpoint.h"
#include "dsp.h"
#include "mac.h"
#include "sqz/kernels_armv7em.h"

#if SQZ_DSP_NATIVE
/* mac_s8_armv7em.S addresses the job's seven words by offset. */
typedef char sqz_pair_job_is_seven_words[sizeof(sqz_pair_job) == 7 * 4 ? 1 : -1];
#endif

static int32_t quads_of(const sqz_dims *filter_dims)
{
    return (filter_dims->h * filter_dims->w * filter_dims->c + 3) / 4;
}

int32_t sqz_conv_s8_armv7em_filter_row_len(const sqz_conv_params *params,
                                           const sqz_dims *filter_dims)
{
    (void)params;
    return 4 * quads_of(filter_dims);
}

static size_t patch_bytes(int32_t quads)
{
    return SQZ_PATCH_WORDS_PER_QUAD * sizeof(uint32_t) * (size_t)quads;
}

int32_t sqz_conv_s8_armv7em_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims)
{
    (void)params;
    const int32_t quads = quads_of(filter_dims);
    const int32_t gather = (input_dims->c & 3) ? 4 * quads : 0;
    return (int32_t)patch_bytes(quads) + (int32_t)sizeof(sqz_fast_quant) * output_dims->c +
           gather;
}

/* ---- patches ---------------------------------------------------------------------------------
 *
 * For quad q (taps 4q .. 4q + 3), words 4q and 4q + 1 belong to pixel 0, words 4q + 2 and
 * 4q + 3 to pixel 1, so that one LDM reads a quad of both pixels. */

static uint32_t pack_lanes(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}

/* Widens `quads` groups of four bytes into the patch words of one pixel. */
static void widen_quads(uint32_t *d, const int8_t *s, int32_t quads)
{
    for (int32_t q = 0; q < quads; ++q, s += 4, d += SQZ_PATCH_WORDS_PER_QUAD) {
        const uint32_t x = sqz_load32(s);
        d[0] = sqz_sxtb16(x);
        d[1] = sqz_sxtb16_ror8(x);
    }
}

static void fill_quads(uint32_t *d, uint32_t zp2, int32_t quads)
{
    for (int32_t q = 0; q < quads; ++q, d += SQZ_PATCH_WORDS_PER_QUAD) {
        d[0] = zp2;
        d[1] = zp2;
    }
}

typedef struct {
    const int8_t *const *rows; /* one per filter row, NULL in the padding */
    int32_t kh, kw, c, in_w;
    int32_t zp;   /* the input zero point: what lies outside the input */
    uint32_t zp2; /* the zero point in both lanes */
    int8_t *gather; /* channel counts that are not multiples of 4 */
} field;

/* Channel counts that are multiples of 4: each quad lies inside one input pixel, so a pixel's
 * channels widen straight from the input, and runs of pixels inside a row in one go. */
static void patch_pixel_c4(uint32_t *d, const field *f, int32_t ix0)
{
    const int32_t q_px = f->c / 4;
    const int32_t lo = ix0 < 0 ? -ix0 : 0; /* taps left of the input */
    const int32_t hi = f->in_w - ix0 < f->kw ? f->in_w - ix0 : f->kw;
    for (int32_t ky = 0; ky < f->kh; ++ky, d += SQZ_PATCH_WORDS_PER_QUAD * q_px * f->kw) {
        const int8_t *row = f->rows[ky];
        if (!row || hi <= lo) {
            fill_quads(d, f->zp2, q_px * f->kw);
            continue;
        }
        fill_quads(d, f->zp2, q_px * lo);
        widen_quads(d + SQZ_PATCH_WORDS_PER_QUAD * q_px * lo, row + (size_t)(ix0 + lo) * f->c,
                    q_px * (hi - lo));
        fill_quads(d + SQZ_PATCH_WORDS_PER_QUAD * q_px * hi, f->zp2, q_px * (f->kw - hi));
    }
}

/* Any channel count (conv1's 3): the receptive field's bytes are gathered into one run (the
 * zero point outside the input, then any value up to the quad boundary: the filter rows are
 * zero-padded there), then widened four at a time. */
static void patch_pixel_any(uint32_t *d, const field *f, int32_t ix0, int32_t quads)
{
    int8_t *g = f->gather;
    const int32_t c = f->c;
    for (int32_t ky = 0; ky < f->kh; ++ky) {
        const int8_t *row = f->rows[ky];
        for (int32_t kx = 0; kx < f->kw; ++kx, g += c) {
            const int32_t ix = ix0 + kx;
            if (row && ix >= 0 && ix < f->in_w) {
                const int8_t *s = row + (size_t)ix * c;
                for (int32_t ch = 0; ch < c; ++ch) {
                    g[ch] = s[ch];
                }
            } else {
                for (int32_t ch = 0; ch < c; ++ch) {
                    g[ch] = (int8_t)f->zp;
                }
            }
        }
    }
    const int32_t taps = f->kh * f->kw * c;
    for (int32_t i = taps; i < 4 * quads; ++i) {
        f->gather[i] = 0;
    }
    widen_quads(d, f->gather, quads);
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
 * lo becomes 0xC0000000 with a borrow from hi. One SMLAL then does the multiply and both
 * roundings (sqz_requantize_fast in mac.h), and the result is its high word shifted right by
 * r - 1. For r <= 22 the sum stays below 2^63 whatever acc is. Layers with other shifts take
 * the reference formula (sqz_requantize). */
#define FAST_MIN_RIGHT_SHIFT 2
#define FAST_MAX_RIGHT_SHIFT 22

/* The constants of every channel, or 0 if one channel cannot take the fast form. */
static int fast_quants(const sqz_per_channel_quant *q, int32_t n, int32_t offset,
                       sqz_fast_quant *out)
{
    const uint32_t k = (uint32_t)(2 * offset + 1);
    for (int32_t oc = 0; oc < n; ++oc) {
        const int32_t r = -(int32_t)q->shift[oc];
        if (r < FAST_MIN_RIGHT_SHIFT || r > FAST_MAX_RIGHT_SHIFT || q->multiplier[oc] < 0) {
            return 0;
        }
        out[oc].mult = q->multiplier[oc];
        out[oc].shift = r - 1;
        out[oc].hi = (int32_t)(k << (r - 2));
    }
    return 1;
}

/* A narrower activation than int8 (ReLU with a zero point above -128, ReLU6): the fast path
 * saturates to int8, and this clamps a pixel's channels, four per instruction pair. */
static void clamp_pixel(int8_t *o, int32_t n, int32_t lo, int32_t hi)
{
    const uint32_t lo4 = (uint32_t)(uint8_t)(int8_t)lo * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)(int8_t)hi * 0x01010101u;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        sqz_store32(o + i, sqz_min_s8x4(sqz_max_s8x4(sqz_load32(o + i), lo4), hi4));
    }
    for (; i < n; ++i) {
        o[i] = (int8_t)sqz_clamp(o[i], lo, hi);
    }
}

static int8_t requantize_general(const sqz_conv_params *p, const sqz_per_channel_quant *q,
                                 int32_t oc, int32_t acc)
{
    const int32_t v = sqz_requantize(acc, q->multiplier[oc], q->shift[oc]) + p->output_offset;
    return (int8_t)sqz_clamp(v, p->activation.min, p->activation.max);
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
        params->output_pixel_stride < output_dims->c || output_dims->c < 1) {
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
    const int32_t quads = quads_of(filter_dims);
    const size_t row_len = 4 * (size_t)quads;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t pairs = out_c / 2;
    const size_t pitch = (size_t)params->output_pixel_stride;
    uint8_t *scratch = (uint8_t *)ctx->buf;
    uint32_t *patch = (uint32_t *)scratch;
    sqz_fast_quant *fq = (sqz_fast_quant *)(scratch + patch_bytes(quads));

    field f;
    f.rows = input_rows;
    f.kh = filter_dims->h;
    f.kw = filter_dims->w;
    f.c = input_dims->c;
    f.in_w = input_dims->w;
    f.zp = -params->input_offset;
    f.zp2 = pack_lanes(f.zp, f.zp);
    f.gather = (int8_t *)(fq + out_c);

    const int fast = fast_quants(quant, out_c, params->output_offset, fq);
    const int clamp = params->activation.min > INT8_MIN || params->activation.max < INT8_MAX;
    sqz_pair_fn pairs2 = sqz_armv7em_pairs_2px_c;
    sqz_pair_fn pairs1 = sqz_armv7em_pairs_1px_c;
#if SQZ_DSP_NATIVE
    if (((uintptr_t)filter & 3u) == 0) {
        pairs2 = sqz_armv7em_pairs_2px_asm;
        pairs1 = sqz_armv7em_pairs_1px_asm;
    }
#endif
    const int8_t *single_w = filter + 2 * (size_t)pairs * row_len; /* an odd last channel's */

    for (int32_t ox = 0; ox < out_w; ox += 2) {
        const int two = ox + 1 < out_w;
        for (int32_t p = 0; p < 1 + two; ++p) {
            const int32_t ix0 = (ox + p) * params->stride.w - params->padding.w;
            if ((f.c & 3) == 0) {
                patch_pixel_c4(patch + 2 * p, &f, ix0);
            } else {
                patch_pixel_any(patch + 2 * p, &f, ix0, quads);
            }
        }
        int8_t *o0 = output_row + (size_t)ox * pitch;
        int8_t *o1 = o0 + pitch;
        if (fast) {
            if (pairs > 0) {
                const sqz_pair_job job = {patch, quads, bias, fq, o0, (int32_t)pitch, pairs};
                (two ? pairs2 : pairs1)(&job, filter);
            }
            if (out_c & 1) {
                const int32_t oc = out_c - 1;
                int32_t acc[2] = {bias[oc], bias[oc]};
                sqz_armv7em_dot_single(patch, single_w, quads, two, acc);
                o0[oc] = (int8_t)sqz_requantize_fast(acc[0], &fq[oc]);
                if (two) {
                    o1[oc] = (int8_t)sqz_requantize_fast(acc[1], &fq[oc]);
                }
            }
            if (clamp) {
                clamp_pixel(o0, out_c, params->activation.min, params->activation.max);
                if (two) {
                    clamp_pixel(o1, out_c, params->activation.min, params->activation.max);
                }
            }
            continue;
        }
        /* Shifts outside the fast form's range: the reference formula, channel by channel. */
        const int8_t *w = filter;
        int32_t oc = 0;
        for (; oc + 1 < out_c; oc += 2, w += 2 * row_len) {
            int32_t acc[4] = {bias[oc], bias[oc + 1], 0, 0};
            sqz_armv7em_dot_pair(patch, w, quads, two, acc);
            o0[oc] = requantize_general(params, quant, oc, acc[0]);
            o0[oc + 1] = requantize_general(params, quant, oc + 1, acc[1]);
            if (two) {
                o1[oc] = requantize_general(params, quant, oc, acc[2]);
                o1[oc + 1] = requantize_general(params, quant, oc + 1, acc[3]);
            }
        }
        if (oc < out_c) {
            int32_t acc[2] = {bias[oc], bias[oc]};
            sqz_armv7em_dot_single(patch, w, quads, two, acc);
            o0[oc] = requantize_general(params, quant, oc, acc[0]);
            if (two) {
                o1[oc] = requantize_general(params, quant, oc, acc[1]);
            }
        }
    }
    return SQZ_OK;
}

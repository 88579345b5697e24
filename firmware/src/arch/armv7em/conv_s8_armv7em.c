/* CONV_2D for Armv7E-M: dual 16-bit multiply-accumulates (SMLAD) over three output pixels and
 * two output channels at a time.
 *
 * Why this shape: SMLAD multiplies two int16 pairs per instruction, so both operands must be
 * int16 lanes. A block of output pixels' receptive fields is widened once into patches (a
 * partial im2col), in the lane order SXTB16 gives: taps 0 and 2 in one word, 1 and 3 in the
 * next. The int8 weights stay in flash as they are: per four taps of a channel pair, the two
 * weight words are widened in registers (four SXTB16) and used by all three pixels of a triple,
 * so the weights are never copied and the widening costs four instructions per 24
 * multiply-accumulates (mac_s8_armv7em.S; mac.c is the same in C). Three pixels by two channels
 * is the largest block the Cortex-M4's registers hold with both weight words widened. Patch
 * values are doubled, which costs nothing in the loop and gives the four-instruction output
 * stage of mac.h.
 *
 * Scratch: a block's patches (24 bytes per four taps per pixel triple), and for channel counts
 * that are not multiples of 4 the receptive field's bytes gathered before widening (4 bytes per
 * four taps). */
#include <stddef.h>
#include <string.h>

#include "../../runtime/fixedpoint.h"
#include "dsp.h"
#include "mac.h"
#include "sqz/kernels_armv7em.h"

#if SQZ_DSP_NATIVE
/* mac_s8_armv7em.S addresses the job's sixteen words by offset. */
typedef char sqz_pair_job_is_sixteen_words[sizeof(sqz_pair_job) == 16 * 4 ? 1 : -1];
#endif

/* The scratch asked for: patches of at most this many bytes per block of pixels, but at least
 * BLOCK_MIN_TRIPLES pixel triples. Each block costs one call per channel pair, so a block
 * should hold a few triples, but the scratch also counts in the arena. The kernel itself takes
 * blocks as large as the scratch it is given allows, one pixel triple at the least. */
#define BLOCK_BYTES 8192
#define BLOCK_MIN_TRIPLES 2

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

/* Bytes of one pixel triple's patch. */
static int32_t group_bytes(int32_t quads)
{
    return SQZ_PATCH_WORDS_PER_QUAD * (int32_t)sizeof(uint32_t) * quads;
}

/* Pixel triples in a row of `out_w` pixels. */
static int32_t groups_of(int32_t out_w)
{
    return (out_w + SQZ_PIXELS_PER_GROUP - 1) / SQZ_PIXELS_PER_GROUP;
}

/* Scratch besides the patches: for channel counts that are not multiples of 4, the receptive
 * field's bytes gathered before widening. */
static int32_t fixed_bytes(const sqz_dims *input_dims, int32_t quads)
{
    return (input_dims->c & 3) ? 4 * quads : 0;
}

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

int32_t sqz_conv_s8_armv7em_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims)
{
    (void)params;
    const int32_t quads = quads_of(filter_dims);
    int32_t groups = BLOCK_BYTES / group_bytes(quads);
    groups = groups < BLOCK_MIN_TRIPLES ? BLOCK_MIN_TRIPLES : groups;
    groups = min_i32(groups, groups_of(output_dims->w));
    return group_bytes(quads) * groups + fixed_bytes(input_dims, quads);
}

int32_t sqz_conv_s8_armv7em_min_scratch_size(const sqz_conv_params *params,
                                             const sqz_dims *input_dims,
                                             const sqz_dims *filter_dims,
                                             const sqz_dims *output_dims)
{
    (void)params;
    (void)output_dims;
    const int32_t quads = quads_of(filter_dims);
    return group_bytes(quads) + fixed_bytes(input_dims, quads);
}

/* ---- patches ---------------------------------------------------------------------------------
 *
 * For quad q (taps 4q .. 4q + 3) of a pixel triple, words 6q + 2k and 6q + 2k + 1 belong to
 * pixel k, so that a quad of all three pixels lies in 24 consecutive bytes. */

static uint32_t pack_lanes(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}

/* Widens `quads` groups of four bytes into the patch words of one pixel, doubled. */
static void widen_quads(uint32_t *d, const int8_t *s, int32_t quads)
{
    if (quads > 0) {
        sqz_armv7em_widen_patch(d, s, quads);
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
    uint32_t zp2; /* the zero point in both lanes, doubled */
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

/* Short copies and fills, words first; the tails are written out so that the compiler does not
 * turn them into library calls, which cost more than these few bytes. */
static inline void copy_bytes(int8_t *d, const int8_t *s, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        sqz_store32(d + i, sqz_load32(s + i));
    }
    if (i + 2 <= n) {
        memcpy(d + i, s + i, 2);
        i += 2;
    }
    if (i < n) {
        d[i] = s[i];
    }
}

static inline void fill_bytes(int8_t *d, int8_t v, size_t n)
{
    const uint32_t v4 = (uint32_t)(uint8_t)v * 0x01010101u;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        sqz_store32(d + i, v4);
    }
    if (i + 2 <= n) {
        memcpy(d + i, &v4, 2);
        i += 2;
    }
    if (i < n) {
        d[i] = v;
    }
}

/* Any channel count (conv1's 3): the receptive field's bytes are gathered into one run, row
 * segment by row segment (the zero point outside the input, then zeros up to the quad
 * boundary, where the filter rows are zero-padded too), then widened four at a time. */
static void patch_pixel_any(uint32_t *d, const field *f, int32_t ix0, int32_t quads)
{
    const size_t c = (size_t)f->c;
    const size_t seg = (size_t)f->kw * c;
    const int32_t lo = ix0 < 0 ? -ix0 : 0; /* taps left of the input */
    const int32_t hi = f->in_w - ix0 < f->kw ? f->in_w - ix0 : f->kw;
    const int8_t zp = (int8_t)f->zp;
    int8_t *g = f->gather;
    /* The taps below overwrite all but the padding of the last quad. */
    sqz_store32(g + 4 * (size_t)(quads - 1), 0);
    for (int32_t ky = 0; ky < f->kh; ++ky, g += seg) {
        const int8_t *row = f->rows[ky];
        if (row && lo == 0 && hi == f->kw) {
            copy_bytes(g, row + (size_t)ix0 * c, seg);
        } else if (!row || hi <= lo) {
            fill_bytes(g, zp, seg);
        } else {
            fill_bytes(g, zp, (size_t)lo * c);
            copy_bytes(g + (size_t)lo * c, row + (size_t)(ix0 + lo) * c,
                       (size_t)(hi - lo) * c);
            fill_bytes(g + (size_t)hi * c, zp, (size_t)(f->kw - hi) * c);
        }
    }
    widen_quads(d, f->gather, quads);
}

/* ---- output stage ---------------------------------------------------------------------------
 *
 * The channel pairs requantize with sqz_requantize_doubled (mac.h): a right shift of 1 to 22,
 * a non-negative multiplier and accumulators below 2^30 in magnitude, which every layer of a
 * real network meets. A channel pair that does not takes the reference formula (sqz_requantize);
 * the check is made as each pair's constants are set up, so it costs nothing more. */
#define FAST_MIN_RIGHT_SHIFT 1
#define FAST_MAX_RIGHT_SHIFT 22

/* Channel oc's constants for the closed-form output stage (its bias doubled into *bias2), or 0
 * when the channel cannot take it. `room`: how large |bias| may be, given the taps. */
static int quant2_of(const sqz_per_channel_quant *q, const int32_t *bias, int32_t oc,
                     int32_t offset, int64_t room, sqz_quant2 *f, int32_t *bias2)
{
    const int32_t r = -(int32_t)q->shift[oc];
    const int32_t m = q->multiplier[oc];
    const int64_t b = bias[oc] < 0 ? -(int64_t)bias[oc] : bias[oc];
    if (r < FAST_MIN_RIGHT_SHIFT || r > FAST_MAX_RIGHT_SHIFT || m < 0 || b >= room) {
        return 0;
    }
    f->mult = m;
    f->shift = r;
    f->hi2 = (int32_t)((uint32_t)(2 * offset + 1) << (r - 1));
    *bias2 = 2 * bias[oc];
    return 1;
}

/* A narrower activation than int8 (ReLU with a zero point above -128, ReLU6): the pair loop
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
        params->output_pixel_stride < output_dims->c || output_dims->c < 1 ||
        output_dims->w < 1) {
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
        ctx->size < sqz_conv_s8_armv7em_min_scratch_size(params, input_dims, filter_dims,
                                                         output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    return SQZ_OK;
}

/* bias + the sum of the doubled patch's products, halved (exact: the sum is even). */
static int32_t undouble(int32_t bias, int32_t sum2)
{
    return (int32_t)((uint32_t)bias + (uint32_t)(sum2 >> 1));
}

/* One output channel (an odd last one) for one pixel. */
static void single_channel(const sqz_conv_params *params, const sqz_per_channel_quant *quant,
                           const int8_t *w, int32_t bias, int32_t oc, int32_t quads,
                           const uint32_t *slot, int8_t *o)
{
    int32_t acc[1] = {0};
    sqz_armv7em_dot_single(slot, w, quads, acc);
    o[oc] = requantize_general(params, quant, oc, undouble(bias, acc[0]));
}

/* The patch words of pixel k of a block. */
static const uint32_t *slot_of(const uint32_t *patch, int32_t quads, int32_t k)
{
    return patch + (size_t)(k / SQZ_PIXELS_PER_GROUP) * SQZ_PATCH_WORDS_PER_QUAD * quads +
           2 * (k % SQZ_PIXELS_PER_GROUP);
}

/* The general output stage for one channel pair (oc, oc + 1) over a block's pixels: the
 * reference formula. */
static void general_pair(const sqz_conv_params *params, const sqz_per_channel_quant *quant,
                         const int8_t *w, const int32_t *bias, int32_t oc, int32_t quads,
                         const uint32_t *patch, int32_t n_px, int8_t *out, size_t pitch)
{
    for (int32_t k = 0; k < n_px; ++k) {
        int8_t *o = out + (size_t)k * pitch;
        int32_t acc[2] = {0, 0};
        sqz_armv7em_dot_pair(slot_of(patch, quads, k), w, quads, acc);
        o[oc] = requantize_general(params, quant, oc, undouble(bias[oc], acc[0]));
        o[oc + 1] = requantize_general(params, quant, oc + 1, undouble(bias[oc + 1], acc[1]));
    }
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
    const size_t pitch = (size_t)params->output_pixel_stride;
    /* Pixel triples per block: as many as the scratch holds (at least one, checked above). */
    const int32_t block = min_i32((ctx->size - fixed_bytes(input_dims, quads)) /
                                      group_bytes(quads), groups_of(out_w));
    const size_t group_words = SQZ_PATCH_WORDS_PER_QUAD * (size_t)quads;
    uint32_t *patch = (uint32_t *)ctx->buf;

    field f;
    f.rows = input_rows;
    f.kh = filter_dims->h;
    f.kw = filter_dims->w;
    f.c = input_dims->c;
    f.in_w = input_dims->w;
    f.zp = -params->input_offset;
    f.zp2 = pack_lanes(2 * f.zp, 2 * f.zp);
    f.gather = (int8_t *)(patch + (size_t)block * group_words);

    /* |acc| <= |bias| + taps * 128 * 128: int8 inputs times int8 weights. */
    const int64_t room = ((int64_t)1 << 30) - (int64_t)f.kh * f.kw * f.c * 128 * 128;
    const int clamp = params->activation.min > INT8_MIN || params->activation.max < INT8_MAX;
    void (*pair_fn)(const sqz_pair_job *) = sqz_armv7em_pair_c;
#if SQZ_DSP_NATIVE
    if (((uintptr_t)filter & 3u) == 0) { /* scratch is word-aligned too (checked above) */
        pair_fn = sqz_armv7em_pair_asm;
    }
#endif

    const int32_t block_px = SQZ_PIXELS_PER_GROUP * block;
    for (int32_t px0 = 0; px0 < out_w; px0 += block_px) {
        const int32_t n_px = out_w - px0 < block_px ? out_w - px0 : block_px;
        for (int32_t k = 0; k < n_px; ++k) {
            uint32_t *d = (uint32_t *)slot_of(patch, quads, k);
            const int32_t ix0 = (px0 + k) * params->stride.w - params->padding.w;
            if ((f.c & 3) == 0) {
                patch_pixel_c4(d, &f, ix0);
            } else {
                patch_pixel_any(d, &f, ix0, quads);
            }
        }
        int8_t *out = output_row + (size_t)px0 * pitch;
        sqz_pair_job job;
        job.quads = quads;
        job.pitch = (int32_t)pitch;
        job.patch = patch;
        job.triples = n_px / SQZ_PIXELS_PER_GROUP;
        job.tail = n_px % SQZ_PIXELS_PER_GROUP;
        job.reserved = 0;
        const int8_t *w = filter;
        int32_t oc = 0;
        for (; oc + 1 < out_c; oc += 2, w += 2 * row_len) {
            if (!quant2_of(quant, bias, oc, params->output_offset, room, &job.q0, &job.bias0) ||
                !quant2_of(quant, bias, oc + 1, params->output_offset, room, &job.q1,
                           &job.bias1)) {
                general_pair(params, quant, w, bias, oc, quads, patch, n_px, out, pitch);
                continue;
            }
            job.filter = w;
            job.out = out + oc;
            pair_fn(&job);
        }
        if (oc < out_c) {
            /* An odd last output channel: its filter row follows the pairs alone. */
            for (int32_t k = 0; k < n_px; ++k) {
                single_channel(params, quant, w, bias[oc], oc, quads, slot_of(patch, quads, k),
                               out + (size_t)k * pitch);
            }
        }
        if (clamp) {
            for (int32_t k = 0; k < n_px; ++k) {
                clamp_pixel(out + (size_t)k * pitch, out_c, params->activation.min,
                            params->activation.max);
            }
        }
    }
    return SQZ_OK;
}

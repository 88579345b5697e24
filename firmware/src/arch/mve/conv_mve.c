/* CONV_2D for Helium (MVE): 16-tap dot products (VMLADAVA) over two output pixels and four
 * output channels at a time.
 *
 * Why this shape: VMLADAVA multiplies sixteen int8 pairs and adds them into a general-purpose
 * register, so the dot products need no widening at all, and eight sums fit the eight even
 * registers it can write. Two pixels by four channels loads 6 vectors per 8 VMLADAVA; the loop
 * (conv_mve_loop.S) is 14 instructions per 128 multiply-accumulates. With one or two 16-byte
 * chunks per pixel the weights stay in registers instead (its k1 and k2 loops).
 *
 * Inputs: a 1x1 conv of stride 1 over a multiple of 16 channels reads its input row in place
 * (pixel i's channels are one run of 16-byte chunks). Every other conv first gathers, for a
 * block of output pixels, each pixel's receptive field into one run (a "patch", as long as a
 * filter row: kh * kw * c taps, the input zero point where the window leaves the input, zeros
 * up to the next multiple of 16, where the filter rows are zero-padded too).
 *
 * Weights (sqz/kernels_mve.h, laid out by converter/arch/mve.py): quads of output channels
 * interleaved 16 taps at a time, so the loop reads them with one post-incremented pointer.
 *
 * Output stage: conv_mve.h. The whole quads of a layer that meets its conditions go through the
 * assembly (pixel pairs, then an odd last pixel alone); a last quad of fewer than four channels
 * and any other layer are done here, pixel by pixel, with the reference formula where the fast
 * one does not apply. */
#include <stddef.h>
#include <string.h>

#include "../../runtime/fixedpoint.h"
#include "conv_mve.h"
#include "sqz/kernels_mve.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
#define SQZ_MVE_NATIVE 1
#include <arm_mve.h>
#else
#define SQZ_MVE_NATIVE 0
#endif

#if SQZ_MVE_NATIVE
/* conv_mve_loop.S reads the job at these offsets (32-bit pointers). */
#define SQZ_JOB_AT(field, offset) \
    typedef char sqz_job_##field[offsetof(sqz_mve_job, field) == (offset) ? 1 : -1]
SQZ_JOB_AT(filter, 32);
SQZ_JOB_AT(chunks, 36);
SQZ_JOB_AT(in, 40);
SQZ_JOB_AT(pairs, 44);
SQZ_JOB_AT(out, 48);
SQZ_JOB_AT(in_step, 52);
SQZ_JOB_AT(out_step, 56);
SQZ_JOB_AT(quads, 60);
SQZ_JOB_AT(bias_at, 64);
SQZ_JOB_AT(mult_at, 68);
SQZ_JOB_AT(shift_at, 72);
SQZ_JOB_AT(odd, 76);
SQZ_JOB_AT(end, 80);
SQZ_JOB_AT(zero_point32, 84);
SQZ_JOB_AT(out_step4, 88);
SQZ_JOB_AT(groups, 92);
SQZ_JOB_AT(offsets, 96);
SQZ_JOB_AT(zero_point, 112);
SQZ_JOB_AT(lo, 128);
SQZ_JOB_AT(hi, 144);
SQZ_JOB_AT(offsets4, 160);
SQZ_JOB_AT(mult2, 176);
SQZ_JOB_AT(shift2, 192);
typedef char sqz_patch_job_layout[offsetof(sqz_mve_patch_job, pad) == 28 ? 1 : -1];
#endif



/* The scratch asked for: patches of at most this many bytes per block of pixels (at least
 * one pixel pair). */
#define BLOCK_BYTES 8192
/* The scatter store's offsets are 16-bit: pitch + 3 must fit, and 3 * pitch + 1 for the
 * 4-pixel groups of the two-chunk loop. */
#define MAX_PAIR_PITCH 65532
#define MAX_GROUP_PITCH 21844

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static int32_t chunks_of(const sqz_dims *filter_dims)
{
    return (filter_dims->h * filter_dims->w * filter_dims->c + SQZ_MVE_CHUNK - 1) /
           SQZ_MVE_CHUNK;
}

int32_t sqz_conv_s8_mve_filter_row_len(const sqz_conv_params *params,
                                       const sqz_dims *filter_dims)
{
    (void)params;
    return SQZ_MVE_CHUNK * chunks_of(filter_dims);
}

/* A 1x1, stride 1, multiple of 16 channels: the input row is already a run of patches. */
static int in_place(const sqz_conv_params *params, const sqz_dims *filter_dims)
{
    return filter_dims->h == 1 && filter_dims->w == 1 && params->stride.w == 1 &&
           params->padding.w == 0 && filter_dims->c % SQZ_MVE_CHUNK == 0;
}

int32_t sqz_conv_s8_mve_scratch_size(const sqz_conv_params *params, const sqz_dims *input_dims,
                                     const sqz_dims *filter_dims, const sqz_dims *output_dims)
{
    (void)input_dims;
    if (in_place(params, filter_dims)) {
        return 0;
    }
    const int32_t len = sqz_conv_s8_mve_filter_row_len(params, filter_dims);
    int32_t pixels = (BLOCK_BYTES / len) & ~1;
    pixels = pixels < 2 ? 2 : pixels;
    return len * min_i32(pixels, output_dims->w);
}

int32_t sqz_conv_s8_mve_min_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims)
{
    (void)input_dims;
    if (in_place(params, filter_dims)) {
        return 0;
    }
    return sqz_conv_s8_mve_filter_row_len(params, filter_dims) * min_i32(2, output_dims->w);
}

/* ---- patches ------------------------------------------------------------------------------ */

/* Short copies and fills (a filter row's worth), whole vectors then one predicated tail. */
static inline void copy_bytes(int8_t *d, const int8_t *s, int32_t n)
{
#if SQZ_MVE_NATIVE
    for (; n >= 16; n -= 16, d += 16, s += 16) {
        vstrbq_s8(d, vldrbq_s8(s));
    }
    if (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(d, vldrbq_z_s8(s, p), p);
    }
#else
    memcpy(d, s, (size_t)n);
#endif
}

static inline void fill_bytes(int8_t *d, int8_t v, int32_t n)
{
#if SQZ_MVE_NATIVE
    const int8x16_t x = vdupq_n_s8(v);
    for (; n >= 16; n -= 16, d += 16) {
        vstrbq_s8(d, x);
    }
    if (n > 0) {
        vstrbq_p_s8(d, x, vctp8q((uint32_t)n));
    }
#else
    memset(d, v, (size_t)n);
#endif
}

typedef struct {
    const int8_t *const *rows; /* one per filter row, NULL in the padding */
    int32_t kh, kw, c, in_w, len;
    int8_t zp; /* the input zero point: what lies outside the input */
} field;

/* The receptive field of the output pixel whose window starts at input column ix0, filter row
 * by filter row: the zero point outside the input, the row's bytes inside it. */
static void patch_pixel(int8_t *d, const field *f, int32_t ix0)
{
    const int32_t taps = f->kh * f->kw * f->c;
    const int32_t seg = f->kw * f->c;
    const int32_t lo = ix0 < 0 ? -ix0 : 0; /* taps left of the input */
    const int32_t hi = f->in_w - ix0 < f->kw ? f->in_w - ix0 : f->kw;
    if (taps < f->len) { /* the padding after the taps: zeros, as in the filter rows */
        fill_bytes(d + taps, 0, f->len - taps);
    }
    if (lo == 0 && hi == f->kw) { /* inside the input horizontally: one copy per filter row */
        for (int32_t ky = 0; ky < f->kh; ++ky, d += seg) {
            const int8_t *row = f->rows[ky];
            if (row) {
                copy_bytes(d, row + (ptrdiff_t)ix0 * f->c, seg);
            } else {
                fill_bytes(d, f->zp, seg);
            }
        }
        return;
    }
    for (int32_t ky = 0; ky < f->kh; ++ky, d += seg) {
        const int8_t *row = f->rows[ky];
        if (!row || hi <= lo) {
            fill_bytes(d, f->zp, seg);
            continue;
        }
        fill_bytes(d, f->zp, lo * f->c);
        copy_bytes(d + lo * f->c, row + (ptrdiff_t)(ix0 + lo) * f->c, (hi - lo) * f->c);
        fill_bytes(d + hi * f->c, f->zp, (f->kw - hi) * f->c);
    }
}

/* The patches of n_px output pixels, the first at input column ix0, `stride` apart. The run of
 * pixels whose windows lie inside the input (every filter row present, no column outside) is
 * copied in assembly; the others (at the edges, in the padding) here. */
static void patch_block(int8_t *patch, const field *f, int32_t ix0, int32_t stride,
                        int32_t n_px)
{
    int all_rows = 1;
    for (int32_t ky = 0; ky < f->kh; ++ky) {
        all_rows &= f->rows[ky] != NULL;
    }
    int32_t k = 0;
#if SQZ_MVE_NATIVE
    if (all_rows) {
        /* Pixels [first, last) have their windows inside the input columns. */
        int32_t first = 0;
        while (first < n_px && ix0 + first * stride < 0) {
            ++first;
        }
        int32_t last = first;
        while (last < n_px && ix0 + last * stride + f->kw <= f->in_w) {
            ++last;
        }
        for (; k < first; ++k) {
            patch_pixel(patch + (size_t)k * (size_t)f->len, f, ix0 + k * stride);
        }
        if (last > first) {
            sqz_mve_patch_job pj;
            pj.rows = f->rows;
            pj.patch = patch + (size_t)first * (size_t)f->len;
            pj.offset = (ix0 + first * stride) * f->c;
            pj.seg = f->kw * f->c;
            pj.step = stride * f->c;
            pj.pixels = last - first;
            pj.kh = f->kh;
            pj.pad = f->len - f->kh * pj.seg;
            sqz_mve_patches(&pj);
            k = last;
        }
    }
#else
    (void)all_rows;
#endif
    for (; k < n_px; ++k) {
        patch_pixel(patch + (size_t)k * (size_t)f->len, f, ix0 + k * stride);
    }
}

/* ---- one pixel, one quad ------------------------------------------------------------------ */

typedef struct {
    const sqz_conv_params *params;
    const sqz_per_channel_quant *quant;
    const int32_t *bias;
    int32_t chunks;
    int fast; /* the layer meets the fast output stage's conditions (conv_mve.h) */
} layer_info;

/* The sums of one pixel (x: its patch or its inputs in place) for the n <= 4 channels of the
 * quad starting at channel oc (w: its interleaved weights), requantized into o[oc ..]. */
static void quad_pixel(const layer_info *li, const int8_t *x, const int8_t *w, int32_t oc,
                       int32_t n, int8_t *o)
{
    const sqz_conv_params *p = li->params;
    int32_t acc[SQZ_MVE_QUAD] = {0, 0, 0, 0};
#if SQZ_MVE_NATIVE
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int32_t k = 0; k < li->chunks; ++k, x += 16, w += 64) {
        const int8x16_t v = vldrbq_s8(x);
        a0 = vmladavaq_s8(a0, v, vldrbq_s8(w));
        a1 = vmladavaq_s8(a1, v, vldrbq_s8(w + 16));
        a2 = vmladavaq_s8(a2, v, vldrbq_s8(w + 32));
        a3 = vmladavaq_s8(a3, v, vldrbq_s8(w + 48));
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    if (li->fast) {
        /* The assembly's output stage on one pixel; lanes past n neither read nor stored. */
        const mve_pred16_t m = vctp32q((uint32_t)n);
        int32x4_t v = vaddq_s32(vldrwq_s32(acc), vldrwq_z_s32(li->bias + oc, m));
        v = vqrdmulhq_s32(v, vldrwq_z_s32(li->quant->multiplier + oc, m));
        v = vrshlq_s32(v, vldrbq_z_s32(li->quant->shift + oc, m));
        v = vaddq_n_s32(v, p->output_offset);
        v = vmaxq_s32(v, vdupq_n_s32(p->activation.min));
        v = vminq_s32(v, vdupq_n_s32(p->activation.max));
        vstrbq_p_s32(o + oc, v, m);
        return;
    }
#else
    for (int32_t k = 0; k < li->chunks; ++k, x += 16, w += 64) {
        for (int32_t j = 0; j < SQZ_MVE_QUAD; ++j) {
            for (int32_t t = 0; t < 16; ++t) {
                acc[j] += (int32_t)x[t] * w[16 * j + t];
            }
        }
    }
#endif
    /* The reference formula (it equals the fast stage wherever that applies). */
    for (int32_t j = 0; j < n; ++j) {
        const int32_t v = sqz_requantize((int32_t)((uint32_t)acc[j] + (uint32_t)li->bias[oc + j]),
                                         li->quant->multiplier[oc + j],
                                         li->quant->shift[oc + j]) +
                          p->output_offset;
        o[oc + j] = (int8_t)sqz_clamp(v, p->activation.min, p->activation.max);
    }
}

/* ---- the row kernel ----------------------------------------------------------------------- */

/* The fast output stage's conditions (conv_mve.h): a ReLU-style clamp and right shifts only
 * (VQRDMULH equals the reference's high multiply for every multiplier). */
static int all_fast(const sqz_conv_params *p, const sqz_per_channel_quant *q, int32_t n)
{
    if (p->activation.min < p->output_offset) {
        return 0; /* no ReLU-style clamp: negative values must round like the reference */
    }
#if SQZ_MVE_NATIVE
    int8_t most = INT8_MIN;
    for (int32_t oc = 0; oc < n; oc += 16) {
        const mve_pred16_t m = vctp8q((uint32_t)(n - oc));
        most = vmaxvq_p_s8(most, vldrbq_z_s8(q->shift + oc, m), m);
    }
    return most <= 0;
#else
    for (int32_t oc = 0; oc < n; ++oc) {
        if (q->shift[oc] > 0) {
            return 0;
        }
    }
    return 1;
#endif
}

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
    if (in_place(params, filter_dims) ? !input_rows[0]
                                      : (ctx->buf == NULL ||
                                         ctx->size < sqz_conv_s8_mve_min_scratch_size(
                                                         params, input_dims, filter_dims,
                                                         output_dims))) {
        return in_place(params, filter_dims) ? SQZ_ERR_ARG : SQZ_ERR_SCRATCH;
    }
    return SQZ_OK;
}

#if SQZ_MVE_NATIVE
/* The parts of the assembly loop's job that stay the same for a whole row call. */
static void job_init(sqz_mve_job *job, const sqz_conv_params *p, int32_t chunks)
{
    const int32_t pitch = p->output_pixel_stride;
    job->chunks = chunks;
    job->in_step = SQZ_MVE_CHUNK * chunks;
    job->out_step = 2 * pitch;
    for (int32_t i = 0; i < 4; ++i) {
        job->offsets[2 * i] = (uint16_t)i;
        job->offsets[2 * i + 1] = (uint16_t)(pitch + i);
    }
    job->out_step4 = 4 * pitch;
    const uint16_t group[8] = {0, 2, 0, 2, 1, 3, 1, 3}; /* pixel of each 16-bit lane */
    for (int32_t i = 0; i < 8; ++i) {
        job->zero_point[i] = (int16_t)p->output_offset;
        job->offsets4[i] = (uint16_t)(group[i] * pitch + (i / 2) % 2);
    }
    job->zero_point32 = p->output_offset;
    if (p->activation.min > INT8_MIN || p->activation.max < INT8_MAX) { /* _clamp only */
        memset(job->lo, (int8_t)p->activation.min, sizeof job->lo);
        memset(job->hi, (int8_t)p->activation.max, sizeof job->hi);
    }
}

/* What a call of the assembly consumes: the first quad's weights, constants and output. */
static void start_job(sqz_mve_job *job, const int8_t *filter, const int32_t *bias,
                      const sqz_per_channel_quant *quant, const int8_t *in, int8_t *out,
                      int32_t quads)
{
    job->filter = filter;
    job->in = in;
    job->out = out;
    job->quads = quads;
    job->bias_at = bias;
    job->mult_at = quant->multiplier;
    job->shift_at = quant->shift;
}
#endif

sqz_status sqz_conv_s8_mve_row(const sqz_context *ctx, const sqz_conv_params *params,
                               const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const void *filter_data, const sqz_dims *bias_dims,
                               const int32_t *bias, const sqz_dims *output_dims,
                               int8_t *output_row)
{
    const sqz_status st = check_args(ctx, params, quant, input_dims, input_rows, filter_dims,
                                     filter_data, bias_dims, bias, output_dims, output_row);
    if (st != SQZ_OK) {
        return st;
    }
    const int8_t *filter = (const int8_t *)filter_data;
    const int32_t chunks = chunks_of(filter_dims);
    const int32_t len = SQZ_MVE_CHUNK * chunks;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const size_t pitch = (size_t)params->output_pixel_stride;
    const int direct = in_place(params, filter_dims);
    /* Pixels per block: the whole row in place, else as many patches as the scratch holds,
     * an even number unless the row is one pixel wide (at least that, checked above). */
    int32_t block = out_w;
    if (!direct) {
        block = min_i32(ctx->size / len, out_w);
        block = block > 1 ? block & ~1 : block;
    }
    layer_info li;
    li.params = params;
    li.quant = quant;
    li.bias = bias;
    li.chunks = chunks;
    li.fast = all_fast(params, quant, out_c);

    field f;
    f.rows = input_rows;
    f.kh = filter_dims->h;
    f.kw = filter_dims->w;
    f.c = input_dims->c;
    f.in_w = input_dims->w;
    f.len = len;
    f.zp = (int8_t)(-params->input_offset);

#if SQZ_MVE_NATIVE
    /* The assembly loops: the general one, and for one or two chunks per pixel the ones that
     * keep weights in registers. */
    void (*block_fn)(sqz_mve_job *) = NULL;
    void (*k1_fn)(sqz_mve_job *) = NULL;
    void (*k2_fn)(sqz_mve_job *) = NULL;
    sqz_mve_job job;
    if (li.fast && pitch <= MAX_PAIR_PITCH) {
        const int full = params->activation.min == INT8_MIN && params->activation.max == INT8_MAX;
        block_fn = full ? sqz_mve_block_sat : sqz_mve_block_clamp;
        if (chunks == 1) {
            k1_fn = full ? sqz_mve_block_k1_sat : sqz_mve_block_k1_clamp;
        } else if (chunks == 2 && pitch <= MAX_GROUP_PITCH) {
            k2_fn = full ? sqz_mve_block_k2_sat : sqz_mve_block_k2_clamp;
        }
        job_init(&job, params, chunks);
    }
    const int32_t quads = out_c / SQZ_MVE_QUAD;
#endif

    for (int32_t px0 = 0; px0 < out_w; px0 += block) {
        const int32_t n_px = min_i32(block, out_w - px0);
        const int8_t *in;
        if (direct) {
            in = input_rows[0] + (size_t)px0 * (size_t)f.c;
        } else {
            int8_t *patch = (int8_t *)ctx->buf;
            patch_block(patch, &f, px0 * params->stride.w - params->padding.w,
                        params->stride.w, n_px);
            in = patch;
        }
        int8_t *out = output_row + (size_t)px0 * pitch;
        int32_t oc = 0;
#if SQZ_MVE_NATIVE
        if (block_fn && quads > 0) { /* every whole quad, in assembly */
            int32_t done = 0; /* pixels */
            if (k2_fn && n_px >= 4) {
                job.groups = n_px / 4;
                start_job(&job, filter, bias, quant, in, out, quads);
                k2_fn(&job);
                done = 4 * job.groups;
            }
            if (done < n_px) {
                const int32_t rest = n_px - done;
                job.pairs = rest / 2;
                job.odd = rest % 2;
                start_job(&job, filter, bias, quant, in + (size_t)done * (size_t)len,
                          out + (size_t)done * pitch, quads);
                (k1_fn ? k1_fn : block_fn)(&job);
            }
            oc = SQZ_MVE_QUAD * quads;
        }
#endif
        /* The rest (a last quad of fewer than four channels, or everything when the fast
         * stage does not apply), one pixel at a time with the reference output stage. */
        for (const int8_t *w = filter + (size_t)oc * (size_t)len; oc < out_c;
             oc += SQZ_MVE_QUAD, w += SQZ_MVE_QUAD * (size_t)len) {
            const int32_t n = min_i32(SQZ_MVE_QUAD, out_c - oc);
            for (int32_t k = 0; k < n_px; ++k) {
                quad_pixel(&li, in + (size_t)k * (size_t)len, w, oc, n, out + (size_t)k * pitch);
            }
        }
    }
    return SQZ_OK;
}

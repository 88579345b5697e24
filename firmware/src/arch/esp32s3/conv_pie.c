/* CONV_2D on the ESP32-S3's PIE SIMD unit: the row kernel's C half (method: conv_pie.h).
 *
 * Filter layout (16-byte aligned): one record per output channel (its requantization
 * constants, SQZ_PIE_RECORD bytes, twice that without a ReLU-style clamp), then every output
 * channel's OHWI weights, each filter row's kw * c weights zero-padded to a multiple of 16 (so
 * every filter row of a patch starts a vector and is copied with vector loads). Undilated
 * filters only. The converter writes both and selects this kernel only where it has proved the
 * arithmetic exact (converter/arch/esp32s3.py); `quant` and `bias` are not read: the records
 * hold what they say. The checks here are the cheap ones. Built for another core (the host),
 * plain-C twins of the vector code compute the same bytes, so host tests cover the layout,
 * the records and the gathering; the assembly itself runs only on the S3 (or its QEMU). */
#include <stddef.h>
#include <stdint.h>

#include "conv_pie.h"
#include "sqz/kernels.h"

#if defined(__XTENSA__)
typedef void (*pie_loop_fn)(sqz_pie_job *job);

#define PIE_MODES(n)                                                                           \
    {sqz_pie_conv_##n##_rf, sqz_pie_conv_##n##_rm, sqz_pie_conv_##n##_gf,                      \
     sqz_pie_conv_##n##_gm}
#define PIE_DECLARE(n)                                                                         \
    void sqz_pie_conv_##n##_rf(sqz_pie_job *job);                                              \
    void sqz_pie_conv_##n##_rm(sqz_pie_job *job);                                              \
    void sqz_pie_conv_##n##_gf(sqz_pie_job *job);                                              \
    void sqz_pie_conv_##n##_gm(sqz_pie_job *job);

PIE_DECLARE(1)
PIE_DECLARE(2)
PIE_DECLARE(3)
PIE_DECLARE(4)
PIE_DECLARE(5)
PIE_DECLARE(6)
PIE_DECLARE(7)

static const pie_loop_fn pie_loops[SQZ_PIE_CHUNK][4] = {
    PIE_MODES(1), PIE_MODES(2), PIE_MODES(3), PIE_MODES(4),
    PIE_MODES(5), PIE_MODES(6), PIE_MODES(7),
};

/* `count` segments of n 16-byte vectors: segment i from src + i * src_step to dst + i *
 * dst_step (16-byte aligned). With `aligned` (src and src_step multiples of 16) plain vector
 * copies; otherwise every segment is read as the n + 1 aligned blocks around it, shifted into
 * place by ee.src.q (SAR_BYTE = src & 15): the caller checks that the blocks lie inside the
 * tensor's 16-aligned allocation. */
static void copy_segments(int8_t *dst, int32_t dst_step, const int8_t *src, int32_t src_step,
                          int32_t n, int32_t count, int aligned)
{
    if (count <= 0) {
        return;
    }
    if (aligned && n == 1) {
        __asm__ volatile("loopgtz %[count], 1f\n\t"
                         "ee.vld.128.xp q0, %[src], %[ss]\n\t"
                         "ee.vst.128.xp q0, %[dst], %[ds]\n"
                         "1:\n"
                         : [dst] "+a"(dst), [src] "+a"(src), [count] "+a"(count)
                         : [ss] "a"(src_step), [ds] "a"(dst_step)
                         : "memory");
    } else if (aligned) {
        const int32_t src_adv = src_step - 16 * n;
        const int32_t dst_adv = dst_step - 16 * n;
        __asm__ volatile("2:\n\t"
                         "loopgtz %[n], 1f\n\t"
                         "ee.vld.128.ip q0, %[src], 16\n\t"
                         "ee.vst.128.ip q0, %[dst], 16\n"
                         "1:\n\t"
                         "add %[src], %[src], %[sa]\n\t"
                         "add %[dst], %[dst], %[da]\n\t"
                         "addi %[count], %[count], -1\n\t"
                         "bnez %[count], 2b\n"
                         : [dst] "+a"(dst), [src] "+a"(src), [count] "+a"(count)
                         : [n] "a"(n), [sa] "a"(src_adv), [da] "a"(dst_adv)
                         : "memory");
    } else if (n == 1) {
        const int8_t *next = src + 16;
        __asm__ volatile("loopgtz %[count], 1f\n\t"
                         "ee.ld.128.usar.xp q0, %[src], %[ss]\n\t"
                         "ee.vld.128.xp q1, %[next], %[ss]\n\t"
                         "ee.src.q q2, q0, q1\n\t"
                         "ee.vst.128.xp q2, %[dst], %[ds]\n"
                         "1:\n"
                         : [dst] "+a"(dst), [src] "+a"(src), [next] "+a"(next),
                           [count] "+a"(count)
                         : [ss] "a"(src_step), [ds] "a"(dst_step)
                         : "memory");
    } else {
        const int32_t src_adv = src_step - 16 * (n + 1);
        const int32_t dst_adv = dst_step - 16 * n;
        __asm__ volatile("2:\n\t"
                         "ee.ld.128.usar.ip q0, %[src], 16\n\t"
                         "loopgtz %[n], 1f\n\t"
                         "ee.vld.128.ip q1, %[src], 16\n\t"
                         "ee.src.q q2, q0, q1\n\t"
                         "ee.vst.128.ip q2, %[dst], 16\n\t"
                         "ee.orq q0, q1, q1\n"
                         "1:\n\t"
                         "add %[src], %[src], %[sa]\n\t"
                         "add %[dst], %[dst], %[da]\n\t"
                         "addi %[count], %[count], -1\n\t"
                         "bnez %[count], 2b\n"
                         : [dst] "+a"(dst), [src] "+a"(src), [count] "+a"(count)
                         : [n] "a"(n), [sa] "a"(src_adv), [da] "a"(dst_adv)
                         : "memory");
    }
}

/* `count` segments of n vectors of the byte *value, dst_step apart (dst 16-byte aligned). */
static void fill_segments(int8_t *dst, int32_t dst_step, const int8_t *value, int32_t n,
                          int32_t count)
{
    const int32_t dst_adv = dst_step - 16 * n;
    if (count <= 0) {
        return;
    }
    __asm__ volatile("ee.vldbc.8 q0, %[value]\n"
                     "2:\n\t"
                     "loopgtz %[n], 1f\n\t"
                     "ee.vst.128.ip q0, %[dst], 16\n"
                     "1:\n\t"
                     "add %[dst], %[dst], %[da]\n\t"
                     "addi %[count], %[count], -1\n\t"
                     "bnez %[count], 2b\n"
                     : [dst] "+a"(dst), [count] "+a"(count)
                     : [n] "a"(n), [da] "a"(dst_adv), [value] "a"(value)
                     : "memory");
}

#else /* not the ESP32-S3: plain-C twins computing the same bytes (host builds and tests) */

static void copy_segments(int8_t *dst, int32_t dst_step, const int8_t *src, int32_t src_step,
                          int32_t n, int32_t count, int aligned)
{
    (void)aligned;
    for (int32_t i = 0; i < count; ++i, dst += dst_step, src += src_step) {
        for (int32_t j = 0; j < 16 * n; ++j) {
            dst[j] = src[j];
        }
    }
}

static void fill_segments(int8_t *dst, int32_t dst_step, const int8_t *value, int32_t n,
                          int32_t count)
{
    for (int32_t i = 0; i < count; ++i, dst += dst_step) {
        for (int32_t j = 0; j < 16 * n; ++j) {
            dst[j] = *value;
        }
    }
}

/* What the assembly's loops compute (conv_pie_loops.S): the low 32 bits of ACCX, muluh, the
 * sign fix-up in general mode, K, the shift and the clamp. */
static void pie_loop(sqz_pie_job *job, int32_t vectors, int32_t last, int general)
{
    const int32_t pitch = job->inc + 16 * (last - 1);
    const int32_t words = (SQZ_PIE_RECORD << general) / 4;
    const int32_t *rec = job->rec;
    const int8_t *w = job->w;
    for (int32_t ch = 0; ch < job->nch; ++ch, rec += words, w += 16 * vectors) {
        int8_t *out = job->out + ch;
        for (int32_t p = 0; p < job->pix; ++p, out += job->ostr) {
            const int8_t *x = job->in + (size_t)p * pitch;
            uint32_t u = (uint32_t)rec[0];
            for (int32_t i = 0; i < 16 * vectors; ++i) {
                u += (uint32_t)((int32_t)x[i] * w[i]);
            }
            uint32_t v = (uint32_t)(((uint64_t)u * (uint32_t)rec[2]) >> 32);
            if (general) {
                v -= u < (uint32_t)rec[4] ? 1u : 0u;
            }
            v += (uint32_t)rec[3];
            int32_t z = (int32_t)v >> (rec[1] & 31);
            z = z < job->act_min ? job->act_min : (z > job->act_max ? job->act_max : z);
            *out = (int8_t)z;
        }
    }
}
#endif

static void fill_bytes(int8_t *dst, int8_t value, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        dst[i] = value;
    }
}

static void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* Output pixel ox's filter row from `row`, tap by tap: the input zero point outside it. */
static void gather_edge(int8_t *d, const int8_t *row, int32_t ix, int32_t kw, int32_t c,
                        int32_t in_w, int8_t zp)
{
    for (int32_t kx = 0; kx < kw; ++kx) {
        const int32_t x = ix + kx;
        if (x >= 0 && x < in_w) {
            copy_bytes(d + kx * c, row + (size_t)x * c, c);
        } else {
            fill_bytes(d + kx * c, zp, c);
        }
    }
}

/* Every output pixel's receptive field at patches + ox * len: filter row ky's kw * c taps at
 * ky * run_len (run_len: kw * c rounded up to 16, as the converter pads each filter row), the
 * input zero point where a tap lies outside the input (and for whole NULL rows). Bytes past a
 * row's taps are whatever the copy brought: their weights are zero. The pixels whose filter
 * row lies inside the input go in one vector pass per filter row; the edges tap by tap. */
static void build_patches(const sqz_conv_params *p, const sqz_dims *input_dims,
                          const int8_t *const *input_rows, const sqz_dims *filter_dims,
                          int32_t ox0, int32_t count, int32_t len, int32_t run_len,
                          int8_t *patches)
{
    const int32_t c = input_dims->c;
    const int32_t in_w = input_dims->w;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t kw = filter_dims->w;
    const int32_t run = kw * c;
    const int32_t vectors = run_len / 16;
    const int32_t sw = p->stride.w;
    const int32_t pw = p->padding.w;
    /* Pixels whose filter row starts inside the input: from ceil(pw / sw) (counted from ox0,
     * as the patches are). */
    const int32_t out_w = count;
    int32_t first = (pw > 0 ? (pw + sw - 1) / sw : 0) - ox0;
    first = first < 0 ? 0 : (first < out_w ? first : out_w);
    for (int32_t ky = 0; ky < filter_dims->h; ++ky) {
        const int8_t *row = input_rows[ky];
        int8_t *d = patches + ky * run_len;
        if (!row) {
            fill_segments(d, len, &zp, vectors, out_w);
            continue;
        }
        /* The input row's end rounded up to 16: rows and tensors are placed at 16-byte aligned
         * offsets with 16-byte rounded sizes, so vector reads up to there stay in the tensor. */
        const uintptr_t end = ((uintptr_t)row + (uintptr_t)in_w * (uintptr_t)c + 15u) &
                              ~(uintptr_t)15u;
        const int aligned = c % 16 == 0 && ((uintptr_t)row & 15u) == 0;
        int32_t last = out_w; /* one past the last pixel of the vector pass */
        while (last > first) {
            const int32_t ix = (ox0 + last - 1) * sw - pw;
            const uintptr_t s = (uintptr_t)(row + (size_t)ix * c);
            const uintptr_t blocks = (uintptr_t)(aligned ? vectors : vectors + 1);
            const uintptr_t reach = (aligned ? s : (s & ~(uintptr_t)15u)) + 16u * blocks;
            if (ix + kw <= in_w && reach <= end) {
                break;
            }
            --last;
        }
        for (int32_t ox = 0; ox < first; ++ox) {
            gather_edge(d + (size_t)ox * len, row, (ox0 + ox) * sw - pw, kw, c, in_w, zp);
        }
        if (last > first) {
            copy_segments(d + (size_t)first * len, len,
                          row + (size_t)((ox0 + first) * sw - pw) * c, sw * c, vectors,
                          last - first, aligned);
        }
        for (int32_t ox = last > first ? last : first; ox < out_w; ++ox) {
            const int32_t ix = (ox0 + ox) * sw - pw;
            if (ix >= 0 && ix + kw <= in_w) {
                copy_bytes(d + (size_t)ox * len, row + (size_t)ix * c, run);
            } else {
                gather_edge(d + (size_t)ox * len, row, ix, kw, c, in_w, zp);
            }
        }
    }
}

sqz_status sqz_conv_s8_pie_row(const sqz_context *ctx, const sqz_conv_params *params,
                               const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const void *filter, const sqz_dims *bias_dims,
                               const int32_t *bias, const sqz_dims *output_dims,
                               int8_t *output_row)
{
    /* Each channel's bias and requantization are in its record inside the filter blob, so the
     * schedule passes no bias, multiplier or shift arrays (NULL): they would be flash read by
     * nothing. */
    (void)bias;
    if (!ctx || !params || !quant || !input_dims || !input_rows || !filter_dims || !filter ||
        !bias_dims || !output_dims || !output_row) {
        return SQZ_ERR_ARG;
    }
    if (input_dims->c != filter_dims->c || output_dims->c != filter_dims->n ||
        bias_dims->c != output_dims->c || params->output_pixel_stride < output_dims->c ||
        filter_dims->h > SQZ_MAX_FILTER_ROWS || params->stride.w < 1 ||
        params->dilation.w != 1 || params->dilation.h != 1) {
        return SQZ_ERR_SHAPE;
    }
    sqz_pie_layout lay;
    sqz_pie_conv_layout(params, input_dims, filter_dims, output_dims, &lay);
    if (ctx->buf == NULL || ctx->size < lay.bytes) {
        return SQZ_ERR_SCRATCH;
    }
    if (((uintptr_t)filter & 15u) != 0) {
        return SQZ_ERR_ARG; /* weights are laid out for 16-byte vector loads */
    }
    const int32_t out_w = output_dims->w;
    if (out_w < 1 || output_dims->c < 1) {
        return SQZ_OK;
    }
    int8_t *base = (int8_t *)(((uintptr_t)ctx->buf + 15u) & ~(uintptr_t)15u);
    const int32_t vectors = lay.row_len / 16;
    const int32_t chunks = (vectors - 1) / SQZ_PIE_CHUNK;
    const int32_t last = vectors - chunks * SQZ_PIE_CHUNK;

    const int general = params->activation.min < params->output_offset;
#if defined(__XTENSA__)
    const int full = params->activation.min == -128 && params->activation.max == 127;
    const pie_loop_fn loop = pie_loops[last - 1][(general ? 2 : 0) + (full ? 0 : 1)];
#endif
    const int8_t *blob = (const int8_t *)filter;
    int32_t pitch;
    if (lay.direct) {
        if (!input_rows[0] || ((uintptr_t)input_rows[0] & 15u) != 0) {
            return SQZ_ERR_ARG; /* the converter aligns every row of a 16-channel tensor */
        }
        pitch = params->stride.w * input_dims->c;
    } else {
        pitch = lay.row_len;
    }
    sqz_pie_job job;
    job.inc = pitch - 16 * (last - 1);
    job.inc7 = pitch - 16 * (SQZ_PIE_CHUNK - 1);
    job.ostr = params->output_pixel_stride;
    job.chunks = chunks;
    job.partial = base + lay.partial;
    job.act_min = params->activation.min;
    job.act_max = params->activation.max;
    /* The row in blocks of lay.pixels output pixels (gathered patches take scratch). */
    for (int32_t ox0 = 0; ox0 < out_w; ox0 += lay.pixels) {
        const int32_t n = out_w - ox0 < lay.pixels ? out_w - ox0 : lay.pixels;
        if (lay.direct) {
            job.in = input_rows[0] + (size_t)ox0 * pitch;
        } else {
            build_patches(params, input_dims, input_rows, filter_dims, ox0, n, lay.row_len,
                          lay.run_len, base + lay.patches);
            job.in = base + lay.patches;
        }
        job.pix1 = n - 1;
        job.pix = n;
        job.w = blob + (size_t)output_dims->c * (SQZ_PIE_RECORD << general);
        job.out = output_row + (size_t)ox0 * params->output_pixel_stride;
        job.nch = output_dims->c;
        job.rec = (const int32_t *)(const void *)blob;
#if defined(__XTENSA__)
        loop(&job);
#else
        pie_loop(&job, vectors, last, general);
#endif
    }
    return SQZ_OK;
}

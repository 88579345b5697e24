/* DEPTHWISE_CONV_2D with depth multiplier 1 on the ESP32-S3's PIE: sixteen channels per
 * instruction. Contract: sqz_depthwise_s8_row's (sqz/kernels.h), with the PIE conv's records
 * (conv_pie.h) before the tap-major weights; the channel count is a multiple of 16 and the
 * filter has at most 25 taps (the converter checks all of it, converter/arch/esp32s3.py).
 *
 * How. Channels are the vector lanes: for each tap, one aligned 16-byte load of the input
 * pixel's channels, one of the tap's weights and one ee.vmulas.s8.qacc accumulate the
 * products in QACC's sixteen 20-bit lanes. At most 25 taps of
 * products of at most 2^14 stay below 2^19, so no lane saturates. QACC is then stored (its two
 * halves are eight 20-bit lanes each, packed little-endian) and each lane unpacked and put
 * through the PIE conv's output stage in scalar code (a dozen instructions). Built for
 * another core (the host), a plain-C twin computes the same sums, so host tests cover the
 * layout and the output stage; the vector code runs on the S3 (or its QEMU). */
#include <stddef.h>
#include <stdint.h>

#include "../../runtime/depthwise.h"
#include "sqz/kernels.h"
#include "conv_pie.h"
#include "sqz/kernels_esp32s3.h"

/* Taps the 20-bit lanes take without saturating: 25 * 128 * 128 < 2^19 (mirrored). */
#define SQZ_DW_PIE_MAX_TAPS 25
/* QACC dump: QACC_L's 160 bits at 0, QACC_H's at 32 (each as 16 + 4 bytes). */
#define SQZ_DW_PIE_DUMP 64

int32_t sqz_depthwise_s8_pie_scratch_size(const sqz_conv_params *params,
                                          const sqz_dims *input_dims,
                                          const sqz_dims *filter_dims,
                                          const sqz_dims *output_dims)
{
    (void)params;
    (void)filter_dims;
    (void)output_dims;
    /* Alignment slack, the dump, and the zero-point pixel (whole vectors: c % 16 == 0). */
    return 16 + SQZ_DW_PIE_DUMP + input_dims->c;
}

#if defined(__XTENSA__)
/* The eight 20-bit lanes of a dumped QACC half (160 bits, little-endian), sign-extended.
 * Written out lane by lane so every shift is a constant: two or three instructions each. */
static inline void lanes20(const uint32_t *d, int32_t *s)
{
#define SQZ_SEXT20(v) ((int32_t)((uint32_t)(v) << 12) >> 12)
    s[0] = SQZ_SEXT20(d[0]);
    s[1] = SQZ_SEXT20((d[0] >> 20) | (d[1] << 12));
    s[2] = SQZ_SEXT20(d[1] >> 8);
    s[3] = SQZ_SEXT20((d[1] >> 28) | (d[2] << 4));
    s[4] = SQZ_SEXT20((d[2] >> 16) | (d[3] << 16));
    s[5] = SQZ_SEXT20(d[3] >> 4);
    s[6] = SQZ_SEXT20((d[3] >> 24) | (d[4] << 8));
    s[7] = SQZ_SEXT20(d[4] >> 12);
#undef SQZ_SEXT20
}

/* sums[l] = sum over taps of px[t][c0 + l] * w[t * c + c0 + l], l = 0..15. */
static void block_sums(const int8_t *const *px, int32_t taps, const int8_t *weights,
                       int32_t c, int32_t c0, uint32_t *dump, int32_t *sums)
{
    __asm__ volatile("ee.zero.qacc" ::: "memory");
    const int8_t *w = weights + c0;
    for (int32_t t = 0; t < taps; ++t, w += c) {
        const int8_t *x = px[t] + c0;
        const int8_t *wa = w;
        __asm__ volatile("ee.vld.128.ip q0, %[x], 0\n\t"
                         "ee.vld.128.ip q2, %[w], 0\n\t"
                         "ee.vmulas.s8.qacc q0, q2\n"
                         : [x] "+a"(x), [w] "+a"(wa)
                         :
                         : "memory");
    }
    uint32_t *p = dump;
    __asm__ volatile("ee.st.qacc_l.l.128.ip %[p], 16\n\t"
                     "ee.st.qacc_l.h.32.ip %[p], 16\n\t"
                     "ee.st.qacc_h.l.128.ip %[p], 16\n\t"
                     "ee.st.qacc_h.h.32.ip %[p], 16\n"
                     : [p] "+a"(p)
                     :
                     : "memory");
    lanes20(dump, sums);
    lanes20(dump + 8, sums + 8);
}
#else /* not the ESP32-S3: the plain-C twin (host builds and tests) */
static void block_sums(const int8_t *const *px, int32_t taps, const int8_t *weights,
                       int32_t c, int32_t c0, uint32_t *dump, int32_t *sums)
{
    (void)dump;
    for (int32_t l = 0; l < 16; ++l) {
        int32_t s = 0;
        for (int32_t t = 0; t < taps; ++t) {
            s += (int32_t)px[t][c0 + l] * weights[(size_t)t * c + c0 + l];
        }
        sums[l] = s;
    }
}
#endif

/* The PIE conv's output stage (conv_pie.h) for sixteen channels: u = x + D unsigned, the high
 * word of u * 2M, the sign fix-up in general mode, K, the shift, the clamp. Inlined with
 * `general` a constant, so each mode's loop has no test of it. */
static inline __attribute__((always_inline)) void output16(const int32_t *sums,
                                                           const int32_t *r, int32_t words,
                                                           int general, int32_t lo, int32_t hi,
                                                           int8_t *out)
{
    for (int32_t l = 0; l < 16; ++l, r += words) {
        const uint32_t u = (uint32_t)sums[l] + (uint32_t)r[0];
        uint32_t v = (uint32_t)(((uint64_t)u * (uint32_t)r[2]) >> 32);
        if (general) {
            v -= u < (uint32_t)r[4] ? 1u : 0u;
        }
        v += (uint32_t)r[3];
        const int32_t z = (int32_t)v >> (r[1] & 31);
        out[l] = (int8_t)(z < lo ? lo : (z > hi ? hi : z));
    }
}

sqz_status sqz_depthwise_s8_pie_row(const sqz_context *ctx, const sqz_conv_params *params,
                                    const sqz_per_channel_quant *quant,
                                    const sqz_dims *input_dims,
                                    const int8_t *const *input_rows,
                                    const sqz_dims *filter_dims, const void *filter,
                                    const sqz_dims *bias_dims, const int32_t *bias,
                                    const sqz_dims *output_dims, int8_t *output_row)
{
    (void)quant; /* the records hold the requantization and the bias */
    (void)bias;
    const sqz_status st = sqz_dw_check(ctx, params, input_dims, input_rows, filter_dims,
                                       filter, bias_dims, output_dims, output_row);
    if (st != SQZ_OK) {
        return st;
    }
    const int32_t c = input_dims->c;
    if (c % 16 != 0 || filter_dims->h * filter_dims->w > SQZ_DW_PIE_MAX_TAPS ||
        ((uintptr_t)filter & 15u) != 0) {
        return SQZ_ERR_SHAPE;
    }
    /* Every pixel's channels start a vector: 16-aligned rows (sqz's planner aligns every
     * tensor and row) and whole vectors of channels. So the loads are aligned and read
     * exactly the pixel's channels, never past the tensor. */
    for (int32_t ky = 0; ky < filter_dims->h; ++ky) {
        if (input_rows[ky] && ((uintptr_t)input_rows[ky] & 15u) != 0) {
            return SQZ_ERR_ARG;
        }
    }
    if (ctx->size < sqz_depthwise_s8_pie_scratch_size(params, input_dims, filter_dims,
                                                      output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    uint8_t *base = (uint8_t *)(((uintptr_t)ctx->buf + 15u) & ~(uintptr_t)15u);
    uint32_t *dump = (uint32_t *)base;
    int8_t *zero_px = (int8_t *)(base + SQZ_DW_PIE_DUMP);
    const int8_t zp = (int8_t)(-params->input_offset);
    for (int32_t ch = 0; ch < c; ++ch) {
        zero_px[ch] = zp;
    }
    /* The PIE conv's records (conv_pie.h), twice as long without a ReLU-style clamp. */
    const int general = params->activation.min < params->output_offset;
    const int32_t words = (SQZ_PIE_RECORD << general) / 4;
    const int32_t *rec = (const int32_t *)filter;
    const int8_t *weights = (const int8_t *)(rec + (size_t)c * words);
    const int32_t lo = params->activation.min;
    const int32_t hi = params->activation.max;
    const int8_t *px[SQZ_DW_MAX_TAPS];
    int32_t sums[16];

    const int rows_inside = sqz_dw_rows_in_image(filter_dims, input_rows);
    int prev_inside = 0;
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const int32_t taps = sqz_dw_next_taps(params, input_dims, filter_dims, input_rows,
                                              zero_px, rows_inside, ox, &prev_inside, px);
        int8_t *out = output_row + (size_t)ox * params->output_pixel_stride;
        for (int32_t c0 = 0; c0 < c; c0 += 16) {
            block_sums(px, taps, weights, c, c0, dump, sums);
            const int32_t *r = rec + (size_t)c0 * words;
            if (general) {
                output16(sums, r, 8, 1, lo, hi, out + c0);
            } else {
                output16(sums, r, 4, 0, lo, hi, out + c0);
            }
        }
    }
    return SQZ_OK;
}

/* CONV_2D on packed weights for the ESP32-S3: a block of output channels at a time is decoded
 * (runtime/packed_decode.h) into the PIE conv's layout, its channels' records in front of
 * their weights, then sqz_conv_s8_pie_row runs on the block and writes its slice of the
 * output's channels. The decoded block is all of the filter that is ever in RAM; the records
 * stay in flash beside the stream (converter/arch/esp32s3.py packed_records: 16 or 32 bytes
 * per channel, or, with one multiplier, one record and a 4-byte bias per channel).
 * Plain C: the host builds it too, on conv_pie.c's C twins of the PIE loops. */
#include <stddef.h>
#include <string.h>

#include "conv_pie.h"
#include "sqz/kernels_esp32s3.h"

/* Mirrors converter/arch/esp32s3.py. A block is sized for the larger (general mode) record,
 * so the sizes need no activation bounds: at most 16 bytes a channel more than needed. */
#define SQZ_PIE_PACKED_BLOCK_BYTES 8192
#define SQZ_PIE_PACKED_MAX_RECORD (2 * SQZ_PIE_RECORD)

#if defined(__XTENSA__)
/* The decoder's word load. The Xtensa core has no unaligned loads, and a memcpy of 4 bytes
 * from any address costs four byte loads and their shifts, about 12 instructions, for each
 * 4 indices or sparse code: here a word from any byte is the two aligned words around it
 * joined by the funnel shift (SSA8L sets the shift from the address's low bits, SRC shifts the
 * pair), 4 instructions. The second word reaches up to 7 bytes past the first byte: the
 * converter aligns every weight array (weights_attr; decode_block checks the stream) and
 * gives this kernel's streams PIE_STREAM_SLACK bytes of zeros after their pad
 * (converter/arch/esp32s3.py), so every word read is inside the array. Elsewhere (the host's
 * build of this file) and for trailing ones (NSAU-based on the LX7), the decoder's portable
 * primitives. */
static inline uint32_t load32(const uint8_t *p)
{
    const uint32_t *w = (const uint32_t *)(const void *)((uintptr_t)p & ~(uintptr_t)3u);
    uint32_t v;
    __asm__("ssa8l %1\n\tsrc %0, %2, %3" : "=r"(v) : "r"(p), "r"(w[1]), "r"(w[0]));
    return v;
}
#define SQZ_PACKED_LOAD32 load32

/* The flash the converter counts per packed filter: converter/ir/packing.py HEADER_BYTES for
 * sqz_packed_filter, and converter/arch/esp32s3.py PIE_HEADER_EXTRA more for this kernel's. */
typedef char sqz_pie_packed_header_check[(sizeof(sqz_packed_filter) == 16 &&
                                          sizeof(sqz_packed_filter_records) == 16 + 12) ? 1 : -1];
#endif

#include "../../runtime/packed_decode.h"

int32_t sqz_conv_s8_pie_packed_block(const sqz_conv_params *params,
                                     const sqz_dims *filter_dims)
{
    const int32_t row_len = sqz_conv_s8_pie_filter_row_len(params, filter_dims);
    int32_t block = SQZ_PIE_PACKED_BLOCK_BYTES / (row_len + SQZ_PIE_PACKED_MAX_RECORD);
    block = block < 1 ? 1 : block;
    block = block > SQZ_PACKED_MAX_BLOCK ? SQZ_PACKED_MAX_BLOCK : block;
    return block < filter_dims->n ? block : filter_dims->n;
}

/* Alignment slack, the block's records and weights, then one channel's taps decoded before
 * they are spread over the padded filter rows. */
static int32_t block_bytes(int32_t block, int32_t row_len)
{
    return 15 + block * (SQZ_PIE_PACKED_MAX_RECORD + row_len) + row_len;
}

int32_t sqz_conv_s8_pie_packed_scratch_size(const sqz_conv_params *params,
                                            const sqz_dims *input_dims,
                                            const sqz_dims *filter_dims,
                                            const sqz_dims *output_dims)
{
    return block_bytes(sqz_conv_s8_pie_packed_block(params, filter_dims),
                       sqz_conv_s8_pie_filter_row_len(params, filter_dims)) +
           sqz_conv_s8_pie_scratch_size(params, input_dims, filter_dims, output_dims);
}

/* Channels per block from the scratch given: the least block's, or more where the converter
 * gave more (the dense kernel's scratch does not depend on the channel count). */
static int32_t block_in(const sqz_context *ctx, const sqz_conv_params *params,
                        const sqz_dims *input_dims, const sqz_dims *filter_dims,
                        const sqz_dims *output_dims)
{
    const int32_t least = sqz_conv_s8_pie_packed_block(params, filter_dims);
    const int32_t row_len = sqz_conv_s8_pie_filter_row_len(params, filter_dims);
    const int32_t dense =
        sqz_conv_s8_pie_scratch_size(params, input_dims, filter_dims, output_dims);
    int32_t block = (ctx->size - dense - 15 - row_len) / (SQZ_PIE_PACKED_MAX_RECORD + row_len);
    block = block > SQZ_PACKED_MAX_BLOCK ? SQZ_PACKED_MAX_BLOCK : block;
    block = block > filter_dims->n ? filter_dims->n : block;
    return block > least ? block : least;
}

/* One channel's kh filter rows of `span` taps each, from `src` back to back to `dst` at a
 * pitch of run_len, zeros after each. Byte loops, not memcpy and memset: the rows are a few
 * bytes (conv1's 9), where a library call costs more than the bytes (GCC would turn the loops
 * back into those calls: the attribute stops it). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
static void spread_rows(const int8_t *src, int32_t kh, int32_t span, int32_t run_len,
                        int8_t *dst)
{
    for (int32_t ky = 0; ky < kh; ++ky, src += span, dst += run_len) {
        int32_t t = 0;
        for (; t < span; ++t) {
            dst[t] = src[t];
        }
        for (; t < run_len; ++t) {
            dst[t] = 0;
        }
    }
}

/* Channels [first, first + n): their records (copied, or made from the shared one and each
 * channel's bias), then their weights with each filter row's
 * kw * c taps at a multiple of 16 (sqz_conv_s8_pie_row's layout). Where a filter row is not a
 * whole number of vectors and there are several, each channel is decoded past the block
 * first and its rows spread out; else it is decoded in place (the decoder zero-fills the
 * rest of the row). */
static sqz_status decode_block(const sqz_packed_filter *pf, const sqz_dims *filter_dims,
                               int32_t first, int32_t n, int32_t row_len, uint32_t *cursor,
                               int8_t *decoded)
{
    /* The layer's filter is an sqz_packed_filter_records, whose first member pf is. */
    const sqz_packed_filter_records *pr = (const sqz_packed_filter_records *)(const void *)pf;
    const int32_t rec = pr->record_bytes;
    if (((uintptr_t)pf->stream & 3u) != 0) {
        return SQZ_ERR_ARG; /* load32 reads the stream's aligned words */
    }
    if (pr->record_bias) {
        /* Word stores: `decoded` is 16-byte aligned; a library memcpy per 16-byte record
         * would cost more than the record. */
        const int32_t words = rec / 4;
        int32_t *dst = (int32_t *)(void *)decoded;
        for (int32_t j = 0; j < n; ++j, dst += words) {
            for (int32_t t = 1; t < words; ++t) {
                dst[t] = pr->records[t];
            }
            dst[0] = (int32_t)((uint32_t)pr->records[0] + (uint32_t)pr->record_bias[first + j]);
        }
    } else {
        memcpy(decoded, (const int8_t *)pr->records + (size_t)first * rec, (size_t)n * rec);
    }
    int8_t *weights = decoded + (size_t)n * rec;
    const int32_t span = filter_dims->w * filter_dims->c;
    const int32_t taps = sqz_dims_taps(filter_dims);
    if (filter_dims->h == 1 || span % 16 == 0) {
        return sqz_packed_decode(pf, taps, first, n, row_len, cursor, weights);
    }
    const int32_t run_len = row_len / filter_dims->h;
    int8_t *one = weights + (size_t)n * row_len;
    for (int32_t j = 0; j < n; ++j) {
        const sqz_status st = sqz_packed_decode(pf, taps, first + j, 1, taps, cursor, one);
        if (st != SQZ_OK) {
            return st;
        }
        spread_rows(one, filter_dims->h, span, run_len, weights + (size_t)j * row_len);
    }
    return SQZ_OK;
}

static const sqz_packed_variant pie = {
    sqz_conv_s8_pie_row, sqz_conv_s8_pie_packed_scratch_size, block_in,
    sqz_conv_s8_pie_filter_row_len, block_bytes, decode_block, 16, 1,
};

sqz_status sqz_conv_s8_pie_packed_rows(const sqz_context *ctx, const sqz_conv_params *params,
                                       const sqz_per_channel_quant *quant,
                                       const sqz_dims *input_dims,
                                       const int8_t *const *input_rows,
                                       const sqz_dims *filter_dims, const void *filter,
                                       const sqz_dims *bias_dims, const int32_t *bias,
                                       int32_t n_rows, const sqz_dims *output_dims,
                                       int8_t *const *output_rows)
{
    /* The records' form must be the one sqz_conv_s8_pie_row reads for these activation
     * bounds (the general form without a ReLU-style clamp): checked once per call. */
    const sqz_packed_filter_records *pr = (const sqz_packed_filter_records *)filter;
    if (!pr || !params || !pr->records) {
        return SQZ_ERR_ARG;
    }
    const int general = params->activation.min < params->output_offset;
    if (pr->record_bytes != (SQZ_PIE_RECORD << general)) {
        return SQZ_ERR_ARG;
    }
    return sqz_packed_rows(&pie, ctx, params, quant, input_dims, input_rows, filter_dims,
                           filter, bias_dims, bias, n_rows, output_dims, output_rows);
}

sqz_status sqz_conv_s8_pie_packed_row(const sqz_context *ctx, const sqz_conv_params *params,
                                      const sqz_per_channel_quant *quant,
                                      const sqz_dims *input_dims,
                                      const int8_t *const *input_rows,
                                      const sqz_dims *filter_dims, const void *filter,
                                      const sqz_dims *bias_dims, const int32_t *bias,
                                      const sqz_dims *output_dims, int8_t *output_row)
{
    int8_t *const out[1] = {output_row};
    return sqz_conv_s8_pie_packed_rows(ctx, params, quant, input_dims, input_rows, filter_dims,
                                       filter, bias_dims, bias, 1, output_dims, out);
}

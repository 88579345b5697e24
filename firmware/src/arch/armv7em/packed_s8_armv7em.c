/* CONV_2D on packed weights for Armv7E-M: a block of output channels at a time is decoded
 * (runtime/packed_s8.c's decoder) into the layout sqz_conv_s8_armv7em_row reads, then that
 * kernel runs on the block and writes its slice of the output's channels. The decoded block
 * is all of the filter that is ever in RAM. */
#include <stddef.h>
#include <string.h>

#include "dsp.h"
#include "sqz/kernels_armv7em.h"

/* Mirrors converter/arch/armv7em.py: as in the portable packed kernel (packed_s8.c). */
#define SQZ_ARMV7EM_PACKED_BLOCK_BYTES 4096
#define SQZ_ARMV7EM_PACKED_MAX_BLOCK 64

int32_t sqz_conv_s8_armv7em_packed_block(const sqz_conv_params *params,
                                         const sqz_dims *filter_dims)
{
    const int32_t row_len = sqz_conv_s8_armv7em_filter_row_len(params, filter_dims);
    int32_t block = SQZ_ARMV7EM_PACKED_BLOCK_BYTES / row_len;
    block &= ~1; /* whole channel pairs, as the layout interleaves them */
    block = block < 2 ? 2 : block;
    block = block > SQZ_ARMV7EM_PACKED_MAX_BLOCK ? SQZ_ARMV7EM_PACKED_MAX_BLOCK : block;
    return block < filter_dims->n ? block : filter_dims->n;
}

/* The decoded block, then one channel pair decoded row by row before interleaving, then the
 * dense kernel's own scratch (for a block of channels: it does not depend on their count). */
static int32_t block_bytes(int32_t block, int32_t row_len)
{
    return (block + 2) * row_len;
}

int32_t sqz_conv_s8_armv7em_packed_scratch_size(const sqz_conv_params *params,
                                                const sqz_dims *input_dims,
                                                const sqz_dims *filter_dims,
                                                const sqz_dims *output_dims)
{
    return block_bytes(sqz_conv_s8_armv7em_packed_block(params, filter_dims),
                       sqz_conv_s8_armv7em_filter_row_len(params, filter_dims)) +
           sqz_conv_s8_armv7em_scratch_size(params, input_dims, filter_dims, output_dims);
}

/* Channels per block from the scratch given: the minimum's, or more (whole pairs) where the
 * converter gave more; the dense kernel gets its own scratch size either way. */
static int32_t block_in(const sqz_context *ctx, const sqz_conv_params *params,
                        const sqz_dims *input_dims, const sqz_dims *filter_dims,
                        const sqz_dims *output_dims)
{
    const int32_t least = sqz_conv_s8_armv7em_packed_block(params, filter_dims);
    const int32_t row_len = sqz_conv_s8_armv7em_filter_row_len(params, filter_dims);
    const int32_t dense =
        sqz_conv_s8_armv7em_scratch_size(params, input_dims, filter_dims, output_dims);
    int32_t block = ((ctx->size - dense) / row_len - 2) & ~1;
    block = block > SQZ_ARMV7EM_PACKED_MAX_BLOCK ? SQZ_ARMV7EM_PACKED_MAX_BLOCK : block;
    block = block > filter_dims->n ? filter_dims->n : block;
    return block > least ? block : least;
}

/* The packed-weights decoder (runtime/packed_decode.h), with this core's unaligned LDR and
 * RBIT + CLZ for its two primitives. */
#define SQZ_PACKED_LOAD32 sqz_load32
#define SQZ_PACKED_TRAILING_ONES sqz_trailing_ones
#include "../../runtime/packed_decode.h"

/* Rows a and b (row_len bytes each, a multiple of 4) into the pair layout: four taps of a,
 * four of b, and so on. */
static void interleave_pair(const int8_t *a, const int8_t *b, int32_t row_len, int8_t *dst)
{
    for (int32_t t = 0; t < row_len; t += 4, dst += 8) {
        memcpy(dst, a + t, 4);
        memcpy(dst + 4, b + t, 4);
    }
}

/* Channels [first, first + n) in the dense kernel's layout: pairs decoded row by row just past
 * the block so far, then interleaved into it; an odd last channel follows alone, as in the
 * dense layout. */
static sqz_status decode_block(const sqz_packed_filter *pf, const sqz_dims *filter_dims,
                               int32_t first, int32_t n, int32_t row_len, uint32_t *cursor,
                               int8_t *decoded)
{
    const int32_t taps = sqz_dims_taps(filter_dims);
    int8_t *pair = decoded + (size_t)n * row_len;
    for (int32_t j = 0; j < n; j += 2) {
        int8_t *dst = decoded + (size_t)j * row_len;
        const int32_t count = j + 1 < n ? 2 : 1;
        const sqz_status st =
            sqz_packed_decode(pf, taps, first + j, count, row_len, cursor, count == 2 ? pair : dst);
        if (st != SQZ_OK) {
            return st;
        }
        if (count == 2) {
            interleave_pair(pair, pair + row_len, row_len, dst);
        }
    }
    return SQZ_OK;
}

static const sqz_packed_variant armv7em = {
    sqz_conv_s8_armv7em_row, sqz_conv_s8_armv7em_packed_scratch_size, block_in,
    sqz_conv_s8_armv7em_filter_row_len, block_bytes, decode_block, 1, 0,
};

sqz_status sqz_conv_s8_armv7em_packed_rows(const sqz_context *ctx,
                                           const sqz_conv_params *params,
                                           const sqz_per_channel_quant *quant,
                                           const sqz_dims *input_dims,
                                           const int8_t *const *input_rows,
                                           const sqz_dims *filter_dims, const void *filter,
                                           const sqz_dims *bias_dims, const int32_t *bias,
                                           int32_t n_rows, const sqz_dims *output_dims,
                                           int8_t *const *output_rows)
{
    return sqz_packed_rows(&armv7em, ctx, params, quant, input_dims, input_rows, filter_dims,
                           filter, bias_dims, bias, n_rows, output_dims, output_rows);
}

sqz_status sqz_conv_s8_armv7em_packed_row(const sqz_context *ctx,
                                          const sqz_conv_params *params,
                                          const sqz_per_channel_quant *quant,
                                          const sqz_dims *input_dims,
                                          const int8_t *const *input_rows,
                                          const sqz_dims *filter_dims, const void *filter,
                                          const sqz_dims *bias_dims, const int32_t *bias,
                                          const sqz_dims *output_dims, int8_t *output_row)
{
    int8_t *const out[1] = {output_row};
    return sqz_conv_s8_armv7em_packed_rows(ctx, params, quant, input_dims, input_rows,
                                           filter_dims, filter, bias_dims, bias, 1, output_dims,
                                           out);
}

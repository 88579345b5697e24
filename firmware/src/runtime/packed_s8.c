#include <stddef.h>
#include <string.h>

#include "sqz/kernels.h"

/* Decoded weights per block: enough output channels to spread the per-block cost (each block
 * widens the input again) without holding more than this many bytes of weights in RAM. */
#define SQZ_PACKED_BLOCK_BYTES 4096

/* The decoder with its portable primitives. */
#include "packed_decode.h"

sqz_status sqz_packed_decode_rows(const sqz_packed_filter *filter, int32_t taps,
                                  int32_t first, int32_t count, int32_t row_len,
                                  uint32_t *cursor, int8_t *rows)
{
    if (!filter || !cursor || !rows || taps < 1 || row_len < taps) {
        return SQZ_ERR_ARG;
    }
    return sqz_packed_decode(filter, taps, first, count, row_len, cursor, rows);
}

int32_t sqz_conv_s8_packed_block(const sqz_conv_params *params, const sqz_dims *filter_dims)
{
    const int32_t row_len = sqz_conv_s8_filter_row_len(params, filter_dims);
    int32_t block = SQZ_PACKED_BLOCK_BYTES / row_len;
    block = block < 1 ? 1 : block;
    block = block > SQZ_PACKED_MAX_BLOCK ? SQZ_PACKED_MAX_BLOCK : block;
    return block < filter_dims->n ? block : filter_dims->n;
}

static int32_t block_bytes(int32_t block, int32_t row_len)
{
    return (block * row_len + 3) & ~3; /* the dense kernel's int16 scratch follows, aligned */
}

/* Channels per block from the scratch given: the minimum's block, or more where the converter
 * gave more (it does where the arena has room: fewer blocks re-widen the input fewer times). */
static int32_t block_in(const sqz_context *ctx, const sqz_conv_params *params,
                        const sqz_dims *input_dims, const sqz_dims *filter_dims,
                        const sqz_dims *output_dims)
{
    const int32_t least = sqz_conv_s8_packed_block(params, filter_dims);
    const int32_t row_len = sqz_conv_s8_filter_row_len(params, filter_dims);
    const int32_t dense =
        sqz_conv_s8_scratch_size(params, input_dims, filter_dims, output_dims);
    int32_t block = (ctx->size - dense) / row_len;
    block = block > SQZ_PACKED_MAX_BLOCK ? SQZ_PACKED_MAX_BLOCK : block;
    block = block > filter_dims->n ? filter_dims->n : block;
    while (block > least && block_bytes(block, row_len) + dense > ctx->size) {
        --block;
    }
    return block > least ? block : least;
}

int32_t sqz_conv_s8_packed_scratch_size(const sqz_conv_params *params,
                                        const sqz_dims *input_dims,
                                        const sqz_dims *filter_dims,
                                        const sqz_dims *output_dims)
{
    return block_bytes(sqz_conv_s8_packed_block(params, filter_dims),
                       sqz_conv_s8_filter_row_len(params, filter_dims)) +
           sqz_conv_s8_scratch_size(params, input_dims, filter_dims, output_dims);
}

static sqz_status decode_block(const sqz_packed_filter *pf, const sqz_dims *filter_dims,
                               int32_t first, int32_t n, int32_t row_len, uint32_t *cursor,
                               int8_t *decoded)
{
    return sqz_packed_decode(pf, sqz_dims_taps(filter_dims), first, n, row_len, cursor,
                             decoded);
}

static const sqz_packed_variant portable = {
    sqz_conv_s8_row, sqz_conv_s8_packed_scratch_size, block_in, sqz_conv_s8_filter_row_len,
    block_bytes, decode_block, 1, 0,
};

sqz_status sqz_conv_s8_packed_rows(const sqz_context *ctx, const sqz_conv_params *params,
                                   const sqz_per_channel_quant *quant,
                                   const sqz_dims *input_dims, const int8_t *const *input_rows,
                                   const sqz_dims *filter_dims, const void *filter,
                                   const sqz_dims *bias_dims, const int32_t *bias,
                                   int32_t n_rows, const sqz_dims *output_dims,
                                   int8_t *const *output_rows)
{
    return sqz_packed_rows(&portable, ctx, params, quant, input_dims, input_rows, filter_dims,
                           filter, bias_dims, bias, n_rows, output_dims, output_rows);
}

sqz_status sqz_conv_s8_packed_row(const sqz_context *ctx, const sqz_conv_params *params,
                                  const sqz_per_channel_quant *quant,
                                  const sqz_dims *input_dims, const int8_t *const *input_rows,
                                  const sqz_dims *filter_dims, const void *filter,
                                  const sqz_dims *bias_dims, const int32_t *bias,
                                  const sqz_dims *output_dims, int8_t *output_row)
{
    int8_t *const out[1] = {output_row};
    return sqz_conv_s8_packed_rows(ctx, params, quant, input_dims, input_rows, filter_dims,
                                   filter, bias_dims, bias, 1, output_dims, out);
}

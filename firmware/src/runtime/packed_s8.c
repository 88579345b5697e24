#include <stddef.h>
#include <string.h>

#include "sqz/kernels.h"

/* Decoded weights per block: enough output channels to spread the per-block cost (each block
 * widens the input again) without holding more than this many bytes of weights in RAM. */
#define SQZ_PACKED_BLOCK_BYTES 4096
/* Most output channels per block: the per-tensor requantization constants are expanded into
 * arrays this long on the stack. */
#define SQZ_PACKED_MAX_BLOCK 64

/* Least significant bits first from consecutive bytes; a 32-bit window refilled byte by byte
 * keeps it portable (no unaligned loads) and exact for codes up to 24 bits. */
typedef struct {
    const uint8_t *next;
    uint32_t window;
    int32_t have;
} bit_reader;

static void reader_at(bit_reader *r, const uint8_t *stream, uint32_t bit)
{
    r->next = stream + (bit >> 3);
    r->window = 0;
    r->have = 0;
    while (r->have <= 24) {
        r->window |= (uint32_t)(*r->next++) << r->have;
        r->have += 8;
    }
    r->window >>= bit & 7u;
    r->have -= (int32_t)(bit & 7u);
}

static uint32_t take(bit_reader *r, int32_t width)
{
    if (r->have < width) {
        while (r->have <= 24) {
            r->window |= (uint32_t)(*r->next++) << r->have;
            r->have += 8;
        }
    }
    const uint32_t v = r->window & ((1u << width) - 1u);
    r->window >>= width;
    r->have -= width;
    return v;
}

static uint32_t rice(bit_reader *r, int32_t k)
{
    uint32_t q = 0;
    while (take(r, 1)) {
        ++q;
    }
    return (q << k) | (k ? take(r, k) : 0u);
}

sqz_status sqz_packed_decode_rows(const sqz_packed_filter *filter, int32_t taps,
                                  int32_t first, int32_t count, int32_t row_len,
                                  uint32_t *cursor, int8_t *rows)
{
    if (!filter || !filter->stream || !filter->codebook || !cursor || !rows || taps < 1 ||
        row_len < taps || filter->bits < 1 || filter->bits > 8 || filter->rice_k > 16) {
        return SQZ_ERR_ARG;
    }
    bit_reader r;
    reader_at(&r, filter->stream, *cursor);
    uint32_t consumed = *cursor;
    const int32_t bits = filter->bits;
    for (int32_t j = 0; j < count; ++j) {
        const int8_t *cb = filter->codebook +
                           (filter->per_channel ? (size_t)(first + j) * filter->entries : 0);
        int8_t *row = rows + (size_t)j * row_len;
        const int32_t start_have = r.have;
        const uint8_t *start_next = r.next;
        if (!filter->sparse) {
            for (int32_t i = 0; i < taps; ++i) {
                const uint32_t idx = take(&r, bits);
                if (idx >= filter->entries) {
                    return SQZ_ERR_ARG;
                }
                row[i] = cb[idx];
            }
        } else {
            memset(row, 0, (size_t)taps);
            uint32_t i = 0;
            for (;;) {
                i += rice(&r, filter->rice_k);
                if (i >= (uint32_t)taps) {
                    break;
                }
                const uint32_t idx = take(&r, bits);
                if (idx >= filter->entries) {
                    return SQZ_ERR_ARG;
                }
                row[i++] = cb[idx];
            }
        }
        memset(row + taps, 0, (size_t)(row_len - taps));
        /* Bits this row took: bytes pulled into the window, less what is still in it. */
        consumed += (uint32_t)((r.next - start_next) * 8 + start_have - r.have);
    }
    *cursor = consumed;
    return SQZ_OK;
}

int32_t sqz_conv_s8_packed_block(const sqz_conv_params *params, const sqz_dims *filter_dims)
{
    const int32_t row_len = sqz_conv_s8_filter_row_len(params, filter_dims);
    int32_t block = SQZ_PACKED_BLOCK_BYTES / row_len;
    block = block < 1 ? 1 : block;
    block = block > SQZ_PACKED_MAX_BLOCK ? SQZ_PACKED_MAX_BLOCK : block;
    return block < filter_dims->n ? block : filter_dims->n;
}

static int32_t block_bytes(const sqz_conv_params *params, const sqz_dims *filter_dims)
{
    const int32_t bytes =
        sqz_conv_s8_packed_block(params, filter_dims) *
        sqz_conv_s8_filter_row_len(params, filter_dims);
    return (bytes + 3) & ~3; /* the dense kernel's int16 scratch follows, aligned */
}

int32_t sqz_conv_s8_packed_scratch_size(const sqz_conv_params *params,
                                        const sqz_dims *input_dims,
                                        const sqz_dims *filter_dims,
                                        const sqz_dims *output_dims)
{
    return block_bytes(params, filter_dims) +
           sqz_conv_s8_scratch_size(params, input_dims, filter_dims, output_dims);
}

sqz_status sqz_conv_s8_packed_row(const sqz_context *ctx, const sqz_conv_params *params,
                                  const sqz_per_channel_quant *quant,
                                  const sqz_dims *input_dims, const int8_t *const *input_rows,
                                  const sqz_dims *filter_dims, const void *filter,
                                  const sqz_dims *bias_dims, const int32_t *bias,
                                  const sqz_dims *output_dims, int8_t *output_row)
{
    if (!ctx || !ctx->buf || !params || !quant || !input_dims || !filter_dims || !filter ||
        !bias_dims || !bias || !output_dims || !output_row) {
        return SQZ_ERR_ARG;
    }
    if (ctx->size <
        sqz_conv_s8_packed_scratch_size(params, input_dims, filter_dims, output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    const sqz_packed_filter *pf = (const sqz_packed_filter *)filter;
    const int32_t block = sqz_conv_s8_packed_block(params, filter_dims);
    const int32_t row_len = sqz_conv_s8_filter_row_len(params, filter_dims);
    const int32_t taps = filter_dims->h * filter_dims->w * filter_dims->c;
    int8_t *decoded = (int8_t *)ctx->buf;
    const int32_t offset = block_bytes(params, filter_dims);
    const sqz_context dense = {(uint8_t *)ctx->buf + offset, ctx->size - offset};
    int32_t mult[SQZ_PACKED_MAX_BLOCK];
    int8_t shift[SQZ_PACKED_MAX_BLOCK];
    if (pf->quant_per_tensor) {
        for (int32_t j = 0; j < block; ++j) {
            mult[j] = quant->multiplier[0];
            shift[j] = quant->shift[0];
        }
    }
    uint32_t cursor = 0;
    for (int32_t oc0 = 0; oc0 < filter_dims->n; oc0 += block) {
        const int32_t n = filter_dims->n - oc0 < block ? filter_dims->n - oc0 : block;
        sqz_status st = sqz_packed_decode_rows(pf, taps, oc0, n, row_len, &cursor, decoded);
        if (st != SQZ_OK) {
            return st;
        }
        /* The block as a conv of its own, writing its slice of the output's channels. */
        const sqz_per_channel_quant q =
            pf->quant_per_tensor ? (sqz_per_channel_quant){mult, shift}
                                 : (sqz_per_channel_quant){quant->multiplier + oc0,
                                                           quant->shift + oc0};
        sqz_dims fd = *filter_dims, bd = *bias_dims, od = *output_dims;
        fd.n = n;
        bd.c = n;
        od.c = n;
        st = sqz_conv_s8_row(&dense, params, &q, input_dims, input_rows, &fd, decoded, &bd,
                             bias + oc0, &od, output_row + oc0);
        if (st != SQZ_OK) {
            return st;
        }
    }
    return SQZ_OK;
}

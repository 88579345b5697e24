/* How a node's kernel finds its rows in the arena: shared by the node adapters that sit beside
 * each kernel (sqz_node_conv in conv_s8.c, ...). Internal to the runtime. */
#ifndef SQZ_NODE_H
#define SQZ_NODE_H

#include <stdint.h>

#include "sqz/runtime.h"

/* Row r (batch-major) of a tensor, in its ring or whole. */
static inline uint8_t *sqz_row_at(uint8_t *arena, const sqz_rows *r, int32_t row)
{
    return arena + r->offset + ((uint32_t)row % r->slots) * r->pitch;
}

/* The input rows output row k of a windowed kernel reads (NULL outside the input), as the
 * converter's row scheduler (converter/passes/stream.py, call_reads) assumes. */
static inline void sqz_window_rows(uint8_t *arena, const sqz_rows *in, int32_t in_h,
                                   int32_t out_h, int32_t k, int32_t stride, int32_t pad,
                                   int32_t dilation, int32_t taps, const int8_t **rows)
{
    const int32_t b = k / out_h;
    const int32_t iy0 = (k % out_h) * stride - pad;
    for (int32_t j = 0; j < taps; ++j) {
        const int32_t iy = iy0 + j * dilation;
        rows[j] = (iy >= 0 && iy < in_h) ? (const int8_t *)sqz_row_at(arena, in, b * in_h + iy)
                                         : NULL;
    }
}

/* A row of a tensor as a tensor of its own, for the elementwise kernels. */
static inline sqz_dims sqz_row_dims(const sqz_dims *d)
{
    const sqz_dims r = {1, 1, d->w, d->c};
    return r;
}

static inline sqz_context sqz_node_scratch(const sqz_node *nd, uint8_t *arena)
{
    const sqz_context ctx = {arena + nd->scratch, (int32_t)nd->scratch_size};
    return ctx;
}

#endif

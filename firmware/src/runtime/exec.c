#include <stddef.h>
#include <string.h>

#include "sqz/runtime.h"

static uint8_t *row_at(uint8_t *arena, const sqz_rows *r, int32_t row)
{
    return arena + r->offset + ((uint32_t)row % r->slots) * r->pitch;
}

/* The input rows a windowed kernel's output row reads (NULL outside the input), as the
 * converter's row scheduler (converter/stream.py) assumes. Rows are batch-major. */
static void window_rows(uint8_t *arena, const sqz_rows *in, int32_t in_h, int32_t out_h,
                        int32_t k, int32_t stride, int32_t pad, int32_t dilation, int32_t taps,
                        const int8_t **rows)
{
    const int32_t b = k / out_h;
    const int32_t iy0 = (k % out_h) * stride - pad;
    for (int32_t j = 0; j < taps; ++j) {
        const int32_t iy = iy0 + j * dilation;
        rows[j] = (iy >= 0 && iy < in_h) ? (const int8_t *)row_at(arena, in, b * in_h + iy)
                                         : NULL;
    }
}

/* A row of a tensor as a tensor of its own, for the elementwise kernels. */
static sqz_dims row_dims(const sqz_dims *d)
{
    const sqz_dims r = {1, 1, d->w, d->c};
    return r;
}

static sqz_status call_node(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_context ctx = {arena + nd->scratch, (int32_t)nd->scratch_size};
    const int8_t *rows[SQZ_MAX_FILTER_ROWS];
    switch ((sqz_op)nd->op) {
    case SQZ_OP_CONV: {
        const sqz_conv_layer *l = nd->layer.conv;
        const sqz_conv_params *p = &l->params;
        if (l->filter_dims.h > SQZ_MAX_FILTER_ROWS) {
            return SQZ_ERR_UNSUPPORTED;
        }
        window_rows(arena, &nd->input, l->input_dims.h, l->output_dims.h, k, p->stride.h,
                    p->padding.h, p->dilation.h, l->filter_dims.h, rows);
        return l->row(&ctx, p, &l->quant, &l->input_dims, rows, &l->filter_dims, l->filter,
                      &l->bias_dims, l->bias, &l->output_dims,
                      (int8_t *)row_at(arena, &nd->output, k));
    }
    case SQZ_OP_MAX_POOL:
    case SQZ_OP_AVG_POOL: {
        const sqz_pool_layer *l = nd->layer.pool;
        if (l->filter_dims.h > SQZ_MAX_FILTER_ROWS) {
            return SQZ_ERR_UNSUPPORTED;
        }
        window_rows(arena, &nd->input, l->input_dims.h, l->output_dims.h, k,
                    l->params.stride.h, l->params.padding.h, 1, l->filter_dims.h, rows);
        return l->row(&l->params, &l->input_dims, rows, &l->filter_dims, &l->output_dims,
                      (int8_t *)row_at(arena, &nd->output, k));
    }
    case SQZ_OP_MAX_POOL_PUSH: {
        const sqz_pool_layer *l = nd->layer.pool;
        const int32_t h = l->input_dims.h;
        const int32_t b = k / h;
        int32_t first = 0, n = 0;
        sqz_pool_s8_push_span(&l->params, &l->input_dims, &l->filter_dims, &l->output_dims,
                              k % h, &first, &n);
        if (n > SQZ_MAX_FILTER_ROWS) {
            return SQZ_ERR_UNSUPPORTED;
        }
        int8_t *outs[SQZ_MAX_FILTER_ROWS];
        for (int32_t j = 0; j < n; ++j) {
            outs[j] = (int8_t *)row_at(arena, &nd->output, b * l->output_dims.h + first + j);
        }
        return l->push(&l->params, &l->input_dims,
                       (const int8_t *)row_at(arena, &nd->input, k), k % h, &l->filter_dims,
                       &l->output_dims, outs, first, n);
    }
    case SQZ_OP_MEAN: {
        const sqz_mean_layer *l = nd->layer.mean;
        const int32_t h = l->input_dims.h;
        return sqz_mean_s8_row(&ctx, &l->params, &l->input_dims,
                               (const int8_t *)row_at(arena, &nd->input, k), k % h,
                               &l->output_dims,
                               (int8_t *)row_at(arena, &nd->output, k / h));
    }
    case SQZ_OP_CONCAT: {
        const sqz_concat_layer *l = nd->layer.concat;
        if (l->params.axis != 3) { /* along another axis: one call, whole tensors */
            return sqz_concat_s8(&l->params, &l->input_dims, (const int8_t *)arena +
                                 nd->input.offset, &l->output_dims,
                                 (int8_t *)arena + nd->output.offset);
        }
        const sqz_dims in = row_dims(&l->input_dims);
        const sqz_dims out = row_dims(&l->output_dims);
        return sqz_concat_s8(&l->params, &in, (const int8_t *)row_at(arena, &nd->input, k),
                             &out, (int8_t *)row_at(arena, &nd->output, k));
    }
    case SQZ_OP_ADD: {
        const sqz_add_layer *l = nd->layer.add;
        const sqz_dims d = row_dims(&l->dims);
        return sqz_add_s8(&l->params, &d, (const int8_t *)row_at(arena, &nd->input, k), &d,
                          (const int8_t *)row_at(arena, &nd->input2, k), &d,
                          (int8_t *)row_at(arena, &nd->output, k));
    }
    case SQZ_OP_REQUANTIZE: {
        const sqz_requantize_layer *l = nd->layer.requantize;
        const sqz_dims d = row_dims(&l->dims);
        return sqz_requantize_s8(&l->params, &d, (const int8_t *)row_at(arena, &nd->input, k),
                                 &d, (int8_t *)row_at(arena, &nd->output, k));
    }
    case SQZ_OP_SOFTMAX: {
        const sqz_softmax_layer *l = nd->layer.softmax;
        return sqz_softmax_s8(&l->params, &l->dims, (const int8_t *)arena + nd->input.offset,
                              &l->dims, (int8_t *)arena + nd->output.offset);
    }
    case SQZ_OP_FULLY_CONNECTED: {
        const sqz_fc_layer *l = nd->layer.fc;
        return sqz_fully_connected_s8(&l->params, &l->quant, &l->input_dims,
                                      (const int8_t *)arena + nd->input.offset,
                                      &l->filter_dims, l->filter, &l->bias_dims, l->bias,
                                      &l->output_dims, (int8_t *)arena + nd->output.offset);
    }
    case SQZ_OP_LOAD_CONST: {
        const sqz_load_const_layer *l = nd->layer.load_const;
        if (!l->data) {
            return SQZ_ERR_ARG;
        }
        memcpy(arena + nd->output.offset, l->data, l->bytes);
        return SQZ_OK;
    }
    }
    return SQZ_ERR_OP;
}

sqz_status sqz_run(const sqz_model *model, uint8_t *arena, sqz_node_hook hook, void *user,
                   uint16_t *failed_node)
{
    if (!model || !arena) {
        return SQZ_ERR_ARG;
    }
    for (uint16_t s = 0; s < model->n_segments; ++s) {
        const sqz_segment *seg = &model->segments[s];
        if (seg->n_nodes > SQZ_MAX_SEGMENT_NODES ||
            seg->first_node + seg->n_nodes > model->n_nodes) {
            return SQZ_ERR_ARG;
        }
        /* Calls made so far per node: the row (or call) index of its next call. */
        int32_t done[SQZ_MAX_SEGMENT_NODES] = {0};
        for (uint16_t e = 0; e < seg->n_order; ++e) {
            const sqz_run_entry run = seg->order[e];
            if (run.node >= seg->n_nodes) {
                return SQZ_ERR_ARG;
            }
            const uint16_t index = (uint16_t)(seg->first_node + run.node);
            const sqz_node *nd = &model->nodes[index];
            for (uint8_t c = 0; c < run.calls; ++c) {
                const sqz_status st = call_node(nd, done[run.node], arena);
                if (st != SQZ_OK) {
                    if (failed_node) {
                        *failed_node = index;
                    }
                    return st;
                }
                done[run.node]++;
                if (hook) {
                    hook(user, index);
                }
            }
        }
    }
    return SQZ_OK;
}

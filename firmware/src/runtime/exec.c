#include <stddef.h>
#include <string.h>

#include "node.h"
#include "sqz/runtime.h"

/* Constants copied into the arena need no kernel: the node adapter is the whole op. */
sqz_status sqz_node_load_const(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_load_const_layer *l = nd->layer.load_const;
    (void)k;
    if (!l->data) {
        return SQZ_ERR_ARG;
    }
    memcpy(arena + nd->output.offset, l->data, l->bytes);
    return SQZ_OK;
}

/* The plain input node: row `row` is ready once rows_ready passes it. With a source it is
 * copied from there into its ring slot; without one the application already wrote it there. */
sqz_status sqz_feed_rows(const sqz_node *nd, int32_t row, sqz_exec *ex, int *ready)
{
    if (row >= ex->rows_ready) {
        *ready = 0;
        return SQZ_OK;
    }
    *ready = 1;
    if (ex->src) {
        const uint32_t n = ex->model->input_row_bytes;
        memcpy(sqz_row_at(ex->arena, &nd->output, row),
               ex->src + ((uint32_t)row % ex->src_slots) * ex->src_pitch, n);
    }
    return SQZ_OK;
}

void sqz_exec_begin(sqz_exec *ex, const sqz_model *model, uint8_t *arena, sqz_node_hook hook,
                    void *user)
{
    memset(ex, 0, sizeof *ex);
    ex->model = model;
    ex->arena = arena;
    ex->hook = hook;
    ex->user = user;
}

void sqz_exec_source(sqz_exec *ex, const uint8_t *src, uint32_t pitch, uint32_t slots,
                     int32_t rows_ready)
{
    ex->src = src;
    ex->src_pitch = pitch;
    ex->src_slots = slots ? slots : 1u;
    ex->rows_ready = rows_ready;
}

uint8_t *sqz_exec_input_row(const sqz_exec *ex, int32_t row)
{
    const sqz_model *m = ex->model;
    if (!m || !ex->arena || m->input_node >= m->n_nodes || row < 0) {
        return NULL;
    }
    const sqz_node *nd = &m->nodes[m->input_node];
    if (nd->layer.input && nd->layer.input->camera) {
        return NULL;
    }
    return sqz_row_at(ex->arena, &nd->output, row);
}

sqz_status sqz_exec_continue(sqz_exec *ex)
{
    const sqz_model *model = ex->model;
    if (!model || !ex->arena) {
        return SQZ_ERR_ARG;
    }
    if (ex->finished) {
        return SQZ_OK;
    }
    for (; ex->segment < model->n_segments; ++ex->segment, ex->entry = 0, ex->call = 0) {
        const sqz_segment *seg = &model->segments[ex->segment];
        if (seg->n_nodes > SQZ_MAX_SEGMENT_NODES ||
            seg->first_node + seg->n_nodes > model->n_nodes) {
            return SQZ_ERR_ARG;
        }
        if (ex->entry == 0 && ex->call == 0) {
            /* Calls made so far per node: the row (or call) index of its next call. */
            memset(ex->done, 0, sizeof ex->done);
        }
        for (; ex->entry < seg->n_order; ++ex->entry, ex->call = 0) {
            const sqz_run_entry run = seg->order[ex->entry];
            if (run.node >= seg->n_nodes) {
                return SQZ_ERR_ARG;
            }
            const uint16_t index = (uint16_t)(seg->first_node + run.node);
            const sqz_node *nd = &model->nodes[index];
            for (; ex->call < run.calls; ++ex->call) {
                sqz_status st;
                if (nd->op == SQZ_OP_INPUT) {
                    int ready = 0;
                    if (!nd->layer.input || !nd->layer.input->feed) {
                        ex->failed_node = index;
                        return SQZ_ERR_OP;
                    }
                    st = nd->layer.input->feed(nd, ex->done[run.node], ex, &ready);
                    if (st == SQZ_OK && !ready) {
                        return SQZ_WAIT_INPUT; /* resumes at this very call */
                    }
                } else if (nd->run) {
                    st = nd->run(nd, ex->done[run.node], ex->arena);
                } else {
                    ex->failed_node = index;
                    return SQZ_ERR_OP;
                }
                if (st != SQZ_OK) {
                    ex->failed_node = index;
                    return st;
                }
                ex->done[run.node]++;
                if (ex->hook) {
                    ex->hook(ex->user, index);
                }
            }
        }
    }
    ex->finished = 1;
    return SQZ_OK;
}

sqz_status sqz_run(const sqz_model *model, uint8_t *arena, sqz_node_hook hook, void *user,
                   uint16_t *failed_node)
{
    if (!model || !arena) {
        return SQZ_ERR_ARG;
    }
    if (model->input_node != SQZ_NO_INPUT_NODE) {
        return SQZ_ERR_ARG; /* the input arrives row by row: sqz_run_input or sqz_exec_* */
    }
    sqz_exec ex;
    sqz_exec_begin(&ex, model, arena, hook, user);
    const sqz_status st = sqz_exec_continue(&ex);
    if (st != SQZ_OK && failed_node) {
        *failed_node = ex.failed_node;
    }
    return st;
}

sqz_status sqz_run_input(const sqz_model *model, uint8_t *arena, const uint8_t *input,
                         sqz_node_hook hook, void *user, uint16_t *failed_node)
{
    if (!model || !arena || !input) {
        return SQZ_ERR_ARG;
    }
    if (model->input_node == SQZ_NO_INPUT_NODE) {
        memcpy(arena + model->input.offset, input, model->input.bytes);
        return sqz_run(model, arena, hook, user, failed_node);
    }
    if (model->input_node >= model->n_nodes) {
        return SQZ_ERR_ARG;
    }
    const sqz_node *nd = &model->nodes[model->input_node];
    if (!nd->layer.input || nd->layer.input->camera || model->input_row_bytes == 0) {
        return SQZ_ERR_ARG; /* a camera model takes frames: sqz_exec_source with the frame */
    }
    const int32_t rows = model->input.dims.n * model->input.dims.h;
    sqz_exec ex;
    sqz_exec_begin(&ex, model, arena, hook, user);
    sqz_exec_source(&ex, input, model->input_row_bytes, (uint32_t)rows, rows);
    sqz_status st = sqz_exec_continue(&ex);
    if (st == SQZ_WAIT_INPUT) {
        st = SQZ_ERR_ARG; /* every row was there: the schedule is inconsistent */
    }
    if (st != SQZ_OK && failed_node) {
        *failed_node = ex.failed_node;
    }
    return st;
}

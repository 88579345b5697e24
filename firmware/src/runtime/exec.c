#include <stddef.h>
#include <string.h>

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
            if (!nd->run) {
                return SQZ_ERR_OP;
            }
            for (uint8_t c = 0; c < run.calls; ++c) {
                const sqz_status st = nd->run(nd, done[run.node], arena);
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

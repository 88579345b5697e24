#include <stddef.h>
#include <string.h>

#include "sqz/runtime.h"

static sqz_status run_step(const sqz_step *s, uint8_t *arena)
{
    const sqz_context ctx = {arena + s->scratch, (int32_t)s->scratch_size};
    switch ((sqz_op)s->op) {
    case SQZ_OP_CONV: {
        const sqz_conv_layer *l = s->layer.conv;
        return sqz_conv_s8(&ctx, &l->params, &l->quant, &l->input_dims,
                           (const int8_t *)(arena + l->input), &l->filter_dims, l->filter,
                           &l->bias_dims, l->bias, &l->output_dims,
                           (int8_t *)(arena + l->output));
    }
    case SQZ_OP_CONV_POOL: {
        const sqz_conv_pool_layer *l = s->layer.conv_pool;
        const sqz_conv_layer *c = &l->conv;
        return sqz_conv_pool_s8(&ctx, &c->params, &c->quant, &l->pool, &l->pool_filter_dims,
                                &c->output_dims, &c->input_dims,
                                (const int8_t *)(arena + c->input), &c->filter_dims, c->filter,
                                &c->bias_dims, c->bias, &l->pool_output_dims,
                                (int8_t *)(arena + c->output));
    }
    case SQZ_OP_MAX_POOL:
    case SQZ_OP_AVG_POOL: {
        const sqz_pool_layer *l = s->layer.pool;
        return (s->op == SQZ_OP_MAX_POOL ? sqz_max_pool_s8 : sqz_avg_pool_s8)(
            &l->params, &l->input_dims, (const int8_t *)(arena + l->input), &l->filter_dims,
            &l->output_dims, (int8_t *)(arena + l->output));
    }
    case SQZ_OP_MEAN: {
        const sqz_mean_layer *l = s->layer.mean;
        return sqz_mean_s8(&ctx, &l->params, &l->input_dims, (const int8_t *)(arena + l->input),
                           &l->output_dims, (int8_t *)(arena + l->output));
    }
    case SQZ_OP_CONCAT: {
        const sqz_concat_layer *l = s->layer.concat;
        return sqz_concat_s8(&l->params, &l->input_dims, (const int8_t *)(arena + l->input),
                             &l->output_dims, (int8_t *)(arena + l->output));
    }
    case SQZ_OP_ADD: {
        const sqz_add_layer *l = s->layer.add;
        return sqz_add_s8(&l->params, &l->input1_dims, (const int8_t *)(arena + l->input1),
                          &l->input2_dims, (const int8_t *)(arena + l->input2), &l->output_dims,
                          (int8_t *)(arena + l->output));
    }
    case SQZ_OP_SOFTMAX: {
        const sqz_softmax_layer *l = s->layer.softmax;
        return sqz_softmax_s8(&l->params, &l->input_dims, (const int8_t *)(arena + l->input),
                              &l->output_dims, (int8_t *)(arena + l->output));
    }
    case SQZ_OP_FULLY_CONNECTED: {
        const sqz_fc_layer *l = s->layer.fc;
        return sqz_fully_connected_s8(&l->params, &l->quant, &l->input_dims,
                                      (const int8_t *)(arena + l->input), &l->filter_dims,
                                      l->filter, &l->bias_dims, l->bias, &l->output_dims,
                                      (int8_t *)(arena + l->output));
    }
    case SQZ_OP_REQUANTIZE: {
        const sqz_requantize_layer *l = s->layer.requantize;
        return sqz_requantize_s8(&l->params, &l->input_dims, (const int8_t *)(arena + l->input),
                                 &l->output_dims, (int8_t *)(arena + l->output));
    }
    case SQZ_OP_LOAD_CONST: {
        const sqz_load_const_layer *l = s->layer.load_const;
        if (!l->data) {
            return SQZ_ERR_ARG;
        }
        memcpy(arena + l->output, l->data, l->bytes);
        return SQZ_OK;
    }
    }
    return SQZ_ERR_OP;
}

sqz_status sqz_run(const sqz_model *model, uint8_t *arena, sqz_step_hook hook, void *user,
                   uint16_t *failed_step)
{
    if (!model || !arena) {
        return SQZ_ERR_ARG;
    }
    for (uint16_t i = 0; i < model->n_steps; ++i) {
        const sqz_status st = run_step(&model->steps[i], arena);
        if (st != SQZ_OK) {
            if (failed_step) {
                *failed_step = i;
            }
            return st;
        }
        if (hook) {
            hook(user, i);
        }
    }
    return SQZ_OK;
}

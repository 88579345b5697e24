#include <stddef.h>
#include <string.h>

#include "requantize_row.h"
#include "node.h"
#include "sqz/kernels.h"

sqz_status sqz_concat_s8(const sqz_concat_params *params, const sqz_dims *input_dims,
                         const int8_t *input, const sqz_dims *output_dims, int8_t *output)
{
    if (!params || !input_dims || !input || !output_dims || !output) {
        return SQZ_ERR_ARG;
    }
    const int32_t in_d[4] = {input_dims->n, input_dims->h, input_dims->w, input_dims->c};
    const int32_t out_d[4] = {output_dims->n, output_dims->h, output_dims->w, output_dims->c};
    const int32_t axis = params->axis;
    if (axis < 0 || axis > 3 || params->axis_offset < 0 ||
        params->axis_offset + in_d[axis] > out_d[axis]) {
        return SQZ_ERR_SHAPE;
    }
    size_t outer = 1;
    size_t inner = 1;
    for (int32_t i = 0; i < 4; ++i) {
        if (i != axis && in_d[i] != out_d[i]) {
            return SQZ_ERR_SHAPE;
        }
        if (i < axis) {
            outer *= (size_t)in_d[i];
        } else if (i > axis) {
            inner *= (size_t)in_d[i];
        }
    }
    /* Each outer index copies one contiguous run of the input into the output's run. */
    const size_t in_run = (size_t)in_d[axis] * inner;
    const size_t out_run = (size_t)out_d[axis] * inner;
    int8_t *dst = output + (size_t)params->axis_offset * inner;
    for (size_t o = 0; o < outer; ++o) {
        if (params->requantize) {
            sqz_requantize_row(input + o * in_run, dst + o * out_run, in_run,
                               params->input_offset, params->output_offset, params->multiplier,
                               params->shift);
        } else {
            memmove(dst + o * out_run, input + o * in_run, in_run);
        }
    }
    return SQZ_OK;
}

sqz_status sqz_node_concat(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_concat_layer *l = nd->layer.concat;
    if (l->params.axis != 3) { /* along another axis: one call, whole tensors */
        return sqz_concat_s8(&l->params, &l->input_dims, (const int8_t *)arena + nd->input.offset,
                             &l->output_dims, (int8_t *)arena + nd->output.offset);
    }
    const sqz_dims in = sqz_row_dims(&l->input_dims);
    const sqz_dims out = sqz_row_dims(&l->output_dims);
    return sqz_concat_s8(&l->params, &in, (const int8_t *)sqz_row_at(arena, &nd->input, k), &out,
                         (int8_t *)sqz_row_at(arena, &nd->output, k));
}

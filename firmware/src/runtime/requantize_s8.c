#include <stddef.h>

#include "requantize_row.h"
#include "node.h"
#include "sqz/kernels.h"

sqz_status sqz_requantize_s8(const sqz_requantize_params *params, const sqz_dims *input_dims,
                             const int8_t *input, const sqz_dims *output_dims, int8_t *output)
{
    if (!params || !input_dims || !input || !output_dims || !output) {
        return SQZ_ERR_ARG;
    }
    const size_t count = (size_t)input_dims->n * input_dims->h * input_dims->w * input_dims->c;
    if (count != (size_t)output_dims->n * output_dims->h * output_dims->w * output_dims->c) {
        return SQZ_ERR_SHAPE;
    }
    sqz_requantize_row(input, output, count, params->input_offset, params->output_offset,
                       params->multiplier, params->shift);
    return SQZ_OK;
}

sqz_status sqz_node_requantize(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_requantize_layer *l = nd->layer.requantize;
    const sqz_dims d = sqz_row_dims(&l->dims);
    return sqz_requantize_s8(&l->params, &d, (const int8_t *)sqz_row_at(arena, &nd->input, k), &d,
                             (int8_t *)sqz_row_at(arena, &nd->output, k));
}

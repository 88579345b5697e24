#include <stddef.h>

#include "fixedpoint.h"
#include "node.h"
#include "sqz/kernels.h"

/* Both inputs are brought to a common scale with 20 bits of headroom, added, and the sum is
 * rescaled to the output: the reference's integer ADD, step for step. */
sqz_status sqz_add_s8(const sqz_add_params *params, const sqz_dims *input1_dims,
                      const int8_t *input1, const sqz_dims *input2_dims, const int8_t *input2,
                      const sqz_dims *output_dims, int8_t *output)
{
    if (!params || !input1_dims || !input1 || !input2_dims || !input2 || !output_dims ||
        !output) {
        return SQZ_ERR_ARG;
    }
    const int same1 = input1_dims->n == output_dims->n && input1_dims->h == output_dims->h &&
                      input1_dims->w == output_dims->w && input1_dims->c == output_dims->c;
    const int same2 = input2_dims->n == output_dims->n && input2_dims->h == output_dims->h &&
                      input2_dims->w == output_dims->w && input2_dims->c == output_dims->c;
    if (!same1 || !same2) {
        return SQZ_ERR_SHAPE;
    }
    const size_t count =
        (size_t)output_dims->n * output_dims->h * output_dims->w * output_dims->c;
    for (size_t i = 0; i < count; ++i) {
        const int32_t a = (params->input1_offset + input1[i]) * (1 << params->left_shift);
        const int32_t b = (params->input2_offset + input2[i]) * (1 << params->left_shift);
        const int32_t sa =
            sqz_requantize(a, params->input1_multiplier, params->input1_shift);
        const int32_t sb =
            sqz_requantize(b, params->input2_multiplier, params->input2_shift);
        const int32_t sum =
            sqz_requantize(sa + sb, params->output_multiplier, params->output_shift) +
            params->output_offset;
        output[i] = (int8_t)sqz_clamp(sum, params->activation.min, params->activation.max);
    }
    return SQZ_OK;
}

sqz_status sqz_node_add(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_add_layer *l = nd->layer.add;
    const sqz_dims d = sqz_row_dims(&l->dims);
    return sqz_add_s8(&l->params, &d, (const int8_t *)sqz_row_at(arena, &nd->input, k), &d,
                      (const int8_t *)sqz_row_at(arena, &nd->input2, k), &d,
                      (int8_t *)sqz_row_at(arena, &nd->output, k));
}

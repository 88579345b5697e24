#include <stddef.h>

#include "fixedpoint.h"
#include "sqz/kernels.h"

sqz_status sqz_fully_connected_s8(const sqz_fc_params *params, const sqz_per_channel_quant *quant,
                                  const sqz_dims *input_dims, const int8_t *input,
                                  const sqz_dims *filter_dims, const int8_t *filter,
                                  const sqz_dims *bias_dims, const int32_t *bias,
                                  const sqz_dims *output_dims, int8_t *output)
{
    if (!params || !quant || !input_dims || !input || !filter_dims || !filter || !bias_dims ||
        !bias || !output_dims || !output || !quant->multiplier || !quant->shift) {
        return SQZ_ERR_ARG;
    }
    const int32_t depth = filter_dims->c;
    const int32_t units = filter_dims->n;
    if (input_dims->c != depth || output_dims->c != units || bias_dims->c != units ||
        input_dims->n != output_dims->n) {
        return SQZ_ERR_SHAPE;
    }
    for (int32_t b = 0; b < input_dims->n; ++b) {
        const int8_t *x = input + (size_t)b * depth;
        for (int32_t u = 0; u < units; ++u) {
            const int8_t *w = filter + (size_t)u * depth;
            int32_t acc = bias[u];
            for (int32_t d = 0; d < depth; ++d) {
                acc += (int32_t)x[d] * (int32_t)w[d];
            }
            acc = sqz_requantize(acc, quant->multiplier[u], quant->shift[u]) +
                  params->output_offset;
            output[(size_t)b * units + u] =
                (int8_t)sqz_clamp(acc, params->activation.min, params->activation.max);
        }
    }
    return SQZ_OK;
}

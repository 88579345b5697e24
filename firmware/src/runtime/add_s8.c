#include <stddef.h>

#include "fixedpoint.h"
#include "node.h"
#include "sqz/kernels.h"

/* The fast path. An input's rescaled value, MultiplyByQuantizedMultiplierSmallerThanOneExp
 * of (x + offset) << 20, depends on its int8 value alone: the converter tabulates it, 256
 * values per input. The sum of two table values is below 2^30 (checked at conversion,
 * converter/ir/steps.py AddStep.tables), so SaturatingRoundingDoublingHighMul(sum, M), that is
 * floor((sum * M + 2^30) / 2^31), equals floor((2 * sum * M + 2^31) / 2^32), the rounded high
 * word of one 32x32 product, and RoundingDivideByPOT needs no 64-bit addition: about a fifth
 * of the general path's instructions on the ESP32-S3, bit for bit the same output. */
static void add_tables(const sqz_add_params *p, const int8_t *input1, const int8_t *input2,
                       size_t count, int8_t *output)
{
    const int32_t *t1 = p->table1 + 128;
    const int32_t *t2 = p->table2 + 128;
    const int32_t mult = p->output_multiplier;
    const int32_t right = -p->output_shift;
    const int32_t half = right ? (int32_t)(1u << (right - 1)) : 0;
    const int32_t offset = p->output_offset;
    const int32_t lo = p->activation.min;
    const int32_t hi = p->activation.max;
    for (size_t i = 0; i < count; ++i) {
        const int32_t sum = t1[input1[i]] + t2[input2[i]];
        const int32_t y = (int32_t)(((int64_t)(2 * sum) * mult + ((int64_t)1 << 31)) >> 32);
        /* Half away from zero: add half, one less below zero (only when shifting). */
        const int32_t v = (right ? (y + half + (y >> 31)) >> right : y) + offset;
        output[i] = (int8_t)sqz_clamp(v, lo, hi);
    }
}

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
    if (params->table1 && params->table2) {
        add_tables(params, input1, input2, count, output);
        return SQZ_OK;
    }
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

#include <stddef.h>

#include "fixedpoint.h"
#include "node.h"
#include "sqz/kernels.h"

/* round_half_away(double(acc * mantissa * 2^exponent)) without floating point: form the exact
 * product (up to 84 bits, in two 64-bit halves), round it to 53 significant bits the way an
 * IEEE double multiply does (nearest, ties to even), then round to an integer with ties away
 * from zero like C's round(). */
static int32_t scale_like_double(int32_t acc, uint64_t mantissa, int32_t exponent)
{
    if (acc == 0 || mantissa == 0) {
        return 0;
    }
    const int negative = acc < 0;
    const uint64_t a = negative ? (uint64_t)(-(int64_t)acc) : (uint64_t)acc;
    const uint64_t lo_part = a * (mantissa & 0xffffffffu); /* < 2^63 */
    const uint64_t hi_part = a * (mantissa >> 32);         /* < 2^52 */
    uint64_t lo = lo_part + (hi_part << 32);
    uint64_t hi = (hi_part >> 32) + (lo < lo_part ? 1u : 0u);

    int32_t bits = 0; /* bit length of the product */
    if (hi) {
        uint64_t h = hi;
        while (h) {
            ++bits;
            h >>= 1;
        }
        bits += 64;
    } else {
        uint64_t l = lo;
        while (l) {
            ++bits;
            l >>= 1;
        }
    }
    uint64_t value; /* the product rounded to a double's 53 bits, times 2^shift */
    int32_t shift = exponent;
    if (bits > 53) {
        const int32_t k = bits - 53; /* 1..31 */
        value = (lo >> k) | (hi << (64 - k));
        const uint64_t rem = lo & (((uint64_t)1 << k) - 1);
        const uint64_t half = (uint64_t)1 << (k - 1);
        if (rem > half || (rem == half && (value & 1u))) {
            ++value;
        }
        shift += k;
    } else {
        value = lo;
    }
    int64_t magnitude;
    if (shift >= 0) {
        magnitude = (shift > 31 || value > ((uint64_t)INT32_MAX >> shift))
                        ? INT32_MAX
                        : (int64_t)(value << shift);
    } else if (-shift > 60) {
        magnitude = 0;
    } else {
        const int32_t r = -shift;
        const uint64_t q = value >> r;
        const uint64_t rem = value & (((uint64_t)1 << r) - 1);
        magnitude = (int64_t)(q + (rem >= ((uint64_t)1 << (r - 1)) ? 1u : 0u));
        if (magnitude > INT32_MAX) {
            magnitude = INT32_MAX;
        }
    }
    return (int32_t)(negative ? -magnitude : magnitude);
}

sqz_status sqz_fully_connected_s8(const sqz_fc_params *params, const sqz_exact_scale *quant,
                                  const sqz_dims *input_dims, const int8_t *input,
                                  const sqz_dims *filter_dims, const int8_t *filter,
                                  const sqz_dims *bias_dims, const int32_t *bias,
                                  const sqz_dims *output_dims, int8_t *output)
{
    if (!params || !quant || !input_dims || !input || !filter_dims || !filter || !bias_dims ||
        !bias || !output_dims || !output || !quant->mantissa || !quant->exponent) {
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
        int32_t x_sum = 0;
        if (params->filter_offset) {
            for (int32_t d = 0; d < depth; ++d) {
                x_sum += x[d];
            }
        }
        for (int32_t u = 0; u < units; ++u) {
            const int8_t *w = filter + (size_t)u * depth;
            int32_t acc = bias[u] + params->filter_offset * x_sum;
            for (int32_t d = 0; d < depth; ++d) {
                acc += (int32_t)x[d] * (int32_t)w[d];
            }
            acc = scale_like_double(acc, quant->mantissa[u], quant->exponent[u]) +
                  params->output_offset;
            output[(size_t)b * units + u] =
                (int8_t)sqz_clamp(acc, params->activation.min, params->activation.max);
        }
    }
    return SQZ_OK;
}

sqz_status sqz_node_fully_connected(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_fc_layer *l = nd->layer.fc;
    (void)k;
    return sqz_fully_connected_s8(&l->params, &l->quant, &l->input_dims,
                                  (const int8_t *)arena + nd->input.offset, &l->filter_dims,
                                  l->filter, &l->bias_dims, l->bias, &l->output_dims,
                                  (int8_t *)arena + nd->output.offset);
}

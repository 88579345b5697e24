#include <stddef.h>

#include "fixedpoint.h"
#include "node.h"
#include "sqz/kernels.h"

/* gemmlowp's fixed-point exp and reciprocal, as TFLite's reference int8 softmax uses them.
 * Qm.n below names a raw int32 holding a value with m integer and n fractional bits. */

/* Saturating multiply by 2^e for e > 0, rounding divide for e < 0. */
static int32_t mul_by_pot(int32_t x, int e)
{
    if (e <= 0) {
        return sqz_rounding_divide_by_pot(x, -e);
    }
    const int32_t threshold = (int32_t)((1u << (31 - e)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << e);
}

static int32_t mul(int32_t a, int32_t b)
{
    return sqz_sat_rounding_doubling_high_mul(a, b);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: 4th-order Taylor series around -1/8. */
static int32_t exp_on_interval(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = mul(x, x);
    const int32_t x3 = mul(x2, x);
    const int32_t x4 = mul(x2, x2);
    const int32_t x4_over_4 = sqz_rounding_divide_by_pot(x4, 2);
    const int32_t poly =
        sqz_rounding_divide_by_pot(mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + mul(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0: a is Q5.26, the result Q0.31. The fractional quarter goes through the
 * Taylor series, each whole power of two of the rest multiplies by a constant exp(-2^k). */
static int32_t exp_on_negative_values(int32_t a)
{
    static const int32_t exp_of_minus_pot[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1)   */
        290630308,  /* exp(-2)   */
        39332535,   /* exp(-4)   */
        720401,     /* exp(-8)   */
        242,        /* exp(-16)  */
    };
    if (a == 0) {
        return INT32_MAX;
    }
    const int32_t quarter = 1 << 24;
    const int32_t a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter;
    int32_t result = exp_on_interval(mul_by_pot(a_mod_quarter_minus_quarter, 5));
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    for (int k = 0; k < 7; ++k) {
        if (remainder & (1 << (24 + k))) {
            result = mul(result, exp_of_minus_pot[k]);
        }
    }
    return result;
}

static int32_t rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps in Q2.29. */
static int32_t one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
    const int32_t c48_over_17 = 1515870810;
    const int32_t c_neg32_over_17 = -1010580540;
    const int32_t one_q2 = 1 << 29;
    int32_t x = c48_over_17 + mul(half_denominator, c_neg32_over_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus = one_q2 - mul(half_denominator, x);
        x = x + mul_by_pot(mul(x, one_minus), 2);
    }
    return mul_by_pot(x, 1);
}

static int32_t count_leading_zeros(uint32_t v)
{
    int32_t n = 0;
    while (n < 32 && !(v & 0x80000000u)) {
        v <<= 1;
        ++n;
    }
    return n;
}

static int32_t scaled_diff(const sqz_softmax_params *p, int32_t diff)
{
    return mul((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
}

sqz_status sqz_softmax_s8(const sqz_softmax_params *params, const sqz_dims *input_dims,
                          const int8_t *input, const sqz_dims *output_dims, int8_t *output)
{
    if (!params || !input_dims || !input || !output_dims || !output) {
        return SQZ_ERR_ARG;
    }
    const int32_t depth = input_dims->c;
    const size_t rows = (size_t)input_dims->n * input_dims->h * input_dims->w;
    if (output_dims->c != depth ||
        rows != (size_t)output_dims->n * output_dims->h * output_dims->w ||
        params->input_left_shift < 0 || params->input_left_shift > 31) {
        return SQZ_ERR_SHAPE;
    }
    for (size_t r = 0; r < rows; ++r) {
        const int8_t *x = input + r * depth;
        int8_t *y = output + r * depth;
        int32_t maxv = INT8_MIN;
        for (int32_t c = 0; c < depth; ++c) {
            maxv = x[c] > maxv ? x[c] : maxv;
        }
        /* The sum of exps in Q12.19; 64 bits so that overflow cannot go unnoticed. */
        int64_t sum = 0;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t d = x[c] - maxv;
            if (d >= params->diff_min) {
                sum += sqz_rounding_divide_by_pot(exp_on_negative_values(scaled_diff(params, d)),
                                                  12);
            }
        }
        /* A sum of 512.0 or more needs a shift past 31: the reference aborts there. Every
         * probability is then at most 1/512, below half an output step, so the exact answer
         * is the lowest value for every class. */
        if (sum >= ((int64_t)1 << 28)) {
            for (int32_t c = 0; c < depth; ++c) {
                y[c] = INT8_MIN;
            }
            continue;
        }
        const int32_t sum32 = (int32_t)sum;
        const int32_t headroom_plus_one = count_leading_zeros((uint32_t)sum32);
        const int32_t bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_minus_one =
            (int32_t)(((uint32_t)sum32 << headroom_plus_one) - 0x80000000u);
        const int32_t reciprocal = one_over_one_plus_x(shifted_minus_one);
        const int32_t exponent = bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t d = x[c] - maxv;
            int32_t v = INT8_MIN;
            if (d >= params->diff_min) {
                const int32_t e = exp_on_negative_values(scaled_diff(params, d));
                v = sqz_rounding_divide_by_pot(mul(reciprocal, e), exponent) - 128;
            }
            y[c] = (int8_t)sqz_clamp(v, INT8_MIN, INT8_MAX);
        }
    }
    return SQZ_OK;
}

sqz_status sqz_node_softmax(const sqz_node *nd, int32_t k, uint8_t *arena)
{
    const sqz_softmax_layer *l = nd->layer.softmax;
    (void)k;
    return sqz_softmax_s8(&l->params, &l->dims, (const int8_t *)arena + nd->input.offset, &l->dims,
                          (int8_t *)arena + nd->output.offset);
}

/* Integer requantization exactly as TFLite's reference kernels do it (gemmlowp rounding).
 * Internal to the runtime; converter/quantmath.py mirrors these for tests. */
#ifndef SQZ_FIXEDPOINT_H
#define SQZ_FIXEDPOINT_H

#include <stdint.h>

/* Relies on two's-complement arithmetic right shift of negative values, which C99 leaves
 * implementation-defined; gcc and clang on every supported target do that. */

static inline int32_t sqz_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    /* The reference adds a sign-dependent nudge and divides (truncating) by 2^31; that equals
     * adding 2^30 and flooring, which is one arithmetic shift. */
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* x / 2^exponent rounded half away from zero (gemmlowp's RoundingDivideByPOT), 0..31. The
 * reference's mask-and-threshold form equals adding half, minus one for negative x, then an
 * arithmetic shift; 64 bits keep the addition from overflowing. */
static inline int32_t sqz_rounding_divide_by_pot(int32_t x, int exponent)
{
    if (exponent == 0) {
        return x;
    }
    const int64_t half = (int64_t)1 << (exponent - 1);
    return (int32_t)(((int64_t)x + half - (x < 0 ? 1 : 0)) >> exponent);
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding). The left shift wraps like the
 * reference's unchecked int32 multiply instead of being undefined behaviour. */
static inline int32_t sqz_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return sqz_rounding_divide_by_pot(sqz_sat_rounding_doubling_high_mul(shifted, multiplier),
                                      right);
}

static inline int32_t sqz_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

#endif

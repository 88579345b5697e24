/* The int8 -> int8 requantization of TFLite's QUANTIZE op, shared by the QUANTIZE and
 * CONCATENATION kernels so both round exactly alike. Internal to the runtime. */
#ifndef SQZ_REQUANTIZE_ROW_H
#define SQZ_REQUANTIZE_ROW_H

#include <stddef.h>
#include <stdint.h>

#include "fixedpoint.h"

static inline void sqz_requantize_row(const int8_t *in, int8_t *out, size_t n,
                                      int32_t input_offset, int32_t output_offset,
                                      int32_t multiplier, int32_t shift)
{
    for (size_t i = 0; i < n; ++i) {
        const int32_t v =
            sqz_requantize(in[i] + input_offset, multiplier, shift) + output_offset;
        out[i] = (int8_t)sqz_clamp(v, INT8_MIN, INT8_MAX);
    }
}

#endif

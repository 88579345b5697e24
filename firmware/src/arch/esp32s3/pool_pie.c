/* MAX_POOL_2D in push form on the ESP32-S3's PIE unit: 16 channels per ee.vmax.s8.
 *
 * Same contract as sqz_max_pool_s8_push (sqz/kernels.h). Per output pixel one assembly pass
 * over the channel vectors takes the window's maximum along the row (up to 3 columns), clamps it
 * to the activation bounds, and folds it into the one or two output rows this input row belongs
 * to (stored where the row starts that output row's window, else max-ed with what is there).
 * ee.vmax.s8 / ee.vmin.s8 are exact for every int8 (unlike the saturating adds, QEMU bug
 * #161). Whatever this pass does not cover (channels not a multiple of 16, unaligned rows,
 * windows wider than 3 or more than two output rows per input row) goes to the portable
 * kernel, which computes the same bytes. */
#include <stddef.h>
#include <stdint.h>

#include "../../runtime/pool_window.h"
#include "sqz/kernels.h"

#define PIE_POOL_MAX_WIDTH 3
#define PIE_POOL_MAX_ROWS 2

sqz_status sqz_max_pool_s8_pie_push(const sqz_pool_params *params, const sqz_dims *input_dims,
                                    const int8_t *input_row, int32_t in_y,
                                    const sqz_dims *filter_dims, const sqz_dims *output_dims,
                                    int8_t *const *output_rows, int32_t first_out,
                                    int32_t n_out)
{
    if (!params || !input_dims || !input_row || !filter_dims || !output_dims ||
        (n_out > 0 && !output_rows)) {
        return SQZ_ERR_ARG;
    }
#if !defined(__XTENSA__)
    /* Another core (host builds): the portable kernel computes the same bytes. */
    return sqz_max_pool_s8_push(params, input_dims, input_row, in_y, filter_dims, output_dims,
                                output_rows, first_out, n_out);
#else
    const int32_t c = input_dims->c;
    uintptr_t addresses = (uintptr_t)input_row;
    for (int32_t j = 0; j < n_out && j < PIE_POOL_MAX_ROWS; ++j) {
        addresses |= (uintptr_t)output_rows[j];
    }
    if (c % 16 != 0 || (addresses & 15u) != 0 || n_out > PIE_POOL_MAX_ROWS ||
        filter_dims->w > PIE_POOL_MAX_WIDTH || input_dims->c != output_dims->c || n_out < 0 ||
        in_y < 0 || in_y >= input_dims->h) {
        return sqz_max_pool_s8_push(params, input_dims, input_row, in_y, filter_dims,
                                    output_dims, output_rows, first_out, n_out);
    }
    /* Which of the output rows this input row starts: those are stored, not max-ed. */
    int32_t init[PIE_POOL_MAX_ROWS] = {0, 0};
    int8_t *outs[PIE_POOL_MAX_ROWS] = {NULL, NULL};
    for (int32_t j = 0; j < n_out; ++j) {
        if (!output_rows[j]) {
            return SQZ_ERR_ARG;
        }
        const int32_t y0 = (first_out + j) * params->stride.h - params->padding.h;
        init[j] = in_y == (y0 > 0 ? y0 : 0);
        outs[j] = output_rows[j];
    }
    if (n_out == 0) {
        return SQZ_OK;
    }
    const int8_t bounds[2] = {(int8_t)params->activation.min, (int8_t)params->activation.max};
    /* bit 0, 1: output row 0, 1 starts here; bit 2: two output rows; bit 3: clamp. */
    const int32_t flags = init[0] | init[1] << 1 | (n_out > 1) << 2 |
                          (params->activation.min > -128 || params->activation.max < 127) << 3;
    const int32_t vectors = c / 16;
    for (int32_t ox = 0; ox < output_dims->w; ++ox) {
        const sqz_span xs = sqz_pool_span(ox, params->stride.w, params->padding.w,
                                          filter_dims->w, input_dims->w);
        if (xs.end <= xs.start) {
            return SQZ_ERR_SHAPE;
        }
        const int8_t *in = input_row + (size_t)(xs.origin + xs.start) * c;
        const int32_t width = xs.end - xs.start;
        /* From a vector's last window column back to the next vector's first. */
        const int32_t back = width * c - 16;
        int8_t *o0 = outs[0] + (size_t)ox * c;
        int8_t *o1 = n_out > 1 ? outs[1] + (size_t)ox * c : o0;
        const int8_t *lo = bounds;
        int32_t n = vectors;
        /* q0: the window's maximum; q1 scratch; q6, q7: the activation bounds. Branch targets
         * stay inside the loop body, which ends on a plain instruction. */
        __asm__ volatile(
            "ee.vldbc.8.ip q6, %[lo], 1\n\t"
            "ee.vldbc.8 q7, %[lo]\n\t"
            "loopgtz %[n], 9f\n\t"
            "ee.vld.128.xp q0, %[in], %[c]\n\t"
            "beqi %[width], 1, 1f\n\t"
            "ee.vld.128.xp q1, %[in], %[c]\n\t"
            "ee.vmax.s8 q0, q0, q1\n\t"
            "beqi %[width], 2, 1f\n\t"
            "ee.vld.128.xp q1, %[in], %[c]\n\t"
            "ee.vmax.s8 q0, q0, q1\n"
            "1:\n\t"
            "bbci %[flags], 3, 2f\n\t"
            "ee.vmax.s8 q0, q0, q6\n\t"
            "ee.vmin.s8 q0, q0, q7\n"
            "2:\n\t"
            "bbsi %[flags], 0, 3f\n\t"
            "ee.vld.128.ip q1, %[o0], 0\n\t"
            "ee.vmax.s8 q1, q1, q0\n\t"
            "ee.vst.128.ip q1, %[o0], 0\n\t"
            "j 4f\n"
            "3:\n\t"
            "ee.vst.128.ip q0, %[o0], 0\n"
            "4:\n\t"
            "bbci %[flags], 2, 6f\n\t"
            "bbsi %[flags], 1, 5f\n\t"
            "ee.vld.128.ip q1, %[o1], 0\n\t"
            "ee.vmax.s8 q0, q1, q0\n"
            "5:\n\t"
            "ee.vst.128.ip q0, %[o1], 0\n"
            "6:\n\t"
            "addi %[o0], %[o0], 16\n\t"
            "addi %[o1], %[o1], 16\n\t"
            "sub %[in], %[in], %[back]\n"
            "9:\n"
            : [in] "+a"(in), [o0] "+a"(o0), [o1] "+a"(o1), [n] "+a"(n), [lo] "+a"(lo)
            : [c] "a"(c), [width] "a"(width), [back] "a"(back), [flags] "a"(flags)
            : "memory");
    }
    return SQZ_OK;
#endif
}

#include <stddef.h>

#include "fixedpoint.h"
#include "sqz/kernels.h"

int32_t sqz_mean_s8_scratch_size(const sqz_dims *input_dims)
{
    return input_dims->c * (int32_t)sizeof(int32_t);
}

sqz_status sqz_mean_s8_row(const sqz_context *ctx, const sqz_mean_params *params,
                           const sqz_dims *input_dims, const int8_t *input_row, int32_t row,
                           const sqz_dims *output_dims, int8_t *output)
{
    if (!ctx || !params || !input_dims || !input_row || !output_dims || !output) {
        return SQZ_ERR_ARG;
    }
    if (output_dims->c != input_dims->c || output_dims->h * output_dims->w != 1 || row < 0 ||
        row >= input_dims->h) {
        return SQZ_ERR_SHAPE;
    }
    if (ctx->buf == NULL || ctx->size < sqz_mean_s8_scratch_size(input_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    const int32_t c = input_dims->c;
    int32_t *sum = (int32_t *)ctx->buf;
    if (row == 0) {
        for (int32_t ch = 0; ch < c; ++ch) {
            sum[ch] = 0;
        }
    }
    for (int32_t p = 0; p < input_dims->w; ++p) {
        for (int32_t ch = 0; ch < c; ++ch) {
            sum[ch] += input_row[(size_t)p * c + ch];
        }
    }
    if (row == input_dims->h - 1) {
        const int32_t n_pix = input_dims->h * input_dims->w;
        for (int32_t ch = 0; ch < c; ++ch) {
            const int32_t v = sum[ch] + params->input_offset * n_pix;
            const int32_t out =
                sqz_requantize(v, params->multiplier, params->shift) + params->output_offset;
            output[ch] = (int8_t)sqz_clamp(out, INT8_MIN, INT8_MAX);
        }
    }
    return SQZ_OK;
}

/* The reference sums raw int8 values per channel, removes zero_point * N once, and applies a
 * multiplier that already contains 1/N (folded by the converter exactly as the reference folds
 * it at Eval time, truncation included). Row by row, so the sums are the only state. */
sqz_status sqz_mean_s8(const sqz_context *ctx, const sqz_mean_params *params,
                       const sqz_dims *input_dims, const int8_t *input,
                       const sqz_dims *output_dims, int8_t *output)
{
    if (!input_dims || !input || !output_dims || !output) {
        return SQZ_ERR_ARG;
    }
    if (output_dims->n != input_dims->n) {
        return SQZ_ERR_SHAPE;
    }
    const size_t row_len = (size_t)input_dims->w * input_dims->c;
    for (int32_t b = 0; b < input_dims->n; ++b) {
        for (int32_t y = 0; y < input_dims->h; ++y) {
            const sqz_status st = sqz_mean_s8_row(
                ctx, params, input_dims, input + ((size_t)b * input_dims->h + y) * row_len, y,
                output_dims, output + (size_t)b * input_dims->c);
            if (st != SQZ_OK) {
                return st;
            }
        }
    }
    return SQZ_OK;
}

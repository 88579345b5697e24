/* int8 kernels, bit-exact with TFLite's reference kernels (LiteRT BUILTIN_REF).
 *
 * Every kernel follows one shape, after CMSIS-NN: an optional scratch context, a params struct,
 * an optional quant struct, then (dims, data) pairs with the output last, and a sqz_status
 * result. All tensors are NHWC int8. The runtime never allocates and never uses float: the
 * converter computes every multiplier, shift, offset and clamp bound ahead of time.
 */
#ifndef SQZ_KERNELS_H
#define SQZ_KERNELS_H

#include <stdint.h>

#include "sqz/status.h"

typedef struct {
    int32_t n, h, w, c;
} sqz_dims;

typedef struct {
    int32_t h, w;
} sqz_tile;

/* Clamp bounds of the fused activation, already in the output's quantized domain. */
typedef struct {
    int32_t min, max;
} sqz_activation;

/* Scratch memory handed to a kernel; each kernel's need is given by its *_scratch_size()
 * function, which the converter mirrors so that the plan reserves exactly that much. */
typedef struct {
    void *buf;
    int32_t size;
} sqz_context;

/* Per-output-channel requantization: real multiplier = multiplier * 2^(shift - 31). */
typedef struct {
    const int32_t *multiplier;
    const int8_t *shift;
} sqz_per_channel_quant;

/* ---- CONV_2D ------------------------------------------------------------------------------ */

typedef struct {
    int32_t input_offset;  /* minus the input zero point */
    int32_t output_offset; /* the output zero point */
    sqz_tile stride;
    sqz_tile padding; /* top and left padding, as TFLite's ComputePaddingHeightWidth gives it */
    sqz_tile dilation;
    sqz_activation activation;
    /* int8 elements from one output pixel to the next. Equal to the output channel count,
     * or larger when the conv writes its channel slice of a concatenated tensor in place. */
    int32_t output_pixel_stride;
} sqz_conv_params;

/* `bias` is the folded bias: bias[oc] + input_offset * sum(filter[oc]). Folding the input
 * zero point into the bias keeps the inner loop a pure int8 dot product; out-of-image taps are
 * treated as holding the input zero point, which contributes exactly what the reference's
 * skipped taps contribute (nothing). */
sqz_status sqz_conv_s8(const sqz_context *ctx, const sqz_conv_params *params,
                       const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                       const int8_t *input, const sqz_dims *filter_dims, const int8_t *filter,
                       const sqz_dims *bias_dims, const int32_t *bias,
                       const sqz_dims *output_dims, int8_t *output);
/* Filter layout: OHWI, each output channel's row sqz_conv_s8_filter_row_len() values long.
 * That is kh * kw * c, except for filters whose kw * c is under 16 (first layers on 1 to 3
 * channels), whose rows are zero-padded to a multiple of 16 so every dot product runs in full
 * blocks. The converter lays the weights out accordingly. */
int32_t sqz_conv_s8_filter_row_len(const sqz_conv_params *params, const sqz_dims *filter_dims);

/* Scratch: the input rows one output row reads, widened to int16 (a few pixels for a 1x1,
 * a few receptive fields for padded-row filters). */
int32_t sqz_conv_s8_scratch_size(const sqz_conv_params *params, const sqz_dims *input_dims,
                                 const sqz_dims *filter_dims, const sqz_dims *output_dims);

/* ---- MAX_POOL_2D and AVERAGE_POOL_2D -------------------------------------------------------- */

typedef struct {
    sqz_tile stride;
    sqz_tile padding;
    sqz_activation activation;
} sqz_pool_params;

/* filter_dims carries the window in h and w (n and c are ignored). */
sqz_status sqz_max_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output);
sqz_status sqz_avg_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output);

/* ---- CONV_2D followed by MAX_POOL_2D, streamed --------------------------------------------- */

/* The conv output never exists in full: conv rows go through a ring of `pool window height`
 * rows in scratch and are max-pooled as soon as a window is complete. Bit-exact with running
 * the two kernels one after the other. conv_output_dims is the shape the conv would have. */
sqz_status sqz_conv_pool_s8(const sqz_context *ctx, const sqz_conv_params *conv_params,
                            const sqz_per_channel_quant *quant,
                            const sqz_pool_params *pool_params, const sqz_dims *pool_filter_dims,
                            const sqz_dims *conv_output_dims, const sqz_dims *input_dims,
                            const int8_t *input, const sqz_dims *filter_dims,
                            const int8_t *filter, const sqz_dims *bias_dims, const int32_t *bias,
                            const sqz_dims *output_dims, int8_t *output);
int32_t sqz_conv_pool_s8_scratch_size(const sqz_conv_params *conv_params,
                                      const sqz_dims *input_dims, const sqz_dims *filter_dims,
                                      const sqz_dims *pool_filter_dims,
                                      const sqz_dims *conv_output_dims);

/* ---- MEAN over height and width ---------------------------------------------------------- */

typedef struct {
    int32_t input_offset;  /* minus the input zero point */
    int32_t output_offset; /* the output zero point */
    int32_t multiplier;
    int32_t shift;
} sqz_mean_params;

/* output_dims is n x 1 x 1 x c whatever keep_dims says: the bytes are the same. */
sqz_status sqz_mean_s8(const sqz_context *ctx, const sqz_mean_params *params,
                       const sqz_dims *input_dims, const int8_t *input,
                       const sqz_dims *output_dims, int8_t *output);
int32_t sqz_mean_s8_scratch_size(const sqz_dims *input_dims);

/* ---- ADD ----------------------------------------------------------------------------------- */

typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    sqz_activation activation;
} sqz_add_params;

sqz_status sqz_add_s8(const sqz_add_params *params, const sqz_dims *input1_dims,
                      const int8_t *input1, const sqz_dims *input2_dims, const int8_t *input2,
                      const sqz_dims *output_dims, int8_t *output);

/* ---- CONCATENATION (one call per input: writes it into its slice of the output) ------------ */

typedef struct {
    int32_t axis;        /* 0..3 in NHWC */
    int32_t axis_offset; /* where this input starts along the axis in the output */
    int32_t requantize;  /* 0: plain copy (same scale and zero point as the output) */
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
} sqz_concat_params;

sqz_status sqz_concat_s8(const sqz_concat_params *params, const sqz_dims *input_dims,
                         const int8_t *input, const sqz_dims *output_dims, int8_t *output);

/* ---- SOFTMAX over the innermost dimension ---------------------------------------------------- */

typedef struct {
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} sqz_softmax_params;

sqz_status sqz_softmax_s8(const sqz_softmax_params *params, const sqz_dims *input_dims,
                          const int8_t *input, const sqz_dims *output_dims, int8_t *output);

/* ---- FULLY_CONNECTED ---------------------------------------------------------------------- */

typedef struct {
    int32_t filter_offset; /* minus the weights' zero point (per-tensor weights only) */
    int32_t output_offset;
    sqz_activation activation;
} sqz_fc_params;

/* The reference FULLY_CONNECTED rescales its accumulator in double precision:
 * round(acc * scale) with scale = s_in * s_w / s_out. The converter hands over each scale as
 * mantissa * 2^exponent (53-bit integer mantissa), and the kernel reproduces the double
 * multiply and both roundings exactly with integer arithmetic. */
typedef struct {
    const uint64_t *mantissa;
    const int16_t *exponent;
} sqz_exact_scale;

/* input_dims: n rows of c features (h = w = 1); filter_dims: n = output units, c = features.
 * `bias` is folded like the conv's (bias + input_offset * sum(w) + features * input_offset *
 * filter_offset); with a non-zero filter_offset the kernel adds filter_offset * sum(x). One
 * scale per unit: per-tensor quantization repeats it. */
sqz_status sqz_fully_connected_s8(const sqz_fc_params *params, const sqz_exact_scale *quant,
                                  const sqz_dims *input_dims, const int8_t *input,
                                  const sqz_dims *filter_dims, const int8_t *filter,
                                  const sqz_dims *bias_dims, const int32_t *bias,
                                  const sqz_dims *output_dims, int8_t *output);

/* ---- QUANTIZE int8 -> int8 (requantize) ---------------------------------------------------- */

typedef struct {
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
} sqz_requantize_params;

sqz_status sqz_requantize_s8(const sqz_requantize_params *params, const sqz_dims *input_dims,
                             const int8_t *input, const sqz_dims *output_dims, int8_t *output);

#endif

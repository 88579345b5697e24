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

/* ---- Row entry points ------------------------------------------------------------------------
 *
 * Every spatial kernel computes one output row at a time, so a scheduler can stream rows
 * through a chain of layers keeping only a ring of rows per tensor. A row kernel does not know
 * where its input rows live: it receives `input_rows`, one pointer per filter row, where
 * input_rows[j] is input row (oy * stride.h - padding.h + j * dilation.h) of the same batch
 * item, or NULL where that row lies outside the input (top or bottom padding). The whole-tensor
 * entry points below are loops over their row kernels. */

/* Most filter rows a row kernel takes (checked by the converter). */
#define SQZ_MAX_FILTER_ROWS 64

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

/* A conv row kernel. `filter` is in the layout its variant documents (the converter lays the
 * weights out for the variant it selects); `bias` is the folded bias: bias[oc] + input_offset *
 * sum(filter[oc]). Folding the input zero point into the bias keeps the inner loop a pure int8
 * dot product; out-of-image taps are treated as holding the input zero point, which
 * contributes exactly what the reference's skipped taps contribute (nothing). */
typedef sqz_status (*sqz_conv_row_fn)(const sqz_context *ctx, const sqz_conv_params *params,
                                      const sqz_per_channel_quant *quant,
                                      const sqz_dims *input_dims,
                                      const int8_t *const *input_rows,
                                      const sqz_dims *filter_dims, const void *filter,
                                      const sqz_dims *bias_dims, const int32_t *bias,
                                      const sqz_dims *output_dims, int8_t *output_row);

/* The portable conv row kernel: any kernel size, stride, dilation and padding.
 * Filter layout: OHWI, each output channel's row sqz_conv_s8_filter_row_len() int8 values
 * long. That is kh * kw * c, except for undilated k x k filters, whose rows are zero-padded to
 * a multiple of 16 so every dot product runs in full blocks. */
sqz_status sqz_conv_s8_row(const sqz_context *ctx, const sqz_conv_params *params,
                           const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                           const int8_t *const *input_rows, const sqz_dims *filter_dims,
                           const void *filter, const sqz_dims *bias_dims, const int32_t *bias,
                           const sqz_dims *output_dims, int8_t *output_row);
int32_t sqz_conv_s8_filter_row_len(const sqz_conv_params *params, const sqz_dims *filter_dims);

/* Scratch of one row call: the input rows one output row reads, widened to int16 (a few pixels
 * for a 1x1, a few receptive fields for k x k filters). */
int32_t sqz_conv_s8_scratch_size(const sqz_conv_params *params, const sqz_dims *input_dims,
                                 const sqz_dims *filter_dims, const sqz_dims *output_dims);

/* Rows of input one output row spans, (kh - 1) * dilation + 1: the smallest ring of rows a
 * streamed input can be read from (the converter's row scheduler may need more when several
 * layers read the same tensor at different lags). The same for every conv variant. */
int32_t sqz_conv_s8_ring_rows(const sqz_conv_params *params, const sqz_dims *filter_dims);

/* The whole tensor, row by row with sqz_conv_s8_row (same filter layout and scratch). */
sqz_status sqz_conv_s8(const sqz_context *ctx, const sqz_conv_params *params,
                       const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                       const int8_t *input, const sqz_dims *filter_dims, const int8_t *filter,
                       const sqz_dims *bias_dims, const int32_t *bias,
                       const sqz_dims *output_dims, int8_t *output);

/* Grouped and depthwise CONV_2D (a filter depth filter_dims->c below the input depth: groups =
 * input c / filter c, each with output c / groups channels; DEPTHWISE_CONV_2D with depth
 * multiplier m is the grouped conv with one group per input channel and m outputs each).
 * Same params, quant, bias and row contract as sqz_conv_s8_row. Filter layout: tap-major,
 * filter[((ky * kw + kx) * filter_c + i) * out_c + o], so each tap runs over every output
 * channel at once. */
sqz_status sqz_conv_s8_grouped_row(const sqz_context *ctx, const sqz_conv_params *params,
                                   const sqz_per_channel_quant *quant,
                                   const sqz_dims *input_dims, const int8_t *const *input_rows,
                                   const sqz_dims *filter_dims, const void *filter,
                                   const sqz_dims *bias_dims, const int32_t *bias,
                                   const sqz_dims *output_dims, int8_t *output_row);

/* Its scratch: an int32 accumulator per output channel and one zero-point pixel. */
int32_t sqz_conv_s8_grouped_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims);

/* DEPTHWISE_CONV_2D with depth multiplier 1 (the grouped conv with filter_dims c == 1 and
 * as many output channels as input ones), any stride, padding and dilation, up to 32 taps,
 * for layers whose output stage the converter has proved exact in 32 bits.
 *
 * Filter layout: one 16-byte record per channel, {bias, M, left + 1, right} as int32 (the
 * folded bias, the requantization multiplier and its shifts, TFLite's shift = left - right),
 * then the taps, tap-major: weights[(ky * kw + kx) * c + ch]. `quant` and `bias` are not read.
 * The converter writes records only where |acc| * 2^left < 2^30 for every input
 * (converter/arch/portable.py, depthwise_records). Scratch: one zero-point pixel. */
sqz_status sqz_depthwise_s8_row(const sqz_context *ctx, const sqz_conv_params *params,
                                const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                                const int8_t *const *input_rows, const sqz_dims *filter_dims,
                                const void *filter, const sqz_dims *bias_dims,
                                const int32_t *bias, const sqz_dims *output_dims,
                                int8_t *output_row);
int32_t sqz_depthwise_s8_scratch_size(const sqz_conv_params *params,
                                      const sqz_dims *input_dims, const sqz_dims *filter_dims,
                                      const sqz_dims *output_dims);

/* Packed weights (converter/ir/packing.py): a filter whose int8 values come from a small
 * codebook, stored as `bits`-bit indices, or, when `sparse`, as Rice-coded runs of zeros
 * (parameter rice_k) each followed by the index of a nonzero value. Rows are the output
 * channels in OHWI order, back to back, bits least significant first; the stream is followed
 * by 4 zero bytes. */
typedef struct {
    const uint8_t *stream;
    const int8_t *codebook; /* `entries` values, per tensor or per output channel */
    uint16_t entries;
    uint8_t bits;
    uint8_t rice_k;
    uint8_t sparse;
    uint8_t per_channel;    /* one codebook per output channel */
    uint8_t quant_per_tensor; /* the layer's multiplier and shift arrays hold one value */
} sqz_packed_filter;

/* A packed filter for a kernel whose dense layout carries each channel's bias and
 * requantization (the ESP32-S3 PIE records, converter/arch/esp32s3.py): record_bytes per
 * output channel, copied in front of each decoded block. With record_bias, `records` holds
 * one record for every channel, and each channel's copy has record_bias[channel] added to its
 * first word (modulo 2^32): 4 bytes a channel instead of a whole record. The other kernels
 * take the plain sqz_packed_filter (its 16 bytes are converter/ir/packing.py HEADER_BYTES);
 * this one is `packed` first, so a pointer to it is one to `packed` too. */
typedef struct {
    sqz_packed_filter packed;
    const int32_t *records;
    const int32_t *record_bias;
    uint8_t record_bytes;
} sqz_packed_filter_records;

/* Decodes output channels [first, first + count) of a packed filter into int8 rows of
 * `row_len` values each (taps = filter_dims h * w * c of them, zeros after). The rows must
 * be decoded in order from channel 0 within one row call: the stream has no row index, and
 * `cursor` (bits consumed so far) carries the position from one block to the next. */
sqz_status sqz_packed_decode_rows(const sqz_packed_filter *filter, int32_t taps,
                                  int32_t first, int32_t count, int32_t row_len,
                                  uint32_t *cursor, int8_t *rows);

/* The portable conv row kernel on packed weights: it decodes a block of output channels at a
 * time into scratch (never the whole filter) and runs sqz_conv_s8_row on it, writing that
 * block's channel slice of the output row. `filter` is a `const sqz_packed_filter *`. */
sqz_status sqz_conv_s8_packed_row(const sqz_context *ctx, const sqz_conv_params *params,
                                  const sqz_per_channel_quant *quant,
                                  const sqz_dims *input_dims, const int8_t *const *input_rows,
                                  const sqz_dims *filter_dims, const void *filter,
                                  const sqz_dims *bias_dims, const int32_t *bias,
                                  const sqz_dims *output_dims, int8_t *output_row);
/* Several output rows per call, for packed weights: decoding the whole filter is the price of
 * a call, so the converter gives a call as many rows as fit in the arena it has anyway.
 * input_rows holds n_rows windows of filter_dims->h row pointers (row r's at r * h);
 * output_rows the n_rows output rows. */
#define SQZ_MAX_ROWS_PER_CALL 16
/* Most row pointers one call takes (rows_per_call * kh): they live on the caller's stack. */
#define SQZ_MAX_CALL_WINDOW_ROWS 64
typedef sqz_status (*sqz_conv_rows_fn)(const sqz_context *ctx, const sqz_conv_params *params,
                                       const sqz_per_channel_quant *quant,
                                       const sqz_dims *input_dims,
                                       const int8_t *const *input_rows,
                                       const sqz_dims *filter_dims, const void *filter,
                                       const sqz_dims *bias_dims, const int32_t *bias,
                                       int32_t n_rows, const sqz_dims *output_dims,
                                       int8_t *const *output_rows);
/* sqz_conv_s8_packed_row for n_rows rows: each block of channels is decoded once for all. */
sqz_status sqz_conv_s8_packed_rows(const sqz_context *ctx, const sqz_conv_params *params,
                                   const sqz_per_channel_quant *quant,
                                   const sqz_dims *input_dims, const int8_t *const *input_rows,
                                   const sqz_dims *filter_dims, const void *filter,
                                   const sqz_dims *bias_dims, const int32_t *bias,
                                   int32_t n_rows, const sqz_dims *output_dims,
                                   int8_t *const *output_rows);
/* Output channels decoded per block, and the scratch: the decoded block, then what
 * sqz_conv_s8_row needs (the same for any number of rows per call). */
int32_t sqz_conv_s8_packed_block(const sqz_conv_params *params, const sqz_dims *filter_dims);
int32_t sqz_conv_s8_packed_scratch_size(const sqz_conv_params *params,
                                        const sqz_dims *input_dims,
                                        const sqz_dims *filter_dims,
                                        const sqz_dims *output_dims);

/* ---- MAX_POOL_2D and AVERAGE_POOL_2D -------------------------------------------------------- */

typedef struct {
    sqz_tile stride;
    sqz_tile padding;
    sqz_activation activation;
} sqz_pool_params;

/* A pooling row kernel: `input_rows` holds filter_dims->h pointers (NULL: outside the input,
 * skipped like the reference skips padding). filter_dims carries the window in h and w. */
typedef sqz_status (*sqz_pool_row_fn)(const sqz_pool_params *params, const sqz_dims *input_dims,
                                      const int8_t *const *input_rows,
                                      const sqz_dims *filter_dims, const sqz_dims *output_dims,
                                      int8_t *output_row);

sqz_status sqz_max_pool_s8_row(const sqz_pool_params *params, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const sqz_dims *output_dims, int8_t *output_row);
sqz_status sqz_avg_pool_s8_row(const sqz_pool_params *params, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const sqz_dims *output_dims, int8_t *output_row);

/* Rows of input one output row spans: the window's height. */
int32_t sqz_pool_s8_ring_rows(const sqz_dims *filter_dims);

/* MAX_POOL_2D in push form, for streaming: called once per input row (row `in_y` of its batch
 * item), it folds that row into every output row whose window holds it: output_rows[j] is
 * output row first_out + j, for n_out rows (sqz_pool_s8_push_span). The first row of a window
 * initialises its output row, later ones take the maximum, so the producer of the input needs
 * no ring of window rows; an output row is complete once its window's last row was pushed.
 * Exact: the activation clamp commutes with max. */
typedef sqz_status (*sqz_pool_push_fn)(const sqz_pool_params *params,
                                       const sqz_dims *input_dims, const int8_t *input_row,
                                       int32_t in_y, const sqz_dims *filter_dims,
                                       const sqz_dims *output_dims, int8_t *const *output_rows,
                                       int32_t first_out, int32_t n_out);
sqz_status sqz_max_pool_s8_push(const sqz_pool_params *params, const sqz_dims *input_dims,
                                const int8_t *input_row, int32_t in_y,
                                const sqz_dims *filter_dims, const sqz_dims *output_dims,
                                int8_t *const *output_rows, int32_t first_out, int32_t n_out);

/* The output rows whose windows hold input row in_y: the first and how many (at most
 * ceil(window height / stride)). */
void sqz_pool_s8_push_span(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const sqz_dims *filter_dims, const sqz_dims *output_dims,
                           int32_t in_y, int32_t *first_out, int32_t *n_out);

/* Whole tensors (n and c of filter_dims are ignored). */
sqz_status sqz_max_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output);
sqz_status sqz_avg_pool_s8(const sqz_pool_params *params, const sqz_dims *input_dims,
                           const int8_t *input, const sqz_dims *filter_dims,
                           const sqz_dims *output_dims, int8_t *output);

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
/* Scratch: one int32 sum per channel. Row by row, it must survive between the calls. */
int32_t sqz_mean_s8_scratch_size(const sqz_dims *input_dims);

/* Row by row, so the tensor being averaged never has to exist whole: call with every input
 * row of one batch item in turn (row = 0 .. h - 1); the last call writes the item's output. */
sqz_status sqz_mean_s8_row(const sqz_context *ctx, const sqz_mean_params *params,
                           const sqz_dims *input_dims, const int8_t *input_row, int32_t row,
                           const sqz_dims *output_dims, int8_t *output);

/* ---- ADD ----------------------------------------------------------------------------------- */

typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    sqz_activation activation;
    /* Optional (NULL: computed per element): each input's rescaled value for every int8 input,
     * index x + 128, as the converter computed it with the reference's arithmetic; with them
     * the output stage runs in 32 bits, which the converter has checked is exact. */
    const int32_t *table1, *table2;
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

/* The architectures' variants (compiled only for boards whose profile names the arch). */
#include "sqz/kernels_armv7em.h"
#include "sqz/kernels_esp32s3.h"
#include "sqz/kernels_mve.h"

#endif

/* Kernel variants for the ESP32-S3 (Xtensa LX7 with the PIE SIMD unit), compiled from
 * firmware/src/arch/esp32s3/ when the board profile says `arch = "esp32s3"`. Same entry-point
 * types as the portable kernels (sqz/kernels.h); the converter picks them per layer where it
 * can prove them exact (converter/arch/esp32s3.py) and lays the weights out as documented
 * here. They use PIE instructions: they build for the ESP32-S3 only. */
#ifndef SQZ_KERNELS_ESP32S3_H
#define SQZ_KERNELS_ESP32S3_H

#include <stdint.h>

#include "sqz/kernels.h"

/* CONV_2D, any kernel size (up to SQZ_MAX_FILTER_ROWS rows), stride and padding, undilated.
 *
 * Filter layout (16-byte aligned): a record per output channel, {bias + D, r, 2M, K} (32-bit
 * words, the requantization's closed form, see firmware/src/arch/esp32s3/conv_pie.h; 16 bytes,
 * or 32 with D and three zero words when act_min < the output zero point), then each output
 * channel's OHWI weights with every filter row's kw * c weights zero-padded to a multiple of
 * 16: sqz_conv_s8_pie_filter_row_len() bytes per channel. `quant` and `bias` must be the
 * layer's (present, not read: the records hold what the kernel needs of them).
 *
 * Inputs: a 1x1 conv over a multiple of 16 channels reads the input row in place and needs it
 * 16-byte aligned (sqz's planner aligns every tensor and row), else SQZ_ERR_ARG. */
sqz_status sqz_conv_s8_pie_row(const sqz_context *ctx, const sqz_conv_params *params,
                               const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const void *filter, const sqz_dims *bias_dims,
                               const int32_t *bias, const sqz_dims *output_dims,
                               int8_t *output_row);
int32_t sqz_conv_s8_pie_filter_row_len(const sqz_conv_params *params,
                                       const sqz_dims *filter_dims);
/* Scratch of one row call: the row's patches (receptive fields, one per output pixel; none for
 * an in-place 1x1), and 8 bytes per output pixel of partial sums for patches over 112 bytes. */
int32_t sqz_conv_s8_pie_scratch_size(const sqz_conv_params *params, const sqz_dims *input_dims,
                                     const sqz_dims *filter_dims, const sqz_dims *output_dims);

/* CONV_2D on packed weights (`filter` a sqz_packed_filter_records with the PIE records, as in
 * the dense layout above): a block of output channels at a time is decoded into
 * sqz_conv_s8_pie_row's layout in scratch and run by it. The layers sqz_conv_s8_pie_row takes,
 * with the contract of sqz_conv_s8_packed_row and _rows (sqz/kernels.h); bias, multiplier
 * and shift are not read (NULL in sqz's schedules). */
sqz_status sqz_conv_s8_pie_packed_row(const sqz_context *ctx, const sqz_conv_params *params,
                                      const sqz_per_channel_quant *quant,
                                      const sqz_dims *input_dims,
                                      const int8_t *const *input_rows,
                                      const sqz_dims *filter_dims, const void *filter,
                                      const sqz_dims *bias_dims, const int32_t *bias,
                                      const sqz_dims *output_dims, int8_t *output_row);
sqz_status sqz_conv_s8_pie_packed_rows(const sqz_context *ctx, const sqz_conv_params *params,
                                       const sqz_per_channel_quant *quant,
                                       const sqz_dims *input_dims,
                                       const int8_t *const *input_rows,
                                       const sqz_dims *filter_dims, const void *filter,
                                       const sqz_dims *bias_dims, const int32_t *bias,
                                       int32_t n_rows, const sqz_dims *output_dims,
                                       int8_t *const *output_rows);
/* Output channels decoded per block with the least scratch. */
int32_t sqz_conv_s8_pie_packed_block(const sqz_conv_params *params,
                                     const sqz_dims *filter_dims);
/* The least block (records and weights, 16-byte aligned) and the dense kernel's scratch. */
int32_t sqz_conv_s8_pie_packed_scratch_size(const sqz_conv_params *params,
                                            const sqz_dims *input_dims,
                                            const sqz_dims *filter_dims,
                                            const sqz_dims *output_dims);

/* MAX_POOL_2D in push form (the contract of sqz_max_pool_s8_push), 16 channels at a time for
 * channel counts that are multiples of 16, 16-byte aligned rows, windows up to 3 wide and at
 * most two output rows per input row; anything else goes to sqz_max_pool_s8_push. */
sqz_status sqz_max_pool_s8_pie_push(const sqz_pool_params *params, const sqz_dims *input_dims,
                                    const int8_t *input_row, int32_t in_y,
                                    const sqz_dims *filter_dims, const sqz_dims *output_dims,
                                    int8_t *const *output_rows, int32_t first_out,
                                    int32_t n_out);

/* DEPTHWISE_CONV_2D with depth multiplier 1, channels a multiple of 16, up to 25 taps: the
 * contract, records and layout of sqz_depthwise_s8_row (sqz/kernels.h; the filter 16-byte
 * aligned), sixteen channels per ee.vmulas.s8.qacc. */
sqz_status sqz_depthwise_s8_pie_row(const sqz_context *ctx, const sqz_conv_params *params,
                                    const sqz_per_channel_quant *quant,
                                    const sqz_dims *input_dims,
                                    const int8_t *const *input_rows,
                                    const sqz_dims *filter_dims, const void *filter,
                                    const sqz_dims *bias_dims, const int32_t *bias,
                                    const sqz_dims *output_dims, int8_t *output_row);
int32_t sqz_depthwise_s8_pie_scratch_size(const sqz_conv_params *params,
                                          const sqz_dims *input_dims,
                                          const sqz_dims *filter_dims,
                                          const sqz_dims *output_dims);

#endif

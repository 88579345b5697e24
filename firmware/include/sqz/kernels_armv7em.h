/* Kernel variants for Armv7E-M cores with the DSP extension (Cortex-M4, M7, M33 with DSP),
 * compiled from firmware/src/arch/armv7em/ when the board profile says `arch = "armv7em"`.
 * Same entry-point types as the portable kernels (sqz/kernels.h); the converter picks them per
 * layer (converter/arch/armv7em.py) and lays the weights out as documented here. On a core
 * or host without the DSP instructions they compute the same bits in portable C. */
#ifndef SQZ_KERNELS_ARMV7EM_H
#define SQZ_KERNELS_ARMV7EM_H

#include <stdint.h>

#include "sqz/kernels.h"

/* CONV_2D, any kernel size, stride and padding; no dilation (SQZ_ERR_UNSUPPORTED).
 *
 * Filter layout: each output channel's OHWI taps (kh * kw * c of them) zero-padded to a
 * multiple of 4 (sqz_conv_s8_armv7em_filter_row_len), then output channels taken in pairs and
 * interleaved four taps at a time: oc 0 taps 0-3, oc 1 taps 0-3, oc 0 taps 4-7, ... An odd
 * last output channel follows alone. The filter must be 4-byte aligned for the DSP path (the
 * generated weights are); otherwise the kernel takes its portable path. */
sqz_status sqz_conv_s8_armv7em_row(const sqz_context *ctx, const sqz_conv_params *params,
                                   const sqz_per_channel_quant *quant,
                                   const sqz_dims *input_dims,
                                   const int8_t *const *input_rows,
                                   const sqz_dims *filter_dims, const void *filter,
                                   const sqz_dims *bias_dims, const int32_t *bias,
                                   const sqz_dims *output_dims, int8_t *output_row);
int32_t sqz_conv_s8_armv7em_filter_row_len(const sqz_conv_params *params,
                                           const sqz_dims *filter_dims);
/* Scratch of one row call: the receptive fields of a block of output pixels widened to int16
 * (the weights are widened in registers, straight from the filter). The kernel works in blocks
 * of as many pixel triples as the scratch it is given holds: _scratch_size is the size it asks
 * for (blocks of a few triples, up to 8 KiB of patches, or the whole row), _min_scratch_size
 * the least it runs with (one pixel triple, a little slower: one more call per channel pair and
 * block). */
int32_t sqz_conv_s8_armv7em_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims);
int32_t sqz_conv_s8_armv7em_min_scratch_size(const sqz_conv_params *params,
                                             const sqz_dims *input_dims,
                                             const sqz_dims *filter_dims,
                                             const sqz_dims *output_dims);

/* DEPTHWISE_CONV_2D with depth multiplier 1: sqz_depthwise_s8_row's contract, records and
 * layout (sqz/kernels.h), on the DSP extension (SXTB16, SMLABB/SMLATT, SMMULR). */
sqz_status sqz_depthwise_s8_armv7em_row(const sqz_context *ctx, const sqz_conv_params *params,
                                        const sqz_per_channel_quant *quant,
                                        const sqz_dims *input_dims,
                                        const int8_t *const *input_rows,
                                        const sqz_dims *filter_dims, const void *filter,
                                        const sqz_dims *bias_dims, const int32_t *bias,
                                        const sqz_dims *output_dims, int8_t *output_row);
int32_t sqz_depthwise_s8_armv7em_scratch_size(const sqz_conv_params *params,
                                              const sqz_dims *input_dims,
                                              const sqz_dims *filter_dims,
                                              const sqz_dims *output_dims);

/* CONV_2D on packed weights (sqz_packed_filter): a block of output channels at a time decoded
 * into the layout above, then sqz_conv_s8_armv7em_row on the block. The scratch holds the
 * decoded block, a channel pair being interleaved and the dense kernel's scratch. */
sqz_status sqz_conv_s8_armv7em_packed_row(const sqz_context *ctx,
                                          const sqz_conv_params *params,
                                          const sqz_per_channel_quant *quant,
                                          const sqz_dims *input_dims,
                                          const int8_t *const *input_rows,
                                          const sqz_dims *filter_dims, const void *filter,
                                          const sqz_dims *bias_dims, const int32_t *bias,
                                          const sqz_dims *output_dims, int8_t *output_row);
sqz_status sqz_conv_s8_armv7em_packed_rows(const sqz_context *ctx,
                                           const sqz_conv_params *params,
                                           const sqz_per_channel_quant *quant,
                                           const sqz_dims *input_dims,
                                           const int8_t *const *input_rows,
                                           const sqz_dims *filter_dims, const void *filter,
                                           const sqz_dims *bias_dims, const int32_t *bias,
                                           int32_t n_rows, const sqz_dims *output_dims,
                                           int8_t *const *output_rows);
int32_t sqz_conv_s8_armv7em_packed_block(const sqz_conv_params *params,
                                         const sqz_dims *filter_dims);
int32_t sqz_conv_s8_armv7em_packed_scratch_size(const sqz_conv_params *params,
                                                const sqz_dims *input_dims,
                                                const sqz_dims *filter_dims,
                                                const sqz_dims *output_dims);

/* MAX_POOL_2D in push form (sqz_pool_push_fn), four channels per instruction. */
sqz_status sqz_max_pool_s8_armv7em_push(const sqz_pool_params *params,
                                        const sqz_dims *input_dims, const int8_t *input_row,
                                        int32_t in_y, const sqz_dims *filter_dims,
                                        const sqz_dims *output_dims,
                                        int8_t *const *output_rows, int32_t first_out,
                                        int32_t n_out);

#endif

/* Kernel variants for Armv8.1-M cores with Helium, the M-profile Vector Extension (Cortex-M55,
 * M85), compiled from firmware/src/arch/mve/ when the board profile says `arch = "mve"`. Same
 * entry-point types as the portable kernels (sqz/kernels.h); the converter picks them per layer
 * (converter/arch/mve.py) and lays the weights out as documented here. Built for a core
 * without MVE (the host's tests, a Cortex-M4) they compute the same bits in portable C. */
#ifndef SQZ_KERNELS_MVE_H
#define SQZ_KERNELS_MVE_H

#include <stdint.h>

#include "sqz/kernels.h"

/* CONV_2D, any kernel size (up to SQZ_MAX_FILTER_ROWS rows), stride, padding and channel
 * count; no dilation (SQZ_ERR_UNSUPPORTED: the converter gives dilated convs the portable
 * kernel).
 *
 * Filter layout: each output channel's OHWI taps (kh * kw * c) zero-padded to a multiple of 16,
 * sqz_conv_s8_mve_filter_row_len() bytes; output channels padded with zero rows to a multiple
 * of 4 and taken four at a time ("quads"), interleaved 16 taps at a time: channel 0 taps 0-15,
 * channel 1 taps 0-15, channel 2, channel 3, channel 0 taps 16-31, ... Any alignment. */
sqz_status sqz_conv_s8_mve_row(const sqz_context *ctx, const sqz_conv_params *params,
                               const sqz_per_channel_quant *quant, const sqz_dims *input_dims,
                               const int8_t *const *input_rows, const sqz_dims *filter_dims,
                               const void *filter, const sqz_dims *bias_dims,
                               const int32_t *bias, const sqz_dims *output_dims,
                               int8_t *output_row);
int32_t sqz_conv_s8_mve_filter_row_len(const sqz_conv_params *params,
                                       const sqz_dims *filter_dims);
/* Scratch of one row call. A 1x1 conv of stride 1 over a multiple of 16 channels reads its
 * input row in place and needs none; any other conv gathers receptive fields ("patches", one
 * filter row length each) for a block of output pixels: _scratch_size asks for blocks of up to
 * 8 KiB or the whole row, _min_scratch_size for two pixels (the kernel takes blocks as large as
 * the scratch it is given; the weights are read once per pixel pair either way, so a small
 * block costs only a little loop overhead). */
int32_t sqz_conv_s8_mve_scratch_size(const sqz_conv_params *params, const sqz_dims *input_dims,
                                     const sqz_dims *filter_dims,
                                     const sqz_dims *output_dims);
int32_t sqz_conv_s8_mve_min_scratch_size(const sqz_conv_params *params,
                                         const sqz_dims *input_dims,
                                         const sqz_dims *filter_dims,
                                         const sqz_dims *output_dims);

/* MAX_POOL_2D in push form (the contract of sqz_max_pool_s8_push), 16 channels per
 * instruction, any channel count (tail-predicated). */
sqz_status sqz_max_pool_s8_mve_push(const sqz_pool_params *params, const sqz_dims *input_dims,
                                    const int8_t *input_row, int32_t in_y,
                                    const sqz_dims *filter_dims, const sqz_dims *output_dims,
                                    int8_t *const *output_rows, int32_t first_out,
                                    int32_t n_out);

/* Not here yet: DEPTHWISE_CONV_2D and ADD take the portable kernels on this architecture. A
 * variant for either is one more entry point here, its source in firmware/src/arch/mve/ and its
 * KERNELS in converter/arch/mve.py (select_* picks the first variant that supports a
 * layer, the portable kernel otherwise). Packed (compressed) filters take the portable packed
 * kernel. */

#endif

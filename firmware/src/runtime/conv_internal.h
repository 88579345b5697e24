/* Shared between the conv kernel and the fused conv + max-pool kernel. Internal. */
#ifndef SQZ_CONV_INTERNAL_H
#define SQZ_CONV_INTERNAL_H

#include "sqz/kernels.h"

/* Computes output row `oy` of one batch item (all columns, all output channels) into
 * output_row, with params->output_pixel_stride bytes between pixels. `scratch` holds
 * sqz_conv_s8_scratch_size() bytes, 2-byte aligned. */
void sqz_conv_row_s8(const sqz_conv_params *params, const sqz_per_channel_quant *quant,
                     const sqz_dims *input_dims, const int8_t *input_batch,
                     const sqz_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                     const sqz_dims *output_dims, int32_t oy, int16_t *scratch,
                     int8_t *output_row);

#endif

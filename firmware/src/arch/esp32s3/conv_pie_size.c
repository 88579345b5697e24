/* Scratch layout of the PIE conv row kernel: plain C, so the host can check the converter's
 * mirror (converter/arch/esp32s3.py) against it. */
#include "conv_pie.h"

int32_t sqz_conv_s8_pie_filter_row_len(const sqz_conv_params *params,
                                       const sqz_dims *filter_dims)
{
    (void)params;
    return filter_dims->h * ((filter_dims->w * filter_dims->c + 15) / 16 * 16);
}

void sqz_pie_conv_layout(const sqz_conv_params *params, const sqz_dims *input_dims,
                         const sqz_dims *filter_dims, const sqz_dims *output_dims,
                         sqz_pie_layout *layout)
{
    const int32_t len = sqz_conv_s8_pie_filter_row_len(params, filter_dims);
    const int32_t pixels = output_dims->w;
    const int32_t vectors = len / 16;
    /* A 1x1 conv over whole 16-channel vectors reads the input row in place: its pixels are
     * 16-byte aligned because the converter aligns every tensor and row to 16. */
    layout->direct = filter_dims->h == 1 && filter_dims->w == 1 && input_dims->c % 16 == 0 &&
                     params->padding.w == 0 && params->padding.h == 0;
    layout->row_len = len;
    layout->run_len = len / filter_dims->h;
    /* Gathered patches of a whole row could take tens of KB (a 7x7 conv1 at 224x224: 25 KB):
     * blocks of pixels bound them; a block still amortizes each channel's set-up. */
    int32_t block = SQZ_PIE_PATCH_BYTES / len;
    block = block < 1 ? 1 : block;
    layout->pixels = layout->direct || block > pixels ? pixels : block;
    layout->partial = 0;
    const int32_t partial = vectors > SQZ_PIE_CHUNK ? 8 * layout->pixels : 0;
    layout->patches = layout->partial + (partial + 15) / 16 * 16;
    layout->bytes = layout->patches + (layout->direct ? 0 : layout->pixels * len) + 16;
}

int32_t sqz_conv_s8_pie_scratch_size(const sqz_conv_params *params, const sqz_dims *input_dims,
                                     const sqz_dims *filter_dims, const sqz_dims *output_dims)
{
    sqz_pie_layout layout;
    sqz_pie_conv_layout(params, input_dims, filter_dims, output_dims, &layout);
    return layout.bytes;
}

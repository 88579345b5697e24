/* The static schedule: what the generated model.c describes and sqz_run() executes.
 *
 * A model is pure const data: one layer struct per step (kernel params, dims, arena offsets,
 * pointers to weights) and an array of steps. The executor only dispatches; it holds no state,
 * allocates nothing and needs no float.
 */
#ifndef SQZ_RUNTIME_H
#define SQZ_RUNTIME_H

#include <stdint.h>

#include "sqz/kernels.h"
#include "sqz/status.h"

typedef enum {
    SQZ_OP_CONV = 1,
    SQZ_OP_CONV_POOL = 2,
    SQZ_OP_MAX_POOL = 3,
    SQZ_OP_AVG_POOL = 4,
    SQZ_OP_MEAN = 5,
    SQZ_OP_CONCAT = 6,
    SQZ_OP_ADD = 7,
    SQZ_OP_SOFTMAX = 8,
    SQZ_OP_FULLY_CONNECTED = 9,
    SQZ_OP_REQUANTIZE = 10,
    SQZ_OP_LOAD_CONST = 11
} sqz_op;

typedef struct {
    sqz_conv_params params;
    sqz_per_channel_quant quant;
    sqz_dims input_dims, filter_dims, bias_dims, output_dims;
    const int8_t *filter;
    const int32_t *bias;
    uint32_t input, output; /* arena offsets */
} sqz_conv_layer;

typedef struct {
    sqz_conv_layer conv;
    sqz_pool_params pool;
    sqz_dims pool_filter_dims;
    sqz_dims pool_output_dims; /* conv.output_dims is the conv's full (never stored) shape */
} sqz_conv_pool_layer;

typedef struct {
    sqz_pool_params params;
    sqz_dims input_dims, filter_dims, output_dims;
    uint32_t input, output;
} sqz_pool_layer;

typedef struct {
    sqz_mean_params params;
    sqz_dims input_dims, output_dims;
    uint32_t input, output;
} sqz_mean_layer;

typedef struct {
    sqz_concat_params params;
    sqz_dims input_dims, output_dims;
    uint32_t input, output;
} sqz_concat_layer;

typedef struct {
    sqz_add_params params;
    sqz_dims input1_dims, input2_dims, output_dims;
    uint32_t input1, input2, output;
} sqz_add_layer;

typedef struct {
    sqz_softmax_params params;
    sqz_dims input_dims, output_dims;
    uint32_t input, output;
} sqz_softmax_layer;

typedef struct {
    sqz_fc_params params;
    sqz_exact_scale quant;
    sqz_dims input_dims, filter_dims, bias_dims, output_dims;
    const int8_t *filter;
    const int32_t *bias;
    uint32_t input, output;
} sqz_fc_layer;

typedef struct {
    sqz_requantize_params params;
    sqz_dims input_dims, output_dims;
    uint32_t input, output;
} sqz_requantize_layer;

/* A constant operand of an activation op (say, a constant ADD input), copied into the arena. */
typedef struct {
    const int8_t *data;
    uint32_t bytes;
    uint32_t output;
} sqz_load_const_layer;

typedef struct {
    uint8_t op; /* sqz_op */
    uint32_t scratch;      /* arena offset of this step's scratch */
    uint32_t scratch_size; /* bytes; 0 when the kernel needs none */
    union {
        const sqz_conv_layer *conv;
        const sqz_conv_pool_layer *conv_pool;
        const sqz_pool_layer *pool;
        const sqz_mean_layer *mean;
        const sqz_concat_layer *concat;
        const sqz_add_layer *add;
        const sqz_softmax_layer *softmax;
        const sqz_fc_layer *fc;
        const sqz_requantize_layer *requantize;
        const sqz_load_const_layer *load_const;
    } layer;
} sqz_step;

/* Where a model tensor lives and how to read it. Scales are IEEE-754 float32 bit patterns:
 * the device only reports them, it never computes with them. */
typedef struct {
    uint32_t offset; /* in the arena */
    uint32_t bytes;
    sqz_dims dims;
    uint32_t scale_bits;
    int32_t zero_point;
} sqz_tensor_info;

typedef struct {
    const char *name;
    uint8_t sha256[32];
    uint32_t arena_bytes;
    const sqz_step *steps;
    uint16_t n_steps;
    const char *const *step_names;
    sqz_tensor_info input;
    sqz_tensor_info output;
    /* The tensor that feeds a final SOFTMAX (the logits), kept alive to the end of the run so
     * it can be compared when the reference's own softmax cannot run. bytes == 0: none. */
    sqz_tensor_info logits;
    uint64_t macs;
} sqz_model;

/* Called after every step with its index; lets the application time layers without the
 * runtime knowing about clocks. May be NULL. */
typedef void (*sqz_step_hook)(void *user, uint16_t step);

/* Runs every step of the schedule on `arena` (model->arena_bytes, 16-byte aligned). The input
 * must already be at arena + model->input.offset; the output is left at arena +
 * model->output.offset. Stops at the first failing kernel and reports its step index. */
sqz_status sqz_run(const sqz_model *model, uint8_t *arena, sqz_step_hook hook, void *user,
                   uint16_t *failed_step);

#endif

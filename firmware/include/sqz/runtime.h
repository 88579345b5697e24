/* The static schedule: what the generated model.c describes and sqz_run() executes.
 *
 * A model is pure const data: one layer struct per layer (kernel variant, params, dims,
 * pointers to weights), one node per layer (where its tensors and scratch live in the arena),
 * and segments: runs of nodes executed row by row in an order the converter fixed. The
 * executor only dispatches; it allocates nothing and needs no float.
 */
#ifndef SQZ_RUNTIME_H
#define SQZ_RUNTIME_H

#include <stdint.h>

#include "sqz/kernels.h"
#include "sqz/status.h"

typedef enum {
    SQZ_OP_CONV = 1,
    SQZ_OP_MAX_POOL = 3,
    SQZ_OP_AVG_POOL = 4,
    SQZ_OP_MEAN = 5,
    SQZ_OP_CONCAT = 6,
    SQZ_OP_ADD = 7,
    SQZ_OP_SOFTMAX = 8,
    SQZ_OP_FULLY_CONNECTED = 9,
    SQZ_OP_REQUANTIZE = 10,
    SQZ_OP_LOAD_CONST = 11,
    SQZ_OP_MAX_POOL_PUSH = 12, /* called per input row: sqz_pool_push_fn */
    SQZ_OP_INPUT = 13          /* the input arriving row by row: run by the executor itself */
} sqz_op;

/* Layer structs hold what a kernel needs besides memory: params, quantization, dims, weights,
 * and for convs and pools the kernel variant the converter chose for the board's architecture
 * (its weights are laid out for that variant). Where the tensors live is the node's business. */
typedef struct {
    sqz_conv_row_fn row;
    /* With rows_per_call > 1, each call makes that many output rows (fewer at the bottom of
     * the image) through `rows`: the converter's choice for packed weights
     * (converter/passes/rows.py, choose_rows). */
    sqz_conv_rows_fn rows;
    int32_t rows_per_call;
    sqz_conv_params params;
    sqz_per_channel_quant quant;
    sqz_dims input_dims, filter_dims, bias_dims, output_dims;
    const void *filter;
    const int32_t *bias;
} sqz_conv_layer;

typedef struct {
    sqz_pool_row_fn row;   /* SQZ_OP_MAX_POOL, SQZ_OP_AVG_POOL */
    sqz_pool_push_fn push; /* SQZ_OP_MAX_POOL_PUSH */
    sqz_pool_params params;
    sqz_dims input_dims, filter_dims, output_dims;
} sqz_pool_layer;

typedef struct {
    sqz_mean_params params;
    sqz_dims input_dims, output_dims;
} sqz_mean_layer;

typedef struct {
    sqz_concat_params params;
    sqz_dims input_dims, output_dims;
} sqz_concat_layer;

typedef struct {
    sqz_add_params params;
    sqz_dims dims; /* both inputs and the output */
} sqz_add_layer;

typedef struct {
    sqz_softmax_params params;
    sqz_dims dims;
} sqz_softmax_layer;

typedef struct {
    sqz_fc_params params;
    sqz_exact_scale quant;
    sqz_dims input_dims, filter_dims, bias_dims, output_dims;
    const int8_t *filter;
    const int32_t *bias;
} sqz_fc_layer;

typedef struct {
    sqz_requantize_params params;
    sqz_dims dims;
} sqz_requantize_layer;

/* A constant operand of an activation op (say, a constant ADD input), copied into the arena. */
typedef struct {
    const int8_t *data;
    uint32_t bytes;
} sqz_load_const_layer;

/* A tensor as the executor addresses it: row r (batch-major: item b's row y is b * h + y)
 * lives at arena + offset + (r % slots) * pitch. slots == n * h holds the whole tensor; fewer
 * slots make a ring that keeps only the rows its readers still need. `offset` may point into
 * another tensor (a channel slice of a concatenation written in place). */
typedef struct {
    uint32_t offset;
    uint32_t pitch;
    uint32_t slots;
} sqz_rows;

/* One layer as scheduled: its kernel, its tensors and its scratch. `run` is the node adapter
 * of its op (sqz_node_conv, ...: each sits beside its kernel, so a firmware links, and an
 * export ships, only the kernels its model uses). Row-wise ops (convs, pools, ADD, QUANTIZE,
 * channel concatenation, MEAN) are called once per output row (MEAN and push-form max pools:
 * per input row); the others once for the whole tensor. */
typedef struct sqz_node sqz_node;
typedef sqz_status (*sqz_node_fn)(const sqz_node *node, int32_t call, uint8_t *arena);

struct sqz_node {
    sqz_node_fn run;
    uint8_t op; /* sqz_op, for reports and debuggers: `run` is what executes */
    sqz_rows input, input2, output;
    uint32_t scratch;      /* arena offset of this node's scratch */
    uint32_t scratch_size; /* bytes; 0 when the kernel needs none */
    union {
        const sqz_conv_layer *conv;
        const sqz_pool_layer *pool;
        const sqz_mean_layer *mean;
        const sqz_concat_layer *concat;
        const sqz_add_layer *add;
        const sqz_softmax_layer *softmax;
        const sqz_fc_layer *fc;
        const sqz_requantize_layer *requantize;
        const sqz_load_const_layer *load_const;
        const struct sqz_input_layer *input;
    } layer;
};

/* The input node (SQZ_OP_INPUT): `feed` writes input row `row` into its ring slot once what it
 * needs has arrived (ex->rows_ready), and sets *ready to 0 when it has not. sqz_feed_rows takes
 * rows as they are; sqz_feed_camera (camera_s8.c) converts camera frame rows. */
typedef struct sqz_exec sqz_exec;
struct sqz_camera_params;
typedef sqz_status (*sqz_feed_fn)(const sqz_node *node, int32_t row, sqz_exec *ex,
                                  int *ready);
typedef struct sqz_input_layer {
    sqz_feed_fn feed;
    const struct sqz_camera_params *camera; /* NULL: the rows are the model's input bytes */
} sqz_input_layer;
sqz_status sqz_feed_rows(const sqz_node *node, int32_t row, sqz_exec *ex, int *ready);
sqz_status sqz_feed_camera(const sqz_node *node, int32_t row, sqz_exec *ex, int *ready);

/* The node adapters (one per op; `call` is the row, or 0 for a whole-tensor op). */
sqz_status sqz_node_conv(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_pool(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_pool_push(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_mean(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_concat(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_add(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_requantize(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_softmax(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_fully_connected(const sqz_node *node, int32_t call, uint8_t *arena);
sqz_status sqz_node_load_const(const sqz_node *node, int32_t call, uint8_t *arena);

/* `calls` consecutive calls of node `node` (relative to the segment's first node). */
typedef struct {
    uint8_t node;
    uint8_t calls;
} sqz_run_entry;

/* Most nodes in one segment: the executor keeps a row counter per node on its stack. */
#define SQZ_MAX_SEGMENT_NODES 64

/* Nodes executed row-interleaved in the converter's order: every call finds the rows it reads
 * in its inputs' rings, because the converter computed the order and the ring sizes together
 * and checked them. A segment of one node is a layer run on whole tensors. */
typedef struct {
    uint16_t first_node, n_nodes;
    const sqz_run_entry *order;
    uint16_t n_order;
} sqz_segment;

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
    const sqz_node *nodes;
    uint16_t n_nodes;
    const char *const *node_names;
    const sqz_segment *segments;
    uint16_t n_segments;
    sqz_tensor_info input;
    sqz_tensor_info output;
    /* The tensor that feeds a final SOFTMAX (the logits), kept alive to the end of the run so
     * it can be compared when the reference's own softmax cannot run. bytes == 0: none. */
    sqz_tensor_info logits;
    uint64_t macs;
    /* The node that feeds the input row by row into its ring (SQZ_OP_INPUT), or
     * SQZ_NO_INPUT_NODE when the input is stored whole and must be in place before the run. */
    uint16_t input_node;
    /* With an input node: bytes of one input row (input.dims.w * input.dims.c). */
    uint32_t input_row_bytes;
} sqz_model;

#define SQZ_NO_INPUT_NODE 0xFFFFu

/* Called after every kernel call with the index of the node that ran; lets the application
 * time layers without the runtime knowing about clocks. May be NULL. */
typedef void (*sqz_node_hook)(void *user, uint16_t node);

/* Runs the whole schedule on `arena` (model->arena_bytes, 16-byte aligned). The input must
 * already be at arena + model->input.offset; the output is left at arena +
 * model->output.offset. Stops at the first failing kernel and reports its node index. */
sqz_status sqz_run(const sqz_model *model, uint8_t *arena, sqz_node_hook hook, void *user,
                   uint16_t *failed_node);

/* A run that can stop where an input row has not arrived yet and go on when it has: the input
 * is a ring (model->input_node), so the whole input is never resident. The executor keeps its
 * place (segment, entry, calls made per node) here; nothing else is kept between calls.
 *
 * Rows come from one of two places:
 * - `src` set (sqz_exec_source): input row r is read from src + (r % src_slots) * src_pitch,
 *   for r < rows_ready. A whole input anywhere in memory is src_slots = its rows.
 * - `src` NULL: the application writes input row r itself, straight into its ring slot
 *   (sqz_exec_input_row) while the executor waits for it, then calls sqz_exec_rows_ready.
 * A camera model's input node reads frame rows instead (sqz_camera_row_span gives which), and
 * rows_ready counts frame rows. */
struct sqz_exec {
    const sqz_model *model;
    uint8_t *arena;
    sqz_node_hook hook;
    void *user;
    const uint8_t *src;
    uint32_t src_pitch, src_slots;
    int32_t rows_ready; /* input rows (frame rows for a camera model) available */
    uint16_t segment, entry;
    uint8_t call;        /* calls of the current entry made */
    uint8_t finished;
    uint16_t failed_node;
    int32_t done[SQZ_MAX_SEGMENT_NODES];
};

void sqz_exec_begin(sqz_exec *ex, const sqz_model *model, uint8_t *arena, sqz_node_hook hook,
                    void *user);
/* Rows are read from src (see sqz_exec); call before the first sqz_exec_continue. */
void sqz_exec_source(sqz_exec *ex, const uint8_t *src, uint32_t pitch, uint32_t slots,
                     int32_t rows_ready);
/* Runs as far as the rows available allow: SQZ_OK when the run is complete, SQZ_WAIT_INPUT when
 * the next call needs a row that has not arrived, or the failing kernel's status (its node in
 * ex->failed_node). */
sqz_status sqz_exec_continue(sqz_exec *ex);
/* Where input row `row` is to be written while the executor waits for it (src NULL): its ring
 * slot, free from the moment the executor stops there. NULL for a model without an input node
 * or a camera model. */
uint8_t *sqz_exec_input_row(const sqz_exec *ex, int32_t row);
/* The input row (or frame row) the executor waits for: rows_ready when it is waiting. */
static inline int32_t sqz_exec_rows_ready(const sqz_exec *ex)
{
    return ex->rows_ready;
}
/* The whole input from `input` (input.bytes, any memory): for models with and without an
 * input node alike. */
sqz_status sqz_run_input(const sqz_model *model, uint8_t *arena, const uint8_t *input,
                         sqz_node_hook hook, void *user, uint16_t *failed_node);

#endif

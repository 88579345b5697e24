/* The board loop: serves the serial protocol of docs/protocol.md around the generated model.
 *
 * One request is handled at a time, to completion, in the order received; RUN blocks the loop
 * for the length of an inference. State is a handful of counters and flags; the only buffers
 * are the receive frame (SQZ_MAX_FRAME_PAYLOAD + SQZ_PROTO_FRAME_OVERHEAD), the encoder's
 * 255-byte block and one u64 per step for the layer counts. Input chunks are copied from the
 * receive frame straight to their place in the arena, and READ streams from the arena.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "model.h"
#include "protocol.h"
#include "sqz/port.h"
#include "sqz/runtime.h"
#include "sqz_target.h"

#define RX_CAP ((uint32_t)SQZ_MAX_FRAME_PAYLOAD + SQZ_PROTO_FRAME_OVERHEAD)
#define COUNTS_ALLOC (SQZ_MODEL_N_STEPS > 0 ? SQZ_MODEL_N_STEPS : 1)
#define MAX_PAYLOAD ((uint32_t)SQZ_MAX_FRAME_PAYLOAD)

/* Compile-time checks (C99 has no static_assert). */
typedef char sqz_check_frame_payload[(SQZ_MAX_FRAME_PAYLOAD >= 256 &&
                                      SQZ_MAX_FRAME_PAYLOAD <= 65536) ? 1 : -1];

static const sqz_model *const model = &sqz_model_def;

static struct {
    uint8_t *arena;      /* NULL: no arena or a model whose tensors do not fit it */
    uint32_t boot_id;
    uint32_t served;     /* well-formed requests handled since boot */
    uint32_t bad_frames; /* damaged frames and noise since boot */
    uint32_t run_count;  /* inferences executed since boot */
    uint64_t boot_counter;
    uint32_t names_bytes;
    uint16_t n_counts;   /* steps with a slot in layer_counts */
    /* input state: bytes [0, input_filled) of the input (or frame) have been received */
    uint32_t input_filled;
    uint16_t input_seq;  /* seq of the WRITE_INPUT at offset 0 that began this input */
    uint8_t input_started;
    uint8_t input_flags; /* BEGIN's flags: LAYER_COUNTS, FRAME */
    uint8_t begun;       /* BEGIN received and no WRITE_INPUT yet */
    uint8_t consumed_valid; /* consumed_seq: the chunk that began the input the last RUN took */
    uint16_t consumed_seq;
    uint16_t exec_status; /* of the run under way (a ring input runs as its rows arrive) */
    uint64_t exec_total;  /* counter ticks spent computing in this run */
    uint8_t result_valid; /* output and logits hold the result of the last RUN */
    uint8_t counts_valid; /* layer_counts hold that RUN's per-step counts */
    /* the last RUN, replayed (not re-executed) when the host retries it with the same seq */
    uint8_t run_cached;
    uint8_t run_flags;
    uint16_t run_seq;
    uint16_t run_status;
    uint16_t run_failed_step;
    uint32_t run_number;
    uint64_t run_total;
} st;

static uint8_t rx_buf[RX_CAP];
static sqz_frame_rx rx;
static sqz_frame_tx tx;
static uint64_t layer_counts[COUNTS_ALLOC];
static uint64_t hook_prev;
static sqz_exec ex;

#if SQZ_MODEL_FRAME_FORMAT
/* The camera frame rows the input node still needs: a ring of SQZ_MODEL_FRAME_RING_ROWS
 * rows, never the whole frame (sqz_camera_row_span bounds the rows one input row reads). */
static uint8_t frame_ring[SQZ_MODEL_FRAME_RING_ROWS * SQZ_MODEL_FRAME_ROW_BYTES];
#endif

/* The input's mode as INFO reports it. */
#if SQZ_MODEL_FRAME_FORMAT
#define INPUT_MODE SQZ_PROTO_INPUT_CAMERA
#elif SQZ_MODEL_INPUT_RING
#define INPUT_MODE SQZ_PROTO_INPUT_RING
#else
#define INPUT_MODE SQZ_PROTO_INPUT_WHOLE
#endif

/* ---- little helpers ------------------------------------------------------------------------ */

static void port_write(void *ctx, const uint8_t *data, int32_t n)
{
    (void)ctx;
    sqz_port_write(data, n);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint32_t str_len(const char *s)
{
    uint32_t n = 0;
    if (s) {
        while (n < SQZ_PROTO_MAX_STRING && s[n] != '\0') {
            ++n;
        }
    }
    return n;
}

static void put_str(const char *s)
{
    const uint32_t n = str_len(s);
    sqz_frame_tx_u8(&tx, (uint8_t)n);
    if (n) {
        sqz_frame_tx_put(&tx, (const uint8_t *)s, n);
    }
}

static void begin_response(uint8_t type, uint16_t seq)
{
    sqz_frame_tx_begin(&tx, port_write, NULL);
    sqz_frame_tx_u8(&tx, SQZ_PROTO_VERSION);
    sqz_frame_tx_u8(&tx, type);
    sqz_frame_tx_u16(&tx, seq);
    sqz_frame_tx_u32(&tx, st.served);
    sqz_frame_tx_u32(&tx, st.boot_id);
}

/* The message is `msg`, or "msg: msg2" when msg2 is given, cut to SQZ_PROTO_MAX_STRING. */
static void send_error2(uint16_t seq, uint8_t cmd, uint16_t code, uint32_t detail,
                        uint32_t detail2, const char *msg, const char *msg2)
{
    static const uint8_t sep[2] = {':', ' '};
    const uint32_t n1 = str_len(msg);
    const uint32_t room = SQZ_PROTO_MAX_STRING - n1;
    const uint32_t n_sep = (msg2 && room >= 2u) ? 2u : 0u;
    uint32_t n2 = n_sep ? str_len(msg2) : 0u;
    if (n2 > room - n_sep) {
        n2 = room - n_sep;
    }
    begin_response(SQZ_PROTO_RESP_ERROR, seq);
    sqz_frame_tx_u16(&tx, code);
    sqz_frame_tx_u8(&tx, cmd);
    sqz_frame_tx_u8(&tx, 0);
    sqz_frame_tx_u32(&tx, detail);
    sqz_frame_tx_u32(&tx, detail2);
    sqz_frame_tx_u8(&tx, (uint8_t)(n1 + n_sep + n2));
    if (n1) {
        sqz_frame_tx_put(&tx, (const uint8_t *)msg, n1);
    }
    if (n_sep) {
        sqz_frame_tx_put(&tx, sep, n_sep);
    }
    if (n2) {
        sqz_frame_tx_put(&tx, (const uint8_t *)msg2, n2);
    }
    sqz_frame_tx_end(&tx);
}

static void send_error(uint16_t seq, uint8_t cmd, uint16_t code, uint32_t detail,
                       uint32_t detail2, const char *msg)
{
    send_error2(seq, cmd, code, detail, detail2, msg, NULL);
}

static void put_tensor(const sqz_tensor_info *t)
{
    sqz_frame_tx_u32(&tx, (uint32_t)t->dims.n);
    sqz_frame_tx_u32(&tx, (uint32_t)t->dims.h);
    sqz_frame_tx_u32(&tx, (uint32_t)t->dims.w);
    sqz_frame_tx_u32(&tx, (uint32_t)t->dims.c);
    sqz_frame_tx_u32(&tx, t->bytes);
    sqz_frame_tx_u32(&tx, t->scale_bits);
    sqz_frame_tx_u32(&tx, (uint32_t)t->zero_point);
}

static int region_fits(const sqz_tensor_info *t)
{
    return t->offset <= (uint32_t)SQZ_MODEL_ARENA_BYTES &&
           t->bytes <= (uint32_t)SQZ_MODEL_ARENA_BYTES - t->offset;
}

/* A ring input holds only its slots; a whole one all of its bytes. */
static int input_fits(void)
{
    if (model->input_node == SQZ_NO_INPUT_NODE) {
        return region_fits(&model->input);
    }
    if (model->input_node >= model->n_nodes) {
        return 0;
    }
    const sqz_rows *r = &model->nodes[model->input_node].output;
    return r->offset <= (uint32_t)SQZ_MODEL_ARENA_BYTES &&
           (uint64_t)r->slots * r->pitch <= (uint64_t)SQZ_MODEL_ARENA_BYTES - r->offset;
}

static void step_hook(void *user, uint16_t step)
{
    const uint64_t now = sqz_port_counter();
    (void)user;
    if (step < st.n_counts) {
        layer_counts[step] += now - hook_prev; /* a streamed layer runs in many calls */
    }
    hook_prev = sqz_port_counter(); /* the hook's own time is not charged to the next step */
}

/* ---- commands ------------------------------------------------------------------------------- */

static void cmd_hello(uint16_t seq)
{
    uint8_t flags = 0;
    if (st.arena) {
        flags |= SQZ_PROTO_INFOF_ARENA_OK;
    }
    if (model->logits.bytes) {
        flags |= SQZ_PROTO_INFOF_HAS_LOGITS;
    }
    begin_response(SQZ_PROTO_RESP_INFO, seq);
    sqz_frame_tx_u8(&tx, SQZ_PROTO_VERSION);
    sqz_frame_tx_u8(&tx, flags);
    sqz_frame_tx_u16(&tx, model->n_nodes);
    sqz_frame_tx_u32(&tx, (uint32_t)SQZ_MODEL_ARENA_BYTES);
    sqz_frame_tx_u64(&tx, model->macs);
    sqz_frame_tx_put(&tx, model->sha256, 32);
    put_tensor(&model->input);
    put_tensor(&model->output);
    put_tensor(&model->logits);
    sqz_frame_tx_u64(&tx, (uint64_t)SQZ_CPU_HZ);
    sqz_frame_tx_u64(&tx, (uint64_t)SQZ_COUNTER_HZ);
    sqz_frame_tx_u32(&tx, MAX_PAYLOAD);
    sqz_frame_tx_u32(&tx, st.run_count);
    sqz_frame_tx_u64(&tx, sqz_port_counter() - st.boot_counter);
    sqz_frame_tx_u32(&tx, st.bad_frames);
    sqz_frame_tx_u8(&tx, INPUT_MODE);
    sqz_frame_tx_u8(&tx, (uint8_t)SQZ_MODEL_FRAME_FORMAT);
    sqz_frame_tx_u16(&tx, (uint16_t)SQZ_MODEL_FRAME_WIDTH);
    sqz_frame_tx_u16(&tx, (uint16_t)SQZ_MODEL_FRAME_HEIGHT);
    sqz_frame_tx_u16(&tx, 0);
    sqz_frame_tx_u32(&tx, (uint32_t)SQZ_MODEL_FRAME_BYTES);
    sqz_frame_tx_u32(&tx, model->input_node == SQZ_NO_INPUT_NODE
                              ? 0u
                              : model->nodes[model->input_node].output.slots);
    put_str(SQZ_FIRMWARE_VERSION);
    put_str(model->name);
    put_str(SQZ_TARGET_NAME);
    put_str(SQZ_COUNTER_UNIT);
    sqz_frame_tx_end(&tx);
}

/* One burst of computing: the model as far as the input received so far allows. Not inlined,
 * and external so that no clone renames it: a trace of the run (converter/device/cycles.py,
 * REGION_SYMBOL) finds every burst by its name, and counts what the counter around it counts. */
void sqz_app_compute(void);
__attribute__((noinline)) void sqz_app_compute(void)
{
    st.exec_status = (uint16_t)sqz_exec_continue(&ex);
}

/* Only the time spent computing is counted, not the time waiting for rows. */
static void compute(void)
{
    if (st.exec_status != SQZ_OK && st.exec_status != SQZ_WAIT_INPUT) {
        return; /* a kernel failed: the rest of the input is received and dropped */
    }
    const uint64_t t0 = sqz_port_counter();
    hook_prev = t0;
    sqz_app_compute();
    const uint64_t t1 = sqz_port_counter();
    st.exec_total += t1 - t0;
    if (st.exec_status == SQZ_WAIT_INPUT && ex.hook && model->input_node < st.n_counts) {
        /* From the last kernel call to the wait: the input node's, which the run stopped at. */
        layer_counts[model->input_node] += t1 - hook_prev;
    }
}

static uint32_t input_total(void)
{
    return (st.input_flags & SQZ_PROTO_BEGINF_FRAME) ? (uint32_t)SQZ_MODEL_FRAME_BYTES
                                                     : model->input.bytes;
}

static int runs_as_rows_arrive(void)
{
    return model->input_node != SQZ_NO_INPUT_NODE;
}

/* A run starts: the executor at the first call, nothing computed or counted yet. */
static void start_run(int per_layer)
{
    sqz_exec_begin(&ex, model, st.arena, per_layer ? step_hook : NULL, NULL);
    st.exec_status = SQZ_WAIT_INPUT;
    st.exec_total = 0;
    for (uint16_t i = 0; i < st.n_counts; ++i) {
        layer_counts[i] = 0;
    }
}

/* A new input: whatever the arena held is no longer a result. A ring input starts the run at
 * once, so the flags (per-layer counts, frame) are fixed here. */
static void begin_input(uint16_t seq, uint8_t flags)
{
    st.consumed_valid = 0;
    st.input_started = 1;
    st.input_seq = seq;
    st.input_filled = 0;
    st.input_flags = flags;
    st.result_valid = 0;
    st.counts_valid = 0;
    st.run_cached = 0;
    start_run((flags & SQZ_PROTO_RUNF_LAYER_COUNTS) != 0);
    if (runs_as_rows_arrive()) {
#if SQZ_MODEL_FRAME_FORMAT
        sqz_exec_source(&ex, frame_ring, SQZ_MODEL_FRAME_ROW_BYTES, SQZ_MODEL_FRAME_RING_ROWS,
                        0);
#endif
        compute(); /* as far as no input is needed */
    }
}

/* Bytes [st.input_filled, +n) of the input or frame: each row that completes feeds the run. */
static void take_bytes(const uint8_t *p, uint32_t n)
{
    if (!runs_as_rows_arrive()) {
        memcpy(st.arena + model->input.offset + st.input_filled, p, n);
        st.input_filled += n;
        return;
    }
#if SQZ_MODEL_FRAME_FORMAT
    const uint32_t row_bytes = SQZ_MODEL_FRAME_ROW_BYTES;
#else
    const uint32_t row_bytes = model->input_row_bytes;
#endif
    while (n > 0) {
        const uint32_t row = st.input_filled / row_bytes;
        const uint32_t col = st.input_filled % row_bytes;
        uint32_t take = row_bytes - col;
        if (take > n) {
            take = n;
        }
        if (st.exec_status == SQZ_WAIT_INPUT) {
            /* The run waits for exactly this row, so its slot is free. */
#if SQZ_MODEL_FRAME_FORMAT
            uint8_t *dst = frame_ring + (row % SQZ_MODEL_FRAME_RING_ROWS) * row_bytes;
#else
            uint8_t *dst = sqz_exec_input_row(&ex, (int32_t)row);
#endif
            if (dst) {
                memcpy(dst + col, p, take);
            }
        }
        st.input_filled += take;
        p += take;
        n -= take;
        if (col + take == row_bytes) {
            ex.rows_ready = (int32_t)row + 1;
            compute();
        }
    }
}

static void cmd_begin(uint16_t seq, const uint8_t *body, uint32_t len)
{
    const uint8_t cmd = SQZ_PROTO_CMD_BEGIN;
    if (len != SQZ_PROTO_BEGIN_BYTES) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_LENGTH, len, SQZ_PROTO_BEGIN_BYTES,
                   "BEGIN takes u8 flags, u8 format, u16 0, u16 width, u16 height");
        return;
    }
    const uint8_t flags = body[0];
    const uint8_t format = body[1];
    const uint32_t size = get_u32(body + 4); /* width | height << 16 */
    const uint8_t known = SQZ_PROTO_RUNF_LAYER_COUNTS | SQZ_PROTO_BEGINF_FRAME;
    if ((flags & ~known) || body[2] || body[3]) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, flags, known, "unknown BEGIN flags");
        return;
    }
    if (!(flags & SQZ_PROTO_BEGINF_FRAME) && (format || size)) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, format, size,
                   "a frame's format and size go with the FRAME flag only");
        return;
    }
    if ((flags & SQZ_PROTO_BEGINF_FRAME) && !SQZ_MODEL_FRAME_FORMAT) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, flags, 0,
                   "this model takes no camera frames: convert it with --camera");
        return;
    }
    if (!(flags & SQZ_PROTO_BEGINF_FRAME) && SQZ_MODEL_FRAME_FORMAT) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, flags, SQZ_PROTO_BEGINF_FRAME,
                   "this model takes camera frames: BEGIN with the FRAME flag");
        return;
    }
    if ((flags & SQZ_PROTO_BEGINF_FRAME) && format != SQZ_MODEL_FRAME_FORMAT) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, format, SQZ_MODEL_FRAME_FORMAT,
                   "frame format differs from the model's (detail: given, detail2: its own)");
        return;
    }
    if ((flags & SQZ_PROTO_BEGINF_FRAME) &&
        size != ((uint32_t)SQZ_MODEL_FRAME_WIDTH | ((uint32_t)SQZ_MODEL_FRAME_HEIGHT << 16))) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, size,
                   (uint32_t)SQZ_MODEL_FRAME_WIDTH | ((uint32_t)SQZ_MODEL_FRAME_HEIGHT << 16),
                   "frame size differs from the model's (width | height << 16)");
        return;
    }
    if (!st.arena) {
        send_error(seq, cmd, SQZ_PROTO_ERR_NO_ARENA, 0, 0, "no arena for the model");
        return;
    }
    begin_input(seq, flags);
    st.begun = 1;
    begin_response(SQZ_PROTO_RESP_ACK, seq);
    sqz_frame_tx_u32(&tx, st.input_filled);
    sqz_frame_tx_u32(&tx, input_total());
    sqz_frame_tx_end(&tx);
}

static void cmd_write_input(uint16_t seq, const uint8_t *body, uint32_t len)
{
    const uint8_t cmd = SQZ_PROTO_CMD_WRITE_INPUT;
    /* Both details count body bytes (offset field included), like every BAD_LENGTH. */
    if (len <= SQZ_PROTO_WRITE_HEADER_BYTES ||
        len - SQZ_PROTO_WRITE_HEADER_BYTES > MAX_PAYLOAD) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_LENGTH, len,
                   SQZ_PROTO_WRITE_HEADER_BYTES + MAX_PAYLOAD,
                   "WRITE_INPUT needs u32 offset + 1..max_payload bytes");
        return;
    }
    if (!st.arena) {
        send_error(seq, cmd, SQZ_PROTO_ERR_NO_ARENA, 0, 0, "no arena for the model");
        return;
    }
    const uint32_t offset = get_u32(body);
    const uint32_t n = len - SQZ_PROTO_WRITE_HEADER_BYTES;
    if (offset == 0 && !st.input_started && st.consumed_valid && st.consumed_seq == seq &&
        n <= input_total()) {
        /* A late retry of the chunk that began the input the last RUN consumed: acknowledged
         * again, and nothing changes (the results stay). input_flags survive the RUN, so the
         * total is the frame's for a frame. */
        begin_response(SQZ_PROTO_RESP_ACK, seq);
        sqz_frame_tx_u32(&tx, n);
        sqz_frame_tx_u32(&tx, input_total());
        sqz_frame_tx_end(&tx);
        return;
    }
    if (!st.input_started && SQZ_MODEL_FRAME_FORMAT) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, 0, SQZ_PROTO_BEGINF_FRAME,
                   "this model takes camera frames: BEGIN with the FRAME flag first");
        return;
    }
    const uint32_t total = st.input_started ? input_total() : model->input.bytes;
    if (offset > total || n > total - offset) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_OFFSET, st.input_filled, total,
                   "chunk ends past the input");
        return;
    }
    if (offset != 0 && (!st.input_started || offset > st.input_filled)) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_OFFSET, st.input_filled, total,
                   "chunk leaves a gap: write the input in order from offset 0");
        return;
    }
    if (offset == 0 && !st.begun && !(st.input_started && st.input_seq == seq)) {
        /* Not a retry of the chunk that began this input: a new input, with the flags of the
         * last BEGIN (none after a RUN). */
        begin_input(seq, st.input_started ? st.input_flags : 0);
    }
    if (offset == 0 && st.begun) {
        st.input_seq = seq;
    }
    st.begun = 0;
    /* Bytes below input_filled were received before (a retry): they may already have been
     * consumed, so only the new part is taken. */
    if (offset + n > st.input_filled) {
        const uint32_t skip = st.input_filled - offset;
        take_bytes(body + SQZ_PROTO_WRITE_HEADER_BYTES + skip, n - skip);
    }
    begin_response(SQZ_PROTO_RESP_ACK, seq);
    sqz_frame_tx_u32(&tx, st.input_filled);
    sqz_frame_tx_u32(&tx, total);
    sqz_frame_tx_end(&tx);
}

static void send_run_outcome(uint16_t seq)
{
    if (st.run_status != SQZ_OK) {
        const uint16_t step = st.run_failed_step;
        const char *name = (model->node_names && step < model->n_nodes)
                               ? model->node_names[step]
                               : NULL;
        send_error2(seq, SQZ_PROTO_CMD_RUN, SQZ_PROTO_ERR_RUN_FAILED, st.run_status, step,
                    name ? name : "?", sqz_status_str((sqz_status)st.run_status));
        return;
    }
    begin_response(SQZ_PROTO_RESP_RESULT, seq);
    sqz_frame_tx_u16(&tx, st.run_status);
    sqz_frame_tx_u16(&tx, st.run_failed_step);
    sqz_frame_tx_u64(&tx, st.run_total);
    sqz_frame_tx_u32(&tx, st.run_number);
    sqz_frame_tx_u8(&tx, st.run_flags);
    sqz_frame_tx_u8(&tx, 0);
    sqz_frame_tx_u16(&tx, model->n_nodes);
    sqz_frame_tx_end(&tx);
}

static void cmd_run(uint16_t seq, const uint8_t *body, uint32_t len)
{
    const uint8_t cmd = SQZ_PROTO_CMD_RUN;
    if (len != SQZ_PROTO_RUN_BYTES) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_LENGTH, len, SQZ_PROTO_RUN_BYTES,
                   "RUN takes one flags byte");
        return;
    }
    const uint8_t flags = body[0];
    if (flags & ~SQZ_PROTO_RUNF_LAYER_COUNTS) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, flags, SQZ_PROTO_RUNF_LAYER_COUNTS,
                   "unknown RUN flags");
        return;
    }
    if (st.run_cached && st.run_seq == seq) {
        send_run_outcome(seq); /* a retry: the input is consumed, answer what the run gave */
        return;
    }
    if (!st.arena) {
        send_error(seq, cmd, SQZ_PROTO_ERR_NO_ARENA, 0, 0, "no arena for the model");
        return;
    }
    if (!st.input_started || st.input_filled < input_total()) {
        send_error(seq, cmd, SQZ_PROTO_ERR_INPUT_INCOMPLETE,
                   st.input_started ? st.input_filled : 0, input_total(),
                   "write the whole input before RUN");
        return;
    }
    if (runs_as_rows_arrive() &&
        (flags & SQZ_PROTO_RUNF_LAYER_COUNTS) != (st.input_flags & SQZ_PROTO_RUNF_LAYER_COUNTS)) {
        /* The run started with the first rows: counting per layer is decided at BEGIN. */
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, flags, st.input_flags,
                   "per-layer counts differ from BEGIN's: the run started with the input");
        return;
    }
    const int per_layer = (flags & SQZ_PROTO_RUNF_LAYER_COUNTS) != 0;
    if (!runs_as_rows_arrive()) {
        start_run(per_layer);
        compute();
    }
    sqz_status status = (sqz_status)st.exec_status;
    if (status == SQZ_WAIT_INPUT) {
        status = SQZ_ERR_ARG; /* every byte arrived: the schedule and the input disagree */
    }
    st.run_count++;
    /* The planner reuses the input's memory, so every RUN consumes its input. */
    st.consumed_valid = 1;
    st.consumed_seq = st.input_seq;
    st.input_started = 0;
    st.input_filled = 0;
    st.begun = 0;
    st.result_valid = status == SQZ_OK;
    st.counts_valid = status == SQZ_OK && per_layer;
    st.run_cached = 1;
    st.run_seq = seq;
    st.run_flags = per_layer ? SQZ_PROTO_RUNF_LAYER_COUNTS : 0;
    st.run_status = (uint16_t)status;
    st.run_failed_step = status == SQZ_OK ? 0 : ex.failed_node;
    st.run_number = st.run_count;
    st.run_total = st.exec_total;
    send_run_outcome(seq);
}

static void put_layer_counts(uint32_t offset, uint32_t n)
{
    for (uint32_t k = offset; k < offset + n; ++k) {
        sqz_frame_tx_u8(&tx, (uint8_t)(layer_counts[k / 8u] >> (8u * (k % 8u))));
    }
}

static void put_step_names(uint32_t offset, uint32_t n)
{
    uint32_t pos = 0;
    const uint32_t end = offset + n;
    for (uint16_t i = 0; i < model->n_nodes && pos < end; ++i) {
        const char *s = model->node_names ? model->node_names[i] : NULL;
        const uint32_t len = (s ? (uint32_t)strlen(s) : 0u) + 1u; /* with its 0x00 */
        for (uint32_t j = 0; j < len && pos < end; ++j, ++pos) {
            if (pos >= offset) {
                sqz_frame_tx_u8(&tx, j + 1u < len ? (uint8_t)s[j] : 0u);
            }
        }
    }
}

static void cmd_read(uint16_t seq, const uint8_t *body, uint32_t len)
{
    const uint8_t cmd = SQZ_PROTO_CMD_READ;
    if (len != SQZ_PROTO_READ_BYTES) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_LENGTH, len, SQZ_PROTO_READ_BYTES,
                   "READ takes u8 what, 3 zero bytes, u32 offset, u32 length");
        return;
    }
    const uint8_t what = body[0];
    const uint32_t offset = get_u32(body + 4);
    uint32_t n = get_u32(body + 8);
    const uint8_t *src = NULL;
    uint32_t total = 0;
    if (n > MAX_PAYLOAD) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_LENGTH, n, MAX_PAYLOAD,
                   "READ length above max_payload");
        return;
    }
    switch (what) {
    case SQZ_PROTO_READ_OUTPUT:
        if (!st.result_valid) {
            send_error(seq, cmd, SQZ_PROTO_ERR_NO_RESULT, what, 0,
                       "no output: RUN a complete input first");
            return;
        }
        src = st.arena + model->output.offset;
        total = model->output.bytes;
        break;
    case SQZ_PROTO_READ_LOGITS:
        if (model->logits.bytes == 0 || !st.result_valid) {
            send_error(seq, cmd, SQZ_PROTO_ERR_NO_RESULT, what, 0,
                       model->logits.bytes == 0 ? "this model keeps no logits"
                                                : "no logits: RUN a complete input first");
            return;
        }
        src = st.arena + model->logits.offset;
        total = model->logits.bytes;
        break;
    case SQZ_PROTO_READ_LAYER_COUNTS:
        if (!st.counts_valid) {
            send_error(seq, cmd, SQZ_PROTO_ERR_NO_RESULT, what, 0,
                       "no layer counts: RUN with the LAYER_COUNTS flag first");
            return;
        }
        total = 8u * st.n_counts;
        break;
    case SQZ_PROTO_READ_STEP_NAMES:
        total = st.names_bytes;
        break;
    default:
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_ARGUMENT, what, 0, "unknown READ target");
        return;
    }
    if (offset > total) {
        send_error(seq, cmd, SQZ_PROTO_ERR_BAD_OFFSET, offset, total,
                   "READ offset past the end");
        return;
    }
    if (n > total - offset) {
        n = total - offset;
    }
    begin_response(SQZ_PROTO_RESP_DATA, seq);
    sqz_frame_tx_u8(&tx, what);
    sqz_frame_tx_u8(&tx, 0);
    sqz_frame_tx_u16(&tx, 0);
    sqz_frame_tx_u32(&tx, offset);
    sqz_frame_tx_u32(&tx, total);
    if (src) {
        sqz_frame_tx_put(&tx, src + offset, n);
    } else if (what == SQZ_PROTO_READ_LAYER_COUNTS) {
        put_layer_counts(offset, n);
    } else {
        put_step_names(offset, n);
    }
    sqz_frame_tx_end(&tx);
}

/* Checks run in the order docs/protocol.md gives ("When several errors apply"): the frame,
 * the header, the seq, the version, the command, then per command its body length, its
 * argument values and last the device's state. */
static void handle_frame(const uint8_t *p, uint32_t len)
{
    if (len < SQZ_PROTO_REQ_HEADER_BYTES) {
        st.bad_frames++; /* not served: every non-empty frame is one or the other */
        send_error(SQZ_PROTO_SEQ_NONE, 0, SQZ_PROTO_ERR_BAD_LENGTH, len,
                   SQZ_PROTO_REQ_HEADER_BYTES, "frame shorter than a request header");
        return;
    }
    const uint8_t version = p[0];
    const uint8_t cmd = p[1];
    const uint16_t seq = get_u16(p + 2);
    const uint8_t *body = p + SQZ_PROTO_REQ_HEADER_BYTES;
    const uint32_t body_len = len - SQZ_PROTO_REQ_HEADER_BYTES;
    if (seq == SQZ_PROTO_SEQ_NONE) {
        /* Its answer could not be told from a frame error, so it is refused, not served. */
        st.bad_frames++;
        send_error(SQZ_PROTO_SEQ_NONE, cmd, SQZ_PROTO_ERR_BAD_SEQ, seq, 0,
                   "seq 65535 is reserved: use 0..65534");
        return;
    }
    st.served++;
    if (version != SQZ_PROTO_VERSION) {
        send_error(seq, cmd, SQZ_PROTO_ERR_UNSUPPORTED_VERSION, SQZ_PROTO_VERSION, version,
                   "unsupported protocol version");
        return;
    }
    switch (cmd) {
    case SQZ_PROTO_CMD_HELLO:
        if (body_len != 0) {
            send_error(seq, cmd, SQZ_PROTO_ERR_BAD_LENGTH, body_len, 0, "HELLO has no body");
            return;
        }
        cmd_hello(seq);
        return;
    case SQZ_PROTO_CMD_WRITE_INPUT:
        cmd_write_input(seq, body, body_len);
        return;
    case SQZ_PROTO_CMD_RUN:
        cmd_run(seq, body, body_len);
        return;
    case SQZ_PROTO_CMD_BEGIN:
        cmd_begin(seq, body, body_len);
        return;
    case SQZ_PROTO_CMD_READ:
        cmd_read(seq, body, body_len);
        return;
    default:
        send_error(seq, cmd, SQZ_PROTO_ERR_UNKNOWN_COMMAND, cmd, 0, "unknown command");
        return;
    }
}

static void handle_bad_frame(sqz_frame_event ev, uint32_t raw)
{
    st.bad_frames++;
    if (ev != SQZ_FRAME_TOO_LONG && raw < SQZ_PROTO_MIN_REPORTED_RAW) {
        return; /* too short to have been meant as a frame: line noise */
    }
    switch (ev) {
    case SQZ_FRAME_BAD_CRC:
        send_error(SQZ_PROTO_SEQ_NONE, 0, SQZ_PROTO_ERR_BAD_CRC, raw, 0, "frame CRC mismatch");
        break;
    case SQZ_FRAME_TOO_LONG:
        send_error(SQZ_PROTO_SEQ_NONE, 0, SQZ_PROTO_ERR_FRAME_TOO_LONG, RX_CAP, MAX_PAYLOAD,
                   "frame too long, dropped");
        break;
    default:
        send_error(SQZ_PROTO_SEQ_NONE, 0, SQZ_PROTO_ERR_BAD_FRAME, raw, 0,
                   "malformed frame (COBS)");
        break;
    }
}

/* ---- entry points ---------------------------------------------------------------------------- */

void sqz_app_init(void)
{
    memset(&st, 0, sizeof st);
    st.boot_counter = sqz_port_counter();
    /* Different on every boot of a host process; on a board it may repeat, which is why the
     * host also watches `served` (see docs/protocol.md, reset detection). */
    st.boot_id = (uint32_t)(st.boot_counter ^ (st.boot_counter >> 32)) ^ 0x5A5A0000u;
    st.n_counts = model->n_nodes < COUNTS_ALLOC ? model->n_nodes : (uint16_t)COUNTS_ALLOC;
    for (uint16_t i = 0; i < model->n_nodes; ++i) {
        const char *s = model->node_names ? model->node_names[i] : NULL;
        st.names_bytes += (s ? (uint32_t)strlen(s) : 0u) + 1u;
    }
    uint8_t *arena = sqz_port_arena((uint32_t)SQZ_MODEL_ARENA_BYTES);
    if (arena && model->arena_bytes <= (uint32_t)SQZ_MODEL_ARENA_BYTES &&
        input_fits() && region_fits(&model->output) &&
        region_fits(&model->logits)) {
        st.arena = arena;
    }
    sqz_frame_rx_init(&rx, rx_buf, RX_CAP);

    begin_response(SQZ_PROTO_RESP_BOOT, SQZ_PROTO_SEQ_NONE);
    sqz_frame_tx_u8(&tx, SQZ_PROTO_VERSION);
    put_str(SQZ_FIRMWARE_VERSION);
    sqz_frame_tx_end(&tx);
}

void sqz_app_poll(void)
{
    uint8_t chunk[64];
    /* Bounded, so that a port streaming garbage still returns to its main loop. */
    for (int rounds = 0; rounds < 64; ++rounds) {
        const int32_t got = sqz_port_read(chunk, (int32_t)sizeof chunk);
        if (got <= 0) {
            return;
        }
        for (int32_t i = 0; i < got && i < (int32_t)sizeof chunk; ++i) {
            uint32_t len = 0;
            const sqz_frame_event ev = sqz_frame_rx_byte(&rx, chunk[i], &len);
            if (ev == SQZ_FRAME_OK) {
                handle_frame(rx_buf, len);
            } else if (ev != SQZ_FRAME_NONE) {
                handle_bad_frame(ev, len);
            }
        }
    }
}

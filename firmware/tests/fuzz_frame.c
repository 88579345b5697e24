/* libFuzzer harness for the frame decoder and encoder (firmware/src/app/frame.c).
 *
 *   clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -Ifirmware/src/app \
 *         firmware/tests/fuzz_frame.c firmware/src/app/frame.c -o fuzz_frame
 *   ./fuzz_frame -runs=200000
 *
 * Each input is: one byte choosing the receive buffer's capacity, then a byte stream. The
 * stream is fed to a decoder whose buffer is a heap block of exactly that capacity (so ASan
 * sees any overrun); every event must be consistent. Then the stream itself is framed with
 * the encoder and decoded again, which must give back exactly the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} sink;

static void sink_write(void *ctx, const uint8_t *data, int32_t n)
{
    sink *s = (sink *)ctx;
    CHECK(n > 0);
    CHECK(s->len + (size_t)n <= s->cap);
    memcpy(s->buf + s->len, data, (size_t)n);
    s->len += (size_t)n;
}

static void decode_stream(const uint8_t *data, size_t size, uint32_t cap)
{
    uint8_t *buf = cap ? (uint8_t *)malloc(cap) : NULL;
    sqz_frame_rx rx;
    sqz_frame_rx_init(&rx, buf, cap);
    uint32_t raw_since_delim = 0;
    for (size_t i = 0; i < size; ++i) {
        uint32_t len = 0xFFFFFFFFu;
        const sqz_frame_event ev = sqz_frame_rx_byte(&rx, data[i], &len);
        if (data[i] != 0) {
            CHECK(ev == SQZ_FRAME_NONE);
            raw_since_delim++;
            CHECK(rx.len <= rx.cap);
            continue;
        }
        if (raw_since_delim == 0) {
            CHECK(ev == SQZ_FRAME_NONE);
        } else if (ev == SQZ_FRAME_OK) {
            CHECK(cap >= 4 && len <= cap - 4);
            CHECK(sqz_crc32(0, buf, len) ==
                  ((uint32_t)buf[len] | ((uint32_t)buf[len + 1] << 8) |
                   ((uint32_t)buf[len + 2] << 16) | ((uint32_t)buf[len + 3] << 24)));
        } else {
            CHECK(ev != SQZ_FRAME_NONE);
            CHECK(len == raw_since_delim);
        }
        raw_since_delim = 0;
        CHECK(rx.len == 0 && rx.raw == 0);
    }
    free(buf);
}

static void round_trip(const uint8_t *payload, size_t n)
{
    sink s;
    s.cap = 2 + n + 4 + (n + 4) / 254 + 2;
    s.buf = (uint8_t *)malloc(s.cap);
    s.len = 0;
    sqz_frame_tx tx;
    sqz_frame_tx_begin(&tx, sink_write, &s);
    /* In uneven pieces, to exercise the streaming. */
    size_t done = 0;
    while (done < n) {
        size_t piece = 1 + (payload[done] % 37u);
        if (piece > n - done) {
            piece = n - done;
        }
        sqz_frame_tx_put(&tx, payload + done, (uint32_t)piece);
        done += piece;
    }
    sqz_frame_tx_end(&tx);
    CHECK(s.len >= 2 && s.buf[0] == 0 && s.buf[s.len - 1] == 0);
    for (size_t i = 1; i + 1 < s.len; ++i) {
        CHECK(s.buf[i] != 0);
    }

    const uint32_t cap = (uint32_t)n + 4;
    uint8_t *buf = (uint8_t *)malloc(cap);
    sqz_frame_rx rx;
    sqz_frame_rx_init(&rx, buf, cap);
    int frames = 0;
    for (size_t i = 0; i < s.len; ++i) {
        uint32_t len = 0;
        const sqz_frame_event ev = sqz_frame_rx_byte(&rx, s.buf[i], &len);
        if (ev != SQZ_FRAME_NONE) {
            CHECK(ev == SQZ_FRAME_OK);
            CHECK(len == n && (n == 0 || memcmp(buf, payload, n) == 0));
            frames++;
        }
    }
    CHECK(frames == 1);

    /* One byte less of buffer and the same frame is too long. */
    sqz_frame_rx_init(&rx, buf, cap - 1);
    sqz_frame_event last = SQZ_FRAME_NONE;
    for (size_t i = 0; i < s.len; ++i) {
        uint32_t len = 0;
        const sqz_frame_event ev = sqz_frame_rx_byte(&rx, s.buf[i], &len);
        if (ev != SQZ_FRAME_NONE) {
            last = ev;
        }
    }
    CHECK(last == SQZ_FRAME_TOO_LONG);
    free(buf);
    free(s.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const uint32_t cap = data[0] % 80u; /* small buffers reach the overflow paths */
    decode_stream(data + 1, size - 1, cap);
    round_trip(data + 1, size - 1);
    return 0;
}

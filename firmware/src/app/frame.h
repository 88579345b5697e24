/* Framing of the serial protocol: COBS with 0x00 as the frame delimiter, and a CRC-32
 * (IEEE 802.3, the one zlib's crc32() computes) over the payload, appended little-endian
 * before encoding.
 *
 *   wire:  0x00 | COBS(payload | crc32(payload) as 4 bytes LE) | 0x00
 *
 * The decoder is fed one byte at a time, needs no lookahead and writes only into the buffer it
 * was given; garbage ends at the next 0x00, so it resynchronises on every delimiter. The
 * encoder streams: it needs 255 bytes of state and never holds the whole frame, so large
 * payloads can come straight from the arena. Neither allocates nor depends on the port.
 */
#ifndef SQZ_FRAME_H
#define SQZ_FRAME_H

#include <stdint.h>

/* CRC-32 of `n` bytes continuing from `crc` (start with 0), as zlib.crc32(data, crc). */
uint32_t sqz_crc32(uint32_t crc, const uint8_t *data, uint32_t n);

/* ---- decoder ---- */

typedef enum {
    SQZ_FRAME_NONE = 0,   /* byte consumed, no frame ended */
    SQZ_FRAME_OK,         /* a frame with a valid CRC: payload in buf[0 .. *len) */
    SQZ_FRAME_BAD_CRC,    /* well-formed COBS, but the CRC does not match */
    SQZ_FRAME_BAD_COBS,   /* a COBS block was cut short by the delimiter */
    SQZ_FRAME_TOO_SHORT,  /* decoded to fewer bytes than the CRC itself */
    SQZ_FRAME_TOO_LONG    /* longer than the buffer; the rest was skipped */
} sqz_frame_event;

typedef struct {
    uint8_t *buf;
    uint32_t cap;       /* bytes of buf, CRC included */
    uint32_t len;       /* decoded bytes so far */
    uint32_t raw;       /* encoded bytes seen in this frame (saturates) */
    uint8_t remaining;  /* data bytes left in the current COBS block */
    uint8_t zero_after; /* the current block ends with an implicit zero */
    uint8_t pending;    /* an implicit zero is owed unless the frame ends first */
    uint8_t overflow;   /* the frame outgrew buf */
} sqz_frame_rx;

void sqz_frame_rx_init(sqz_frame_rx *rx, uint8_t *buf, uint32_t cap);

/* Feeds one received byte. On SQZ_FRAME_OK, *len is the payload length (CRC stripped) and the
 * payload stays in rx->buf until the next call. On the error events, *len is the number of
 * encoded bytes the bad frame had (so the caller can tell noise from a damaged frame). Empty
 * frames (two delimiters in a row) are ignored. */
sqz_frame_event sqz_frame_rx_byte(sqz_frame_rx *rx, uint8_t byte, uint32_t *len);

/* ---- encoder ---- */

typedef void (*sqz_frame_write_fn)(void *ctx, const uint8_t *data, int32_t n);

typedef struct {
    sqz_frame_write_fn write;
    void *ctx;
    uint32_t crc;
    uint16_t n;          /* bytes waiting in block (no zero among them) */
    uint8_t block[255];  /* block[0] is reserved for the COBS code byte */
} sqz_frame_tx;

/* Starts a frame: writes the leading delimiter. */
void sqz_frame_tx_begin(sqz_frame_tx *tx, sqz_frame_write_fn write, void *ctx);
/* Appends payload bytes. */
void sqz_frame_tx_put(sqz_frame_tx *tx, const uint8_t *data, uint32_t n);
void sqz_frame_tx_u8(sqz_frame_tx *tx, uint8_t v);
void sqz_frame_tx_u16(sqz_frame_tx *tx, uint16_t v);
void sqz_frame_tx_u32(sqz_frame_tx *tx, uint32_t v);
void sqz_frame_tx_u64(sqz_frame_tx *tx, uint64_t v);
/* Appends the CRC, flushes the last block and writes the closing delimiter. */
void sqz_frame_tx_end(sqz_frame_tx *tx);

#endif

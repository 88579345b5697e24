/* The serial protocol between sqz-validate (the host) and the board, version 3.
 *
 * docs/protocol.md is the specification; this header only carries its numbers, and
 * converter/device/protocol.py mirrors them (tests/test_protocol.py checks that both agree, so
 * every constant here must be a plain `#define SQZ_PROTO_<NAME> <integer>`).
 *
 * Framing (frame.h): payload + CRC-32 (little-endian), COBS-encoded, 0x00-delimited.
 * Every multi-byte field is little-endian.
 *
 * Request payload:  u8 version | u8 command | u16 seq | body
 * Response payload: u8 version | u8 type | u16 seq | u32 served | u32 boot_id | body
 */
#ifndef SQZ_PROTOCOL_H
#define SQZ_PROTOCOL_H

/* Bumped on every incompatible change; a device answers a request of another version with
 * SQZ_PROTO_ERR_UNSUPPORTED_VERSION (encoded in its own version). */
#define SQZ_PROTO_VERSION 3

#define SQZ_PROTO_REQ_HEADER_BYTES 4
#define SQZ_PROTO_RESP_HEADER_BYTES 12
#define SQZ_PROTO_CRC_BYTES 4

/* Decoded frame bytes (header, fixed body fields and CRC) beyond the data of the largest
 * WRITE_INPUT or DATA frame: a frame may be SQZ_MAX_FRAME_PAYLOAD + this long. */
#define SQZ_PROTO_FRAME_OVERHEAD 32

/* seq of frames that answer no particular request (BOOT, errors about unreadable frames).
 * Reserved: a request that uses it is refused with SQZ_PROTO_ERR_BAD_SEQ, not served. */
#define SQZ_PROTO_SEQ_NONE 65535

/* Damaged frames at least this long (encoded, without the delimiter) get an error frame;
 * shorter fragments are line noise and are only counted. */
#define SQZ_PROTO_MIN_REPORTED_RAW 9

/* Strings in INFO and BOOT and error messages are cut to this many bytes. */
#define SQZ_PROTO_MAX_STRING 63

/* ---- requests (host -> device) ---- */
#define SQZ_PROTO_CMD_HELLO 1       /* body: empty                         -> INFO */
#define SQZ_PROTO_CMD_WRITE_INPUT 2 /* body: u32 offset, data[1..max]      -> ACK */
#define SQZ_PROTO_CMD_RUN 3         /* body: u8 flags                      -> RESULT */
#define SQZ_PROTO_CMD_READ 4        /* body: u8 what, u8[3] 0, u32 offset, u32 len -> DATA */
#define SQZ_PROTO_CMD_BEGIN 5 /* body: u8 flags, u8 format, u16 0, u16 width, u16 height -> ACK */

/* ---- responses (device -> host) ---- */
#define SQZ_PROTO_RESP_INFO 129
#define SQZ_PROTO_RESP_ACK 130
#define SQZ_PROTO_RESP_RESULT 131
#define SQZ_PROTO_RESP_DATA 132
#define SQZ_PROTO_RESP_BOOT 176  /* unsolicited, sent once by sqz_app_init() */
#define SQZ_PROTO_RESP_ERROR 238

/* ---- body sizes ---- */
#define SQZ_PROTO_WRITE_HEADER_BYTES 4
#define SQZ_PROTO_RUN_BYTES 1
#define SQZ_PROTO_BEGIN_BYTES 8
#define SQZ_PROTO_READ_BYTES 12
#define SQZ_PROTO_INFO_FIXED_BYTES 184
#define SQZ_PROTO_TENSOR_BYTES 28
#define SQZ_PROTO_ACK_BYTES 8
#define SQZ_PROTO_RESULT_BYTES 20
#define SQZ_PROTO_DATA_HEADER_BYTES 12
#define SQZ_PROTO_ERROR_FIXED_BYTES 13

/* ---- RUN flags ---- */
#define SQZ_PROTO_RUNF_LAYER_COUNTS 1 /* record the counter after every step */
/* ---- BEGIN flags ---- */
#define SQZ_PROTO_BEGINF_LAYER_COUNTS 1 /* as RUN's: a ring input's run starts with its rows */
#define SQZ_PROTO_BEGINF_FRAME 2 /* the bytes are a camera frame, converted on the device */
/* ---- INFO input modes ---- */
#define SQZ_PROTO_INPUT_WHOLE 0  /* the input is stored whole: the run starts at RUN */
#define SQZ_PROTO_INPUT_RING 1   /* input rows feed the run as they arrive */
#define SQZ_PROTO_INPUT_CAMERA 2 /* camera frame rows feed the run as they arrive */

/* ---- READ targets ---- */
#define SQZ_PROTO_READ_OUTPUT 1       /* output tensor bytes (after a successful RUN) */
#define SQZ_PROTO_READ_LOGITS 2       /* logits tensor bytes (model has logits, after RUN) */
#define SQZ_PROTO_READ_LAYER_COUNTS 3 /* u64 per step (after a RUN with LAYER_COUNTS) */
#define SQZ_PROTO_READ_STEP_NAMES 4   /* every step name followed by one 0x00 */

/* ---- INFO flags ---- */
#define SQZ_PROTO_INFOF_ARENA_OK 1   /* the port provided the arena */
#define SQZ_PROTO_INFOF_HAS_LOGITS 2 /* the model keeps its logits */

/* ---- error codes (ERROR body: u16 code, u8 command, u8 0, u32 detail, u32 detail2,
 *      u8 message length, message) ---- */
#define SQZ_PROTO_ERR_BAD_CRC 1             /* frame CRC mismatch; detail = encoded bytes */
#define SQZ_PROTO_ERR_BAD_FRAME 2           /* invalid COBS or shorter than a header */
#define SQZ_PROTO_ERR_FRAME_TOO_LONG 3      /* detail = the limit in decoded bytes */
#define SQZ_PROTO_ERR_BAD_LENGTH 4          /* detail = body bytes, detail2 = expected/max */
#define SQZ_PROTO_ERR_UNSUPPORTED_VERSION 5 /* detail = the device's version */
#define SQZ_PROTO_ERR_UNKNOWN_COMMAND 6
#define SQZ_PROTO_ERR_BAD_OFFSET 7      /* detail = what the device expected, detail2 = total */
#define SQZ_PROTO_ERR_INPUT_INCOMPLETE 8 /* detail = bytes received, detail2 = needed */
#define SQZ_PROTO_ERR_RUN_FAILED 9       /* detail = sqz_status, detail2 = failed step */
#define SQZ_PROTO_ERR_NO_RESULT 10       /* READ of results that do not exist (yet) */
#define SQZ_PROTO_ERR_BAD_ARGUMENT 11    /* unknown READ target or RUN flag */
#define SQZ_PROTO_ERR_NO_ARENA 12        /* the port could not provide the arena */
#define SQZ_PROTO_ERR_BAD_SEQ 13         /* a request with the reserved seq 65535 */

#endif

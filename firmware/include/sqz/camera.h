/* On-device camera preprocessing: a raw camera frame -> the model's int8 input, one model row at
 * a time, integer only. The converter computes every constant (converter/frontend/camera.py,
 * CameraParams) and renders them with templates/_camera.j2; camera.py's mirror() is the bit-exact
 * host reference of sqz_camera_row_s8. docs/camera.md describes the arithmetic. */
#ifndef SQZ_CAMERA_H
#define SQZ_CAMERA_H

#include <stdint.h>

#include "sqz/runtime.h"
#include "sqz/status.h"

/* Pixel formats, in the order of camera.py's FORMATS. */
enum {
    SQZ_CAMERA_RGB565LE = 0,
    SQZ_CAMERA_RGB565BE = 1,
    SQZ_CAMERA_RGB888 = 2,
    SQZ_CAMERA_GRAY8 = 3,
    SQZ_CAMERA_YUYV = 4 /* Y0 U Y1 V, limited-range BT.601 */
};

/* Resize modes, in the order of camera.py's RESIZES. */
enum { SQZ_CAMERA_NEAREST = 0, SQZ_CAMERA_BILINEAR = 1 };

/* Added to every quantized value by the bias so the sums stay unsigned (camera.py's
 * QUANT_OFFSET). */
#define SQZ_CAMERA_OFFSET 131072

typedef struct sqz_camera_params {
    int32_t format;       /* SQZ_CAMERA_* */
    int32_t frame_width;  /* pixels */
    int32_t frame_height;
    int32_t row_bytes;    /* bytes of one frame row */
    int32_t out_h;        /* the model input */
    int32_t out_w;
    int32_t out_c;        /* 1 or 3 */
    int32_t resize;       /* SQZ_CAMERA_NEAREST or SQZ_CAMERA_BILINEAR */
    int32_t swap_rb;      /* 1: the model takes BGR */
    int32_t ring_rows;    /* the most frame rows one model row reads (1 or 2) */
    int32_t x_lo, x_hi;   /* model columns [x_lo, x_hi) show the frame, the rest is padding */
    int32_t y_lo, y_hi;   /* model rows [y_lo, y_hi) show the frame, the rest is padding */
    const uint32_t *x_off0; /* [out_w] byte offset of the left source pixel in a frame row */
    const uint32_t *x_off1; /* [out_w] ... of the right one (== x_off0 when x_frac is 0) */
    const uint8_t *x_frac;  /* [out_w] weight of the right pixel, 1/256 */
    const int32_t *y_first; /* [out_h] first frame row read (0 on a pad row) */
    const int32_t *y_last;  /* [out_h] last frame row read (-1 on a pad row) */
    const uint8_t *y_frac;  /* [out_h] weight of row y_last, 1/256 */
    /* Per model channel c, for the interpolated value v in 1/65536 pixel levels:
     * q = clamp(((((uint64)v * multiplier[c]) >> 32) + bias[c]) >> shift) - SQZ_CAMERA_OFFSET,
     * -128, 127), all unsigned before the subtraction. */
    uint32_t multiplier[3];
    uint32_t bias[3];
    int32_t shift;
    int8_t pad[3];          /* the letterbox padding (black), quantized */
} sqz_camera_params;

/* The frame rows model row y reads: *first..*last, or *first = 0, *last = -1 for none (a pad
 * row, or y out of range). *first never decreases with y and *last - *first < ring_rows. */
void sqz_camera_row_span(const sqz_camera_params *p, int32_t y, int32_t *first, int32_t *last);

/* Model row y (out_w * out_c int8 values) from the frame rows sqz_camera_row_span names:
 * frame_rows[0] is row first, frame_rows[last - first] row last (frame_rows may be NULL for a
 * pad row). SQZ_ERR_ARG for a NULL pointer or y outside 0..out_h-1. */
sqz_status sqz_camera_row_s8(const sqz_camera_params *p, int32_t y,
                             const uint8_t *const *frame_rows, int8_t *out);

/* A camera model run on a whole frame in any memory (PSRAM included): every frame row is there,
 * so the executor runs to the end. SQZ_ERR_ARG for a model without a camera input node. */
sqz_status sqz_run_frame(const sqz_model *model, uint8_t *arena, const uint8_t *frame,
                         sqz_node_hook hook, void *user, uint16_t *failed_node);

/* Byte x_byte of frame row y of camera.py's frame_gradient(camera, seed) in `format` (the
 * width does not matter): a synthetic test frame without storing one. */
uint8_t sqz_camera_gradient_byte(int32_t format, uint32_t seed, int32_t x_byte, int32_t y);

#endif

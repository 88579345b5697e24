/* Camera frame -> int8 model input, one model row at a time (see sqz/camera.h).
 *
 * Every per-column and per-row quantity (source byte offsets, fractions, padding) is a table the
 * converter computed, so the inner loop over x has no division and no float. Per output pixel:
 * decode up to four source pixels, interpolate exactly (1/65536 of a level), convert YUV once,
 * then one 32x32->64-bit multiply and a few 32-bit operations per channel. */
#include <stddef.h>

#include "node.h"
#include "sqz/camera.h"
#include "sqz/runtime.h"

/* The row loop is instantiated per (format, resize, channels) from one body; forcing the inline
 * lets the compiler fold those constants, so the inner loop has no format switch (GCC would
 * otherwise keep a call and a switch per source pixel). */
#if defined(__GNUC__)
#define SQZ_CAM_INLINE static inline __attribute__((always_inline))
#else
#define SQZ_CAM_INLINE static inline
#endif

/* 0 .. 255 * 65536, the range of an interpolated value. */
SQZ_CAM_INLINE uint32_t sqz_cam_clamp_v(int32_t t)
{
    return t < 0 ? 0u : (t > 255 * 65536 ? 255u * 65536u : (uint32_t)t);
}

/* Interpolated Y, U, V in 1/65536 levels -> R, G, B in 1/65536 levels, limited-range BT.601:
 * the 8-bit matrix (298, 409, -100, -208, 516) / 256 at 1/256-level precision, so no rounding
 * (|sums| < 2^26). Matches camera.py's _yuv_to_rgb. */
SQZ_CAM_INLINE void sqz_cam_yuv(int32_t gray_out, uint32_t *r, uint32_t *g, uint32_t *b)
{
    const int32_t c = 298 * ((int32_t)(*r >> 8) - (16 << 8));
    if (gray_out) {
        *r = sqz_cam_clamp_v(c);
        return;
    }
    const int32_t d = (int32_t)(*g >> 8) - (128 << 8);
    const int32_t e = (int32_t)(*b >> 8) - (128 << 8);
    *r = sqz_cam_clamp_v(c + 409 * e);
    *g = sqz_cam_clamp_v(c - 100 * d - 208 * e);
    *b = sqz_cam_clamp_v(c + 516 * d);
}

/* One source pixel at byte `off` of `row` -> *r, *g, *b, or the gray value in *r when gray_out
 * (luma for a colour format). YUYV gives Y, U, V (or Y), converted by sqz_cam_yuv after the
 * interpolation, once per output pixel; RGB565 for 3 channels gives its 5/6/5-bit fields,
 * which the channels' multipliers scale to levels. Matches camera.py's _decode. */
SQZ_CAM_INLINE void sqz_cam_decode(int32_t fmt, int32_t gray_out, const uint8_t *row,
                                   uint32_t off, int32_t *r, int32_t *g, int32_t *b)
{
    switch (fmt) {
    case SQZ_CAMERA_GRAY8:
        *r = row[off];
        return;
    case SQZ_CAMERA_RGB888:
        *r = row[off];
        *g = row[off + 1];
        *b = row[off + 2];
        break;
    case SQZ_CAMERA_RGB565LE:
    case SQZ_CAMERA_RGB565BE: {
        const uint32_t u = fmt == SQZ_CAMERA_RGB565LE
                               ? (uint32_t)row[off] | ((uint32_t)row[off + 1] << 8)
                               : (uint32_t)row[off + 1] | ((uint32_t)row[off] << 8);
        const int32_t r5 = (int32_t)(u >> 11);
        const int32_t g6 = (int32_t)((u >> 5) & 63u);
        const int32_t b5 = (int32_t)(u & 31u);
        if (!gray_out) { /* the fields; the multipliers scale them by 255/31 and 255/63 */
            *r = r5;
            *g = g6;
            *b = b5;
            return;
        }
        /* For luma, bit replication maps 0..31 / 0..63 onto 0..255 exactly at both ends. */
        *r = (r5 << 3) | (r5 >> 2);
        *g = (g6 << 2) | (g6 >> 4);
        *b = (b5 << 3) | (b5 >> 2);
        break;
    }
    default: /* YUYV: this pixel's Y, its pair's U and V, converted after interpolating */
        *r = row[off];
        if (!gray_out) {
            *g = row[(off & ~3u) + 1u];
            *b = row[(off & ~3u) + 3u];
        }
        return;
    }
    if (gray_out) {
        *r = (77 * *r + 150 * *g + 29 * *b + 128) >> 8;
    }
}

/* Normalization and int8 quantization of v (1/65536 pixel levels): the high word of one
 * 32x32-bit product (a single UMULL on Cortex-M), then 32-bit unsigned, so every shift is
 * defined. */
SQZ_CAM_INLINE int8_t sqz_cam_quantize(uint32_t v, uint32_t mult, uint32_t bias, int32_t shift)
{
    const uint32_t hi = (uint32_t)(((uint64_t)v * mult) >> 32);
    const int32_t t = (int32_t)((hi + bias) >> shift) - SQZ_CAMERA_OFFSET;
    /* One compare in the common, unsaturated case. */
    if ((uint32_t)(t + 128) > 255u) {
        return (int8_t)(t < 0 ? -128 : 127);
    }
    return (int8_t)t;
}

SQZ_CAM_INLINE void sqz_cam_row(const sqz_camera_params *p, int32_t fmt, int32_t bilinear,
                                int32_t nc, const uint8_t *top, const uint8_t *bot, int32_t fy,
                                int8_t *out)
{
    const int32_t gray_out = nc == 1;
    const int32_t gray_in = gray_out || fmt == SQZ_CAMERA_GRAY8;
    const uint32_t *off0 = p->x_off0;
    const uint32_t *off1 = p->x_off1;
    const uint8_t *frac = p->x_frac;
    /* Local copies: stores through the int8 output may alias anything, so values read through
     * p would be reloaded after every byte. A BGR model gets R in output channel 2, with
     * channel 2's constants. */
    const int32_t swap = p->swap_rb && nc == 3;
    const int32_t pr = swap ? 2 : 0;
    const int32_t pb = swap ? 0 : 2;
    const uint32_t m0 = p->multiplier[pr];
    const uint32_t m1 = p->multiplier[1];
    const uint32_t m2 = p->multiplier[pb];
    const uint32_t b0 = p->bias[pr];
    const uint32_t b1 = p->bias[1];
    const uint32_t b2 = p->bias[pb];
    const int32_t sh = p->shift;
    const int32_t x_hi = p->x_hi;
    int8_t *o = out + (size_t)p->x_lo * (size_t)nc;
    for (int32_t x = p->x_lo; x < x_hi; ++x, o += nc) {
        int32_t r0 = 0;
        int32_t g0 = 0;
        int32_t b0v = 0;
        uint32_t vr;
        uint32_t vg;
        uint32_t vb;
        sqz_cam_decode(fmt, gray_out, top, off0[x], &r0, &g0, &b0v);
        if (bilinear) {
            /* Exact, no rounding: t, u <= 255 * 256 and v <= 255 * 65536. One row pair at a
             * time keeps fewer values live (registers) than decoding all four pixels first. */
            int32_t r1 = 0;
            int32_t g1 = 0;
            int32_t b1v = 0;
            const int32_t fx = frac[x];
            const uint32_t x0 = off0[x];
            const uint32_t x1 = off1[x];
            sqz_cam_decode(fmt, gray_out, top, x1, &r1, &g1, &b1v);
            const int32_t tr = r0 * 256 + (r1 - r0) * fx;
            const int32_t tg = gray_in ? 0 : g0 * 256 + (g1 - g0) * fx;
            const int32_t tb = gray_in ? 0 : b0v * 256 + (b1v - b0v) * fx;
            sqz_cam_decode(fmt, gray_out, bot, x0, &r0, &g0, &b0v);
            sqz_cam_decode(fmt, gray_out, bot, x1, &r1, &g1, &b1v);
            const int32_t ur = r0 * 256 + (r1 - r0) * fx;
            vr = (uint32_t)(tr * 256 + (ur - tr) * fy);
            if (gray_in) {
                vg = vr;
                vb = vr;
            } else {
                const int32_t ug = g0 * 256 + (g1 - g0) * fx;
                const int32_t ub = b0v * 256 + (b1v - b0v) * fx;
                vg = (uint32_t)(tg * 256 + (ug - tg) * fy);
                vb = (uint32_t)(tb * 256 + (ub - tb) * fy);
            }
        } else {
            vr = (uint32_t)r0 << 16;
            vg = gray_in ? vr : (uint32_t)g0 << 16;
            vb = gray_in ? vr : (uint32_t)b0v << 16;
        }
        if (fmt == SQZ_CAMERA_YUYV) {
            sqz_cam_yuv(gray_out, &vr, &vg, &vb);
            if (gray_in) {
                vg = vr;
                vb = vr;
            }
        }
        o[pr] = sqz_cam_quantize(vr, m0, b0, sh);
        if (nc == 3) {
            o[1] = sqz_cam_quantize(vg, m1, b1, sh);
            o[pb] = sqz_cam_quantize(vb, m2, b2, sh);
        }
    }
}

static void sqz_cam_fill_pad(const sqz_camera_params *p, int32_t x0, int32_t x1, int8_t *out)
{
    for (int32_t x = x0; x < x1; ++x) {
        for (int32_t k = 0; k < p->out_c; ++k) {
            out[(size_t)x * (size_t)p->out_c + (size_t)k] = p->pad[k];
        }
    }
}

void sqz_camera_row_span(const sqz_camera_params *p, int32_t y, int32_t *first, int32_t *last)
{
    if (!first || !last) {
        return;
    }
    *first = 0;
    *last = -1;
    if (!p || !p->y_first || !p->y_last || y < 0 || y >= p->out_h) {
        return;
    }
    *first = p->y_first[y];
    *last = p->y_last[y];
}

sqz_status sqz_camera_row_s8(const sqz_camera_params *p, int32_t y,
                             const uint8_t *const *frame_rows, int8_t *out)
{
    if (!p || !out || !p->x_off0 || !p->x_off1 || !p->x_frac || !p->y_first || !p->y_last ||
        !p->y_frac || y < 0 || y >= p->out_h) {
        return SQZ_ERR_ARG;
    }
    if ((p->out_c != 1 && p->out_c != 3) || p->format < SQZ_CAMERA_RGB565LE ||
        p->format > SQZ_CAMERA_YUYV || (p->resize != SQZ_CAMERA_NEAREST &&
                                        p->resize != SQZ_CAMERA_BILINEAR)) {
        return SQZ_ERR_UNSUPPORTED;
    }
    const int32_t first = p->y_first[y];
    const int32_t last = p->y_last[y];
    if (last < first) { /* a letterbox pad row */
        sqz_cam_fill_pad(p, 0, p->out_w, out);
        return SQZ_OK;
    }
    if (!frame_rows || !frame_rows[0] || !frame_rows[last - first]) {
        return SQZ_ERR_ARG;
    }
    const uint8_t *top = frame_rows[0];
    const uint8_t *bot = frame_rows[last - first];
    const int32_t fy = p->y_frac[y];
    sqz_cam_fill_pad(p, 0, p->x_lo, out);
    sqz_cam_fill_pad(p, p->x_hi, p->out_w, out);
    const int32_t bilinear = p->resize == SQZ_CAMERA_BILINEAR;
    const int32_t colour = p->out_c == 3;
#define SQZ_CAM_FORMAT(F)                                                                     \
    case F:                                                                                   \
        if (bilinear && colour) {                                                             \
            sqz_cam_row(p, F, 1, 3, top, bot, fy, out);                                       \
        } else if (bilinear) {                                                                \
            sqz_cam_row(p, F, 1, 1, top, bot, fy, out);                                       \
        } else if (colour) {                                                                  \
            sqz_cam_row(p, F, 0, 3, top, bot, fy, out);                                       \
        } else {                                                                              \
            sqz_cam_row(p, F, 0, 1, top, bot, fy, out);                                       \
        }                                                                                     \
        break;
    switch (p->format) {
        SQZ_CAM_FORMAT(SQZ_CAMERA_RGB565LE)
        SQZ_CAM_FORMAT(SQZ_CAMERA_RGB565BE)
        SQZ_CAM_FORMAT(SQZ_CAMERA_RGB888)
        SQZ_CAM_FORMAT(SQZ_CAMERA_GRAY8)
    default:
        SQZ_CAM_FORMAT(SQZ_CAMERA_YUYV)
    }
#undef SQZ_CAM_FORMAT
    return SQZ_OK;
}

static uint32_t sqz_cam_gradient(int32_t c, uint32_t seed, uint32_t x, uint32_t y)
{
    static const uint8_t gx[3] = {3, 5, 7};
    static const uint8_t gy[3] = {2, 1, 3};
    static const uint8_t gs[3] = {17, 31, 47};
    return (x * gx[c] + y * gy[c] + seed * gs[c]) & 0xffu;
}

uint8_t sqz_camera_gradient_byte(int32_t format, uint32_t seed, int32_t x_byte, int32_t y)
{
    const uint32_t xb = (uint32_t)x_byte;
    const uint32_t yy = (uint32_t)y;
    switch (format) {
    case SQZ_CAMERA_GRAY8:
        return (uint8_t)sqz_cam_gradient(0, seed, xb, yy);
    case SQZ_CAMERA_RGB888:
        return (uint8_t)sqz_cam_gradient((int32_t)(xb % 3u), seed, xb / 3u, yy);
    case SQZ_CAMERA_RGB565LE:
    case SQZ_CAMERA_RGB565BE: {
        const uint32_t x = xb / 2u;
        const uint32_t u = ((sqz_cam_gradient(0, seed, x, yy) >> 3) << 11) |
                           ((sqz_cam_gradient(1, seed, x, yy) >> 2) << 5) |
                           (sqz_cam_gradient(2, seed, x, yy) >> 3);
        const uint32_t high = (xb & 1u) ^ (format == SQZ_CAMERA_RGB565BE ? 1u : 0u);
        return (uint8_t)(high ? u >> 8 : u & 0xffu);
    }
    default: { /* YUYV: Y0 U Y1 V */
        const uint32_t x = (xb / 4u) * 2u;
        switch (xb & 3u) {
        case 0u:
            return (uint8_t)sqz_cam_gradient(0, seed, x, yy);
        case 1u:
            return (uint8_t)sqz_cam_gradient(1, seed, x, yy);
        case 2u:
            return (uint8_t)sqz_cam_gradient(0, seed, x + 1u, yy);
        default:
            return (uint8_t)sqz_cam_gradient(2, seed, x, yy);
        }
    }
    }
}

/* The input node of a camera model: model row `row` once the frame rows it reads have arrived
 * (ex->rows_ready counts frame rows), made from them straight into its slot of the input ring.
 * Frame row r is at ex->src + (r % ex->src_slots) * ex->src_pitch: the whole frame (src_slots =
 * its height) or a ring of ring_rows frame rows the application fills as they come. */
sqz_status sqz_feed_camera(const sqz_node *nd, int32_t row, sqz_exec *ex, int *ready)
{
    const sqz_camera_params *p = nd->layer.input ? nd->layer.input->camera : NULL;
    if (!p || !ex->src || p->out_h <= 0 || ex->src_slots == 0) {
        return SQZ_ERR_ARG;
    }
    const int32_t y = row % p->out_h; /* batch-major rows: one frame per batch item */
    int32_t first = 0;
    int32_t last = -1;
    sqz_camera_row_span(p, y, &first, &last);
    if (last >= ex->rows_ready) {
        *ready = 0;
        return SQZ_OK;
    }
    *ready = 1;
    if (last - first + 1 > 2 || (uint32_t)(last - first + 1) > ex->src_slots) {
        return SQZ_ERR_ARG; /* the frame ring is smaller than one model row reads */
    }
    const uint8_t *rows[2] = {NULL, NULL};
    for (int32_t r = first; r <= last; ++r) {
        rows[r - first] = ex->src + ((uint32_t)r % ex->src_slots) * ex->src_pitch;
    }
    return sqz_camera_row_s8(p, y, rows, (int8_t *)sqz_row_at(ex->arena, &nd->output, row));
}

sqz_status sqz_run_frame(const sqz_model *model, uint8_t *arena, const uint8_t *frame,
                         sqz_node_hook hook, void *user, uint16_t *failed_node)
{
    if (!model || !arena || !frame || model->input_node >= model->n_nodes) {
        return SQZ_ERR_ARG;
    }
    const sqz_node *nd = &model->nodes[model->input_node];
    const sqz_camera_params *p = nd->layer.input ? nd->layer.input->camera : NULL;
    if (!p || p->frame_height <= 0 || p->row_bytes <= 0) {
        return SQZ_ERR_ARG;
    }
    sqz_exec ex;
    sqz_exec_begin(&ex, model, arena, hook, user);
    sqz_exec_source(&ex, frame, (uint32_t)p->row_bytes, (uint32_t)p->frame_height,
                    p->frame_height);
    sqz_status st = sqz_exec_continue(&ex);
    if (st == SQZ_WAIT_INPUT) {
        st = SQZ_ERR_ARG; /* every frame row was there: the schedule is inconsistent */
    }
    if (st != SQZ_OK && failed_node) {
        *failed_node = ex.failed_node;
    }
    return st;
}

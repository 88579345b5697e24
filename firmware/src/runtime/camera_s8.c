/* Camera frame -> int8 model input, one model row at a time (see sqz/camera.h).
 *
 * Every per-column and per-row quantity (source byte offsets, fractions, padding) is a table the
 * converter computed, so the inner loop over x has no division and no float. The loop body is
 * a static inline function instantiated once per pixel format and resize mode, so the format
 * switch is resolved outside the loop. */
#include <stddef.h>

#include "sqz/camera.h"

/* The row loop is instantiated per (format, resize, channels) from one body; forcing the inline
 * lets the compiler fold those constants, so the inner loop has no format switch and its
 * channel loops unroll (at -Os GCC would otherwise keep calls and switches per pixel). */
#if defined(__GNUC__)
#define SQZ_CAM_INLINE static inline __attribute__((always_inline))
#else
#define SQZ_CAM_INLINE static inline
#endif

/* A value in 1/256 units -> 0..255. The sign is tested before shifting: right-shifting a
 * negative int is implementation-defined in C. */
SQZ_CAM_INLINE int32_t sqz_cam_u8(int32_t t)
{
    return t < 0 ? 0 : (t > 0xffff ? 255 : t >> 8);
}

/* One source pixel at byte `off` of `row` -> c[0..2] RGB, or c[0] gray when gray_out (luma for
 * a colour format; Y itself for YUYV). Matches camera.py's _decode. */
SQZ_CAM_INLINE void sqz_cam_decode(int32_t fmt, int32_t gray_out, const uint8_t *row,
                                  uint32_t off, int32_t c[3])
{
    int32_t r;
    int32_t g;
    int32_t b;
    switch (fmt) {
    case SQZ_CAMERA_GRAY8:
        c[0] = row[off];
        return;
    case SQZ_CAMERA_RGB888:
        r = row[off];
        g = row[off + 1];
        b = row[off + 2];
        break;
    case SQZ_CAMERA_RGB565LE:
    case SQZ_CAMERA_RGB565BE: {
        const uint32_t u = fmt == SQZ_CAMERA_RGB565LE
                               ? (uint32_t)row[off] | ((uint32_t)row[off + 1] << 8)
                               : (uint32_t)row[off + 1] | ((uint32_t)row[off] << 8);
        const int32_t r5 = (int32_t)(u >> 11);
        const int32_t g6 = (int32_t)((u >> 5) & 63u);
        const int32_t b5 = (int32_t)(u & 31u);
        /* Bit replication maps 0..31 / 0..63 onto 0..255 exactly at both ends. */
        r = (r5 << 3) | (r5 >> 2);
        g = (g6 << 2) | (g6 >> 4);
        b = (b5 << 3) | (b5 >> 2);
        break;
    }
    default: { /* YUYV: this pixel's Y, its pair's U and V; limited-range BT.601 */
        const uint32_t pair = off & ~3u;
        const int32_t y = 298 * ((int32_t)row[off] - 16) + 128;
        if (gray_out) {
            c[0] = sqz_cam_u8(y);
            return;
        }
        const int32_t d = (int32_t)row[pair + 1] - 128;
        const int32_t e = (int32_t)row[pair + 3] - 128;
        r = sqz_cam_u8(y + 409 * e);
        g = sqz_cam_u8(y - 100 * d - 208 * e);
        b = sqz_cam_u8(y + 516 * d);
        break;
    }
    }
    if (gray_out) {
        c[0] = (77 * r + 150 * g + 29 * b + 128) >> 8;
        return;
    }
    c[0] = r;
    c[1] = g;
    c[2] = b;
}

/* Normalization and int8 quantization of v (1/65536 pixel levels): unsigned, so every shift
 * is well defined; the high word is taken first because it is free on 32-bit cores. */
SQZ_CAM_INLINE int8_t sqz_cam_quantize(uint32_t v, uint32_t mult, uint64_t bias, int32_t shift,
                                      int32_t offset)
{
    const uint64_t acc = (uint64_t)v * mult + bias;
    const int32_t t = (int32_t)((uint32_t)(acc >> 32) >> shift) - offset;
    return (int8_t)(t < -128 ? -128 : (t > 127 ? 127 : t));
}

SQZ_CAM_INLINE void sqz_cam_row(const sqz_camera_params *p, int32_t fmt, int32_t bilinear,
                                int32_t nc, const uint8_t *top, const uint8_t *bot, int32_t fy,
                                int8_t *out)
{
    const int32_t gray_out = nc == 1;
    const int32_t nsrc = (gray_out || fmt == SQZ_CAMERA_GRAY8) ? 1 : 3;
    const uint32_t *off0 = p->x_off0;
    const uint32_t *off1 = p->x_off1;
    const uint8_t *frac = p->x_frac;
    for (int32_t x = p->x_lo; x < p->x_hi; ++x) {
        int32_t a[3] = {0, 0, 0};
        int32_t v[3] = {0, 0, 0};
        sqz_cam_decode(fmt, gray_out, top, off0[x], a);
        if (bilinear) {
            int32_t b[3] = {0, 0, 0};
            int32_t c[3] = {0, 0, 0};
            int32_t d[3] = {0, 0, 0};
            const int32_t fx = frac[x];
            sqz_cam_decode(fmt, gray_out, top, off1[x], b);
            sqz_cam_decode(fmt, gray_out, bot, off0[x], c);
            sqz_cam_decode(fmt, gray_out, bot, off1[x], d);
            for (int32_t k = 0; k < nsrc; ++k) {
                /* Exact: t, u <= 255 * 256 and v <= 255 * 65536, no rounding anywhere. */
                const int32_t t = a[k] * 256 + (b[k] - a[k]) * fx;
                const int32_t u = c[k] * 256 + (d[k] - c[k]) * fx;
                v[k] = t * 256 + (u - t) * fy;
            }
        } else {
            for (int32_t k = 0; k < nsrc; ++k) {
                v[k] = a[k] * 65536;
            }
        }
        if (nsrc < nc) { /* a gray frame for a colour model */
            v[1] = v[0];
            v[2] = v[0];
        }
        if (p->swap_rb) {
            const int32_t s = v[0];
            v[0] = v[2];
            v[2] = s;
        }
        int8_t *o = out + (size_t)x * (size_t)nc;
        for (int32_t k = 0; k < nc; ++k) {
            o[k] = sqz_cam_quantize((uint32_t)v[k], p->multiplier[k], p->bias[k], p->shift[k],
                                    p->offset[k]);
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

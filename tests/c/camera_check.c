/* Test harness of sqz_camera_row_s8 (tests/test_camera.py): runs every case of the generated
 * camera_cases.c on its frame and writes the model input bytes to stdout.
 *
 *   camera_check FRAMES      FRAMES holds each case's frame, concatenated in case order
 *   camera_check --gradient FORMAT SEED ROW_BYTES HEIGHT   sqz_camera_gradient_byte's frame
 *
 * Each model row gets exactly the frame rows sqz_camera_row_span names, each copied into its
 * own allocation of row_bytes, so AddressSanitizer catches any read outside them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/camera.h"

extern const sqz_camera_params *const camera_cases[];
extern const int camera_case_count;

static int fail(const char *what, int i, int32_t y)
{
    fprintf(stderr, "case %d row %ld: %s\n", i, (long)y, what);
    return 1;
}

static int run_case(int i, const sqz_camera_params *p, const uint8_t *frame)
{
    int8_t *out = malloc((size_t)p->out_w * (size_t)p->out_c);
    int32_t prev_first = -1;
    if (!out) {
        return fail("out of memory", i, 0);
    }
    if (sqz_camera_row_s8(NULL, 0, NULL, out) != SQZ_ERR_ARG ||
        sqz_camera_row_s8(p, -1, NULL, out) != SQZ_ERR_ARG ||
        sqz_camera_row_s8(p, p->out_h, NULL, out) != SQZ_ERR_ARG ||
        sqz_camera_row_s8(p, 0, NULL, NULL) != SQZ_ERR_ARG) {
        free(out);
        return fail("bad arguments not rejected", i, 0);
    }
    for (int32_t y = 0; y < p->out_h; ++y) {
        int32_t first = 7;
        int32_t last = 7;
        const uint8_t *rows[2] = {NULL, NULL};
        uint8_t *copies[2] = {NULL, NULL};
        sqz_camera_row_span(p, y, &first, &last);
        if (last >= first) {
            if (last - first + 1 > p->ring_rows || last - first + 1 > 2 || first < prev_first ||
                first < 0 || last >= p->frame_height) {
                free(out);
                return fail("bad row span", i, y);
            }
            prev_first = first;
            for (int32_t r = first; r <= last; ++r) {
                copies[r - first] = malloc((size_t)p->row_bytes);
                if (!copies[r - first]) {
                    return fail("out of memory", i, y);
                }
                memcpy(copies[r - first], frame + (size_t)r * (size_t)p->row_bytes,
                       (size_t)p->row_bytes);
                rows[r - first] = copies[r - first];
            }
        } else if (first != 0 || last != -1) {
            free(out);
            return fail("a pad row's span is not (0, -1)", i, y);
        }
        const sqz_status st = sqz_camera_row_s8(p, y, last >= first ? rows : NULL, out);
        free(copies[0]);
        free(copies[1]);
        if (st != SQZ_OK) {
            free(out);
            return fail(sqz_status_str(st), i, y);
        }
        fwrite(out, 1, (size_t)p->out_w * (size_t)p->out_c, stdout);
    }
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--gradient") == 0) {
        const int32_t format = (int32_t)atol(argv[2]);
        const uint32_t seed = (uint32_t)strtoul(argv[3], NULL, 10);
        const int32_t row_bytes = (int32_t)atol(argv[4]);
        const int32_t height = (int32_t)atol(argv[5]);
        for (int32_t y = 0; y < height; ++y) {
            for (int32_t x = 0; x < row_bytes; ++x) {
                putchar(sqz_camera_gradient_byte(format, seed, x, y));
            }
        }
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: camera_check FRAMES | --gradient FORMAT SEED ROW_BYTES H\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    for (int i = 0; i < camera_case_count; ++i) {
        const sqz_camera_params *p = camera_cases[i];
        const size_t bytes = (size_t)p->row_bytes * (size_t)p->frame_height;
        uint8_t *frame = malloc(bytes);
        if (!frame || fread(frame, 1, bytes, f) != bytes) {
            free(frame);
            fclose(f);
            return fail("cannot read the frame", i, 0);
        }
        const int rc = run_case(i, p, frame);
        free(frame);
        if (rc) {
            fclose(f);
            return rc;
        }
    }
    fclose(f);
    return 0;
}

/* Exercises the frame API of a library exported for a camera model (sqz-convert --camera ...
 * --export): tests/test_export.py builds it against the library with CMake (warnings as errors,
 * AddressSanitizer and UBSan on the host) and checks what it prints against LiteRT run on the
 * host mirror's input. LIB and LIBU are the library's name in lower and upper case; SEED the
 * synthetic frame's seed.
 *
 * Prints one line per fact:
 *   macros <format> <name> <width> <height> <row bytes> <bytes> <ring rows>
 *   init <name> <status>            edge cases before and at LIB_init
 *   frame <b0> <b1> ...             the synthetic frame (LIB_frame_gradient_byte)
 *   whole <status> <b0> ...         LIB_run_frame on the whole frame: status and output
 *   stream <chunk> <status> <b0> ... the frame through LIB_frame_begin/_write/_end in pieces of
 *                                   <chunk> bytes: the end status and the output
 *   error <case> <status>           the streaming API's misuse cases
 *   failed <name or none>           LIB_failed_step after the runs
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include SQZ_API_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define F(x) CAT(LIB, CAT(_, x))  /* F(init): sqz_cam_init */
#define M(x) CAT(LIBU, CAT(_, x)) /* M(FRAME_BYTES): SQZ_CAM_FRAME_BYTES */

#ifndef SEED
#define SEED 0u
#endif

static uint8_t arena[M(ARENA_BYTES) + 32] __attribute__((aligned(16)));
/* The whole frame, for LIB_run_frame and to cut into pieces (the examples make it row by row). */
static uint8_t frame[M(FRAME_BYTES)];

static void print_output(void)
{
    uint16_t i;
    for (i = 0; i < M(NUM_CLASSES); ++i) {
        printf(" %d", (int)F(output)()[i]);
    }
    printf("\n");
}

/* The frame through the streaming API in pieces of `chunk` bytes; the first failing status of
 * a write, else the end's. */
static sqz_status stream(uint32_t chunk)
{
    uint32_t at;
    sqz_status st = F(frame_begin)();
    for (at = 0; st == SQZ_OK && at < M(FRAME_BYTES); at += chunk) {
        const uint32_t left = M(FRAME_BYTES) - at;
        st = F(frame_write)(frame + at, left < chunk ? left : chunk);
    }
    return st == SQZ_OK ? F(frame_end)() : st;
}

static void print_stream(const char *name, uint32_t chunk)
{
    /* A different arena first, so an unchanged one cannot pass for a result. */
    memset(arena, 0x11, sizeof arena);
    printf("stream %s %d", name, (int)stream(chunk));
    print_output();
}

int main(void)
{
    uint32_t x, y, j;

    printf("macros %d %s %d %d %lu %lu %lu\n", (int)M(FRAME_FORMAT), M(FRAME_FORMAT_NAME),
           (int)M(FRAME_WIDTH), (int)M(FRAME_HEIGHT), (unsigned long)M(FRAME_ROW_BYTES),
           (unsigned long)M(FRAME_BYTES), (unsigned long)M(FRAME_RING_ROWS));
    for (y = 0; y < (uint32_t)M(FRAME_HEIGHT); ++y) {
        for (x = 0; x < M(FRAME_ROW_BYTES); ++x) {
            frame[y * M(FRAME_ROW_BYTES) + x] = F(frame_gradient_byte)(SEED, x, y);
        }
    }
    printf("init run_before %d\n", (int)F(run_frame)(frame));
    printf("init begin_before %d\n", (int)F(frame_begin)());
    printf("init write_before %d\n", (int)F(frame_write)(frame, 1));
    printf("init ok %d\n", (int)F(init)(arena, sizeof arena));
    printf("frame");
    for (j = 0; j < M(FRAME_BYTES); ++j) {
        printf(" %u", (unsigned)frame[j]);
    }
    printf("\n");

    memset(arena, 0x11, sizeof arena);
    printf("whole %d", (int)F(run_frame)(frame));
    print_output();
    printf("failed %s\n", F(failed_step)() ? F(failed_step)() : "none");

    print_stream("1", 1);
    print_stream("7", 7);
    print_stream("row", M(FRAME_ROW_BYTES));
    print_stream("row+1", M(FRAME_ROW_BYTES) + 1u);
    print_stream("frame", M(FRAME_BYTES));

    /* Misuse: each case names the status it gets. */
    printf("error write_before_begin %d\n", (int)F(frame_write)(frame, 1));
    printf("error end_before_begin %d\n", (int)F(frame_end)());
    memset(arena, 0x11, sizeof arena);
    printf("error begin %d\n", (int)F(frame_begin)());
    printf("error write_null %d\n", (int)F(frame_write)(NULL, 1));
    printf("error write_nothing %d\n", (int)F(frame_write)(NULL, 0));
    printf("error too_many_at_once %d\n", (int)F(frame_write)(frame, M(FRAME_BYTES) + 1u));
    printf("error half %d\n", (int)F(frame_write)(frame, M(FRAME_BYTES) / 2u));
    printf("error end_too_early %d\n", (int)F(frame_end)());
    /* The stream stays open: the rest, but one byte too many, is refused and nothing taken. */
    j = M(FRAME_BYTES) - M(FRAME_BYTES) / 2u;
    printf("error too_many %d\n", (int)F(frame_write)(frame + M(FRAME_BYTES) / 2u, j + 1u));
    printf("error rest %d\n", (int)F(frame_write)(frame + M(FRAME_BYTES) / 2u, j));
    printf("error past_the_end %d\n", (int)F(frame_write)(frame, 1));
    printf("error end %d\n", (int)F(frame_end)());
    printf("error end_again %d\n", (int)F(frame_end)());
    printf("error write_after_end %d\n", (int)F(frame_write)(frame, 1));
    printf("stream resumed %d", 0);
    print_output();
    /* A frame under way is abandoned by the next begin, and by a whole-frame run. */
    memset(arena, 0x11, sizeof arena);
    F(frame_begin)();
    F(frame_write)(frame + 5, M(FRAME_ROW_BYTES) + 3u);
    print_stream("restarted", M(FRAME_ROW_BYTES) * 2u + 1u);
    F(frame_begin)();
    F(frame_write)(frame, M(FRAME_BYTES) / 3u);
    memset(arena, 0x11, sizeof arena);
    printf("whole %d", (int)F(run_frame)(frame));
    print_output();
    printf("error write_after_run_frame %d\n", (int)F(frame_write)(frame, 1));
    printf("error run_frame_null %d\n", (int)F(run_frame)(NULL));
    printf("failed %s\n", F(failed_step)() ? F(failed_step)() : "none");
    return 0;
}

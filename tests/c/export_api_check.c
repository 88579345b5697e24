/* Exercises the C API of an exported library (tests/test_export.py builds it against the
 * library with CMake and checks what it prints against the host's arithmetic). LIB and LIBU are
 * the library's name in lower and upper case (-DLIB=sqz_shapes -DLIBU=SQZ_SHAPES): every name
 * of the API carries it. It compiles for a model whose input is a ring (LIBU_INPUT_RING 1: no
 * LIB_input(), no LIB_run()) and for one stored whole.
 *
 * Prints one line per fact:
 *   init <name> <status>            LIB_init edge cases
 *   layout <in> <in bytes> <out> <out bytes>   where input and output sit in the arena
 *                                   (a model stored whole)
 *   input <b0> <b1> ...             the sample's int8 input
 *   failed <status or name>         after a good run
 *   output <b0> <b1> ...            the output for the sample (LIB_run_input)
 *   stream <chunk> <status> <b0> <b1> ...   the sample through LIB_input_begin/_write/_end in
 *                                   pieces of <chunk> bytes: the end status and the output
 *   whole <status> <b0> <b1> ...    the sample written to LIB_input(), LIB_run() (stored whole)
 *   error <case> <status>           the streaming API's misuse cases
 *   stable <0|1>                    the output is unchanged after writing another input
 *                                   (stored whole)
 *   topk <class>:<score> ...        LIB_top_k over all classes
 *   dequant <code> <q16>            every int8 output code
 *   quant <q16> <code>              a sweep of Q16.16 input values
 *   names <n> <last-or-NULL>        LIB_class_name at and past the end
 *   float <q16 of top> <float of top * 65536, rounded>   the optional float helpers
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include SQZ_API_HEADER
#include SQZ_SAMPLE_HEADER
#include SQZ_FLOAT_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define F(x) CAT(LIB, CAT(_, x))  /* F(init): sqz_shapes_init */
#define M(x) CAT(LIBU, CAT(_, x)) /* M(ARENA_BYTES): SQZ_SHAPES_ARENA_BYTES */

static uint8_t arena[M(ARENA_BYTES) + 32] __attribute__((aligned(16)));
static int8_t sample[M(INPUT_BYTES)];

static void print_output(void)
{
    uint16_t i;
    for (i = 0; i < M(NUM_CLASSES); ++i) {
        printf(" %d", (int)F(output)()[i]);
    }
    printf("\n");
}

/* The sample through the streaming API in pieces of `chunk` bytes; the first failing status
 * of a write, else the end's. */
static sqz_status stream(uint32_t chunk)
{
    uint32_t at;
    sqz_status st = F(input_begin)();
    for (at = 0; st == SQZ_OK && at < M(INPUT_BYTES); at += chunk) {
        const uint32_t left = M(INPUT_BYTES) - at;
        st = F(input_write)(sample + at, left < chunk ? left : chunk);
    }
    return st == SQZ_OK ? F(input_end)() : st;
}

static void print_stream(uint32_t chunk)
{
    /* A different output first, so an unchanged arena cannot pass for a result. */
    memset(arena, 0x11, sizeof arena);
    printf("stream %lu %d", (unsigned long)chunk, (int)stream(chunk));
    print_output();
}

int main(void)
{
    uint16_t classes[M(NUM_CLASSES)];
    int8_t scores[M(NUM_CLASSES)];
    uint16_t n, i;
    uint32_t j;
    int32_t v;
    int code;

    printf("init run_before %d\n", (int)F(run_input)(sample));
    printf("init begin_before %d\n", (int)F(input_begin)());
    printf("init misaligned %d\n", (int)F(init)(arena + 1, M(ARENA_BYTES)));
    printf("init small %d\n", (int)F(init)(arena, M(ARENA_BYTES) - 1));
    printf("init ok %d\n", (int)F(init)(arena, sizeof arena));
    printf("init arena %d\n", (int)(F(arena)() == arena));
#if !M(INPUT_RING)
    printf("layout %ld %u %ld %u\n", (long)((uint8_t *)F(input)() - arena),
           (unsigned)M(INPUT_BYTES), (long)((const uint8_t *)F(output)() - arena),
           (unsigned)M(NUM_CLASSES));
#endif
#if CAT(LIBU, _HAS_PIXEL_QUANTIZE)
    /* Row by row, as the examples do: the same as the whole image at once. */
    for (j = 0; j < (uint32_t)M(INPUT_HEIGHT); ++j) {
        F(quantize_pixels)(F(sample_pixels) + j * M(INPUT_ROW_BYTES),
                           sample + j * M(INPUT_ROW_BYTES), M(INPUT_WIDTH));
    }
#else
    memcpy(sample, F(sample_input), M(INPUT_BYTES));
#endif
    printf("input");
    for (j = 0; j < M(INPUT_BYTES); ++j) {
        printf(" %d", (int)sample[j]);
    }
    printf("\n");
    printf("init run %d\n", (int)F(run_input)(sample));
    printf("failed %s\n", F(failed_step)() ? F(failed_step)() : "none");
    printf("output");
    print_output();

    print_stream(1);
    print_stream(7);
    print_stream(M(INPUT_ROW_BYTES));
    print_stream(M(INPUT_BYTES));
#if !M(INPUT_RING)
    memset(arena, 0x11, sizeof arena);
    memcpy(F(input)(), sample, M(INPUT_BYTES));
    printf("whole %d", (int)F(run)());
    print_output();
#endif

    /* Misuse: each case names the status it gets. */
    printf("error write_before_begin %d\n", (int)F(input_write)(sample, 1));
    printf("error end_before_begin %d\n", (int)F(input_end)());
    memset(arena, 0x11, sizeof arena);
    printf("error begin %d\n", (int)F(input_begin)());
    printf("error write_null %d\n", (int)F(input_write)(NULL, 1));
    printf("error write_nothing %d\n", (int)F(input_write)(NULL, 0));
    printf("error too_many_at_once %d\n", (int)F(input_write)(sample, M(INPUT_BYTES) + 1u));
    printf("error half %d\n", (int)F(input_write)(sample, M(INPUT_BYTES) / 2u));
    printf("error end_too_early %d\n", (int)F(input_end)());
    /* The stream stays open: the rest, but one byte too many, is refused and nothing taken. */
    j = M(INPUT_BYTES) - M(INPUT_BYTES) / 2u;
    printf("error too_many %d\n", (int)F(input_write)(sample + M(INPUT_BYTES) / 2u, j + 1u));
    printf("error rest %d\n", (int)F(input_write)(sample + M(INPUT_BYTES) / 2u, j));
    printf("error past_the_end %d\n", (int)F(input_write)(sample, 1));
    printf("error end %d\n", (int)F(input_end)());
    printf("error end_again %d\n", (int)F(input_end)());
    printf("error write_after_end %d\n", (int)F(input_write)(sample, 1));
    printf("stream resumed %d", 0);
    print_output();
    /* A begin under way is abandoned by the next begin. */
    memset(arena, 0x11, sizeof arena);
    F(input_begin)();
    F(input_write)(sample + 5, M(INPUT_ROW_BYTES) + 3u);
    printf("stream restarted %d", (int)stream(M(INPUT_ROW_BYTES) + 1u));
    print_output();
    printf("error run_input_null %d\n", (int)F(run_input)(NULL));
    printf("failed %s\n", F(failed_step)() ? F(failed_step)() : "none");

#if !M(INPUT_RING)
    {
        /* The header promises the output stays valid until the next run: writing the next
         * input (here a different one, every byte of it) must leave it as it is. */
        int8_t before[M(NUM_CLASSES)];
        F(run_input)(sample);
        memcpy(before, F(output)(), sizeof before);
        memset(F(input)(), 0x5A, M(INPUT_BYTES));
        printf("stable %d\n", memcmp(before, F(output)(), sizeof before) == 0);
        F(input_begin)();
        F(input_write)(sample, M(INPUT_BYTES));
        printf("stable_stream %d\n", memcmp(before, F(output)(), sizeof before) == 0);
    }
#endif
    F(run_input)(sample);

    n = F(top_k)((uint16_t)(M(NUM_CLASSES) + 3), classes, scores);
    printf("topk");
    for (i = 0; i < n; ++i) {
        printf(" %u:%d", (unsigned)classes[i], (int)scores[i]);
    }
    printf("\n");

    for (code = -128; code <= 127; ++code) {
        printf("dequant %d %ld\n", code, (long)F(dequantize_q16)((int8_t)code));
    }
    for (v = -(1L << 22); v <= (1L << 22); v += 4099) {
        printf("quant %ld %d\n", (long)v, (int)F(quantize_q16)(v));
    }
    printf("quant %ld %d\n", (long)INT32_MAX, (int)F(quantize_q16)(INT32_MAX));
    printf("quant %ld %d\n", (long)INT32_MIN, (int)F(quantize_q16)(INT32_MIN));
    printf("names %s %s\n", F(class_name)((uint16_t)(M(NUM_CLASSES) - 1)),
           F(class_name)((uint16_t)M(NUM_CLASSES)) ? "set" : "NULL");
    printf("float %ld %ld %d\n", (long)F(dequantize_q16)(scores[0]),
           (long)lroundf(F(dequantize_float)(scores[0]) * 65536.0f),
           (int)F(quantize_float)(0.5f));
    return 0;
}

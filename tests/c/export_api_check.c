/* Exercises the C API of an exported library (tests/test_export.py builds it against the
 * library with CMake and checks what it prints against the host's arithmetic). LIB and LIBU are
 * the library's name in lower and upper case (-DLIB=sqz_shapes -DLIBU=SQZ_SHAPES): every name
 * of the API carries it.
 *
 * Prints one line per fact:
 *   init <name> <status>            LIB_init edge cases
 *   layout <in> <in bytes> <out> <out bytes>   where input and output sit in the arena
 *   input <b0> <b1> ...             the sample's int8 input
 *   failed <status or name>         before init, and after a good run
 *   output <b0> <b1> ...            the output for the sample
 *   stable <0|1>                    the output is unchanged after writing another input
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

int main(void)
{
    uint16_t classes[M(NUM_CLASSES)];
    int8_t scores[M(NUM_CLASSES)];
    int8_t before[M(NUM_CLASSES)];
    uint16_t n, i;
    uint32_t j;
    int32_t v;
    int code;

    printf("init run_before %d\n", (int)F(run)());
    printf("init misaligned %d\n", (int)F(init)(arena + 1, M(ARENA_BYTES)));
    printf("init small %d\n", (int)F(init)(arena, M(ARENA_BYTES) - 1));
    printf("init ok %d\n", (int)F(init)(arena, sizeof arena));
    printf("init arena %d\n", (int)(F(arena)() == arena));
    printf("layout %ld %u %ld %u\n", (long)((uint8_t *)F(input)() - arena),
           (unsigned)M(INPUT_BYTES), (long)((const uint8_t *)F(output)() - arena),
           (unsigned)M(NUM_CLASSES));
#if CAT(LIBU, _HAS_PIXEL_QUANTIZE)
    F(quantize_pixels)(F(sample_pixels), F(input)(), M(INPUT_PIXELS));
#else
    memcpy(F(input)(), F(sample_input), M(INPUT_BYTES));
#endif
    printf("input");
    for (j = 0; j < M(INPUT_BYTES); ++j) {
        printf(" %d", (int)F(input)()[j]);
    }
    printf("\n");
    printf("init run %d\n", (int)F(run)());
    printf("failed %s\n", F(failed_step)() ? F(failed_step)() : "none");

    printf("output");
    for (i = 0; i < M(NUM_CLASSES); ++i) {
        printf(" %d", (int)F(output)()[i]);
    }
    printf("\n");
    /* The header promises the output stays valid until the next run: writing the next input
     * (here a different one, every byte of it) must leave it as it is. */
    memcpy(before, F(output)(), sizeof before);
    memset(F(input)(), 0x5A, M(INPUT_BYTES));
    printf("stable %d\n", memcmp(before, F(output)(), sizeof before) == 0);
    memcpy((int8_t *)F(output)(), before, sizeof before); /* restored for the checks below */

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

/* Exercises the C API of an exported library (tests/test_export.py builds it against the
 * library with CMake and checks what it prints against the host's arithmetic).
 *
 * Prints one line per fact:
 *   init <name> <status>            sqz_model_init edge cases
 *   failed <status or name>         before init, and after a good run
 *   output <b0> <b1> ...            the output for the sample
 *   topk <class>:<score> ...        sqz_model_top_k over all classes
 *   dequant <code> <q16>            every int8 output code
 *   quant <q16> <code>              a sweep of Q16.16 input values
 *   names <n> <last-or-NULL>        sqz_model_class_name at and past the end
 *   float <q16 of top> <float of top * 65536, rounded>   the optional float helpers
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include SQZ_API_HEADER
#include SQZ_SAMPLE_HEADER
#include SQZ_FLOAT_HEADER

static uint8_t arena[SQZ_ARENA_BYTES + 32] __attribute__((aligned(16)));

int main(void)
{
    uint16_t classes[SQZ_NUM_CLASSES];
    int8_t scores[SQZ_NUM_CLASSES];
    uint16_t n, i;
    int32_t v;
    int code;

    printf("init run_before %d\n", (int)sqz_model_run());
    printf("init misaligned %d\n", (int)sqz_model_init(arena + 1, SQZ_ARENA_BYTES));
    printf("init small %d\n", (int)sqz_model_init(arena, SQZ_ARENA_BYTES - 1));
    printf("init ok %d\n", (int)sqz_model_init(arena, sizeof arena));
    printf("init input_offset %d\n",
           (int)((uint8_t *)sqz_model_input() - arena) == (int)sqz_model_input_info()->offset);
#if SQZ_HAS_PIXEL_QUANTIZE
    sqz_model_quantize_pixels(sqz_sample_pixels, sqz_model_input(), SQZ_INPUT_PIXELS);
#else
    memcpy(sqz_model_input(), sqz_sample_input, SQZ_INPUT_BYTES);
#endif
    printf("init run %d\n", (int)sqz_model_run());
    printf("failed %s\n", sqz_model_failed_step() ? sqz_model_failed_step() : "none");

    printf("output");
    for (i = 0; i < SQZ_NUM_CLASSES; ++i) {
        printf(" %d", (int)sqz_model_output()[i]);
    }
    printf("\n");

    n = sqz_model_top_k((uint16_t)(SQZ_NUM_CLASSES + 3), classes, scores);
    printf("topk");
    for (i = 0; i < n; ++i) {
        printf(" %u:%d", (unsigned)classes[i], (int)scores[i]);
    }
    printf("\n");

    for (code = -128; code <= 127; ++code) {
        printf("dequant %d %ld\n", code, (long)sqz_model_dequantize_q16((int8_t)code));
    }
    for (v = -(1L << 22); v <= (1L << 22); v += 4099) {
        printf("quant %ld %d\n", (long)v, (int)sqz_model_quantize_q16(v));
    }
    printf("quant %ld %d\n", (long)INT32_MAX, (int)sqz_model_quantize_q16(INT32_MAX));
    printf("quant %ld %d\n", (long)INT32_MIN, (int)sqz_model_quantize_q16(INT32_MIN));
    printf("names %s %s\n", sqz_model_class_name((uint16_t)(SQZ_NUM_CLASSES - 1)),
           sqz_model_class_name((uint16_t)SQZ_NUM_CLASSES) ? "set" : "NULL");
    printf("float %ld %ld %d\n", (long)sqz_model_dequantize_q16(scores[0]),
           (long)lroundf(sqz_model_dequantize_float(scores[0]) * 65536.0f),
           (int)sqz_model_quantize_float(0.5f));
    return 0;
}

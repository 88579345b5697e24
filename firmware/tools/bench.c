/* Instruction counting for sqz-bench: one inference under valgrind's callgrind, with a dump
 * after every kernel call, so sqz-bench can add up each layer's calls.
 *
 * Run as: valgrind --tool=callgrind --collect-atstart=no bench < input.bin
 * Collection is switched on just around sqz_run_input(), so reading the input and process start-up
 * are not counted. Host-only tool: it needs valgrind's callgrind.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <valgrind/callgrind.h>

#include "model.h"
#include "run_input.h"
#include "sqz/runtime.h"

static uint8_t arena[SQZ_MODEL_ARENA_BYTES + 16] __attribute__((aligned(16)));
static uint8_t input[INPUT_BYTES];

static void after_step(void *user, uint16_t step)
{
    (void)user;
    (void)step;
    CALLGRIND_DUMP_STATS;
}

int main(void)
{
    const sqz_model *m = &sqz_model_def;
    if (fread(input, 1, INPUT_BYTES, stdin) != INPUT_BYTES) {
        fprintf(stderr, "bench: short input\n");
        return 2;
    }
    uint16_t failed = 0;
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    const sqz_status st = RUN_INPUT(m, arena, input, after_step, NULL, &failed);
    CALLGRIND_TOGGLE_COLLECT;
    if (st != SQZ_OK) {
        fprintf(stderr, "bench: step %u failed: %s\n", (unsigned)failed, sqz_status_str(st));
        return 2;
    }
    fwrite(arena + m->output.offset, 1, m->output.bytes, stdout);
    return 0;
}

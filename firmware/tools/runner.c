/* Batch runner for tests and benchmarks on the host: no serial link, no port.
 *
 * stdin:  the raw int8 inputs, one after the other (model input bytes each), or for a camera
 *         model the raw camera frames
 * stdout: for each input, the output bytes, then the logits bytes when run with --logits
 * Exit status: 0, or 2 with a message on stderr naming the failing step.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "run_input.h"
#include "sqz/runtime.h"

static uint8_t arena[SQZ_MODEL_ARENA_BYTES + 16] __attribute__((aligned(16)));
static uint8_t input[INPUT_BYTES];

int main(int argc, char **argv)
{
    int want_logits = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--logits") == 0) {
            want_logits = 1;
        }
    }
    const sqz_model *m = &sqz_model_def;
    uint8_t *in = input;
    for (;;) {
        const size_t got = fread(in, 1, INPUT_BYTES, stdin);
        if (got == 0) {
            break;
        }
        if (got != INPUT_BYTES) {
            fprintf(stderr, "runner: short input (%zu of %u bytes)\n", got,
                    (unsigned)INPUT_BYTES);
            return 2;
        }
        uint16_t failed = 0;
        const sqz_status st = RUN_INPUT(m, arena, in, NULL, NULL, &failed);
        if (st != SQZ_OK) {
            fprintf(stderr, "runner: step %u (%s) failed: %s\n", (unsigned)failed,
                    m->node_names[failed], sqz_status_str(st));
            return 2;
        }
        fwrite(arena + m->output.offset, 1, m->output.bytes, stdout);
        if (want_logits && m->logits.bytes) {
            fwrite(arena + m->logits.offset, 1, m->logits.bytes, stdout);
        }
    }
    return 0;
}

/* What the host tools (runner.c, bench.c) read per inference and how they run it: the whole
 * input, outside the arena (the model may keep only a ring of its rows), or for a camera model
 * a camera frame, converted on the way in. */
#ifndef SQZ_TOOLS_RUN_INPUT_H
#define SQZ_TOOLS_RUN_INPUT_H

#include "model.h"
#include "sqz/runtime.h"

#if SQZ_MODEL_FRAME_FORMAT
#include "sqz/camera.h"
#define INPUT_BYTES SQZ_MODEL_FRAME_BYTES
#define RUN_INPUT sqz_run_frame
#else
#define INPUT_BYTES SQZ_MODEL_INPUT_BYTES
#define RUN_INPUT sqz_run_input
#endif

#endif

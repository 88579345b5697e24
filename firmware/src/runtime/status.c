#include "sqz/status.h"

static const char *const status_names[SQZ_STATUS_COUNT] = {
    "ok",
    "bad argument",
    "shape mismatch",
    "scratch buffer too small",
    "unsupported parameters",
    "unknown op in schedule",
    "waiting for input rows",
};

const char *sqz_status_str(sqz_status status)
{
    if ((unsigned)status >= (unsigned)SQZ_STATUS_COUNT) {
        return "unknown status";
    }
    return status_names[status];
}

/* Status codes shared by every kernel, the executor and the application. */
#ifndef SQZ_STATUS_H
#define SQZ_STATUS_H

/* The numeric values are part of the serial protocol (error frames carry them), so entries are
 * only ever appended. */
typedef enum {
    SQZ_OK = 0,
    SQZ_ERR_ARG = 1,          /* a NULL pointer or an impossible dimension */
    SQZ_ERR_SHAPE = 2,        /* dimensions of the operands do not agree */
    SQZ_ERR_SCRATCH = 3,      /* scratch buffer smaller than the kernel needs */
    SQZ_ERR_UNSUPPORTED = 4,  /* a parameter combination this runtime does not implement */
    SQZ_ERR_OP = 5,           /* unknown op code in the schedule */
    SQZ_WAIT_INPUT = 6,       /* not an error: the executor waits for more input rows */
    SQZ_STATUS_COUNT
} sqz_status;

/* Human-readable name of a status; never returns NULL. */
const char *sqz_status_str(sqz_status status);

#endif

/* Where a pooling window lies in the input along one axis, clipped as the reference clips it:
 * positions in the padding are skipped, not counted. Shared by the pooling kernels and the
 * fused conv + max-pool kernel so all three cut windows alike. Internal. */
#ifndef SQZ_POOL_WINDOW_H
#define SQZ_POOL_WINDOW_H

#include <stdint.h>

typedef struct {
    int32_t origin; /* input coordinate of the window's first tap, may be negative */
    int32_t start;  /* first tap inside the input */
    int32_t end;    /* one past the last tap inside the input */
} sqz_span;

static inline sqz_span sqz_pool_span(int32_t out, int32_t stride, int32_t pad, int32_t filter,
                                     int32_t in_size)
{
    sqz_span s;
    s.origin = out * stride - pad;
    s.start = s.origin < 0 ? -s.origin : 0;
    s.end = filter < in_size - s.origin ? filter : in_size - s.origin;
    return s;
}

#endif

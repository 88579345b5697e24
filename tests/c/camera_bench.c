/* Bare-metal Cortex-M4 benchmark of sqz_camera_row_s8 (tests/test_camera.py): every model row of
 * one frame, in camera_bench_rows, whose instructions the test counts in a QEMU trace. Linked
 * with the mps2-an386 linker script; the reset handler runs the rows and requests a reset, which
 * ends QEMU (run with -no-reboot). */
#include <stdint.h>

#include "sqz/camera.h"

extern const sqz_camera_params *const camera_cases[];
extern const uint8_t camera_frame[];
extern uint32_t __stack_top[];

void sqz_reset_handler(void);
void camera_bench_rows(void);

static int8_t row[4096];
volatile int32_t camera_sink;

__attribute__((noinline)) void camera_bench_rows(void)
{
    const sqz_camera_params *p = camera_cases[0];
    for (int32_t y = 0; y < p->out_h; ++y) {
        int32_t first;
        int32_t last;
        sqz_camera_row_span(p, y, &first, &last);
        const uint8_t *rows[2] = {camera_frame + first * p->row_bytes,
                                  camera_frame + last * p->row_bytes};
        camera_sink += (int32_t)sqz_camera_row_s8(p, y, rows, row);
    }
}

static void stop(void)
{
    *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u; /* SYSRESETREQ: QEMU -no-reboot exits */
    for (;;) {
    }
}

#define VEC(f) ((uintptr_t)(f))
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[4] = {
    VEC(__stack_top), VEC(sqz_reset_handler), VEC(stop), VEC(stop)};

void sqz_reset_handler(void)
{
    camera_bench_rows();
    stop();
}

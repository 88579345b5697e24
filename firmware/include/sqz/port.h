/* The one port header: everything board-specific sits behind these functions.
 *
 * A port is a single source file under firmware/ports/<name>/ that implements them and owns the
 * program entry point (main(), or setup()/loop() under Arduino), from which it calls
 * sqz_app_init() once and sqz_app_poll() forever. Constants that differ per board (name,
 * clock, frame size, where the arena lives) come from the generated sqz_target.h, rendered from
 * targets/<board>.toml by sqz-convert, which the port and the application include themselves;
 * they never test #ifdefs for boards. (This header names no generated file, so that it can
 * sit in an exported runtime shared by several models.)
 */
#ifndef SQZ_PORT_H
#define SQZ_PORT_H

#include <stdint.h>

/* Bring up the serial link and the cycle counter. */
void sqz_port_init(void);

/* Non-blocking read: copies at most `max` received bytes into `buf` and returns how many. */
int32_t sqz_port_read(uint8_t *buf, int32_t max);

/* Blocking write of all `n` bytes. */
void sqz_port_write(const uint8_t *buf, int32_t n);

/* Monotonic counter read at the start and end of inferences and layers. Its unit is
 * SQZ_COUNTER_UNIT at SQZ_COUNTER_HZ ticks per second (cycles on a real board, instructions
 * under QEMU -icount, nanoseconds on the host). */
uint64_t sqz_port_counter(void);

/* The model's arena, `bytes` long and 16-byte aligned, valid for the program's lifetime; NULL
 * when the board cannot provide it. Called once at init. */
uint8_t *sqz_port_arena(uint32_t bytes);

/* Application entry points, implemented in firmware/src/app/. */
void sqz_app_init(void);
void sqz_app_poll(void);

#endif

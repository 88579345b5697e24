// Port for STM32 boards under the STM32duino Arduino core (Cortex-M3/M4/M7): the protocol on
// `Serial` (the ST-LINK virtual COM port on Nucleo boards), the DWT cycle counter, and a
// static arena in internal SRAM.
#include <Arduino.h>

extern "C" {
#include "model.h"
#include "sqz/port.h"
#include "sqz_target.h"
}

static uint8_t arena[SQZ_MODEL_ARENA_BYTES] __attribute__((aligned(16)));
static uint32_t last_cyccnt;
static uint64_t high_bits;

extern "C" void sqz_port_init(void)
{
    Serial.begin(921600);
    // The cycle counter is off after reset; the Cortex-M7 also wants its lock released.
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
    DWT->LAR = 0xC5ACCE55u;
    DWT->CYCCNT = 0;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
    last_cyccnt = 0;
}

extern "C" int32_t sqz_port_read(uint8_t *buf, int32_t max)
{
    int32_t n = 0;
    while (n < max && Serial.available() > 0) {
        buf[n++] = (uint8_t)Serial.read();
    }
    return n;
}

extern "C" void sqz_port_write(const uint8_t *buf, int32_t n)
{
    Serial.write(buf, (size_t)n);
    Serial.flush();
}

extern "C" uint64_t sqz_port_counter(void)
{
    const uint32_t now = DWT->CYCCNT;
    if (now < last_cyccnt) {
        high_bits += (uint64_t)1 << 32;
    }
    last_cyccnt = now;
    return high_bits | now;
}

extern "C" uint8_t *sqz_port_arena(uint32_t bytes)
{
    return bytes <= sizeof(arena) ? arena : NULL;
}

void setup()
{
    sqz_port_init();
    sqz_app_init();
}

void loop()
{
    sqz_app_poll();
}

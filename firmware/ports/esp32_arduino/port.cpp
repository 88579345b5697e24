// Port for Espressif ESP32 and ESP32-S3 under the Arduino core: the protocol on `Serial`
// (native USB CDC on the S3, UART0 on the ESP32), the Xtensa cycle counter, and the arena in
// internal SRAM or, when the converter placed it there, in PSRAM.
#include <Arduino.h>
#include <esp_heap_caps.h>

extern "C" {
#include "model.h"
#include "sqz/port.h"
#include "sqz_target.h"
}

// A static arena lands in internal SRAM; a PSRAM arena is allocated once at boot instead,
// because the Arduino core does not map .bss into PSRAM. The array shrinks to 16 bytes then.
static uint8_t internal_arena[SQZ_ARENA_IN_PSRAM ? 16 : SQZ_MODEL_ARENA_BYTES]
    __attribute__((aligned(16)));

static uint32_t last_ccount;
static uint64_t high_bits;

extern "C" void sqz_port_init(void)
{
    Serial.setRxBufferSize(SQZ_MAX_FRAME_PAYLOAD * 2 + 64);
    Serial.begin(921600);
    last_ccount = ESP.getCycleCount();
}

extern "C" int32_t sqz_port_read(uint8_t *buf, int32_t max)
{
    int avail = Serial.available();
    if (avail <= 0) {
        return 0;
    }
    if (avail > max) {
        avail = max;
    }
    return (int32_t)Serial.readBytes(buf, (size_t)avail);
}

extern "C" void sqz_port_write(const uint8_t *buf, int32_t n)
{
    while (n > 0) {
        const size_t sent = Serial.write(buf, (size_t)n);
        buf += sent;
        n -= (int32_t)sent;
    }
    Serial.flush();
}

// CCOUNT is 32 bits (18 s at 240 MHz); widen it, assuming reads at least once per wrap,
// which every inference does at its start and end.
extern "C" uint64_t sqz_port_counter(void)
{
    const uint32_t now = ESP.getCycleCount();
    if (now < last_ccount) {
        high_bits += (uint64_t)1 << 32;
    }
    last_ccount = now;
    return high_bits | now;
}

extern "C" uint8_t *sqz_port_arena(uint32_t bytes)
{
    if (!SQZ_ARENA_IN_PSRAM) {
        return bytes <= sizeof(internal_arena) ? internal_arena : NULL;
    }
    return (uint8_t *)heap_caps_aligned_alloc(16, bytes, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
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

/* A minimal stand-in for the Arduino core, only so the Arduino ports can be syntax-checked
 * on a machine without the ESP32/STM32 cores. It declares what the ports use; it implements
 * nothing and is never linked. */
#ifndef SQZ_STUB_ARDUINO_H
#define SQZ_STUB_ARDUINO_H

#include <stddef.h>
#include <stdint.h>

class StubSerial {
public:
    void begin(unsigned long baud);
    size_t setRxBufferSize(size_t size);
    int available();
    int read();
    size_t readBytes(uint8_t *buf, size_t n);
    size_t write(const uint8_t *buf, size_t n);
    void flush();
    size_t println(const char *line);
};
extern StubSerial Serial;

unsigned long micros();
void delay(unsigned long ms);

class StubEsp {
public:
    uint32_t getCycleCount();
};
extern StubEsp ESP;

/* The STM32 port reads the Cortex-M debug block through CMSIS names. */
struct StubCoreDebug {
    volatile uint32_t DEMCR;
};
struct StubDwt {
    volatile uint32_t CTRL, CYCCNT, LAR;
};
extern StubCoreDebug *CoreDebug;
extern StubDwt *DWT;
#define CoreDebug_DEMCR_TRCENA_Msk (1u << 24)
#define DWT_CTRL_CYCCNTENA_Msk 1u

#endif

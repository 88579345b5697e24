/* Stand-in for ESP-IDF's esp_timer.h, only so the exported ESP-IDF example can be compiled on
 * a machine without ESP-IDF: declarations only, never linked. */
#ifndef SQZ_STUB_ESP_TIMER_H
#define SQZ_STUB_ESP_TIMER_H
#include <stdint.h>
int64_t esp_timer_get_time(void);
#endif

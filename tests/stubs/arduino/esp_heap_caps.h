/* Stand-in for ESP-IDF's heap_caps.h (see Arduino.h here): declarations only. */
#ifndef SQZ_STUB_ESP_HEAP_CAPS_H
#define SQZ_STUB_ESP_HEAP_CAPS_H
#include <stddef.h>
#define MALLOC_CAP_SPIRAM (1u << 10)
#define MALLOC_CAP_8BIT (1u << 2)
void *heap_caps_aligned_alloc(size_t alignment, size_t size, unsigned caps);
#endif

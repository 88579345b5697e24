/* The few Armv7E-M DSP instructions the armv7em kernels use, as ACLE intrinsics from
 * <arm_acle.h> where the compiler targets a core with the DSP extension, else as portable C that
 * computes exactly the same bits. The same kernel sources therefore compile and run on the host
 * (tests, sanitizers) and on a Cortex-M4/M7/M33, and a host run proves the kernels' logic: lane
 * orders, weight layouts, padding, requantization. Internal to the armv7em kernels.
 *
 * Lanes are those of a little-endian 32-bit load, the only byte order these kernels support. */
#ifndef SQZ_ARMV7EM_DSP_H
#define SQZ_ARMV7EM_DSP_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the armv7em kernels assume little-endian lanes"
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define SQZ_DSP_NATIVE 1
#include <arm_acle.h>

/* Bytes 0 and 2 of x, sign-extended into the two halfwords. */
static inline uint32_t sqz_sxtb16(uint32_t x)
{
    return (uint32_t)__sxtb16((int32_t)x);
}

/* Bytes 1 and 3. ACLE has no rotate operand and gcc 12 does not fold a separate ROR into
 * SXTB16, so this one instruction is written out. */
static inline uint32_t sqz_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* acc + lo(a) * lo(b) + hi(a) * hi(b), halfwords signed, wrapping like the instruction. */
static inline int32_t sqz_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int32_t)a, (int32_t)b, acc);
}

/* Per-halfword signed add, wrapping. */
static inline uint32_t sqz_sadd16(uint32_t a, uint32_t b)
{
    return (uint32_t)__sadd16((int32_t)a, (int32_t)b);
}

/* acc + lo(a) * lo(b), and acc + hi(a) * hi(b): one lane of a channel pair each. */
static inline int32_t sqz_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabb((int32_t)a, (int32_t)b, acc);
}

static inline int32_t sqz_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlatt((int32_t)a, (int32_t)b, acc);
}

/* (a * b + 2^31) >> 32, the rounded high word of the signed product (ACLE has no intrinsic). */
static inline int32_t sqz_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* Signed saturation to 8 bits. */
#define sqz_ssat8(x) __ssat((x), 8)

/* Per-byte signed maximum: SSUB8 sets a GE flag per byte where a >= b, SEL picks by them. */
static inline uint32_t sqz_max_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8((int32_t)a, (int32_t)b);
    return __sel(a, b);
}

/* Per-byte signed minimum. */
static inline uint32_t sqz_min_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8((int32_t)a, (int32_t)b);
    return __sel(b, a);
}

#else /* portable equivalents, bit for bit */
#define SQZ_DSP_NATIVE 0

static inline uint32_t sqz_sxtb16(uint32_t x)
{
    const uint32_t lo = (uint32_t)(int32_t)(int8_t)(x & 0xffu) & 0xffffu;
    const uint32_t hi = (uint32_t)(int32_t)(int8_t)((x >> 16) & 0xffu) & 0xffffu;
    return lo | (hi << 16);
}

static inline uint32_t sqz_sxtb16_ror8(uint32_t x)
{
    return sqz_sxtb16((x >> 8) | (x << 24));
}

static inline int32_t sqz_lo16(uint32_t x)
{
    return (int16_t)(x & 0xffffu);
}

static inline int32_t sqz_hi16(uint32_t x)
{
    return (int16_t)(x >> 16);
}

static inline int32_t sqz_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    /* Unsigned arithmetic wraps where the instruction wraps, without undefined behaviour. */
    const uint32_t p = (uint32_t)(sqz_lo16(a) * sqz_lo16(b)) +
                       (uint32_t)(sqz_hi16(a) * sqz_hi16(b));
    return (int32_t)((uint32_t)acc + p);
}

static inline uint32_t sqz_sadd16(uint32_t a, uint32_t b)
{
    const uint32_t lo = (a + b) & 0xffffu;
    const uint32_t hi = ((a >> 16) + (b >> 16)) & 0xffffu;
    return lo | (hi << 16);
}

static inline int32_t sqz_ssat8(int32_t x)
{
    return x < -128 ? -128 : (x > 127 ? 127 : x);
}

static inline int32_t sqz_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(sqz_lo16(a) * sqz_lo16(b)));
}

static inline int32_t sqz_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(sqz_hi16(a) * sqz_hi16(b)));
}

static inline int32_t sqz_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}

static inline uint32_t sqz_bytewise(uint32_t a, uint32_t b, int want_max)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)((a >> i) & 0xffu);
        const int8_t y = (int8_t)((b >> i) & 0xffu);
        const int8_t z = (want_max ? x >= y : x < y) ? x : y;
        r |= (uint32_t)(uint8_t)z << i;
    }
    return r;
}

static inline uint32_t sqz_max_s8x4(uint32_t a, uint32_t b)
{
    return sqz_bytewise(a, b, 1);
}

static inline uint32_t sqz_min_s8x4(uint32_t a, uint32_t b)
{
    return sqz_bytewise(a, b, 0);
}
#endif

/* Trailing one bits of x (RBIT + CLZ of its complement on Armv7E-M, which GCC emits for
 * __builtin_ctz; <arm_acle.h> of GCC 12 has no __rbit), 32 when all are ones. */
static inline uint32_t sqz_trailing_ones(uint32_t x)
{
#if SQZ_DSP_NATIVE
    return ~x ? (uint32_t)__builtin_ctz(~x) : 32u;
#else
    uint32_t n = 0;
    while (n < 32 && (x >> n & 1u)) {
        ++n;
    }
    return n;
#endif
}

/* Four bytes from any address (a single LDR on Armv7E-M, which allows unaligned loads). */
static inline uint32_t sqz_load32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void sqz_store32(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

#endif

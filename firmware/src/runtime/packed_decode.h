/* The decoder of packed weights (converter/ir/packing.py's format), shared by the packed conv
 * kernels. Internal to the runtime.
 *
 * The stream is read at a bit position, 32 bits at a time from any byte, which leaves at least
 * 25 bits: a whole code of the sparse format (unary run, k bits, index) or four indices of up
 * to 6 bits, with no window to refill. The stream's 4 bytes of padding keep those loads inside
 * it. Its two primitives have portable C definitions below; an including file that defines
 * either first gives its core its own instructions for it:
 *   SQZ_PACKED_LOAD32(p)          four bytes from any address, little-endian
 *   SQZ_PACKED_TRAILING_ONES(x)   the number of trailing one bits of x (32 when all) */
#ifndef SQZ_PACKED_DECODE_H
#define SQZ_PACKED_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sqz/kernels.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the packed-weights decoder reads the stream as little-endian words"
#endif

#ifndef SQZ_PACKED_LOAD32
/* Portable C: the compiler makes a plain load of the memcpy where the core allows unaligned
 * access. */
static inline uint32_t sqz_packed_load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
#define SQZ_PACKED_LOAD32 sqz_packed_load32
#endif

#ifndef SQZ_PACKED_TRAILING_ONES
static inline uint32_t sqz_packed_trailing_ones(uint32_t x)
{
#if defined(__GNUC__)
    /* A compiler builtin, not an architecture's: one or two instructions on every core GCC
     * and clang target, where the loop below costs a few per bit of the unary code. */
    return x == 0xFFFFFFFFu ? 32u : (uint32_t)__builtin_ctz(~x);
#else
    uint32_t n = 0;
    while (n < 32 && (x >> n & 1u)) {
        ++n;
    }
    return n;
#endif
}
#define SQZ_PACKED_TRAILING_ONES sqz_packed_trailing_ones
#endif

/* Weights per output channel of a filter: h * w * c. */
static inline int32_t sqz_dims_taps(const sqz_dims *filter_dims)
{
    return filter_dims->h * filter_dims->w * filter_dims->c;
}

static inline uint32_t sqz_packed_bits_at(const uint8_t *stream, uint32_t pos)
{
    return SQZ_PACKED_LOAD32(stream + (pos >> 3)) >> (pos & 7u);
}

#if defined(__GNUC__)
#define SQZ_PACKED_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define SQZ_PACKED_ALWAYS_INLINE static inline
#endif

/* Rows of four indices per load (`quads` of them) from bit *pos. Inlined with `bits` and
 * `check` constants (sqz_packed_decode_dense's switch), so each index is one bit-field
 * extract (UBFX on Arm, EXTUI on Xtensa) rather than shifts by a register, which on Xtensa
 * each need the shift amount register set first; and a full codebook (2^bits entries: no
 * index can be out of range) skips the range check. */
SQZ_PACKED_ALWAYS_INLINE sqz_status sqz_packed_quads(const uint8_t *stream, uint32_t *pos,
                                                     const int8_t *cb, uint32_t entries,
                                                     const uint32_t bits, const int check,
                                                     int32_t quads, int8_t *row)
{
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t p = *pos;
    for (int32_t q = 0; q < quads; ++q, p += 4 * bits, row += 4) {
        const uint32_t w = sqz_packed_bits_at(stream, p);
        const uint32_t a = w & mask, b = (w >> bits) & mask;
        const uint32_t c = (w >> 2 * bits) & mask, d = (w >> 3 * bits) & mask;
        if (check && (a | b | c | d) >= entries &&
            (a >= entries || b >= entries || c >= entries || d >= entries)) {
            return SQZ_ERR_ARG;
        }
        row[0] = cb[a];
        row[1] = cb[b];
        row[2] = cb[c];
        row[3] = cb[d];
    }
    *pos = p;
    return SQZ_OK;
}

static sqz_status sqz_packed_decode_dense(const uint8_t *stream, uint32_t *pos, const int8_t *cb,
                               uint32_t entries, uint32_t bits, int32_t taps, int8_t *row)
{
    const uint32_t mask = (1u << bits) - 1u;
    int32_t i = 0;
    if (bits <= 6) { /* four indices per load */
        const int32_t quads = taps / 4;
        const int full = entries >= (1u << bits);
        sqz_status st;
#define SQZ_PACKED_QUADS(b)                                                                    \
    (full ? sqz_packed_quads(stream, pos, cb, entries, b, 0, quads, row)                       \
          : sqz_packed_quads(stream, pos, cb, entries, b, 1, quads, row))
        switch (bits) {
        case 1: st = SQZ_PACKED_QUADS(1); break;
        case 2: st = SQZ_PACKED_QUADS(2); break;
        case 3: st = SQZ_PACKED_QUADS(3); break;
        case 4: st = SQZ_PACKED_QUADS(4); break;
        case 5: st = SQZ_PACKED_QUADS(5); break;
        default: st = SQZ_PACKED_QUADS(6); break;
        }
#undef SQZ_PACKED_QUADS
        if (st != SQZ_OK) {
            return st;
        }
        i = 4 * quads;
    }
    uint32_t p = *pos;
    for (; i < taps; ++i, p += bits) {
        const uint32_t idx = sqz_packed_bits_at(stream, p) & mask;
        if (idx >= entries) {
            return SQZ_ERR_ARG;
        }
        row[i] = cb[idx];
    }
    *pos = p;
    return SQZ_OK;
}

/* One sparse row: inlined with `bits` and `k` constants where the dispatcher below makes
 * them so (extracts by immediate fields and shifts). */
SQZ_PACKED_ALWAYS_INLINE sqz_status sqz_packed_sparse_row(const uint8_t *stream, uint32_t *pos,
                                                          const int8_t *cb, uint32_t entries,
                                                          const uint32_t bits, const uint32_t k,
                                                          int32_t taps, int8_t *row)
{
    const uint32_t mask = (1u << bits) - 1u;
    const uint32_t kmask = (1u << k) - 1u;
    uint32_t p = *pos;
    uint32_t i = 0;
    memset(row, 0, (size_t)taps);
    for (;;) {
        uint32_t w = sqz_packed_bits_at(stream, p);
        uint32_t q = SQZ_PACKED_TRAILING_ONES(w);
        if (q + 1 + k + bits <= 25) {
            w >>= q + 1; /* the code fits the load: its fields follow the unary part */
        } else {
            /* A unary part too long for one load: count its ones 24 at a time (a load
             * holds at least 25 valid bits), then load the zero bit, k bits and index. */
            q = 0;
            uint32_t ones;
            while ((ones = SQZ_PACKED_TRAILING_ONES(sqz_packed_bits_at(stream, p + q))) >= 25) {
                q += 24;
            }
            q += ones;
            w = sqz_packed_bits_at(stream, p + q) >> 1;
        }
        i += (q << k) | (w & kmask);
        if (i >= (uint32_t)taps) {
            *pos = p + q + 1 + k;
            return SQZ_OK;
        }
        const uint32_t idx = (w >> k) & mask;
        if (idx >= entries) {
            return SQZ_ERR_ARG;
        }
        row[i++] = cb[idx];
        p += q + 1 + k + bits;
    }
}

/* The sparse rows sqz-compress makes (6-bit indices by default, Rice k of 0 to 3 for the
 * densities it prunes to) get their constants inlined; any other a general copy. */
static sqz_status sqz_packed_decode_sparse(const uint8_t *stream, uint32_t *pos, const int8_t *cb,
                                uint32_t entries, uint32_t bits, uint32_t k, int32_t taps,
                                int8_t *row)
{
    if (bits == 6 && k <= 3) {
        switch (k) {
        case 0: return sqz_packed_sparse_row(stream, pos, cb, entries, 6, 0, taps, row);
        case 1: return sqz_packed_sparse_row(stream, pos, cb, entries, 6, 1, taps, row);
        case 2: return sqz_packed_sparse_row(stream, pos, cb, entries, 6, 2, taps, row);
        default: return sqz_packed_sparse_row(stream, pos, cb, entries, 6, 3, taps, row);
        }
    }
    return sqz_packed_sparse_row(stream, pos, cb, entries, bits, k, taps, row);
}

/* `count` rows (output channels first .. first + count - 1) from bit `*pos`, each row_len
 * long (zeros after the taps); `*pos` ends past them. */
static sqz_status sqz_packed_decode(const sqz_packed_filter *pf, int32_t taps, int32_t first,
                              int32_t count, int32_t row_len, uint32_t *pos, int8_t *rows)
{
    if (pf->bits < 1 || pf->bits > 8 || pf->rice_k > 16 || !pf->stream || !pf->codebook) {
        return SQZ_ERR_ARG;
    }
    for (int32_t j = 0; j < count; ++j) {
        const int8_t *cb =
            pf->codebook + (pf->per_channel ? (size_t)(first + j) * pf->entries : 0);
        int8_t *row = rows + (size_t)j * row_len;
        const sqz_status st =
            pf->sparse ? sqz_packed_decode_sparse(pf->stream, pos, cb, pf->entries, pf->bits,
                                                  pf->rice_k, taps, row)
                       : sqz_packed_decode_dense(pf->stream, pos, cb, pf->entries, pf->bits,
                                                 taps, row);
        if (st != SQZ_OK) {
            return st;
        }
        memset(row + taps, 0, (size_t)(row_len - taps));
    }
    return SQZ_OK;
}

/* Most output channels per decoded block: the per-tensor requantization constants are expanded
 * into arrays this long on the stack. */
#define SQZ_PACKED_MAX_BLOCK 64

/* What a core's packed conv kernel brings to the shared driver below: its dense row kernel,
 * the sizes that kernel's layout implies, and a decoder of a block of output channels into
 * that layout (channels [first, first + n), scratch past them is free). */
typedef struct {
    sqz_conv_row_fn dense_row;
    int32_t (*scratch_size)(const sqz_conv_params *params, const sqz_dims *input_dims,
                            const sqz_dims *filter_dims, const sqz_dims *output_dims);
    int32_t (*block_in)(const sqz_context *ctx, const sqz_conv_params *params,
                        const sqz_dims *input_dims, const sqz_dims *filter_dims,
                        const sqz_dims *output_dims);
    int32_t (*row_len)(const sqz_conv_params *params, const sqz_dims *filter_dims);
    int32_t (*block_bytes)(int32_t block, int32_t row_len);
    sqz_status (*decode)(const sqz_packed_filter *pf, const sqz_dims *filter_dims,
                         int32_t first, int32_t n, int32_t row_len, uint32_t *cursor,
                         int8_t *decoded);
    /* The decoded block's alignment (1 or a power of two; block_bytes counts the slack). */
    uintptr_t align;
    /* 1: the dense kernel reads bias and requantization from the records the decoder copies
     * into the block (the layer has no bias, multiplier or shift arrays); 0: from the layer's. */
    int folds_quant;
} sqz_packed_variant;

/* A packed rows kernel (sqz_conv_rows_fn): each block of output channels is decoded once, then
 * run as a conv of its own by the dense row kernel on every row of the call, each writing its
 * slice of the output's channels. */
static sqz_status sqz_packed_rows(const sqz_packed_variant *v, const sqz_context *ctx,
                                  const sqz_conv_params *params,
                                  const sqz_per_channel_quant *quant,
                                  const sqz_dims *input_dims, const int8_t *const *input_rows,
                                  const sqz_dims *filter_dims, const void *filter,
                                  const sqz_dims *bias_dims, const int32_t *bias,
                                  int32_t n_rows, const sqz_dims *output_dims,
                                  int8_t *const *output_rows)
{
    if (!ctx || !ctx->buf || !params || !quant || !input_dims || !input_rows || !filter_dims ||
        !filter || !bias_dims || !(bias || v->folds_quant) || !output_dims || !output_rows) {
        return SQZ_ERR_ARG;
    }
    if (n_rows < 1 || n_rows > SQZ_MAX_ROWS_PER_CALL) {
        return SQZ_ERR_ARG;
    }
    for (int32_t r = 0; r < n_rows; ++r) {
        if (!output_rows[r]) {
            return SQZ_ERR_ARG;
        }
    }
    if (ctx->size < v->scratch_size(params, input_dims, filter_dims, output_dims)) {
        return SQZ_ERR_SCRATCH;
    }
    const sqz_packed_filter *pf = (const sqz_packed_filter *)filter;
    const int32_t block = v->block_in(ctx, params, input_dims, filter_dims, output_dims);
    if (block < 1 || block > SQZ_PACKED_MAX_BLOCK) {
        return SQZ_ERR_ARG;
    }
    const int32_t row_len = v->row_len(params, filter_dims);
    int8_t *decoded =
        (int8_t *)(((uintptr_t)ctx->buf + v->align - 1u) & ~(uintptr_t)(v->align - 1u));
    const int32_t offset = v->block_bytes(block, row_len);
    const sqz_context dense = {(uint8_t *)ctx->buf + offset, ctx->size - offset};
    /* A per-tensor quantization, expanded once per call. */
    int32_t mult[SQZ_PACKED_MAX_BLOCK];
    int8_t shift[SQZ_PACKED_MAX_BLOCK];
    if (pf->quant_per_tensor && !v->folds_quant) {
        for (int32_t j = 0; j < block; ++j) {
            mult[j] = quant->multiplier[0];
            shift[j] = quant->shift[0];
        }
    }
    uint32_t cursor = 0;
    for (int32_t oc0 = 0; oc0 < filter_dims->n; oc0 += block) {
        const int32_t n = filter_dims->n - oc0 < block ? filter_dims->n - oc0 : block;
        sqz_status st = v->decode(pf, filter_dims, oc0, n, row_len, &cursor, decoded);
        if (st != SQZ_OK) {
            return st;
        }
        const sqz_per_channel_quant q =
            v->folds_quant         ? *quant
            : pf->quant_per_tensor ? (sqz_per_channel_quant){mult, shift}
                                   : (sqz_per_channel_quant){quant->multiplier + oc0,
                                                             quant->shift + oc0};
        sqz_dims fd = *filter_dims, bd = *bias_dims, od = *output_dims;
        fd.n = n;
        bd.c = n;
        od.c = n;
        for (int32_t r = 0; r < n_rows; ++r) {
            st = v->dense_row(&dense, params, &q, input_dims,
                              input_rows + (size_t)r * filter_dims->h, &fd, decoded, &bd,
                              v->folds_quant ? NULL : bias + oc0, &od, output_rows[r] + oc0);
            if (st != SQZ_OK) {
                return st;
            }
        }
    }
    return SQZ_OK;
}

#endif

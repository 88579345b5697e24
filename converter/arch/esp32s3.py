"""ESP32-S3 kernel variants (firmware/src/arch/esp32s3/): CONV_2D and the push-form max pool
on the PIE SIMD unit, and the converter's half of them: the weight layout they read and the
proof, per layer, that their arithmetic is exact.

The conv (conv_pie.h has the method) accumulates in the 40-bit ACCX, so no 20-bit QACC lane
can saturate, and requantizes with a closed form of TFLite's MultiplyByQuantizedMultiplier
whose per-channel constants the converter computes here, into a record per output channel
placed in front of the weights (16 bytes; 32 in "general" mode, which also needs D):

    record = (bias + D, r, 2M, K [, D, 0, 0, 0]),  r = -shift,
    D * M = 2^30 + k * 2^31 (k an integer),  K = -k + (2^(r-1) if r > 0 else 0) + zp * 2^r

so that the kernel's muluh(x + D, 2M) is SaturatingRoundingDoublingHighMul(x, M) + k. `prove`
states what must hold for that to be exact and declines the layer (the portable kernel runs it)
where it cannot show it:

* x = accumulator + bias is bounded by B = |bias| + 128 * sum|w| (|input| <= 128, padding taps
  hold the input zero point, also an int8); D is chosen in [B, B + 2^31), so x + D is an
  unsigned 32-bit value when B < 2^30, and ACCX stays non-negative;
* no left shift (shift <= 0: effective scales below 1/2), r <= 31, and the output before the
  clamp, y + 2^(r-1) + zp * 2^r, fits in int32;
* without a ReLU-style clamp (act_min >= output zero point), the closed form needs r >= 1 and
  M > 2^30 on every channel (then y < 0 exactly when x < 0).
"""

from __future__ import annotations

import numpy as np

from .kernel import ConvKernel, ConvLayer, PoolKernel, PoolLayer, no_dense_layout
from .portable import PACKED_MAX_BLOCK, grouped_layout, larger_blocks

ARCH = "esp32s3"
# Builds and runs on the host too (conv_pie.c's plain-C twins of the PIE loops off the
# S3), so the host tests cover it.
HOST_RUNNABLE = True
# Mirror firmware/src/arch/esp32s3/conv_pie.h.
CHUNK = 7  # SQZ_PIE_CHUNK: weight vectors per pass
RECORD = 16  # SQZ_PIE_RECORD: bytes of a channel's record (twice that in general mode)
PATCH_BYTES = 8192  # SQZ_PIE_PATCH_BYTES: gathered patches per block of output pixels
INT32_MAX = 2**31 - 1

CONV_SOURCES = ("arch/esp32s3/conv_pie.c", "arch/esp32s3/conv_pie_loops.S",
                "arch/esp32s3/conv_pie_size.c")


def run_len(s: ConvLayer) -> int:
    """A filter row's kw * c weights rounded up to 16 (each starts a vector)."""
    f = s.filter_dims
    return -(-(f.w * f.c) // 16) * 16


def row_len(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_pie_filter_row_len: padded weights per output channel."""
    return s.filter_dims.h * run_len(s)


def _direct(s: ConvLayer) -> bool:
    f = s.filter_dims
    return f.h == 1 and f.w == 1 and s.input_dims.c % 16 == 0 and s.padding == (0, 0)


def scratch_bytes(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_pie_scratch_size (conv_pie_size.c)."""
    length = row_len(s)
    width = s.output_dims.w
    block = max(1, PATCH_BYTES // length)
    pixels = width if _direct(s) or block > width else block
    partial = 8 * pixels if length // 16 > CHUNK else 0
    patches = -(-partial // 16) * 16
    return patches + (0 if _direct(s) else pixels * length) + 16


def general_mode(s: ConvLayer) -> bool:
    """No ReLU-style clamp: the kernel adds the sign fix-up (conv_pie.h)."""
    return s.act_min < s.output_offset


def record_bytes(s: ConvLayer) -> int:
    return RECORD * (2 if general_mode(s) else 1)


def offset_for(m: int, bound: int) -> int:
    """D >= bound with D * m = 2^30 (mod 2^31): the smallest, below bound + 2^31."""
    if m == 0:
        return max(bound, 1 << 30)
    a = (m & -m).bit_length() - 1  # m = 2^a * odd, a <= 30
    mod = 1 << (31 - a)
    d0 = ((1 << (30 - a)) * pow(m >> a, -1, mod)) % mod
    return d0 if d0 >= bound else d0 + -(-(bound - d0) // mod) * mod


def records(s: ConvLayer, shared_offset: bool = False) -> np.ndarray:
    """The channel records, flat int32 (record_bytes(s) // 4 per channel), or ValueError naming
    what cannot be proved exact. `shared_offset` (a layer with one multiplier): every channel
    gets the D of the largest bound, so that the records differ only in their first word,
    bias + D (any D >= a channel's bound serves it, and D < 2^30 + 2^31 keeps x + D within
    32 bits)."""
    f = s.filter_dims
    w = np.frombuffer(s.filter, np.int8).reshape(f.n, -1).astype(np.int64)
    bias = np.asarray(s.bias, np.int64)
    bound = np.abs(bias) + 128 * np.abs(w).sum(axis=1)
    if shared_offset:
        if len(set(s.multiplier)) != 1 or len(set(s.shift)) != 1:
            raise ValueError("a shared record needs one multiplier and shift for every "
                             "channel")
        top = int(bound.max())
    general = general_mode(s)
    zp = s.output_offset
    words = record_bytes(s) // 4
    out = np.zeros((f.n, words), np.int64)
    for o in range(f.n):
        m, shift, b = int(s.multiplier[o]), int(s.shift[o]), int(bound[o])
        r = -shift
        if not 0 <= m <= INT32_MAX:
            raise ValueError(f"channel {o}: multiplier {m} outside int32")
        if shift > 0:
            raise ValueError(f"channel {o}: left shift {shift} (an effective scale of 1/2 or "
                             "more)")
        if r > 31:
            raise ValueError(f"channel {o}: shift {shift} out of the kernel's range")
        if general and (r == 0 or m <= 1 << 30):
            raise ValueError(f"channel {o}: no ReLU-style clamp and shift {shift}, multiplier "
                             f"{m}: the sign fix-up needs a right shift and M > 2^30")
        if b >= 1 << 30:
            raise ValueError(f"channel {o}: |accumulator + bias| <= {b} reaches 2^30")
        d = offset_for(m, top if shared_offset else b)
        k = (d * m - (1 << 30)) >> 31 if m else 0
        half = (1 << (r - 1)) if r > 0 else 0
        y_max = (b * m + (1 << 30)) // 2**31 + 1
        if y_max + half + 128 * (1 << r) + 1 > INT32_MAX:
            raise ValueError(f"channel {o}: the requantization's sum can overflow int32")
        k_word = (-k + half + zp * (1 << r)) & 0xFFFFFFFF
        row = [(int(bias[o]) + d) & 0xFFFFFFFF, r, 2 * m, k_word]
        if general:
            row += [d, 0, 0, 0]
        out[o] = row
    return out.astype(np.uint32).view(np.int32).reshape(-1)


def prove(s: ConvLayer) -> str | None:
    """Why the PIE conv cannot run this layer exactly, or None when it can."""
    return "packed weights" if s.packed is not None else _refuses_with(s, records)


def _refuses_with(s: ConvLayer, make_records) -> str | None:
    """What the PIE conv needs of a layer: its shape, and records `make_records` can prove
    exact (the dense layout's, or a packed layer's, shared or not)."""
    if s.dilation != (1, 1):
        return "dilated filter"
    if s.filter_dims.h > 16:
        return "more than 16 filter rows"
    try:
        make_records(s)
    except ValueError as e:
        return str(e)
    return None


def filter_layout(s: ConvLayer) -> np.ndarray:
    """The records, then each channel's OHWI weights with every filter row padded to 16."""
    f = s.filter_dims
    w = np.frombuffer(s.filter, np.int8).reshape(f.n, f.h, f.w * f.c)
    pad = run_len(s) - f.w * f.c
    if pad:
        w = np.pad(w, ((0, 0), (0, 0), (0, pad)))
    rec = records(s).astype("<i4").view(np.int8)
    return np.concatenate([rec, w.reshape(-1)])


PIE_CONV = ConvKernel(
    symbol="sqz_conv_s8_pie_row", scratch_symbol="sqz_conv_s8_pie_scratch_size", arch=ARCH,
    refuses=prove,
    filter_row_len=lambda s: row_len(s) + record_bytes(s),
    filter_layout=filter_layout,
    scratch_bytes=scratch_bytes,
    description="ESP32-S3 PIE: 16 MACs per instruction into the 40-bit ACCX, "
                "6-instruction requantization",
    sources=CONV_SOURCES,
    folds_quant=True,
)


# Mirror SQZ_PIE_PACKED_BLOCK_BYTES and _MAX_RECORD (packed_pie.c): blocks are sized for the
# general mode's record whatever the layer's. The most channels per block is the shared
# driver's (runtime/packed_decode.h, portable.PACKED_MAX_BLOCK). Twice the other kernels'
# least block: each block gathers the row's patches again (at 4096 B SqueezeNet 1.1's conv1
# took two blocks at 224).
PACKED_BLOCK_BYTES = 8192
PACKED_MAX_RECORD = 2 * RECORD
# Bytes after a packed stream's pad that packed_pie.c's load32 may read (its aligned word
# pairs reach 7 bytes past a word's first byte; the pad covers 4).
PIE_STREAM_SLACK = 4
# sqz_packed_filter_records beyond sqz_packed_filter, on the S3 (32-bit pointers): records,
# record_bias and record_bytes, padded to 4.
PIE_HEADER_EXTRA = 12


def packed_block(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_pie_packed_block: output channels decoded at a time."""
    block = max(1, PACKED_BLOCK_BYTES // (row_len(s) + PACKED_MAX_RECORD))
    return min(block, PACKED_MAX_BLOCK, s.filter_dims.n)


def packed_scratch_bytes(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_pie_packed_scratch_size: alignment slack, the block's records and
    weights, one channel's taps, then the dense kernel's scratch; more when the converter chose
    a larger block (s.decode_block: block_in() in the C finds it from the scratch size)."""
    block = max(s.decode_block, packed_block(s))
    return 15 + block * (row_len(s) + PACKED_MAX_RECORD) + row_len(s) + scratch_bytes(s)


def packed_blocks(s: ConvLayer) -> list[int]:
    """Larger blocks worth offering, most first (fewer blocks gather the patches fewer
    times)."""
    return larger_blocks(s, packed_block(s))


def _packed_refuses(s: ConvLayer) -> str | None:
    return "plain int8 weights" if s.packed is None else _refuses_with(s, packed_records)


def packed_records(s: ConvLayer) -> tuple[np.ndarray, np.ndarray | None]:
    """What a packed layer stores beside its stream (sqz_packed_filter.records and
    .record_bias): one channel record each, or, for a layer with one multiplier and shift,
    one record with D as its first word and the channels' biases (4 bytes a channel instead of
    16 or 32: packed_pie.c adds each bias to that word)."""
    if not s.quant_per_tensor:
        return records(s), None
    words = record_bytes(s) // 4
    first = records(s, shared_offset=True)[:words].copy()
    first.view(np.uint32)[0] = (int(first.view(np.uint32)[0]) - int(s.bias[0])) & 0xFFFFFFFF
    return first, np.asarray(s.bias, np.int32)


PIE_PACKED_CONV = ConvKernel(
    symbol="sqz_conv_s8_pie_packed_row", scratch_symbol="sqz_conv_s8_pie_packed_scratch_size",
    arch=ARCH, refuses=_packed_refuses, filter_row_len=row_len,
    filter_layout=no_dense_layout, scratch_bytes=packed_scratch_bytes,
    description="ESP32-S3 PIE on packed weights: a block of channels decoded at a time",
    packed=True, rows_symbol="sqz_conv_s8_pie_packed_rows", blocks=packed_blocks,
    least_block=packed_block,
    costs=(16, 1),
    folds_quant=True, records=packed_records, stream_slack=PIE_STREAM_SLACK,
    header_extra=PIE_HEADER_EXTRA,
    sources=("arch/esp32s3/packed_pie.c", "runtime/packed_s8.c", *CONV_SOURCES),
)


def _pool_refuses(s: PoolLayer) -> str | None:
    """Mirrors the checks of sqz_max_pool_s8_pie_push (which passes anything else on to the
    portable kernel): whole 16-channel vectors, windows up to 3 wide, at most two output rows
    per input row."""
    kh, kw = s.filter_hw
    if s.input_dims.c % 16:
        return f"{s.input_dims.c} channels, not a multiple of 16"
    if kw > 3:
        return f"a window {kw} wide (at most 3)"
    if -(-kh // s.stride[0]) > 2:
        return "more than two output rows per input row"
    return None


PIE_MAX_POOL = PoolKernel(
    "sqz_max_pool_s8_pie_push", ARCH, "max", _pool_refuses,
    "ESP32-S3 PIE: 16 channels per ee.vmax.s8, push form", push=True,
    sources=("arch/esp32s3/pool_pie.c", "runtime/pool_s8.c"),
)

# Mirrors SQZ_DW_PIE_MAX_TAPS and SQZ_DW_PIE_DUMP (depthwise_pie.c): QACC's 20-bit lanes
# take 25 products of at most 2^14 without saturating.
DW_PIE_MAX_TAPS = 25
DW_PIE_DUMP = 64


def _depthwise_refuses(s: ConvLayer) -> str | None:
    f = s.filter_dims
    if not (f.c == 1 and f.n == s.input_dims.c):
        return "not depthwise with depth multiplier 1"
    if s.input_dims.c % 16:
        return f"{s.input_dims.c} channels, not a multiple of 16"
    if f.h * f.w > DW_PIE_MAX_TAPS:
        return f"more than {DW_PIE_MAX_TAPS} taps"
    try:
        records(s)
    except ValueError as e:
        return str(e)
    return None


def _depthwise_layout(s: ConvLayer) -> np.ndarray:
    """The PIE conv's records, then the taps tap-major (the grouped kernels' order)."""
    return np.concatenate([records(s).astype("<i4").view(np.int8), grouped_layout(s)])


PIE_DEPTHWISE = ConvKernel(
    symbol="sqz_depthwise_s8_pie_row", scratch_symbol="sqz_depthwise_s8_pie_scratch_size",
    arch=ARCH, refuses=_depthwise_refuses,
    filter_row_len=lambda s: record_bytes(s) + s.filter_dims.h * s.filter_dims.w,
    filter_layout=_depthwise_layout,
    # Mirrors sqz_depthwise_s8_pie_scratch_size: alignment slack, the QACC dump, the
    # zero-point pixel.
    scratch_bytes=lambda s: 16 + DW_PIE_DUMP + s.input_dims.c,
    description="ESP32-S3 PIE depthwise: 16 channels per ee.vmulas.s8.qacc",
    sources=("arch/esp32s3/depthwise_pie.c",), folds_quant=True, grouped=True,
)

# Most preferred first (converter.arch.select_conv takes the first that supports a layer).
KERNELS = (PIE_CONV, PIE_PACKED_CONV, PIE_DEPTHWISE, PIE_MAX_POOL)

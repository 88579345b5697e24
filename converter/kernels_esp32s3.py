"""ESP32-S3 kernel variants (firmware/src/arch/esp32s3/): CONV_2D and the push-form max pool
on the PIE SIMD unit, and the converter's half of them: the weight layout they read and the
proof, per layer, that their arithmetic is exact.

The conv (conv_pie.h has the method) accumulates in the 40-bit ACCX, so no 20-bit QACC lane
can saturate, and requantizes with a closed form of TFLite's MultiplyByQuantizedMultiplier
whose per-channel constants the converter computes here, into a 16-byte record per output
channel placed in front of the weights:

    record = (bias + 2^30, T | 2^(2 + left) << 8, multiplier, K),  T = r + 1,
    K = 1 + (2^r if r > 0 else 0) + zp * 2^T - (2 for negative x in "general" mode, in C)

with left = max(shift, 0), r = max(-shift, 0). `prove` states what must hold for that to be
exact and declines the layer (the portable kernel runs it) where it cannot show it:

* x = accumulator + bias is bounded by B = |bias| + 128 * sum|w| (|input| <= 128, padding taps
  hold the input zero point, also an int8); x * 2^(2 + left) must fit in int32 (the kernel
  forms it modulo 2^32 from x + 2^30);
* h = mulsh(x * 2^(2 + left), M) plus K (and the sign fix-up) must fit in int32, T <= 31;
* without a ReLU-style clamp (act_min >= output zero point), the closed form needs r >= 1 and
  M > 2^30 on every channel (then x < 0 exactly when the doubling high multiply is < 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .kernels import ConvKernel, PoolKernel, register_conv, register_pool

if TYPE_CHECKING:
    from .lower import ConvStep, PoolStep

ARCH = "esp32s3"
# Mirror firmware/src/arch/esp32s3/conv_pie.h.
CHUNK = 7  # SQZ_PIE_CHUNK: weight vectors per pass
RECORD = 16  # SQZ_PIE_RECORD: bytes of a channel's record
PATCH_BYTES = 8192  # SQZ_PIE_PATCH_BYTES: gathered patches per block of output pixels
INT32_MAX = 2**31 - 1
INIT = 1 << 30  # ACCX starts at bias + 2^30
MAX_LEFT = 20  # pow = 4 << left stays in the record's bits 8..31

CONV_SOURCES = ("arch/esp32s3/conv_pie.c", "arch/esp32s3/conv_pie_loops.S",
                "arch/esp32s3/conv_pie_size.c")


def run_len(s: ConvStep) -> int:
    """A filter row's kw * c weights rounded up to 16 (each starts a vector)."""
    f = s.filter_dims
    return -(-(f.w * f.c) // 16) * 16


def row_len(s: ConvStep) -> int:
    """Mirrors sqz_conv_s8_pie_filter_row_len: padded weights per output channel."""
    return s.filter_dims.h * run_len(s)


def _direct(s: ConvStep) -> bool:
    f = s.filter_dims
    return f.h == 1 and f.w == 1 and s.input_dims.c % 16 == 0 and s.padding == (0, 0)


def scratch_bytes(s: ConvStep) -> int:
    """Mirrors sqz_conv_s8_pie_scratch_size (conv_pie_size.c)."""
    length = row_len(s)
    width = s.output_dims.w
    block = max(1, PATCH_BYTES // length)
    pixels = width if _direct(s) or block > width else block
    partial = 8 * pixels if length // 16 > CHUNK else 0
    patches = -(-partial // 16) * 16
    return patches + (0 if _direct(s) else pixels * length) + 16


def general_mode(s: ConvStep) -> bool:
    """No ReLU-style clamp: the kernel adds the sign fix-up (conv_pie.h)."""
    return s.act_min < s.output_offset


def records(s: ConvStep) -> np.ndarray:
    """The channel records, (n, 4) int32, or ValueError naming what cannot be proved exact."""
    f = s.filter_dims
    w = np.frombuffer(s.filter, np.int8).reshape(f.n, -1).astype(np.int64)
    bias = np.asarray(s.bias, np.int64)
    bound = np.abs(bias) + 128 * np.abs(w).sum(axis=1)
    general = general_mode(s)
    zp = s.output_offset
    out = np.zeros((f.n, 4), np.int64)
    for o in range(f.n):
        m, shift = int(s.multiplier[o]), int(s.shift[o])
        left, r = max(shift, 0), max(-shift, 0)
        t = r + 1
        if not 0 <= m <= INT32_MAX:
            raise ValueError(f"channel {o}: multiplier {m} outside int32")
        if left > MAX_LEFT or t > 31:
            raise ValueError(f"channel {o}: shift {shift} out of the kernel's range")
        if general and (r == 0 or m <= 1 << 30):
            raise ValueError(f"channel {o}: no ReLU-style clamp and shift {shift}, multiplier "
                             f"{m}: the sign fix-up needs a right shift and M > 2^30")
        pow2 = 1 << (2 + left)
        x_max = int(bound[o]) * pow2
        if x_max > INT32_MAX:
            raise ValueError(f"channel {o}: |accumulator + bias| <= {int(bound[o])} times "
                             f"2^{2 + left} overflows int32")
        k = 1 + ((1 << r) if r > 0 else 0) + zp * (1 << t)
        h_max = -(-x_max * m // 2**32) + 1
        if h_max + abs(k) + 2 > INT32_MAX:
            raise ValueError(f"channel {o}: the requantization's sum can overflow int32")
        out[o] = (int(bias[o]) + INIT, t | (pow2 << 8), m, k)
    return out.astype(np.int32)


def prove(s: ConvStep) -> str | None:
    """Why the PIE conv cannot run this layer exactly, or None when it can."""
    if s.packed is not None:
        return "packed weights"
    if s.dilation != (1, 1):
        return "dilated filter"
    if s.filter_dims.h > 16:
        return "more than 16 filter rows"
    try:
        records(s)
    except ValueError as e:
        return str(e)
    return None


def filter_layout(s: ConvStep) -> np.ndarray:
    """The records, then each channel's OHWI weights with every filter row padded to 16."""
    f = s.filter_dims
    w = np.frombuffer(s.filter, np.int8).reshape(f.n, f.h, f.w * f.c)
    pad = run_len(s) - f.w * f.c
    if pad:
        w = np.pad(w, ((0, 0), (0, 0), (0, pad)))
    rec = records(s).astype("<i4").view(np.int8).reshape(-1)
    return np.concatenate([rec, w.reshape(-1)])


PIE_CONV = ConvKernel(
    symbol="sqz_conv_s8_pie_row", scratch_symbol="sqz_conv_s8_pie_scratch_size", arch=ARCH,
    supports=lambda s: prove(s) is None,
    filter_row_len=lambda s: row_len(s) + RECORD,
    filter_layout=filter_layout,
    scratch_bytes=scratch_bytes,
    description="ESP32-S3 PIE: 16 MACs per instruction into the 40-bit ACCX, "
                "7-instruction requantization",
    sources=CONV_SOURCES,
)

register_conv(PIE_CONV)



def _pool_supports(s: PoolStep) -> bool:
    """Mirrors the checks of sqz_max_pool_s8_pie_push (which passes anything else on to the
    portable kernel): whole 16-channel vectors, windows up to 3 wide, at most two output rows
    per input row."""
    kh, kw = s.filter_hw
    return s.input_dims.c % 16 == 0 and kw <= 3 and -(-kh // s.stride[0]) <= 2


PIE_MAX_POOL = PoolKernel(
    "sqz_max_pool_s8_pie_push", ARCH, "max", _pool_supports,
    "ESP32-S3 PIE: 16 channels per ee.vmax.s8, push form", push=True,
    sources=("arch/esp32s3/pool_pie.c", "runtime/pool_s8.c"),
)

register_pool(PIE_MAX_POOL)

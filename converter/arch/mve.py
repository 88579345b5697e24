"""Helium (MVE, Armv8.1-M) kernel variants (firmware/src/arch/mve/, declared in
sqz/kernels_mve.h): Cortex-M55 and M85.

The conv runs two output pixels by four output channels at a time, 16 int8 taps per VMLADAVA
into a general-purpose register (no widening); the max pool takes 16 channels per VMAX.S8.

The conv reads its weights in its own order, laid out here at conversion: each output channel's
OHWI taps zero-padded to a multiple of 16, channels padded with zero rows to a multiple of 4 and
taken four at a time, interleaved 16 taps at a time (one post-incremented pointer walks a quad).
Its inputs are read in place for a 1x1 conv of stride 1 over a multiple of 16 channels, else
gathered into patches (one padded filter row per output pixel) for a block of pixels. Dilated
convs and packed filters are left to the portable kernels (as are depthwise convs and ADD until
this architecture has variants for them: one more kernel in KERNELS below).
"""

from __future__ import annotations

import numpy as np

from .kernel import ConvKernel, ConvLayer, PoolKernel
from .portable import MAX_FILTER_ROWS, ohwi_rows

ARCH = "mve"
# Its C twins build on the host for the unit tests (tests/test_mve.py); the golden sweeps run
# it on the emulated Cortex-M55 (mps3-an547).
HOST_RUNNABLE = False
CHUNK = 16  # mirrors SQZ_MVE_CHUNK (firmware/src/arch/mve/conv_mve.h)
QUAD = 4  # mirrors SQZ_MVE_QUAD
BLOCK_BYTES = 8192  # mirrors BLOCK_BYTES (conv_mve.c)


def filter_row_len(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_mve_filter_row_len: the taps padded to whole 16-byte chunks."""
    f = s.filter_dims
    return -(-(f.h * f.w * f.c) // CHUNK) * CHUNK


def in_place(s: ConvLayer) -> bool:
    """Mirrors in_place (conv_mve.c): the input row is already a run of patches."""
    f = s.filter_dims
    return (f.h == 1 and f.w == 1 and s.stride[1] == 1 and s.padding[1] == 0
            and f.c % CHUNK == 0)


def scratch_bytes(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_mve_scratch_size: patches for a block of output pixels (up to
    BLOCK_BYTES, an even number of pixels, at least two), none when read in place."""
    if in_place(s):
        return 0
    length = filter_row_len(s)
    pixels = max(2, (BLOCK_BYTES // length) & ~1)
    return length * min(pixels, s.output_dims.w)


def min_scratch_bytes(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_mve_min_scratch_size: one pixel pair's patches. The kernel uses
    blocks as large as the scratch it is given holds; the weights are read once per pixel pair
    whatever the block, so a smaller block costs only loop overhead."""
    return 0 if in_place(s) else filter_row_len(s) * min(2, s.output_dims.w)


def refuses(s: ConvLayer) -> str | None:
    if s.dilation != (1, 1):
        return "dilated filter"
    if s.filter_dims.h > MAX_FILTER_ROWS:
        return f"more than {MAX_FILTER_ROWS} filter rows"
    return None


def filter_layout(s: ConvLayer) -> np.ndarray:
    """Quads of output channels (the last padded with zero rows), 16 taps of each in turn."""
    n = s.filter_dims.n
    length = filter_row_len(s)
    rows = ohwi_rows(s, length).reshape(n, length)
    quads = -(-n // QUAD)
    if quads * QUAD > n:
        rows = np.concatenate([rows, np.zeros((quads * QUAD - n, length), np.int8)])
    chunks = length // CHUNK
    return rows.reshape(quads, QUAD, chunks, CHUNK).transpose(0, 2, 1, 3).reshape(-1)


CONV = ConvKernel(
    symbol="sqz_conv_s8_mve_row", scratch_symbol="sqz_conv_s8_mve_scratch_size",
    arch=ARCH, refuses=refuses, filter_row_len=filter_row_len, filter_layout=filter_layout,
    scratch_bytes=scratch_bytes, min_scratch_bytes=min_scratch_bytes,
    description="Helium (MVE): VMLADAVA, 2 pixels x 4 channels",
    sources=("arch/mve/conv_mve.c", "arch/mve/conv_mve_loop.S"),
)

# The node adapter (and the span of output rows an input row feeds) stay in pool_s8.c.
MAX_POOL_PUSH = PoolKernel("sqz_max_pool_s8_mve_push", ARCH, "max", lambda s: None,
                           "Helium (MVE): 16 channels per VMAX.S8, push", push=True,
                           sources=("arch/mve/pool_mve.c", "runtime/pool_s8.c"))

# Most preferred first (converter.arch.select_conv takes the first that supports a layer).
KERNELS = (CONV, MAX_POOL_PUSH)

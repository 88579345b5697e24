"""Armv7E-M kernel variants (firmware/src/arch/armv7em/, declared in sqz/kernels_armv7em.h).

Cortex-M4, M7 and M33 with the DSP extension: the conv multiplies int16 pairs with SMLAD, three
output pixels by two output channels at a time, from patches of the input widened to int16 in
the lane order SXTB16 gives the weights, which it widens in registers as it reads them; the max
pool takes four channels per SSUB8 + SEL.

The conv reads its weights in its own order, laid out here at conversion: each output
channel's OHWI taps zero-padded to a multiple of 4, then channels in pairs, interleaved four
taps at a time (one LDRD reads four taps of both channels). Padding to 4 taps is the only
growth, never a duplicated weight. Dilated convs are left to the portable kernel.
"""

from __future__ import annotations

import numpy as np

from .kernel import ConvKernel, ConvLayer, PoolKernel, no_dense_layout
from .portable import (
    MAX_FILTER_ROWS,
    depthwise_layout,
    depthwise_refuses,
    depthwise_row_len,
    depthwise_scratch,
    ohwi_rows,
)

ARCH = "armv7em"
# Builds and runs on the host too (dsp.h: each DSP instruction as plain C off the
# Cortex-M), so the host tests cover it.
HOST_RUNNABLE = True
TAPS_PER_QUAD = 4
PIXELS_PER_GROUP = 3  # mirrors SQZ_PIXELS_PER_GROUP (firmware/src/arch/armv7em/mac.h)
PATCH_WORDS_PER_QUAD = 2 * PIXELS_PER_GROUP  # mirrors SQZ_PATCH_WORDS_PER_QUAD


def quads(s: ConvLayer) -> int:
    f = s.filter_dims
    return -(-(f.h * f.w * f.c) // TAPS_PER_QUAD)


def filter_row_len(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_armv7em_filter_row_len."""
    return TAPS_PER_QUAD * quads(s)


# Mirror BLOCK_BYTES and BLOCK_MIN_TRIPLES (firmware/src/arch/armv7em/conv_s8_armv7em.c).
BLOCK_BYTES = 8192
BLOCK_MIN_TRIPLES = 2


def _group_bytes(s: ConvLayer) -> int:
    """One pixel triple's patch."""
    return 4 * PATCH_WORDS_PER_QUAD * quads(s)


def _fixed_bytes(s: ConvLayer) -> int:
    return TAPS_PER_QUAD * quads(s) if s.input_dims.c % 4 else 0


def scratch_bytes(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_armv7em_scratch_size: a block of pixel triples' patches (int16
    lanes), and for channel counts that are not multiples of 4 the receptive field's bytes
    gathered before widening."""
    group = _group_bytes(s)
    groups = -(-s.output_dims.w // PIXELS_PER_GROUP)
    block = min(groups, max(BLOCK_MIN_TRIPLES, BLOCK_BYTES // group))
    return group * block + _fixed_bytes(s)


def min_scratch_bytes(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_armv7em_min_scratch_size: blocks of one pixel triple. The kernel
    uses blocks as large as the scratch it is given holds, so a plan short of memory may give a
    layer anything from this to scratch_bytes(), trading a little speed for arena."""
    return _group_bytes(s) + _fixed_bytes(s)


def refuses(s: ConvLayer) -> str | None:
    if s.dilation != (1, 1):
        return "dilated filter"
    if s.filter_dims.h > MAX_FILTER_ROWS:
        return f"more than {MAX_FILTER_ROWS} filter rows"
    return None


def refuses_packed(s: ConvLayer) -> str | None:
    return refuses(s) if s.packed is not None else "plain int8 weights"


def filter_layout(s: ConvLayer) -> np.ndarray:
    """Output channels in pairs, four taps of one, four of the other; an odd last one alone."""
    n = s.filter_dims.n
    q = quads(s)
    rows = ohwi_rows(s, TAPS_PER_QUAD * q).reshape(n, q, TAPS_PER_QUAD)
    pairs = n // 2
    paired = rows[:2 * pairs].reshape(pairs, 2, q, TAPS_PER_QUAD).transpose(0, 2, 1, 3)
    return np.concatenate([paired.reshape(-1), rows[2 * pairs:].reshape(-1)])


CONV = ConvKernel(
    symbol="sqz_conv_s8_armv7em_row", scratch_symbol="sqz_conv_s8_armv7em_scratch_size",
    arch=ARCH, refuses=refuses, filter_row_len=filter_row_len, filter_layout=filter_layout,
    scratch_bytes=scratch_bytes, min_scratch_bytes=min_scratch_bytes,
    description="Armv7E-M DSP: SMLAD, 3 pixels x 2 channels",
    sources=("arch/armv7em/conv_s8_armv7em.c", "arch/armv7em/mac.c",
             "arch/armv7em/mac_s8_armv7em.S"),
)

# The node adapter (and the span of output rows an input row feeds) stay in pool_s8.c.
MAX_POOL_PUSH = PoolKernel("sqz_max_pool_s8_armv7em_push", ARCH, "max", lambda s: None,
                           "Armv7E-M DSP: 4 channels per SSUB8/SEL, push", push=True,
                           sources=("arch/armv7em/pool_s8_armv7em.c", "runtime/pool_s8.c"))

# Mirrors SQZ_ARMV7EM_PACKED_BLOCK_BYTES and _MAX_BLOCK (packed_s8_armv7em.c).
PACKED_BLOCK_BYTES = 4096
PACKED_MAX_BLOCK = 64


def packed_block(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_armv7em_packed_block: whole channel pairs decoded at a time."""
    block = PACKED_BLOCK_BYTES // filter_row_len(s) // 2 * 2
    return min(max(2, block), PACKED_MAX_BLOCK, s.filter_dims.n)


def packed_scratch_bytes(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_armv7em_packed_scratch_size: the decoded block, a channel pair
    being interleaved, then the dense kernel's scratch; more when the converter chose a
    larger block (s.decode_block: block_in() in the C finds it from the scratch size)."""
    return (max(s.decode_block, packed_block(s)) + 2) * filter_row_len(s) + scratch_bytes(s)


def packed_blocks(s: ConvLayer) -> list[int]:
    """Larger blocks worth offering, most first: whole pairs, or every channel."""
    n = s.filter_dims.n
    out = {min(n, b) for b in (PACKED_MAX_BLOCK, 32, 16)}
    return sorted((b for b in out if b > packed_block(s) and (b % 2 == 0 or b == n)),
                  reverse=True)


PACKED_CONV = ConvKernel(
    symbol="sqz_conv_s8_armv7em_packed_row",
    scratch_symbol="sqz_conv_s8_armv7em_packed_scratch_size",
    arch=ARCH, refuses=refuses_packed,
    filter_row_len=filter_row_len, filter_layout=no_dense_layout,
    scratch_bytes=packed_scratch_bytes,
    description="Armv7E-M DSP on packed weights: a block of channels decoded at a time",
    packed=True, rows_symbol="sqz_conv_s8_armv7em_packed_rows", blocks=packed_blocks,
    least_block=packed_block,
    # Measured when the dense kernel still widened each channel pair's weights once per call
    # (so rows per call weighed more). QEMU Cortex-M4 instructions, compressed at 224 (plain
    # filters: 700.1 M for v1.0, 329.2 M for v1.1): v1.0 908.3 M at 16:2, 910.2 M at 16:3 and 16:4,
    # 930.6 M at 16:8, 933.6 M at 16:1; v1.1 409.3 M at 16:2, 405.7 M at 16:1, 410.5 M at 16:4.
    costs=(16, 2),
    sources=("arch/armv7em/packed_s8_armv7em.c", "runtime/packed_s8.c", *CONV.sources),
)


DEPTHWISE = ConvKernel(
    symbol="sqz_depthwise_s8_armv7em_row",
    scratch_symbol="sqz_depthwise_s8_armv7em_scratch_size", arch=ARCH,
    refuses=depthwise_refuses, filter_row_len=depthwise_row_len,
    filter_layout=depthwise_layout, scratch_bytes=depthwise_scratch,
    description="Armv7E-M DSP depthwise: 4 channels per SXTB16 pair, SMMULR output stage",
    sources=("arch/armv7em/depthwise_s8_armv7em.c",), folds_quant=True, grouped=True,
)

# Most preferred first (converter.arch.select_conv takes the first that supports a layer).
KERNELS = (CONV, PACKED_CONV, DEPTHWISE, MAX_POOL_PUSH)

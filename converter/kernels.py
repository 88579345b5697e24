"""Kernel variants: which C row kernel runs each layer, and the weight layout it reads.

The portable kernels (firmware/src/runtime/) run every layer. An architecture (the board
profile's `arch`, see converter.arch) may add variants for the layers it does best; the
converter picks, per layer, the first variant of the board's architecture that supports the
layer, else the portable kernel, and lays the weights out for the chosen one. The choice is
written into the schedule (each layer struct names its row function), so the report, the
firmware and the export all agree on it.

Every variant mirrors its C scratch-size function here, so a wrong size fails at conversion
(tests/test_c_mirrors.py checks both against each other), never on the board.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .arch import PORTABLE

if TYPE_CHECKING:
    from .lower import ConvStep, PoolStep

# Mirrors SQZ_BLOCK and SQZ_PIXELS in firmware/src/runtime/conv_s8.c.
CONV_BLOCK = 16
CONV_PIXELS = 4


@dataclass(frozen=True)
class ConvKernel:
    """A C conv row kernel (sqz_conv_row_fn) and what the converter must know about it."""

    symbol: str
    scratch_symbol: str  # its C scratch-size function (same arguments as the portable one)
    arch: str
    supports: Callable[[ConvStep], bool]
    filter_row_len: Callable[[ConvStep], int]  # int8 values per output channel in flash
    filter_layout: Callable[[ConvStep], np.ndarray]  # the filter as stored, flat int8
    scratch_bytes: Callable[[ConvStep], int]
    description: str
    packed: bool = False  # reads an sqz_packed_filter (converter.packing), not int8 rows
    sources: tuple[str, ...] = ()  # the C/asm files it needs, relative to firmware/src
    # Its sqz_conv_rows_fn (several output rows per call), or None: one row per call.
    rows_symbol: str | None = None
    # Packed kernels: decoded blocks larger than the least scratch's (channels), most first;
    # the kernel takes the block from the scratch it is given (ConvStep.decode_block).
    blocks: Callable[[ConvStep], list[int]] | None = None
    least_block: Callable[[ConvStep], int] | None = None  # the block of the least scratch
    # Relative instructions per weight decoded in a call and per input value re-widened per
    # block: passes.choose_rows ranks its moves by them. Tuned by measurement (below).
    costs: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class PoolKernel:
    symbol: str
    arch: str
    kind: str  # "max" | "avg"
    supports: Callable[[PoolStep], bool]
    description: str
    push: bool = False  # an sqz_pool_push_fn (called per input row), else an sqz_pool_row_fn
    sources: tuple[str, ...] = ("runtime/pool_s8.c",)


# --- portable -----------------------------------------------------------------------------------

def _pointwise(s: ConvStep) -> bool:
    f = s.filter_dims
    return f.h == 1 and f.w == 1


def _uses_patches(s: ConvStep) -> bool:
    """Undilated k x k filters go through zero-padded patches (sqz_conv_s8_row)."""
    return not _pointwise(s) and s.dilation == (1, 1)


def _portable_row_len(s: ConvStep) -> int:
    """Mirrors sqz_conv_s8_filter_row_len."""
    f = s.filter_dims
    taps = f.h * f.w * f.c
    return -(-taps // CONV_BLOCK) * CONV_BLOCK if _uses_patches(s) else taps


def _portable_scratch(s: ConvStep) -> int:
    """Mirrors sqz_conv_s8_scratch_size: the int16-widened input one output row needs."""
    f = s.filter_dims
    if _pointwise(s):
        return 2 * CONV_PIXELS * s.input_dims.c
    if _uses_patches(s):
        return 2 * CONV_PIXELS * _portable_row_len(s)
    width = (s.output_dims.w - 1) * s.stride[1] + (f.w - 1) * s.dilation[1] + 1
    return 2 * f.h * width * s.input_dims.c


def ohwi_rows(s: ConvStep, row_len: int) -> np.ndarray:
    """The filter as OHWI rows, each zero-padded to row_len values, flat."""
    f = s.filter_dims
    w = np.frombuffer(s.filter, np.int8).reshape(f.n, f.h * f.w * f.c)
    pad = row_len - w.shape[1]
    return (np.pad(w, ((0, 0), (0, pad))) if pad else w).reshape(-1)


PORTABLE_CONV = ConvKernel(
    symbol="sqz_conv_s8_row", scratch_symbol="sqz_conv_s8_scratch_size", arch=PORTABLE,
    supports=lambda s: True,
    filter_row_len=_portable_row_len,
    filter_layout=lambda s: ohwi_rows(s, _portable_row_len(s)),
    scratch_bytes=_portable_scratch,
    description="portable C: int16-widened 4-pixel groups",
    sources=("runtime/conv_s8.c",),
)

# Mirror SQZ_MAX_ROWS_PER_CALL and SQZ_MAX_CALL_WINDOW_ROWS (firmware/include/sqz/kernels.h).
MAX_ROWS_PER_CALL = 16
MAX_CALL_WINDOW_ROWS = 64


def max_rows_per_call(s: ConvStep) -> int:
    """The most output rows one call of a rows kernel may make (the node adapter's bounds)."""
    return max(1, min(MAX_ROWS_PER_CALL, MAX_CALL_WINDOW_ROWS // s.filter_dims.h,
                      s.output_dims.h))


# Mirror SQZ_PACKED_BLOCK_BYTES (firmware/src/runtime/packed_s8.c) and SQZ_PACKED_MAX_BLOCK
# (runtime/packed_decode.h).
PACKED_BLOCK_BYTES = 4096
PACKED_MAX_BLOCK = 64


def packed_block(s: ConvStep) -> int:
    """Mirrors sqz_conv_s8_packed_block: output channels decoded at a time."""
    block = max(1, PACKED_BLOCK_BYTES // _portable_row_len(s))
    return min(block, PACKED_MAX_BLOCK, s.filter_dims.n)


def _packed_scratch(s: ConvStep) -> int:
    """Mirrors sqz_conv_s8_packed_scratch_size: the decoded block, then the dense scratch;
    more when the converter chose a larger block (s.decode_block: block_in() in the C finds
    it from the scratch size)."""
    block = (max(s.decode_block, packed_block(s)) * _portable_row_len(s) + 3) // 4 * 4
    return block + _portable_scratch(s)


def _packed_blocks(s: ConvStep) -> list[int]:
    """Larger blocks worth offering, most first."""
    out = {min(s.filter_dims.n, b) for b in (PACKED_MAX_BLOCK, 32, 16)}
    return sorted((b for b in out if b > packed_block(s)), reverse=True)


def _no_dense_layout(s: ConvStep) -> np.ndarray:
    raise TypeError(f"{s.name}: a packed kernel reads the packed stream, not int8 rows")


PORTABLE_PACKED_CONV = ConvKernel(
    symbol="sqz_conv_s8_packed_row", scratch_symbol="sqz_conv_s8_packed_scratch_size",
    arch=PORTABLE, supports=lambda s: s.packed is not None,
    filter_row_len=_portable_row_len, filter_layout=_no_dense_layout,
    scratch_bytes=_packed_scratch,
    description="portable C, packed weights decoded a block of channels at a time",
    packed=True, sources=("runtime/packed_s8.c", "runtime/conv_s8.c"),
    rows_symbol="sqz_conv_s8_packed_rows", blocks=_packed_blocks, least_block=packed_block,
    # SqueezeNet 1.1 at 224, compressed, callgrind: 721.3 M instructions at 3:2, 725.1 M at
    # 2:2, 739.4 M at 4:2, 765.0 M at 8:1 (586.1 M with plain filters).
    costs=(3, 2),
)

PORTABLE_POOLS = (
    PoolKernel("sqz_max_pool_s8_push", PORTABLE, "max", lambda s: True, "portable C, push",
               push=True),
    PoolKernel("sqz_max_pool_s8_row", PORTABLE, "max", lambda s: True, "portable C"),
    PoolKernel("sqz_avg_pool_s8_row", PORTABLE, "avg", lambda s: True, "portable C"),
)

# Every node's adapter (firmware/include/sqz/runtime.h) and the files it needs, by node op:
# a firmware or an export needs the executor, these and its kernels' sources, nothing else.
RUNTIME_CORE = ("runtime/exec.c", "runtime/status.c")
NODE_ADAPTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CONV": ("sqz_node_conv", ("runtime/conv_s8.c",)),
    "MAX_POOL": ("sqz_node_pool", ("runtime/pool_s8.c",)),
    "AVG_POOL": ("sqz_node_pool", ("runtime/pool_s8.c",)),
    "MAX_POOL_PUSH": ("sqz_node_pool_push", ("runtime/pool_s8.c",)),
    "MEAN": ("sqz_node_mean", ("runtime/mean_s8.c",)),
    "CONCAT": ("sqz_node_concat", ("runtime/concat_s8.c",)),
    "ADD": ("sqz_node_add", ("runtime/add_s8.c",)),
    "REQUANTIZE": ("sqz_node_requantize", ("runtime/requantize_s8.c",)),
    "SOFTMAX": ("sqz_node_softmax", ("runtime/softmax_s8.c",)),
    "FULLY_CONNECTED": ("sqz_node_fully_connected", ("runtime/fully_connected_s8.c",)),
    "LOAD_CONST": ("sqz_node_load_const", ()),
}

# Variants per architecture, most preferred first; the portable kernels close every list.
CONV_VARIANTS: dict[str, tuple[ConvKernel, ...]] = {PORTABLE: ()}
POOL_VARIANTS: dict[str, tuple[PoolKernel, ...]] = {PORTABLE: ()}

_CONV_BY_SYMBOL = {k.symbol: k for k in (PORTABLE_CONV, PORTABLE_PACKED_CONV)}
_POOL_BY_SYMBOL = {k.symbol: k for k in PORTABLE_POOLS}


def register_conv(kernel: ConvKernel) -> None:
    CONV_VARIANTS.setdefault(kernel.arch, ())
    CONV_VARIANTS[kernel.arch] += (kernel,)
    _CONV_BY_SYMBOL[kernel.symbol] = kernel


def register_pool(kernel: PoolKernel) -> None:
    POOL_VARIANTS.setdefault(kernel.arch, ())
    POOL_VARIANTS[kernel.arch] += (kernel,)
    _POOL_BY_SYMBOL[kernel.symbol] = kernel


def conv_kernel(symbol: str) -> ConvKernel:
    return _CONV_BY_SYMBOL[symbol]


def pool_kernel(symbol: str) -> PoolKernel:
    return _POOL_BY_SYMBOL[symbol]


def select_conv(s: ConvStep, arch: str) -> ConvKernel:
    """Packed filters take a packed kernel, dense ones a dense kernel."""
    packed = s.packed is not None
    for k in CONV_VARIANTS.get(arch, ()):
        if k.packed == packed and k.supports(s):
            return k
    return PORTABLE_PACKED_CONV if packed else PORTABLE_CONV


def select_pool(s: PoolStep, arch: str) -> PoolKernel:
    """Max pools take the push form (streaming needs no ring of window rows before them)."""
    for k in (*POOL_VARIANTS.get(arch, ()), *PORTABLE_POOLS):
        if k.kind == s.kind and k.push == (s.kind == "max") and k.supports(s):
            return k
    raise AssertionError(f"no pool kernel for {s.name}")


# Architecture variants register themselves (after everything above is defined: they import it).
from . import kernels_armv7em, kernels_esp32s3, kernels_mve  # noqa: E402,F401

"""What a kernel variant declares: the C symbols it provides and the facts the converter must
know about them (which layers it takes, its weight layout, its scratch size).

Each architecture module of this package (portable.py, armv7em.py, esp32s3.py, one per folder
of firmware/src/arch/) lists its kernels in `KERNELS`; the registry (converter.arch) collects
them. The layer a kernel function receives is an ir.steps step: a kernel reads its fields, and
the IR refers to kernels by symbol, so this package never imports the IR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# An ir.steps.ConvStep / PoolStep: the kernels read their fields (see the module docstring).
ConvLayer = Any
PoolLayer = Any


@dataclass(frozen=True)
class ConvKernel:
    """A C conv row kernel (sqz_conv_row_fn) and what the converter must know about it."""

    symbol: str
    scratch_symbol: str  # its C scratch-size function (same arguments as the portable one)
    arch: str
    # Why the kernel cannot run a layer exactly ("dilated filter"), or None when it can: the
    # report names the reason of every layer that falls back to the portable kernel.
    refuses: Callable[[ConvLayer], str | None]
    filter_row_len: Callable[[ConvLayer], int]  # int8 values per output channel in flash
    filter_layout: Callable[[ConvLayer], np.ndarray]  # the filter as stored, flat int8
    scratch_bytes: Callable[[ConvLayer], int]
    description: str
    # The least scratch it runs with (its C *_min_scratch_size), for kernels that take blocks
    # as large as the scratch they are given; None: exactly scratch_bytes (--scratch least).
    min_scratch_bytes: Callable[[ConvLayer], int] | None = None
    packed: bool = False  # reads an sqz_packed_filter (converter.packing), not int8 rows
    sources: tuple[str, ...] = ()  # the C/asm files it needs, relative to firmware/src
    # Its sqz_conv_rows_fn (several output rows per call), or None: one row per call.
    rows_symbol: str | None = None
    # Packed kernels: decoded blocks larger than the least scratch's (channels), most first;
    # the kernel takes the block from the scratch it is given (ConvLayer.decode_block).
    blocks: Callable[[ConvLayer], list[int]] | None = None
    least_block: Callable[[ConvLayer], int] | None = None  # the block of the least scratch
    # Relative instructions per weight decoded in a call and per input value re-widened per
    # block: passes.choose_rows ranks its moves by them. Tuned by measurement (below).
    costs: tuple[int, int] = (1, 1)
    # Its filter layout carries each channel's bias and requantization (the PIE records), so
    # the layer stores no separate bias, multiplier and shift arrays (NULL in the schedule).
    folds_quant: bool = False
    # Packed kernels that fold the quantization: the records (bias and requantization) stored
    # in flash beside the packed stream and copied in front of each decoded block, flat int32
    # (sqz_packed_filter.records), and, where one record serves every channel, the channels'
    # biases its first word gains (.record_bias), else None.
    records: Callable[[ConvLayer], tuple[np.ndarray, np.ndarray | None]] | None = None
    # Packed kernels: zero bytes after the packed stream's own pad, for a decoder that reads
    # further (the S3's aligned word pairs), stored with the stream and counted in its flash;
    # and the bytes its filter struct takes beyond sqz_packed_filter's (ir.packing's
    # HEADER_BYTES): sqz_packed_filter_records' pointers to its records.
    stream_slack: int = 0
    header_extra: int = 0
    # Takes grouped and depthwise layers (a filter depth below the input depth), and only
    # those: the dense kernels read every input channel for every output channel.
    grouped: bool = False

    def supports(self, s: ConvLayer) -> bool:
        return self.refuses(s) is None


def no_dense_layout(s: ConvLayer) -> np.ndarray:
    """The filter_layout of a packed kernel: it reads the packed stream, never int8 rows."""
    raise TypeError(f"{s.name}: a packed kernel reads the packed stream, not int8 rows")


@dataclass(frozen=True)
class PoolKernel:
    symbol: str
    arch: str
    kind: str  # "max" | "avg"
    refuses: Callable[[PoolLayer], str | None]  # as ConvKernel.refuses
    description: str
    push: bool = False  # an sqz_pool_push_fn (called per input row), else an sqz_pool_row_fn
    sources: tuple[str, ...] = ("runtime/pool_s8.c",)

    def supports(self, s: PoolLayer) -> bool:
        return self.refuses(s) is None

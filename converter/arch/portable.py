"""The portable C kernels (firmware/src/runtime/): the reference and the fallback of every
architecture, able to run every layer."""

from __future__ import annotations

import numpy as np

from .kernel import ConvKernel, ConvLayer, PoolKernel, no_dense_layout

ARCH = "portable"
# The portable kernels build and run on the host (firmware/tools/runner.c, the host port).
HOST_RUNNABLE = True

# Mirrors SQZ_BLOCK and SQZ_PIXELS in firmware/src/runtime/conv_s8.c.
CONV_BLOCK = 16
CONV_PIXELS = 4

def _pointwise(s: ConvLayer) -> bool:
    f = s.filter_dims
    return f.h == 1 and f.w == 1


def _uses_patches(s: ConvLayer) -> bool:
    """Undilated k x k filters go through zero-padded patches (sqz_conv_s8_row)."""
    return not _pointwise(s) and s.dilation == (1, 1)


def _portable_row_len(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_filter_row_len."""
    f = s.filter_dims
    taps = f.h * f.w * f.c
    return -(-taps // CONV_BLOCK) * CONV_BLOCK if _uses_patches(s) else taps


def _portable_scratch(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_scratch_size: the int16-widened input one output row needs."""
    f = s.filter_dims
    if _pointwise(s):
        return 2 * CONV_PIXELS * s.input_dims.c
    if _uses_patches(s):
        return 2 * CONV_PIXELS * _portable_row_len(s)
    width = (s.output_dims.w - 1) * s.stride[1] + (f.w - 1) * s.dilation[1] + 1
    return 2 * f.h * width * s.input_dims.c


def ohwi_rows(s: ConvLayer, row_len: int) -> np.ndarray:
    """The filter as OHWI rows, each zero-padded to row_len values, flat."""
    f = s.filter_dims
    w = np.frombuffer(s.filter, np.int8).reshape(f.n, f.h * f.w * f.c)
    pad = row_len - w.shape[1]
    return (np.pad(w, ((0, 0), (0, pad))) if pad else w).reshape(-1)


PORTABLE_CONV = ConvKernel(
    symbol="sqz_conv_s8_row", scratch_symbol="sqz_conv_s8_scratch_size", arch=ARCH,
    refuses=lambda s: None,
    filter_row_len=_portable_row_len,
    filter_layout=lambda s: ohwi_rows(s, _portable_row_len(s)),
    scratch_bytes=_portable_scratch,
    description="portable C: int16-widened 4-pixel groups",
    sources=("runtime/conv_s8.c",),
)

def grouped_layout(s: ConvLayer) -> np.ndarray:
    """Tap-major (sqz_conv_s8_grouped_row): each tap's values for every output channel
    together, [kh][kw][filter c][out c], from the step's OHWI filter."""
    f = s.filter_dims
    w = np.frombuffer(s.filter, np.int8).reshape(f.n, f.h, f.w, f.c)
    return np.ascontiguousarray(w.transpose(1, 2, 3, 0)).reshape(-1)


def _grouped_scratch(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_grouped_scratch_size: int32 accumulators, a zero-point pixel."""
    return 4 * s.output_dims.c + -(-s.input_dims.c // 4) * 4


PORTABLE_GROUPED_CONV = ConvKernel(
    symbol="sqz_conv_s8_grouped_row", scratch_symbol="sqz_conv_s8_grouped_scratch_size",
    arch=ARCH, refuses=lambda s: None,
    filter_row_len=lambda s: s.filter_dims.h * s.filter_dims.w * s.filter_dims.c,
    filter_layout=grouped_layout, scratch_bytes=_grouped_scratch,
    description="portable C, grouped/depthwise: a tap at a time over every channel",
    sources=("runtime/conv_grouped_s8.c",), grouped=True,
)

# Mirrors SQZ_DW_MAX_TAPS and SQZ_DW_RECORD (firmware/src/runtime/depthwise.h).
DW_MAX_TAPS = 32
DW_RECORD = 16  # {bias, M, left + 1, right} as int32
# floor((2x * M + 2^31) / 2^32) is TFLite's SaturatingRoundingDoublingHighMul(x, M) while 2x
# fits in 32 bits, i.e. |x| < 2^30.
DW_ACC_LIMIT = 1 << 30


def depthwise_records(s: ConvLayer) -> np.ndarray | str:
    """Each channel's {bias, M, left + 1, right} (runtime/depthwise.h), or why the record
    kernels cannot run the layer exactly: the accumulator, at most |bias| + 128 * sum(|w|) for
    int8 inputs, times 2^left must stay below 2^30 (then nothing in the output stage overflows
    either)."""
    f = s.filter_dims
    w = np.abs(np.frombuffer(s.filter, np.int8).astype(np.int64)).reshape(f.n, -1).sum(axis=1)
    rows = []
    for ch in range(f.n):
        shift = s.shift[ch]
        left, right = max(shift, 0), max(-shift, 0)
        # left < 30 also keeps the C's shift by left + 1 below 32 (a zero channel would
        # pass the bound with any left).
        if left >= 30 or (abs(s.bias[ch]) + 128 * int(w[ch])) << left >= DW_ACC_LIMIT:
            return f"channel {ch}'s accumulator may reach 2^30 after its left shift"
        if right > 31:
            return f"channel {ch}'s right shift {right} is above 31"
        rows.append((s.bias[ch], s.multiplier[ch], left + 1, right))
    return np.asarray(rows, dtype=np.int32)


def depthwise_refuses(s: ConvLayer) -> str | None:
    f = s.filter_dims
    if not (f.c == 1 and f.n == s.input_dims.c):
        return "not depthwise with depth multiplier 1"
    if f.h * f.w > DW_MAX_TAPS:
        return f"more than {DW_MAX_TAPS} taps"
    records = depthwise_records(s)
    return records if isinstance(records, str) else None


def depthwise_layout(s: ConvLayer) -> np.ndarray:
    """The records, then the taps tap-major (the grouped kernel's order)."""
    records = depthwise_records(s)
    if isinstance(records, str):
        raise ValueError(f"{s.name}: {records}")
    return np.concatenate([records.astype("<i4").view(np.int8).reshape(-1), grouped_layout(s)])


def depthwise_row_len(s: ConvLayer) -> int:
    return DW_RECORD + s.filter_dims.h * s.filter_dims.w


def depthwise_scratch(s: ConvLayer) -> int:
    """Mirrors sqz_depthwise_s8_scratch_size: one zero-point pixel."""
    return -(-s.input_dims.c // 4) * 4


PORTABLE_DEPTHWISE = ConvKernel(
    symbol="sqz_depthwise_s8_row", scratch_symbol="sqz_depthwise_s8_scratch_size", arch=ARCH,
    refuses=depthwise_refuses, filter_row_len=depthwise_row_len,
    filter_layout=depthwise_layout, scratch_bytes=depthwise_scratch,
    description="portable C depthwise: 4 channels at a time, 32-bit output stage (records)",
    sources=("runtime/depthwise_s8.c",), folds_quant=True, grouped=True,
)

# Mirrors SQZ_MAX_FILTER_ROWS (firmware/include/sqz/kernels.h): the most filter or pool window
# rows any row kernel takes; the lowering refuses taller ones.
MAX_FILTER_ROWS = 64

# Mirror SQZ_MAX_ROWS_PER_CALL and SQZ_MAX_CALL_WINDOW_ROWS (firmware/include/sqz/kernels.h).
MAX_ROWS_PER_CALL = 16
MAX_CALL_WINDOW_ROWS = 64


def max_rows_per_call(s: ConvLayer) -> int:
    """The most output rows one call of a rows kernel may make (the node adapter's bounds)."""
    return max(1, min(MAX_ROWS_PER_CALL, MAX_CALL_WINDOW_ROWS // s.filter_dims.h,
                      s.output_dims.h))


# Mirror SQZ_PACKED_BLOCK_BYTES (firmware/src/runtime/packed_s8.c) and SQZ_PACKED_MAX_BLOCK
# (runtime/packed_decode.h).
PACKED_BLOCK_BYTES = 4096
PACKED_MAX_BLOCK = 64


def packed_block(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_packed_block: output channels decoded at a time."""
    block = max(1, PACKED_BLOCK_BYTES // _portable_row_len(s))
    return min(block, PACKED_MAX_BLOCK, s.filter_dims.n)


def _packed_scratch(s: ConvLayer) -> int:
    """Mirrors sqz_conv_s8_packed_scratch_size: the decoded block, then the dense scratch;
    more when the converter chose a larger block (s.decode_block: block_in() in the C finds
    it from the scratch size)."""
    block = (max(s.decode_block, packed_block(s)) * _portable_row_len(s) + 3) // 4 * 4
    return block + _portable_scratch(s)


def larger_blocks(s: ConvLayer, least: int) -> list[int]:
    """Blocks worth offering a kernel on the shared driver (runtime/packed_decode.h) beyond
    its least, most first."""
    out = {min(s.filter_dims.n, b) for b in (PACKED_MAX_BLOCK, 32, 16)}
    return sorted((b for b in out if b > least), reverse=True)


def _packed_blocks(s: ConvLayer) -> list[int]:
    return larger_blocks(s, packed_block(s))


PORTABLE_PACKED_CONV = ConvKernel(
    symbol="sqz_conv_s8_packed_row", scratch_symbol="sqz_conv_s8_packed_scratch_size",
    arch=ARCH, refuses=lambda s: None if s.packed is not None else "plain int8 weights",
    filter_row_len=_portable_row_len, filter_layout=no_dense_layout,
    scratch_bytes=_packed_scratch,
    description="portable C, packed weights decoded a block of channels at a time",
    packed=True, sources=("runtime/packed_s8.c", "runtime/conv_s8.c"),
    rows_symbol="sqz_conv_s8_packed_rows", blocks=_packed_blocks, least_block=packed_block,
    # SqueezeNet 1.1 at 224, compressed, callgrind: 721.3 M instructions at 3:2, 725.1 M at
    # 2:2, 739.4 M at 4:2, 765.0 M at 8:1 (586.1 M with plain filters).
    costs=(3, 2),
)

PORTABLE_POOLS = (
    PoolKernel("sqz_max_pool_s8_push", ARCH, "max", lambda s: None, "portable C, push",
               push=True),
    PoolKernel("sqz_max_pool_s8_row", ARCH, "max", lambda s: None, "portable C"),
    PoolKernel("sqz_avg_pool_s8_row", ARCH, "avg", lambda s: None, "portable C"),
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
    # Run by the executor itself (exec.c); a camera input's feed is in camera_s8.c.
    "INPUT": ("NULL", ()),
}

KERNELS = (PORTABLE_CONV, PORTABLE_PACKED_CONV, PORTABLE_DEPTHWISE, PORTABLE_GROUPED_CONV,
           *PORTABLE_POOLS)

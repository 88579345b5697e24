"""The lowered IR: the schedule's steps, each an op with every integer its C kernel needs.

Frozen dataclasses, one per kind of kernel call; converter.ir.lower makes them from the graph,
the passes (converter.passes) rewrite them (kernel choice, packing, concat in place), and
codegen renders them. A conv or pool step names its C kernel by symbol; the kernel's facts
(weight layout, scratch size) come from the registry (converter.arch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import arch
from ..arch.portable import PORTABLE_CONV
from . import graph as ir
from . import packing
from .quantmath import multiply_by_quantized_multiplier

QMIN, QMAX = -128, 127
# Mirrors SQZ_ADD_TABLE_LIMIT (runtime/add_s8.c): the sum of two table values stays below 2^30,
# so doubling it for the high multiply fits in 32 bits.
ADD_TABLE_LIMIT = 1 << 29


@dataclass(frozen=True)
class Dims:
    n: int
    h: int
    w: int
    c: int

    @staticmethod
    def of(shape: tuple[int, ...]) -> Dims:
        """NHWC view of a tensor shape: lower ranks put their last axis in c."""
        s = tuple(int(d) for d in shape)
        if len(s) == 4:
            return Dims(*s)
        if len(s) == 3:
            return Dims(s[0], 1, s[1], s[2])
        if len(s) == 2:
            return Dims(s[0], 1, 1, s[1])
        if len(s) == 1:
            return Dims(1, 1, 1, s[0])
        if len(s) == 0:
            return Dims(1, 1, 1, 1)
        raise ValueError(f"rank {len(s)} tensors are not supported")

    @property
    def size(self) -> int:
        return self.n * self.h * self.w * self.c

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.n, self.h, self.w, self.c)


@dataclass(frozen=True)
class Step:
    """One entry of the schedule. `reads`/`writes` are IR tensor indices (for the planner)."""

    name: str  # the output tensor's name, for reports
    op_index: int  # index of the originating op in the .tflite
    reads: tuple[int, ...]
    writes: tuple[int, ...]

    @property
    def macs(self) -> int:
        return 0

    @property
    def weight_bytes(self) -> int:
        return 0

    def scratch_bytes(self) -> int:
        """Mirrors the C kernel's *_scratch_size(); 0 when it needs none."""
        return 0


@dataclass(frozen=True)
class KeptPlain:
    """A filter packing would shrink, kept plain int8 because the packed kernel's decoded
    block would take the peak arena past its bound (passes.pack_within)."""

    encoding: packing.Encoding = field(repr=False)
    flash_saving: int  # weight bytes (filter, bias, requantization) packing would save
    arena_growth: int  # bytes the arena grew when this filter was tried packed
    arena_bound: int = 0  # the arena packing had to stay within: plain filters', or the room


@dataclass(frozen=True)
class ConvStep(Step):
    input: int
    output: int
    input_dims: Dims
    filter_dims: Dims
    output_dims: Dims
    filter: bytes = field(repr=False)
    bias: tuple[int, ...] = field(repr=False)  # folded: bias + input_offset * sum(filter)
    multiplier: tuple[int, ...] = field(repr=False)
    shift: tuple[int, ...] = field(repr=False)
    input_offset: int
    output_offset: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    act_min: int
    act_max: int
    output_pixel_stride: int  # > output channels when writing a slice of a concat in place
    output_channel_offset: int = 0  # where that slice starts
    kernel: str = PORTABLE_CONV.symbol  # the C row kernel (converter.arch)
    packed: packing.Encoding | None = field(default=None, repr=False)  # passes.pack_weights
    rows_per_call: int = 1  # > 1 only for a kernel with a rows entry (passes.choose_rows)
    decode_block: int = 0  # packed: channels decoded per block, 0 = the kernel's least
    kept_plain: KeptPlain | None = None  # packable, but packing would raise the arena
    # Scratch to give the kernel, 0 = its full scratch_bytes: a kernel with min_scratch_bytes
    # works in smaller blocks with less (passes.least_scratch, --scratch least).
    scratch_limit: int = 0

    @property
    def macs(self) -> int:
        f = self.filter_dims
        return self.output_dims.size * f.h * f.w * f.c

    @property
    def groups(self) -> int:
        """Input channel groups: 1 for a dense conv, the input depth for a depthwise one."""
        return self.input_dims.c // self.filter_dims.c

    @property
    def grouped(self) -> bool:
        return self.groups > 1

    @property
    def quant_per_tensor(self) -> bool:
        """Packed layers store one multiplier and shift when every channel has the same."""
        return (self.packed is not None and len(set(self.multiplier)) == 1
                and len(set(self.shift)) == 1)

    @property
    def filter_bytes(self) -> int:
        if self.packed is not None:
            k = arch.conv_kernel(self.kernel)
            return self.packed.nbytes + k.stream_slack + k.header_extra
        return self.filter_values().size

    @property
    def weight_bytes(self) -> int:
        k = arch.conv_kernel(self.kernel)
        if k.folds_quant:  # bias and requantization are in records, inside the filter or
            # (packed) beside its stream
            if not k.records:
                return self.filter_bytes
            recs, biases = k.records(self)
            return self.filter_bytes + 4 * (len(recs) + (0 if biases is None else len(biases)))
        quant = 1 if self.quant_per_tensor else len(self.multiplier)
        return self.filter_bytes + 4 * len(self.bias) + 5 * quant

    def scratch_bytes(self) -> int:
        """Mirrors the chosen C kernel's scratch-size function (one row call), or less where
        scratch_limit asks for it and the kernel can work with less."""
        k = arch.conv_kernel(self.kernel)
        full = k.scratch_bytes(self)
        if self.scratch_limit and k.min_scratch_bytes is not None:
            return max(k.min_scratch_bytes(self), min(full, self.scratch_limit))
        return full

    def filter_values(self) -> np.ndarray:
        """The filter as laid out in flash for the chosen kernel variant, flat int8."""
        return arch.conv_kernel(self.kernel).filter_layout(self)


@dataclass(frozen=True)
class PoolStep(Step):
    kind: str  # "max" | "avg"
    input: int
    output: int
    input_dims: Dims
    filter_hw: tuple[int, int]
    output_dims: Dims
    stride: tuple[int, int]
    padding: tuple[int, int]
    act_min: int
    act_max: int
    kernel: str = ""  # the C kernel; "" until a kernel is selected (converter.arch)

    def __post_init__(self) -> None:
        if not self.kernel:
            object.__setattr__(self, "kernel", arch.select_pool(self, "portable").symbol)

    @property
    def push(self) -> bool:
        """Called once per input row, folding it into the output rows it belongs to."""
        return arch.pool_kernel(self.kernel).push


@dataclass(frozen=True)
class MeanStep(Step):
    input: int
    output: int
    input_dims: Dims
    output_dims: Dims
    input_offset: int
    output_offset: int
    multiplier: int
    shift: int

    def scratch_bytes(self) -> int:
        return 4 * self.input_dims.c


@dataclass(frozen=True)
class ConcatPart:
    input: int
    input_dims: Dims
    axis_offset: int
    requantize: bool
    input_offset: int
    output_offset: int
    multiplier: int
    shift: int


@dataclass(frozen=True)
class ConcatStep(Step):
    """One kernel call per part; parts written in place by their producer are dropped."""

    output: int
    axis: int  # in NHWC terms
    output_dims: Dims
    parts: tuple[ConcatPart, ...]


@dataclass(frozen=True)
class ConcatPartStep(Step):
    """One part of a concatenation copied (or requantized) into its slice of the output: what
    remains of a ConcatStep once its in-place parts are gone (passes.split_concats)."""

    output: int
    axis: int
    output_dims: Dims
    part: ConcatPart


@dataclass(frozen=True)
class AddStep(Step):
    input1: int
    input2: int
    output: int
    dims: Dims
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int

    def tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Each input's rescaled value for every int8 input (index x + 128), as the reference
        computes it: MultiplyByQuantizedMultiplierSmallerThanOneExp((x + offset) << 20). The
        C reads them instead of two 64-bit requantizations per element; the output stage then
        runs in 32 bits (sqz_add_s8 in runtime/add_s8.c), which is exact while each table
        stays below 2^29 in magnitude and the output's right shift is at most 31. None where
        that does not hold (the general path runs)."""
        if -self.output_shift > 31 or self.output_shift > 0:
            return None
        x = np.arange(-128, 128)
        out = []
        for offset, mult, shift in ((self.input1_offset, self.input1_multiplier,
                                     self.input1_shift),
                                    (self.input2_offset, self.input2_multiplier,
                                     self.input2_shift)):
            table = np.array([multiply_by_quantized_multiplier(int(v + offset) << self.left_shift,
                                                               mult, shift) for v in x],
                             dtype=np.int64)
            if np.abs(table).max() >= ADD_TABLE_LIMIT:
                return None
            out.append(table.astype(np.int32))
        return out[0], out[1]

    @property
    def weight_bytes(self) -> int:
        return 2 * 256 * 4 if self.tables() is not None else 0


@dataclass(frozen=True)
class SoftmaxStep(Step):
    input: int
    output: int
    dims: Dims
    input_multiplier: int
    input_left_shift: int
    diff_min: int


@dataclass(frozen=True)
class FullyConnectedStep(Step):
    input: int
    output: int
    input_dims: Dims  # n rows x c features
    filter_dims: Dims  # n units x c features
    output_dims: Dims
    filter: bytes = field(repr=False)
    bias: tuple[int, ...] = field(repr=False)
    scale_mantissa: tuple[int, ...] = field(repr=False)
    scale_exponent: tuple[int, ...] = field(repr=False)
    filter_offset: int
    output_offset: int
    act_min: int
    act_max: int

    @property
    def macs(self) -> int:
        return self.input_dims.n * self.filter_dims.n * self.filter_dims.c

    @property
    def weight_bytes(self) -> int:
        return len(self.filter) + 4 * len(self.bias) + 10 * len(self.scale_mantissa)


@dataclass(frozen=True)
class RequantizeStep(Step):
    input: int
    output: int
    dims: Dims
    input_offset: int
    output_offset: int
    multiplier: int
    shift: int


@dataclass(frozen=True)
class ConstStep(Step):
    """Copies a constant activation operand (e.g. a constant ADD input) into the arena."""

    output: int
    data: bytes = field(repr=False)

    @property
    def weight_bytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class InputStep(Step):
    """The model's input arriving row by row (passes.with_input_step): call k puts input row k
    into its ring, so the pull scheduler places it just before the first call that reads the
    row and the ring keeps only the rows still to be read. The executor runs it itself
    (sqz_exec_continue): it waits there until the row has arrived. With `camera`, a row is
    made on the device from camera frame rows (converter.ir.camera)."""

    output: int
    dims: Dims
    camera: Any = None  # CameraParams (converter.ir.camera) or None

    @property
    def row_bytes(self) -> int:
        return self.dims.w * self.dims.c


@dataclass(frozen=True)
class Lowered:
    """The schedule plus the tensor facts later stages need."""

    graph: ir.Graph
    steps: tuple[Step, ...]
    aliases: dict[int, int]  # tensor -> tensor it shares bytes with (RESHAPE)
    input: int
    output: int
    logits: int | None  # tensor feeding a final SOFTMAX
    # The peak arena with every filter plain int8, when packing was decided against it
    # (passes.pack_within; 0 otherwise): the report says what packing added to it.
    plain_arena: int = 0

    @property
    def any_packed(self) -> bool:
        """Some filter is stored packed (passes.pack_weights, passes.pack_within)."""
        return any(getattr(s, "packed", None) is not None for s in self.steps)

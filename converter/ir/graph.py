"""The typed, frozen intermediate representation of an int8 TFLite graph.

The reader (`converter.tflite_reader`) is the only place that knows the flatbuffer schema; every
later stage (lowering, passes, planner, code generation) works on these classes. Ops are distinct
classes chosen by the builtin opcode, so a pass matches on `isinstance`, never on names or on a
dict of options.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class DType(enum.Enum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    INT32 = "int32"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT64 = "int64"
    BOOL = "bool"
    OTHER = "other"

    @property
    def numpy(self) -> np.dtype:
        if self is DType.OTHER:
            raise ValueError("tensor type has no numpy equivalent")
        return np.dtype(self.value)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize


class Padding(enum.Enum):
    SAME = "same"
    VALID = "valid"


class Activation(enum.Enum):
    NONE = "none"
    RELU = "relu"
    RELU6 = "relu6"
    RELU_N1_TO_1 = "relu_n1_to_1"


@dataclass(frozen=True)
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    Scales are the float32 values stored in the model (held as Python floats, which represent
    float32 exactly), because the reference derives its integer multipliers from exactly those.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def single(self) -> tuple[float, int]:
        """Scale and zero point of a per-tensor quantized tensor."""
        if self.per_channel:
            raise ValueError("per-channel quantization has no single scale")
        return self.scale[0], self.zero_point[0]


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor of the graph. `data` holds the bytes of a constant, None for activations."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Quant | None
    data: bytes | None = field(default=None, repr=False)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.num_elements * self.dtype.itemsize

    def array(self) -> np.ndarray:
        """The constant's values, read-only, in the tensor's shape."""
        if self.data is None:
            raise ValueError(f"tensor {self.name!r} is not a constant")
        arr = np.frombuffer(self.data, dtype=self.dtype.numpy).reshape(self.shape)
        return arr


@dataclass(frozen=True)
class Op:
    """Common part of every op: position in the graph and tensor indices."""

    index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Conv2D(Op):
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    padding: Padding
    activation: Activation


@dataclass(frozen=True)
class DepthwiseConv2D(Op):
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    depth_multiplier: int
    padding: Padding
    activation: Activation


@dataclass(frozen=True)
class Pool2D(Op):
    """The options both pooling ops share; only the subclasses appear in a graph."""

    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    padding: Padding
    activation: Activation


@dataclass(frozen=True)
class MaxPool2D(Pool2D):
    pass


@dataclass(frozen=True)
class AveragePool2D(Pool2D):
    pass


@dataclass(frozen=True)
class Mean(Op):
    axes: tuple[int, ...]
    keep_dims: bool


@dataclass(frozen=True)
class Concatenation(Op):
    axis: int
    activation: Activation


@dataclass(frozen=True)
class Add(Op):
    activation: Activation


@dataclass(frozen=True)
class Softmax(Op):
    beta: float


@dataclass(frozen=True)
class Reshape(Op):
    pass


@dataclass(frozen=True)
class FullyConnected(Op):
    activation: Activation
    keep_num_dims: bool


@dataclass(frozen=True)
class Pad(Op):
    """PAD: inputs (x, paddings), paddings a constant int32 [rank, 2] (before, after)."""


@dataclass(frozen=True)
class Quantize(Op):
    pass


@dataclass(frozen=True)
class Dequantize(Op):
    pass


@dataclass(frozen=True)
class Graph:
    """One subgraph of a model plus where it came from."""

    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    sha256: str
    source: str

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def producer(self, tensor_index: int) -> Op | None:
        for op in self.ops:
            if tensor_index in op.outputs:
                return op
        return None

    def consumers(self, tensor_index: int) -> list[Op]:
        return [op for op in self.ops if tensor_index in op.inputs]

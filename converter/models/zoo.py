"""Keras builders of the networks beyond SqueezeNet that users bring: MobileNet v1 and v2 (the
depthwise separable successors), and the MLPerf Tiny reference architectures ResNet-8 (image
classification, CIFAR-10) and DS-CNN (keyword spotting, a 49x10 single-channel input).
MobileNetV1 0.25 at 96x96 is MLPerf Tiny's visual wake words model.

Weights are seeded, never downloaded. Each layer's initializer is He-normal with a seed derived
from the builder's seed and the layer's name, like SqueezeNet's: a variance-preserving start,
so that an untrained network's activations keep their scale through every layer. (Keras's own
keras.applications builders with weights=None start from Glorot initializers under which a deep
MobileNet's activations shrink to about 1e-8: its output is constant, and its int8 SOFTMAX
cannot even be prepared.) Batch normalization layers are kept after each conv, as in the
papers; the TFLite converter folds them into the convs.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import keras


@dataclass(frozen=True)
class ZooModel:
    """A builtin network: its default input and classes, and the builder."""

    name: str
    input_shape: tuple[int, int, int]
    classes: int
    build: Callable[..., keras.Model]
    description: str


def _seed(seed: int, name: str) -> int:
    # crc32, not hash(): str hashes are salted per process.
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


class _Layers:
    """Conv, depthwise and dense layers with seeded He-normal kernels, each followed by batch
    normalization and an optional ReLU/ReLU6."""

    def __init__(self, seed: int):
        import keras

        self.k = keras
        self.seed = seed

    def init(self, name: str):
        return self.k.initializers.HeNormal(seed=_seed(self.seed, name))

    def conv(self, x, filters, kernel, name, strides=1, act="relu6", bn=True):
        x = self.k.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                 use_bias=not bn, kernel_initializer=self.init(name),
                                 name=name)(x)
        return self._post(x, name, act, bn)

    def depthwise(self, x, kernel, name, strides=1, act="relu6", multiplier=1):
        # He's fan-in is the taps of one channel: Keras's HeNormal would count every input
        # channel's (a depthwise kernel is kh x kw x c x m) and shrink the output c times.
        taps = kernel * kernel if isinstance(kernel, int) else kernel[0] * kernel[1]
        init = self.k.initializers.RandomNormal(stddev=math.sqrt(2.0 / taps),
                                                seed=_seed(self.seed, name))
        x = self.k.layers.DepthwiseConv2D(kernel, strides=strides, padding="same",
                                          depth_multiplier=multiplier, use_bias=False,
                                          depthwise_initializer=init, name=name)(x)
        return self._post(x, name, act, True)

    def _post(self, x, name, act, bn):
        if bn:
            x = self.k.layers.BatchNormalization(name=f"{name}_bn")(x)
        if act == "relu6":
            x = self.k.layers.ReLU(6.0, name=f"{name}_relu6")(x)
        elif act == "relu":
            x = self.k.layers.ReLU(name=f"{name}_relu")(x)
        return x

    def head(self, x, classes, softmax):
        x = self.k.layers.Dense(classes, kernel_initializer=self.init("logits"),
                                name="logits")(x)
        if softmax:
            x = self.k.layers.Softmax(name="softmax")(x)
        return x


def _channels(filters: float, alpha: float) -> int:
    """MobileNet's width multiplier, rounded to a multiple of 8 as in MobileNet v2's paper
    (never below 8, nor more than 10% under the exact value)."""
    value = filters * alpha
    out = max(8, int(value + 4) // 8 * 8)
    return out + 8 if out < 0.9 * value else out


# MobileNet v1: (pointwise filters, stride of the depthwise conv before it), paper Table 1.
_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
              (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1(input_shape=(96, 96, 3), classes=2, *, alpha=0.25, seed=0,
                 softmax=True) -> keras.Model:
    """MobileNet v1 (Howard et al. 2017) with width multiplier `alpha`. alpha 0.25 at 96x96
    with 2 classes is MLPerf Tiny's visual wake words model. Widths scale as Keras's (no
    rounding to 8), which is what that reference uses."""
    import keras

    L = _Layers(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = L.conv(inputs, int(32 * alpha), 3, "conv1", strides=2)
    for i, (filters, stride) in enumerate(_V1_BLOCKS, 1):
        x = L.depthwise(x, 3, f"conv_dw_{i}", strides=stride)
        x = L.conv(x, int(filters * alpha), 1, f"conv_pw_{i}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, L.head(x, classes, softmax), name="mobilenet_v1")


# MobileNet v2's inverted residual stages: (expansion t, channels c, repeats n, stride s),
# paper Table 2.
_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(input_shape=(96, 96, 3), classes=10, *, alpha=0.35, seed=0,
                 softmax=True) -> keras.Model:
    """MobileNet v2 (Sandler et al. 2018): inverted residuals with linear bottlenecks, a
    residual ADD wherever a block keeps its shape."""
    import keras

    L = _Layers(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = L.conv(inputs, _channels(32, alpha), 3, "conv1", strides=2)
    in_c = _channels(32, alpha)
    block = 0
    for t, c, n, s in _V2_STAGES:
        out_c = _channels(c, alpha)
        for r in range(n):
            stride = s if r == 0 else 1
            name = f"block_{block}"
            y = L.conv(x, in_c * t, 1, f"{name}_expand") if t != 1 else x
            y = L.depthwise(y, 3, f"{name}_depthwise", strides=stride)
            y = L.conv(y, out_c, 1, f"{name}_project", act=None)
            if stride == 1 and in_c == out_c:
                y = keras.layers.Add(name=f"{name}_add")([x, y])
            x, in_c = y, out_c
            block += 1
    last = _channels(1280, alpha) if alpha > 1.0 else 1280
    x = L.conv(x, last, 1, "conv_last")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, L.head(x, classes, softmax), name="mobilenet_v2")


def resnet8(input_shape=(32, 32, 3), classes=10, *, seed=0, softmax=True) -> keras.Model:
    """MLPerf Tiny's image classification ResNet-8: a 16-channel stem, three stacks of two 3x3
    convs with a residual ADD (a strided 1x1 conv on the shortcut where the shape changes),
    8x8 average pooling, one dense layer."""
    import keras

    L = _Layers(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = L.conv(inputs, 16, 3, "conv1", act="relu")
    for stack, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2)), 1):
        name = f"stack{stack}"
        y = L.conv(x, filters, 3, f"{name}_conv1", strides=stride, act="relu")
        y = L.conv(y, filters, 3, f"{name}_conv2", act=None)
        if stride != 1:
            x = L.conv(x, filters, 1, f"{name}_shortcut", strides=stride, act=None, bn=False)
        x = keras.layers.Add(name=f"{name}_add")([x, y])
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    pool = (max(1, x.shape[1]), max(1, x.shape[2]))
    x = keras.layers.AveragePooling2D(pool_size=pool, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.head(x, classes, softmax), name="resnet8")


def ds_cnn(input_shape=(49, 10, 1), classes=12, *, seed=0, softmax=True) -> keras.Model:
    """MLPerf Tiny's keyword spotting DS-CNN: a 10x4 stride-2 conv of 64 filters over 49x10 MFCC
    frames, four depthwise separable blocks of 64 channels, average pooling over the whole
    map, one dense layer."""
    import keras

    L = _Layers(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = L.conv(inputs, 64, (10, 4), "conv1", strides=2, act="relu")
    for i in range(1, 5):
        x = L.depthwise(x, 3, f"dw{i}", act="relu")
        x = L.conv(x, 64, 1, f"pw{i}", act="relu")
    x = keras.layers.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]), name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.head(x, classes, softmax), name="ds_cnn")


MODELS: dict[str, ZooModel] = {m.name: m for m in (
    ZooModel("mobilenet_v1", (96, 96, 3), 2, mobilenet_v1,
             "MobileNet v1, width 0.25 (MLPerf Tiny visual wake words)"),
    ZooModel("mobilenet_v2", (96, 96, 3), 10, mobilenet_v2, "MobileNet v2, width 0.35"),
    ZooModel("resnet8", (32, 32, 3), 10, resnet8, "ResNet-8 (MLPerf Tiny, CIFAR-10)"),
    ZooModel("ds_cnn", (49, 10, 1), 12, ds_cnn, "DS-CNN (MLPerf Tiny keyword spotting)"),
)}


def is_builtin(name: str) -> bool:
    return name in MODELS


def builtin_names() -> list[str]:
    return list(MODELS)


def build(name: str, *, input_shape: tuple[int, int, int] | None = None,
          classes: int | None = None, alpha: float | None = None, seed: int = 0):
    """The named network, with the default input and classes unless given."""
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}; builtin models: {', '.join(MODELS)}")
    m = MODELS[name]
    kw = {"seed": seed}
    if alpha is not None:
        if not name.startswith("mobilenet"):
            raise UsageError(f"{name}: a width multiplier applies to the MobileNets only")
        if not 0 < alpha <= 4:
            raise UsageError(f"width multiplier {alpha}: must be above 0 and at most 4")
        kw["alpha"] = alpha
    shape = tuple(input_shape or m.input_shape)
    if min(shape[:2]) < 1 or shape[2] < 1:
        raise UsageError(f"{name}: input {shape} must be at least 1x1x1")
    return m.build(shape, classes or m.classes, **kw)

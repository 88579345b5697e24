"""SqueezeNet v1.0 and v1.1 (Iandola et al. 2016) with the paper's meta-parameters and bypasses.

Architecture choices that are not obvious from the paper, and why:

* Max pools are 3x3 stride 2 with 'valid' padding (floor).  torchvision uses ``ceil_mode=True``,
  which TFLite cannot express; for v1.1 at 224x224 both give 111 -> 55 -> 27 -> 13, so the
  torchvision/ImageNet v1.1 weights reproduce their float results exactly.  For v1.0 at 224 the
  sizes after pool4 / pool8 are 26 / 12 here instead of torchvision's 27 / 13; parameter shapes
  are unaffected.
* Every conv carries a fused ReLU (``activation="relu"``) so the TFLite converter folds it into
  the conv and no tensor outside the softmax ever needs a negative int8 range.  conv10 included,
  as in the paper and torchvision.
* The complex bypass is a 1x1 conv with as many filters as the fire module's output channels and,
  like every other conv here, a ReLU.  The paper does not say whether it has one; with it both
  operands of the Add are non-negative, exactly like the simple bypass.
* A simple bypass whose input and output channel counts differ (possible only with non-default
  meta-parameters) raises :class:`UsageError` instead of being silently dropped, so the network
  the user gets is always the one they named.
* An expand branch that rounds to zero filters (``pct_3x3`` of 0 or 1) is left out together with
  its concatenation, rather than rejected, because the paper sweeps ``pct_3x3`` over that range.

Initialisation is deterministic: every layer gets its own integer-seeded initializer derived from
``config.seed`` and the layer name, so the same builtin name and options always give identical
weights (and hence byte-identical converter output) without touching Keras' global RNG.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    import keras

VERSIONS = ("1.0", "1.1")
BYPASSES = ("none", "simple", "complex")

# Which fire modules get a bypass: fire3/5/7/9 have matching in/out channels with the default
# meta-parameters (paper, section 6 and Figure 2); the complex variant adds conv shortcuts
# around the remaining ones.
SIMPLE_BYPASS_FIRES = (3, 5, 7, 9)
COMPLEX_BYPASS_FIRES = (2, 4, 6, 8)

# conv1 (filters, kernel) and the fire module after which each max pool sits; pool names follow
# the original Caffe prototxts (pool1/pool4/pool8 for v1.0, pool1/pool3/pool5 for v1.1).
_STEMS = {"1.0": (96, 7), "1.1": (64, 3)}
_POOL_AFTER_FIRE = {"1.0": (4, 8), "1.1": (3, 5)}

_BUILTINS: dict[str, dict[str, str]] = {
    "squeezenet1_0": {"version": "1.0", "bypass": "none"},
    "squeezenet1_1": {"version": "1.1", "bypass": "none"},
    "squeezenet1_0_simple_bypass": {"version": "1.0", "bypass": "simple"},
    "squeezenet1_0_complex_bypass": {"version": "1.0", "bypass": "complex"},
    "squeezenet1_1_simple_bypass": {"version": "1.1", "bypass": "simple"},
    "squeezenet1_1_complex_bypass": {"version": "1.1", "bypass": "complex"},
}


@dataclass(frozen=True)
class FireSpec:
    """Filter counts of one fire module; an expand count of 0 means that branch is omitted."""

    name: str
    squeeze: int
    expand1x1: int
    expand3x3: int

    @property
    def out_channels(self) -> int:
        return self.expand1x1 + self.expand3x3


def _is_int(value: Any) -> bool:
    # numbers.Integral so numpy integers from parsed configs are accepted; bool is not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


@dataclass(frozen=True)
class SqueezeNetConfig:
    """Everything that determines a SqueezeNet's structure and initial weights.

    Meta-parameters follow the paper (section 5): fire module ``i`` (0..7 for fire2..fire9) has
    ``e_i = base_e + incr_e * floor(i / freq)`` expand filters, of which
    ``round(pct_3x3 * e_i)`` are 3x3 and the rest 1x1, and ``max(1, round(sr * e_i))`` squeeze
    filters.  Rounding is half-up on the exact decimal value (``Fraction(str(x))``), so e.g.
    ``pct_3x3=0.3`` cannot be tipped over a boundary by binary floating point.
    """

    version: str = "1.1"
    input_shape: tuple[int, int, int] = (224, 224, 3)
    classes: int = 1000
    bypass: str = "none"
    base_e: int = 128
    incr_e: int = 128
    pct_3x3: float = 0.5
    freq: int = 2
    sr: float = 0.125
    dropout: float = 0.5
    softmax: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.version, float):
            # "--version 1.0" parsed as a number would otherwise be rejected confusingly.
            object.__setattr__(self, "version", f"{self.version:.1f}")
        if self.version not in VERSIONS:
            raise UsageError(
                f"SqueezeNet version {self.version!r} is not supported; use one of "
                f"{', '.join(VERSIONS)}"
            )
        if self.bypass not in BYPASSES:
            raise UsageError(
                f"bypass {self.bypass!r} is not supported; use one of {', '.join(BYPASSES)}"
            )
        shape = self.input_shape
        if (
            not isinstance(shape, tuple | list)
            or len(shape) != 3
            or not all(_is_int(v) and v > 0 for v in shape)
        ):
            raise UsageError(
                f"input_shape {shape!r} is invalid; give (height, width, channels) as three "
                "positive integers, e.g. 224,224,3"
            )
        object.__setattr__(self, "input_shape", tuple(int(v) for v in shape))
        for field, minimum in (("classes", 1), ("base_e", 1), ("incr_e", 0), ("freq", 1)):
            value = getattr(self, field)
            if not _is_int(value) or value < minimum:
                kind = "a positive integer" if minimum else "a non-negative integer"
                raise UsageError(f"{field} must be {kind}, got {value!r}")
            object.__setattr__(self, field, int(value))
        if not _is_int(self.seed):
            raise UsageError(f"seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if not _is_number(self.pct_3x3) or not 0.0 <= self.pct_3x3 <= 1.0:
            raise UsageError(f"pct_3x3 must be between 0 and 1 inclusive, got {self.pct_3x3!r}")
        if not _is_number(self.sr) or not 0.0 < self.sr <= 1.0:
            raise UsageError(
                f"sr (squeeze ratio) must be in (0, 1], got {self.sr!r}; the paper uses 0.125"
            )
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.softmax, bool):
            raise UsageError(f"softmax must be true or false, got {self.softmax!r}")
        minimum = min_input_size(self.version)
        height, width, _ = self.input_shape
        if height < minimum or width < minimum:
            raise UsageError(
                f"input {height}x{width} is too small for SqueezeNet v{self.version}: conv1 and "
                f"the three 3x3/2 max pools need at least {minimum}x{minimum} pixels; give a "
                f"larger input (--input-size {minimum} or more on the command line, "
                "input_shape in SqueezeNetConfig)"
            )
        if self.bypass in ("simple", "complex"):
            fires = {spec.name: spec for spec in fire_specs(self)}
            for index in SIMPLE_BYPASS_FIRES:
                inner, before = fires[f"fire{index}"], fires[f"fire{index - 1}"]
                if inner.out_channels != before.out_channels:
                    raise UsageError(
                        f"simple bypass around fire{index} needs equal input and output channels "
                        f"but the meta-parameters give {before.out_channels} in and "
                        f"{inner.out_channels} out; use an even freq, incr_e=0, or bypass='none'"
                    )

    @property
    def name(self) -> str:
        suffix = "" if self.bypass == "none" else f"_{self.bypass}_bypass"
        return f"squeezenet{self.version.replace('.', '_')}{suffix}"


def min_input_size(version: str) -> int:
    """Smallest height/width for which every pool still produces at least one pixel."""
    _, kernel = _STEMS[version]
    size = 1
    for _ in range(3):  # undo three 3x3/2 valid max pools
        size = 2 * (size - 1) + 3
    return 2 * (size - 1) + kernel


def _conv_out(size: int, kernel: int) -> int:
    return (size - kernel) // 2 + 1


def fire_specs(config: SqueezeNetConfig) -> list[FireSpec]:
    """Filter counts for fire2..fire9 from the meta-parameters (see :class:`SqueezeNetConfig`)."""
    pct = Fraction(str(config.pct_3x3))
    sr = Fraction(str(config.sr))
    specs = []
    for i in range(8):
        expand = config.base_e + config.incr_e * (i // config.freq)
        e3 = _round_half_up(pct * expand)
        squeeze = max(1, _round_half_up(sr * expand))
        specs.append(FireSpec(f"fire{i + 2}", squeeze, expand - e3, e3))
    return specs


def spatial_sizes(config: SqueezeNetConfig) -> dict[str, tuple[int, int]]:
    """(height, width) after conv1 and each max pool; fire modules keep the size they get."""
    _, kernel = _STEMS[config.version]
    h, w = (_conv_out(v, kernel) for v in config.input_shape[:2])
    sizes = {"conv1": (h, w)}
    pools = ("pool1",) + tuple(f"pool{i}" for i in _POOL_AFTER_FIRE[config.version])
    for name in pools:
        h, w = _conv_out(h, 3), _conv_out(w, 3)
        sizes[name] = (h, w)
    return sizes


def _seed(config: SqueezeNetConfig, layer_name: str) -> int:
    # crc32 rather than hash(): str hashes are salted per process, which would break determinism.
    return (config.seed * 1_000_003 + zlib.crc32(layer_name.encode())) % (2**31 - 1)


def _conv(config: SqueezeNetConfig, x, filters: int, kernel: int, name: str, **kwargs):
    import keras

    return keras.layers.Conv2D(
        filters,
        kernel,
        activation="relu",
        kernel_initializer=keras.initializers.HeUniform(seed=_seed(config, name)),
        bias_initializer="zeros",
        name=name,
        **kwargs,
    )(x)


def _fire(config: SqueezeNetConfig, x, spec: FireSpec):
    import keras

    s = _conv(config, x, spec.squeeze, 1, f"{spec.name}_squeeze1x1")
    branches = []
    if spec.expand1x1:
        branches.append(_conv(config, s, spec.expand1x1, 1, f"{spec.name}_expand1x1"))
    if spec.expand3x3:
        branches.append(
            _conv(config, s, spec.expand3x3, 3, f"{spec.name}_expand3x3", padding="same")
        )
    if len(branches) == 1:
        return branches[0]
    return keras.layers.Concatenate(axis=-1, name=f"{spec.name}_concat")(branches)


def build_squeezenet(config: SqueezeNetConfig) -> keras.Model:
    """Build the Keras functional model described by ``config`` (weights freshly initialised)."""
    import keras

    if not isinstance(config, SqueezeNetConfig):
        raise UsageError(f"build_squeezenet needs a SqueezeNetConfig, got {type(config).__name__}")
    stem_filters, stem_kernel = _STEMS[config.version]
    pool_after = _POOL_AFTER_FIRE[config.version]

    inputs = keras.Input(shape=config.input_shape, name="input")
    x = _conv(config, inputs, stem_filters, stem_kernel, "conv1", strides=2)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for spec in fire_specs(config):
        index = int(spec.name[4:])
        fire_in = x
        x = _fire(config, fire_in, spec)
        if config.bypass != "none" and index in SIMPLE_BYPASS_FIRES:
            x = keras.layers.Add(name=f"{spec.name}_bypass")([fire_in, x])
        elif config.bypass == "complex" and index in COMPLEX_BYPASS_FIRES:
            shortcut = _conv(config, fire_in, spec.out_channels, 1, f"{spec.name}_bypass_conv")
            x = keras.layers.Add(name=f"{spec.name}_bypass")([shortcut, x])
        if index in pool_after:
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{index}")(x)
    x = keras.layers.Dropout(config.dropout, seed=_seed(config, "drop9"), name="drop9")(x)
    x = _conv(config, x, config.classes, 1, "conv10")
    x = keras.layers.GlobalAveragePooling2D(name="pool10")(x)
    if config.softmax:
        x = keras.layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, x, name=config.name)


def builtin_names() -> list[str]:
    """Names accepted by :func:`config_for_builtin`, in a stable order."""
    return list(_BUILTINS)


def is_builtin(name: str) -> bool:
    return name in _BUILTINS


def config_for_builtin(name: str, **overrides: Any) -> SqueezeNetConfig:
    """Config of a builtin network; ``overrides`` replace any field except version and bypass.

    Version and bypass are what the name means, so overriding them is refused rather than
    producing a model whose name lies about it.
    """
    if name not in _BUILTINS:
        raise UsageError(
            f"unknown model {name!r}; builtin models are: {', '.join(builtin_names())}"
        )
    fields = {f.name for f in dataclasses.fields(SqueezeNetConfig)}
    for key in overrides:
        if key in ("version", "bypass"):
            raise UsageError(
                f"{key} cannot be overridden for builtin {name!r}; pick the builtin with the "
                f"{key} you want from: {', '.join(builtin_names())}"
            )
        if key not in fields:
            allowed = sorted(fields - {"version", "bypass"})
            raise UsageError(
                f"unknown option {key!r} for builtin {name!r}; valid options: {', '.join(allowed)}"
            )
    return SqueezeNetConfig(**_BUILTINS[name], **overrides)

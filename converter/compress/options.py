"""sqz-compress's options and the paper's schedule: per-layer sparsity and bits (LayerValues),
parsed from the command line, and Table 1 of Iandola et al. 2016 (SqueezeNet v1.0 with Deep
Compression), the default."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError

MIN_BITS, MAX_BITS = 2, 8
DEFAULT_BITS = 6
CODEBOOKS = ("tensor", "channel")
KMEANS_ITERATIONS = 100

# Iandola et al. 2016, Table 1 (SqueezeNet v1.0 with Deep Compression). Its "sparsity" columns
# give the fraction of weights KEPT (100% = unpruned); every layer has 6-bit codebooks.
PAPER_BITS = 6
PAPER_FIRE_DENSITY = {  # fire module: (s1x1, e1x1, e3x3)
    "fire2": (1.0, 1.0, 0.33), "fire3": (1.0, 1.0, 0.33), "fire4": (1.0, 1.0, 0.33),
    "fire5": (1.0, 1.0, 0.33), "fire6": (1.0, 0.5, 0.33), "fire7": (0.5, 1.0, 0.33),
    "fire8": (1.0, 0.5, 0.33), "fire9": (0.5, 1.0, 0.30),
}
PAPER_LAYER_DENSITY = {"conv1": 1.0, "conv10": 0.20}
# Parameters (weights and biases) before and after pruning, per module, as printed in Table 1
# (fire8 and fire9 both read 77,581 there).
PAPER_PARAMS = {
    "conv1": (14_208, 14_208), "fire2": (11_920, 5_746), "fire3": (12_432, 6_258),
    "fire4": (45_344, 20_646), "fire5": (49_440, 24_742), "fire6": (104_880, 44_700),
    "fire7": (111_024, 46_236), "fire8": (188_992, 77_581), "fire9": (197_184, 77_581),
    "conv10": (513_000, 103_400),
}
PAPER_TOTAL = (1_248_424, 421_098)
# The paper compressed SqueezeNet without bypasses. The complex bypass's 1x1 convs are as large
# as a fire module (fire8's is 384x512); sqz prunes them to half, the paper's density for the
# 1x1 layers it prunes at all (e1x1 of fire6/8, s1x1 of fire7/9).
BYPASS_DENSITY = 0.5
_EXPANDS = ("squeeze1x1", "expand1x1", "expand3x3")
# What the device stores per output channel beside the filter (converter.lower.ConvStep):
# the int32 bias and the requantization multiplier (int32) and shift (int8).
BIAS_BYTES, REQUANT_BYTES = 4, 5


def paper_density(layer: str) -> float | None:
    """The paper's density for a layer of sqz's SqueezeNet (by name), None when it has none."""
    if layer in PAPER_LAYER_DENSITY:
        return PAPER_LAYER_DENSITY[layer]
    m = re.fullmatch(r"(fire\d+)_(\w+)", layer)
    if m and m.group(1) in PAPER_FIRE_DENSITY:
        if m.group(2) in _EXPANDS:
            return PAPER_FIRE_DENSITY[m.group(1)][_EXPANDS.index(m.group(2))]
        if m.group(2) == "bypass_conv":
            return BYPASS_DENSITY
    return None


def module_of(layer: str) -> str:
    m = re.match(r"(fire\d+)_", layer)
    return m.group(1) if m else layer


# --- options -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerValues:
    """A value per layer: a default (None = the paper's schedule) and ordered overrides by layer
    name or glob pattern; the last matching override wins."""

    default: float | None
    overrides: tuple[tuple[str, float], ...] = ()
    # --sparsity auto: the layers without an override get densities from their measured
    # sensitivity (converter.compress.sensitivity), not from `default`.
    auto: bool = False

    def patterns(self) -> list[str]:
        return [p for p, _ in self.overrides]

    def value(self, layer: str) -> float | None:
        out = self.default
        for pattern, v in self.overrides:
            if fnmatch.fnmatchcase(layer, pattern):
                out = v
        return out


def _parse_items(text: str, option: str, number: Callable[[str, str], float],
                 named_defaults: dict[str, float | None], example: str) -> LayerValues:
    default: float | None = None
    seen_default = False
    overrides: list[tuple[str, float]] = []
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UsageError(f"{option} {text!r}: empty item; write e.g. {example}")
    for item in items:
        if "=" in item:
            pattern, _, value = item.partition("=")
            pattern = pattern.strip()
            if not pattern or not re.fullmatch(r"[A-Za-z0-9_*?\[\]!.-]+", pattern):
                raise UsageError(f"{option} {text!r}: {pattern!r} is not a layer name or "
                                 f"pattern; write e.g. {example}")
            overrides.append((pattern, number(value.strip(), f"{option} {item}")))
            continue
        if seen_default:
            raise UsageError(f"{option} {text!r}: more than one value for all layers; give one, "
                             f"then LAYER=VALUE overrides, e.g. {example}")
        seen_default = True
        key = item.lower()
        default = named_defaults[key] if key in named_defaults else number(item, option)
    return LayerValues(default, tuple(overrides))


def _sparsity_number(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and 0.0 <= v < 1.0):
        raise UsageError(f"{where}: a sparsity is the fraction of weights set to zero, a number "
                         "from 0 up to (not including) 1, e.g. 0.67")
    return v


def parse_sparsity(text: str) -> LayerValues:
    """``paper`` (default), ``none``, ``auto`` (measured, --val), a fraction for every layer,
    and/or LAYER=FRACTION overrides (LAYER may be a glob such as ``fire*_expand3x3``);
    comma-separated."""
    items = [t.strip().lower() for t in text.split(",")]
    auto = "auto" in items
    if auto and sum("=" not in t for t in items) > 1:
        raise UsageError(f"--sparsity {text!r}: 'auto' is the value for all layers, so no other "
                         "may follow; give LAYER=FRACTION overrides, e.g. auto,conv10=0.8")
    # auto: no value for all layers (the analysis chooses), the overrides as given.
    spec = _parse_items(text, "--sparsity", _sparsity_number,
                        {"paper": None, "none": 0.0, "auto": None},
                        "paper,conv10=0.9 or 0.6,conv1=0 or fire*_expand3x3=0.67 or auto")
    return dataclasses.replace(spec, auto=auto)


def _bits_number(text: str, where: str) -> float:
    if not re.fullmatch(r"\d+", text) or not MIN_BITS <= int(text) <= MAX_BITS:
        raise UsageError(f"{where}: bits must be a whole number from {MIN_BITS} to {MAX_BITS} "
                         f"(a codebook of 2^bits values, zero included), e.g. {DEFAULT_BITS}")
    return int(text)


def parse_bits(text: str) -> LayerValues:
    """A number of bits for every layer and/or LAYER=BITS overrides."""
    spec = _parse_items(text, "--bits", _bits_number, {"paper": PAPER_BITS},
                        "6 or 6,conv1=8 or 4,conv10=6")
    if spec.default is None:
        spec = dataclasses.replace(spec, default=DEFAULT_BITS)
    return spec

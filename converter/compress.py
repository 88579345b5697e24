"""sqz-compress: Deep Compression (Han et al.) for the device: magnitude pruning, weight sharing
with k-means codebooks, optional fine-tuning of the codebooks, and a report of the flash it buys.

The result is an ordinary float Keras model whose every conv kernel takes at most 2^bits values
(zero included) per tensor, or per output channel, with exact zeros where pruned. Beside it go:

* ``OUT.keras.compress.json``: what was done to each layer (density, bits, codebook kind,
  centroids). sqz-convert reads it: a per-tensor codebook must be quantized with one scale per
  tensor (TFLite's default, one scale per output channel, would give every channel its own int8
  table), and after quantization it checks that the structure survived.
* ``OUT.keras.preprocess.json`` / ``.classes.json``, carried over from the input model.
* ``OUT.report.md`` / ``OUT.report.json``: per layer the density, bits, weights kept and the
  bytes of the int8 filter on the device (converter.packing's smallest encoding), beside the
  paper's Table 1.

Choices that are not obvious:

* Sparsity means the fraction of weights set to zero; the report shows density (the fraction
  kept), which is what the paper's Table 1 calls "sparsity" (100% there means unpruned).
* The codebooks are snapped to the int8 grid TFLite will use (scale = max|w| / 127, symmetric),
  so the float model holds exactly the values the int8 model will hold; a kept weight never
  snaps to zero, so the density survives quantization exactly.
* k-means is one-dimensional Lloyd with the linear initialisation of Deep Compression (evenly
  spaced between the smallest and largest weight): no randomness, and the large weights, which
  matter most, keep centroids of their own.
* Fine-tuning follows Deep Compression's order: the kept weights are retrained with the
  pruning mask fixed, then shared by k-means, then the centroids are trained: each kernel is
  computed from its codebook inside the gradient tape, so dL/dc_k is the sum of dL/dw over the
  weights assigned to c_k, and the mask and the assignment stay fixed. Biases train normally.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from . import __version__, atomic
from .errors import InputFileError, ModelError, UsageError

COMPRESS_SIDECAR = ".compress.json"
SIDECAR_FORMAT = "sqz-compress/1"
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
    """``paper`` (default), ``none``, a fraction for every layer, and/or LAYER=FRACTION
    overrides (LAYER may be a glob such as ``fire*_expand3x3``); comma-separated."""
    return _parse_items(text, "--sparsity", _sparsity_number, {"paper": None, "none": 0.0},
                        "paper,conv10=0.9 or 0.6,conv1=0 or fire*_expand3x3=0.67")


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


# --- pruning and weight sharing (numpy, no TensorFlow) -----------------------------------------

def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def kept_count(size: int, density: float) -> int:
    """Weights kept at ``density``: round half up, at least one."""
    return max(1, min(size, math.floor(density * size + 0.5)))


def prune_mask(kernel: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``kept_count`` weights of largest magnitude; ties go to the lower flat index."""
    flat = np.abs(np.asarray(kernel, np.float64)).reshape(-1)
    keep = kept_count(flat.size, density)
    mask = np.zeros(flat.size, bool)
    if keep >= flat.size:
        mask[:] = True
    else:
        mask[np.argsort(-flat, kind="stable")[:keep]] = True
    return mask.reshape(kernel.shape)


def kmeans_1d(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted centroids, label of each value): Lloyd's algorithm from centroids evenly spaced
    between min and max (skipping the empty gap around zero). Empty clusters are dropped, so
    there may be fewer than k."""
    values = np.asarray(values, np.float64).reshape(-1)
    distinct = np.unique(values)
    if distinct.size <= k:
        return distinct, np.searchsorted(distinct, values)
    order = np.sort(values)
    c = np.linspace(order[0], order[-1], k)
    neg, pos = order[order < 0], order[order > 0]
    if neg.size and pos.size:
        # Magnitude pruning leaves no weight between the smallest kept negative and positive
        # ones: space the centroids evenly over the kept range with that gap taken out, or the
        # centroids inside it would stay empty and the codebook would lose entries.
        gap = pos[0] - neg[-1]
        c = np.linspace(order[0], order[-1] - gap, k)
        c = np.where(c > neg[-1], c + gap, c)
    counts = np.zeros(k, np.int64)
    for _ in range(KMEANS_ITERATIONS):
        labels = np.searchsorted((c[1:] + c[:-1]) / 2, order)
        counts = np.bincount(labels, minlength=k)
        sums = np.bincount(labels, weights=order, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.array_equal(new, c):
            break
        c = new
    c = c[counts > 0]
    return c, np.searchsorted((c[1:] + c[:-1]) / 2, values)


@dataclass
class LayerCode:
    """One layer's compressed kernel: mask, codebook index of every weight, codebooks."""

    name: str
    shape: tuple[int, ...]  # Keras kernel shape; the last axis is the output channel
    bits: int
    per_channel: bool
    target_density: float
    mask: np.ndarray  # bool, kernel shape
    index: np.ndarray  # int32, kernel shape: into this weight's group's codebook
    codebooks: list[np.ndarray]  # float64, one per tensor or per output channel

    @property
    def out_channels(self) -> int:
        return self.shape[-1]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def padded(self) -> np.ndarray:
        """The codebooks as one (groups, entries) array, short ones padded with their last value
        (never indexed)."""
        width = max(1, max(len(c) for c in self.codebooks))
        return np.stack([np.pad(c, (0, width - len(c)), mode="edge") if c.size
                         else np.zeros(width) for c in self.codebooks])

    def group_index(self) -> np.ndarray:
        """Index of every weight into ``padded().reshape(-1)``."""
        if not self.per_channel:
            return self.index.astype(np.int32)
        width = max(1, max(len(c) for c in self.codebooks))
        channel = np.broadcast_to(np.arange(self.out_channels, dtype=np.int32), self.shape)
        return (channel * width + self.index).astype(np.int32)

    def kernel(self) -> np.ndarray:
        values = self.padded().reshape(-1)[self.group_index()]
        return np.where(self.mask, values, 0.0).astype(np.float32)

    def snap_to_int8(self) -> None:
        """Move the centroids onto the int8 grid TFLite will quantize them to (scale = max|c| /
        127 per tensor or per channel); a kept weight stays nonzero (at least one step).
        Centroids that land on the same value are merged."""
        used = [c[np.unique(self._indices_of(g))] if c.size else c
                for g, c in enumerate(self.codebooks)]
        if self.per_channel:
            amax = [float(np.max(np.abs(u))) if u.size else 0.0 for u in used]
        else:
            amax = [float(np.max(np.abs(used[0]))) if used[0].size else 0.0]
        new_books, new_index = [], self.index.copy()
        for g, c in enumerate(self.codebooks):
            if c.size == 0:  # a channel pruned away entirely
                new_books.append(c)
                continue
            scale = (amax[g] if self.per_channel else amax[0]) / 127.0
            if scale == 0.0:
                q = np.zeros_like(c)
            else:
                q = np.sign(c) * np.clip(np.maximum(1.0, round_half_away(np.abs(c) / scale)),
                                         0, 127)
            snapped = (q * scale).astype(np.float32).astype(np.float64)
            if np.allclose(snapped, c, rtol=0.0, atol=1e-4 * scale):
                snapped = c  # already on the grid: snapping again changes no bit
            book, remap = np.unique(snapped, return_inverse=True)
            where = self._where_group(g)
            new_index[where] = remap.reshape(-1)[self.index[where]]
            new_books.append(book)
        self.codebooks, self.index = new_books, new_index.astype(np.int32)

    def _where_group(self, g: int) -> Any:
        return (..., g) if self.per_channel else ...

    def _indices_of(self, g: int) -> np.ndarray:
        return self.index[self._where_group(g)][self.mask[self._where_group(g)]]

    def values_per_group(self) -> int:
        """Most distinct values (zero included) in one group of the float kernel."""
        k = self.kernel()
        groups = (np.moveaxis(k, -1, 0).reshape(self.out_channels, -1) if self.per_channel
                  else k.reshape(1, -1))
        return max(len(np.unique(r)) for r in groups)


def share_weights(name: str, kernel: np.ndarray, mask: np.ndarray, bits: int,
                  per_channel: bool, target_density: float) -> LayerCode:
    """k-means codebooks of the kept weights: 2^bits entries, one fewer where zero is taken by
    pruned weights, so every group holds at most 2^bits values including zero."""
    kernel = np.asarray(kernel, np.float64)
    index = np.zeros(kernel.shape, np.int32)
    books = []
    groups = range(kernel.shape[-1]) if per_channel else [None]
    for g in groups:
        where = (..., g) if per_channel else ...
        w, m = kernel[where], mask[where]
        k = 2**bits - (0 if m.all() else 1)
        kept = w[m]
        if kept.size == 0:
            books.append(np.zeros(0))
            continue
        centroids, labels = kmeans_1d(kept, k)
        sub = np.zeros(w.shape, np.int32)
        sub[m] = labels
        index[where] = sub
        books.append(centroids)
    return LayerCode(name=name, shape=tuple(kernel.shape), bits=bits, per_channel=per_channel,
                     target_density=target_density, mask=mask.copy(), index=index,
                     codebooks=books)


def int8_filter(kernel: np.ndarray, per_channel: bool) -> np.ndarray:
    """The int8 filter TFLite makes of a float kernel, output channel first (OHWI for a conv):
    symmetric, scale = max|w| / 127 per tensor or per channel, round half away from zero."""
    w = np.moveaxis(np.asarray(kernel, np.float32), -1, 0)
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    amax = np.abs(flat).max(axis=1, keepdims=True) if per_channel else np.abs(flat).max()
    scale = np.asarray(amax, np.float64) / 127.0
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(scale > 0, round_half_away(flat / np.where(scale > 0, scale, 1.0)), 0.0)
    return np.clip(q, -127, 127).astype(np.int8).reshape(w.shape)


def compressible_layers(model) -> list:
    """Conv2D (ungrouped) and Dense layers, in model order: what sqz-compress compresses."""
    import keras

    out = []
    for layer in model.layers:
        if type(layer) is keras.layers.Conv2D and getattr(layer, "groups", 1) == 1:
            out.append(layer)
        elif type(layer) is keras.layers.Dense:
            out.append(layer)
    return out


@dataclass(frozen=True)
class Plan:
    """What to do to one layer."""

    name: str
    density: float
    paper: float | None
    bits: int


def plan_layers(model, sparsity: LayerValues, bits: LayerValues) -> list[Plan]:
    layers = compressible_layers(model)
    if not layers:
        raise ModelError(f"model '{model.name}' has no Conv2D or Dense layer to compress")
    names = [la.name for la in layers]
    for option, spec in (("--sparsity", sparsity), ("--bits", bits)):
        for pattern in spec.patterns():
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise UsageError(f"{option}: no layer of the model matches {pattern!r}; its "
                                 f"layers are {', '.join(names)}")
    plans = []
    for name in names:
        paper = paper_density(name)
        s = sparsity.value(name)
        density = (paper if paper is not None else 1.0) if s is None else 1.0 - s
        plans.append(Plan(name, density, paper, int(bits.value(name) or DEFAULT_BITS)))
    return plans


def prune_model(model, plans: Sequence[Plan]) -> dict[str, np.ndarray]:
    """Zero the smallest weights of every planned layer in place; returns the masks."""
    masks = {}
    for plan in plans:
        layer = model.get_layer(plan.name)
        kernel, *rest = layer.get_weights()
        masks[plan.name] = prune_mask(kernel, plan.density)
        layer.set_weights([np.where(masks[plan.name], kernel, 0).astype(kernel.dtype), *rest])
    return masks


def share_model(model, plans: Sequence[Plan], masks: dict[str, np.ndarray],
                per_channel: bool) -> list[LayerCode]:
    """Replace every planned layer's kept weights by their codebook values, in place."""
    codes = []
    for plan in plans:
        layer = model.get_layer(plan.name)
        kernel, *rest = layer.get_weights()
        code = share_weights(plan.name, kernel, masks[plan.name], plan.bits, per_channel,
                             plan.density)
        code.snap_to_int8()
        layer.set_weights([code.kernel(), *rest])
        codes.append(code)
    return codes


def compress_model(model, plans: Sequence[Plan], per_channel: bool) -> list[LayerCode]:
    """Prune and share the weights of ``model`` in place (post-training); returns the codes."""
    return share_model(model, plans, prune_model(model, plans), per_channel)


def weight_codes(model, masks: dict[str, np.ndarray]) -> list[LayerCode]:
    """Every kept weight its own centroid: fine-tuning these retrains the pruned weights."""
    codes = []
    for name, mask in masks.items():
        kernel = model.get_layer(name).get_weights()[0]
        codes.append(LayerCode(name=name, shape=tuple(kernel.shape), bits=0, per_channel=False,
                               target_density=float(mask.mean()), mask=mask,
                               index=np.arange(kernel.size, dtype=np.int32).reshape(kernel.shape),
                               codebooks=[kernel.reshape(-1).astype(np.float64)]))
    return codes


# --- fine-tuning -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FinetuneOptions:
    data: str
    epochs: int = 8
    retrain_epochs: int | None = None  # None: as many as epochs
    lr: float = 3e-4
    batch_size: int = 64
    augment: tuple[str, ...] = ()
    val_split: float = 0.1
    seed: int = 0


def _crossentropy(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.mean(np.log(p)))


def finetune(model, codes: list[LayerCode], x: np.ndarray, y: np.ndarray, classes: list[str],
             pre, opts: FinetuneOptions, console: Console | None, *, epochs: int,
             centroids: bool = True) -> dict[str, Any]:
    """Train the centroids (and biases) of ``model`` on (x, y) with the masks and assignments
    fixed, on the int8 grid (``centroids``), or the kept weights of ``weight_codes`` (not);
    keeps the epoch with the lowest held-out loss."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from .train import _Batches, _predict, _Progress, stratified_split

    train_idx, held_idx = stratified_split(y, opts.val_split, opts.seed, classes)
    held_x, held_y = x[held_idx], y[held_idx]
    keras.utils.set_random_seed(opts.seed)
    tf.config.experimental.enable_op_determinism()

    by_kernel = {model.get_layer(c.name).kernel.path: i for i, c in enumerate(codes)}
    books = [keras.Variable(c.padded().astype(np.float32), name=f"{c.name}_codebook")
             for c in codes]
    gather = [tf.constant(c.group_index()) for c in codes]
    masks = [tf.constant(c.mask.astype(np.float32)) for c in codes]
    weights = list(model.trainable_variables)
    others = [v for v in weights if v.path not in by_kernel]  # biases train as they are
    train_vars = books + others
    steps = math.ceil(len(train_idx) / opts.batch_size)
    # Cosine decay to 1% of --lr: the last epochs settle the centroids instead of jumping around.
    schedule = keras.optimizers.schedules.CosineDecay(opts.lr, decay_steps=steps * epochs,
                                                      alpha=0.01)
    optimizer = keras.optimizers.Adam(schedule, clipnorm=1.0)
    optimizer.build(train_vars)
    state = list(model.non_trainable_variables)

    def on_grid(book, per_channel: bool):
        # The forward pass sees the centroids on the int8 grid that snap_to_int8 will put them
        # on at the end, and the gradient passes straight through the rounding: the model is
        # trained as the int8 model will run.
        amax = tf.reduce_max(tf.abs(book), axis=-1 if per_channel else None, keepdims=True)
        scale = amax / 127.0
        level = tf.floor(tf.abs(book) / tf.where(scale > 0, scale, 1.0) + 0.5)
        snapped = tf.sign(book) * tf.clip_by_value(tf.maximum(level, 1.0), 0.0, 127.0) * scale
        return book + tf.stop_gradient(snapped - book)

    def values():
        out = []
        for v in weights:
            i = by_kernel.get(v.path)
            if i is None:
                out.append(v.value)
            else:
                book = books[i].value
                if centroids:
                    book = on_grid(book, codes[i].per_channel)
                flat = tf.reshape(book, [-1])
                out.append(tf.gather(flat, gather[i]) * masks[i])
        return out

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            pred, new_state = model.stateless_call(values(), [v.value for v in state], xb,
                                                   training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, pred))
        grads = tape.gradient(loss, train_vars)
        optimizer.apply(grads, train_vars)
        for v, nv in zip(state, new_state, strict=True):
            v.assign(nv)
        return loss, tf.cast(tf.argmax(pred, axis=-1), yb.dtype)

    def sync() -> None:
        for c, b in zip(codes, books, strict=True):
            arr = np.asarray(b.numpy(), np.float64)
            c.codebooks = [arr[g][:len(c.codebooks[g])] for g in range(len(c.codebooks))]
            snapped = dataclasses.replace(c, codebooks=list(c.codebooks))
            if centroids:
                snapped.snap_to_int8()
            model.get_layer(c.name).kernel.assign(snapped.kernel())

    def evaluate() -> tuple[float, float]:
        probs = _predict(model, held_x, 128)
        return _crossentropy(probs, held_y), float(np.mean(np.argmax(probs, 1) == held_y))

    batches = _Batches(x[train_idx], y[train_idx], opts.seed, opts.augment, pre)
    loss0, acc0 = evaluate()
    best: dict[str, Any] = {"epoch": 0, "val_loss": math.inf}
    history = [{"epoch": 0, "val_loss": loss0, "val_accuracy": acc0}]
    with _Progress(console, epochs, steps) as progress:
        what = "centroids" if centroids else "kept weights"
        progress.log(f"fine-tuning the {what} on {len(train_idx)} images, {len(held_idx)} held "
                     f"out: held-out accuracy before {acc0:.2%} (loss {loss0:.4f})")
        for epoch in range(epochs):
            xb, yb = batches.epoch(epoch)
            tick = time.monotonic()
            callbacks = progress.callbacks(epoch)
            losses, correct = [], 0
            for b in range(steps):
                sl = slice(b * opts.batch_size, (b + 1) * opts.batch_size)
                loss, pred = step(tf.constant(xb[sl]), tf.constant(yb[sl]))
                losses.append(float(loss))
                correct += int(np.sum(pred.numpy() == yb[sl]))
                for cb in callbacks:
                    cb.on_train_batch_end(b, {"loss": losses[-1]})
            sync()
            val_loss, val_acc = evaluate()
            logs = {"loss": float(np.mean(losses)), "accuracy": correct / len(yb),
                    "val_loss": val_loss, "val_accuracy": val_acc}
            better = val_loss < best["val_loss"]
            if better:
                best = {"epoch": epoch + 1, "val_loss": val_loss, "weights": model.get_weights(),
                        "books": [list(c.codebooks) for c in codes]}
            history.append({"epoch": epoch + 1, **logs})
            progress.epoch_done(epoch, logs, time.monotonic() - tick, better)
    model.set_weights(best["weights"])
    for c, b in zip(codes, best["books"], strict=True):
        c.codebooks = b
    for c in codes:
        if centroids:
            c.snap_to_int8()
        model.get_layer(c.name).kernel.assign(c.kernel())
    final_loss, final_acc = evaluate()
    return {"epochs": epochs, "images": int(len(x)), "train_images": int(len(train_idx)),
            "heldout_images": int(len(held_idx)), "best_epoch": best["epoch"],
            "heldout_accuracy_before": acc0, "heldout_accuracy_after": final_acc,
            "heldout_loss_after": final_loss, "history": history}


# --- the report --------------------------------------------------------------------------------

def layer_rows(model, codes: list[LayerCode]) -> list[dict[str, Any]]:
    """Per layer: what was done and what its int8 filter costs on the device."""
    from . import packing

    rows = []
    for c in codes:
        kernel = model.get_layer(c.name).get_weights()[0]
        q = int8_filter(kernel, c.per_channel)
        enc = packing.encode(q)
        groups = q.reshape(q.shape[0], -1) if c.per_channel else q.reshape(1, -1)
        kept = int(np.count_nonzero(q))
        rows.append({
            "layer": c.name,
            "shape_ohwi": list(q.shape),
            "weights": c.size,
            "paper_density": paper_density(c.name),
            "target_density": c.target_density,
            "kept": kept,
            "density": kept / c.size,
            "bits": c.bits,
            "codebook": "channel" if c.per_channel else "tensor",
            "int8_values_max": max(len(np.unique(r)) for r in groups),
            "encoding": enc.kind,
            "index_bits": enc.bits,
            "filter_bytes": enc.nbytes,
            "dense_bytes": int(q.size),
            "bias_bytes": BIAS_BYTES * c.out_channels,
            "requant_bytes": REQUANT_BYTES * c.out_channels,
        })
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    t = {k: sum(r[k] for r in rows) for k in ("weights", "kept", "filter_bytes", "dense_bytes",
                                               "bias_bytes", "requant_bytes")}
    t["flash_bytes"] = t["filter_bytes"] + t["bias_bytes"] + t["requant_bytes"]
    t["dense_flash_bytes"] = t["dense_bytes"] + t["bias_bytes"] + t["requant_bytes"]
    return t


def paper_modules(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parameters (weights + biases) per module beside Table 1's, for the modules it lists."""
    out = []
    for module, (before, after) in PAPER_PARAMS.items():
        mine = [r for r in rows if module_of(r["layer"]) == module]
        if not mine:
            continue
        biases = sum(r["bias_bytes"] // BIAS_BYTES for r in mine)
        out.append({"module": module, "paper_before": before, "paper_after": after,
                    "before": sum(r["weights"] for r in mine) + biases,
                    "after": sum(r["kept"] for r in mine) + biases})
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%" if abs(100 * v - round(100 * v)) < 1e-9 \
        else f"{100 * v:.1f}%"


def report_markdown(record: dict[str, Any]) -> str:
    rows, t = record["layers"], record["totals"]
    lines = [
        f"# sqz-compress report: {record['model']}",
        "",
        f"Source: `{record['source']}`. Sparsity `{record['sparsity']}`, bits `{record['bits']}`, "
        f"codebook per {record['codebook']}; the int8 weights are quantized "
        f"{record['weight_quantization']}.",
        "",
        "Density is the fraction of weights kept (what the paper's Table 1 calls sparsity). "
        "Bytes are the int8 filter on the device in its smallest encoding (converter.packing: "
        "dense int8, packed b-bit codebook indices, or sparse with Rice-coded zero runs), "
        "codebooks and headers included.",
        "",
        "| layer | filter (OHWI) | weights | paper density | density | kept | bits | codebook | "
        "int8 values | encoding | bytes | dense int8 B |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {'x'.join(map(str, r['shape_ohwi']))} | {r['weights']:,} | "
            f"{_pct(r['paper_density'])} | {_pct(r['density'])} | {r['kept']:,} | {r['bits']} | "
            f"{r['codebook']} | {r['int8_values_max']} | {r['encoding']}"
            f"{'' if r['encoding'] == 'dense' else ' ' + str(r['index_bits']) + '-bit'} | "
            f"{r['filter_bytes']:,} | {r['dense_bytes']:,} |")
    lines += [
        f"| **total** | | {t['weights']:,} | | {_pct(t['kept'] / t['weights'])} | "
        f"{t['kept']:,} | | | | | **{t['filter_bytes']:,}** | {t['dense_bytes']:,} |",
        "",
        "Flash for the weights on the device with every filter packed, as "
        "`sqz-convert --packing flash` stores them (per output channel: an int32 bias, "
        f"{BIAS_BYTES} B, and a requantization multiplier and shift, {REQUANT_BYTES} B). The "
        "default, `--packing ram`, may keep a few filters plain int8 so that the peak arena "
        "stays that of plain filters: its report.md names them.",
        "",
        "| | compressed | dense int8 |",
        "|---|---:|---:|",
        f"| filters | {t['filter_bytes']:,} B | {t['dense_bytes']:,} B |",
        f"| biases (int32) | {t['bias_bytes']:,} B | {t['bias_bytes']:,} B |",
        f"| requantization constants | {t['requant_bytes']:,} B | {t['requant_bytes']:,} B |",
        f"| **total** | **{t['flash_bytes']:,} B** | {t['dense_flash_bytes']:,} B |",
    ]
    modules = record.get("paper_modules") or []
    if modules:
        lines += [
            "",
            "Parameters (weights and biases) per module beside Iandola et al. 2016, Table 1 "
            "(SqueezeNet v1.0 at 1000 classes; other versions and sizes differ in shape):",
            "",
            "| module | paper before | paper after | before | after |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in modules:
            lines.append(f"| {m['module']} | {m['paper_before']:,} | {m['paper_after']:,} | "
                         f"{m['before']:,} | {m['after']:,} |")
        lines.append(f"| **total** | {PAPER_TOTAL[0]:,} | {PAPER_TOTAL[1]:,} | "
                     f"{sum(m['before'] for m in modules):,} | "
                     f"{sum(m['after'] for m in modules):,} |")
    ft = record.get("finetune")
    if ft:
        rt, cs = ft["retrain"], ft["centroids"]
        steps = (f"the kept weights retrained for {rt['epochs']} epoch(s) (kept epoch "
                 f"{rt['best_epoch']}, held-out accuracy {rt['heldout_accuracy_before']:.2%} "
                 f"pruned -> {rt['heldout_accuracy_after']:.2%}), then " if rt else "")
        lines += [
            "",
            f"Fine-tuned on `{ft['data']}` ({ft['train_images']} images, {ft['heldout_images']} "
            f"held out) at peak learning rate {ft['lr']:g}: {steps}the centroids trained for "
            f"{cs['epochs']} epoch(s) (kept epoch {cs['best_epoch']}, held-out accuracy "
            f"{cs['heldout_accuracy_before']:.2%} shared -> {cs['heldout_accuracy_after']:.2%}, "
            "float).",
        ]
    else:
        lines += ["", "Post-training compression: no fine-tuning."]
    return "\n".join(lines) + "\n"


# --- files -------------------------------------------------------------------------------------

def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def sidecar_path(model: Path) -> Path:
    return model.with_name(model.name + COMPRESS_SIDECAR)


def report_paths(model: Path) -> tuple[Path, Path]:
    stem = model.name[: -len(model.suffix)] if model.suffix else model.name
    return model.with_name(stem + ".report.md"), model.with_name(stem + ".report.json")


def sidecar_record(codes: list[LayerCode], **meta: Any) -> dict[str, Any]:
    """The compression sidecar: how to quantize, and per layer what sqz-convert checks."""
    layers = []
    for c in codes:
        kept = int(np.count_nonzero(c.kernel()))
        layers.append({
            "name": c.name, "weights": c.size, "kept": kept, "density": kept / c.size,
            "target_density": c.target_density, "paper_density": paper_density(c.name),
            "bits": c.bits, "codebook": "channel" if c.per_channel else "tensor",
            "centroids": [[float(np.float32(v)) for v in book] for book in c.codebooks],
        })
    per_channel = bool(codes) and codes[0].per_channel
    return {"format": SIDECAR_FORMAT, "tool": f"sqz-compress {__version__}",
            "weight_quantization": "per-channel" if per_channel else "per-tensor",
            "layers": layers, **meta}


class Compression:
    """A model's compression sidecar, as sqz-convert uses it."""

    def __init__(self, record: dict[str, Any], path: Path):
        self.record, self.path = record, path
        if record.get("format") != SIDECAR_FORMAT or not isinstance(record.get("layers"), list):
            raise InputFileError(f"{path}: not a sqz-compress sidecar ({SIDECAR_FORMAT}); "
                                 "re-run sqz-compress or delete the file")
        if record.get("weight_quantization") not in ("per-tensor", "per-channel"):
            raise InputFileError(f"{path}: weight_quantization must be 'per-tensor' or "
                                 "'per-channel'")

    @classmethod
    def beside(cls, model: Path) -> Compression | None:
        path = sidecar_path(Path(model))
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except ValueError as exc:
            raise InputFileError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise InputFileError(f"{path}: not a sqz-compress sidecar ({SIDECAR_FORMAT})")
        return cls(record, path)

    @property
    def per_channel_quantization(self) -> bool:
        return self.record["weight_quantization"] == "per-channel"

    def check_quantized(self, tflite: bytes, model) -> None:
        """Every compressed layer's int8 filter: at most 2^bits values per tensor (or channel),
        zero where the float kernel is zero, no more nonzeros than were kept."""
        from . import tflite_reader

        graph = tflite_reader.read_model_bytes(tflite)
        filters = filters_by_layer(graph, [la["name"] for la in self.record["layers"]])
        fix = (f"the model was changed after sqz-compress, or this TensorFlow quantizes "
               f"differently; re-run sqz-compress, or delete {self.path.name} to convert it as "
               "an ordinary model")
        for la in self.record["layers"]:
            name, bits = la["name"], int(la["bits"])
            tensor = filters.get(name)
            if tensor is None:
                raise ModelError(f"layer '{name}' (in {self.path.name}): its filter is not in "
                                 f"the quantized model; {fix}")
            q = tensor.array()
            per_tensor = la["codebook"] == "tensor"
            if per_tensor and tensor.quant is not None and tensor.quant.per_channel:
                raise ModelError(f"layer '{name}': TFLite quantized its filter per output "
                                 "channel although its codebook is per tensor; each channel "
                                 f"would get its own int8 table. {fix}")
            groups = q.reshape(1, -1) if per_tensor else q.reshape(q.shape[0], -1)
            most = max(len(np.unique(r)) for r in groups)
            if most > 2**bits:
                raise ModelError(f"layer '{name}': its int8 filter takes {most} distinct values "
                                 f"per {la['codebook']}, more than 2^{bits} = {2**bits}; {fix}")
            kernel = np.moveaxis(model.get_layer(name).get_weights()[0], -1, 0)
            if kernel.shape != q.shape:
                raise ModelError(f"layer '{name}': int8 filter shape {q.shape} differs from the "
                                 f"float kernel's {kernel.shape}; {fix}")
            if np.any(q[kernel == 0] != 0):
                raise ModelError(f"layer '{name}': pruned weights are not zero in the int8 "
                                 f"filter; {fix}")
            if np.count_nonzero(q) > int(la["kept"]):
                raise ModelError(f"layer '{name}': the int8 filter has "
                                 f"{np.count_nonzero(q):,} nonzero weights but sqz-compress kept "
                                 f"{int(la['kept']):,}; {fix}")


def filters_by_layer(graph, names: Sequence[str]) -> dict[str, Any]:
    """The constant filter tensor of each conv / fully-connected op, by Keras layer name.
    The TFLite converter names a filter after its op's scope, e.g.
    'squeezenet1_1_1/fire2_squeeze1x1_1/convolution' for layer fire2_squeeze1x1."""
    from . import ir

    wanted = set(names)
    found: dict[str, Any] = {}
    for op in graph.ops:
        if not isinstance(op, ir.Conv2D | ir.FullyConnected) or len(op.inputs) < 2:
            continue
        tensor = graph.tensor(op.inputs[1])
        for seg in tensor.name.split("/"):
            name = seg if seg in wanted else re.sub(r"_\d+$", "", seg)
            if name in wanted:
                found.setdefault(name, tensor)
                break
    return found


# --- the command -------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    from .cli import _Parser, parse_size
    from .train import DEFAULT_AUGMENT, _parse_augment

    p = _Parser(prog="sqz-compress",
                description="Deep Compression for the device: prune, share weights with k-means "
                            "codebooks, optionally fine-tune; writes OUT.keras, its sidecars "
                            "and OUT.report.md/.json.")
    p.add_argument("model", help="a builtin name (squeezenet1_0, squeezenet1_1, ...) or a "
                                 ".keras/.h5 float model")
    p.add_argument("-o", "--output", required=True, type=Path, help="model to write (.keras)")
    p.add_argument("--weights", help="builtin models: load weights from an .npz")
    p.add_argument("--input-size", type=parse_size, help="builtin models: N or HxW")
    p.add_argument("--channels", type=int, help="builtin models: input channels")
    p.add_argument("--classes", type=int, help="builtin models: number of classes")
    p.add_argument("--preprocess", help="imagenet, simple, or a preprocessing JSON file "
                   "(default: the model's own .preprocess.json); written beside the output")
    c = p.add_argument_group("compression")
    c.add_argument("--sparsity", type=parse_sparsity, default=LayerValues(None),
                   help="fraction of each layer's weights set to zero: 'paper' (Table 1 of "
                        "the SqueezeNet paper, default), 'none', a fraction for every layer "
                        "(e.g. 0.6), and/or per-layer overrides LAYER=FRACTION, where LAYER "
                        "may be a glob; comma-separated, e.g. paper,conv10=0.9")
    c.add_argument("--bits", type=parse_bits, default=LayerValues(DEFAULT_BITS),
                   help=f"codebook size 2^bits, zero included ({MIN_BITS}..{MAX_BITS}, default "
                        f"{DEFAULT_BITS}), and/or LAYER=BITS overrides, e.g. 4,conv1=8")
    c.add_argument("--codebook", choices=CODEBOOKS, default="tensor",
                   help="one codebook per weight tensor (default; the model is then quantized "
                        "with per-tensor scales) or per output channel")
    f = p.add_argument_group("fine-tuning (optional; the pruning mask stays): retrain the kept "
                             "weights, share them, train the centroids")
    f.add_argument("--finetune", metavar="DATA_DIR",
                   help="labelled images, one subfolder per class (the model's classes)")
    f.add_argument("--retrain-epochs", type=int,
                   help="first retrain the kept weights after pruning for this many epochs, as "
                        "Deep Compression does (default: as many as --epochs; 0 skips it)")
    f.add_argument("--epochs", type=int,
                   help="then train the centroids for this many epochs (default 8)")
    f.add_argument("--lr", type=float, help="peak Adam learning rate, cosine decay (default 3e-4)")
    f.add_argument("--batch-size", type=int, help="batch size (default 64)")
    f.add_argument("--augment", type=_parse_augment,
                   help=f"as sqz-train: comma-separated augmentations or none (default "
                        f"{DEFAULT_AUGMENT})")
    f.add_argument("--val-split", type=float,
                   help="share of each class held out to pick the best epoch (default 0.1)")
    f.add_argument("--seed", type=int, help="seed for the split and shuffling (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument("--version", action="version", version=f"sqz {__version__}")
    return p


def _finetune_options(args) -> FinetuneOptions | None:
    from .train import DEFAULT_AUGMENT

    given = [n for n in ("epochs", "retrain_epochs", "lr", "batch_size", "augment",
                         "val_split", "seed")
             if getattr(args, n) is not None]
    if args.finetune is None:
        if given:
            raise UsageError(f"{', '.join('--' + g.replace('_', '-') for g in given)} set "
                             "fine-tuning options; add --finetune DATA_DIR (labelled images) "
                             "or drop them for post-training compression")
        return None
    defaults = FinetuneOptions(data=args.finetune, augment=tuple(DEFAULT_AUGMENT.split(",")))
    opts = dataclasses.replace(defaults, **{n: getattr(args, n) for n in given})
    if opts.retrain_epochs is None:
        opts = dataclasses.replace(opts, retrain_epochs=opts.epochs)
    for name, value, low in (("--epochs", opts.epochs, 1), ("--batch-size", opts.batch_size, 1),
                             ("--retrain-epochs", opts.retrain_epochs, 0),
                             ("--seed", opts.seed, 0)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")
    if not (math.isfinite(opts.lr) and opts.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {opts.lr}")
    if not 0.0 < opts.val_split < 1.0:
        raise UsageError(f"--val-split must be between 0 and 1 (exclusive), got "
                         f"{opts.val_split}")
    return opts


def compress_command(args, out: Console) -> dict[str, Any]:
    from . import sources
    from .train import load_training_folder

    output: Path = args.output
    if output.suffix != ".keras":
        raise UsageError(f"-o {output}: the compressed model must be a .keras file")
    if Path(args.model).suffix == ".tflite":
        raise UsageError(f"{args.model}: a .tflite is already int8; sqz-compress needs the float "
                         "model (.keras/.h5 or a builtin name). Compress that, then run "
                         "sqz-convert on the result")
    ft = _finetune_options(args)
    if ft is not None and not Path(ft.data).is_dir():
        raise InputFileError(f"--finetune {ft.data}: no such folder; give a folder with one "
                             "subfolder of images per class")
    if not output.parent.is_dir():
        raise InputFileError(f"-o {output}: folder {output.parent} does not exist")
    with out.status("Loading the model (TensorFlow)..."):
        from .quantize import captured_output, model_input_shape

        with captured_output():
            km, keras_path, name, source_name = sources.float_model(
                args.model, weights=args.weights, input_size=args.input_size,
                channels=args.channels, classes=args.classes)
    shape = model_input_shape(km)
    plans = plan_layers(km, args.sparsity, args.bits)
    per_channel = args.codebook == "channel"
    # Recorded beside the output when it was given, came with the model or fed the fine-tuning.
    pre = None
    had_sidecar = keras_path is not None and keras_path.with_name(
        keras_path.name + sources.PREPROCESS_SIDECAR).is_file()
    if args.preprocess or had_sidecar or ft is not None:
        pre = sources.preprocessing_for(args.preprocess, keras_path, shape)
    class_names = sources.class_names_beside(keras_path) if keras_path else None

    data = None
    if ft is not None:
        x, y, classes = load_training_folder(ft.data, pre)
        units = int(km.outputs[0].shape[-1])
        if len(classes) != units:
            raise InputFileError(f"--finetune {ft.data}: {len(classes)} class subfolders but the "
                                 f"model has {units} outputs; give a folder with one subfolder "
                                 "per class of the model")
        if class_names is not None and class_names != classes:
            raise InputFileError(f"--finetune {ft.data}: its classes ({', '.join(classes)}) "
                                 f"differ from the model's ({', '.join(class_names)})")
        class_names = classes
        data = (x, y, classes)

    console = None if args.quiet else out
    with out.status("Pruning..."):
        masks = prune_model(km, plans)
    tuned = None
    if ft is not None and ft.retrain_epochs:
        retrained = finetune(km, weight_codes(km, masks), *data, pre, ft, console,
                             epochs=ft.retrain_epochs, centroids=False)
    with out.status("Sharing weights (k-means)..."):
        codes = share_model(km, plans, masks, per_channel)
    if ft is not None:
        shared = finetune(km, codes, *data, pre, ft, console, epochs=ft.epochs)
        tuned = {"data": str(ft.data), "lr": ft.lr, "batch_size": ft.batch_size,
                 "augment": list(ft.augment), "val_split": ft.val_split, "seed": ft.seed,
                 "images": shared["images"], "train_images": shared["train_images"],
                 "heldout_images": shared["heldout_images"],
                 "retrain": retrained if ft.retrain_epochs else None, "centroids": shared,
                 "heldout_accuracy_pruned": (retrained if ft.retrain_epochs
                                             else shared)["heldout_accuracy_before"],
                 "heldout_accuracy_after": shared["heldout_accuracy_after"]}
    with out.status("Measuring the device encoding of every filter..."):
        rows = layer_rows(km, codes)
    t = totals(rows)
    meta = {"model": name, "source": source_name, "sparsity": _spec_text(args.sparsity),
            "bits": _spec_text(args.bits), "codebook": args.codebook, "finetune": tuned}
    record = sidecar_record(codes, **meta)
    report = {**meta, "tool": record["tool"],
              "weight_quantization": record["weight_quantization"], "layers": rows,
              "totals": t, "paper_modules": paper_modules(rows)}

    from .sources import CLASSES_SIDECAR, PREPROCESS_SIDECAR

    # The model, its sidecars and the report replace the old ones together: never a model
    # beside another model's compression record.
    md, js = report_paths(output)
    files: dict[Path, bytes] = {sidecar_path(output): _json_bytes(record),
                                js: _json_bytes(report), md: report_markdown(report).encode()}
    if pre is not None:
        files[output.with_name(output.name + PREPROCESS_SIDECAR)] = _json_bytes(pre.to_dict())
    if class_names is not None:
        files[output.with_name(output.name + CLASSES_SIDECAR)] = (
            json.dumps(class_names, indent=2) + "\n").encode()
    with atomic.replacing_group([output, *files]) as temps:
        with captured_output():
            km.save(temps[0])  # a temporary with the .keras suffix Keras insists on
        for tmp, data in zip(temps[1:], files.values(), strict=True):
            tmp.write_bytes(data)
    _print_summary(out, report, output, md)
    return report


def _spec_text(spec: LayerValues) -> str:
    head = "paper" if spec.default is None else f"{spec.default:g}"
    return ",".join([head] + [f"{p}={v:g}" for p, v in spec.overrides])


def _print_summary(out: Console, report: dict[str, Any], output: Path, md: Path) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col, just in (("layer", "left"), ("density", "right"), ("bits", "right"),
                      ("kept", "right"), ("encoding", "left"), ("bytes", "right"),
                      ("dense", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in report["layers"]:
        table.add_row(r["layer"], _pct(r["density"]), str(r["bits"]), f"{r['kept']:,}",
                      r["encoding"], f"{r['filter_bytes']:,}", f"{r['dense_bytes']:,}")
    out.print(table)
    t = report["totals"]
    out.print(f"[bold]{report['model']}[/]: {t['kept']:,} of {t['weights']:,} weights kept "
              f"({_pct(t['kept'] / t['weights'])}); filters {t['filter_bytes']:,} B on the "
              f"device (dense int8 {t['dense_bytes']:,} B); with biases and requantization "
              f"constants {t['flash_bytes']:,} B (dense {t['dense_flash_bytes']:,} B) with "
              "every filter packed (sqz-convert --packing flash)")
    ft = report.get("finetune")
    if ft:
        out.print(f"fine-tuned: held-out accuracy {ft['heldout_accuracy_pruned']:.2%} after "
                  f"pruning -> {ft['heldout_accuracy_after']:.2%} compressed (float)")
    out.print(f"wrote {output} (+ {sidecar_path(output).name}), {md.name} and "
              f"{md.with_suffix('.json').name}", soft_wrap=True)
    out.print(f"Next: [bold]sqz-convert {output}[/] (it quantizes "
              f"{report['weight_quantization']}, as {sidecar_path(output).name} says)")


def _compress(argv: Sequence[str] | None) -> int:
    from .cli import _consoles

    args = _parser().parse_args(argv)
    out, _ = _consoles(args.quiet)
    compress_command(args, out)
    return 0


def compress_main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    return run_cli(_compress, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(compress_main())

"""Pruning and weight sharing, in numpy (no TensorFlow): magnitude pruning masks, one-dimensional
k-means codebooks snapped to the int8 grid TFLite will use, and the per-layer plans of a model."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from .options import DEFAULT_BITS, KMEANS_ITERATIONS, LayerValues, paper_density

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


def masked_weights(weights: Sequence[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """A layer's weights (kernel first, as Keras gives them) with the kernel zeroed outside
    `mask`; the others as they are."""
    kernel, *rest = weights
    return [np.where(mask, kernel, 0).astype(kernel.dtype), *rest]


def prune_model(model, plans: Sequence[Plan]) -> dict[str, np.ndarray]:
    """Zero the smallest weights of every planned layer in place; returns the masks."""
    masks = {}
    for plan in plans:
        layer = model.get_layer(plan.name)
        weights = layer.get_weights()
        masks[plan.name] = prune_mask(weights[0], plan.density)
        layer.set_weights(masked_weights(weights, masks[plan.name]))
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

"""Packed weights: int8 filters that take few distinct values, stored as codebook indices.

A pruned and weight-shared model (sqz-compress, or any int8 .tflite built that way) has, in
each conv filter, at most 2^bits distinct int8 values per tensor or per output channel, and
many exact zeros. `encode` detects that structure and returns the smallest of these
encodings (all decoded inside the kernels, never into a whole-tensor buffer):

* dense int8: the plain filter (what every kernel reads natively);
* packed: a codebook of the values (per tensor, or per output channel) and, for every weight,
  its `bits`-bit index (zero is a codebook entry like any other);
* sparse: the codebook of the nonzero values and, for every nonzero weight, the run of zeros
  before it (Rice-coded with parameter `k`) and its `bits`-bit index; a final run reaches the
  end of the row.

Bitstream (the layout firmware/src/runtime/packed_s8.c decodes): the rows of the filter in
OHWI order (output channel by output channel, each kh * kw * c values), one after the other
with no padding between rows; bits are taken least significant first from consecutive
little-endian bytes. A Rice code of n with parameter k is q = n >> k one bits, a zero bit,
then the k low bits of n. The stream is followed by STREAM_PAD zero bytes, so a decoder may
read whole 32-bit words past its end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DENSE, PACKED, SPARSE = "dense", "packed", "sparse"
STREAM_PAD = 4
MAX_BITS = 8
# sqz_packed_filter's fixed fields: data and codebook pointers, sizes, bits, k, flags.
HEADER_BYTES = 16


@dataclass(frozen=True)
class Encoding:
    kind: str  # DENSE | PACKED | SPARSE
    bits: int  # index width (0 for DENSE)
    rice_k: int  # SPARSE only
    per_channel: bool  # one codebook per output channel
    codebook: np.ndarray  # int8, (entries,) or (channels, entries)
    stream: bytes  # the bitstream, STREAM_PAD bytes of padding included
    rows: int
    taps: int

    @property
    def nbytes(self) -> int:
        """Flash for the filter in this encoding, codebook and header included."""
        if self.kind == DENSE:
            return self.rows * self.taps
        return len(self.stream) + self.codebook.size + HEADER_BYTES

    @property
    def entries(self) -> int:
        return int(self.codebook.shape[-1]) if self.kind != DENSE else 0


def _pack_bits(bits: np.ndarray) -> bytes:
    """A 0/1 array, first bit least significant, as bytes plus the decoder's padding."""
    return np.packbits(bits.astype(np.uint8), bitorder="little").tobytes() + bytes(STREAM_PAD)


def _fixed_width(values: np.ndarray, width: int) -> np.ndarray:
    """Each value as `width` bits, least significant first, one after the other."""
    return ((values[:, None] >> np.arange(width)) & 1).reshape(-1)


def _bits_for(n_values: int) -> int:
    return max(1, int(np.ceil(np.log2(max(n_values, 2)))))


def _codebooks(w: np.ndarray, per_channel: bool, nonzero_only: bool
               ) -> tuple[np.ndarray, list[dict[int, int]]]:
    """Sorted value tables (padded by repeating the last value) and value -> index maps."""
    rows = w if per_channel else w.reshape(1, -1)
    tables = []
    for r in rows:
        vals = np.unique(r[r != 0] if nonzero_only else r)
        tables.append(vals if vals.size else np.zeros(1, np.int8))
    width = max(t.size for t in tables)
    cb = np.stack([np.pad(t, (0, width - t.size), mode="edge") for t in tables]).astype(np.int8)
    maps = [{int(v): i for i, v in enumerate(t)} for t in tables]
    return (cb if per_channel else cb[0]), maps


def _indices(w: np.ndarray, maps_or_cb, per_channel: bool) -> np.ndarray:
    cb = maps_or_cb
    if per_channel:
        return np.stack([np.searchsorted(cb[oc], row) for oc, row in enumerate(w)])
    return np.searchsorted(cb, w)


def _codebook(w: np.ndarray, per_channel: bool, nonzero_only: bool) -> np.ndarray:
    """Sorted value tables (per channel: padded by repeating the last value)."""
    rows = w if per_channel else w.reshape(1, -1)
    tables = []
    for r in rows:
        vals = np.unique(r[r != 0] if nonzero_only else r)
        tables.append(vals if vals.size else np.zeros(1, np.int8))
    width = max(t.size for t in tables)
    cb = np.stack([np.pad(t, (0, width - t.size), mode="edge") for t in tables]).astype(np.int8)
    return cb if per_channel else cb[0]


def _encode_packed(w: np.ndarray, per_channel: bool) -> Encoding | None:
    cb = _codebook(w, per_channel, nonzero_only=False)
    bits = _bits_for(cb.shape[-1])
    if bits > MAX_BITS - 1:
        return None
    idx = _indices(w, cb, per_channel).astype(np.int64).reshape(-1)
    stream = _pack_bits(_fixed_width(idx, bits))
    return Encoding(PACKED, bits, 0, per_channel, cb, stream, w.shape[0], w.shape[1])


def _encode_sparse(w: np.ndarray, per_channel: bool, k: int) -> Encoding | None:
    cb = _codebook(w, per_channel, nonzero_only=True)
    bits = _bits_for(cb.shape[-1])
    if bits > MAX_BITS:
        return None
    rows, taps = w.shape
    idx = _indices(w, cb, per_channel)
    # Tokens, row by row: (zero run, index) for every nonzero, then the run to the row's end.
    runs, values, has_value = [], [], []
    for oc in range(rows):
        nz = np.flatnonzero(w[oc])
        ends = np.append(nz, taps)
        runs.append(ends - np.concatenate(([0], nz + 1)))
        values.append(np.append(idx[oc, nz], 0))
        has_value.append(np.append(np.ones(nz.size, bool), False))
    run = np.concatenate(runs).astype(np.int64)
    value = np.concatenate(values).astype(np.int64)
    has = np.concatenate(has_value)
    q = run >> k
    length = q + 1 + k + np.where(has, bits, 0)
    start = np.concatenate(([0], np.cumsum(length)[:-1]))
    out = np.zeros(int(length.sum()), np.uint8)
    # Unary part: q ones from each token's start (a zero follows, already there).
    marks = np.zeros(out.size + 1, np.int64)
    np.add.at(marks, start, 1)
    np.add.at(marks, start + q, -1)
    out[np.cumsum(marks[:-1]) > 0] = 1
    if k:
        pos = (start + q + 1)[:, None] + np.arange(k)
        out[pos.reshape(-1)] = ((run[:, None] >> np.arange(k)) & 1).reshape(-1)
    vstart = (start + q + 1 + k)[has]
    pos = vstart[:, None] + np.arange(bits)
    out[pos.reshape(-1)] = ((value[has][:, None] >> np.arange(bits)) & 1).reshape(-1)
    return Encoding(SPARSE, bits, k, per_channel, cb, _pack_bits(out), rows, taps)


def encode(filter_ohwi: np.ndarray) -> Encoding:
    """The smallest encoding of an int8 filter (any shape whose first axis is the output
    channel); dense int8 when nothing smaller exists."""
    w = np.asarray(filter_ohwi, np.int8).reshape(filter_ohwi.shape[0], -1)
    best = Encoding(DENSE, 0, 0, False, np.zeros(0, np.int8), b"", w.shape[0], w.shape[1])
    density = np.count_nonzero(w) / max(w.size, 1)
    candidates: list[Encoding | None] = []
    for per_channel in (False, True):
        candidates.append(_encode_packed(w, per_channel))
        if density < 0.75:
            # Rice parameter near log2 of the mean zero run: try the neighbours.
            mean_run = (1 - density) / max(density, 1e-9)
            k0 = max(0, int(np.floor(np.log2(max(mean_run, 1.0)))))
            for k in sorted({max(0, k0 - 1), k0, k0 + 1}):
                candidates.append(_encode_sparse(w, per_channel, k))
    for c in candidates:
        if c is not None and c.nbytes < best.nbytes:
            best = c
    return best


def decode(enc: Encoding) -> np.ndarray:
    """The filter back as (rows, taps) int8: the reference the C decoder is tested against."""
    if enc.kind == DENSE:
        raise ValueError("a dense filter has no packed form")
    data = int.from_bytes(enc.stream, "little")
    pos = 0

    def take(width: int) -> int:
        nonlocal pos
        v = (data >> pos) & ((1 << width) - 1)
        pos += width
        return v

    def rice(k: int) -> int:
        q = 0
        while take(1):
            q += 1
        return (q << k) | (take(k) if k else 0)

    out = np.zeros((enc.rows, enc.taps), np.int8)
    for oc in range(enc.rows):
        cb = enc.codebook[oc] if enc.per_channel else enc.codebook
        if enc.kind == PACKED:
            for i in range(enc.taps):
                out[oc, i] = cb[take(enc.bits)]
            continue
        i = 0
        while True:
            i += rice(enc.rice_k)
            if i >= enc.taps:
                break
            out[oc, i] = cb[take(enc.bits)]
            i += 1
    return out

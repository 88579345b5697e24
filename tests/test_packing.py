"""Packed weights: the encoder's choice, its reference decoder, the C decoder (via ctypes), and
packed convs run by the kernels, bit for bit against LiteRT BUILTIN_REF."""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
from golden import reference
from hypothesis import HealthCheck, Phase, assume, event, example, given, settings
from hypothesis import strategies as st
from tflbuild import GraphBuilder, conv_options, conv_out_size

from converter import arch as archs
from converter.device import build
from converter.ir import packing

Q = (0.05, -3)


def _filter(rng, rows, taps, values, density):
    cb = np.unique(rng.integers(-127, 128, size=values * 4))[:values]
    w = rng.choice(cb, size=(rows, taps)).astype(np.int8)
    return (w * (rng.random(w.shape) < density)).astype(np.int8)


def test_dense_weights_stay_dense():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(16, 144), dtype=np.int8)
    assert packing.encode(w).kind == packing.DENSE


def test_the_smallest_encoding_wins():
    rng = np.random.default_rng(1)
    dense6 = _filter(rng, 64, 144, 60, 1.0)
    e = packing.encode(dense6)
    assert (e.kind, e.bits, e.per_channel) == (packing.PACKED, 6, False)
    assert e.nbytes == 64 * 144 * 6 // 8 + packing.STREAM_PAD + e.codebook.size + 16
    sparse = _filter(rng, 64, 144, 60, 0.3)
    s = packing.encode(sparse)
    assert s.kind == packing.SPARSE and s.bits == 6
    assert s.nbytes < 0.45 * 64 * 144  # about 3 bits per weight at 30 % density


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 20), taps=st.integers(1, 200), values=st.integers(1, 200),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 2**31))
def test_every_encoding_decodes_to_the_filter(rows, taps, values, density, seed):
    w = _filter(np.random.default_rng(seed), rows, taps, values, density)
    encs = [packing.encode(w)]
    for per_channel in (False, True):
        encs.append(packing._encode_packed(w, per_channel))
        for k in (0, 1, 3):
            encs.append(packing._encode_sparse(w, per_channel, k))
    for e in encs:
        if e is not None and e.kind != packing.DENSE:
            assert np.array_equal(packing.decode(e), w)


class CPacked(ctypes.Structure):
    _fields_ = [("stream", ctypes.c_void_p), ("codebook", ctypes.c_void_p),
                ("entries", ctypes.c_uint16), ("bits", ctypes.c_uint8),
                ("rice_k", ctypes.c_uint8), ("sparse", ctypes.c_uint8),
                ("per_channel", ctypes.c_uint8), ("quant_per_tensor", ctypes.c_uint8)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / "libsqz.so"
    cmd = [build.compiler(), *build.WARN_FLAGS, "-O1", "-shared", "-fPIC",
           "-fsanitize=undefined", "-I", str(build.include_dirs()[0]),
           *map(str, build.runtime_sources()), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(out))


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 24), taps=st.integers(1, 300), values=st.integers(1, 255),
       density=st.floats(0.0, 1.0), block=st.integers(1, 7), pad=st.integers(0, 20),
       seed=st.integers(0, 2**31))
def test_c_decoder_matches_the_reference(lib, rows, taps, values, density, block, pad, seed):
    """Blocks of rows decoded in order, the bit cursor carried from one to the next."""
    w = _filter(np.random.default_rng(seed), rows, taps, values, density)
    for per_channel in (False, True):
        for e in (packing._encode_packed(w, per_channel),
                  packing._encode_sparse(w, per_channel, seed % 4)):
            if e is None:
                continue
            stream = np.frombuffer(e.stream, np.uint8).copy()
            cb = np.ascontiguousarray(e.codebook.reshape(-1))
            pf = CPacked(stream.ctypes.data, cb.ctypes.data, e.entries, e.bits, e.rice_k,
                         int(e.kind == packing.SPARSE), int(per_channel), 0)
            row_len = taps + pad
            out = np.full((rows, row_len), 99, np.int8)
            cursor = ctypes.c_uint32(0)
            for first in range(0, rows, block):
                n = min(block, rows - first)
                view = out[first:first + n]
                assert lib.sqz_packed_decode_rows(
                    ctypes.byref(pf), taps, first, n, row_len, ctypes.byref(cursor),
                    view.ctypes.data_as(ctypes.c_void_p)) == 0
            assert np.array_equal(out[:, :taps], w)
            assert not out[:, taps:].any()


# --- packed convs through the whole converter, against the reference -------------------------

EXAMPLES = settings(max_examples=30, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _packed_conv(g, x, shape, filters, k, stride, pad, rng, name, density, values,
                 per_tensor, per_channel_codebook, act="relu"):
    _, h, w, c = shape
    if per_channel_codebook:
        wd = np.stack([_filter(rng, 1, k * k * c, values, density)[0] for _ in range(filters)])
    else:
        wd = _filter(rng, filters, k * k * c, values, density)
    wd = wd.reshape(filters, k, k, c).astype(np.int64)
    if per_tensor:
        ws = np.array([0.01], np.float32)
        bias_scale = np.full(filters, np.float32(Q[0]) * ws[0], np.float32)
    else:
        ws = rng.uniform(0.005, 0.02, filters).astype(np.float32)
        bias_scale = (np.float32(Q[0]) * ws).astype(np.float32)
    wt = g.tensor(f"{name}/w", wd.shape, "int8", ws, np.zeros(ws.size), 0, wd)
    bt = g.tensor(f"{name}/b", (filters,), "int32", bias_scale, np.zeros(filters), 0,
                  rng.integers(-2000, 2000, size=(filters,)))
    oh, ow = conv_out_size(h, k, stride, pad), conv_out_size(w, k, stride, pad)
    y = g.tensor(f"{name}/out", (1, oh, ow, filters), "int8", *Q)
    g.op("CONV_2D", [x, wt, bt], [y], "Conv2DOptions", conv_options((stride, stride), pad,
                                                                     act))
    return y, (1, oh, ow, filters)


packed_cases = st.fixed_dictionaries(dict(
    h=st.integers(3, 12), w=st.integers(3, 12), c=st.integers(4, 40),
    layers=st.lists(st.tuples(st.sampled_from([1, 3]), st.integers(1, 2),
                              st.sampled_from(["same", "valid"]), st.integers(16, 70),
                              st.floats(0.1, 1.0), st.integers(2, 64), st.booleans(),
                              st.booleans()), min_size=1, max_size=3),
    seed=st.integers(0, 2**31), stream=st.sampled_from(["off", "full"]),
    # No clamp: the S3's PIE records in their general form (the sign fix-up).
    act=st.sampled_from(["relu", "none"]),
    rows=st.sampled_from([None, 1, 2, 3, 5, 16]), block=st.sampled_from([None, 0, 16, 64]),
    # The kernels under test: every filter packing shrinks is packed, whatever the arena.
    packing=st.just("flash")))


def build_packed_convs(case):
    """Convs whose filters take few values (and zeros): None when no layer fits the input."""
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    h, w, c = case["h"], case["w"], case["c"]
    shape = (1, h, w, c)
    x = g.tensor("x", shape, "int8", *Q)
    t = x
    for n, (k, s, pad, filters, density, values, per_tensor, per_ch) in enumerate(
            case["layers"]):
        if pad == "valid" and min(shape[1:3]) < k:
            continue
        t, shape = _packed_conv(g, t, shape, filters, k, s, pad, rng, f"c{n}", density, values,
                                per_tensor, per_ch, case.get("act", "relu"))
    if t is x:
        return None
    return g.build([x], [t]), rng.integers(-128, 128, size=(3, h, w, c), dtype=np.int8)


# Paths the draws rarely reach: a 3x3 filter over whole vectors of channels (the S3 decodes
# its rows in place, several filter rows per channel), and a block larger than the least.
_RARE = [dict(h=6, w=7, c=16, layers=[(3, 1, "same", 40, 0.5, 16, True, False)], seed=3,
              stream="off", act="relu", rows=None, block=None, packing="flash"),
         dict(h=5, w=6, c=40, layers=[(3, 1, "same", 48, 0.7, 30, False, False)], seed=4,
              stream="full", act="none", rows=3, block=64, packing="flash")]


@pytest.mark.parametrize("arch", [a for a in archs.available() if archs.runs_on_host(a)])
@EXAMPLES
@example(case=_RARE[0])
@example(case=_RARE[1])
@given(case=packed_cases)
def test_packed_convs_bit_exact(sqz_runner, arch, case):
    """Every architecture's packed kernels that run on the host (the Armv7E-M ones do: their
    C computes what the DSP instructions do); the emulated boards run theirs in
    tests/test_kernels_target.py."""
    built = build_packed_convs(case)
    assume(built is not None)
    buf, xs = built
    kw = dict(stream=case["stream"], arch=arch, rows_per_call=case["rows"],
              decode_block=case["block"], packing=case["packing"])
    exe, conv = sqz_runner.compile(buf, **kw)
    # Packing is chosen only where it is smaller than the plain filter.
    assume(conv.lowered.any_packed)
    assert all(archs.conv_kernel(s.kernel).arch in (arch, "portable")
               for s in conv.lowered.steps if getattr(s, "packed", None) is not None)
    packed = [s for s in conv.lowered.steps if getattr(s, "packed", None) is not None]
    if case["rows"]:
        assert all(s.rows_per_call == min(case["rows"], s.output_dims.h) for s in packed)
    # An architecture with a packed kernel runs every packed layer on it, or says why not.
    if any(k.packed for k in getattr(archs.VARIANTS.get(arch), "KERNELS", ())):
        assert all(archs.conv_kernel(s.kernel).arch == arch or archs.fallback_reason(s, arch)
                   for s in packed)
    ours = sqz_runner.run(buf, xs, **kw)
    assert np.array_equal(ours, reference(buf, xs))


@pytest.mark.parametrize("arch", [a for a in archs.available() if archs.runs_on_host(a)])
@settings(max_examples=40, deadline=None)
@given(case=packed_cases, stream=st.sampled_from(["off", "full", "auto"]),
       forced=st.sampled_from([{}, {"rows_per_call": 3, "decode_block": 64},
                               {"rows_per_call": 1, "decode_block": 0}]))
def test_ram_packing_keeps_the_arena_of_plain_filters(arch, case, stream, forced):
    """--packing ram: never a larger arena than plain filters (with rows per call and blocks
    as chosen or fixed); each filter packing shrinks is either packed or kept plain with the
    arena growth that refused it; never more flash than plain filters, never less than every
    filter packed."""
    from converter import passes
    from converter.frontend import tflite_reader
    from converter.ir.lower import lower
    from converter.ir.steps import ConvStep
    from converter.passes import pack
    from converter.passes.budget import weight_bytes

    built = build_packed_convs(case)
    assume(built is not None)
    lw = lower(tflite_reader.read_model_bytes(built[0]))
    assume(pack.encodings(lw))
    runs = {mode: passes.run_passes(lw, arch=arch, stream_mode=stream, packing_mode=mode,
                                    **forced) for mode in pack.PACKING_MODES}
    (ram, ram_lay), (every, _), (plain, plain_lay) = (runs[m] for m in ("ram", "flash", "off"))
    assert ram_lay.arena_bytes <= plain_lay.arena_bytes
    assert weight_bytes(every) <= weight_bytes(ram) <= weight_bytes(plain)
    for r, f in zip(ram.steps, every.steps, strict=True):
        if not isinstance(r, ConvStep):
            continue
        assert (f.packed is not None) == (r.packed is not None or r.kept_plain is not None)
        assert r.packed is None or r.kept_plain is None
        if r.kept_plain:
            assert r.kept_plain.arena_growth > 0
            assert r.kept_plain.flash_saving == r.weight_bytes - f.weight_bytes
        event("kept plain" if r.kept_plain else "packed" if r.packed else "plain")


def test_rows_are_chosen_on_the_schedule_that_leaves_room():
    """choose_rows_among: of schedules with the same arena, the one whose room lets the packed
    layers make more rows per call wins, whatever its position."""
    import dataclasses

    from converter import passes
    from converter.frontend import tflite_reader
    from converter.ir.lower import lower
    from converter.passes import rows

    case = dict(h=12, w=12, c=16, seed=3, stream="full", rows=None, block=None,
                layers=[(3, 1, "same", 40, 0.3, 8, True, False),
                        (1, 1, "same", 48, 0.3, 8, True, False)])
    buf, _ = build_packed_convs(case)
    lw, lay = passes.run_passes(lower(tflite_reader.read_model_bytes(buf)), arch="portable",
                                rows_per_call=1, packing_mode="flash")
    assert any(rows.makes_rows(s) for s in lw.steps)

    def refuse(trial):
        return dataclasses.replace(lay, arena_bytes=lay.arena_bytes + 1)

    def accept(trial):
        return lay

    for order in ([(lay, refuse), (lay, accept)], [(lay, accept), (lay, refuse)]):
        chosen, _ = rows.choose_rows_among(lw, order)
        packed = [s for s in chosen.steps if rows.makes_rows(s)]
        assert all(s.rows_per_call == min(s.output_dims.h, 16) for s in packed)
    chosen, _ = rows.choose_rows_among(lw, [(lay, refuse)])
    assert all(s.rows_per_call == 1 for s in chosen.steps if rows.makes_rows(s))

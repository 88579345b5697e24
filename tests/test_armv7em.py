"""The Armv7E-M variants' converter side and arithmetic: the closed-form output stage equals
TFLite's two roundings on every input it is used for, the weight layout holds each weight once,
and the variants are chosen where they apply (and only there)."""

from __future__ import annotations

import ctypes
import dataclasses
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import arch, targets
from converter.arch import armv7em, portable
from converter.device import build
from converter.ir.quantmath import multiply_by_quantized_multiplier
from converter.ir.steps import ConvStep, Dims, PoolStep


def requantize_doubled(acc: int, mult: int, shift: int, offset: int) -> int:
    """sqz_requantize_doubled (firmware/src/arch/armv7em/mac.h) on acc2 = 2 * acc, with
    Python integers: SMMLAR's 64-bit sum, its high word, the shift, SSAT."""
    r = -shift
    acc2 = 2 * acc
    hi2 = (2 * offset + 1) << (r - 1)
    y = (hi2 + (-1 if acc2 < 0 else 0)) * 2**32 + acc2 * mult + 2**31
    assert -2**63 <= y < 2**63  # SMMLAR's sum never wraps in the range the kernel uses
    return max(-128, min(127, (y >> 32) >> r))


def reference(acc: int, mult: int, shift: int, offset: int) -> int:
    return max(-128, min(127, multiply_by_quantized_multiplier(acc, mult, shift) + offset))


# Where the kernel takes the closed form (all_fast in conv_s8_armv7em.c): right shifts 1..22,
# non-negative multipliers (QuantizeMultiplier gives 0 or [2^30, 2^31)), |acc| < 2^30.
ACC_EDGES = [0, 1, -1, 2, -2, 2**29, -2**29, 2**30 - 1, -(2**30 - 1), 12345, -12345]
MULT_EDGES = [0, 2**30, 2**30 + 1, 2**31 - 1, 1518500250]


@settings(max_examples=3000, deadline=None)
@given(acc=st.one_of(st.sampled_from(ACC_EDGES), st.integers(-(2**30 - 1), 2**30 - 1),
                     st.integers(-2**20, 2**20)),
       mult=st.one_of(st.sampled_from(MULT_EDGES), st.integers(2**30, 2**31 - 1)),
       shift=st.integers(-22, -1), offset=st.integers(-128, 127))
def test_closed_form_output_stage_equals_the_reference(acc, mult, shift, offset):
    assert requantize_doubled(acc, mult, shift, offset) == reference(acc, mult, shift, offset)


def test_closed_form_on_the_rounding_boundaries():
    """Exact halves after each rounding, where the sign correction decides."""
    for shift in range(-22, 0):
        r = -shift
        for mult in (2**30, 2**31 - 1, 3 << 29):
            for k in range(-40, 41):
                # acc * mult / 2^31 close to k * 2^(r-1): the second rounding's half-way points
                acc = (k * 2**(r - 1) * 2**31) // mult
                for a in (acc - 1, acc, acc + 1):
                    if abs(a) < 2**30:
                        for offset in (-128, 0, 127):
                            assert requantize_doubled(a, mult, shift, offset) == \
                                reference(a, mult, shift, offset)


def _conv(n, kh, kw, c, *, dilation=(1, 1), seed=0):
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, size=(n, kh, kw, c), dtype=np.int8)
    return ConvStep(name="c", op_index=0, reads=(0,), writes=(1,), input=0, output=1,
                    input_dims=Dims(1, 8, 9, c), filter_dims=Dims(n, kh, kw, c),
                    output_dims=Dims(1, 6, 7, n), filter=w.tobytes(), bias=(0,) * n,
                    multiplier=(1 << 30,) * n, shift=(-5,) * n, input_offset=0,
                    output_offset=0, stride=(1, 1), padding=(0, 0), dilation=dilation,
                    act_min=-128, act_max=127, output_pixel_stride=n), w


@pytest.mark.parametrize("n,kh,kw,c", [(4, 3, 3, 3), (5, 1, 1, 8), (7, 3, 3, 16), (1, 2, 3, 5)])
def test_weight_layout_pairs_channels_four_taps_at_a_time(n, kh, kw, c):
    step, w = _conv(n, kh, kw, c)
    k = armv7em.CONV
    s = dataclasses.replace(step, kernel=k.symbol)
    flat = s.filter_values()
    row = k.filter_row_len(s)
    assert row % 4 == 0 and row - 4 < kh * kw * c <= row
    assert flat.dtype == np.int8 and flat.size == n * row
    padded = np.zeros((n, row), np.int8)
    padded[:, :kh * kw * c] = w.reshape(n, -1)
    for oc in range(n):
        pair, second = divmod(oc, 2)
        for q in range(row // 4):
            if oc < n - n % 2:
                at = pair * 2 * row + q * 8 + second * 4
            else:  # an odd last channel, alone after the pairs
                at = (n - 1) * row + q * 4
            assert flat[at:at + 4].tolist() == padded[oc, 4 * q:4 * q + 4].tolist()
    # Padding to four taps is the only growth; never more than the portable layout's.
    assert flat.size <= portable.PORTABLE_CONV.filter_row_len(step) * n + 3 * n


def test_the_report_says_why_a_layer_falls_back_to_the_portable_kernel():
    """A dilated conv on an armv7em board runs the portable kernel, and report.md says why;
    a layer the variant takes, and any layer of a portable conversion, says nothing."""
    from tflbuild import GraphBuilder, add_conv

    from converter import convert
    from converter.report import build_report

    rng = np.random.default_rng(0)
    g = GraphBuilder()
    q = (0.05, -3)
    x = g.tensor("x", (1, 9, 9, 8), "int8", *q)
    y, shape = add_conv(g, x, (1, 9, 9, 8), q, 8, (3, 3), (1, 1), "same", "relu", [0.01] * 8,
                        q, rng, dilation=(2, 2), name="dilated")
    z, _ = add_conv(g, y, shape, q, 8, (3, 3), (1, 1), "same", "relu", [0.01] * 8, q, rng,
                    name="plain")
    buf = g.build([x], [z])
    for arch_name, want in (("armv7em", "sqz_conv_s8_armv7em_row: dilated filter"),
                            ("portable", None)):
        conv = convert.convert_tflite(buf, targets.load("mps2-an386"), model_name="m",
                                      source_name="m.tflite", arch=arch_name)
        rows = build_report(conv, calibration="test").layers
        assert [r.fallback for r in rows] == ["", want or "", ""]  # the input rows, 2 convs
        text = build_report(conv, calibration="test").markdown()
        assert (f"sqz_conv_s8_row (portable fallback: {want})" in text) == (want is not None)


def test_variants_are_chosen_where_they_apply():
    assert "armv7em" in arch.available()
    assert targets.load("mps2-an386").arch == "armv7em"
    assert targets.load("nucleo_f767zi").arch == "armv7em"
    assert targets.load("esp32s3").arch == "esp32s3"  # its own (PIE) variants
    step, _ = _conv(4, 3, 3, 8)
    assert arch.select_conv(step, "armv7em") is armv7em.CONV
    assert arch.select_conv(step, "portable") is portable.PORTABLE_CONV
    dilated, _ = _conv(4, 3, 3, 8, dilation=(2, 1))
    assert arch.select_conv(dilated, "armv7em") is portable.PORTABLE_CONV
    assert arch.fallback_reason(dilated, "armv7em") == "sqz_conv_s8_armv7em_row: dilated filter"
    pool = PoolStep(name="p", op_index=1, reads=(1,), writes=(2,), kind="max", input=1,
                    output=2, input_dims=Dims(1, 8, 8, 4), filter_hw=(3, 3),
                    output_dims=Dims(1, 3, 3, 4), stride=(2, 2), padding=(0, 0), act_min=-128,
                    act_max=127)
    assert arch.select_pool(pool, "armv7em") is armv7em.MAX_POOL_PUSH
    avg = dataclasses.replace(pool, kind="avg", kernel="sqz_avg_pool_s8_row")
    assert arch.select_pool(avg, "armv7em").symbol == "sqz_avg_pool_s8_row"


# ---- the C row kernel against the portable one, called directly ------------------------------

class CDims(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int32) for f in ("n", "h", "w", "c")]


class CConvParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "input_offset", "output_offset", "stride_h", "stride_w", "pad_h", "pad_w", "dil_h",
        "dil_w", "act_min", "act_max", "output_pixel_stride")]


class CQuant(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.POINTER(ctypes.c_int32)),
                ("shift", ctypes.POINTER(ctypes.c_int8))]


class CContext(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("size", ctypes.c_int32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("lib") / "libsqz.so"
    cmd = [build.compiler(), *build.WARN_FLAGS, "-O1", "-shared", "-fPIC", "-I",
           str(build.include_dirs()[0]), *map(str, build.runtime_sources()),
           *map(str, arch.sources("armv7em")), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(out))


def _ptr(a: np.ndarray, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _run_row(lib, symbol, step, filt, rows, scratch_bytes, pitch, quant, bias, act):
    f, i, o = step.filter_dims, step.input_dims, step.output_dims
    p = CConvParams(step.input_offset, step.output_offset, *step.stride, *step.padding, 1, 1,
                    *act, pitch)
    scratch = np.zeros(scratch_bytes // 4 + 1, np.uint32)
    ctx = CContext(ctypes.c_void_p(scratch.ctypes.data), scratch_bytes)
    row_ptrs = (ctypes.c_void_p * len(rows))(*[None if r is None else r.ctypes.data
                                               for r in rows])
    out = np.full(o.w * pitch, 77, np.int8)
    status = getattr(lib, symbol)(
        ctypes.byref(ctx), ctypes.byref(p), ctypes.byref(quant),
        ctypes.byref(CDims(*i.as_tuple())), row_ptrs, ctypes.byref(CDims(*f.as_tuple())),
        ctypes.c_void_p(filt.ctypes.data), ctypes.byref(CDims(1, 1, 1, f.n)),
        _ptr(bias, ctypes.c_int32), ctypes.byref(CDims(*o.as_tuple())),
        ctypes.c_void_p(out.ctypes.data))
    return status, out


@settings(max_examples=150, deadline=None)
@given(kh=st.sampled_from([1, 2, 3]), kw=st.sampled_from([1, 3, 4]), c=st.integers(1, 40),
       n=st.integers(1, 13), in_w=st.integers(1, 30), stride=st.integers(1, 2),
       pad=st.integers(0, 2), extra=st.integers(0, 3), null_row=st.booleans(),
       act=st.sampled_from([(-128, 127), (-20, 127), (-128, 50), (-5, 90)]),
       shifts=st.sampled_from([(-12, -1), (-3, 0), (-22, 2)]), scratch=st.integers(0, 3),
       seed=st.integers(0, 2**31))
def test_row_kernel_matches_the_portable_one(lib, kh, kw, c, n, in_w, stride, pad, extra,
                                             null_row, act, shifts, scratch, seed):
    """Any shape, a channel slice of a wider tensor (pixels `pitch` apart, the bytes between
    untouched), rows of padding (NULL), left and right padding, narrow activations, shifts
    outside the closed form's range, and any scratch from the least to the asked-for size."""
    rng = np.random.default_rng(seed)
    out_w = (in_w + 2 * pad - kw) // stride + 1
    if out_w < 1:
        return
    step, _ = _conv(n, kh, kw, c, seed=seed)
    step = dataclasses.replace(step, input_dims=Dims(1, kh, in_w, c),
                               output_dims=Dims(1, 1, out_w, n), stride=(stride, stride),
                               padding=(0, pad), input_offset=int(rng.integers(-127, 128)),
                               output_offset=int(rng.integers(-128, 128)))
    rows = [rng.integers(-128, 128, size=in_w * c, dtype=np.int8) for _ in range(kh)]
    if null_row:
        rows[0] = None
    mult = rng.integers(2**30, 2**31, size=n).astype(np.int32)
    shift = rng.integers(shifts[0], shifts[1] + 1, size=n).astype(np.int8)
    quant = CQuant(_ptr(mult, ctypes.c_int32), _ptr(shift, ctypes.c_int8))
    bias = rng.integers(-50000, 50000, size=n).astype(np.int32)
    pitch = n + extra
    ref = portable.PORTABLE_CONV
    ref_step = dataclasses.replace(step, kernel=ref.symbol)
    status, want = _run_row(lib, ref.symbol, ref_step, ref.filter_layout(ref_step),
                            rows, ref.scratch_bytes(ref_step), pitch, quant, bias, act)
    assert status == 0
    v = armv7em.CONV
    v_step = dataclasses.replace(step, kernel=v.symbol)
    lo, hi = armv7em.min_scratch_bytes(v_step), v.scratch_bytes(v_step)
    size = [lo, lo + 4 * 16 * armv7em.quads(v_step), hi, hi + 100][scratch]
    status, got = _run_row(lib, v.symbol, v_step, v.filter_layout(v_step), rows,
                           max(lo, size), pitch, quant, bias, act)
    assert status == 0
    assert got.tolist() == want.tolist()
    status, _ = _run_row(lib, v.symbol, v_step, v.filter_layout(v_step), rows, lo - 4, pitch,
                         quant, bias, act)
    assert status == 3  # SQZ_ERR_SCRATCH below the least it runs with


def test_sqz_convert_arch_option(tmp_path, capsys):
    """--arch overrides the board profile's kernel variants (e.g. to measure the portable
    kernels on the Cortex-M4 board); an unknown arch is a usage error naming the choices."""
    from converter.commands.convert import convert_main

    base = ["squeezenet1_1", "--input-size", "32", "--classes", "2", "--target", "mps2-an386",
            "--calib-samples", "2", "-q"]
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (the mps2-an386 conversion measures it)")
    assert convert_main([*base, "--out", str(tmp_path / "v")]) == 0
    assert "sqz_conv_s8_armv7em_row" in (tmp_path / "v" / "model.c").read_text()
    assert convert_main([*base, "--arch", "portable", "--out", str(tmp_path / "p")]) == 0
    model_c = (tmp_path / "p" / "model.c").read_text()
    assert "armv7em" not in model_c and "sqz_conv_s8_row" in model_c
    assert 'SQZ_ARCH "portable"' in (tmp_path / "p" / "sqz_target.h").read_text()
    capsys.readouterr()
    assert convert_main([*base, "--arch", "xtensa", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--arch" in err and "armv7em" in err and "portable" in err

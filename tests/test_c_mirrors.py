"""The Python mirrors of C-side pure functions agree with the C itself (called via ctypes):
scratch sizes, the padded filter row length, ring rows, and the integer requantization."""

from __future__ import annotations

import ctypes
import dataclasses
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import arch
from converter.arch import armv7em, esp32s3, mve, portable
from converter.device import build
from converter.ir.quantmath import multiply_by_quantized_multiplier
from converter.ir.steps import ConvStep, Dims, MeanStep, PoolStep
from converter.passes import stream


class CDims(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("h", ctypes.c_int32), ("w", ctypes.c_int32),
                ("c", ctypes.c_int32)]


class CConvParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "input_offset", "output_offset", "stride_h", "stride_w", "pad_h", "pad_w", "dil_h",
        "dil_w", "act_min", "act_max", "output_pixel_stride")]


class CRequantParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "input_offset", "output_offset", "multiplier", "shift")]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("lib") / "libsqz.so"
    variants = [src for a in arch.available() for src in arch.sources(a)]
    cmd = [build.compiler(), *build.WARN_FLAGS, "-O1", "-shared", "-fPIC", "-I",
           str(build.include_dirs()[0]), *map(str, build.runtime_sources()),
           *map(str, variants), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(out))


def _conv_step(in_d, f_d, out_d, stride, dilation):
    return ConvStep(name="c", op_index=0, reads=(0,), writes=(1,), input=0, output=1,
                    input_dims=in_d, filter_dims=f_d, output_dims=out_d,
                    filter=bytes(f_d.n * f_d.h * f_d.w * f_d.c), bias=(0,) * f_d.n,
                    multiplier=(1 << 30,) * f_d.n, shift=(0,) * f_d.n, input_offset=0,
                    output_offset=0, stride=stride, padding=(0, 0), dilation=dilation,
                    act_min=-128, act_max=127, output_pixel_stride=f_d.n)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 9), st.integers(2, 70), st.integers(1, 6), st.integers(1, 4),
       st.sampled_from([1, 3, 5]))
def test_grouped_and_depthwise_scratch_match_c(lib, w, groups, per_in, per_out, k):
    """The grouped kernel for any grouping, the Armv7E-M depthwise one for multiplier 1."""
    in_d = Dims(1, 4, w, groups * per_in)
    f_d = Dims(groups * per_out, k, k, per_in)
    out_d = Dims(1, 4, w, f_d.n)
    step = _conv_step(in_d, f_d, out_d, (1, 1), (1, 1))
    p = CConvParams(0, 0, 1, 1, 0, 0, 1, 1, -128, 127, f_d.n)
    args = [ctypes.byref(p), ctypes.byref(CDims(*in_d.as_tuple())),
            ctypes.byref(CDims(*f_d.as_tuple())), ctypes.byref(CDims(*out_d.as_tuple()))]
    g = portable.PORTABLE_GROUPED_CONV
    assert getattr(lib, g.scratch_symbol)(*args) == g.scratch_bytes(step)
    assert len(g.filter_layout(step)) == f_d.n * k * k * per_in
    pie = esp32s3.PIE_DEPTHWISE  # its scratch function, whether or not it takes the layer
    assert getattr(lib, pie.scratch_symbol)(*args) == pie.scratch_bytes(step)
    for d, a in ((portable.PORTABLE_DEPTHWISE, "portable"), (armv7em.DEPTHWISE, "armv7em")):
        if per_in == per_out == 1:
            assert arch.select_conv(step, a) is d
            assert getattr(lib, d.scratch_symbol)(*args) == d.scratch_bytes(step)
            assert len(d.filter_layout(step)) == d.filter_row_len(step) * f_d.n
        else:
            assert arch.select_conv(step, a) is g
            assert d.refuses(step) == "not depthwise with depth multiplier 1"


conv_shapes = st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 70),
                        st.integers(1, 70), st.sampled_from([1, 2, 3, 5, 7]),
                        st.sampled_from([1, 3]), st.integers(1, 3), st.integers(1, 2))


@settings(max_examples=200, deadline=None)
@given(conv_shapes)
def test_conv_scratch_and_filter_layout_match_c(lib, shape):
    h, w, cin, cout, kh, kw, stride, dil = shape
    in_d = Dims(1, h, w, cin)
    f_d = Dims(cout, kh, kw, cin)
    oh = max(1, (h - (kh - 1) * dil - 1) // stride + 1)
    ow = max(1, (w - (kw - 1) * dil - 1) // stride + 1)
    out_d = Dims(1, oh, ow, cout)
    step = _conv_step(in_d, f_d, out_d, (stride, stride), (dil, dil))
    p = CConvParams(0, 0, stride, stride, 0, 0, dil, dil, -128, 127, cout)
    args = [ctypes.byref(p), ctypes.byref(CDims(*in_d.as_tuple())),
            ctypes.byref(CDims(*f_d.as_tuple())), ctypes.byref(CDims(*out_d.as_tuple()))]
    k = portable.PORTABLE_CONV
    assert getattr(lib, k.scratch_symbol)(*args) == step.scratch_bytes()
    assert lib.sqz_conv_s8_filter_row_len(args[0], args[2]) == k.filter_row_len(step)
    assert len(step.filter_values()) == k.filter_row_len(step) * cout
    assert lib.sqz_conv_s8_ring_rows(args[0], args[2]) == stream.ring_rows(step)
    packed = portable.PORTABLE_PACKED_CONV
    assert getattr(lib, packed.scratch_symbol)(*args) == packed.scratch_bytes(step)
    assert lib.sqz_conv_s8_packed_block(args[0], args[2]) == portable.packed_block(step)

    pie = esp32s3.PIE_PACKED_CONV  # the S3's, as its C (plain but for the asm) builds here
    assert getattr(lib, pie.scratch_symbol)(*args) == pie.scratch_bytes(step)
    assert lib.sqz_conv_s8_pie_packed_block(args[0], args[2]) == esp32s3.packed_block(step)

    # The Armv7E-M conv (its C compiles on the host) for the layers it takes.
    v = armv7em.CONV
    if v.supports(step):
        as_v = dataclasses.replace(step, kernel=v.symbol)
        assert getattr(lib, v.scratch_symbol)(*args) == as_v.scratch_bytes()
        assert lib.sqz_conv_s8_armv7em_min_scratch_size(*args) == \
            armv7em.min_scratch_bytes(as_v)
        assert lib.sqz_conv_s8_armv7em_filter_row_len(args[0], args[2]) == \
            v.filter_row_len(as_v)
        assert len(as_v.filter_values()) == v.filter_row_len(as_v) * cout
        vp = armv7em.PACKED_CONV
        assert getattr(lib, vp.scratch_symbol)(*args) == vp.scratch_bytes(step)
        assert lib.sqz_conv_s8_armv7em_packed_block(args[0], args[2]) == \
            armv7em.packed_block(step)

    # The Helium conv (its C twin compiles on the host) for the layers it takes.
    m = mve.CONV
    if m.supports(step):
        as_m = dataclasses.replace(step, kernel=m.symbol)
        assert getattr(lib, m.scratch_symbol)(*args) == as_m.scratch_bytes()
        assert lib.sqz_conv_s8_mve_min_scratch_size(*args) == mve.min_scratch_bytes(as_m)
        assert lib.sqz_conv_s8_mve_filter_row_len(args[0], args[2]) == m.filter_row_len(as_m)
        assert len(as_m.filter_values()) == m.filter_row_len(as_m) * -(-cout // 4) * 4

    # The window form (average pools); max pools take the push form, which reads one row.
    pool = PoolStep(name="p", op_index=1, reads=(1,), writes=(2,), kind="avg", input=1,
                    output=2, input_dims=out_d, filter_hw=(kh, kw), output_dims=out_d,
                    stride=(2, 2), padding=(0, 0), act_min=-128, act_max=127)
    assert lib.sqz_pool_s8_ring_rows(ctypes.byref(CDims(1, kh, kw, 1))) == \
        stream.ring_rows(pool)


def test_mean_scratch_matches_c(lib):
    for c in (1, 7, 1000):
        d = Dims(1, 13, 13, c)
        step = MeanStep(name="m", op_index=0, reads=(0,), writes=(1,), input=0, output=1,
                        input_dims=d, output_dims=Dims(1, 1, 1, c), input_offset=0,
                        output_offset=0, multiplier=1 << 30, shift=0)
        assert lib.sqz_mean_s8_scratch_size(ctypes.byref(CDims(*d.as_tuple()))) == \
            step.scratch_bytes()


@settings(max_examples=300, deadline=None)
# QuantizeMultiplier of a ratio of two float32 scales never exceeds 2**31 - 128 (the closest
# mantissa ratio below 1 is 1 - 2**-24); above it, -128 plus the output zero point could
# overflow int32, a case no real model reaches.
@given(mult=st.integers(0, 2**31 - 128), shift=st.integers(-31, 30),
       zp_in=st.integers(-128, 127), zp_out=st.integers(-128, 127))
def test_requantize_matches_the_reference_rounding(lib, mult, shift, zp_in, zp_out):
    """The C closed forms (one shift instead of the reference's nudge and division) give
    exactly the reference's gemmlowp arithmetic on every int8 input."""
    x = np.arange(-128, 128, dtype=np.int8)
    out = np.zeros(256, np.int8)
    d = CDims(1, 1, 1, 256)
    p = CRequantParams(-zp_in, zp_out, mult, shift)
    status = lib.sqz_requantize_s8(ctypes.byref(p), ctypes.byref(d),
                                   x.ctypes.data_as(ctypes.c_void_p), ctypes.byref(d),
                                   out.ctypes.data_as(ctypes.c_void_p))
    assert status == 0
    expected = [max(-128, min(127, multiply_by_quantized_multiplier(int(v) - zp_in, mult, shift)
                              + zp_out)) for v in x]
    assert out.tolist() == expected

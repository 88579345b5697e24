"""The Armv7E-M variants' converter side and arithmetic: the closed-form output stage equals
TFLite's two roundings on every input it is used for, the weight layout holds each weight once,
and the variants are chosen where they apply (and only there)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import arch, kernels, kernels_armv7em, targets
from converter.lower import ConvStep, Dims, PoolStep
from converter.quantmath import multiply_by_quantized_multiplier


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
    k = kernels_armv7em.CONV
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
    assert flat.size <= kernels.PORTABLE_CONV.filter_row_len(step) * n + 3 * n


def test_variants_are_chosen_where_they_apply():
    assert "armv7em" in arch.available()
    assert targets.load("mps2-an386").arch == "armv7em"
    assert targets.load("nucleo_f767zi").arch == "armv7em"
    assert targets.load("esp32s3").arch == "portable"
    step, _ = _conv(4, 3, 3, 8)
    assert kernels.select_conv(step, "armv7em") is kernels_armv7em.CONV
    assert kernels.select_conv(step, "portable") is kernels.PORTABLE_CONV
    dilated, _ = _conv(4, 3, 3, 8, dilation=(2, 1))
    assert kernels.select_conv(dilated, "armv7em") is kernels.PORTABLE_CONV
    pool = PoolStep(name="p", op_index=1, reads=(1,), writes=(2,), kind="max", input=1,
                    output=2, input_dims=Dims(1, 8, 8, 4), filter_hw=(3, 3),
                    output_dims=Dims(1, 3, 3, 4), stride=(2, 2), padding=(0, 0), act_min=-128,
                    act_max=127)
    assert kernels.select_pool(pool, "armv7em") is kernels_armv7em.MAX_POOL_PUSH
    avg = dataclasses.replace(pool, kind="avg", kernel="sqz_avg_pool_s8_row")
    assert kernels.select_pool(avg, "armv7em").symbol == "sqz_avg_pool_s8_row"

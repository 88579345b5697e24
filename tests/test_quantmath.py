"""QuantizeMultiplier and the fixed-point helpers on known pairs and edge cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from converter.ir.quantmath import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    quantize_multiplier_smaller_than_one_exp,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (2.0, (1 << 30, 2)),
    (0.25, (1 << 30, -1)),
    (0.75, (1610612736, 0)),
    (0.1, (1717986918, -3)),  # 0.8 * 2^31 = 1717986918.4
    (-0.5, (-(1 << 30), 0)),
    # q * 2^31 rounds up to exactly 2^31: folded into the exponent
    (1.0 - 2.0**-33, (1 << 30, 1)),
    # the smallest shift kept is -31; anything smaller flushes to zero
    (2.0**-32, (1 << 30, -31)),
    (2.0**-33, (0, 0)),
    (2.0**-40, (0, 0)),
    (3.0e9, (1500000000, 32)),
])
def test_quantize_multiplier_known_pairs(real, expected):
    assert quantize_multiplier(real) == expected


@given(st.floats(min_value=2.0**-31, max_value=2.0**30, allow_nan=False))
def test_quantize_multiplier_represents_the_value(real):
    m, shift = quantize_multiplier(real)
    assert (1 << 30) <= m < (1 << 31)
    assert math.isclose(m * 2.0 ** (shift - 31), real, rel_tol=2.0**-30)


def test_smaller_than_one_rejects_one():
    with pytest.raises(ValueError, match="not in"):
        quantize_multiplier_smaller_than_one_exp(1.0)


@pytest.mark.parametrize("x,expected", [
    (0.5, 1), (-0.5, -1), (1.5, 2), (2.5, 3), (-2.5, -3), (0.49999999999999994, 0),
    (4503599627370495.5, 4503599627370496),
])
def test_round_half_away(x, expected):
    assert round_half_away(x) == expected


def test_fixed_point_helpers():
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    assert saturating_rounding_doubling_high_mul(1 << 30, 1 << 30) == 1 << 29
    assert saturating_rounding_doubling_high_mul(-(1 << 30), 3) == -1  # -1.5 -> toward zero nudge
    assert [rounding_divide_by_pot(v, 1) for v in (-3, -1, 1, 3)] == [-2, -1, 1, 2]
    assert rounding_divide_by_pot(5, 2) == 1
    assert rounding_divide_by_pot(6, 2) == 2
    assert rounding_divide_by_pot(-6, 2) == -2
    # x * 0.75 with a right shift of 1: 100 * 0.375 = 37.5 -> 38
    assert multiply_by_quantized_multiplier(100, 1610612736, -1) == 38

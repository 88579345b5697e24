"""Fixed-point helpers: all the float math the device never does.

`quantize_multiplier` is a port of TFLite's QuantizeMultiplier (quantization_util.cc), including
its edge cases, because every integer multiplier the C runtime uses must equal the one LiteRT
derives in its kernels' Prepare step. The integer helpers below mirror the C runtime
(gemmlowp-style SaturatingRoundingDoublingHighMul and RoundingDivideByPOT) so that tests and
the converter can reason about the same arithmetic in Python.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def round_half_away(x: float) -> int:
    """std::round on a double: ties go away from zero. Exact for every finite double."""
    if x < 0:
        return -round_half_away(-x)
    f = math.floor(x)
    frac = x - f  # exact: x and floor(x) share their leading bits
    return int(f) + (1 if frac >= 0.5 else 0)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(quantized_multiplier, shift) with real ~= multiplier * 2**(shift - 31).

    Follows TFLite exactly: frexp, round half away from zero of q * 2**31, fold q == 2**31
    into the exponent, and flush multipliers whose shift would be below -31 to zero.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed > (1 << 31):
        raise ValueError(f"QuantizeMultiplier: {real!r} overflowed")  # cannot happen for finite
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp: the shift returned is <= 0."""
    if not (0.0 < real < 1.0):
        raise ValueError(f"multiplier {real!r} is not in (0, 1)")
    m, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"multiplier {real!r} gave a positive shift")
    return m, shift


# --- integer arithmetic, mirrored by firmware/src/runtime/fixedpoint.h -------------------------

def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    # C truncates the 64-bit division toward zero.
    num = ab + nudge
    q = abs(num) >> 31
    return q if num >= 0 else -q


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    xs = _wrap32(x * (1 << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xs, multiplier), right)


def _wrap32(v: int) -> int:
    return ((v + 2**31) % 2**32) - 2**31


def f32(x) -> np.float32:
    """A value as float32, for reproducing single-precision steps of the reference."""
    return np.float32(x)

"""Exact integer helpers of the TOSA pseudo-code library, vectorised over numpy int64.

Each function names the spec function it implements. Inputs are numpy arrays
(or ints) holding exact values; results are exact int64 arrays. A REQUIRE
failure raises UnpredictableError.
"""
from __future__ import annotations

import numpy as np

from tosac.errors import UnpredictableError
from tosac.ir.dtypes import DType


def i64(x) -> np.ndarray:
    return np.asarray(x).astype(np.int64)


def require(cond, label: str, rule: str) -> None:
    """The spec's REQUIRE: a false condition makes the result unpredictable."""
    if not bool(np.all(cond)):
        raise UnpredictableError(f"{label}: REQUIRE failed: {rule}")


def apply_scale_32(value, multiplier, shift, double_round: bool, label: str = "apply_scale_32") -> np.ndarray:
    """apply_scale_32: (value * multiplier + round) >> shift, optional double rounding."""
    value, multiplier, shift = i64(value), i64(multiplier), i64(shift)
    require(multiplier >= 0, label, "multiplier >= 0")
    require((shift >= 2) & (shift <= 62), label, "2 <= shift <= 62")
    bound = np.left_shift(np.int64(1), shift - 1)
    require((value >= -bound) & (value < bound), label, "value in [-2^(shift-1), 2^(shift-1))")
    rnd = bound
    if double_round:
        rnd = rnd + np.where(shift > 31, np.where(value >= 0, 1 << 30, -(1 << 30)), 0)
    # |value| < 2^32 for every RESCALE input (int32 less a zero point that is 0 for int32), so
    # value * multiplier < 2^63; anything larger is computed with Python integers.
    if value.size and int(np.max(np.abs(value))) >= (1 << 32):
        exact = [(int(v) * int(m) + int(r)) >> int(s) for v, m, r, s in
                 np.broadcast(value, multiplier, rnd, shift)]
        return np.asarray(exact, dtype=np.int64).reshape(np.broadcast(value, multiplier, rnd, shift).shape)
    return (value * multiplier + rnd) >> shift


def apply_scale_16(value, multiplier, shift, label: str = "apply_scale_16") -> np.ndarray:
    """apply_scale_16: int48 value times int16 multiplier, rounded, must fit int32."""
    value, multiplier, shift = i64(value), i64(multiplier), i64(shift)
    require(multiplier >= 0, label, "multiplier >= 0")
    require((shift >= 2) & (shift <= 62), label, "2 <= shift <= 62")
    result = (value * multiplier + np.left_shift(np.int64(1), shift - 1)) >> shift
    require((result >= -(1 << 31)) & (result < (1 << 31)), label, "result fits int32")
    return result


def count_leading_zeros(value: int, bits: int = 32) -> int:
    """count_leading_zeros of a ``bits``-wide unsigned value."""
    value &= (1 << bits) - 1
    return bits - value.bit_length()


def reciprocal_scale(value: int) -> tuple[int, int]:
    """reciprocal_scale: (multiplier, shift) with multiplier / 2^shift ~= 1 / value."""
    if value <= 0:
        raise UnpredictableError(f"reciprocal_scale: REQUIRE failed: value {value} > 0")
    k = 32 - count_leading_zeros(value - 1)
    numerator = ((1 << 30) + 1) << k
    return numerator // value, 30 + k


def clz32(values) -> np.ndarray:
    """CLZ of int32 values (as 32-bit patterns)."""
    u = i64(values) & 0xFFFFFFFF
    out = np.full(u.shape, 32, dtype=np.int64)
    for bit in range(31, -1, -1):
        hit = ((u >> bit) & 1).astype(bool) & (out == 32)
        out[hit] = 31 - bit
    return out


def check_range(values: np.ndarray, dtype: DType, label: str, what: str) -> None:
    """REQUIRE that exact ``values`` fit ``dtype`` (the spec's overflow REQUIREs)."""
    if values.size:
        require((values >= dtype.min) & (values <= dtype.max), label, f"{what} fits {dtype.name}")

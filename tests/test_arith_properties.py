"""The exact arithmetic helpers against a plain Python-int transcription of the spec pseudo-code.

Python integers never overflow, so each transcription below is the spec's
pseudo-code line by line; the vectorised numpy helpers must agree everywhere,
edges included (INT32_MIN/MAX, int48 extremes, shifts 2..62).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tosac.errors import UnpredictableError
from tosac.ir.reference import arith

INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
INT48 = st.integers(-(1 << 47), (1 << 47) - 1)
SHIFT = st.integers(2, 62)


def scale_32_spec(value: int, multiplier: int, shift: int, double_round: bool) -> int | None:
    """apply_scale_32 of TOSA 1.0.2; None where a REQUIRE fails."""
    if multiplier < 0 or not 2 <= shift <= 62 or not -(1 << (shift - 1)) <= value < (1 << (shift - 1)):
        return None
    rnd = 1 << (shift - 1)
    if double_round and shift > 31:
        rnd += (1 << 30) if value >= 0 else -(1 << 30)
    return (value * multiplier + rnd) >> shift


def scale_16_spec(value: int, multiplier: int, shift: int) -> int | None:
    if multiplier < 0 or not 2 <= shift <= 62:
        return None
    result = (value * multiplier + (1 << (shift - 1))) >> shift
    return result if -(1 << 31) <= result <= (1 << 31) - 1 else None


def reciprocal_scale_spec(value: int) -> tuple[int, int]:
    k = 32 - (32 - (value - 1).bit_length())
    return (((1 << 30) + 1) << k) // value, 30 + k


def _call(fn, *args):
    try:
        return int(np.asarray(fn(*args)).reshape(-1)[0])
    except UnpredictableError:
        return None


@settings(max_examples=2000, deadline=None)
@given(value=INT32 | st.sampled_from([-(1 << 31), (1 << 31) - 1, 0, -1, 1]),
       multiplier=st.integers(0, (1 << 31) - 1) | st.sampled_from([0, (1 << 31) - 1, 1 << 30]),
       shift=SHIFT, double_round=st.booleans())
def test_apply_scale_32(value, multiplier, shift, double_round):
    expected = scale_32_spec(value, multiplier, shift, double_round)
    assert _call(arith.apply_scale_32, value, multiplier, shift, double_round) == expected


@settings(max_examples=2000, deadline=None)
@given(value=INT48 | st.sampled_from([-(1 << 47), (1 << 47) - 1]), multiplier=st.integers(0, (1 << 15) - 1),
       shift=SHIFT)
def test_apply_scale_16(value, multiplier, shift):
    assert _call(arith.apply_scale_16, value, multiplier, shift) == scale_16_spec(value, multiplier, shift)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), shift=SHIFT, double_round=st.booleans(), n=st.integers(1, 40))
def test_apply_scale_32_vectorised(data, shift, double_round, n):
    """Arrays with per-element multipliers give element-wise the scalar answers."""
    bound = 1 << (min(shift, 32) - 1)
    values = data.draw(st.lists(st.integers(-bound, bound - 1), min_size=n, max_size=n))
    mults = data.draw(st.lists(st.integers(0, (1 << 31) - 1), min_size=n, max_size=n))
    got = arith.apply_scale_32(np.array(values), np.array(mults), shift, double_round)
    assert got.tolist() == [scale_32_spec(v, m, shift, double_round) for v, m in zip(values, mults)]


@pytest.mark.parametrize("value, multiplier, shift, double_round, expected", [
    (1, 1 << 30, 31, False, 1),                      # 0.5 rounds up
    (-1, 1 << 30, 31, False, 0),                     # -0.5 rounds toward +inf
    (3, 1 << 30, 32, False, 1),                      # 0.75 -> 1
    (5, 1 << 30, 34, True, 0),                       # 0.3125: the extra 2^30 of double rounding is not enough
    (13, 1 << 30, 34, True, 1),                      # 0.8125 -> 1 either way
    (-13, 1 << 30, 34, True, -1),
])
def test_apply_scale_32_hand_worked(value, multiplier, shift, double_round, expected):
    assert _call(arith.apply_scale_32, value, multiplier, shift, double_round) == expected


def test_double_round_differs_from_single_round():
    """2 * 1717986918 / 2^33 = 0.39999...: SINGLE_ROUND gives 0; DOUBLE_ROUND's extra 2^30 (1/8) gives 1."""
    assert _call(arith.apply_scale_32, 2, 1717986918, 33, False) == 0
    assert _call(arith.apply_scale_32, 2, 1717986918, 33, True) == 1
    assert _call(arith.apply_scale_32, -2, 1717986918, 33, True) == -1


@pytest.mark.parametrize("shift", [1, 63, 0, -3])
def test_shift_outside_2_to_62_is_unpredictable(shift):
    with pytest.raises(UnpredictableError):
        arith.apply_scale_32(0, 1, shift, False)


def test_value_outside_shift_range_is_unpredictable():
    with pytest.raises(UnpredictableError):
        arith.apply_scale_32(1 << 10, 1, 10, False)


@settings(max_examples=500, deadline=None)
@given(st.integers(1, (1 << 31) - 1))
def test_reciprocal_scale(count):
    assert arith.reciprocal_scale(count) == reciprocal_scale_spec(count)
    mult, _ = arith.reciprocal_scale(count)
    if count <= 1 << 26:     # AVG_POOL2D counts stay below MAX_KERNEL^2 = 2^26
        assert (1 << 30) <= mult < (1 << 31) or count == 1


@settings(max_examples=1000, deadline=None)
@given(st.lists(INT32, min_size=1, max_size=20))
def test_clz32(values):
    expected = [32 - (v & 0xFFFFFFFF).bit_length() for v in values]
    assert arith.clz32(np.array(values, np.int32)).tolist() == expected

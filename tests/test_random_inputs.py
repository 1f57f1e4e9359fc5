"""Seeded random graph inputs (tosac.ir.random_inputs): dtypes, ranges, narrow wide integers, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from tosac.ir.dtypes import DType
from tosac.ir.graph import TensorType
from tosac.ir.random_inputs import random_inputs

N = 20000          # enough draws that every end of an 8-bit range shows up (a miss has odds below 1e-30)


def one(dtype: DType, seed=0, narrow_bits: int = 0, shape=(N,)) -> np.ndarray:
    return random_inputs({"x": TensorType(dtype, shape)}, seed, narrow_bits)["x"]


@pytest.mark.parametrize("dtype, storage", [
    (DType.BOOL, np.bool_), (DType.INT4, np.int8), (DType.INT8, np.int8), (DType.UINT8, np.uint8),
    (DType.INT16, np.int16), (DType.UINT16, np.uint16), (DType.INT32, np.int32), (DType.INT48, np.int64),
    (DType.INT64, np.int64), (DType.FP16, np.float16), (DType.BF16, np.float32), (DType.FP32, np.float32)])
def test_each_input_has_its_storage_dtype_and_shape(dtype, storage):
    out = random_inputs({"a": TensorType(dtype, (2, 3, 4)), "b": TensorType(dtype, ())}, 7)
    assert list(out) == ["a", "b"]
    assert out["a"].dtype == storage and out["a"].shape == (2, 3, 4)
    assert out["b"].dtype == storage and out["b"].shape == ()


@pytest.mark.parametrize("dtype, lo, hi", [(DType.INT4, -8, 7), (DType.INT8, -128, 127), (DType.UINT8, 0, 255)])
def test_small_integers_cover_their_full_range_both_ends_included(dtype, lo, hi):
    x = one(dtype)
    assert set(np.unique(x).tolist()) == set(range(lo, hi + 1))


@pytest.mark.parametrize("dtype, lo, hi", [(DType.INT16, -2**15, 2**15 - 1), (DType.UINT16, 0, 2**16 - 1),
                                           (DType.INT32, -2**31, 2**31 - 1), (DType.INT48, -2**47, 2**47 - 1)])
def test_wide_integers_are_drawn_over_their_full_range(dtype, lo, hi):
    x = one(dtype).astype(np.int64)
    assert x.min() >= lo and x.max() <= hi
    # uniform over the range: the extreme eighths are both reached
    assert x.min() < lo + (hi - lo) / 8 and x.max() > hi - (hi - lo) / 8


def test_booleans_take_both_values_and_floats_are_standard_normal():
    assert set(one(DType.BOOL).tolist()) == {False, True}
    f = one(DType.FP32).astype(np.float64)
    assert abs(f.mean()) < 0.05 and abs(f.std() - 1.0) < 0.05 and (f < 0).any()


@pytest.mark.parametrize("dtype", [DType.INT32, DType.INT48, DType.INT64])
def test_narrow_bits_limit_integers_of_32_bits_and_more(dtype):
    x = one(dtype, narrow_bits=4)
    assert set(np.unique(x).tolist()) == set(range(-16, 16))
    assert np.abs(one(dtype, narrow_bits=20)).max() <= 2**20


def test_narrow_bits_leave_narrower_integers_alone():
    assert set(np.unique(one(DType.INT8, narrow_bits=4)).tolist()) == set(range(-128, 128))
    x = one(DType.INT16, narrow_bits=4)
    assert x.min() < -2**14 and x.max() > 2**14


def test_the_same_seed_gives_the_same_inputs_and_another_seed_others():
    types = {"q": TensorType(DType.INT8, (64,)), "w": TensorType(DType.INT32, (64,)),
             "m": TensorType(DType.BOOL, (64,)), "f": TensorType(DType.FP32, (64,))}
    first, again, other = random_inputs(types, 3), random_inputs(types, 3), random_inputs(types, 4)
    for name in types:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])


def test_a_generator_draws_successive_sets_from_one_stream():
    types = {"x": TensorType(DType.INT8, (256,))}
    rng = np.random.default_rng(11)
    a, b = random_inputs(types, rng)["x"], random_inputs(types, rng)["x"]
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, random_inputs(types, 11)["x"])

"""SOFTMAX and LOG_SOFTMAX from TFLite against LiteRT's reference kernels (BUILTIN_REF), bit for bit.

The fixed-point primitives of tosac.frontends.tflite.softmax (SRDHM, RoundingDivideByPOT, saturating
shifts, RoundingHalfSum as TOSA ops) are checked alone against gemmlowp's C arithmetic written out here on
int32 extremes; the operators against LiteRT with drawn shapes, scales, beta and values, and with rows
holding every int8 value (every difference to the row maximum).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tflite_writer import ARM_EXAMPLES, EXAMPLES, ModelWriter, check, model, run_litert  # noqa: E402

import tosac  # noqa: E402
from tosac.errors import UnsupportedError  # noqa: E402
from tosac.frontends import tflite as tfl  # noqa: E402
from tosac.frontends.tflite.softmax import FixedPointOps  # noqa: E402
from tosac.ir.builder import GraphBuilder  # noqa: E402
from tosac.ir.dtypes import DType  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402

MIN, MAX = -(1 << 31), (1 << 31) - 1
OUTPUT_QUANT = {"SOFTMAX": (1.0 / 256, -128), "LOG_SOFTMAX": (16.0 / 256, 127)}
OPS = ["SOFTMAX", "LOG_SOFTMAX"]


# ---------------------------------------------------------------- gemmlowp, as its C++ computes
def c_div(n: int, d: int) -> int:
    """C's integer division (truncation toward zero)."""
    q = abs(n) // abs(d)
    return q if (n >= 0) == (d > 0) else -q


def gemmlowp_srdhm(a: int, b: int) -> int:
    if a == b == MIN:
        return MAX
    ab = a * b
    return c_div(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)


def gemmlowp_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


def gemmlowp_shl_sat(x: int, e: int) -> int:
    if e == 0:
        return x
    threshold = (1 << (31 - e)) - 1
    return MAX if x > threshold else MIN if x < -threshold else x << e


def gemmlowp_half_sum(a: int, b: int) -> int:
    s = a + b
    return c_div(s + (1 if s >= 0 else -1), 2)


EXTREMES = [MIN, MIN + 1, MIN + 2, -(1 << 30) - 1, -(1 << 30), -(1 << 15), -3, -2, -1, 0, 1, 2, 3, 1 << 15,
            (1 << 30) - 1, 1 << 30, MAX - 1, MAX]
int32s = st.one_of(st.sampled_from(EXTREMES), st.integers(MIN, MAX),
                   st.integers(-(1 << 16), (1 << 16) - 1).map(lambda v: v << 15))   # products near ties


def run_fixed_point(build, *columns: list[int]) -> np.ndarray:
    """``build(fp, *inputs)`` on int32 vectors, run by the reference interpreter and the host code."""
    g = GraphBuilder()
    ins = [g.input(f"x{i}", DType.INT32, (len(c),)) for i, c in enumerate(columns)]
    g.output(build(FixedPointOps(g, 1), *ins))
    graph = g.build()
    feed = {v.name: np.asarray(c, np.int32) for v, c in zip(ins, columns)}
    ref = list(interpreter.run(graph, feed).values())[0]
    host = list(tosac.compile(graph, "host").run(feed).values())[0]
    np.testing.assert_array_equal(host, ref)
    return ref.astype(np.int64)


def test_srdhm_known_values():
    """Negative ties round toward +inf in gemmlowp too (its nudge 1 − 2^30 with truncation); −2^31² saturates."""
    pairs = [(MIN, MIN), (-(1 << 15), 1 << 15), (-3 << 15, 1 << 15), (3 << 15, 1 << 15), (MIN, MAX), (MIN, 1)]
    want = [MAX, 0, -1, 2, MIN + 1, -1]
    assert [gemmlowp_srdhm(a, b) for a, b in pairs] == want
    got = run_fixed_point(lambda fp, a, b: fp.srdhm(a, b), *zip(*pairs))
    assert got.tolist() == want


@EXAMPLES
@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=64))
def test_srdhm_is_gemmlowp(pairs):
    got = run_fixed_point(lambda fp, a, b: fp.srdhm(a, b), *zip(*pairs))
    assert got.tolist() == [gemmlowp_srdhm(a, b) for a, b in pairs]


@EXAMPLES
@given(st.lists(st.tuples(int32s.filter(lambda v: v > MIN), st.integers(1, 31)), min_size=1, max_size=64))
def test_rounding_divide_by_pot_is_gemmlowp(pairs):
    got = run_fixed_point(lambda fp, x, e: fp.rdbpot(x, e), *zip(*pairs))
    assert got.tolist() == [gemmlowp_rdbpot(x, e) for x, e in pairs]


@EXAMPLES
@given(st.lists(st.tuples(int32s, st.integers(0, 31)), min_size=1, max_size=64))
def test_saturating_shift_left_is_gemmlowp(pairs):
    got = run_fixed_point(lambda fp, x, e: fp.shl_sat(x, e), *zip(*pairs))
    assert got.tolist() == [gemmlowp_shl_sat(x, e) for x, e in pairs]


@EXAMPLES
@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=64))
def test_rounding_half_sum_is_gemmlowp(pairs):
    got = run_fixed_point(lambda fp, a, b: fp.half_sum(a, b), *zip(*pairs))
    assert got.tolist() == [gemmlowp_half_sum(a, b) for a, b in pairs]


# ---------------------------------------------------------------- the operators against LiteRT
def softmax_model(draw, w: ModelWriter, op: str):
    """SOFTMAX (drawn beta) or LOG_SOFTMAX over the last axis of a rank 1-4 int8 tensor."""
    depth = draw(st.one_of(st.integers(1, 12), st.integers(13, 300)))
    outer = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
    # Scales from 1e-3 (every exp significant) to 50 (only the row maximum survives diff_min).
    s_in = float(np.float32(np.exp(draw(st.floats(np.log(1e-3), np.log(50.0))))))
    x = w.tensor(outer + [depth], "INT8", scale=s_in, zp=draw(st.integers(-128, 127)))
    s_out, z_out = OUTPUT_QUANT[op]
    y = w.tensor(outer + [depth], "INT8", scale=s_out, zp=z_out)
    if op == "SOFTMAX":
        beta = draw(st.one_of(st.just(1.0), st.floats(0.5, 2.0, width=32)))
        w.op(op, [x], [y], "SoftmaxOptions", Beta=beta)
    else:
        w.op(op, [x], [y], "LogSoftmaxOptions")
    return [x], [y]


@pytest.mark.parametrize("op", OPS)
@EXAMPLES
@given(data=st.data())
def test_softmax(litert, op, data):
    check(litert, model(softmax_model, data.draw, op), seeds=(0, 1))


def every_difference_model(op: str, s_in: float, zp: int, beta: float, rows: int) -> bytes:
    w = ModelWriter()
    x = w.tensor((rows, 256), "INT8", scale=s_in, zp=zp)
    y = w.tensor((rows, 256), "INT8", scale=OUTPUT_QUANT[op][0], zp=OUTPUT_QUANT[op][1])
    if op == "SOFTMAX":
        w.op(op, [x], [y], "SoftmaxOptions", Beta=beta)
    else:
        w.op(op, [x], [y], "LogSoftmaxOptions")
    return w.build([x], [y])


@pytest.mark.parametrize("op", OPS)
def test_every_difference(litert, op):
    """Rows holding all 256 int8 values in some order (every max − x), and rows of few distinct values (large
    sums), for 40 drawn scales and betas; the graph against LiteRT on the host."""
    rng = np.random.default_rng(11)
    every = np.arange(-128, 128, dtype=np.int8)
    for _ in range(40):
        s_in = float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(50.0)))))
        beta = float(np.float32(rng.choice([1.0, rng.uniform(0.5, 2.0)])))
        rows = [rng.permutation(every) for _ in range(3)]
        rows += [rng.choice(rng.integers(-128, 128, 3), 256).astype(np.int8) for _ in range(3)]
        rows += [np.full(256, rng.integers(-128, 128), np.int8)]
        inp = np.stack(rows)
        data = every_difference_model(op, s_in, int(rng.integers(-128, 128)), beta, len(rows))
        graph = tfl.load(data)
        got = list(interpreter.run(graph, {graph.main.inputs[0]: inp}).values())[0]
        want = run_litert(litert, data, [inp])[0]
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"{op} s_in={s_in} beta={beta}: at {bad[:4].tolist()} got " \
                              f"{got[tuple(bad[:4].T)]}, LiteRT {want[tuple(bad[:4].T)]}"


def test_longest_row_of_equal_maxima(litert):
    """511 equal maxima: the largest sum TFLite accepts (its output shift reaches 31)."""
    w = ModelWriter()
    x = w.tensor((2, 511), "INT8", scale=0.05, zp=3)
    y = w.tensor((2, 511), "INT8", scale=1.0 / 256, zp=-128)
    w.op("SOFTMAX", [x], [y], "SoftmaxOptions", Beta=1.0)
    data = w.build([x], [y])
    inp = np.stack([np.full(511, 100, np.int8), np.r_[np.full(510, 7), [-128]].astype(np.int8)])
    graph = tfl.load(data)
    got = list(interpreter.run(graph, {graph.main.inputs[0]: inp}).values())[0]
    np.testing.assert_array_equal(got, run_litert(litert, data, [inp])[0])


def test_unsupported_variants_name_the_operator():
    def load(op="SOFTMAX", shape=(1, 8), s_out=1.0 / 256, z_out=-128, beta=1.0, types=("INT8", "INT8"), s_in=0.1):
        w = ModelWriter()
        x = w.tensor(shape, types[0], scale=s_in, zp=0)
        y = w.tensor(shape, types[1], scale=s_out, zp=z_out)
        if op == "SOFTMAX":
            w.op(op, [x], [y], "SoftmaxOptions", Beta=beta)
        else:
            w.op(op, [x], [y], "LogSoftmaxOptions")
        return tfl.load(w.build([x], [y]))

    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*output scale 1/256"):
        load(s_out=1.0 / 128)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*zero point -128"):
        load(z_out=0)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*511"):
        load(shape=(1, 512))
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*beta"):
        load(beta=-1.0)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*INT16"):
        load(types=("INT16", "INT16"), s_out=1.0 / 32768, z_out=0)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*INT16"):
        load(types=("INT8", "INT16"), s_out=1.0 / 32768, z_out=0)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(LOG_SOFTMAX\).*output scale 16/256 and zero point 127"):
        load("LOG_SOFTMAX", s_out=16.0 / 256, z_out=0)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(LOG_SOFTMAX\).*511"):
        load("LOG_SOFTMAX", shape=(2, 600), s_out=16.0 / 256, z_out=127)


# ---------------------------------------------------------------- AArch64 and ARMv7 under qemu-user


@pytest.fixture(params=["aarch64", "armv7"])
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


@ARM_EXAMPLES
@given(data=st.data())
def test_softmax_on_arm(litert, arm, data):
    """LiteRT == reference == host == ARM code for 3 drawn instances of each operator, one model."""
    w = ModelWriter()
    ins, outs = [], []
    for op in OPS:
        for _ in range(3):
            i, o = softmax_model(data.draw, w, op)
            ins += i
            outs += o
    check(litert, w.build(ins, outs), seeds=(0, 1), targets=("host", arm))

"""SOFTMAX and LOG_SOFTMAX from TFLite against LiteRT's reference kernels (BUILTIN_REF), bit for bit.

The fixed-point primitives of tosac.frontends.tflite.softmax (SRDHM, RoundingDivideByPOT, saturating
shifts, RoundingHalfSum as TOSA ops) are checked alone against gemmlowp's C arithmetic written out here on
int32 extremes; the operators against LiteRT with drawn shapes, scales, beta and values, and with rows
holding every int8 value (every difference to the row maximum). int16 SOFTMAX: drawn shapes, scales, beta
and rows (uniform, narrow spreads below the maximum, few distinct values, the int16 extremes), every
difference 0..65535 to the row maximum, and the longest row TFLite's int32 sum allows.
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
from tosac.frontends.tflite.softmax import MAX_DEPTH_INT16, FixedPointOps  # noqa: E402
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
        load(types=("INT8", "INT16"), s_out=1.0 / 32768, z_out=0)
    int16 = dict(types=("INT16", "INT16"), s_out=1.0 / 32768, z_out=0)
    load(**int16)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*INT16 SOFTMAX needs output scale 1/32768"):
        load(**{**int16, "s_out": 1.0 / 32000})
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*INT8"):
        load(**{**int16, "types": ("INT16", "INT8")})
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*65548"):
        load(**{**int16, "shape": (1, 65549)})
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*beta"):
        load(**{**int16, "beta": -0.5})
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*left shift of 16"):
        load(**{**int16, "s_in": 5.2})
    load(**{**int16, "s_in": 4.9})
    with pytest.raises(UnsupportedError, match=r"operator 0 \(SOFTMAX\).*zero point 5"):
        load(**{**int16, "z_out": 5})
    with pytest.raises(UnsupportedError, match=r"operator 0 \(LOG_SOFTMAX\).*INT16"):
        load("LOG_SOFTMAX", **{**int16, "s_out": 16.0 / 256, "z_out": 127})
    with pytest.raises(UnsupportedError, match=r"operator 0 \(LOG_SOFTMAX\).*output scale 16/256 and zero point 127"):
        load("LOG_SOFTMAX", s_out=16.0 / 256, z_out=0)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(LOG_SOFTMAX\).*511"):
        load("LOG_SOFTMAX", shape=(2, 600), s_out=16.0 / 256, z_out=127)


# ---------------------------------------------------------------- int16 SOFTMAX
def softmax16_model(draw, w: ModelWriter) -> tuple[list[int], list[int]]:
    """int16 SOFTMAX (drawn beta) over the last axis of a rank 1-4 tensor; input scales from 1e-6 (every
    element's exp near 1) to 2.4 (beyond 5 / beta TFLite's left shift overflows)."""
    depth = draw(st.one_of(st.integers(1, 12), st.integers(13, 300)))
    outer = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
    s_in = float(np.float32(np.exp(draw(st.floats(np.log(1e-6), np.log(2.4))))))
    beta = draw(st.one_of(st.just(1.0), st.floats(0.5, 2.0, width=32)))
    x = w.tensor(outer + [depth], "INT16", scale=s_in, zp=0)
    y = w.tensor(outer + [depth], "INT16", scale=1.0 / 32768, zp=0)
    w.op("SOFTMAX", [x], [y], "SoftmaxOptions", Beta=beta)
    return [x], [y]


def int16_rows(draw, shape: tuple[int, ...]) -> np.ndarray:
    """Rows of one drawn style: uniform over int16, a narrow band under a drawn maximum (small differences),
    few distinct values (ties, repeated maxima), or mostly the int16 extremes (differences up to 65535)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    style = draw(st.sampled_from(["uniform", "band", "ties", "extremes"]))
    if style == "uniform":
        v = rng.integers(-32768, 32768, shape)
    elif style == "band":
        top = draw(st.integers(-32768, 32767))
        v = top - rng.integers(0, draw(st.integers(1, 65536)), shape)
    elif style == "ties":
        v = rng.choice(rng.integers(-32768, 32768, draw(st.integers(1, 3))), shape)
    else:
        v = rng.choice([-32768, -32767, 0, 32766, 32767], shape)
    return np.clip(v, -32768, 32767).astype(np.int16)


def check_rows(litert, data: bytes, inp: np.ndarray, targets: tuple[str, ...] = ("host",)) -> None:
    """LiteRT BUILTIN_REF == reference interpreter == compiled code on one given input."""
    graph = tfl.load(data)
    feed = {graph.main.inputs[0]: inp}
    want = run_litert(litert, data, [inp])[0]
    got = {"reference": list(interpreter.run(graph, feed).values())[0]}
    got.update({t: list(tosac.compile(graph, t).run(feed).values())[0] for t in targets})
    for where, y in got.items():
        bad = np.argwhere(y != want)
        assert bad.size == 0, f"{where} differs from LiteRT at {bad[:4].tolist()}: {y[tuple(bad[:4].T)]} vs " \
                              f"{want[tuple(bad[:4].T)]}, input rows {inp[tuple(bad[:4, :-1].T)].tolist()[:2]}"


@EXAMPLES
@given(data=st.data())
def test_softmax_int16(litert, data):
    """Uniform int16 inputs (check's) and one drawn row style, against LiteRT."""
    w = ModelWriter()
    ins, outs = softmax16_model(data.draw, w)
    m = w.build(ins, outs)
    check(litert, m, seeds=(0,))
    check_rows(litert, m, int16_rows(data.draw, tuple(w.tensors[ins[0]]["shape"])))


def softmax16_bytes(shape: tuple[int, ...], s_in: float, beta: float = 1.0) -> bytes:
    w = ModelWriter()
    x = w.tensor(shape, "INT16", scale=s_in, zp=0)
    y = w.tensor(shape, "INT16", scale=1.0 / 32768, zp=0)
    w.op("SOFTMAX", [x], [y], "SoftmaxOptions", Beta=beta)
    return w.build([x], [y])


@pytest.mark.parametrize("s_in", [10.0 / 65535, 7.3e-5, 2.5e-4])
def test_softmax_int16_every_difference(litert, s_in):
    """Rows [32767, 32767 − k] for every k in 0..65535: every input of the exp table (scale 10/65535 maps
    difference k to table position 32767 − k), the sums of two exps across the reciprocal table's range."""
    k = np.arange(65536)
    check_rows(litert, softmax16_bytes((65536, 2), s_in), np.stack([np.full(65536, 32767), 32767 - k], 1)
               .astype(np.int16))


def test_softmax_int16_longest_row(litert):
    """65,548 equal maxima: the largest int32 sum (2^31 − 71) and a right shift of 30; and the same length
    with varied values."""
    n = MAX_DEPTH_INT16
    rng = np.random.default_rng(3)
    inp = np.stack([np.full(n, -5), rng.integers(-40, 1, n)]).astype(np.int16)
    check_rows(litert, softmax16_bytes((2, n), 1e-4), inp)


@pytest.mark.parametrize("s_in, beta", [(1e-15, 1.0), (1e-9, 1.0), (1.0, 0.0), (4.99, 1.0), (2.5, 2.0)])
def test_softmax_int16_extreme_scales(litert, s_in, beta):
    """A zero multiplier (shift below −31), β = 0, the largest left shift (15), on the int16 extremes."""
    rng = np.random.default_rng(5)
    inp = np.concatenate([[[-32768, 32767, 0, 32767], [-32768] * 4, [32767] * 4, [-32768, -32767, -32768, -32768]],
                          rng.integers(-32768, 32768, (4, 4))]).astype(np.int16)
    check_rows(litert, softmax16_bytes(inp.shape, s_in, beta), inp)


# ---------------------------------------------------------------- AArch64 and ARMv7 under qemu-user


@pytest.fixture(params=["aarch64", "armv7"])
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


@ARM_EXAMPLES
@given(data=st.data())
def test_softmax_on_arm(litert, arm, data):
    """LiteRT == reference == host == ARM code for 3 drawn instances of each int8 operator and 2 of int16
    SOFTMAX, one model."""
    w = ModelWriter()
    ins, outs = [], []
    for op in OPS:
        for _ in range(3):
            i, o = softmax_model(data.draw, w, op)
            ins += i
            outs += o
    for _ in range(2):
        i, o = softmax16_model(data.draw, w)
        ins += i
        outs += o
    check(litert, w.build(ins, outs), seeds=(0, 1), targets=("host", arm))

"""TFLite MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, PRELU, LEAKY_RELU, GELU, RSQRT, SUM, REDUCE_MAX and ARG_MAX
against LiteRT's reference kernels (BUILTIN_REF), bit for bit.

As tests/test_tflite_frontend.py: single-op models with hypothesis-drawn shapes
(broadcasting for the binary ops), quantization and options, compared element
for element by ``check`` on the host; the table-built ops also over all 256 int8
inputs for 100 drawn quantizations; one model holding several drawn instances of
every generator here runs on AArch64 and ARMv7 under qemu-user.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tflite.TensorType import TensorType

sys.path.insert(0, str(Path(__file__).parent))
from tflite_writer import ARM_EXAMPLES, EXAMPLES, ModelWriter, check, model, run_litert, scales  # noqa: E402

import tosac  # noqa: E402
from tosac.errors import FrontendError, UnsupportedError  # noqa: E402
from tosac.frontends import tflite as tfl  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402

EVERY_INT8 = np.arange(-128, 128, dtype=np.int8)


def _shape(draw, lo: int = 1, hi: int = 5, max_rank: int = 4) -> list[int]:
    return draw(st.lists(st.integers(lo, hi), min_size=1, max_size=max_rank))


def _broadcast_pair(draw) -> tuple[list[int], list[int]]:
    """Two shapes that broadcast (either may be the smaller one, of lower rank)."""
    shape = _shape(draw, hi=4)
    other = [d if draw(st.booleans()) else 1 for d in shape][draw(st.integers(0, len(shape) - 1)):]
    return (shape, other) if draw(st.booleans()) else (other, shape)


def _zp(draw) -> int:
    return draw(st.integers(-128, 127))


# ---------------------------------------------------------------- binary: MAXIMUM, MINIMUM, SQUARED_DIFFERENCE
def binary(draw, w: ModelWriter, op: str):
    s1, s2 = _broadcast_pair(draw)
    q1, q2 = scales(draw, 1e-3, 1.0), scales(draw, 1e-3, 1.0)
    a = w.tensor(s1, "INT8", scale=q1, zp=_zp(draw))
    b = w.tensor(s2, "INT8", scale=q2, zp=_zp(draw))
    if op == "SQUARED_DIFFERENCE":          # TFLite aborts unless (2·max s)² / (2^14 · s_out) < 1
        s_out = scales(draw, max(1e-3, 1.01 * (2 * max(q1, q2)) ** 2 / (1 << 14)), 2.0)
    else:                                   # MAXIMUM/MINIMUM compare raw values whatever the quantization
        s_out = draw(st.sampled_from([q1, scales(draw, 1e-3, 1.0)]))
    y = w.tensor(list(np.broadcast_shapes(tuple(s1), tuple(s2))), "INT8", scale=s_out, zp=_zp(draw))
    w.op(op, [a, b], [y])
    return [a, b], [y]


@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"])
@EXAMPLES
@given(data=st.data())
def test_binary(litert, op, data):
    check(litert, model(binary, data.draw, op))


def test_squared_difference_output_multiplier_of_one_or_more_is_unsupported():
    w = ModelWriter()
    a = w.tensor((1, 4), "INT8", scale=1.0, zp=0)
    b = w.tensor((1, 4), "INT8", scale=1.0, zp=0)
    y = w.tensor((1, 4), "INT8", scale=1e-4, zp=0)          # 4 / (2^14 · 1e-4) > 1
    w.op("SQUARED_DIFFERENCE", [a, b], [y])
    with pytest.raises(UnsupportedError, match="operator 0 \\(SQUARED_DIFFERENCE\\).*below 1"):
        tfl.load(w.build([a, b], [y]))


# ---------------------------------------------------------------- int16x8: zero points 0
OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}


def binary16(draw, w: ModelWriter, op: str):
    """ADD, SUB (TFLite's general int16 path), MUL, MAXIMUM, MINIMUM on int16 with broadcasting."""
    s1, s2 = _broadcast_pair(draw)
    a = w.tensor(s1, "INT16", scale=scales(draw, 1e-5, 1e-2), zp=0)
    b = w.tensor(s2, "INT16", scale=scales(draw, 1e-5, 1e-2), zp=0)
    y = w.tensor(list(np.broadcast_shapes(tuple(s1), tuple(s2))), "INT16", scale=scales(draw, 1e-5, 1e-2), zp=0)
    fields = {"FusedActivationFunction": draw(st.sampled_from([0, 1, 2, 3]))} if op in OPTIONS else {}
    if op in ("ADD", "SUB"):
        fields["PotScaleInt16"] = draw(st.booleans())
    w.op(op, [a, b], [y], OPTIONS.get(op), **fields)
    return [a, b], [y]


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM"])
@EXAMPLES
@given(data=st.data())
def test_binary_int16(litert, op, data):
    check(litert, model(binary16, data.draw, op))


def unary16(draw, w: ModelWriter, op: str):
    """RELU, RELU6 on int16; QUANTIZE int8 → int16, int16 → int8 and int16 → int16."""
    shape = _shape(draw)
    types = draw(st.sampled_from([("INT8", "INT16"), ("INT16", "INT8"), ("INT16", "INT16")])) \
        if op == "QUANTIZE" else ("INT16", "INT16")
    q = [dict(scale=scales(draw, 1e-3, 1.0), zp=_zp(draw)) if t == "INT8" else
         dict(scale=scales(draw, 1e-5, 1e-2), zp=0) for t in types]
    x = w.tensor(shape, types[0], **q[0])
    y = w.tensor(shape, types[1], **q[1])
    w.op(op, [x], [y])
    return [x], [y]


@pytest.mark.parametrize("op", ["RELU", "RELU6", "QUANTIZE"])
@EXAMPLES
@given(data=st.data())
def test_unary_int16(litert, op, data):
    check(litert, model(unary16, data.draw, op))


def test_int16_power_of_two_add_is_unsupported():
    w = ModelWriter()
    a, b, y = (w.tensor((1, 4), "INT16", scale=2.0 ** -12, zp=0) for _ in range(3))
    w.op("ADD", [a, b], [y], "AddOptions", FusedActivationFunction=0, PotScaleInt16=True)
    with pytest.raises(UnsupportedError, match="operator 0 \\(ADD\\).*pot_scale_int16"):
        tfl.load(w.build([a, b], [y]))


# ---------------------------------------------------------------- PRELU
def prelu(draw, w: ModelWriter):
    shape = _shape(draw)
    # alpha: per channel (the usual form), a trailing block, or one value; constant or an input
    alpha_shape = [d if draw(st.booleans()) else 1 for d in shape][draw(st.integers(0, len(shape) - 1)):]
    x = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=_zp(draw))
    q = dict(scale=scales(draw, 1e-3, 0.5), zp=_zp(draw))
    constant = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    alpha = w.tensor(alpha_shape, "INT8", data=rng.integers(-128, 128, alpha_shape).astype(np.int8)
                     if constant else None, **q)
    y = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=_zp(draw))
    w.op("PRELU", [x, alpha], [y])
    return ([x] if constant else [x, alpha]), [y]


@EXAMPLES
@given(st.data())
def test_prelu(litert, data):
    check(litert, model(prelu, data.draw))


def test_prelu_alpha_that_does_not_broadcast_is_malformed():
    w = ModelWriter()
    x = w.tensor((1, 3, 4), "INT8", scale=0.1, zp=0)
    alpha = w.tensor((2, 3, 4), "INT8", scale=0.1, zp=0, data=np.ones((2, 3, 4), np.int8))
    y = w.tensor((1, 3, 4), "INT8", scale=0.1, zp=0)
    w.op("PRELU", [x, alpha], [y])
    with pytest.raises(FrontendError, match="operator 0 \\(PRELU\\).*broadcast"):
        tfl.load(w.build([x], [y]))


# ---------------------------------------------------------------- LEAKY_RELU, GELU, RSQRT (256-entry TABLEs)
TABLE_OPS = ["LEAKY_RELU", "GELU", "RSQRT"]


def _table_options(draw, op: str) -> tuple[str | None, dict]:
    if op == "LEAKY_RELU":
        return "LeakyReluOptions", {"Alpha": draw(st.sampled_from([0.1, 0.2, 0.0, 1.0])) if draw(st.booleans())
                                    else draw(st.floats(-2.0, 2.0, width=32))}
    if op == "GELU":
        return "GeluOptions", {"Approximate": draw(st.booleans())}
    return None, {}


def table_op(draw, w: ModelWriter, op: str):
    """One table-built op; RSQRT reads a RELU's output (TFLite's RSQRT fails on inputs below the zero point)."""
    shape = _shape(draw)
    s_in, z_in = scales(draw, 1e-3, 1.0), _zp(draw)
    x = w.tensor(shape, "INT8", scale=s_in, zp=z_in)
    first = x
    if op == "RSQRT":
        relu = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=_zp(draw))
        w.op("RELU", [x], [relu])
        x = relu
    y = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=_zp(draw))
    options, fields = _table_options(draw, op)
    w.op(op, [x], [y], options, **fields)
    return [first], [y]


@pytest.mark.parametrize("op", TABLE_OPS)
@EXAMPLES
@given(data=st.data())
def test_table_ops(litert, op, data):
    check(litert, model(table_op, data.draw, op))


@pytest.mark.parametrize("op", TABLE_OPS)
def test_table_ops_exhaustive(litert, op):
    """Every int8 input (RSQRT: every one at or above the zero point) for 100 drawn quantizations and options."""
    rng = np.random.default_rng({"LEAKY_RELU": 4, "GELU": 5, "RSQRT": 6}[op])
    for _ in range(100):
        s_in, s_out = (float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(1.0))))) for _ in range(2))
        z_in, z_out = (int(v) for v in rng.integers(-128, 128, 2))
        inputs = EVERY_INT8[EVERY_INT8 >= z_in] if op == "RSQRT" else EVERY_INT8
        fields = {"LEAKY_RELU": {"Alpha": float(np.float32(rng.choice([rng.uniform(-2, 2), 0.1, 0.2])))},
                  "GELU": {"Approximate": bool(rng.integers(0, 2))}}.get(op, {})
        w = ModelWriter()
        x = w.tensor(inputs.shape, "INT8", scale=s_in, zp=z_in)
        y = w.tensor(inputs.shape, "INT8", scale=s_out, zp=z_out)
        w.op(op, [x], [y], {"LEAKY_RELU": "LeakyReluOptions", "GELU": "GeluOptions"}.get(op), **fields)
        data = w.build([x], [y])
        graph = tfl.load(data)
        got = list(interpreter.run(graph, {graph.main.inputs[0]: inputs}).values())[0]
        want = run_litert(litert, data, [inputs])[0]
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, f"{op} {fields} s_in={s_in} z_in={z_in} s_out={s_out} z_out={z_out}: inputs " \
                              f"{inputs[bad[:8]]} give {got[bad[:8]]}, LiteRT {want[bad[:8]]}"


# ---------------------------------------------------------------- SUM, REDUCE_MAX, ARG_MAX
def _axes(draw, rank: int) -> tuple[list[int], list[int]]:
    """Distinct axes and how the file writes them (some negative)."""
    axes = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    return axes, [a - rank if draw(st.booleans()) else a for a in axes]


def _index_constant(draw, w: ModelWriter, values: list[int], types=("INT32",)) -> int:
    """Axes as a constant tensor of one of ``types``."""
    ttype = draw(st.sampled_from(types))
    return w.tensor((len(values),), ttype, data=np.asarray(values, np.int32 if ttype == "INT32" else np.int64))


def _reduced(shape: list[int], axes: list[int], keep: bool) -> list[int]:
    return [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in axes]


def reduce_max(draw, w: ModelWriter):
    shape = _shape(draw, hi=6)
    axes, written = _axes(draw, len(shape))
    keep = draw(st.booleans())
    ttype = draw(st.sampled_from(["INT8", "INT16"]))
    q = dict(scale=scales(draw), zp=_zp(draw) if ttype == "INT8" else 0)
    x = w.tensor(shape, ttype, **q)
    a = _index_constant(draw, w, written)
    y = w.tensor(_reduced(shape, axes, keep), ttype, **q)
    w.op("REDUCE_MAX", [x, a], [y], "ReducerOptions", KeepDims=keep)
    return [x], [y]


def arg_max(draw, w: ModelWriter):
    """ARG_MAX over one axis; half the time after a coarse requantization, so that ties are frequent."""
    shape = _shape(draw, hi=6)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    s, z = scales(draw), _zp(draw)
    first = x = w.tensor(shape, "INT8", scale=s, zp=z)
    if draw(st.booleans()):
        x = w.tensor(shape, "INT8", scale=s * draw(st.floats(8.0, 60.0)), zp=_zp(draw))
        w.op("QUANTIZE", [first], [x])
    out_type = draw(st.sampled_from(["INT32", "INT64"]))
    a = _index_constant(draw, w, [axis], ("INT32", "INT64"))
    y = w.tensor([d for i, d in enumerate(shape) if i != axis % len(shape)], out_type)
    w.op("ARG_MAX", [x, a], [y], "ArgMaxOptions", OutputType=getattr(TensorType, out_type))
    return [first], [y]


@pytest.mark.parametrize("gen", [reduce_max, arg_max])
@EXAMPLES
@given(data=st.data())
def test_reduce_max_and_arg_max(litert, gen, data):
    check(litert, model(gen, data.draw))


def sum_model(draw, w: ModelWriter):
    """SUM of a RELU's output (inputs in [zp, 127] with zp >= 0, where LiteRT's uint8 reading is the int8 one)."""
    shape = _shape(draw, hi=6)
    axes, written = _axes(draw, len(shape))
    keep = draw(st.booleans())
    x = w.tensor(shape, "INT8", scale=scales(draw), zp=_zp(draw))
    s_r = scales(draw, 1e-3, 0.3)
    r = w.tensor(shape, "INT8", scale=s_r, zp=draw(st.integers(0, 127)))
    w.op("RELU", [x], [r])
    a = w.tensor((len(axes),), "INT32", data=np.asarray(written, np.int32))
    n = int(np.prod([shape[i] for i in axes]))
    # Output scales from the sum's range down to a tenth of the input's: TFLite shifts both ways.
    y = w.tensor(_reduced(shape, axes, keep), "INT8", scale=float(np.float32(s_r * draw(st.floats(0.1, 2.0 * n)))),
                 zp=_zp(draw))
    w.op("SUM", [r, a], [y], "ReducerOptions", KeepDims=keep)
    return [x], [y]


def check_sum(litert, data: bytes, targets: tuple[str, ...] = ("host",)) -> None:
    """LiteRT 2.3's BUILTIN_REF reads int8 SUM data as uint8 and clamps the result to [0, 255]: for inputs in
    [0, 127] that is the int8 routine up to the final clamp, so its output ``u`` (read as uint8) says what int8
    SUM gives: ``u`` itself for 1..127, 127 for 128..255, and something <= 0 for 0."""
    graph = tfl.load(data)
    compiled = {t: tosac.compile(graph, t) for t in targets}
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        inputs = [rng.integers(-128, 128, graph.main.type_of(n).shape).astype(np.int8) for n in graph.main.inputs]
        feed = dict(zip(graph.main.inputs, inputs))
        ref = interpreter.run(graph, feed)
        for k, (name, lite) in enumerate(zip(graph.main.outputs, run_litert(litert, data, inputs))):
            u = lite.view(np.uint8).astype(np.int64)
            got = ref[name].astype(np.int64)
            determined = u > 0
            np.testing.assert_array_equal(got[determined], np.minimum(u[determined], 127), err_msg=f"output {k}")
            assert np.all(got[~determined] <= 0), f"output {k}: LiteRT clamped to 0 where tosac gives " \
                                                  f"{got[~determined][got[~determined] > 0][:8]}"
            for t, exe in compiled.items():
                np.testing.assert_array_equal(exe.run(feed)[name], ref[name], err_msg=f"{t} code differs")


@EXAMPLES
@given(st.data())
def test_sum(litert, data):
    check_sum(litert, model(sum_model, data.draw))


def test_sum_reads_int8_unlike_litert_builtin_ref(litert):
    """The measured LiteRT 2.3 behaviour the SUM docstring describes: −100 is read as 156 there."""
    w = ModelWriter()
    x = w.tensor((1, 4), "INT8", scale=0.1, zp=3)
    a = w.tensor((1,), "INT32", data=np.asarray([1], np.int32))
    y = w.tensor((1,), "INT8", scale=0.3, zp=-5)
    w.op("SUM", [x, a], [y], "ReducerOptions", KeepDims=False)
    data = w.build([x], [y])
    xs = np.asarray([[-100, -50, 10, 20]], np.int8)
    graph = tfl.load(data)
    # int8: (−120 − 12) · (1/3) → −44, − 5; uint8 reading: (392 − 12) / 3 → 127, − 5 = 122.
    assert list(interpreter.run(graph, {graph.main.inputs[0]: xs}).values())[0].tolist() == [-49]
    assert run_litert(litert, data, [xs])[0].tolist() == [122]


def test_reduce_max_requantizing_is_unsupported():
    w = ModelWriter()
    x = w.tensor((1, 3, 4), "INT8", scale=0.1, zp=0)
    a = w.tensor((1,), "INT32", data=np.asarray([1], np.int32))
    y = w.tensor((1, 4), "INT8", scale=0.2, zp=0)
    w.op("REDUCE_MAX", [x, a], [y], "ReducerOptions", KeepDims=False)
    with pytest.raises(UnsupportedError, match="operator 0 \\(REDUCE_MAX\\).*quantization"):
        tfl.load(w.build([x], [y]))


def test_arg_max_bad_output_type_and_axes():
    def build(out_type: str, axes: list[int]) -> bytes:
        w = ModelWriter()
        x = w.tensor((2, 3), "INT8", scale=0.1, zp=0)
        a = w.tensor((len(axes),), "INT32", data=np.asarray(axes, np.int32))
        y = w.tensor((2,), out_type, scale=0.1 if out_type == "INT8" else None, zp=0 if out_type == "INT8" else None)
        w.op("ARG_MAX", [x, a], [y], "ArgMaxOptions", OutputType=getattr(TensorType, out_type))
        w.op("RELU", [y], [w.tensor((2,), "INT8", scale=0.1, zp=0)])
        return w.build([x], [len(w.tensors) - 1])
    with pytest.raises(UnsupportedError, match="operator 0 \\(ARG_MAX\\).*output_type"):
        tfl.load(build("INT8", [1]))
    with pytest.raises(FrontendError, match="operator 0 \\(ARG_MAX\\).*one axis"):
        tfl.load(build("INT32", [0, 1]))
    with pytest.raises(FrontendError, match="operator 0 \\(ARG_MAX\\).*out of range"):
        tfl.load(build("INT32", [2]))
    with pytest.raises(UnsupportedError, match="operator 1 \\(RELU\\).*INT32"):
        tfl.load(build("INT32", [1]))


# ---------------------------------------------------------------- AArch64 and ARMv7 under qemu-user
GENERATORS = [*[(binary, op) for op in ("MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")], (prelu,),
              *[(binary16, op) for op in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")],
              *[(unary16, op) for op in ("RELU", "RELU6", "QUANTIZE")],
              *[(table_op, op) for op in TABLE_OPS], (reduce_max,), (arg_max,)]


@pytest.fixture(params=["aarch64", "armv7"])
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


def _many(draw, generators) -> bytes:
    w = ModelWriter()
    ins, outs = [], []
    for gen, *args in generators:
        for _ in range(2):
            i, o = gen(draw, w, *args)
            ins += i
            outs += o
    return w.build(ins, outs)


@ARM_EXAMPLES
@given(data=st.data())
def test_every_operator_on_arm(litert, arm, data):
    """LiteRT == reference == host == ARM code for 2 drawn instances of every generator here, one model (SUM,
    compared through its own mapping, in a second one)."""
    check(litert, _many(data.draw, GENERATORS), targets=("host", arm))
    check_sum(litert, _many(data.draw, [(sum_model,)]), targets=("host", arm))

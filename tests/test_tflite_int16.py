"""TFLite int16x8 (int16 activations, zero point 0) LOGISTIC, TANH, LEAKY_RELU, GELU, RSQRT, PRELU, MEAN and SUM
against LiteRT's reference kernels (BUILTIN_REF), bit for bit.

As tests/test_tflite_elementwise.py: single-op models with hypothesis-drawn
shapes, quantization and options compared element for element by ``check`` on
the host; the one-input activations also on all 65,536 int16 inputs for many
drawn quantizations (the compiled code too, on the host and, with every other
generator here, on AArch64 and ARMv7 under qemu-user). LiteRT 2.3's BUILTIN_REF
reads int16 SUM data as bytes, so SUM is compared with LiteRT's MEAN over a
power-of-two element count ``n`` with output scale ``s_out / n``: the same
reference routine with the same multiplier (see compiler/frontends/tflite/reduce.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tflite_writer import (ARM_EXAMPLES, EXAMPLES, ModelWriter, check, model, random_inputs,  # noqa: E402
                           run_litert, scales)

import tosac  # noqa: E402
from tosac.errors import UnsupportedError  # noqa: E402
from tosac.frontends import tflite as tfl  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402

EVERY_INT16 = np.arange(-32768, 32768).astype(np.int16)
UNARY = ["LOGISTIC", "TANH", "LEAKY_RELU", "GELU", "RSQRT"]
OPTIONS = {"LEAKY_RELU": "LeakyReluOptions", "GELU": "GeluOptions"}
SIGMOID_OUT = 2.0 ** -15                    # TFLite's int16 LOGISTIC and TANH require it
# Power-of-two input scales: exact, within CheckedLog2's 1e-3 of log2 (TFLite takes them as exact), or beyond.
POT_FACTORS = [1.0, 1 + 3e-4, 1 - 3e-4, 1 + 6.5e-4, 1 - 6.5e-4, 1 + 8e-4, 1 + 2e-3]
EVERY_INPUT = settings(EXAMPLES, max_examples=max(60, EXAMPLES.max_examples))


def _shape(draw, lo: int = 1, hi: int = 5, max_rank: int = 4) -> list[int]:
    return draw(st.lists(st.integers(lo, hi), min_size=1, max_size=max_rank))


# ---------------------------------------------------------------- LOGISTIC, TANH, LEAKY_RELU, GELU, RSQRT
def _unary_quant(draw, op: str) -> tuple[float, float, dict]:
    """(input scale, output scale, option fields) for one int16 activation, within what TFLite accepts and
    tosac legalises (GELU: output scale at least input/200, so that its table's slopes fit int16)."""
    if op in ("LOGISTIC", "TANH") and draw(st.booleans()):
        s_in = float(np.float32(2.0 ** draw(st.integers(-14, -9)) * draw(st.sampled_from(POT_FACTORS))))
    else:
        s_in = scales(draw, 1e-5, 0.05)
    s_out = SIGMOID_OUT if op in ("LOGISTIC", "TANH") else \
        scales(draw, max(1e-5, s_in / 200) if op == "GELU" else 1e-5, 0.05)
    if op == "LEAKY_RELU":
        alpha = draw(st.sampled_from([0.1, 0.2, 0.0, 1.0, -0.5])) if draw(st.booleans()) else \
            draw(st.floats(-2.0, 2.0, width=32))
        return s_in, s_out, {"Alpha": alpha}
    return s_in, s_out, ({"Approximate": draw(st.booleans())} if op == "GELU" else {})


def unary16(draw, w: ModelWriter, op: str):
    """One int16 activation; RSQRT reads a RELU's output (TFLite's RSQRT fails on negative inputs)."""
    shape = _shape(draw)
    s_in, s_out, fields = _unary_quant(draw, op)
    first = x = w.tensor(shape, "INT16", scale=s_in, zp=0)
    if op == "RSQRT":
        x = w.tensor(shape, "INT16", scale=s_in, zp=0)
        w.op("RELU", [first], [x])
    y = w.tensor(shape, "INT16", scale=s_out, zp=0)
    w.op(op, [x], [y], OPTIONS.get(op), **fields)
    return [first], [y]


@pytest.mark.parametrize("op", UNARY)
@EXAMPLES
@given(data=st.data())
def test_unary_int16(litert, op, data):
    check(litert, model(unary16, data.draw, op))


def _every_input(op: str) -> np.ndarray:
    return EVERY_INT16[EVERY_INT16 >= 0] if op == "RSQRT" else EVERY_INT16


def every_input_model(draw, ops: list[str]) -> tuple[bytes, list[np.ndarray]]:
    """One model applying each op to its own tensor of every int16 input (RSQRT: every non-negative one)."""
    w = ModelWriter()
    ins, outs = [], []
    for op in ops:
        s_in, s_out, fields = _unary_quant(draw, op)
        ins.append(w.tensor(_every_input(op).shape, "INT16", scale=s_in, zp=0))
        outs.append(w.tensor(_every_input(op).shape, "INT16", scale=s_out, zp=0))
        w.op(op, [ins[-1]], [outs[-1]], OPTIONS.get(op), **fields)
    return w.build(ins, outs), [_every_input(op) for op in ops]


def check_every_input(litert, data: bytes, inputs: list[np.ndarray], targets: tuple[str, ...] = ()) -> None:
    """LiteRT == reference interpreter (== compiled code for each of ``targets``) on the given inputs."""
    graph = tfl.load(data)
    feed = dict(zip(graph.main.inputs, inputs))
    want = run_litert(litert, data, inputs)
    runs = [("reference interpreter", interpreter.run(graph, feed))]
    runs += [(f"{t} code", tosac.compile(graph, t).run(feed)) for t in targets]
    for who, got in runs:
        for k, name in enumerate(graph.main.outputs):
            bad = np.flatnonzero(got[name] != want[k])
            assert bad.size == 0, f"{who}, output {k}: inputs {inputs[k][bad[:8]]} give {got[name][bad[:8]]}, " \
                                  f"LiteRT {want[k][bad[:8]]}"


@pytest.mark.parametrize("op", UNARY)
@EVERY_INPUT
@given(data=st.data())
def test_unary_int16_every_input(litert, op, data):
    """All int16 inputs for (at least) 60 drawn quantizations and options per op, reference interpreter."""
    check_every_input(litert, *every_input_model(data.draw, [op]))


@settings(EXAMPLES, max_examples=3)
@given(data=st.data())
def test_unary_int16_every_input_host_code(litert, data):
    """All five activations' compiled host code on every int16 input, one model."""
    check_every_input(litert, *every_input_model(data.draw, UNARY), targets=("host",))


# ---------------------------------------------------------------- PRELU
def prelu16(draw, w: ModelWriter):
    """int16 input and output, int8 alpha (TFLite's int16 kernel reads alpha as int8) of any zero point, per
    channel, a trailing block or one value, constant or an input; the alpha multiplier below 64 (beyond it
    TFLite's int32 ``x·α·2^shift`` may overflow: refused)."""
    shape = _shape(draw)
    alpha_shape = [d if draw(st.booleans()) else 1 for d in shape][draw(st.integers(0, len(shape) - 1)):]
    s_in, s_alpha = scales(draw, 1e-5, 1e-2), scales(draw, 1e-3, 0.5)
    x = w.tensor(shape, "INT16", scale=s_in, zp=0)
    constant = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    alpha = w.tensor(alpha_shape, "INT8", scale=s_alpha, zp=draw(st.integers(-128, 127)),
                     data=rng.integers(-128, 128, alpha_shape).astype(np.int8) if constant else None)
    y = w.tensor(shape, "INT16", scale=scales(draw, max(1e-5, s_in * s_alpha / 50), 1e-2), zp=0)
    w.op("PRELU", [x, alpha], [y])
    return ([x] if constant else [x, alpha]), [y]


@EXAMPLES
@given(st.data())
def test_prelu_int16(litert, data):
    check(litert, model(prelu16, data.draw))


# ---------------------------------------------------------------- MEAN, SUM
def _reduced(shape: list[int], axes: list[int], keep: bool) -> list[int]:
    return [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in axes]


def _reduction(draw, dims) -> dict:
    """Shape (each dimension from ``dims``), distinct axes as the file writes them (some negative), keep_dims
    and the input scale."""
    shape = draw(st.lists(dims, min_size=1, max_size=4))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    return dict(shape=shape, axes=axes, written=[a - len(shape) if draw(st.booleans()) else a for a in axes],
                keep=draw(st.booleans()), s_in=scales(draw, 1e-5, 1e-2))


def _write_reduction(w: ModelWriter, op: str, r: dict, s_out: float):
    x = w.tensor(r["shape"], "INT16", scale=r["s_in"], zp=0)
    a = w.tensor((len(r["axes"]),), "INT32", data=np.asarray(r["written"], np.int32))
    y = w.tensor(_reduced(r["shape"], r["axes"], r["keep"]), "INT16", scale=s_out, zp=0)
    w.op(op, [x, a], [y], "ReducerOptions", KeepDims=r["keep"])
    return [x], [y]


def mean16(draw, w: ModelWriter):
    r = _reduction(draw, st.integers(1, 6))
    return _write_reduction(w, "MEAN", r, scales(draw, 1e-5, 1e-2))


def sum16_twins(draw, w_sum: ModelWriter, w_mean: ModelWriter):
    """SUM into ``w_sum`` and its twin MEAN into ``w_mean``: a power-of-two ``n`` reduced elements and output
    scale ``s_out / n`` (exact in float32), so TFLite's MEAN multiplier ``(M · n) // n`` is SUM's ``M``. The output
    scale ranges from a tenth of the input's to 2n times it: TFLite shifts both ways."""
    r = _reduction(draw, st.sampled_from([1, 2, 4, 8]))
    n = int(np.prod([r["shape"][a] for a in r["axes"]]))
    s_out = float(np.float32(r["s_in"] * draw(st.floats(0.1, 2.0 * n))))
    ins, outs = _write_reduction(w_sum, "SUM", r, s_out)
    _write_reduction(w_mean, "MEAN", r, float(np.float32(s_out) / np.float32(n)))
    return ins, outs


def check_twin(litert, data: bytes, twin: bytes, targets: tuple[str, ...] = ("host",)) -> None:
    """tosac on ``data`` == LiteRT BUILTIN_REF on ``twin`` (which computes the same), every element."""
    graph = tfl.load(data)
    compiled = {t: tosac.compile(graph, t) for t in targets}
    for seed in (0, 1):
        inputs = random_inputs(graph, np.random.default_rng(seed))
        feed = dict(zip(graph.main.inputs, inputs))
        want = run_litert(litert, twin, inputs)
        runs = [("reference interpreter", interpreter.run(graph, feed))]
        runs += [(f"{t} code", exe.run(feed)) for t, exe in compiled.items()]
        for who, got in runs:
            for k, name in enumerate(graph.main.outputs):
                np.testing.assert_array_equal(got[name], want[k], err_msg=f"{who}, output {k}")


@EXAMPLES
@given(st.data())
def test_mean_int16(litert, data):
    check(litert, model(mean16, data.draw))


def _twin_models(draw, count: int) -> tuple[bytes, bytes]:
    w_sum, w_mean = ModelWriter(), ModelWriter()
    ins, outs = [], []
    for _ in range(count):
        i, o = sum16_twins(draw, w_sum, w_mean)
        ins, outs = ins + i, outs + o
    return w_sum.build(ins, outs), w_mean.build(ins, outs)


@EXAMPLES
@given(st.data())
def test_sum_int16(litert, data):
    check_twin(litert, *_twin_models(data.draw, 1))


def test_sum_int16_reads_bytes_in_litert_builtin_ref(litert):
    """The measured LiteRT 2.3 behaviour the reduce docstring describes: BUILTIN_REF's int16 SUM sums the first
    bytes of the data (here 1, 0, 2, 0 of [1, 2, 3, 4]) as uint8 and writes a uint8 result; tosac sums the
    values."""
    w = ModelWriter()
    x = w.tensor((1, 4), "INT16", scale=1e-3, zp=0)
    a = w.tensor((1,), "INT32", data=np.asarray([1], np.int32))
    y = w.tensor((1,), "INT16", scale=1e-3, zp=0)
    w.op("SUM", [x, a], [y], "ReducerOptions", KeepDims=False)
    data = w.build([x], [y])
    xs = np.asarray([[1, 2, 3, 4]], np.int16)
    graph = tfl.load(data)
    assert list(interpreter.run(graph, {graph.main.inputs[0]: xs}).values())[0].tolist() == [10]
    assert run_litert(litert, data, [xs])[0].view(np.uint8)[0] == 3


# ---------------------------------------------------------------- what TFLite or tosac refuses
def _unary_model(op: str, s_in: float, s_out: float, **fields) -> bytes:
    w = ModelWriter()
    x = w.tensor((1, 8), "INT16", scale=s_in, zp=0)
    y = w.tensor((1, 8), "INT16", scale=s_out, zp=0)
    w.op(op, [x], [y], OPTIONS.get(op), **fields)
    return w.build([x], [y])


@pytest.mark.parametrize("op, s_in, s_out, fields, message", [
    ("HARD_SWISH", 1e-3, 1e-3, {}, "INT16"),                                # TFLite has no int16 kernel
    ("LOGISTIC", 1e-3, 2.0 ** -14, {}, "1/32768"),                          # TFLite's Prepare refuses
    ("TANH", 1e-3, 2.0 ** -14, {}, "1/32768"),
    ("LOGISTIC", 8.0, SIGMOID_OUT, {}, "overflows"),                        # x · 98304 overflows int32
    ("TANH", float(np.float32(2.0 ** -12 * 2.0 ** 1e-3)), SIGMOID_OUT, {}, "threshold"),
    ("LEAKY_RELU", 1.0, 2.0 ** -17, {"Alpha": 0.5}, "overflows"),           # left shift 18
    ("GELU", 1.0 / 128, 1e-6, {"Approximate": False}, "32767"),            # table jumps from -32768 to 32767
])
def test_unsupported_int16_activations(op, s_in, s_out, fields, message):
    with pytest.raises(UnsupportedError, match=f"operator 0 \\({op}\\).*{message}"):
        tfl.load(_unary_model(op, s_in, s_out, **fields))


def test_prelu_int16_alpha_and_overflow_are_unsupported():
    def build(alpha_type: str, s_out: float) -> bytes:
        w = ModelWriter()
        x = w.tensor((1, 4), "INT16", scale=1e-2, zp=0)
        alpha = w.tensor((4,), alpha_type, scale=0.5, zp=0, data=np.ones(4, alpha_type.lower()))
        y = w.tensor((1, 4), "INT16", scale=s_out, zp=0)
        w.op("PRELU", [x, alpha], [y])
        return w.build([x], [y])
    with pytest.raises(UnsupportedError, match="operator 0 \\(PRELU\\).*INT16, expected INT8"):
        tfl.load(build("INT16", 1e-2))
    with pytest.raises(UnsupportedError, match="operator 0 \\(PRELU\\).*overflows"):
        tfl.load(build("INT8", 1e-5))                                       # α multiplier 500: shift 9


def test_int16_sum_beyond_int32_is_unsupported():
    w = ModelWriter()
    x = w.tensor((257, 256), "INT16", scale=1e-3, zp=0)
    a = w.tensor((2,), "INT32", data=np.asarray([0, 1], np.int32))
    y = w.tensor((), "INT16", scale=1e-3, zp=0)
    w.op("MEAN", [x, a], [y], "ReducerOptions", KeepDims=False)
    with pytest.raises(UnsupportedError, match="operator 0 \\(MEAN\\).*65792 int16 values.*int32"):
        tfl.load(w.build([x], [y]))


# ---------------------------------------------------------------- AArch64 and ARMv7 under qemu-user
GENERATORS = [*[(unary16, op) for op in UNARY], (prelu16,), (mean16,)]


@pytest.fixture(params=["aarch64", "armv7"])
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


@ARM_EXAMPLES
@given(data=st.data())
def test_every_operator_on_arm(litert, arm, data):
    """LiteRT == reference == host == ARM code: 2 drawn instances of every generator here in one model, SUM (2
    instances, against its MEAN twin) in a second, and the five activations on every int16 input in a third."""
    w = ModelWriter()
    ins, outs = [], []
    for gen, *args in GENERATORS:
        for _ in range(2):
            i, o = gen(data.draw, w, *args)
            ins, outs = ins + i, outs + o
    check(litert, w.build(ins, outs), targets=("host", arm))
    check_twin(litert, *_twin_models(data.draw, 2), targets=("host", arm))
    check_every_input(litert, *every_input_model(data.draw, UNARY), targets=("host", arm))

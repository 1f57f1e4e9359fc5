"""The TFLite frontend against the TFLite interpreter's reference kernels (LiteRT, BUILTIN_REF), bit for bit.

Each operator is a single-op model written here (tests/tflite_writer.py) with
hypothesis-drawn shapes, quantization and options; LiteRT's output is compared
element for element with the reference interpreter on the imported graph and
with the compiled host code; AArch64 and ARMv7 code under qemu-user (the
``require_cross`` fixture: skipped with the reason without the cross tools,
a failure under CI) runs one model holding three drawn instances of every
operator generator, so each example costs one cross compile. Malformed files run in a child process with a
timeout, so a crash or a hang fails the test instead of killing pytest.
"""
from __future__ import annotations

import importlib.util
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tflite_writer import (ARM_EXAMPLES, EXAMPLES, SAME, VALID, ModelWriter, check, ds_cnn_model, model,  # noqa: E402
                           run_litert, scales)

import tosac  # noqa: E402
from tosac.errors import FrontendError, UnsupportedError  # noqa: E402
from tosac.frontends import tflite as tfl  # noqa: E402
from tosac.frontends.tflite.fixed_point import quantize_multiplier, tosa_rescale_params  # noqa: E402
from tosac.ir.builder import GraphBuilder  # noqa: E402
from tosac.ir.dtypes import DType  # noqa: E402
from tosac.ir.ops import RoundingMode  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402

def conv_like(draw, w: ModelWriter, depthwise: bool):
    h, wd = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    c = draw(st.integers(1, 4))
    mult = draw(st.integers(1, 2)) if depthwise else None
    oc = c * mult if depthwise else draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = draw(st.sampled_from([SAME, VALID]))
    if pad == VALID:
        h, wd = max(h, (kh - 1) * dh + 1), max(wd, (kw - 1) * dw + 1)
    out = [(n + s - 1) // s if pad == SAME else (n - (k - 1) * d - 1 + s) // s
           for n, k, s, d in ((h, kh, sh, dh), (wd, kw, sw, dw))]
    s_in, zp_in = scales(draw), draw(st.integers(-128, 127))
    per_channel = draw(st.booleans())
    s_w = scales(draw, 1e-3, 0.05, oc) if per_channel else scales(draw, 1e-3, 0.05, 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    wshape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, c)
    x = w.tensor((1, h, wd, c), "INT8", scale=s_in, zp=zp_in)
    f = w.tensor(wshape, "INT8", scale=s_w, zp=np.zeros(s_w.size, np.int64), qdim=3 if depthwise else 0,
                 data=rng.integers(-127, 128, wshape).astype(np.int8))
    ins = [x, f]
    # LiteRT's int8 kernels require the bias input; half the examples give zeros.
    bias = rng.integers(-3000, 3000, oc) if draw(st.booleans()) else np.zeros(oc)
    ins.append(w.tensor((oc,), "INT32", scale=s_in * s_w, zp=np.zeros(s_w.size, np.int64),
                        data=bias.astype(np.int32)))
    y = w.tensor((1, out[0], out[1], oc), "INT8", scale=scales(draw, 0.01, 0.5), zp=draw(st.integers(-128, 127)))
    act = draw(st.sampled_from([0, 1, 2, 3]))
    common = dict(Padding=pad, StrideH=sh, StrideW=sw, DilationHFactor=dh, DilationWFactor=dw,
                  FusedActivationFunction=act)
    if depthwise:
        w.op("DEPTHWISE_CONV_2D", ins, [y], "DepthwiseConv2DOptions", DepthMultiplier=mult, **common)
    else:
        w.op("CONV_2D", ins, [y], "Conv2DOptions", **common)
    return [x], [y]


@EXAMPLES
@given(st.data())
def test_conv2d(litert, data):
    check(litert, model(conv_like, data.draw, False))


@EXAMPLES
@given(st.data())
def test_depthwise_conv2d(litert, data):
    check(litert, model(conv_like, data.draw, True))


@EXAMPLES
@given(st.data())
def test_fully_connected(litert, data):
    check(litert, model(fully_connected, data.draw))


def fully_connected(draw, w: ModelWriter):
    keep = draw(st.booleans())
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))) + (draw(st.integers(1, 12)),)
    if not keep:
        shape = (draw(st.integers(1, 3)), shape[-1])
    depth, units = shape[-1], draw(st.integers(1, 6))
    s_in = scales(draw)
    s_w = scales(draw, 1e-3, 0.05, 1)
    # Small output scales give effective scales >= 1 (a TFLite left shift): covered here too.
    s_out = scales(draw, 1e-4, 0.5)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = w.tensor(shape, "INT8", scale=s_in, zp=draw(st.integers(-128, 127)))
    f = w.tensor((units, depth), "INT8", scale=s_w, zp=0, data=rng.integers(-127, 128, (units, depth)).astype(np.int8))
    b = w.tensor((units,), "INT32", scale=s_in * s_w, zp=0, data=rng.integers(-500, 500, units).astype(np.int32))
    out_shape = shape[:-1] + (units,) if keep else (int(np.prod(shape)) // depth, units)
    y = w.tensor(out_shape, "INT8", scale=s_out, zp=draw(st.integers(-128, 127)))
    w.op("FULLY_CONNECTED", [x, f, b], [y], "FullyConnectedOptions",
         FusedActivationFunction=draw(st.sampled_from([0, 1, 3])), KeepNumDims=keep)
    return [x], [y]


def binary_model(draw, w: ModelWriter, op: str, options: str):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    other = [d if draw(st.booleans()) else 1 for d in shape][draw(st.integers(0, len(shape) - 1)):]
    shapes = [shape, other] if draw(st.booleans()) else [other, shape]
    a = w.tensor(shapes[0], "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    b = w.tensor(shapes[1], "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    out = list(np.broadcast_shapes(tuple(shapes[0]), tuple(shapes[1])))
    y = w.tensor(out, "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    w.op(op, [a, b], [y], options, FusedActivationFunction=draw(st.sampled_from([0, 1, 2, 3])))
    return [a, b], [y]


@EXAMPLES
@given(st.data())
def test_add(litert, data):
    check(litert, model(binary_model, data.draw, "ADD", "AddOptions"))


@EXAMPLES
@given(st.data())
def test_sub(litert, data):
    check(litert, model(binary_model, data.draw, "SUB", "SubOptions"))


@EXAMPLES
@given(st.data())
def test_mul(litert, data):
    check(litert, model(binary_model, data.draw, "MUL", "MulOptions"))


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@EXAMPLES
@given(data=st.data())
def test_pool(litert, op, data):
    check(litert, model(pool, data.draw, op))


def pool(draw, w: ModelWriter, op: str):
    h, wd, c = draw(st.integers(1, 10)), draw(st.integers(1, 10)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = draw(st.sampled_from([SAME, VALID]))
    if pad == VALID:
        h, wd = max(h, kh), max(wd, kw)
    out = [(n + s - 1) // s if pad == SAME else (n - k + s) // s for n, k, s in ((h, kh, sh), (wd, kw, sw))]
    s, z = scales(draw), draw(st.integers(-128, 127))
    x = w.tensor((1, h, wd, c), "INT8", scale=s, zp=z)
    y = w.tensor((1, out[0], out[1], c), "INT8", scale=s, zp=z)
    w.op(op, [x], [y], "Pool2DOptions", Padding=pad, StrideH=sh, StrideW=sw, FilterHeight=kh, FilterWidth=kw,
         FusedActivationFunction=draw(st.sampled_from([0, 1, 2, 3])))
    return [x], [y]


@pytest.mark.parametrize("op", ["RELU", "RELU6", "RELU_N1_TO_1", "QUANTIZE"])
@EXAMPLES
@given(data=st.data())
def test_unary_requantizing(litert, op, data):
    check(litert, model(unary_requantizing, data.draw, op))


def unary_requantizing(draw, w: ModelWriter, op: str):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    x = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    y = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    w.op(op, [x], [y])
    return [x], [y]


@EXAMPLES
@given(st.data())
def test_data_movement(litert, data):
    check(litert, model(data_movement, data.draw))


def data_movement(draw, w: ModelWriter):
    """RESHAPE, SQUEEZE, PAD and CONCATENATION in one model."""
    h, wd, c = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    s, z = scales(draw), draw(st.integers(-128, 127))
    q = dict(scale=s, zp=z)
    x = w.tensor((1, h, wd, c), "INT8", **q)
    p = [[0, 0], [draw(st.integers(0, 2)), draw(st.integers(0, 2))], [draw(st.integers(0, 2)), 0], [0, 1]]
    pads = w.tensor((4, 2), "INT32", data=np.asarray(p, np.int32))
    padded_shape = (1, h + p[1][0] + p[1][1], wd + p[2][0], c + 1)
    xp = w.tensor(padded_shape, "INT8", **q)
    w.op("PAD", [x, pads], [xp], "PadOptions")
    x2 = w.tensor((1, h, wd, c), "INT8", **q)
    cat_in = w.tensor((1, h, wd, 2 * c), "INT8", **q)
    w.op("CONCATENATION", [x, x2], [cat_in], "ConcatenationOptions", Axis=-1, FusedActivationFunction=0)
    sq = w.tensor((h, wd, 2 * c), "INT8", **q)
    w.op("SQUEEZE", [cat_in], [sq], "SqueezeOptions", SqueezeDims=[0])
    shape_t = w.tensor((2,), "INT32", data=np.asarray([h * wd, 2 * c], np.int32))
    r = w.tensor((h * wd, 2 * c), "INT8", **q)
    w.op("RESHAPE", [sq, shape_t], [r], "ReshapeOptions", NewShape=[h * wd, 2 * c])
    return [x, x2], [xp, r]


# ---------------------------------------------------------------- LOGISTIC, TANH, HARD_SWISH, MEAN
def table_activation(draw, w: ModelWriter, op: str):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    s_in = scales(draw, 1e-3, 0.5)
    if op == "LOGISTIC":                                  # TFLite requires output scale 1/256
        s_out, z_out = 1.0 / 256, draw(st.sampled_from([-128, -128, 0, draw(st.integers(-128, 127))]))
    elif op == "TANH":
        s_out, z_out = draw(st.sampled_from([1.0 / 128, scales(draw, 1e-3, 0.05)])), draw(st.integers(-128, 127))
    else:                                                 # HARD_SWISH: s_in / s_out < 128 (Prepare's check)
        s_out, z_out = scales(draw, max(1e-3, s_in / 100), 1.0), draw(st.integers(-128, 127))
    x = w.tensor(shape, "INT8", scale=s_in, zp=draw(st.integers(-128, 127)))
    y = w.tensor(shape, "INT8", scale=s_out, zp=z_out)
    w.op(op, [x], [y])
    return [x], [y]


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH", "HARD_SWISH"])
@EXAMPLES
@given(data=st.data())
def test_table_activations(litert, op, data):
    check(litert, model(table_activation, data.draw, op))


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH", "HARD_SWISH"])
def test_table_activations_exhaustive(litert, op):
    """All 256 int8 inputs for 150 drawn quantizations each: the imported TABLE is LiteRT's function."""
    rng = np.random.default_rng({"LOGISTIC": 1, "TANH": 2, "HARD_SWISH": 3}[op])
    every = np.arange(-128, 128, dtype=np.int8)
    for _ in range(150):
        s_in = float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(1.0)))))
        # HARD_SWISH: s_out / s_in from 1/100 (near Prepare's limit) to 10^4 (int16 shifts of 16 and more).
        s_out = {"LOGISTIC": 1.0 / 256, "TANH": float(rng.choice([1.0 / 128, float(np.float32(rng.uniform(1e-3, 0.05)))]))
                 }.get(op, float(np.float32(s_in * np.exp(rng.uniform(np.log(1e-2), np.log(1e4))))))
        z_in, z_out = (int(v) for v in rng.integers(-128, 128, 2))
        w = ModelWriter()
        x = w.tensor((256,), "INT8", scale=s_in, zp=z_in)
        y = w.tensor((256,), "INT8", scale=s_out, zp=z_out)
        w.op(op, [x], [y])
        data = w.build([x], [y])
        graph = tfl.load(data)
        got = list(interpreter.run(graph, {graph.main.inputs[0]: every}).values())[0]
        want = run_litert(litert, data, [every])[0]
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, f"{op} s_in={s_in} z_in={z_in} s_out={s_out} z_out={z_out}: inputs " \
                              f"{every[bad[:8]]} give {got[bad[:8]]}, LiteRT {want[bad[:8]]}"


def mean_hw(draw, w: ModelWriter):
    """MEAN over drawn axes (half the time the global-average-pool form [1, 2] of a 4-D tensor), keep_dims or not."""
    shape = draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    if draw(st.booleans()):
        shape, axes = [draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9)),
                       draw(st.integers(1, 4))], [1, 2]
    else:
        axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    axes_written = [a - len(shape) if draw(st.booleans()) else a for a in axes]
    keep = draw(st.booleans())
    s_in = scales(draw, 1e-3, 0.5)
    # Output scales from 1/40 to 40 times the input's: both TFLite shift directions.
    s_out = float(np.float32(s_in * draw(st.floats(0.025, 40.0))))
    x = w.tensor(shape, "INT8", scale=s_in, zp=draw(st.integers(-128, 127)))
    a = w.tensor((len(axes),), "INT32", data=np.asarray(axes_written, np.int32))
    out_shape = [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in axes]
    y = w.tensor(out_shape, "INT8", scale=s_out, zp=draw(st.integers(-128, 127)))
    w.op("MEAN", [x, a], [y], "ReducerOptions", KeepDims=keep)
    return [x], [y]


@EXAMPLES
@given(st.data())
def test_mean(litert, data):
    check(litert, model(mean_hw, data.draw))


def test_mean_repeated_axes_are_unsupported():
    w = ModelWriter()
    x = w.tensor((1, 3, 3, 2), "INT8", scale=0.1, zp=0)
    a = w.tensor((2,), "INT32", data=np.asarray([1, -3], np.int32))
    y = w.tensor((1, 1, 3, 2), "INT8", scale=0.1, zp=0)
    w.op("MEAN", [x, a], [y], "ReducerOptions", KeepDims=True)
    with pytest.raises(UnsupportedError, match="operator 0 \\(MEAN\\).*repeated"):
        tfl.load(w.build([x], [y]))


def test_float_edges_become_int8(litert):
    """A float input read by QUANTIZE and a DEQUANTIZE output: the graph is int8 end to end."""
    w = ModelWriter()
    xf = w.tensor((1, 4), "FLOAT32")
    xq = w.tensor((1, 4), "INT8", scale=0.1, zp=3)
    yq = w.tensor((1, 4), "INT8", scale=0.05, zp=-2)
    yf = w.tensor((1, 4), "FLOAT32")
    w.op("QUANTIZE", [xf], [xq])
    w.op("RELU", [xq], [yq])
    w.op("DEQUANTIZE", [yq], [yf])
    graph = tfl.load(w.build([xf], [yf]))
    assert [graph.main.type_of(n).dtype for n in graph.main.inputs + graph.main.outputs] == [DType.INT8] * 2
    io = graph.metadata["io_quantization"]
    assert sorted(v["zero_point"] for v in io.values()) == [-2, 3]


# ---------------------------------------------------------------- requantization with a left shift
def tflite_mbqm(x: int, m: int, shift: int) -> int:
    """TFLite's double-rounding MultiplyByQuantizedMultiplier on int32 (no overflow in the tested range)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = x * (1 << left)
    assert -(1 << 31) <= a < (1 << 31)
    ab = a * m
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    h = abs(ab + nudge) >> 31
    h = h if ab + nudge >= 0 else -h                     # C's truncating division by 2^31
    mask = (1 << right) - 1
    rem, threshold = h & mask, (mask >> 1) + (1 if h < 0 else 0)
    return (h >> right) + (1 if rem > threshold else 0)


@pytest.mark.parametrize("scale", [0.3, 0.99999, 1.0, 1.5, 3.7, 1000.25, 2.0 ** 20 + 1, 1e-9, 0.5 ** 31])
def test_requantize_matches_multiply_by_quantized_multiplier(scale):
    """RESCALE (DOUBLE_ROUND, the clamp before it where TFLite shifts left) == TFLite's arithmetic, incl. ties."""
    m, s = quantize_multiplier(scale, "test")
    mults, shifts, bounds = tosa_rescale_params([scale], "test")
    assert 2 <= shifts[0] <= 62 and mults == [m]
    lim = (1 << (31 - max(s, 0))) - 1                      # TFLite's own precondition: x·2^left fits int32
    rng = np.random.default_rng(1)
    xs = np.concatenate([rng.integers(-lim, lim, 3000, endpoint=True), np.arange(-300, 300),
                         [lim, -lim, lim // 2, -(lim // 2), lim // 2 + 1]]).astype(np.int64)
    xs = np.clip(xs, -(1 << 31), (1 << 31) - 1)
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (xs.size,))
    if bounds is not None:                                # as Converter.requantize (no int32 CLAMP in TOSA)
        x = g.minimum(g.maximum(x, g.const(np.array([-bounds[0]], np.int32))),
                      g.const(np.array([bounds[0] - 1], np.int32)))
    g.output(g.rescale(x, DType.INT32, multiplier=mults, shift=shifts, rounding_mode=RoundingMode.DOUBLE_ROUND))
    graph = g.build()
    got = list(interpreter.run(graph, {"x": xs.astype(np.int32)}).values())[0].astype(np.int64)
    want = np.clip([tflite_mbqm(int(v), m, s) for v in xs], -(1 << 31), (1 << 31) - 1)
    # Where TFLite's result is beyond ±2^28 (the clamped band lies there) both saturate any int8/int16
    # output the same way; compare those by sign and size, everything else exactly.
    big = np.abs(want) >= (1 << 28)
    np.testing.assert_array_equal(got[~big], want[~big])
    assert np.all(np.sign(got[big]) == np.sign(want[big])) and np.all(np.abs(got[big]) >= (1 << 28))


def test_quantize_multiplier_carry_and_tiny():
    assert quantize_multiplier(1.0 - 2.0 ** -40, "t") == (1 << 30, 1)      # rounds up to 2^31: carry
    assert quantize_multiplier(0.5, "t") == (1 << 30, 0)
    assert quantize_multiplier(2.0 ** -40, "t") == (0, 0)
    with pytest.raises(UnsupportedError):
        tosa_rescale_params([2.0 ** 30], "t")


# ---------------------------------------------------------------- a network
def test_ds_cnn_kws_like_network(litert):
    check(litert, ds_cnn_model(), seeds=(0, 1, 2))


def mobilenet_v3_block_model() -> bytes:
    """1x1 expand → HARD_SWISH → depthwise 3x3 → HARD_SWISH → squeeze-excite (MEAN, 1x1 ReLU, 1x1,
    LOGISTIC, MUL) → 1x1 project → ADD residual: a MobileNetV3 bottleneck in int8."""
    rng = np.random.default_rng(11)
    w = ModelWriter()

    def act_t(shape, s, z):
        return w.tensor(shape, "INT8", scale=s, zp=z)

    def conv(x, s_x, shape_out, cout, k, out, relu=False, depthwise=False):
        cin = w.tensors[x]["shape"][3]
        s = rng.uniform(0.002, 0.02, cout).astype(np.float32)
        wshape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
        f = w.tensor(wshape, "INT8", scale=s, zp=np.zeros(cout, np.int64), qdim=3 if depthwise else 0,
                     data=rng.integers(-127, 128, wshape).astype(np.int8))
        b = w.tensor((cout,), "INT32", scale=s_x * s, zp=np.zeros(cout, np.int64),
                     data=rng.integers(-800, 800, cout).astype(np.int32))
        common = dict(Padding=SAME, StrideH=1, StrideW=1, DilationHFactor=1, DilationWFactor=1,
                      FusedActivationFunction=1 if relu else 0)
        if depthwise:
            w.op("DEPTHWISE_CONV_2D", [x, f, b], [out], "DepthwiseConv2DOptions", DepthMultiplier=1, **common)
        else:
            w.op("CONV_2D", [x, f, b], [out], "Conv2DOptions", **common)

    x = act_t((1, 8, 8, 8), 0.05, 3)
    e = act_t((1, 8, 8, 24), 0.08, -20)
    conv(x, 0.05, None, 24, 1, e)
    eh = act_t((1, 8, 8, 24), 0.06, -90)
    w.op("HARD_SWISH", [e], [eh])
    d = act_t((1, 8, 8, 24), 0.07, 5)
    conv(eh, 0.06, None, 24, 3, d, depthwise=True)
    dh = act_t((1, 8, 8, 24), 0.05, -100)
    w.op("HARD_SWISH", [d], [dh])
    axes = w.tensor((2,), "INT32", data=np.asarray([1, 2], np.int32))
    m = act_t((1, 1, 1, 24), 0.02, -60)
    w.op("MEAN", [dh, axes], [m], "ReducerOptions", KeepDims=True)
    r = act_t((1, 1, 1, 8), 0.03, -128)
    conv(m, 0.02, None, 8, 1, r, relu=True)
    se = act_t((1, 1, 1, 24), 0.1, 2)
    conv(r, 0.03, None, 24, 1, se)
    gate = act_t((1, 1, 1, 24), 1.0 / 256, -128)
    w.op("LOGISTIC", [se], [gate])
    scaled = act_t((1, 8, 8, 24), 0.04, -100)
    w.op("MUL", [dh, gate], [scaled], "MulOptions", FusedActivationFunction=0)
    p = act_t((1, 8, 8, 8), 0.06, 1)
    conv(scaled, 0.04, None, 8, 1, p)
    y = act_t((1, 8, 8, 8), 0.08, -2)
    w.op("ADD", [p, x], [y], "AddOptions", FusedActivationFunction=0)
    return w.build([x], [y])


def test_mobilenet_v3_like_block(litert):
    check(litert, mobilenet_v3_block_model(), seeds=(0, 1, 2))


# ---------------------------------------------------------------- AArch64 and ARMv7 under qemu-user
# Every operator generator, several instances each, in one model: one cross compile per example.
GENERATORS = [(conv_like, False), (conv_like, True), (fully_connected,), (binary_model, "ADD", "AddOptions"),
              (binary_model, "SUB", "SubOptions"), (binary_model, "MUL", "MulOptions"), (pool, "AVERAGE_POOL_2D"),
              (pool, "MAX_POOL_2D"), *[(unary_requantizing, op) for op in ("RELU", "RELU6", "RELU_N1_TO_1", "QUANTIZE")],
              (data_movement,), *[(table_activation, op) for op in ("LOGISTIC", "TANH", "HARD_SWISH")], (mean_hw,)]

@pytest.fixture(params=["aarch64", "armv7"])
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


@ARM_EXAMPLES
@given(data=st.data())
def test_every_operator_on_arm(litert, arm, data):
    """LiteRT == reference == host == ARM code for 3 drawn instances of every operator generator, one model."""
    w = ModelWriter()
    ins, outs = [], []
    for gen, *args in GENERATORS:
        for _ in range(3):
            i, o = gen(data.draw, w, *args)
            ins += i
            outs += o
    check(litert, w.build(ins, outs), targets=("host", arm))


@pytest.mark.parametrize("net", [ds_cnn_model, mobilenet_v3_block_model])
def test_networks_on_arm(litert, arm, net):
    check(litert, net(), seeds=(0, 1), targets=("host", arm))


# ---------------------------------------------------------------- malformed files
def _small_model() -> bytes:
    rng = np.random.default_rng(3)
    w = ModelWriter()
    x = w.tensor((1, 4, 4, 2), "INT8", scale=0.1, zp=1)
    f = w.tensor((3, 2, 2, 2), "INT8", scale=[0.01, 0.02, 0.03], zp=[0, 0, 0], data=rng.integers(-9, 9, (3, 2, 2, 2)).astype(np.int8))
    y = w.tensor((1, 4, 4, 3), "INT8", scale=0.2, zp=0)
    w.op("CONV_2D", [x, f], [y], "Conv2DOptions", Padding=SAME, StrideH=1, StrideW=1, DilationHFactor=1,
         DilationWFactor=1, FusedActivationFunction=0)
    z = w.tensor((1, 4, 4, 3), "INT8", scale=0.2, zp=0)
    w.op("MAX_POOL_2D", [y], [z], "Pool2DOptions", Padding=SAME, StrideH=1, StrideW=1, FilterHeight=2,
         FilterWidth=2, FusedActivationFunction=0)
    return w.build([x], [z])


def _load_cases(cases: list[bytes], queue) -> None:
    """Child process: load every case, report the outcome class of each (a raw exception is reported too)."""
    out = []
    for data in cases:
        try:
            tfl.load(data)
            out.append("ok")
        except (FrontendError, UnsupportedError):
            out.append("typed")
        except BaseException as e:  # noqa: BLE001 - reported to the parent as a failure
            out.append(f"raw {type(e).__name__}: {e}")
    queue.put(out)


def _in_child(cases: list[bytes], timeout: float = 60.0) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load_cases, args=(cases, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout)
    except Exception:  # noqa: BLE001
        proc.kill()
        proc.join()
        pytest.fail(f"the loader crashed or hung (exit code {proc.exitcode}) on malformed input")
    proc.join(timeout)
    return result


def test_malformed_files_are_typed_errors():
    good = _small_model()
    rng = np.random.default_rng(17)
    cases = [good[:n] for n in sorted(set(rng.integers(0, len(good), 60).tolist()) | {0, 3, 7, 8, 16})]
    for _ in range(400):
        b = bytearray(good)
        for _ in range(int(rng.integers(1, 6))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        cases.append(bytes(b))
    for _ in range(40):                                   # 32-bit words replaced by large / negative offsets
        b = bytearray(good)
        pos = int(rng.integers(0, len(b) - 4)) & ~3
        b[pos:pos + 4] = int(rng.choice([0x7FFFFFF0, 0xFFFFFFFC, len(good) * 3, 0x80000000])).to_bytes(4, "little")
        cases.append(bytes(b))
    cases.append(rng.integers(0, 256, 500).astype(np.uint8).tobytes())
    results = _in_child(cases)
    raw = [(i, r) for i, r in enumerate(results) if r.startswith("raw")]
    assert not raw, f"{len(raw)} malformed inputs raised untyped exceptions, e.g. {raw[:5]}"
    assert results[-1] == "typed"
    assert "typed" in results


def test_out_of_range_buffer_and_unknown_ops():
    w = ModelWriter()
    x = w.tensor((1, 4), "INT8", scale=0.1, zp=0)
    y = w.tensor((1, 4), "INT8", scale=0.1, zp=0)
    w.op("RELU", [x], [y])
    w.tensors[y]["buffer"] = 99                             # absent buffer
    with pytest.raises(FrontendError, match="buffer index 99"):
        tfl.load(w.build([x], [y]))
    w.tensors[y]["buffer"] = 0
    w.codes[0] = 4000                                       # unknown builtin code
    with pytest.raises(UnsupportedError, match="operator 0.*unknown builtin operator code 4000"):
        tfl.load(w.build([x], [y]))
    w.codes[0] = 32                                         # CUSTOM
    with pytest.raises(UnsupportedError, match="operator 0.*custom"):
        tfl.load(w.build([x], [y]))
    w.codes[0] = 26                                         # SPACE_TO_DEPTH: a builtin outside this slice
    with pytest.raises(UnsupportedError, match="operator 0 \\(SPACE_TO_DEPTH\\)"):
        tfl.load(w.build([x], [y]))


def test_unsupported_fused_activation_names_option():
    w = ModelWriter()
    a = w.tensor((1, 4), "INT8", scale=0.1, zp=0)
    b = w.tensor((1, 4), "INT8", scale=0.1, zp=0)
    y = w.tensor((1, 4), "INT8", scale=0.1, zp=0)
    w.op("ADD", [a, b], [y], "AddOptions", FusedActivationFunction=4)          # TANH
    with pytest.raises(UnsupportedError, match="operator 0 \\(ADD\\).*fused_activation_function"):
        tfl.load(w.build([a, b], [y]))


def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "m.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(FrontendError, match="m.tflite"):
        tfl.load(p)
    with pytest.raises(FrontendError):
        tfl.load(tmp_path / "missing.tflite")


def test_cli_runs_a_tflite_model(tmp_path, capsys):
    """`tosac run model.tflite --random-inputs --check`: the CLI reads .tflite through this frontend."""
    from tosac.app.cli import main

    path = tmp_path / "model.tflite"
    path.write_bytes(_small_model())
    assert main(["run", str(path), "--random-inputs", "--check"]) == 0
    assert "bit-exact against the reference interpreter" in capsys.readouterr().out


def test_int8_edges_carry_their_scales_into_the_c_header():
    """An int8 .tflite input and output keep the file's scale and zero point (graph metadata, the executable,
    the header), so a C user can quantize sensor data without the file."""
    from tosac.pipeline.artefacts import header_text
    from tosac.targets import get_target

    graph = tfl.load(ds_cnn_model())
    io = graph.metadata["io_quantization"]
    assert [(io[n]["scale"], io[n]["zero_point"]) for n in graph.main.inputs + graph.main.outputs] == \
        [(float(np.float32(0.08)), -10), (float(np.float32(0.1)), 4)]
    exe = tosac.compile(graph, "host", tuning_log=False)
    header = header_text(graph, exe, get_target("host"))
    assert "#define MODEL_INPUT_0_ZERO_POINT (-10)" in header and "#define MODEL_OUTPUT_0_ZERO_POINT (4)" in header


def test_round_half_away_is_c_round_for_every_double():
    """C's std::round: halves away from zero, and the double just below 0.5 stays 0 (floor(x + 0.5) gives 1)."""
    from tosac.frontends.tflite.fixed_point import round_half_away

    below_half = float(np.nextafter(0.5, 0.0))
    cases = {below_half: 0, -below_half: 0, 0.5: 1, -0.5: -1, 2.5: 3, -2.5: -3, 1.4999999999999998: 1,
             2.0 ** 52 + 1: 2 ** 52 + 1, 0.0: 0}
    assert {v: round_half_away(v) for v in cases} == cases

"""TFLite TRANSPOSE_CONV, BATCH_MATMUL, grouped CONV_2D and the int16x8 convolutions, FULLY_CONNECTED and pools
against LiteRT's reference kernels (BUILTIN_REF), bit for bit.

Single-op models written with tests/tflite_writer.py, shapes, quantization (per tensor and per channel),
options and bias types drawn by hypothesis, int16 inputs over the whole int16 range; one model holding
instances of every generator here runs on AArch64 and ARMv7 under qemu-user. The two requantizations the
frontend builds from integer pieces (TFLite's int64 MultiplyByQuantizedMultiplier and the reference
FULLY_CONNECTED's double rounding) are also compared with Python models of TFLite's C++ at their edges.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tflite_writer import (ARM_EXAMPLES, EXAMPLES, SAME, VALID, ModelWriter, check, model,  # noqa: E402
                           run_litert, scales)

from tosac.errors import FrontendError, UnsupportedError  # noqa: E402
from tosac.frontends import tflite as tfl  # noqa: E402
from tosac.frontends.tflite.accumulators import float_rounded, reduced_multiplier, requantize_wide  # noqa: E402
from tosac.frontends.tflite.converter import Converter  # noqa: E402
from tosac.frontends.tflite.fixed_point import quantize_multiplier  # noqa: E402
from tosac.ir.builder import GraphBuilder  # noqa: E402
from tosac.ir.dtypes import DType  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402

INT32_BIAS, INT64_BIAS = 2, 4            # tflite.TensorType codes for quantized_bias_type


def rng_of(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def eff_scale(draw, lo: float, hi: float) -> float:
    """A log-uniform requantization scale in [lo, hi]."""
    return math.exp(draw(st.floats(math.log(lo), math.log(hi))))


def activation(draw, w: ModelWriter, shape, dtype: str, s=None):
    """An int8 (any zero point) or int16 (zero point 0) activation tensor, and its scale."""
    s = scales(draw) if s is None else float(np.float32(s))
    return w.tensor(shape, dtype, scale=s, zp=draw(st.integers(-128, 127)) if dtype == "INT8" else 0), s


def weights(draw, w: ModelWriter, shape, axis: int, rng: np.random.Generator, magnitude: int = 127):
    """Int8 weights (|w| <= magnitude) quantized per tensor or per channel (``axis``), and their scales."""
    n = shape[axis] if draw(st.booleans()) else 1
    s = scales(draw, 1e-3, 0.05, n)
    data = rng.integers(-magnitude, magnitude + 1, shape).astype(np.int8)
    return w.tensor(shape, "INT8", scale=s, zp=np.zeros(n, np.int64), qdim=axis, data=data), s


def bias(draw, w: ModelWriter, n: int, s_in: float, s_w: np.ndarray, dtype: str, rng: np.random.Generator,
         bias_type: int | None = None):
    """A bias of the type the kernel reads (int8: int32; int16: int64, or int32 with quantized_bias_type
    INT32), zeros half the time, or -1 (absent) where ``bias_type`` allows it."""
    if dtype == "INT8":
        btype, big = "INT32", 3000
    else:
        btype, big = ("INT32", 1 << 20) if bias_type == INT32_BIAS else ("INT64", 1 << 24)
    values = rng.integers(-big, big, n) if draw(st.booleans()) else np.zeros(n)
    return w.tensor((n,), btype, scale=np.float32(s_in) * s_w, zp=np.zeros(s_w.size, np.int64),
                    data=values.astype(np.int32 if btype == "INT32" else np.int64))


def out_scale(draw, dtype: str, s_in: float, s_w: np.ndarray, lo: float, hi: float) -> float:
    """An output scale making ``s_in · s_w / s_out`` about ``eff_scale(lo, hi)`` (int8: a scale in range)."""
    return float(np.float32(s_in * float(np.max(s_w)) / eff_scale(draw, lo, hi)))


def bias_option(draw, dtype: str) -> int:
    """``quantized_bias_type``: the default (0) for int8; for int16 the default, INT64 or INT32."""
    return 0 if dtype == "INT8" else draw(st.sampled_from([0, INT64_BIAS, INT32_BIAS]))


# ---------------------------------------------------------------- CONV_2D (grouped), DEPTHWISE_CONV_2D
def conv(draw, w: ModelWriter, op: str, dtype: str):
    """CONV_2D (1 to 3 groups) or DEPTHWISE_CONV_2D with drawn shapes, strides, dilations, padding, activation."""
    rng = rng_of(draw)
    h, wd, n = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw, dh, dw = (draw(st.integers(1, 2)) for _ in range(4))
    pad = draw(st.sampled_from([SAME, VALID]))
    if pad == VALID:
        h, wd = max(h, (kh - 1) * dh + 1), max(wd, (kw - 1) * dw + 1)
    if op == "CONV_2D":
        groups, icf = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        c, oc = groups * icf, groups * draw(st.integers(1, 2))
        wshape, axis = (oc, kh, kw, icf), 0
    else:
        c = draw(st.integers(1, 4))
        mult = draw(st.integers(1, 2))
        oc, wshape, axis = c * mult, (1, kh, kw, c * mult), 3
    out = [(m + s - 1) // s if pad == SAME else (m - (k - 1) * d - 1 + s) // s
           for m, k, s, d in ((h, kh, sh, dh), (wd, kw, sw, dw))]
    x, s_in = activation(draw, w, (n, h, wd, c), dtype)
    f, s_w = weights(draw, w, wshape, axis, rng)
    option = bias_option(draw, dtype) if op == "CONV_2D" else 0
    b = bias(draw, w, oc, s_in, s_w, dtype, rng, option)
    y = w.tensor((n, out[0], out[1], oc), dtype, scale=out_scale(draw, dtype, s_in, s_w, 1e-3, 0.05) if
                 dtype == "INT8" else out_scale(draw, dtype, s_in, s_w, 2**-10, 2**-1),
                 zp=draw(st.integers(-128, 127)) if dtype == "INT8" else 0)
    common = dict(Padding=pad, StrideH=sh, StrideW=sw, DilationHFactor=dh, DilationWFactor=dw,
                  FusedActivationFunction=draw(st.sampled_from([0, 1, 2, 3])))
    if op == "CONV_2D":
        w.op(op, [x, f, b], [y], "Conv2DOptions", QuantizedBiasType=option, **common)
    else:
        w.op(op, [x, f, b], [y], "DepthwiseConv2DOptions", DepthMultiplier=mult, **common)
    return [x], [y]


@pytest.mark.parametrize("op,dtype", [("CONV_2D", "INT8"), ("CONV_2D", "INT16"), ("DEPTHWISE_CONV_2D", "INT16")])
@EXAMPLES
@given(data=st.data())
def test_conv(litert, op, dtype, data):
    check(litert, model(conv, data.draw, op, dtype))


# ---------------------------------------------------------------- TRANSPOSE_CONV
def transpose_conv(draw, w: ModelWriter, dtype: str):
    """TRANSPOSE_CONV: strides 1-3, kernels 1-4, any output size output_shape allows, SAME/VALID, bias or none."""
    rng = rng_of(draw)
    n, ih, iw = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    c, oc = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = draw(st.sampled_from([SAME, VALID]))
    sizes = []
    for i, k, s in ((ih, kh, sh), (iw, kw, sw)):
        # Output sizes whose computed input size (ComputePaddingHeightWidth) is the input's.
        sizes.append(draw(st.integers((i - 1) * s + 1, i * s) if pad == SAME else
                          st.integers(i * s + k - s, i * s + k - 1)))
    x, s_in = activation(draw, w, (n, ih, iw, c), dtype)
    f, s_w = weights(draw, w, (oc, kh, kw, c), 0, rng)
    shape = w.tensor((4,), "INT32", data=np.asarray([n, sizes[0], sizes[1], oc], np.int32))
    option = bias_option(draw, dtype)
    ins = [shape, f, x]
    if draw(st.booleans()):
        ins.append(bias(draw, w, oc, s_in, s_w, dtype, rng, option))
    y = w.tensor((n, sizes[0], sizes[1], oc), dtype,
                 scale=out_scale(draw, dtype, s_in, s_w, 1e-3, 0.05) if dtype == "INT8" else
                 out_scale(draw, dtype, s_in, s_w, 2**-8, 2**-1),
                 zp=draw(st.integers(-128, 127)) if dtype == "INT8" else 0)
    w.op("TRANSPOSE_CONV", ins, [y], "TransposeConvOptions", Padding=pad, StrideH=sh, StrideW=sw,
         FusedActivationFunction=draw(st.sampled_from([0, 1, 2, 3])), QuantizedBiasType=option)
    return [x], [y]


@pytest.mark.parametrize("dtype", ["INT8", "INT16"])
@EXAMPLES
@given(data=st.data())
def test_transpose_conv(litert, dtype, data):
    check(litert, model(transpose_conv, data.draw, dtype))


# ---------------------------------------------------------------- FULLY_CONNECTED
def fully_connected(draw, w: ModelWriter, dtype: str):
    """FULLY_CONNECTED, weights per tensor or per channel, keep_num_dims, int8 or int16 (int32/int64 bias)."""
    rng = rng_of(draw)
    keep = draw(st.booleans())
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))) + (draw(st.integers(1, 12)),)
    if not keep:
        shape = (draw(st.integers(1, 3)), shape[-1])
    depth, units = shape[-1], draw(st.integers(1, 6))
    x, s_in = activation(draw, w, shape, dtype)
    # int16: small weights too, so that the large effective scales drawn below do not only saturate.
    f, s_w = weights(draw, w, (units, depth), 0, rng, 127 if dtype == "INT8" else draw(st.sampled_from([1, 3, 127])))
    option = bias_option(draw, dtype)
    b = bias(draw, w, units, s_in, s_w, dtype, rng, option)
    out_shape = shape[:-1] + (units,) if keep else (int(np.prod(shape)) // depth, units)
    # int8: effective scales from 1/5000 to 2 (TFLite left shifts too). int16: 1/8 to 2, where few of the
    # 65,535 steps of round() fall where the 31-bit multiplier's do not (smaller scales are refused).
    y = w.tensor(out_shape, dtype, scale=out_scale(draw, dtype, s_in, s_w, 2e-4, 2.0) if dtype == "INT8" else
                 out_scale(draw, dtype, s_in, s_w, 2**-3, 2.0),
                 zp=draw(st.integers(-128, 127)) if dtype == "INT8" else 0)
    w.op("FULLY_CONNECTED", [x, f, b], [y], "FullyConnectedOptions",
         FusedActivationFunction=draw(st.sampled_from([0, 1, 3])), KeepNumDims=keep, QuantizedBiasType=option)
    return [x], [y]


@pytest.mark.parametrize("dtype", ["INT8", "INT16"])
@EXAMPLES
@given(data=st.data())
def test_fully_connected(litert, dtype, data):
    try:
        m = model(fully_connected, data.draw, dtype)
        tfl.load(m)
    except UnsupportedError as e:                  # int16 only: see accumulators.MAX_CORRECTION_ROUNDS
        assert dtype == "INT16" and "float requantization differs" in str(e)
        reject()
    check(litert, m)


def test_fully_connected_int16_small_scales_are_refused():
    """int16 FULLY_CONNECTED with eff ~ 2^-11: dozens of round() steps differ from RESCALE's; refused."""
    w = ModelWriter()
    x = w.tensor((1, 4), "INT16", scale=2.0 ** -10, zp=0)
    f = w.tensor((3, 4), "INT8", scale=2.0 ** -7, zp=0, data=np.full((3, 4), 127, np.int8))
    y = w.tensor((1, 3), "INT16", scale=float(np.float32(2.0 ** -7 * 1.9)), zp=0)     # 27 steps differ
    w.op("FULLY_CONNECTED", [x, f], [y], "FullyConnectedOptions", FusedActivationFunction=0, KeepNumDims=False)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(FULLY_CONNECTED\).*float requantization differs"):
        tfl.load(w.build([x], [y]))


def test_fully_connected_rounds_half_away_from_zero(litert):
    """eff = 2^-7 exactly: acc = ±64·(2j+1) are ties, which LiteRT's double rounding sends away from zero."""
    w = ModelWriter()
    x = w.tensor((256, 1), "INT8", scale=0.1, zp=0)
    f = w.tensor((3, 1), "INT8", scale=1 / 128, zp=0, data=np.array([[1], [3], [-127]], np.int8))
    b = w.tensor((3,), "INT32", scale=0.1 / 128, zp=0, data=np.array([0, 64, -64], np.int32))
    y = w.tensor((256, 3), "INT8", scale=0.1, zp=0)
    w.op("FULLY_CONNECTED", [x, f, b], [y], "FullyConnectedOptions", FusedActivationFunction=0, KeepNumDims=False)
    data = w.build([x], [y])
    every = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    graph = tfl.load(data)
    got = list(interpreter.run(graph, {graph.main.inputs[0]: every}).values())[0]
    want = run_litert(litert, data, [every])[0]
    assert want[every[:, 0] == -64, 0] == -1                    # the tie LiteRT rounds away from zero
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- BATCH_MATMUL
def batch_matmul(draw, w: ModelWriter, kind: str):
    """BATCH_MATMUL int8, int16 x int16 or int16 x int8: ranks 2-4, broadcast batch dimensions, adj_x/adj_y,
    an operand constant a third of the time."""
    rng = rng_of(draw)
    rank = draw(st.integers(2, 4))
    batch = draw(st.lists(st.integers(1, 3), min_size=rank - 2, max_size=rank - 2))
    ranks = [draw(st.integers(2, rank)), draw(st.integers(2, rank))]
    ranks[draw(st.integers(0, 1))] = rank
    rows, depth, cols = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    adj = [draw(st.booleans()), draw(st.booleans())]
    types = {"int8": ("INT8", "INT8"), "int16": ("INT16", "INT16"), "int16x8": ("INT16", "INT8")}[kind]
    const = draw(st.sampled_from([None, None, 0, 1]))
    ins, tensors, ss = [], [], []
    for i, (r, t) in enumerate(zip(ranks, types)):
        b = [d if draw(st.booleans()) else 1 for d in batch[len(batch) - (r - 2):]]
        mat = [rows, depth] if i == 0 else [depth, cols]
        shape = b + (mat[::-1] if adj[i] else mat)
        s = scales(draw, 1e-3, 0.1) if t == "INT8" else scales(draw, 1e-5, 1e-3)
        zp = draw(st.integers(-128, 127)) if kind == "int8" else 0
        data = None
        if const == i:
            info = np.iinfo(np.int8 if t == "INT8" else np.int16)
            data = rng.integers(info.min, info.max, shape, endpoint=True).astype(info.dtype)
        tensors.append(w.tensor(shape, t, scale=s, zp=zp, data=data))
        ss.append(s)
        if data is None:
            ins.append(tensors[-1])
    out_batch = list(np.broadcast_shapes(*[tuple(w.tensors[t]["shape"][:-2]) for t in tensors]))
    eff = {"int8": (1e-4, 0.05), "int16": (2**-25, 2**-11), "int16x8": (2**-9, 2**-4)}[kind]
    eff = eff_scale(draw, *eff)
    y = w.tensor(out_batch + [rows, cols], types[0], scale=float(np.float32(ss[0] * ss[1] / eff)),
                 zp=draw(st.integers(-128, 127)) if kind == "int8" else 0)
    w.op("BATCH_MATMUL", tensors, [y], "BatchMatMulOptions", AdjX=adj[0], AdjY=adj[1])
    return ins, [y]


@pytest.mark.parametrize("kind", ["int8", "int16", "int16x8"])
@EXAMPLES
@given(data=st.data())
def test_batch_matmul(litert, kind, data):
    check(litert, model(batch_matmul, data.draw, kind))


# ---------------------------------------------------------------- int16 pools
def pool16(draw, w: ModelWriter, op: str):
    h, wd, c = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 3))
    kh, kw, sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = draw(st.sampled_from([SAME, VALID]))
    if pad == VALID:
        h, wd = max(h, kh), max(wd, kw)
    out = [(m + s - 1) // s if pad == SAME else (m - k + s) // s for m, k, s in ((h, kh, sh), (wd, kw, sw))]
    s = scales(draw, 1e-5, 1e-2)
    x = w.tensor((1, h, wd, c), "INT16", scale=s, zp=0)
    y = w.tensor((1, out[0], out[1], c), "INT16", scale=s, zp=0)
    w.op(op, [x], [y], "Pool2DOptions", Padding=pad, StrideH=sh, StrideW=sw, FilterHeight=kh, FilterWidth=kw,
         FusedActivationFunction=draw(st.sampled_from([0, 1, 2, 3])))
    return [x], [y]


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@EXAMPLES
@given(data=st.data())
def test_pool_int16(litert, op, data):
    check(litert, model(pool16, data.draw, op))


# ---------------------------------------------------------------- the requantizations at their edges
def tflite_mbqm_int64(x: int, m: int, s: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier(int64_t, int32_t, int) (non-SINGLE_ROUNDING build), wrapping."""
    reduced = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
    t = 15 - s
    r = (x * reduced + (1 << (t - 1))) >> t
    return (r + (1 << 31)) % (1 << 32) - (1 << 31)


def _run_one(build, x: np.ndarray, dtype: DType) -> np.ndarray:
    g = GraphBuilder()
    xin = g.input("x", dtype, x.shape)
    cv = Converter.__new__(Converter)
    cv.g = g
    g.output(build(cv, xin))
    return list(interpreter.run(g.build(), {"x": x}).values())[0].astype(np.int64)


@EXAMPLES
@given(st.data())
def test_int64_requantization_matches_tflite(data):
    """RESCALE int48 -> int16 (scale16) == TFLite's int64 MBQM clamped, at the multiplier's 0x7FFF0000 edge,
    shifts -31..13, ties and accumulators up to the int32-result bound."""
    draw = data.draw
    s = draw(st.integers(-31, 13))
    m = draw(st.sampled_from([1 << 30, 0x7FFEFFFF, 0x7FFF0000, 0x7FFFFFFF, 0x40008000, 0x40007FFF,
                              draw(st.integers(1 << 30, (1 << 31) - 1))]))
    scale = m * 2.0 ** (s - 31)
    assert quantize_multiplier(scale, "t") == (m, s)
    mult, t = reduced_multiplier(scale, "t")
    limit = min((1 << 47) - 1, ((1 << (31 + t)) - (1 << (t - 1))) // max(mult, 1) - 1)
    xs = [draw(st.integers(-limit, limit)) for _ in range(64)]
    xs += [(2 * j + 1) << (t - 1) for j in range(-4, 4)] + [limit, -limit, 0]   # exact ties
    xs = np.asarray([v for v in xs if abs(v) <= limit], np.int64)
    got = _run_one(lambda cv, v: requantize_wide(cv, v, np.asarray([scale]), DType.INT16, -32768, 32767, "t"),
                   xs, DType.INT48)
    want = np.clip([tflite_mbqm_int64(int(v), m, s) for v in xs], -32768, 32767)
    np.testing.assert_array_equal(got, want)


@EXAMPLES
@given(st.data())
def test_float_requantization_matches_tflite(data):
    """float_rounded == clamp((int32) round((double) acc · eff) + zp) for every accumulator in a window around
    the output range, for random and dyadic scales (exact ties), int8 and int16 outputs."""
    draw = data.draw
    dtype = draw(st.sampled_from([DType.INT8, DType.INT16]))
    eff = draw(st.sampled_from([2.0 ** draw(st.integers(-20, 2)), eff_scale(draw, 1e-6, 4.0),
                                float(np.float32(eff_scale(draw, 1e-3, 1.0))) * float(np.float32(0.1)) / 0.3]))
    zp = draw(st.integers(-128, 127)) if dtype is DType.INT8 else 0
    lo, hi = dtype.min, dtype.max
    if draw(st.booleans()):
        lo = max(lo, zp)                                           # a RELU
    reach = int(min((max(hi - zp, zp - lo) + 2) / eff, 2**30))
    bound = draw(st.integers(1, reach))
    xs = np.unique(np.concatenate([np.arange(-min(bound, 3000), min(bound, 3000) + 1),
                                   np.random.default_rng(0).integers(-bound, bound, 4000, endpoint=True),
                                   [bound, -bound]])).astype(np.int32)
    got = _run_one(lambda cv, v: float_rounded(cv, v, [eff], np.asarray([bound]), dtype, zp, lo, hi, "t"),
                   xs, DType.INT32)
    mag = np.abs(xs.astype(np.float64) * eff)                     # the kernel's double product, sign apart
    whole = np.floor(mag)
    rounded = whole + (mag - whole >= 0.5)                          # C's round(): exact, ties away from zero
    want = np.clip(np.sign(xs) * rounded + zp, lo, hi)
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- AArch64 and ARMv7 under qemu-user
GENERATORS = [(conv, "CONV_2D", "INT8"), (conv, "CONV_2D", "INT16"), (conv, "DEPTHWISE_CONV_2D", "INT16"),
              (transpose_conv, "INT8"), (transpose_conv, "INT16"), (fully_connected, "INT8"),
              (fully_connected, "INT16"), *[(batch_matmul, k) for k in ("int8", "int16", "int16x8")],
              (pool16, "AVERAGE_POOL_2D"), (pool16, "MAX_POOL_2D")]


@pytest.fixture(params=["aarch64", "armv7"])
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


@ARM_EXAMPLES
@given(data=st.data())
def test_every_generator_on_arm(litert, arm, data):
    """LiteRT == reference == host == ARM code for 2 drawn instances of every generator here, one model."""
    w = ModelWriter()
    ins, outs = [], []
    for gen, *args in GENERATORS:
        for _ in range(2):
            i, o = gen(data.draw, w, *args)
            ins += i
            outs += o
    check(litert, w.build(ins, outs), targets=("host", arm))


# ---------------------------------------------------------------- refusals name the operator
def _transpose_conv_model(shape=(1, 4, 4, 2), out_shape=(1, 4, 4, 2), const_shape=True, const_filter=True,
                          dtype="INT8", bias_type=None, option=0) -> bytes:
    w = ModelWriter()
    x = w.tensor((1, 2, 2, 3), dtype, scale=0.1, zp=0)
    s = w.tensor((4,), "INT32", data=np.asarray(out_shape, np.int32) if const_shape else None)
    f = w.tensor((2, 3, 3, 3), "INT8", scale=0.01, zp=0,
                 data=np.ones((2, 3, 3, 3), np.int8) if const_filter else None)
    ins = [s, f, x]
    if bias_type:
        ins.append(w.tensor((2,), bias_type, scale=0.001, zp=0, data=np.zeros(2, np.dtype(bias_type.lower()))))
    y = w.tensor(shape, dtype, scale=0.2, zp=0)
    w.op("TRANSPOSE_CONV", ins, [y], "TransposeConvOptions", Padding=SAME, StrideH=2, StrideW=2,
         QuantizedBiasType=option)
    return w.build([x], [y])                 # a non-constant output_shape/filter: no producer, no data


def test_transpose_conv_refusals():
    tfl.load(_transpose_conv_model())
    with pytest.raises(FrontendError, match=r"operator 0 \(TRANSPOSE_CONV\).*output_shape \[1, 5, 4, 2\]"):
        tfl.load(_transpose_conv_model(out_shape=(1, 5, 4, 2)))
    with pytest.raises(FrontendError, match=r"operator 0 \(TRANSPOSE_CONV\).*needs an input of size 3"):
        tfl.load(_transpose_conv_model(shape=(1, 6, 4, 2), out_shape=(1, 6, 4, 2)))
    with pytest.raises(UnsupportedError, match=r"operator 0 \(TRANSPOSE_CONV\).*output_shape.*constant"):
        tfl.load(_transpose_conv_model(const_shape=False))
    with pytest.raises(UnsupportedError, match=r"operator 0 \(TRANSPOSE_CONV\).*must be a constant"):
        tfl.load(_transpose_conv_model(const_filter=False))
    tfl.load(_transpose_conv_model(dtype="INT16", bias_type="INT64"))
    with pytest.raises(UnsupportedError, match=r"operator 0 \(TRANSPOSE_CONV\).*bias of type INT32"):
        tfl.load(_transpose_conv_model(dtype="INT16", bias_type="INT32"))      # read as int64 by TFLite
    tfl.load(_transpose_conv_model(dtype="INT16", bias_type="INT32", option=INT32_BIAS))


def _conv16(c: int = 4, icf: int = 2, out_scale: float = 0.2, bias_type: str = "INT64") -> bytes:
    w = ModelWriter()
    x = w.tensor((1, 3, 3, c), "INT16", scale=0.1, zp=0)
    f = w.tensor((2, 3, 3, icf), "INT8", scale=0.05, zp=0, data=np.full((2, 3, 3, icf), 127, np.int8))
    b = w.tensor((2,), bias_type, scale=0.005, zp=0, data=np.zeros(2, np.dtype(bias_type.lower())))
    y = w.tensor((1, 3, 3, 2), "INT16", scale=out_scale, zp=0)
    w.op("CONV_2D", [x, f, b], [y], "Conv2DOptions", Padding=SAME, StrideH=1, StrideW=1, DilationHFactor=1,
         DilationWFactor=1, FusedActivationFunction=0)
    return w.build([x], [y])


def test_conv_refusals():
    tfl.load(_conv16())
    with pytest.raises(FrontendError, match=r"operator 0 \(CONV_2D\).*whole groups"):
        tfl.load(_conv16(c=5))
    with pytest.raises(FrontendError, match=r"operator 0 \(CONV_2D\).*whole groups"):
        tfl.load(_conv16(c=6, icf=2))                               # 3 groups, 2 filters
    with pytest.raises(UnsupportedError, match=r"operator 0 \(CONV_2D\).*leaves int32"):
        tfl.load(_conv16(out_scale=0.1 * 0.05 / 64))                # |acc · 64| may pass 2^31
    with pytest.raises(UnsupportedError, match=r"operator 0 \(CONV_2D\).*bias of type INT32"):
        tfl.load(_conv16(bias_type="INT32"))


def test_batch_matmul_refusals():
    def bmm(rhs_shape, rhs_scale=0.1) -> bytes:
        w = ModelWriter()
        a = w.tensor((2, 3, 4), "INT8", scale=0.1, zp=0)
        b = w.tensor(rhs_shape, "INT8", scale=rhs_scale, zp=np.zeros(np.size(rhs_scale), np.int64), qdim=2)
        y = w.tensor((2, 3, 5), "INT8", scale=0.1, zp=0)
        w.op("BATCH_MATMUL", [a, b], [y], "BatchMatMulOptions", AdjX=False, AdjY=False)
        return w.build([a, b], [y])

    tfl.load(bmm((2, 4, 5)))
    with pytest.raises(FrontendError, match=r"operator 0 \(BATCH_MATMUL\).*inner dimensions 4 and 3"):
        tfl.load(bmm((2, 3, 5)))
    with pytest.raises(FrontendError, match=r"operator 0 \(BATCH_MATMUL\).*batch dimension 0"):
        tfl.load(bmm((3, 4, 5)))
    with pytest.raises(UnsupportedError, match=r"operator 0 \(BATCH_MATMUL\).*per tensor"):
        tfl.load(bmm((2, 4, 5), [0.1] * 5))

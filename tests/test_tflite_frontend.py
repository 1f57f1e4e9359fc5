"""The TFLite frontend against the TFLite interpreter's reference kernels (LiteRT, BUILTIN_REF), bit for bit.

Each operator is a single-op model written here (tests/tflite_writer.py) with
hypothesis-drawn shapes, quantization and options; LiteRT's output is compared
element for element with the reference interpreter on the imported graph and
with the compiled host code. Malformed files run in a child process with a
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
from tflite_writer import ModelWriter, run_litert  # noqa: E402

import tosac  # noqa: E402
from tosac.errors import FrontendError, UnsupportedError  # noqa: E402
from tosac.frontends import tflite as tfl  # noqa: E402
from tosac.frontends.tflite.fixed_point import quantize_multiplier, tosa_rescale_params  # noqa: E402
from tosac.ir.builder import GraphBuilder  # noqa: E402
from tosac.ir.dtypes import DType  # noqa: E402
from tosac.ir.ops import RoundingMode  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402

SAME, VALID = 0, 1
# TOSAC_TFLITE_EXAMPLES raises the hypothesis examples per operator for a longer soak.
EXAMPLES = settings(max_examples=int(os.environ.get("TOSAC_TFLITE_EXAMPLES", "25")), deadline=None, derandomize=os.environ.get("TOSAC_TFLITE_EXAMPLES") is None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def litert(require_module):
    return require_module("ai_edge_litert.interpreter", extra="test")


def scales(draw, lo=1e-3, hi=0.3, n=None):
    f = st.floats(float(np.float32(lo)), float(np.float32(hi)), allow_nan=False, width=32)
    return draw(f) if n is None else np.asarray(draw(st.lists(f, min_size=n, max_size=n)), np.float32)


def check(litert, model: bytes, seed: int = 0) -> None:
    """LiteRT BUILTIN_REF == reference interpreter == compiled host code, every element."""
    graph = tfl.load(model)
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, graph.main.type_of(n).shape).astype(np.int8) for n in graph.main.inputs]
    expected = run_litert(litert, model, inputs)
    feed = dict(zip(graph.main.inputs, inputs))
    ref = [interpreter.run(graph, feed)[n] for n in graph.main.outputs]
    got = tosac.compile(graph, "host").run(feed)
    for k, name in enumerate(graph.main.outputs):
        assert ref[k].shape == expected[k].shape
        bad = np.flatnonzero(ref[k].astype(np.int64) != expected[k])
        assert bad.size == 0, f"reference interpreter differs from LiteRT at {bad.size} elements: " \
                              f"{ref[k].reshape(-1)[bad[:8]]} vs {expected[k].reshape(-1)[bad[:8]]}"
        np.testing.assert_array_equal(got[name], expected[k], err_msg="compiled code differs from LiteRT")


def conv_like(draw, depthwise: bool):
    w = ModelWriter()
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
    return w.build([x], [y])


@EXAMPLES
@given(st.data())
def test_conv2d(litert, data):
    check(litert, conv_like(data.draw, False))


@EXAMPLES
@given(st.data())
def test_depthwise_conv2d(litert, data):
    check(litert, conv_like(data.draw, True))


@EXAMPLES
@given(st.data())
def test_fully_connected(litert, data):
    draw = data.draw
    w = ModelWriter()
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
    check(litert, w.build([x], [y]))


def binary_model(draw, op: str, options: str):
    w = ModelWriter()
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    other = [d if draw(st.booleans()) else 1 for d in shape][draw(st.integers(0, len(shape) - 1)):]
    shapes = [shape, other] if draw(st.booleans()) else [other, shape]
    a = w.tensor(shapes[0], "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    b = w.tensor(shapes[1], "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    out = list(np.broadcast_shapes(tuple(shapes[0]), tuple(shapes[1])))
    y = w.tensor(out, "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    w.op(op, [a, b], [y], options, FusedActivationFunction=draw(st.sampled_from([0, 1, 2, 3])))
    return w.build([a, b], [y])


@EXAMPLES
@given(st.data())
def test_add(litert, data):
    check(litert, binary_model(data.draw, "ADD", "AddOptions"))


@EXAMPLES
@given(st.data())
def test_sub(litert, data):
    check(litert, binary_model(data.draw, "SUB", "SubOptions"))


@EXAMPLES
@given(st.data())
def test_mul(litert, data):
    check(litert, binary_model(data.draw, "MUL", "MulOptions"))


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@EXAMPLES
@given(data=st.data())
def test_pool(litert, op, data):
    draw = data.draw
    w = ModelWriter()
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
    check(litert, w.build([x], [y]))


@pytest.mark.parametrize("op", ["RELU", "RELU6", "RELU_N1_TO_1", "QUANTIZE"])
@EXAMPLES
@given(data=st.data())
def test_unary_requantizing(litert, op, data):
    draw = data.draw
    w = ModelWriter()
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    x = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    y = w.tensor(shape, "INT8", scale=scales(draw, 1e-3, 1.0), zp=draw(st.integers(-128, 127)))
    w.op(op, [x], [y])
    check(litert, w.build([x], [y]))


@EXAMPLES
@given(st.data())
def test_data_movement(litert, data):
    """RESHAPE, SQUEEZE, PAD and CONCATENATION in one model."""
    draw = data.draw
    w = ModelWriter()
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
    check(litert, w.build([x, x2], [xp, r]))


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
    """conv → depthwise/pointwise blocks with ReLU → average pool → FC → (int8 logits), bit-exact."""
    rng = np.random.default_rng(7)
    w = ModelWriter()

    def act_t(shape, s, z):
        return w.tensor(shape, "INT8", scale=s, zp=z)

    def weights(shape, qdim, n):
        s = rng.uniform(0.002, 0.02, n).astype(np.float32)
        return w.tensor(shape, "INT8", scale=s, zp=np.zeros(n, np.int64), qdim=qdim,
                        data=rng.integers(-127, 128, shape).astype(np.int8)), s

    def bias(n, s):
        return w.tensor((n,), "INT32", scale=s, zp=np.zeros(np.size(s), np.int64),
                        data=rng.integers(-2000, 2000, n).astype(np.int32))

    x = act_t((1, 49, 10, 1), 0.08, -10)
    f, s = weights((16, 10, 4, 1), 0, 16)
    h = act_t((1, 25, 5, 16), 0.05, -128)
    w.op("CONV_2D", [x, f, bias(16, 0.08 * s)], [h], "Conv2DOptions", Padding=SAME, StrideH=2, StrideW=2,
         DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=1)
    cur, cur_s = h, 0.05
    for block in range(2):
        f, s = weights((1, 3, 3, 16), 3, 16)
        d = act_t((1, 25, 5, 16), 0.04, -128)
        w.op("DEPTHWISE_CONV_2D", [cur, f, bias(16, cur_s * s)], [d], "DepthwiseConv2DOptions", Padding=SAME,
             StrideH=1, StrideW=1, DepthMultiplier=1, DilationHFactor=1, DilationWFactor=1,
             FusedActivationFunction=3)
        f, s = weights((16, 1, 1, 16), 0, 16)
        p = act_t((1, 25, 5, 16), 0.06, -128)
        w.op("CONV_2D", [d, f, bias(16, 0.04 * s)], [p], "Conv2DOptions", Padding=VALID, StrideH=1, StrideW=1,
             DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=1)
        cur, cur_s = p, 0.06
    pooled = act_t((1, 1, 1, 16), 0.06, -128)
    w.op("AVERAGE_POOL_2D", [cur], [pooled], "Pool2DOptions", Padding=VALID, StrideH=1, StrideW=1,
         FilterHeight=25, FilterWidth=5, FusedActivationFunction=0)
    flat = act_t((1, 16), 0.06, -128)
    shape_t = w.tensor((2,), "INT32", data=np.asarray([1, 16], np.int32))
    w.op("RESHAPE", [pooled, shape_t], [flat], "ReshapeOptions", NewShape=[1, 16])
    f = w.tensor((12, 16), "INT8", scale=0.01, zp=0, data=rng.integers(-127, 128, (12, 16)).astype(np.int8))
    logits = act_t((1, 12), 0.1, 4)
    w.op("FULLY_CONNECTED", [flat, f, bias(12, np.float32(0.06 * 0.01))], [logits], "FullyConnectedOptions",
         FusedActivationFunction=0, KeepNumDims=False)
    model = w.build([x], [logits])
    for seed in range(3):
        check(litert, model, seed)


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

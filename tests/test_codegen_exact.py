"""Compiled code equals the reference interpreter bit for bit.

Hypothesis draws shapes, attributes and values (edges included) for the fused
int8 patterns, every template and the element-wise ops; each graph runs under
the default config and under a randomly sampled valid config of every kernel
(the tuner may pick any point of a space, so every point must be exact).
Examples whose reference result is unpredictable (a REQUIRE fails) are
skipped: any result is allowed there.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tosac
from tosac.pipeline.optimise import kernel_builders, optimise_graph
from tosac.errors import UnpredictableError
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.ops import RoundingMode
from tosac.ir.reference.interpreter import run
from tosac.targets import get_target, runnable_targets

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def random_configs(graph, target, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {kb.name: kb.space.sample(rng) for kb in kernel_builders(optimise_graph(graph), get_target(target))}


def check(graph, inputs, seed: int = 0, targets=("host",)) -> None:
    """Reference vs compiled, default config and one random config per target."""
    try:
        expected = run(graph, inputs)
    except UnpredictableError:
        assume(False)
    for target in targets:
        for config in (None, random_configs(graph, target, seed)):
            got = tosac.compile(graph, target, config).run(inputs)
            for name in graph.outputs:
                assert got[name].dtype == expected[name].dtype, name
                assert got[name].shape == expected[name].shape, name
                np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{target} {config}")


def ints(draw, dtype: DType, shape, lo=None, hi=None):
    lo = dtype.min if lo is None else lo
    hi = dtype.max if hi is None else hi
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    edge = draw(st.sampled_from(["random", "min", "max", "mixed"]))
    values = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    if edge == "min":
        values[...] = lo
    elif edge == "max":
        values[...] = hi
    elif edge == "mixed":
        values = np.where(rng.random(shape) < 0.5, lo, hi)
    return values.astype(dtype.storage)


# ----------------------------------------------------------------------------- fused int8 patterns

@st.composite
def conv_case(draw):
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ic, oc = draw(st.integers(1, 20)), draw(st.integers(1, 40))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    oh = (h + pad[0] + pad[1] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (w + pad[2] + pad[3] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    assume(oh >= 1 and ow >= 1 and (h + pad[0] + pad[1] - (kh - 1) * dilation[0] - 1) % stride[0] == 0
           and (w + pad[2] + pad[3] - (kw - 1) * dilation[1] - 1) % stride[1] == 0)
    x = ints(draw, DType.INT8, (n, h, w, ic))
    weights = ints(draw, DType.INT8, (oc, kh, kw, ic))
    bias = ints(draw, DType.INT32, (oc,), -5000, 5000)
    return dict(x=x, weights=weights, bias=bias, pad=pad, stride=stride, dilation=dilation,
                input_zp=draw(st.integers(-128, 127)), weight_zp=draw(st.sampled_from([0, 0, 0, 7])),
                epilogue=draw(st.sampled_from(["none", "rescale", "rescale_clamp", "residual"])),
                per_channel=draw(st.booleans()), double=draw(st.booleans()),
                runtime_weights=draw(st.sampled_from([False, False, True])), seed=draw(st.integers(0, 1000)))


def _requantize(g, y, case, channels, rng):
    if case["per_channel"]:
        mult = rng.integers(1 << 29, 1 << 31, size=channels).astype(np.int32)
        shift = rng.integers(36, 42, size=channels).astype(np.int8)
    else:
        mult, shift = np.int32(rng.integers(1 << 29, 1 << 31)), np.int8(rng.integers(36, 42))
    mode = RoundingMode.DOUBLE_ROUND if case["double"] else RoundingMode.SINGLE_ROUND
    return g.rescale(y, DType.INT8, multiplier=mult, shift=shift, output_zp=int(rng.integers(-20, 20)),
                     per_channel=case["per_channel"], rounding_mode=mode)


@SETTINGS
@given(conv_case())
def test_conv2d_fused_patterns(case):
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.input("x", DType.INT8, case["x"].shape)
    inputs = {"x": case["x"]}
    if case["runtime_weights"]:
        w = g.input("w", DType.INT8, case["weights"].shape)
        inputs["w"] = case["weights"]
    else:
        w = g.const(case["weights"])
    y = g.conv2d(x, w, g.const(case["bias"]), pad=case["pad"], stride=case["stride"], dilation=case["dilation"],
                 input_zp=case["input_zp"], weight_zp=case["weight_zp"])
    oc = case["weights"].shape[0]
    if case["epilogue"] != "none":
        y = _requantize(g, y, case, oc, rng)
    if case["epilogue"] == "rescale_clamp":
        y = g.clamp(y, min_val=-100, max_val=90)
    if case["epilogue"] == "residual":
        r = g.input("r", DType.INT8, y.shape)
        inputs["r"] = rng.integers(-128, 128, size=y.shape).astype(np.int8)
        a32 = g.rescale(y, DType.INT32, multiplier=1 << 30, shift=30, input_zp=3)
        b32 = g.rescale(r, DType.INT32, multiplier=1 << 30, shift=31, input_zp=-2)
        y = g.rescale(g.add(a32, b32), DType.INT8, multiplier=1 << 30, shift=31, output_zp=1)
    g.output(y)
    check(g.build(), inputs, case["seed"], runnable_targets())


@SETTINGS
@given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 70), st.integers(-128, 127), st.sampled_from([0, 0, 5]),
       st.booleans(), st.integers(0, 1000), st.data())
def test_matmul(m, k, n, a_zp, b_zp, runtime_b, seed, data):
    g = GraphBuilder()
    a = g.input("a", DType.INT8, (1, m, k))
    bv = ints(data.draw, DType.INT8, (1, k, n))
    inputs = {"a": ints(data.draw, DType.INT8, (1, m, k))}
    if runtime_b:
        b = g.input("b", DType.INT8, (1, k, n))
        inputs["b"] = bv
    else:
        b = g.const(bv)
    g.output(g.matmul(a, b, a_zp=a_zp, b_zp=b_zp))
    check(g.build(), inputs, seed, runnable_targets())


@SETTINGS
@given(st.integers(1, 2), st.integers(2, 10), st.integers(2, 10), st.integers(1, 40), st.integers(1, 2),
       st.integers(1, 5), st.integers(1, 2), st.integers(0, 2), st.integers(-128, 127), st.integers(0, 1000),
       st.data())
def test_depthwise_conv2d(n, h, w, c, mult, k, stride, pad, input_zp, seed, data):
    """Every target's kinds (taps in vpdpbusd / vpmaddwd groups, int16 products), kernels up to 5x5 (two groups of
    four taps), channel counts that leave a partial vector."""
    assume((h + 2 * pad - k) % stride == 0 and (w + 2 * pad - k) % stride == 0 and h + 2 * pad >= k
           and w + 2 * pad >= k)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (n, h, w, c))
    wt = g.const(ints(data.draw, DType.INT8, (k, k, c, mult)))
    y = g.depthwise_conv2d(x, wt, g.const(ints(data.draw, DType.INT32, (c * mult,), -999, 999)),
                           pad=(pad,) * 4, stride=(stride, stride), input_zp=input_zp)
    g.output(g.rescale(y, DType.INT8, multiplier=1 << 30, shift=38, output_zp=-4))
    check(g.build(), {"x": ints(data.draw, DType.INT8, (n, h, w, c))}, seed, runnable_targets())


@pytest.mark.parametrize("target, kind", [("x86_64", "int16"), ("x86_64-avx2", "avx2"),
                                          ("x86_64-avx512vnni", "vnni"), ("aarch64", "int16"),
                                          ("aarch64-dotprod", "sdot"), ("armv7", "int16")])
def test_depthwise_takes_the_targets_dot_product(target, kind, require_cross):
    """The default depthwise kind per target; on ARM the compiled layer runs under qemu against the interpreter."""
    rng = np.random.default_rng(3)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 9, 11, 21))
    y = g.depthwise_conv2d(x, g.const(rng.integers(-128, 128, (3, 5, 21, 1), dtype=np.int8)), pad=(1, 1, 2, 2),
                           input_zp=-7)
    g.output(g.rescale(y, DType.INT8, multiplier=1 << 30, shift=40, output_zp=3))
    graph = g.build()
    (kb,) = [k for k in kernel_builders(optimise_graph(graph), get_target(target)) if "depthwise" in k.name]
    assert kb.space.default["kind"] == kind
    if not get_target(target).is_host or target in runnable_targets():
        if not get_target(target).is_host:
            require_cross(target)
        check(graph, {"x": rng.integers(-128, 128, (1, 9, 11, 21), dtype=np.int8)}, targets=(target,))


@SETTINGS
@given(st.lists(st.integers(1, 40), min_size=2, max_size=4), st.sampled_from([DType.INT8, DType.INT16, DType.INT32]),
       st.integers(0, 2**32 - 1), st.data())
def test_transpose(shape, dtype, seed, data):
    """TRANSPOSE, register-transposed tiles where the innermost axis moves (overlapping edge tiles), else a map."""
    assume(int(np.prod(shape)) <= 100_000)
    perms = data.draw(st.permutations(range(len(shape))))
    g = GraphBuilder()
    x = g.input("x", dtype, tuple(shape))
    g.output(g.transpose(x, perms=tuple(perms)))
    check(g.build(), {"x": ints(data.draw, dtype, tuple(shape))}, seed, runnable_targets())


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 8), st.integers(1, 8), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 1000), st.data())
def test_transpose_conv2d(h, w, ic, oc, k, stride, seed, data):
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, h, w, ic))
    wt = g.const(ints(data.draw, DType.INT8, (oc, k, k, ic)))
    g.output(g.transpose_conv2d(x, wt, g.const(np.zeros(oc, np.int32)), out_pad=(0, 0, 0, 0),
                                stride=(stride, stride), input_zp=5))
    check(g.build(), {"x": ints(data.draw, DType.INT8, (1, h, w, ic))}, seed)


@SETTINGS
@given(st.sampled_from(["avg", "max"]), st.integers(2, 9), st.integers(2, 9), st.integers(1, 20), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 1), st.sampled_from([DType.INT8, DType.INT16]), st.integers(0, 1000),
       st.data())
def test_pooling(kind, h, w, c, k, stride, pad, dtype, seed, data):
    assume(pad < k and (h + 2 * pad - k) % stride == 0 and (w + 2 * pad - k) % stride == 0
           and h + 2 * pad >= k and w + 2 * pad >= k)
    g = GraphBuilder()
    x = g.input("x", dtype, (1, h, w, c))
    if kind == "avg":
        zp = 3 if dtype is DType.INT8 else 0
        y = g.avg_pool2d(x, kernel=(k, k), stride=(stride, stride), pad=(pad,) * 4, input_zp=zp, output_zp=-zp)
    else:
        y = g.max_pool2d(x, kernel=(k, k), stride=(stride, stride), pad=(pad,) * 4)
    g.output(y)
    check(g.build(), {"x": ints(data.draw, dtype, (1, h, w, c))}, seed)


# ----------------------------------------------------------------------------- element-wise chains

BINARY = ["ADD", "SUB", "MAXIMUM", "MINIMUM", "MUL", "INTDIV", "BITWISE_AND", "BITWISE_OR", "BITWISE_XOR",
          "ARITHMETIC_RIGHT_SHIFT", "LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT", "EQUAL", "GREATER", "GREATER_EQUAL"]
UNARY = ["ABS", "BITWISE_NOT", "CLZ", "NEGATE", "CLAMP", "CAST8", "CAST16", "TABLE8", "RESCALE_U8"]


@st.composite
def broadcast_shapes(draw):
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=4)))
    other = tuple(d if draw(st.booleans()) else 1 for d in shape)
    return shape, other


@SETTINGS
@given(st.sampled_from(BINARY), st.sampled_from(UNARY), broadcast_shapes(), st.integers(0, 1000), st.data())
def test_elementwise_chain(binary, unary, shapes, seed, data):
    """binary(x, y) followed by a unary op: a fused two-op kernel with broadcasting."""
    shape, other = shapes
    g = GraphBuilder()
    x, y = g.input("x", DType.INT32, shape), g.input("y", DType.INT32, other)
    small = binary in ("ARITHMETIC_RIGHT_SHIFT", "LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT")
    yv = ints(data.draw, DType.INT32, other, 0, 31) if small else ints(data.draw, DType.INT32, other)
    if binary == "INTDIV":
        yv[yv == 0] = 1
    xv = ints(data.draw, DType.INT32, shape)
    if binary == "MUL":
        z = g.mul(x, y, shift=data.draw(st.sampled_from([0, 1, 15, 31])))
    elif binary == "ARITHMETIC_RIGHT_SHIFT":
        z = g.arithmetic_right_shift(x, y, round=data.draw(st.booleans()))
    else:
        z = getattr(g, binary.lower())(x, y)
    if z.dtype is DType.BOOL:
        z = g.cast(z, DType.INT32)
    if unary == "CLAMP":
        z = g.clamp(g.cast(z, DType.INT16), min_val=-1000, max_val=7000)
    elif unary == "NEGATE":
        z = g.negate(z)
    elif unary == "CAST8":
        z = g.cast(z, DType.INT8)
    elif unary == "CAST16":
        z = g.cast(z, DType.INT16)
    elif unary == "TABLE8":
        z = g.table(g.cast(z, DType.INT8), ints(data.draw, DType.INT8, (256,)))
    elif unary == "RESCALE_U8":
        z8 = g.cast(z, DType.INT8)
        z = g.rescale(z8, DType.UINT8, multiplier=1 << 30, shift=31, input_zp=-3, output_zp=128, output_unsigned=True)
    else:
        z = getattr(g, unary.lower())(z)
    g.output(z)
    check(g.build(), {"x": xv, "y": yv}, seed)


@SETTINGS
@given(st.sampled_from([DType.INT8, DType.INT16, DType.INT32]), st.lists(st.integers(1, 6), min_size=2, max_size=4),
       st.integers(0, 1000), st.data())
def test_data_movement_and_reductions(dtype, shape, seed, data):
    shape = tuple(shape)
    rank = len(shape)
    g = GraphBuilder()
    x = g.input("x", dtype, shape)
    axis = data.draw(st.integers(0, rank - 1))
    perms = data.draw(st.permutations(range(rank)))
    outs = [g.transpose(x, perms=list(perms)), g.reverse(x, axis=axis),
            g.pad(x, [1, 0] * rank, pad_const=dtype.min), g.tile(x, [2] + [1] * (rank - 1)),
            g.concat(x, x, axis=axis), g.reduce_max(x, axis=axis), g.reduce_min(x, axis=axis),
            g.slice(x, [0] * rank, [max(1, d - 1) for d in shape]),
            g.reshape(x, [int(np.prod(shape))])]
    outs.append(g.reduce_sum(x, axis=axis) if dtype is DType.INT32 else g.argmax(x, axis=axis))
    g.output(*outs)
    hi = 1000 if dtype is DType.INT32 else None
    check(g.build(), {"x": ints(data.draw, dtype, shape, None if hi is None else -hi, hi)}, seed)


# ----------------------------------------------------------------------------- properties of the compiler

def _conv_net():
    rng = np.random.default_rng(1)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 8, 8, 8))
    y = x
    for _ in range(4):
        y = g.conv2d(y, g.const(rng.integers(-128, 128, (8, 3, 3, 8)).astype(np.int8)), pad=(1, 1, 1, 1),
                     input_zp=1)
        y = g.clamp(g.rescale(y, DType.INT8, multiplier=1 << 30, shift=40, output_zp=1), min_val=-128, max_val=127)
    g.output(y)
    return g.build(), {"x": rng.integers(-128, 128, (1, 8, 8, 8)).astype(np.int8)}


def test_conv_chain_fuses_and_reuses_memory():
    graph, inputs = _conv_net()
    exe = tosac.compile(graph)
    patterns = [k.pattern for k in exe.program.info["kernels"]]
    assert patterns == ["CONV2D+RESCALE+CLAMP"] * 4
    np.testing.assert_array_equal(exe.run(inputs)[graph.outputs[0]], run(graph, inputs)[graph.outputs[0]])
    plan = exe.memory_plan
    assert plan.peak_bytes <= plan.arena_bytes
    intermediate = 8 * 8 * 8                          # three int8 activations between the four kernels
    assert plan.arena_bytes < 3 * intermediate + sum(
        int(np.prod(b.shape)) * b.dtype.itemsize for n, b in exe.program.buffers.items() if n.endswith(".act"))


def test_inputs_are_checked():
    graph, inputs = _conv_net()
    exe = tosac.compile(graph)
    with pytest.raises(tosac.TosacError, match="missing"):
        exe.run({})
    with pytest.raises(tosac.TosacError, match="shape"):
        exe.run({"x": np.zeros((1, 8, 8, 7), np.int8)})
    with pytest.raises(tosac.TosacError, match="dtype"):
        exe.run({"x": np.zeros((1, 8, 8, 8), np.float32)})
    with pytest.raises(tosac.TosacError, match="range"):
        exe.run({"x": np.full((1, 8, 8, 8), 300, np.int32)})
    assert exe(x=inputs["x"]).keys() == exe.run(inputs).keys()


def test_bad_config_is_a_typed_error():
    graph, _ = _conv_net()
    name = kernel_builders(optimise_graph(graph), get_target("host"))[0].name
    with pytest.raises(tosac.CodegenError, match="knob"):
        tosac.compile(graph, config={name: {"no_such_knob": 1}})
    with pytest.raises(tosac.CodegenError, match="not one of"):
        tosac.compile(graph, config={name: {"mr": 1000}})


def test_emitted_ir_has_no_wrap_poison_flags():
    """TOSA integer overflow wraps; nsw/nuw would make it poison."""
    import llvmlite.ir as ir

    from tosac.schedules.emit_llvm import Emitter

    graph, _ = _conv_net()
    module = ir.Module("m")
    emitter = Emitter(module)
    for kb in kernel_builders(optimise_graph(graph), get_target("host")):
        for kernel, _ in kb.schedule().kernels():
            emitter.emit_kernel(kernel)
    text = str(module)
    assert " nsw " not in text and " nuw " not in text


@pytest.mark.parametrize("target", ["aarch64", "aarch64-dotprod", "armv7", "x86_64", "x86_64-avx2",
                                    "x86_64-avx512vnni"])
def test_every_target_produces_an_object(target):
    from tosac.runtime.objects import optimised_assembly

    graph, _ = _conv_net()
    exe = tosac.compile(graph, target)
    assert exe.object_code.startswith(b"\x7fELF")
    if target == "aarch64-dotprod":
        import llvmlite.ir as ir

        from tosac.schedules.emit_llvm import Emitter
        module = ir.Module("m")
        emitter = Emitter(module)
        for kb in kernel_builders(optimise_graph(graph), get_target(target)):
            for kernel, _ in kb.schedule().kernels():
                emitter.emit_kernel(kernel)
        assert "sdot" in optimised_assembly(str(module), get_target(target))


@pytest.mark.parametrize("target, kind", [("x86_64", "portable"), ("x86_64-avx2", "avx2"),
                                          ("x86_64-avx512vnni", "vnni"), ("aarch64", "portable"),
                                          ("aarch64-dotprod", "sdot"), ("armv7", "portable")])
def test_micro_kernel_follows_the_target(target, kind):
    graph, _ = _conv_net()
    builders = kernel_builders(optimise_graph(graph), get_target(target))
    assert {kb.space.default["kind"] for kb in builders} == {kind}


def test_object_code_is_cached_by_content(monkeypatch):
    from tosac.runtime import objects

    graph, inputs = _conv_net()
    first = tosac.compile(graph)
    monkeypatch.setattr(objects, "parse_and_verify", lambda text: pytest.fail("recompiled a cached module"))
    second = tosac.compile(graph)
    assert second.object_code == first.object_code
    np.testing.assert_array_equal(second.run(inputs)[graph.outputs[0]], first.run(inputs)[graph.outputs[0]])


@SETTINGS
@given(st.sampled_from(["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "EXP", "TANH", "SIGMOID", "FLOOR", "ABS",
                        "RECIPROCAL", "CAST"]), broadcast_shapes(), st.integers(0, 1000))
def test_float32_ops(name, shapes, seed):
    """Float ops (outside the integer profile) compile too; transcendental results agree to float32 rounding."""
    shape, other = shapes
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x, y = g.input("x", DType.FP32, shape), g.input("y", DType.FP32, other)
    if name in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM"):
        z = g.mul(x, y) if name == "MUL" else getattr(g, name.lower())(x, y)
    elif name == "CAST":
        z = g.cast(g.add(x, y), DType.INT8)
    else:
        z = getattr(g, name.lower())(g.add(x, y))
    g.output(z)
    graph = g.build()
    inputs = {"x": (rng.standard_normal(shape) * 50).astype(np.float32),
              "y": (rng.standard_normal(other) * 50).astype(np.float32)}
    expected = run(graph, inputs)[z.name]
    got = tosac.compile(graph, "host", random_configs(graph, "host", seed)).run(inputs)[z.name]
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=2e-7, atol=0)



@pytest.mark.parametrize("name", ["exp", "erf", "sigmoid", "tanh", "log", "reciprocal"])
def test_float16_transcendental_ops_on_every_half_value(name):
    """fp16 EXP/ERF/SIGMOID/TANH/LOG/RECIPROCAL compute in f64 and round once to f16: the compiled code (which
    rounds f64 -> f32 to odd, then to f16; the __truncdfhf2 call it used to make crashed the JIT) gives the
    reference's bits for every one of the 65,536 half values (NaNs as NaNs)."""
    g = GraphBuilder()
    x = g.input("x", DType.FP16, (256, 256))
    z = getattr(g, name)(x)
    g.output(z)
    graph = g.build()
    inputs = {"x": np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(256, 256)}
    expected = run(graph, inputs)[z.name]
    got = tosac.compile(graph, "host", tuning_log=False).run(inputs)[z.name]
    assert got.dtype == expected.dtype == np.float16
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got.view(np.uint16)[~nan], expected.view(np.uint16)[~nan])


def test_float16_matmul_accumulating_in_float32():
    """fp16 x fp16 -> fp32 MATMUL (TOSA 1.0 allows both output types; the verifier used to insist on fp16): it
    verifies, and compiled code agrees with the reference within the fp32 sum's reordering."""
    rng = np.random.default_rng(3)
    g = GraphBuilder()
    a, b = g.input("a", DType.FP16, (2, 5, 33)), g.input("b", DType.FP16, (2, 33, 7))
    z = g.matmul(a, b, out_dtype=DType.FP32)
    g.output(z)
    graph = g.build()
    inputs = {"a": rng.standard_normal((2, 5, 33)).astype(np.float16),
              "b": rng.standard_normal((2, 33, 7)).astype(np.float16)}
    expected = run(graph, inputs)[z.name]
    got = tosac.compile(graph, "host", tuning_log=False).run(inputs)[z.name]
    assert got.dtype == expected.dtype == np.float32
    exact = np.matmul(inputs["a"].astype(np.float64), inputs["b"].astype(np.float64))
    np.testing.assert_allclose(expected, exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

@SETTINGS
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.integers(0, 1000), st.data())
def test_gather_scatter_select_logical(n, k, w, c, seed, data):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    values = g.input("values", DType.INT32, (n, k, c))
    idx = g.input("idx", DType.INT32, (n, w))
    rows = g.input("rows", DType.INT32, (n, w, c))
    gathered = g.gather(values, idx)
    cond = g.greater(gathered, rows)
    picked = g.select(g.logical_or(cond, g.logical_not(g.equal(gathered, rows))), gathered, rows)
    outs = [picked, g.reduce_any(cond, axis=2), g.reduce_all(cond, axis=1), g.logical_xor(cond, g.logical_and(cond, cond))]
    inputs = {"values": ints(data.draw, DType.INT32, (n, k, c)), "idx": rng.integers(0, k, (n, w)).astype(np.int32),
              "rows": ints(data.draw, DType.INT32, (n, w, c))}
    if w <= k:                                   # SCATTER needs distinct indices per row
        inputs["idx"] = np.stack([rng.permutation(k)[:w] for _ in range(n)]).astype(np.int32)
        outs.append(g.scatter(values, idx, rows))
    g.output(*outs)
    check(g.build(), inputs, seed)


@SETTINGS
@given(st.sampled_from(["int8_mul", "int16_table", "int16_conv_int48", "conv3d", "resize", "negate_zp"]),
       st.integers(0, 1000), st.data())
def test_wide_types_and_remaining_ops(case, seed, data):
    """int16/int48 paths (TABLE interpolation, int48 accumulators with scale16), CONV3D, RESIZE, MUL, NEGATE."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    if case == "int8_mul":
        a, b = g.input("a", DType.INT8, (3, 5)), g.input("b", DType.INT8, (1, 5))
        g.output(g.mul(a, b))
        inputs = {"a": ints(data.draw, DType.INT8, (3, 5)), "b": ints(data.draw, DType.INT8, (1, 5))}
    elif case == "int16_table":
        x = g.input("x", DType.INT16, (4, 9))
        base = np.cumsum(rng.integers(-100, 100, 513)).astype(np.int16)
        g.output(g.table(x, base))
        inputs = {"x": ints(data.draw, DType.INT16, (4, 9))}
    elif case == "int16_conv_int48":
        x = g.input("x", DType.INT16, (1, 5, 5, 3))
        y = g.conv2d(x, g.const(rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8)), pad=(1, 1, 1, 1))
        g.output(y, g.rescale(y, DType.INT16, multiplier=rng.integers(1 << 13, 1 << 15, 4), shift=[30] * 4,
                              scale32=False))
        inputs = {"x": ints(data.draw, DType.INT16, (1, 5, 5, 3))}
    elif case == "conv3d":
        x = g.input("x", DType.INT8, (1, 3, 4, 4, 2))
        g.output(g.conv3d(x, g.const(rng.integers(-128, 128, (3, 2, 2, 2, 2)).astype(np.int8)), pad=(0, 1) * 3,
                          input_zp=-7))
        inputs = {"x": ints(data.draw, DType.INT8, (1, 3, 4, 4, 2))}
    elif case == "resize":
        from tosac.ir.ops import ResizeMode
        x = g.input("x", DType.INT8, (1, 3, 4, 2))
        mode = data.draw(st.sampled_from([ResizeMode.NEAREST, ResizeMode.BILINEAR]))
        g.output(g.resize(x, scale=[4, 2, 4, 2], offset=[-1, -1], border=[1, 1], mode=mode))
        inputs = {"x": ints(data.draw, DType.INT8, (1, 3, 4, 2))}
    else:
        x = g.input("x", DType.INT8, (2, 7))
        g.output(g.negate(x, input_zp=int(rng.integers(-128, 128)), output_zp=int(rng.integers(-128, 128))))
        inputs = {"x": ints(data.draw, DType.INT8, (2, 7))}
    check(g.build(), inputs, seed)


# ----------------------------------------------------------------------------- regressions found by the ONNX frontend

@SETTINGS
@given(st.lists(st.integers(1, 5), min_size=2, max_size=4), st.integers(0, 1000), st.data())
def test_reshape_fused_with_per_channel_rescale(shape, seed, data):
    """RESHAPE followed by a per-channel RESCALE: the channel is the last axis of the *output* shape."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    channels = data.draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]))
    g = GraphBuilder()
    x = g.input("x", DType.INT32, tuple(shape))
    y = g.reshape(x, (size // channels, channels))
    y = g.rescale(y, DType.INT8, multiplier=rng.integers(1 << 29, 1 << 31, channels).tolist(),
                  shift=rng.integers(30, 40, channels).tolist(), output_zp=-3, per_channel=True)
    g.output(y)
    check(g.build(), {"x": ints(data.draw, DType.INT32, tuple(shape), -1 << 20, 1 << 20)}, seed)


def test_non_contiguous_constants_are_bound_correctly():
    """A constant whose numpy data is a transposed view (not C-contiguous) must reach the kernel in row-major order."""
    rng = np.random.default_rng(0)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 6, 6, 4))
    w = g.const(rng.integers(-127, 128, (3, 3, 4, 1), dtype=np.int8))
    g.output(g.depthwise_conv2d(x, w, pad=(1, 1, 1, 1), input_zp=3))
    graph = g.build()
    tensor = graph.tensors[w.name]
    tensor.data = np.asfortranarray(tensor.data)          # same values, column-major memory
    assert not tensor.data.flags.c_contiguous
    check(graph, {"x": rng.integers(-128, 128, (1, 6, 6, 4), dtype=np.int8)})


def high_word_rescale_case(rng: np.random.Generator, in_t: DType, out_t: DType, channels: int,
                           rounding: RoundingMode = RoundingMode.SINGLE_ROUND):
    """RESCALE with shifts 33..62 (the 32-bit-lane path) at the extremes of inputs and multipliers; for
    DOUBLE_ROUND also products whose low word sits at the carry thresholds (lo = 2^30 ± 1, 3·2^30 ± 1)."""
    x = rng.integers(in_t.min, in_t.max + 1, size=(5, channels), dtype=np.int64)
    x[0], x[1] = in_t.min, in_t.max
    mult = rng.integers(0, 1 << 31, size=channels, dtype=np.int64)              # the spec REQUIREs >= 0
    mult[: min(2, channels)] = [(1 << 31) - 1, 0][: min(2, channels)]
    shift = rng.integers(33, 63, size=channels)
    shift[: min(2, channels)] = [33, 62][: min(2, channels)]
    g = GraphBuilder()
    v = g.input("x", in_t, x.shape)
    in_zp = zero_point(rng, in_t)
    if rounding is RoundingMode.DOUBLE_ROUND and in_t is DType.INT32:
        # With M = 3 and shift 33 the low word's carry decides the result's last bit: 3·2^30 is the
        # threshold for x >= 0 (x = 2^30 carries, 2^30 − 1 does not), 2^30 for x < 0 (−2^30 − 1 borrows).
        mult[-1], shift[-1] = 3, 33
        x[2:, -1] = [1 << 30, (1 << 30) - 1, -(1 << 30) - 1]
    g.output(g.rescale(v, out_t, multiplier=mult, shift=shift, input_zp=in_zp, per_channel=True,
                       output_zp=zero_point(rng, out_t), rounding_mode=rounding))
    return g.build(), {"x": x.astype(in_t.storage)}


def zero_point(rng: np.random.Generator, dtype: DType) -> int:
    """A zero point the spec allows for ``dtype`` (any for 8-bit, 0 or 32768 for uint16, else 0)."""
    if dtype in (DType.INT8, DType.UINT8):
        return int(rng.integers(dtype.min, dtype.max + 1))
    return int(rng.choice([0, 32768])) if dtype is DType.UINT16 else 0


@SETTINGS
@given(st.sampled_from([DType.INT8, DType.INT16, DType.INT32, DType.UINT8, DType.UINT16]),
       st.sampled_from([DType.INT8, DType.INT16, DType.INT32, DType.UINT8, DType.UINT16]),
       st.integers(1, 37), st.integers(0, 2**32 - 1), st.sampled_from(list(RoundingMode)))
def test_rescale_in_32_bit_lanes_is_exact(in_t, out_t, channels, seed, rounding):
    """Shifts of 33..62 (single or double rounding) run on the high and low words of a 32x32 product (no
    64-bit lanes): exact for every int32 input and multiplier, on every x86 target."""
    unsigned = {DType.UINT8, DType.UINT16}
    assume(not (in_t in unsigned and out_t in unsigned))                 # the spec's flag rules
    assume(not ({in_t, out_t} & unsigned and DType.INT32 in (in_t, out_t)))
    graph, inputs = high_word_rescale_case(np.random.default_rng(seed), in_t, out_t, channels, rounding)
    check(graph, inputs, seed, targets=runnable_targets())


@pytest.mark.parametrize("target", ["aarch64", "aarch64-dotprod", "armv7"])
def test_rescale_in_32_bit_lanes_is_exact_on_arm(target, require_cross):
    require_cross(target)
    rng = np.random.default_rng(11)
    for in_t, out_t in ((DType.INT32, DType.INT8), (DType.INT8, DType.INT16), (DType.UINT16, DType.INT8)):
        for rounding in RoundingMode:
            graph, inputs = high_word_rescale_case(rng, in_t, out_t, 19, rounding)
            check(graph, inputs, targets=(target,))


@SETTINGS
@given(st.sampled_from([DType.INT8, DType.INT16, DType.INT32, DType.UINT8, DType.UINT16]),
       st.sampled_from([DType.INT8, DType.INT16, DType.INT32]), st.integers(0, 30), st.integers(2, 62),
       st.sampled_from(list(RoundingMode)), st.integers(0, 2**32 - 1))
def test_power_of_two_rescale_is_exact(in_t, out_t, a, shift, rounding, seed):
    """RESCALE with multiplier 2^a (any shift, either rounding) runs as a rounding shift: exact at the
    extremes of every input type and at the rounding ties (values ±2^(shift−a−1) around multiples)."""
    rng = np.random.default_rng(seed)
    assume(not (in_t in (DType.UINT8, DType.UINT16) and out_t is DType.INT32))
    x = rng.integers(in_t.min, in_t.max + 1, size=64, dtype=np.int64)
    k = shift - a
    if k > 0:                                   # ties and their neighbours: (2j + 1) · 2^(k−1) + {−1, 0, 1}
        ties = (2 * rng.integers(-8, 8, 16) + 1) * (1 << (k - 1)) + rng.integers(-1, 2, 16)
        x[:16] = np.clip(ties, in_t.min, in_t.max)
    x[16], x[17] = in_t.min, in_t.max
    g = GraphBuilder()
    v = g.input("x", in_t, x.shape)
    g.output(g.rescale(v, out_t, multiplier=1 << a, shift=shift, input_zp=zero_point(rng, in_t),
                       output_zp=zero_point(rng, out_t), rounding_mode=rounding,
                       input_unsigned=in_t in (DType.UINT8, DType.UINT16)))
    check(g.build(), {"x": x.astype(in_t.storage)}, seed, targets=runnable_targets())


@pytest.mark.parametrize("rounding", [RoundingMode.SINGLE_ROUND, RoundingMode.DOUBLE_ROUND])
def test_power_of_two_rescale_ties_of_int32(rounding):
    """Every (2^a, shift) class of the rounding-shift path on int32 values at and around its ties, both
    signs: double rounding's ±2^(30−a) decides these."""
    rng = np.random.default_rng(3)
    for a, shift in [(0, 2), (0, 31), (0, 32), (0, 33), (5, 6), (5, 32), (5, 36), (20, 40), (30, 31), (30, 32),
                     (30, 62), (10, 35), (29, 60)]:
        k = shift - a
        j = rng.integers(-(1 << max(0, 30 - k)), 1 << max(0, 30 - k), 40)
        x = np.concatenate([(2 * j + 1) * (1 << (k - 1)) + d for d in (-1, 0, 1)] +
                           [[-(1 << 31), (1 << 31) - 1, 0, -1, 1]])
        lim = min(31, shift - 1)                         # the spec REQUIREs |value| < 2^(shift-1)
        x = np.clip(x, -(1 << lim), (1 << lim) - 1)
        g = GraphBuilder()
        v = g.input("x", DType.INT32, x.shape)
        g.output(g.rescale(v, DType.INT32, multiplier=1 << a, shift=shift, rounding_mode=rounding))
        check(g.build(), {"x": x.astype(np.int32)}, targets=runnable_targets())

"""Graphs the level limits allow but that make deep expressions compile, bit-exact, without RecursionError.

A depthwise kernel may be 8192 taps wide and an element-wise chain of hundreds
of ops fuses into one kernel: both used to become expression trees thousands
of nodes deep that the emitter (and the loop-nest walks) recursed through.
"""
from __future__ import annotations

import numpy as np
import pytest

import tosac
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.pipeline.optimise import kernel_builders, optimise_graph
from tosac.targets import get_target


def check(graph, inputs, configs=(None,)) -> None:
    expected = run(graph, inputs)
    for config in configs:
        got = tosac.compile(graph, "host", config, tuning_log=False).run(inputs)
        for name in graph.outputs:
            assert got[name].dtype == expected[name].dtype
            np.testing.assert_array_equal(got[name], expected[name], err_msg=str(config))


def threaded(graph, **knobs) -> dict:
    """Every kernel's default config with ``knobs`` overridden where its space has them."""
    out = {}
    for kb in kernel_builders(optimise_graph(graph), get_target("host")):
        config = dict(kb.space.resolve(None))
        config.update({k: v for k, v in knobs.items() if k in config})
        out[kb.name] = config
    return out


@pytest.mark.parametrize("k, mult, stride, dilation, pad", [
    (32, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (64, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (33, 1, (2, 1), (1, 2), (1, 2, 3, 0)),      # taps per row not a multiple of the block, strided, dilated
    (32, 2, (1, 1), (1, 1), (1, 1, 1, 1)),      # channel multiplier 2: the generic tap template
])
def test_big_depthwise_kernel(k, mult, stride, dilation, pad):
    rng = np.random.default_rng(k * 10 + mult)
    channels, out_hw = 19, 3
    h = (out_hw - 1) * stride[0] + (k - 1) * dilation[0] + 1 - pad[0] - pad[1]
    w = (out_hw - 1) * stride[1] + (k - 1) * dilation[1] + 1 - pad[2] - pad[3]
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, h, w, channels))
    wt = g.const(rng.integers(-128, 128, (k, k, channels, mult)).astype(np.int8))
    bias = g.const(rng.integers(-999, 1000, (channels * mult,)).astype(np.int32))
    y = g.depthwise_conv2d(x, wt, bias, pad=pad, stride=stride, dilation=dilation, input_zp=-7)
    g.output(g.rescale(y, DType.INT8, multiplier=1 << 30, shift=42, output_zp=-4))
    graph = g.build()
    inputs = {"x": rng.integers(-128, 128, (1, h, w, channels)).astype(np.int8)}
    check(graph, inputs, (None, threaded(graph, threads=2, lanes=8)))


def chain_graph(length: int):
    """x -> ADD, MUL, MAXIMUM, RESCALE to int16, CLAMP, TABLE (on int16 via CAST to int8 and back), CAST ... """
    rng = np.random.default_rng(length)
    g = GraphBuilder()
    x, y = g.input("x", DType.INT32, (2, 21)), g.input("y", DType.INT32, (2, 21))
    table = rng.integers(-128, 128, 256).astype(np.int8)
    z, ops = x, 0
    while ops < length:
        step = ops % 8
        if step == 0:
            z = g.add(z, y)
        elif step == 1:
            z = g.mul(z, y, shift=0)
        elif step == 2:
            z = g.maximum(z, x)
        elif step == 3:
            z = g.rescale(z, DType.INT16, multiplier=1 << 30, shift=33, input_zp=0, output_zp=0)
        elif step == 4:
            z = g.clamp(z, min_val=-3000, max_val=3000)
        elif step == 5:
            z = g.cast(z, DType.INT8)
        elif step == 6:
            z = g.table(z, table)            # a gather whose index is the whole chain so far
        else:
            z = g.cast(z, DType.INT32)
        ops += 1
    if z.dtype is not DType.INT32:
        z = g.cast(z, DType.INT32)
    g.output(z)
    inputs = {"x": rng.integers(-1000, 1000, (2, 21)).astype(np.int32),
              "y": rng.integers(-3, 4, (2, 21)).astype(np.int32)}
    return g.build(), inputs


@pytest.mark.parametrize("length, threads", [(300, True), (1000, False)])
def test_long_elementwise_chain(length, threads):
    graph, inputs = chain_graph(length)
    assert len(kernel_builders(optimise_graph(graph), get_target("host"))) == 1   # one fused kernel
    check(graph, inputs, (None, threaded(graph, threads=2, lanes=16)) if threads else (None,))


def test_onnx_chain_of_600_relus():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from tosac.frontends.onnx import load

    names = ["x", *[f"r{i}" for i in range(599)], "y"]
    nodes = [helper.make_node("Relu", [a], [b]) for a, b in zip(names, names[1:])]
    graph = helper.make_graph(nodes, "relus", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 37])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 37])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).standard_normal((3, 37)).astype(np.float32)
    got = tosac.compile(load(model), "host", tuning_log=False).run({"x": x})["y"]
    np.testing.assert_array_equal(got, np.maximum(x, 0))


def test_loop_nest_walks_do_not_recurse():
    """The analyses the emitter runs on indices, on an index 20000 nodes deep."""
    from tosac.schedules import loopnest as ln
    from tosac.schedules.generic import substitute

    i, j = ln.Var("i"), ln.Var("j")
    index: ln.Expr = ln.Const(7)
    for k in range(10000):
        index = index + (i * 3 if k % 2 else j)
    assert ln.linear_coefficient(index, "i") == 3 * 5000
    assert ln.linear_coefficient(ln.binary("mul", index, i), "i") is None
    assert ln.free_vars(index) == {"i", "j"}
    replaced = substitute(index, "j", ln.Const(0))
    assert ln.free_vars(replaced) == {"i"} and ln.linear_coefficient(replaced, "i") == 15000
    gather = ln.Load("t", ln.cast(ln.Load("x", index, "i8"), "i64"), "i8")
    assert ln.linear_coefficient(gather.index, "i") is None and ln.linear_coefficient(gather.index, "k") == 0
    from tosac.tune.features import _count_loads
    assert _count_loads(ln.binary("add", gather, gather)) == 4


def test_onnx_input_through_1500_layout_ops_keeps_int8_io():
    """The int8-I/O rule follows a float input through layout-only ops to its QuantizeLinear: a worklist, so a
    chain of 1500 Transposes is no RecursionError."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from tosac.frontends.onnx import load

    names = ["x", *[f"t{i}" for i in range(1500)]]
    nodes = [helper.make_node("Transpose", [a], [b], perm=[1, 0]) for a, b in zip(names, names[1:])]
    nodes += [helper.make_node("QuantizeLinear", [names[-1], "s", "z"], ["q"]),
              helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.int8(3), "z")]
    graph = helper.make_graph(nodes, "layout", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    tosa = load(model, io="quantized")
    assert tosa.metadata["io_quantization"]["x"]["zero_point"] == 3
    x = np.random.default_rng(0).integers(-128, 128, (4, 6), dtype=np.int8)
    got = tosac.compile(tosa, "host", tuning_log=False).run({"x": x})["y"]
    np.testing.assert_array_equal(got, x)                  # an even number of transposes: the identity

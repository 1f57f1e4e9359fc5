"""Hostile graphs (issue 16): each either verifies and runs right, or is a VerificationError naming
what and where — never a KeyError from the verifier, a numpy error from the reference or garbage from
compiled code."""
from __future__ import annotations

import numpy as np
import pytest

import tosac
from tosac.app.cli import main
from tosac.errors import VerificationError
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType
from tosac.ir.reference.interpreter import run
from tosac.ir.serialize import save
from tosac.ir.verifier import verify


def _rejects(build, operand: str | None, words: str) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        build()
    err = info.value
    assert (operand is None or err.operand == operand) and words in err.rule, str(err)
    return err


def _exact(graph: Graph, inputs_list: list[dict]) -> None:
    """Compiled output equals the reference bit for bit, on several inputs (stale memory cannot pass)."""
    exe = tosac.compile(graph, "host")
    for inputs in inputs_list:
        want = run(graph, inputs)
        got = exe.run(inputs)
        assert set(got) == set(want)
        for name in want:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def _ints(seed: int, shape, dtype=np.int32) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, shape).astype(dtype)


# ------------------------------------------------------------------ item 2: an output listed twice
def test_kernel_output_listed_twice_is_right_in_every_slot():
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (3, 5))
    y = g.add(x, x)
    z = g.sub(x, g.const(np.full((3, 5), 7, np.int32)))
    g.output(y, z, y, x, x)
    graph = g.build()
    _exact(graph, [{"x": _ints(seed, (3, 5))} for seed in range(3)])


def test_output_listed_twice_in_a_loop_body():
    """WHILE_LOOP's body returns one tensor for two loop-carried values."""
    g = GraphBuilder()
    a, b = g.input("a", DType.INT32, (4,)), g.input("b", DType.INT32, (4,))
    n = g.input("n", DType.INT32, (1,))
    cond = g.block("cond")
    ca, cb, cn = cond.input("ca", DType.INT32, (4,)), cond.input("cb", DType.INT32, (4,)), cond.input(
        "cn", DType.INT32, (1,))
    cond.output(cond.greater(cn, cond.const(np.zeros(1, np.int32))))
    body = g.block("body")
    ba, bb, bn = body.input("ba", DType.INT32, (4,)), body.input("bb", DType.INT32, (4,)), body.input(
        "bn", DType.INT32, (1,))
    s = body.add(ba, bb)
    body.output(s, s, body.sub(bn, body.const(np.ones(1, np.int32))))
    outs = g.op("WHILE_LOOP", [a, b, n], cond_graph="cond", body_graph="body")
    g.output(*outs)
    graph = g.build()
    _exact(graph, [{"a": _ints(seed, (4,)) // 8, "b": _ints(seed + 9, (4,)) // 8, "n": np.array([3], np.int32)}
                   for seed in range(2)])


# ------------------------------------------------------------------ item 3: channels of input vs weights
CONVS = {
    "CONV2D": ("conv2d", (1, 8, 8, 5), (4, 3, 3, 3)),
    "CONV3D": ("conv3d", (1, 4, 8, 8, 5), (4, 1, 3, 3, 3)),
    "DEPTHWISE_CONV2D": ("depthwise_conv2d", (1, 8, 8, 5), (3, 3, 3, 2)),
    "TRANSPOSE_CONV2D": ("transpose_conv2d", (1, 8, 8, 5), (4, 3, 3, 3)),
}


@pytest.mark.parametrize("op", sorted(CONVS))
def test_conv_input_channels_must_match_the_weights(op):
    method, x_shape, w_shape = CONVS[op]
    g = GraphBuilder()
    x = g.input("x", DType.INT8, x_shape)
    w = g.const(np.ones(w_shape, np.int8))
    err = _rejects(lambda: getattr(g, method)(x, w), "weight", "has 3 input channels, the input")
    assert op in str(err) and "5" in err.rule


def _raw_conv(op: str, x_shape, w_shape, out_shape, bias_size: int, out_dtype=DType.INT32) -> Graph:
    """A CONV-like op declared by hand (as a .tosa file declares it): no shape inference involved."""
    blk = Block("main", inputs=["x"], outputs=["y"])
    t = blk.tensors
    t["x"] = Tensor("x", TensorType(DType.INT8, tuple(x_shape)))
    t["w"] = Tensor("w", TensorType(DType.INT8, tuple(w_shape)), np.ones(w_shape, np.int8))
    t["b"] = Tensor("b", TensorType(DType.INT32, (bias_size,)), np.zeros(bias_size, np.int32))
    for zp in ("xzp", "wzp"):
        t[zp] = Tensor(zp, TensorType(DType.INT8, (1,)), np.zeros(1, np.int8))
    t["y"] = Tensor("y", TensorType(out_dtype, tuple(out_shape)))
    spatial = len(x_shape) - 2
    attrs = {"stride": (1,) * spatial, "acc_type": DType.INT32}
    if op == "TRANSPOSE_CONV2D":
        attrs["out_pad"] = (0, 0, 0, 0)
    else:
        attrs.update(pad=(0,) * 2 * spatial, dilation=(1,) * spatial)
    blk.ops = [Op("CONST", [], [n]) for n in ("w", "b", "xzp", "wzp")]
    blk.ops.append(Op(op, ["x", "w", "b", "xzp", "wzp"], ["y"], attrs))
    return Graph({"main": blk})


@pytest.mark.parametrize("op, x_shape, w_shape, out_shape", [
    ("CONV2D", (1, 8, 8, 5), (4, 3, 3, 3), (1, 6, 6, 4)),
    ("CONV3D", (1, 4, 8, 8, 5), (4, 1, 3, 3, 3), (1, 4, 6, 6, 4)),
    ("DEPTHWISE_CONV2D", (1, 8, 8, 5), (3, 3, 3, 2), (1, 6, 6, 6)),
    ("TRANSPOSE_CONV2D", (1, 8, 8, 5), (4, 3, 3, 3), (1, 10, 10, 4)),
])
def test_declared_conv_with_mismatched_channels_is_rejected_before_the_reference(op, x_shape, w_shape, out_shape):
    graph = _raw_conv(op, x_shape, w_shape, out_shape, out_shape[-1])
    err = _rejects(lambda: verify(graph), "weight", "input channels")
    assert op in err.op
    with pytest.raises(VerificationError):
        run(graph, {"x": np.ones(x_shape, np.int8)})


@pytest.mark.parametrize("op, x_shape, w_shape, out_shape, operand", [
    ("CONV2D", (1, 8, 8, 0), (4, 3, 3, 0), (1, 6, 6, 4), "x"),
    ("CONV2D", (0, 8, 8, 3), (4, 3, 3, 3), (0, 6, 6, 4), "x"),
    ("CONV2D", (1, 8, 8, 3), (0, 3, 3, 3), (1, 6, 6, 0), "w"),
    ("DEPTHWISE_CONV2D", (1, 8, 8, 3), (3, 3, 3, 0), (1, 6, 6, 0), "w"),
    ("TRANSPOSE_CONV2D", (1, 8, 8, 3), (0, 3, 3, 3), (1, 10, 10, 0), "w"),
])
def test_zero_size_dimensions_are_rejected(op, x_shape, w_shape, out_shape, operand):
    graph = _raw_conv(op, x_shape, w_shape, out_shape, max(out_shape[-1], 1))
    _rejects(lambda: verify(graph), operand, "dimension of size 0")


def test_zero_input_channels_tosa_file_does_not_verify(tmp_path, capsys):
    """A fuzzed .tosa with zero input channels: `tosac inspect` reported "verified: OK"."""
    path = tmp_path / "zero_channels.tosa"
    save(_raw_conv("CONV2D", (1, 8, 8, 0), (4, 3, 3, 0), (1, 6, 6, 4), 4), path)
    status = main(["inspect", str(path)])
    out = capsys.readouterr()
    assert status != 0 and "verified: OK" not in out.out
    assert "size 0" in out.err


@pytest.mark.parametrize("op, x_shape, w_shape, out_shape, bias, operand, words", [
    ("CONV2D", (1, 8, 8, 3), (4, 3, 3, 3), (1, 6, 6, 4), 3, "bias", "must be [4] or [1]"),
    ("DEPTHWISE_CONV2D", (1, 8, 8, 3), (3, 3, 3, 2), (1, 6, 6, 6), 2, "bias", "must be [6] or [1]"),
    ("DEPTHWISE_CONV2D", (1, 8, 8, 3), (3, 3, 3, 2), (1, 6, 6, 3), 3, "y", "declared output"),
    ("TRANSPOSE_CONV2D", (1, 8, 8, 3), (4, 3, 3, 3), (1, 10, 10, 4), 5, "bias", "must be [4] or [1]"),
    ("CONV3D", (1, 4, 8, 8, 3), (4, 1, 3, 3, 3), (1, 4, 6, 5, 4), 4, "y", "declared output"),
])
def test_conv_bias_and_output_shapes(op, x_shape, w_shape, out_shape, bias, operand, words):
    graph = _raw_conv(op, x_shape, w_shape, out_shape, bias)
    _rejects(lambda: verify(graph), operand, words)


def test_matching_channels_still_verify_and_run():
    for op, (method, x_shape, w_shape) in CONVS.items():
        w_shape = w_shape[:2] + (5, 2) if op == "DEPTHWISE_CONV2D" else w_shape[:-1] + (5,)
        g = GraphBuilder()
        x = g.input("x", DType.INT8, x_shape)
        g.output(getattr(g, method)(x, g.const(np.ones(w_shape, np.int8))))
        graph = g.build()
        run(graph, {"x": np.ones(x_shape, np.int8)})


@pytest.mark.parametrize("op, shape, axis", [("REDUCE_MAX", (2, 0, 3), 1), ("REDUCE_MIN", (0, 2), 0),
                                             ("ARGMAX", (0, 4), 0), ("ERF", (2, 0), None)])
def test_zero_size_tensors_are_rejected_for_every_op(op, shape, axis):
    """The reference died in numpy (empty reductions, np.vectorize of nothing) on these."""
    g = GraphBuilder()
    x = g.input("x", DType.FP32, shape)
    g.output(g.op(op, [x], **({} if axis is None else {"axis": axis})))
    _rejects(g.build, "x", "dimension of size 0")


# ------------------------------------------------------------------ item 10: undefined names of control-flow bodies
def _cond_if() -> Graph:
    g = GraphBuilder()
    c, x = g.input("c", DType.BOOL, (1,)), g.input("x", DType.INT32, (2,))
    for name in ("then", "else"):
        b = g.block(name)
        bx = b.input("bx", DType.INT32, (2,))
        b.output(b.add(bx, bx))
    g.output(*g.op("COND_IF", [c, x], then_graph="then", else_graph="else"))
    return g.build()


def _while_loop() -> Graph:
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (1,))
    cond = g.block("cond")
    cond.output(cond.greater(cond.input("cx", DType.INT32, (1,)), cond.const(np.zeros(1, np.int32))))
    body = g.block("body")
    body.output(body.sub(body.input("bx", DType.INT32, (1,)), body.const(np.ones(1, np.int32))))
    g.output(*g.op("WHILE_LOOP", [x], cond_graph="cond", body_graph="body"))
    return g.build()


@pytest.mark.parametrize("make, block, kind", [
    (_cond_if, "then", "inputs"), (_cond_if, "else", "outputs"),
    (_while_loop, "cond", "inputs"), (_while_loop, "cond", "outputs"),
    (_while_loop, "body", "inputs"), (_while_loop, "body", "outputs"),
])
def test_undefined_body_names_name_the_block(make, block, kind):
    graph = make()
    names = getattr(graph.blocks[block], kind)
    names[0] = "ghost"
    err = _rejects(lambda: verify(graph), "ghost", "has no tensor declaration")
    assert err.op == f"block {block}"


def test_inspect_reports_an_undefined_body_name(tmp_path, capsys):
    graph = _cond_if()
    graph.blocks["then"].outputs[0] = "ghost"
    path = tmp_path / "ghost.json"
    save(graph, path)
    assert main(["inspect", str(path)]) != 0
    assert "block then" in capsys.readouterr().err


def test_builder_body_with_an_undefined_output_is_a_verification_error():
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (1,))
    body = g.block("body")
    body.input("bx", DType.INT32, (1,))
    body.blk.outputs.append("ghost")
    _rejects(lambda: g.op("WHILE_LOOP", [x], cond_graph="body", body_graph="body"), "body_graph", "ghost")


# ------------------------------------------------------------------ item 11: PAD's pad_const
@pytest.mark.parametrize("shape", [(3,), (), (1, 1)])
def test_non_constant_pad_const_of_the_wrong_shape(shape):
    g = GraphBuilder()
    x, pc = g.input("x", DType.INT8, (2, 3)), g.input("pc", DType.INT8, shape)
    g.output(g.pad(x, [1, 1, 0, 2], pad_const=pc))
    _rejects(g.build, "pad_const", "must have shape [1]")


def test_constant_pad_const_of_the_wrong_shape():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (2, 3))
    g.output(g.pad(x, [1, 1, 0, 2], pad_const=g.const(np.zeros((2,), np.int8))))
    _rejects(g.build, "pad_const", "must have shape [1]")


@pytest.mark.parametrize("dtype", [DType.INT8, DType.INT32, DType.FP32])
def test_run_time_pad_const_compiles_bit_exact(dtype):
    """pad_const is an input tensor in TOSA; as a graph input it compiles (was a KeyError in the emitter)."""
    g = GraphBuilder()
    x, pc = g.input("x", dtype, (2, 3)), g.input("pc", dtype, (1,))
    g.output(g.pad(x, [1, 1, 0, 2], pad_const=pc))
    storage = dtype.storage
    _exact(g.build(), [{"x": _ints(seed, (2, 3)).astype(storage), "pc": np.array([seed - 7], storage)}
                       for seed in range(3)])

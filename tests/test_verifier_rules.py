"""The verifier rejects invalid graphs with an error naming op, operand and rule;
shape inference gives the spec's output shapes; bad interpreter inputs are clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from tosac.errors import InterpreterError, UnsupportedError, VerificationError
from tosac.ir.builder import GraphBuilder, Value
from tosac.ir.dtypes import DType
from tosac.ir.graph import Op, Tensor, TensorType
from tosac.ir.ops import ResizeMode, RoundingMode
from tosac.ir.reference.interpreter import run
from tosac.ir.verifier import verify


def _rejects(build, operand: str | None, words: str):
    with pytest.raises(VerificationError) as info:
        build()
    err = info.value
    assert (operand is None or err.operand == operand) and words in err.rule, str(err)
    return err


def test_conv_output_size_formula():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (2, 9, 11, 3))
    w = g.const(np.zeros((5, 3, 2, 3), np.int8))
    y = g.conv2d(x, w, pad=(1, 1, 0, 1), stride=(2, 3), dilation=(1, 2))
    # OH = (9 - 1 + 2 - 2*1) / 2 + 1 = 5 ; OW = (11 - 1 + 1 - 1*2) / 3 + 1 = 4
    assert y.shape == (2, 5, 4, 5) and y.dtype is DType.INT32


def test_conv_non_integer_output_rejected():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 8, 8, 3))
    w = g.const(np.zeros((4, 3, 3, 3), np.int8))
    _rejects(lambda: g.conv2d(x, w, stride=(2, 2)), "stride", "not divisible")


def test_zero_point_only_for_int8():
    g = GraphBuilder()
    x = g.input("x", DType.INT16, (1, 4, 4, 2))
    w = g.const(np.zeros((3, 1, 1, 2), np.int8))
    g.output(g.conv2d(x, w, input_zp=3))
    _rejects(g.build, "input_zp", "zero point must be 0")


def test_unsupported_type_combination_names_the_types():
    g = GraphBuilder()
    a, b = g.input("a", DType.INT8, (3,)), g.input("b", DType.INT8, (3,))
    g.output(g.add(a, b))
    err = _rejects(g.build, "input", "does not support INT8")
    assert "ADD" in str(err)


def test_broadcast_mismatch_and_rank_mismatch():
    g = GraphBuilder()
    a, b = g.input("a", DType.INT32, (2, 3)), g.input("b", DType.INT32, (3, 3))
    _rejects(lambda: g.add(a, b), None, "cannot be broadcast")
    c = g.input("c", DType.INT32, (3,))
    _rejects(lambda: g.add(a, c), None, "ranks differ")


@pytest.mark.parametrize("attrs, operand, words", [
    (dict(scale32=False, rounding_mode=RoundingMode.DOUBLE_ROUND), "rounding_mode", "DOUBLE_ROUND requires scale32"),
    (dict(input_unsigned=True, output_unsigned=True), "output_unsigned", "cannot both"),
])
def test_rescale_error_ifs(attrs, operand, words):
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (4,))
    g.output(g.rescale(x, DType.INT8, multiplier=[1 << 14], shift=[20], **attrs))
    _rejects(g.build, operand, words)


def test_rescale_scale32_with_int48_rejected():
    g = GraphBuilder()
    x = g.input("x", DType.INT48, (4,))
    g.output(g.rescale(x, DType.INT32, multiplier=[1 << 30], shift=[30], scale32=True))
    _rejects(g.build, "scale32", "int48")


def test_resize_bounds():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 4, 4, 1))
    g.output(g.resize(x, scale=(2, 1, 2, 1), offset=(0, 0), border=(2, 2), mode=ResizeMode.NEAREST))
    _rejects(g.build, "border", "border_y")


def test_pool_padding_must_be_smaller_than_kernel():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 4, 4, 1))
    g.output(g.max_pool2d(x, kernel=(2, 2), stride=(1, 1), pad=(2, 0, 0, 0)))
    _rejects(g.build, "pad", "smaller than the kernel")


def test_clamp_bounds_order():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (4,))
    g.output(g.clamp(x, min_val=5, max_val=-5))
    _rejects(g.build, "max_val", "smaller than min_val")


def test_declared_output_type_checked():
    g = GraphBuilder()
    a = g.input("a", DType.INT32, (2, 3))
    y = g.add(a, a)
    g.output(y)
    g.blk.tensors[y.name] = Tensor(y.name, TensorType(DType.INT32, (3, 2)))
    _rejects(g.build, y.name, "declared output")


def test_structure_errors():
    g = GraphBuilder()
    a = g.input("a", DType.INT32, (2,))
    g.blk.ops.append(Op("ADD", [a.name, "ghost"], ["out"]))
    g.blk.tensors["out"] = Tensor("out", TensorType(DType.INT32, (2,)))
    _rejects(g.build, "ghost", "used before it is defined")


def test_wrong_operand_count():
    g = GraphBuilder()
    a = g.input("a", DType.INT32, (2,))
    g.blk.ops.append(Op("ADD", [a.name], ["out"]))
    g.blk.tensors["out"] = Tensor("out", TensorType(DType.INT32, (2,)))
    _rejects(g.build, None, "takes operands")


def test_unknown_op_is_unsupported():
    g = GraphBuilder()
    a = g.input("a", DType.INT32, (2,))
    g.blk.ops.append(Op("FROBNICATE", [a.name], ["out"]))
    g.blk.tensors["out"] = Tensor("out", TensorType(DType.INT32, (2,)))
    with pytest.raises(UnsupportedError, match="FROBNICATE"):
        verify(g.graph)


def test_interpreter_input_errors():
    g = GraphBuilder()
    a = g.input("a", DType.INT8, (2,))
    g.output(g.negate(a))
    graph = g.build()
    with pytest.raises(InterpreterError, match="missing"):
        run(graph, {})
    with pytest.raises(InterpreterError, match="shape"):
        run(graph, {"a": np.zeros(3, np.int8)})
    with pytest.raises(InterpreterError, match="range"):
        run(graph, {"a": np.array([300, 0])})
    assert run(graph, {"a": np.array([-128, 5])})[graph.outputs[0]].tolist() == [127, -5]  # saturating


def test_control_flow_runs_the_right_branch():
    g = GraphBuilder()
    cond = g.input("cond", DType.BOOL, (1,))
    a, b = g.input("a", DType.INT32, (2,)), g.input("b", DType.INT32, (2,))
    then_b, else_b = g.block("then"), g.block("else")
    for blk, op in ((then_b, "add"), (else_b, "sub")):
        x, y = blk.input("x", DType.INT32, (2,)), blk.input("y", DType.INT32, (2,))
        blk.output(getattr(blk, op)(x, y))
    (out,) = g.cond_if(cond, a, b, then_graph="then", else_graph="else")
    g.output(out)
    graph = g.build()
    args = {"a": np.array([5, 7], np.int32), "b": np.array([1, 2], np.int32)}
    assert run(graph, {"cond": np.array([True]), **args})[out.name].tolist() == [6, 9]
    assert run(graph, {"cond": np.array([False]), **args})[out.name].tolist() == [4, 5]


def test_level_8k_kernel_and_stride_limits():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 1, 8200, 1))
    w = g.const(np.zeros((1, 1, 4100, 1), np.int8))
    g.output(g.conv2d(x, w, dilation=(1, 2)))            # dilation * KW = 8200 > 8192
    _rejects(g.build, "weight", "level 8K")


def _nested_cond_ifs(levels: int):
    """A graph whose COND_IFs nest ``levels`` deep (each then-branch holds the next COND_IF)."""
    g = GraphBuilder()
    for depth in reversed(range(levels)):               # innermost blocks first: their outputs type the op
        for kind in ("then", "else"):
            blk = g.block(f"{kind}{depth}")
            c, x = blk.input("c", DType.BOOL, (1,)), blk.input("x", DType.INT32, (1,))
            if kind == "then" and depth + 1 < levels:
                (y,) = blk.cond_if(c, c, x, then_graph=f"then{depth + 1}", else_graph=f"else{depth + 1}")
            else:
                y = blk.identity(x)
            blk.output(y)
    main = g.graph.blocks.pop("main")                   # the entry block must come first
    g.graph.blocks = {"main": main, **g.graph.blocks}
    c, a = g.input("c", DType.BOOL, (1,)), g.input("a", DType.INT32, (1,))
    (out,) = g.cond_if(c, c, a, then_graph="then0", else_graph="else0")
    g.output(out)
    return g


def test_level_8k_nesting_limit():
    graph = _nested_cond_ifs(6).build()                 # depths 0..5: allowed
    assert run(graph, {"c": np.array([True]), "a": np.array([7], np.int32)})[graph.outputs[0]].tolist() == [7]
    _rejects(_nested_cond_ifs(7).build, None, "MAX_NESTING")

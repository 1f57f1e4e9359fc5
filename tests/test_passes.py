"""Graph passes: constant folding evaluates constant-only ops with the reference kernels
(bit-exact), dead code elimination drops unused ops, neither mutates its input, and
run_passes blames a pass that breaks the graph."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tosac.errors import CodegenError, VerificationError
from tosac.app.examples import example_int8_net
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.graph import Graph
from tosac.ir.reference.interpreter import run
from tosac.ir.verifier import verify
from tosac.passes import fold_constants, remove_dead_code, run_passes

CONSTS = ("CONST", "CONST_SHAPE")


# ------------------------------------------------------------------ helpers
def _snapshot(graph: Graph) -> list:
    """Everything a pass could change, as plain comparable values (arrays as dtype/shape/bytes)."""
    def data(t):
        return None if t.data is None else (str(t.data.dtype), t.data.shape, t.data.tobytes())
    return [(b.name, list(b.inputs), list(b.outputs),
             [(op.name, list(op.inputs), list(op.outputs), dict(op.attrs), op.location) for op in b.ops],
             {n: (t.name, t.type, data(t)) for n, t in b.tensors.items()})
            for b in graph.blocks.values()]


def _assert_same_results(a: Graph, b: Graph, inputs: dict) -> None:
    ra, rb = run(a, inputs), run(b, inputs)
    assert list(ra) == list(rb)
    for name in ra:
        assert ra[name].dtype == rb[name].dtype and ra[name].shape == rb[name].shape, name
        assert np.array_equal(ra[name], rb[name]), name


def _non_const(block) -> list:
    return [op for op in block.ops if op.name not in CONSTS]


def _int32_chain():
    """x + transpose(reshape(-((c1 + c2) * c3))) with the whole constant chain foldable.

    Returns the graph and the names/values needed to check it.
    """
    rng = np.random.default_rng(7)
    c1 = rng.integers(-1000, 1000, (2, 3)).astype(np.int32)
    c2 = rng.integers(-1000, 1000, (1, 3)).astype(np.int32)
    c3 = rng.integers(-1000, 1000, (2, 3)).astype(np.int32)
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (2, 3))
    t = g.add(g.const(c1), g.const(c2))                   # broadcast over rows
    t = g.mul(t, g.const(c3), shift=0)
    neg = g.negate(t)
    t = g.transpose(g.reshape(neg, (3, 2)), perms=(1, 0))
    y = g.add(x, t)
    g.output(y, neg)                                      # a constant graph output as well
    expected_neg = -((c1.astype(np.int64) + c2) * c3)     # small values: no wrapping anywhere
    expected_t = expected_neg.reshape(3, 2).T
    return g.build(), neg.name, t.name, y.name, expected_neg, expected_t


# ------------------------------------------------------------------ constant folding
def test_folding_a_chain_gives_constants_with_the_right_values():
    graph, neg, t, y, expected_neg, expected_t = _int32_chain()
    folded = fold_constants(graph)
    verify(folded)
    # Only the op reading the input survives; everything else is a constant.
    assert [op.name for op in _non_const(folded.main)] == ["ADD"]
    assert folded.main.producer(neg).name == "CONST"
    assert folded.main.producer(t).name == "CONST"
    assert np.array_equal(folded.tensors[neg].data, expected_neg)
    assert np.array_equal(folded.tensors[t].data, expected_t)
    assert folded.tensors[t].data.dtype == np.int32


@pytest.mark.parametrize("seed", range(5))
def test_folded_graph_computes_exactly_what_the_original_does(seed):
    graph, *_ = _int32_chain()
    folded = fold_constants(graph)
    x = np.random.default_rng(seed).integers(-(1 << 20), 1 << 20, (2, 3)).astype(np.int32)
    _assert_same_results(graph, folded, {"x": x})


def test_ops_reading_inputs_are_untouched():
    graph, _, t, y, *_ = _int32_chain()
    folded = fold_constants(graph)
    before, after = graph.main.producer(y), folded.main.producer(y)
    assert (after.name, after.inputs, after.outputs, after.attrs) == \
        (before.name, before.inputs, before.outputs, before.attrs)
    assert after.inputs == ["x", t]
    assert folded.tensors[y].data is None


@pytest.mark.parametrize("seed", range(3))
def test_float_folding_is_bit_exact(seed):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("x", DType.FP32, (4,))
    c = g.const(rng.standard_normal(4).astype(np.float32))
    k = g.tanh(g.exp(c))
    k = g.reciprocal(g.add(k, g.const(np.full(4, 0.5, np.float32))))
    g.output(g.sub(x, k))
    graph = g.build()
    folded = fold_constants(graph)
    assert [op.name for op in _non_const(folded.main)] == ["SUB"]
    _assert_same_results(graph, folded, {"x": rng.standard_normal(4).astype(np.float32)})


def test_unpredictable_op_is_left_for_run_time():
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (1,))
    big = g.add(g.const(np.array([2**31 - 1], np.int32)), g.const(np.array([1], np.int32)))  # overflows
    ok = g.sub(g.const(np.array([5], np.int32)), g.const(np.array([3], np.int32)))
    after_big = g.negate(big)
    g.output(g.add(x, after_big), ok)
    graph = g.build()
    folded = fold_constants(graph)
    assert folded.main.producer(big.name).name == "ADD"            # REQUIRE fails: kept
    assert folded.main.producer(after_big.name).name == "NEGATE"   # its input is not constant
    assert folded.main.producer(ok.name).name == "CONST"
    assert folded.tensors[ok.name].data.tolist() == [2]


def _cond_graph(const_cond: bool = False) -> tuple[Graph, str]:
    """main: COND_IF(cond, a) -> out; then: a + (k1 - k2) (foldable inside the body); else: identity."""
    g = GraphBuilder()
    then_b, else_b = g.block("then"), g.block("else")
    v = then_b.input("v", DType.INT32, (2,))
    k = then_b.sub(then_b.const(np.array([10, 20], np.int32)), then_b.const(np.array([1, 2], np.int32)))
    then_b.output(then_b.add(v, k))
    w = else_b.input("w", DType.INT32, (2,))
    else_b.output(else_b.identity(w))
    if const_cond:
        cond = g.const(np.array([True]))
        a = g.const(np.array([4, 5], np.int32))
    else:
        cond = g.input("cond", DType.BOOL, (1,))
        a = g.input("a", DType.INT32, (2,))
    (out,) = g.cond_if(cond, a, then_graph="then", else_graph="else")
    g.output(out)
    return g.build(), k.name


def test_folding_reaches_control_flow_bodies():
    graph, k = _cond_graph()
    folded = fold_constants(graph)
    verify(folded)
    assert folded.blocks["then"].producer(k).name == "CONST"
    assert folded.blocks["then"].tensors[k].data.tolist() == [9, 18]
    assert [op.name for op in _non_const(folded.main)] == ["COND_IF"]
    for taken in (True, False):
        _assert_same_results(graph, folded, {"cond": np.array([taken]), "a": np.array([3, -4], np.int32)})


def test_control_flow_ops_are_never_folded():
    graph, _ = _cond_graph(const_cond=True)
    folded = fold_constants(graph)
    assert [op.name for op in _non_const(folded.main)] == ["COND_IF"]
    _assert_same_results(graph, folded, {})


def test_example_network_survives_folding_and_dce():
    graph = example_int8_net()
    optimised = run_passes(graph, [fold_constants, remove_dead_code])
    x = np.random.default_rng(1).integers(-128, 128, (1, 16, 16, 8)).astype(np.int8)
    _assert_same_results(graph, optimised, {"x": x})


# ------------------------------------------------------------------ dead code elimination
def _graph_with_dead_branch():
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (3,))
    unused_in = g.input("unused", DType.INT32, (3,))
    c = g.const(np.array([1, 2, 3], np.int32), name="only_dead_reads_me")
    dead = g.add(x, c)
    dead2 = g.mul(dead, dead, shift=0)                     # reads the dead value: dead too
    live = g.negate(x)
    g.output(live)
    return g.build(), x, unused_in, dead, dead2, live


def test_dce_removes_an_unused_branch_and_keeps_outputs():
    graph, x, unused_in, dead, dead2, live = _graph_with_dead_branch()
    cleaned = remove_dead_code(graph)
    verify(cleaned)
    assert [op.name for op in _non_const(cleaned.main)] == ["NEGATE"]
    assert cleaned.outputs == [live.name]
    # NEGATE's two zero points and nothing else remain as constants.
    negate = cleaned.main.producer(live.name)
    assert sorted(op.outputs[0] for op in cleaned.main.ops if op.name in CONSTS) == sorted(negate.inputs[1:])
    for gone in (dead.name, dead2.name, "only_dead_reads_me"):
        assert gone not in cleaned.tensors
    # Graph inputs are the signature: kept even when unused.
    assert cleaned.inputs == ["x", "unused"] and "unused" in cleaned.tensors
    args = {"x": np.array([1, -2, 3], np.int32), "unused": np.zeros(3, np.int32)}
    _assert_same_results(graph, cleaned, args)


def test_fold_then_dce_leaves_only_the_used_constants():
    graph, neg, t, y, expected_neg, expected_t = _int32_chain()
    optimised = run_passes(graph, [fold_constants, remove_dead_code])
    # Left: input-reading ADD, and the two folded constants it and the graph output need.
    assert [op.name for op in optimised.main.ops] == ["CONST", "CONST", "ADD"]
    assert {op.outputs[0] for op in optimised.main.ops if op.name == "CONST"} == {neg, t}
    assert set(optimised.tensors) == {"x", neg, t, y}


def test_dce_inside_bodies_keeps_what_outputs_need():
    g = GraphBuilder()
    body = g.block("then")
    v = body.input("v", DType.INT32, (2,))
    body.negate(v)                                        # dead inside the body
    body.output(body.add(v, v))
    other = g.block("else")
    w = other.input("w", DType.INT32, (2,))
    other.output(w)                                       # passes its input straight through
    cond, a = g.input("cond", DType.BOOL, (1,)), g.input("a", DType.INT32, (2,))
    (out,) = g.cond_if(cond, a, then_graph="then", else_graph="else")
    g.output(out)
    graph = g.build()
    cleaned = remove_dead_code(graph)
    verify(cleaned)
    assert [op.name for op in cleaned.main.ops] == ["COND_IF"]
    assert [op.name for op in cleaned.blocks["then"].ops] == ["ADD"]
    assert cleaned.blocks["else"].ops == [] and cleaned.blocks["else"].inputs == ["w"]
    for taken in (True, False):
        _assert_same_results(graph, cleaned, {"cond": np.array([taken]), "a": np.array([6, -1], np.int32)})


def test_dce_removes_an_unused_cond_if_but_keeps_its_blocks():
    g = GraphBuilder()
    for name in ("then", "else"):
        blk = g.block(name)
        blk.output(blk.identity(blk.input("v", DType.INT32, (1,))))
    cond, a = g.input("cond", DType.BOOL, (1,)), g.input("a", DType.INT32, (1,))
    g.cond_if(cond, a, then_graph="then", else_graph="else")
    g.output(g.identity(a))
    cleaned = remove_dead_code(g.build())
    verify(cleaned)
    assert [op.name for op in cleaned.main.ops] == ["IDENTITY"]
    assert list(cleaned.blocks) == ["main", "then", "else"]
    assert [op.name for op in cleaned.blocks["then"].ops] == ["IDENTITY"]


# ------------------------------------------------------------------ purity and the driver
@pytest.mark.parametrize("passes", [[fold_constants], [remove_dead_code], [fold_constants, remove_dead_code]])
def test_passes_do_not_change_their_input(passes):
    for graph in (_int32_chain()[0], _graph_with_dead_branch()[0], _cond_graph()[0]):
        before = _snapshot(graph)
        data_ids = {(b.name, n): id(t.data) for b in graph.blocks.values() for n, t in b.tensors.items()}
        result = run_passes(graph, passes)
        assert _snapshot(graph) == before
        assert {(b.name, n): id(t.data) for b in graph.blocks.values() for n, t in b.tensors.items()} == data_ids
        # The result shares no mutable structure with the input.
        assert result is not graph
        for name, block in result.blocks.items():
            assert block is not graph.blocks[name]
            assert not {id(op) for op in block.ops} & {id(op) for op in graph.blocks[name].ops}


def test_folded_constants_own_their_data():
    # RESHAPE's kernel may return a view of its input; the folded constant must not alias it.
    g = GraphBuilder()
    c = g.const(np.arange(6, dtype=np.int32).reshape(2, 3))
    r = g.reshape(c, (3, 2))
    g.output(r, c)
    folded = fold_constants(g.build())
    assert not np.shares_memory(folded.tensors[r.name].data, folded.tensors[c.name].data)


def drop_first_compute_op(graph: Graph) -> Graph:
    """A broken pass: deletes the producer of a value that is still read."""
    out = copy.deepcopy(graph)
    index = next(i for i, op in enumerate(out.main.ops) if op.name not in CONSTS)
    del out.main.ops[index]
    return out


def test_run_passes_blames_the_pass_that_breaks_the_graph():
    graph = _int32_chain()[0]
    with pytest.raises(CodegenError) as info:
        run_passes(graph, [remove_dead_code, drop_first_compute_op, fold_constants])
    message = str(info.value)
    assert "drop_first_compute_op" in message and "used before it is defined" in message
    assert isinstance(info.value.__cause__, VerificationError)


def test_run_passes_rejects_a_pass_returning_no_graph():
    with pytest.raises(CodegenError, match="returned NoneType"):
        run_passes(_int32_chain()[0], [lambda g: None])


def test_run_passes_reports_an_invalid_input_as_the_users_error():
    g = GraphBuilder()
    a = g.input("a", DType.INT8, (3,))
    g.output(g.op("ADD", [a, a]))                         # ADD has no int8 form
    graph = g.build(verify=False)
    with pytest.raises(VerificationError):
        run_passes(graph, [fold_constants])


def test_run_passes_applies_passes_in_order():
    seen = []

    def record(tag):
        def p(graph):
            seen.append(tag)
            return graph
        return p

    graph = _int32_chain()[0]
    assert run_passes(graph, [record("a"), record("b"), record("c")]) is graph
    assert seen == ["a", "b", "c"]
    assert run_passes(graph, []) is graph


def test_results_bigger_than_the_fold_limit_are_left_to_run_time():
    """A PAD of a constant to 1.2 GiB is not materialised at compile time (before the memory budget looks)."""
    from tosac.passes.const_fold import FOLD_LIMIT_BYTES

    g = GraphBuilder()
    x = g.input("x", DType.INT32, (1,))
    big = g.pad(g.const(np.ones((4,), np.int32)), [0, 300_000_000])
    small = g.pad(g.const(np.ones((4,), np.int32)), [0, 4])
    g.output(g.add(g.slice(big, [0], [1]), x), g.add(g.slice(small, [0], [1]), x))
    folded = fold_constants(g.build())
    assert folded.main.producer(big.name).name == "PAD"
    assert folded.main.producer(small.name).name == "CONST"
    assert big.type.size * 4 > FOLD_LIMIT_BYTES


# ---------------------------------------------------------------- PAD (and SLICE) folded into convolutions
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_pad_fold_is_exact_and_removes_the_pad(data):
    """PAD with the convolution's input zero point, an optional SLICE of the padded tensor's leading corner,
    then CONV2D or DEPTHWISE_CONV2D with its own padding: folded, the graph computes the same bits, on the
    reference interpreter and in compiled code, and has no PAD left; a PAD with another fill stays."""
    import tosac
    from tosac.passes.pad_fold import fold_padding

    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w, c = draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 3))
    kh, kw, sh, sw = (draw(st.integers(1, 3)) for _ in range(4))
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    zp = draw(st.integers(-128, 127))
    same_fill = draw(st.booleans())
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, h, w, c))
    p = g.pad(x, [0, 0, pads[0], pads[1], pads[2], pads[3], 0, 0], pad_const=zp if same_fill else zp ^ 1)
    ph, pw = h + pads[0] + pads[1], w + pads[2] + pads[3]
    conv_pad = [draw(st.integers(0, 2)) for _ in range(4)]
    # The convolution sees a leading corner of the padded tensor, sized so TOSA's stride divisibility holds.
    sizes = []
    for full, k, s, before in ((ph, kh, sh, conv_pad[0]), (pw, kw, sw, conv_pad[2])):
        fits = [n for n in range(1, full + 1) if n + before + conv_pad[1 if k is kh else 3] >= k]
        sizes.append(fits)
    assume(sizes[0] and sizes[1])
    sizes = [draw(st.sampled_from(f)) for f in sizes]
    assume(sizes[0] > pads[0] and sizes[1] > pads[2])     # a window of padding only is left alone
    for i, (n, k, s) in enumerate(((sizes[0], kh, sh), (sizes[1], kw, sw))):
        after_slot = 1 if i == 0 else 3
        extra = (n - 1 + conv_pad[2 * i] + conv_pad[after_slot] - (k - 1)) % s
        assume(conv_pad[after_slot] >= extra)
        conv_pad[after_slot] -= extra
    if sizes != [ph, pw]:
        p = g.slice(p, [0, 0, 0, 0], [1, sizes[0], sizes[1], c])
    depthwise = draw(st.booleans())
    if depthwise:
        wt = g.const(rng.integers(-127, 128, (kh, kw, c, 1), dtype=np.int8))
        y = g.depthwise_conv2d(p, wt, pad=tuple(conv_pad), stride=(sh, sw), input_zp=zp)
    else:
        wt = g.const(rng.integers(-127, 128, (2, kh, kw, c), dtype=np.int8))
        y = g.conv2d(p, wt, pad=tuple(conv_pad), stride=(sh, sw), input_zp=zp)
    g.output(y)
    graph = g.build()
    folded = remove_dead_code(fold_padding(graph))
    assert any(op.name == "PAD" for op in folded.main.ops) != same_fill
    feed = {"x": rng.integers(-128, 128, (1, h, w, c), dtype=np.int8)}
    want = run(graph, feed)
    for name, value in run(folded, feed).items():
        np.testing.assert_array_equal(value, want[name])
    got = tosac.compile(graph, "host").run(feed)
    for name, value in got.items():
        np.testing.assert_array_equal(value, want[name])


# ---------------------------------------------------------------- element-wise regions on int8 as one TABLE
def _swish_like(data, per_channel_last: bool = False, leak_intermediate: bool = False) -> Graph:
    """x (int8) -> TABLE, RESCALE to int32; x -> RESCALE to int32; MUL; RESCALE back to int8 (and an ADD)."""
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 3, 5, 4))
    draw = data.draw
    table = np.array(draw(st.lists(st.integers(-128, 127), min_size=256, max_size=256)), dtype=np.int8)
    t = g.rescale(g.table(x, table), DType.INT32, multiplier=1 << 30, shift=30, input_zp=-128)
    u = g.rescale(x, DType.INT32, multiplier=1 << 30, shift=30, input_zp=draw(st.integers(-128, 127)))
    m = g.mul(t, u, shift=draw(st.sampled_from([0, 3])))
    channels = 4 if per_channel_last else 1
    multiplier = [draw(st.integers(1 << 29, (1 << 31) - 1)) for _ in range(channels)]
    y = g.rescale(m, DType.INT8, multiplier=multiplier, shift=[draw(st.integers(30, 45))] * channels,
                  output_zp=draw(st.integers(-128, 127)))
    y = g.clamp(y, min_val=draw(st.integers(-128, 0)), max_val=127)
    g.output(y, u) if leak_intermediate else g.output(y)
    return g.build()


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_an_elementwise_region_on_int8_becomes_one_exact_table(data):
    from tosac.passes.lut_fold import fold_lookup_tables
    graph = _swish_like(data)
    folded = run_passes(graph, [fold_lookup_tables, remove_dead_code])
    assert [op.name for op in folded.main.ops if op.name != "CONST"] == ["TABLE"]
    values = np.arange(-128, 128, dtype=np.int8)
    for start in range(0, 256, 60):                     # every int8 value, 60 at a time
        inputs = {"x": np.resize(values[start:start + 60], (1, 3, 5, 4))}
        assert np.array_equal(run(folded, inputs)[folded.outputs[0]], run(graph, inputs)[graph.outputs[0]])


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_regions_that_depend_on_position_or_leak_values_are_left_alone(data):
    from tosac.passes.lut_fold import fold_lookup_tables
    for graph in (_swish_like(data, per_channel_last=True), _swish_like(data, leak_intermediate=True)):
        folded = run_passes(graph, [fold_lookup_tables, remove_dead_code])
        assert [op.name for op in folded.main.ops] == [op.name for op in graph.main.ops]


# ---------------------------------------------------------------- fusion: a residual branch's RESCALE joins the ADD
@settings(max_examples=15, deadline=None)
@given(st.integers(-128, 127), st.integers(-128, 127), st.integers(1, 1 << 30), st.integers(11, 20), st.data())
def test_the_residual_branchs_rescale_runs_in_the_convolutions_epilogue(zp_a, zp_r, multiplier, shift, data):
    import tosac
    from tosac.passes.fusion import group_ops
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 5, 6, 8))
    residual = g.input("residual", DType.INT8, (1, 5, 6, 16))
    acc = g.conv2d(x, g.const(rng.integers(-128, 128, (16, 1, 1, 8), dtype=np.int8)), input_zp=3)
    a = g.rescale(acc, DType.INT8, multiplier=[1 << 30] * 16, shift=[38] * 16, output_zp=zp_a)
    left = g.rescale(a, DType.INT32, multiplier=1 << 30, shift=11, input_zp=zp_a)
    right = g.rescale(residual, DType.INT32, multiplier=multiplier, shift=shift, input_zp=zp_r)
    g.output(g.rescale(g.add(left, right), DType.INT8, multiplier=1381758904, shift=49, output_zp=-128))
    graph = g.build()
    groups = group_ops(run_passes(graph, [fold_constants, remove_dead_code]).main)
    assert [grp.pattern for grp in groups] == ["CONV2D+RESCALE+RESCALE+RESCALE+ADD+RESCALE"]
    inputs = {"x": rng.integers(-128, 128, (1, 5, 6, 8), dtype=np.int8),
              "residual": rng.integers(-128, 128, (1, 5, 6, 16), dtype=np.int8)}
    got = tosac.compile(graph, "host").run(inputs)
    assert np.array_equal(got[graph.outputs[0]], run(graph, inputs)[graph.outputs[0]])

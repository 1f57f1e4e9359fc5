"""tosac.prune: keep-masks of every pattern (properties against naive references) and graph rewriting.

The mask properties are checked against brute-force references written here
(loops over blocks, groups and rows, sorted by (score, index)), never against
the code under test. The graph tests check hand-computed layer sizes, that only
weight constants change, and that the reference interpreter runs the result.
"""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tosac
import tosac.models
from tosac.errors import PruneError, TosacError
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.ir.serialize import read_tosa, write_tosa
from tosac.ir.verifier import verify
from tosac.prune import LayerChoice, Pattern, layer_mask, parse_pattern, prunable_layers, prune

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


# ----------------------------------------------------------------------------- strategies

@st.composite
def weights(draw, conv: bool | None = None):
    """An int8 2-D [out, red] matrix or 4-D [OC, KH, KW, IC] weight: small values (many ties),
    zero rows, and occasionally an empty dimension."""
    conv = draw(st.booleans()) if conv is None else conv
    if conv:
        shape = (draw(st.integers(0, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 11)))
    else:
        shape = (draw(st.integers(0, 9)), draw(st.integers(0, 19)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([2, 5, 128]))
    w = rng.integers(-spread, spread, size=shape).clip(-128, 127).astype(np.int8)
    if shape[0] and draw(st.booleans()):
        w[rng.integers(0, shape[0])] = 0          # an empty row
    return w


sparsities = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0))
zero_points = st.sampled_from([0, 0, 3, -7])


def view3(w: np.ndarray) -> np.ndarray:
    """[out, taps, ic] as the patterns define it (independent of the module's own reshape)."""
    return w[:, None, :] if w.ndim == 2 else w.reshape(w.shape[0], w.shape[1] * w.shape[2], w.shape[3])


def mag(w: np.ndarray, zp: int) -> np.ndarray:
    return np.abs(w.astype(np.int64) - zp)


def ref_blocks(w: np.ndarray, bo: int, bk: int):
    """[(index, score, slice-of-view)] over blocks, in (out-block, tap, red-block) order."""
    v = view3(w)
    out = []
    for ob in range(0, v.shape[0], bo):
        for t in range(v.shape[1]):
            for kb in range(0, v.shape[2], bk):
                out.append((len(out), (slice(ob, ob + bo), t, slice(kb, kb + bk))))
    return out


# ----------------------------------------------------------------------------- parsing

def test_parse_pattern_valid():
    assert parse_pattern("unstructured") == Pattern("unstructured")
    assert parse_pattern("channel") == Pattern("channel")
    assert parse_pattern("block4x1") == Pattern("block", block_out=4, block_red=1)
    assert parse_pattern("block1x16") == Pattern("block", block_out=1, block_red=16)
    assert parse_pattern("block3x5") == Pattern("block", block_out=3, block_red=5)
    assert parse_pattern("2:4") == Pattern("nm", n=2, m=4)
    assert parse_pattern("4:4") == Pattern("nm", n=4, m=4)
    assert str(parse_pattern("block8x1")) == "block8x1" and str(parse_pattern("1:4")) == "1:4"


@pytest.mark.parametrize("text", ["block0x4", "block4x0", "5:4", "0:4", "foo", "", "block4", "2:", "4x4",
                                  "block-1x4", "BLOCK1x4x", None, 3])
def test_parse_pattern_invalid(text):
    with pytest.raises(PruneError):
        parse_pattern(text)


# ----------------------------------------------------------------------------- mask properties

@SETTINGS
@given(weights(), sparsities, zero_points)
def test_unstructured_count_and_optimality(w, s, zp):
    keep = layer_mask(w, "unstructured", s, zero_point=zp)
    assert keep.shape == w.shape and keep.dtype == bool
    assert int((~keep).sum()) == half_up(s * w.size)
    m = mag(w, zp)
    if keep.any() and (~keep).any():
        assert m[keep].min() >= m[~keep].max()
    # the exact set: lowest (magnitude, flat index) first
    order = sorted(range(w.size), key=lambda i: (m.reshape(-1)[i], i))
    expected = np.ones(w.size, bool)
    expected[order[:half_up(s * w.size)]] = False
    np.testing.assert_array_equal(keep.reshape(-1), expected)


@SETTINGS
@given(weights(), st.sampled_from([(1, 4), (4, 1), (4, 4), (1, 8), (1, 16), (8, 1), (16, 1), (2, 3)]),
       sparsities, zero_points)
def test_block_structure_count_and_optimality(w, block, s, zp):
    bo, bk = block
    keep = layer_mask(w, f"block{bo}x{bk}", s, zero_point=zp)
    assert keep.shape == w.shape
    kv, mv = view3(keep), view3(mag(w, zp))
    blocks = ref_blocks(w, bo, bk)
    state, scores = [], []
    for _, sl in blocks:
        vals = kv[sl]
        assert vals.all() or not vals.any(), f"block {sl} partially pruned"   # all-or-nothing
        state.append(bool(vals.all()) if vals.size else True)
        scores.append(int(mv[sl].sum()))
    pruned = [i for i, k in enumerate(state) if not k]
    assert len(pruned) == half_up(s * len(blocks))
    kept_scores = [scores[i] for i, k in enumerate(state) if k]
    if pruned and kept_scores:
        assert min(kept_scores) >= max(scores[i] for i in pruned)
    # ties broken by block index: the exact set
    order = sorted(range(len(blocks)), key=lambda i: (scores[i], i))
    assert sorted(pruned) == sorted(order[:len(pruned)])


@SETTINGS
@given(weights(), st.sampled_from([(2, 4), (1, 4), (1, 2), (3, 8), (4, 4), (2, 3)]), zero_points)
def test_n_m_groups_keep_the_largest(w, nm, zp):
    n, m = nm
    keep = layer_mask(w, f"{n}:{m}", None, zero_point=zp)
    kv, mv = view3(keep), view3(mag(w, zp))
    for o in range(kv.shape[0]):
        for t in range(kv.shape[1]):
            for start in range(0, kv.shape[2], m):
                k, g = kv[o, t, start:start + m], mv[o, t, start:start + m]
                # a partial group counts as padded with zeros: it keeps min(N, length)
                assert int(k.sum()) == min(n, len(g))
                if k.any() and (~k).any():
                    assert g[k].min() >= g[~k].max()
    if w.size:
        assert int(((view3(w).astype(int) != zp) & view3(keep)).sum()) <= n * kv.shape[0] * kv.shape[1] * \
            -(-kv.shape[2] // m)


@SETTINGS
@given(weights(), sparsities, zero_points)
def test_channel_pruning(w, s, zp):
    keep = layer_mask(w, "channel", s, zero_point=zp)
    row_size = int(np.prod(w.shape[1:]))
    rows = keep.reshape(w.shape[0], row_size)
    for r in rows:
        assert r.all() or not r.any()
    l1 = mag(w, zp).reshape(w.shape[0], row_size).sum(axis=1)
    pruned = [i for i in range(w.shape[0]) if rows.shape[1] and not rows[i].any()]
    if rows.shape[1]:
        assert len(pruned) == half_up(s * w.shape[0])
        kept = [i for i in range(w.shape[0]) if i not in pruned]
        if pruned and kept:
            assert min(l1[kept]) >= max(l1[pruned])


@SETTINGS
@given(weights(), st.sampled_from(["unstructured", "block1x4", "block4x4", "block16x1", "channel"]), zero_points)
def test_sparsity_zero_keeps_all_one_prunes_all(w, pattern, zp):
    assert layer_mask(w, pattern, 0.0, zero_point=zp).all()
    assert not layer_mask(w, pattern, 1.0, zero_point=zp).any()


def test_masks_on_hand_examples():
    w = np.array([[1, -5, 2, 0, 9, 1, -1, 3]], dtype=np.int8)
    np.testing.assert_array_equal(layer_mask(w, "2:4", None), [[0, 1, 1, 0, 1, 0, 0, 1]])
    np.testing.assert_array_equal(layer_mask(w, "1:4", None), [[0, 1, 0, 0, 1, 0, 0, 0]])
    # block1x4 scores: 8 and 14; prune one block
    np.testing.assert_array_equal(layer_mask(w, "block1x4", 0.5), [[0, 0, 0, 0, 1, 1, 1, 1]])
    # ties: both |1| at indices 0 and 5 and |-1| at 6: the lowest indices go first
    np.testing.assert_array_equal(layer_mask(w, "unstructured", 0.25), [[0, 1, 1, 0, 1, 1, 1, 1]])
    # partial N:M group of length 2 with 2:4 keeps both; 1:4 keeps the larger
    w2 = np.array([[4, 3, 2, 1, 7, -8]], dtype=np.int8)
    np.testing.assert_array_equal(layer_mask(w2, "2:4", None), [[1, 1, 0, 0, 1, 1]])
    np.testing.assert_array_equal(layer_mask(w2, "1:4", None), [[1, 0, 0, 0, 0, 1]])
    # a conv weight: blocks along IC never cross a tap (IC=2 per tap, block1x4 = whole tap)
    c = np.array([1, 1, 9, 9, 2, 2, 8, 8], dtype=np.int8).reshape(1, 2, 2, 2)
    np.testing.assert_array_equal(layer_mask(c, "block1x4", 0.5).reshape(-1), [0, 0, 1, 1, 0, 0, 1, 1])
    # zero point: magnitudes are |w - zp|
    z = np.array([[5, 5, 6, 0]], dtype=np.int8)
    np.testing.assert_array_equal(layer_mask(z, "unstructured", 0.5, zero_point=5), [[0, 0, 1, 1]])


def test_empty_weights():
    for shape in [(0, 4), (3, 0), (0, 3, 3, 4), (2, 1, 1, 0)]:
        w = np.zeros(shape, np.int8)
        for p, s in [("unstructured", 0.5), ("block4x4", 0.5), ("2:4", None), ("channel", 0.5)]:
            assert layer_mask(w, p, s).shape == shape


@pytest.mark.parametrize("args", [
    (np.zeros((2, 4), np.int8), "block1x4", -0.1),
    (np.zeros((2, 4), np.int8), "block1x4", 1.5),
    (np.zeros((2, 4), np.int8), "block1x4", float("nan")),
    (np.zeros((2, 4), np.int8), "block1x4", "0.5"),
    (np.zeros((2, 4), np.int8), "block1x4", True),
    (np.zeros((2, 4), np.int8), "unstructured", None),
    (np.zeros((2, 4), np.int8), "2:4", 0.5),
    (np.zeros((2, 4), np.int8), "block0x4", 0.5),
    (np.zeros((2, 4, 4), np.int8), "block1x4", 0.5),
    (np.zeros((4,), np.int8), "unstructured", 0.5),
])
def test_layer_mask_bad_input(args):
    with pytest.raises(PruneError):
        layer_mask(*args)


# ----------------------------------------------------------------------------- graphs

def small_graph(weight_zp: int = 0, seed: int = 0):
    """input [1,6,6,8] -> CONV2D 1x1 (16) -> CONV2D 3x3 pad 1 (8) -> RESHAPE [1,36,8] -> MATMUL by [1,8,12]."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", DType.INT8, (1, 6, 6, 8))
    w1 = b.const(rng.integers(-128, 128, (16, 1, 1, 8)).astype(np.int8), name="w1")
    w2 = b.const(rng.integers(-128, 128, (8, 3, 3, 16)).astype(np.int8), name="w2")
    w3 = b.const(rng.integers(-128, 128, (1, 8, 12)).astype(np.int8), name="w3")
    c1 = b.conv2d(x, w1, weight_zp=weight_zp)
    r1 = b.rescale(c1, DType.INT8, multiplier=1 << 30, shift=40)
    c2 = b.conv2d(r1, w2, pad=(1, 1, 1, 1), weight_zp=weight_zp)
    r2 = b.rescale(c2, DType.INT8, multiplier=1 << 30, shift=40)
    m = b.matmul(b.reshape(r2, [1, 36, 8]), w3, b_zp=weight_zp)
    b.output(m)
    return b.build(), (c1.name, c2.name, m.name)


def x_input(seed: int = 1):
    return {"x": np.random.default_rng(seed).integers(-128, 128, (1, 6, 6, 8)).astype(np.int8)}


def snapshot(graph):
    return copy.deepcopy(graph)


def assert_same_graph(a, b):
    assert list(a.blocks) == list(b.blocks)
    for name in a.blocks:
        ba, bb = a.blocks[name], b.blocks[name]
        assert [(o.name, o.inputs, o.outputs, o.attrs) for o in ba.ops] == \
            [(o.name, o.inputs, o.outputs, o.attrs) for o in bb.ops]
        assert ba.tensors.keys() == bb.tensors.keys()
        for t in ba.tensors:
            assert ba.tensors[t].type == bb.tensors[t].type
            if ba.tensors[t].data is None:
                assert bb.tensors[t].data is None
            else:
                np.testing.assert_array_equal(ba.tensors[t].data, bb.tensors[t].data)


def test_prunable_layers_of_builder_graph():
    g, (c1, c2, mm) = small_graph()
    layers = {l.name: l for l in prunable_layers(g)}
    assert list(layers) == [c1, c2, mm]
    assert (layers[c1].op, layers[c1].weight, layers[c1].out_channels, layers[c1].reduction,
            layers[c1].positions, layers[c1].macs) == ("CONV2D", "w1", 16, 8, 36, 36 * 16 * 8)
    assert (layers[c2].out_channels, layers[c2].reduction, layers[c2].positions, layers[c2].macs) == \
        (8, 9 * 16, 36, 36 * 8 * 9 * 16)
    assert (layers[mm].op, layers[mm].weight, layers[mm].out_channels, layers[mm].reduction,
            layers[mm].positions, layers[mm].macs) == ("MATMUL", "w3", 12, 8, 36, 36 * 12 * 8)


@pytest.mark.parametrize("pattern,sparsity", [("unstructured", 0.6), ("block1x4", 0.5), ("block4x4", 0.3),
                                              ("2:4", None), ("channel", 0.25)])
def test_prune_builder_graph(pattern, sparsity):
    g, names = small_graph()
    before = snapshot(g)
    result = prune(g, LayerChoice(pattern, sparsity))
    assert_same_graph(g, before)                               # the input is untouched
    assert result.graph is not g and not result.folded
    verify(result.graph)
    pruned = result.graph.main
    # only the weight constants differ
    for name, t in g.main.tensors.items():
        if name not in ("w1", "w2", "w3"):
            assert (t.data is None) == (pruned.tensors[name].data is None)
            if t.data is not None:
                np.testing.assert_array_equal(t.data, pruned.tensors[name].data)
    assert [(o.name, o.inputs, o.outputs) for o in g.main.ops] == [(o.name, o.inputs, o.outputs)
                                                                   for o in pruned.ops]
    # report numbers from the graph itself
    positions = {"w1": 36, "w2": 36, "w3": 36}
    assert [r.layer for r in result.report] == list(names)
    for r in result.report:
        data = pruned.tensors[r.weight].data
        assert data.dtype == np.int8 and data.shape == g.main.tensors[r.weight].data.shape
        nz = int(np.count_nonzero(data))
        assert r.macs_after == positions[r.weight] * nz
        assert r.macs_before == positions[r.weight] * data.size
        assert r.density == pytest.approx(nz / data.size)
        orig = g.main.tensors[r.weight].data.astype(np.int64)
        assert r.magnitude_total == int(np.abs(orig).sum())
        assert r.magnitude_removed == int(np.abs(orig[data == 0]).sum())
        assert np.all((data == 0) | (data == orig))            # pruning only zeroes elements
        if sparsity is not None:
            assert r.density <= 1 - sparsity + 0.15
    assert result.macs_after == sum(r.macs_after for r in result.report) < result.macs_before
    total = sum(g.main.tensors[w].data.size for w in ("w1", "w2", "w3"))
    zeros = sum(int((pruned.tensors[w].data == 0).sum()) for w in ("w1", "w2", "w3"))
    assert result.sparsity == pytest.approx(zeros / total)
    # the reference interpreter runs it, and it computes the graph with those weights
    out = run(result.graph, x_input())
    rebuilt, _ = small_graph()
    for w in ("w1", "w2", "w3"):
        rebuilt.main.tensors[w].data = pruned.tensors[w].data.copy()
    np.testing.assert_array_equal(out[g.outputs[0]], run(rebuilt, x_input())[g.outputs[0]])
    assert not np.array_equal(out[g.outputs[0]], run(g, x_input())[g.outputs[0]])


def test_matmul_blocks_follow_the_reduction_of_B():
    """For MATMUL the reduction is C, the rows of B[n]: block1x4 tiles 4 consecutive rows of one column."""
    g, (_, _, mm) = small_graph()
    result = prune(g, {mm: LayerChoice("block1x4", 0.5)})
    b = result.graph.main.tensors["w3"].data[0]                  # [C=8, W=12]
    orig = g.main.tensors["w3"].data[0]
    zeroed = 0
    for col in range(12):
        for start in (0, 4):
            chunk = b[start:start + 4, col]
            if not chunk.any():
                zeroed += 1
            else:                                                 # untouched
                np.testing.assert_array_equal(chunk, orig[start:start + 4, col])
    assert zeroed == 12                                           # half of the 24 blocks
    # the other layers stay dense
    np.testing.assert_array_equal(result.graph.main.tensors["w1"].data, g.main.tensors["w1"].data)
    assert [r.layer for r in result.report] == [mm]


def test_nonzero_weight_zero_point():
    g, _ = small_graph(weight_zp=3)
    result = prune(g, LayerChoice("unstructured", 0.5))
    for r in result.report:
        orig = g.main.tensors[r.weight].data
        data = result.graph.main.tensors[r.weight].data
        changed = data != orig
        assert np.all(data[changed] == 3)                         # pruned -> the zero point (real 0)
        assert r.nonzeros_after == int(np.count_nonzero(data != 3))
        # the pruned set is the half with the smallest |w - 3|, elements already at 3 first
        assert int((data == 3).sum()) == max(half_up(0.5 * data.size), int((orig == 3).sum()))
        assert r.magnitude_total == int(np.abs(orig.astype(np.int64) - 3).sum())
    run(result.graph, x_input())


def test_flatbuffer_round_trip():
    g, names = small_graph()
    g2 = read_tosa(write_tosa(g))
    assert [l.name for l in prunable_layers(g2)] == list(names)
    result = prune(g2, LayerChoice("block4x1", 0.5))
    g3 = read_tosa(write_tosa(result.graph))
    for w in ("w1", "w2", "w3"):
        np.testing.assert_array_equal(g3.main.tensors[w].data, result.graph.main.tensors[w].data)
    np.testing.assert_array_equal(run(g3, x_input())[g.outputs[0]], run(result.graph, x_input())[g.outputs[0]])
    # same graph through the builder and through the flatbuffer: same masks
    direct = prune(g, LayerChoice("block4x1", 0.5))
    for w in ("w1", "w2", "w3"):
        np.testing.assert_array_equal(direct.graph.main.tensors[w].data, result.graph.main.tensors[w].data)


def test_weight_from_transpose_is_folded():
    """An ONNX-style MatMul weight: TRANSPOSE of a CONST is a constant only after folding."""
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    a = b.input("a", DType.INT8, (1, 5, 8))
    wt = b.const(rng.integers(-128, 128, (1, 12, 8)).astype(np.int8), name="wt")
    w = b.op("TRANSPOSE", [wt], perms=[0, 2, 1])
    out = b.matmul(a, w)
    b.output(out)
    g = b.build()
    before = snapshot(g)
    layers = prunable_layers(g)
    assert [(l.name, l.weight, l.out_channels, l.reduction, l.positions) for l in layers] == \
        [(out.name, w.name, 12, 8, 5)]
    result = prune(g, LayerChoice("2:4"))
    assert result.folded
    assert_same_graph(g, before)
    verify(result.graph)
    data = result.graph.main.tensors[w.name].data[0]              # [C=8, W=12]
    for col in range(12):
        assert int(np.count_nonzero(data[0:4, col])) <= 2 and int(np.count_nonzero(data[4:8, col])) <= 2
    x = {"a": rng.integers(-128, 128, (1, 5, 8)).astype(np.int8)}
    expected = x["a"][0].astype(np.int64) @ data.astype(np.int64)
    np.testing.assert_array_equal(run(result.graph, x)[out.name][0], expected)


def test_shared_weight():
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    x = b.input("x", DType.INT8, (1, 4, 4, 8))
    w = b.const(rng.integers(-128, 128, (8, 1, 1, 8)).astype(np.int8), name="w")
    c1 = b.conv2d(x, w)
    r1 = b.rescale(c1, DType.INT8, multiplier=1 << 30, shift=38)
    c2 = b.conv2d(r1, w)
    b.output(c2)
    g = b.build()
    result = prune(g, LayerChoice("unstructured", 0.5))
    assert [r.layer for r in result.report] == [c1.name, c2.name]
    data = result.graph.main.tensors["w"].data
    assert int((data == 0).sum()) == 32 >= int((g.main.tensors["w"].data == 0).sum())
    assert result.report[0].nonzeros_after == result.report[1].nonzeros_after == int(np.count_nonzero(data))
    run(result.graph, {"x": np.ones((1, 4, 4, 8), np.int8)})
    with pytest.raises(PruneError, match="shared"):
        prune(g, LayerChoice("unstructured", 0.5), layers=[c1.name])
    with pytest.raises(PruneError, match="shared"):
        prune(g, {c1.name: LayerChoice("unstructured", 0.5), c2.name: LayerChoice("unstructured", 0.25)})


def test_weight_also_read_elsewhere_is_not_prunable():
    b = GraphBuilder()
    x = b.input("x", DType.INT8, (1, 2, 2, 4))
    w = b.const(np.arange(16, dtype=np.int8).reshape(4, 1, 1, 4), name="w")
    c = b.conv2d(x, w)
    b.output(c, w)
    g = b.build()
    assert prunable_layers(g) == []
    with pytest.raises(PruneError, match="not prunable"):
        prune(g, {c.name: LayerChoice("unstructured", 0.5)})


def test_kws_model():
    g = tosac.models.load("kws")
    before = snapshot(g)
    layers = prunable_layers(g)
    assert len(layers) == 6 and all(l.op == "CONV2D" for l in layers)
    first = layers[0]                                             # the 10x4 conv over a 49x10 input, stride 2
    assert (first.out_channels, first.reduction) == (64, 40)
    x = {g.inputs[0]: np.random.default_rng(5).integers(-128, 128, (1, 1, 49, 10)).astype(np.int8)}
    dense = run(g, x)
    for pattern, s in [("block1x4", 0.5), ("2:4", None), ("channel", 0.25), ("unstructured", 0.0)]:
        result = prune(g, LayerChoice(pattern, s))
        assert_same_graph(g, before)
        verify(result.graph)
        out = run(result.graph, x)
        assert out[g.outputs[0]].shape == dense[g.outputs[0]].shape
        for r, l in zip(result.report, layers):
            data = result.graph.main.tensors[l.weight].data
            assert r.macs_after == l.positions * int(np.count_nonzero(data))
            assert r.macs_before == l.macs
        if s == 0.0:
            np.testing.assert_array_equal(out[g.outputs[0]], dense[g.outputs[0]])
            assert result.macs_after == sum(l.positions * int(np.count_nonzero(g.main.tensors[l.weight].data))
                                            for l in layers)
    table = result.table()
    assert all(l.name in table for l in layers) and len(table.splitlines()) == len(layers) + 3
    doc = result.to_json()
    assert json.loads(json.dumps(doc))["layers"][0]["layer"] == layers[0].name


def test_bad_requests_raise_prune_error():
    g, (c1, c2, mm) = small_graph()
    kws = tosac.models.load("kws")
    bad = [
        lambda: prune(g, LayerChoice("block0x4", 0.5)),
        lambda: prune(g, LayerChoice("5:4")),
        lambda: prune(g, LayerChoice("foo", 0.5)),
        lambda: prune(g, LayerChoice("block1x4", 1.01)),
        lambda: prune(g, LayerChoice("block1x4", -0.5)),
        lambda: prune(g, LayerChoice("block1x4", None)),
        lambda: prune(g, LayerChoice("2:4", 0.5)),
        lambda: prune(g, LayerChoice("block1x4", 0.5), layers=["no_such_layer"]),
        lambda: prune(g, {"no_such_layer": LayerChoice("block1x4", 0.5)}),
        lambda: prune(g, {c1: "block1x4"}),
        lambda: prune(g, "block1x4"),
        lambda: prune(g, {c1: LayerChoice("block1x4", 0.5)}, layers=[c1]),
        lambda: prune(g, LayerChoice("block1x4", 0.5), layers=c1),          # a string, not a list of names
        lambda: prune(kws, {"depthwise_conv2d_17": LayerChoice("block1x4", 0.5)}),   # not a prunable op
        lambda: prune("not a graph", LayerChoice("block1x4", 0.5)),
    ]
    for i, call in enumerate(bad):
        with pytest.raises(PruneError):
            call()
    with pytest.raises(PruneError, match="no_such_layer"):
        prune(g, {"no_such_layer": LayerChoice("block1x4", 0.5)})
    with pytest.raises(PruneError, match="DEPTHWISE_CONV2D"):
        prune(kws, {"depthwise_conv2d_17": LayerChoice("channel", 0.5)})
    assert issubclass(PruneError, TosacError) and tosac.PruneError is PruneError


def test_non_constant_weight_is_not_prunable():
    b = GraphBuilder()
    x = b.input("x", DType.INT8, (1, 2, 2, 4))
    w = b.input("w", DType.INT8, (4, 1, 1, 4))
    c = b.conv2d(x, w)
    b.output(c)
    g = b.build()
    assert prunable_layers(g) == []
    with pytest.raises(PruneError, match="not a constant"):
        prune(g, {c.name: LayerChoice("block1x4", 0.5)})

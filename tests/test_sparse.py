"""Sparse kernels give the dense kernel's bits on the same pruned weights, on every target.

Hypothesis draws CONV2D shapes (1x1 and kxk, strides, dilation, padding),
zero points, fused epilogues, a pruning pattern from ``tosac.prune`` and a
sparsity from 0 to 95% (so empty output rows, empty layers and fully dense
blocks all occur), then a random point of the sparse template's knobs. The
compiled result must equal the reference interpreter exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tosac
from tosac.pipeline.optimise import kernel_builders, optimise_graph
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.prune import layer_mask
from tosac.schedules import microkernels as mk
from tosac.schedules.microkernels.bsr import BlockSparse, to_bsr
from tosac.schedules.microkernels.gemm import pack_shuffled, packed_word_ratio
from tosac.schedules.sparse import group_density
from tosac.targets import get_target, runnable_targets
from tosac.tune.features import LOOP_FEATURES, Featurizer
from tosac.pipeline.tasks import extract_tasks

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
PATTERNS = ["unstructured", "block1x4", "block4x1", "block4x4", "block1x8", "block1x16", "2:4", "1:4", "channel"]


def conv_graph(x_shape, weights, *, pad=(0, 0, 0, 0), stride=(1, 1), dilation=(1, 1), input_zp=0,
               epilogue="rescale", seed=0):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, x_shape)
    inputs = {"x": rng.integers(-128, 128, size=x_shape).astype(np.int8)}
    oc = weights.shape[0]
    y = g.conv2d(x, g.const(weights), g.const(rng.integers(-3000, 3000, size=oc).astype(np.int32)), pad=pad,
                 stride=stride, dilation=dilation, input_zp=input_zp, weight_zp=0)
    if epilogue != "none":
        y = g.rescale(y, DType.INT8, multiplier=rng.integers(1 << 29, 1 << 31, size=oc).astype(np.int32),
                      shift=rng.integers(36, 40, size=oc).astype(np.int8), output_zp=int(rng.integers(-9, 9)),
                      per_channel=True)
    if epilogue == "residual":
        r = g.input("r", DType.INT8, y.shape)
        inputs["r"] = rng.integers(-128, 128, size=y.shape).astype(np.int8)
        y = g.rescale(g.add(g.rescale(y, DType.INT32, multiplier=np.int32(1 << 30), shift=np.int8(30)),
                            g.rescale(r, DType.INT32, multiplier=np.int32(1 << 30), shift=np.int8(30))),
                      DType.INT8, multiplier=np.int32(1 << 30), shift=np.int8(31))
    if epilogue == "clamp":
        y = g.clamp(y, min_val=-60, max_val=100)
    g.output(y)
    return g.build(), inputs


def conv_kernel(graph, target):
    (kb,) = [b for b in kernel_builders(optimise_graph(graph), get_target(target)) if "CONV2D" in b.pattern]
    return kb


def sparse_config(kb, rng: np.random.Generator) -> dict:
    """A random point of the space with a sparse format."""
    config = kb.space.sample(rng)
    formats = [f for f in next(k.values for k in kb.space.knobs if k.name == "format") if f != "dense"]
    config["format"] = formats[int(rng.integers(len(formats)))]
    return config


@st.composite
def pruned_conv(draw):
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ic, oc = 4 * draw(st.sampled_from([1, 2, 3, 5, 8, 16])), draw(st.integers(1, 40))
    k = draw(st.sampled_from([1, 1, 3]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if k > 1 else (1, 1)
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4)) if k > 1 else (0, 0, 0, 0)
    span_y, span_x = h + pad[0] + pad[1] - (k - 1) * dilation[0] - 1, w + pad[2] + pad[3] - (k - 1) * dilation[1] - 1
    assume(span_y >= 0 and span_x >= 0 and span_y % stride[0] == 0 and span_x % stride[1] == 0)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = rng.integers(-128, 128, size=(oc, k, k, ic)).astype(np.int8)
    pattern = draw(st.sampled_from(PATTERNS))
    sparsity = None if ":" in pattern else draw(st.sampled_from([0.3, 0.6, 0.8, 0.9, 0.95, 1.0]))
    weights = np.where(layer_mask(weights, pattern, sparsity), weights, 0).astype(np.int8)
    if draw(st.booleans()):
        weights[: oc // 2] = 0                                    # empty output rows
    return dict(x_shape=(n, h, w, ic), weights=weights, pad=pad, stride=stride, dilation=dilation,
                input_zp=draw(st.integers(-128, 127)), epilogue=draw(st.sampled_from(["none", "rescale", "clamp",
                                                                                       "residual"])),
                seed=draw(st.integers(0, 1000)))


@SETTINGS
@given(pruned_conv())
def test_sparse_conv_equals_reference_on_every_x86_target(case):
    graph, inputs = conv_graph(case["x_shape"], case["weights"], pad=case["pad"], stride=case["stride"],
                               dilation=case["dilation"], input_zp=case["input_zp"], epilogue=case["epilogue"],
                               seed=case["seed"])
    # A tenth of the 4-channel groups empty: every micro-kernel (groups of 4, 2 or 1) can skip some.
    must_offer = group_density(np.moveaxis(case["weights"], 0, -1)) < 0.9
    expected = run(graph, inputs)
    rng = np.random.default_rng(case["seed"])
    tested = 0
    for target in runnable_targets():
        kb = conv_kernel(graph, target)
        if "format" not in kb.space.default:
            assert not must_offer, f"{target}: a layer with empty groups must offer sparse schedules"
            continue
        config = sparse_config(kb, rng)
        got = tosac.compile(graph, target, {kb.name: config}).run(inputs)
        for name in graph.outputs:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{target} {config}")
        tested += 1
    assume(tested)


def test_every_sparse_knob_value_is_exact():
    """Each format x block shape x row vectors x micro-kernel kind, on one 3x3 layer with partial blocks."""
    rng = np.random.default_rng(3)
    weights = rng.integers(-128, 128, size=(13, 3, 3, 12)).astype(np.int8)
    weights = np.where(layer_mask(weights, "block4x4", 0.7), weights, 0).astype(np.int8)
    graph, inputs = conv_graph((1, 7, 6, 12), weights, pad=(1, 1, 1, 1), input_zp=-7, seed=1)
    expected = run(graph, inputs)
    kb = conv_kernel(graph, "host")
    knobs = {k.name: k.values for k in kb.space.knobs}
    for kind in knobs["kind"]:
        for fmt in ("panel", "bsr", "unrolled"):
            for i, bn in enumerate(knobs["block_n"]):            # every value of every knob at least once
                bk = knobs["block_k"][i % len(knobs["block_k"])]
                mv = knobs["m_vectors"][(i + len(fmt)) % len(knobs["m_vectors"])]
                config = {"kind": kind, "format": fmt, "block_n": bn, "block_k": bk, "m_vectors": mv}
                got = tosac.compile(graph, "host", {kb.name: config}).run(inputs)
                np.testing.assert_array_equal(got[graph.outputs[0]], expected[graph.outputs[0]], err_msg=str(config))


@SETTINGS
@given(st.data())
def test_packed_format_equals_reference_on_every_x86_target(data):
    """N:M-packed words with shuffled activations: any input channel count (partial windows and groups),
    every offered window, micro-kernel kind and register block."""
    ic, oc, k = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40)), data.draw(st.sampled_from([1, 3]))
    pattern = data.draw(st.sampled_from(["2:4", "1:4", "unstructured", "block1x4"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    weights = rng.integers(-128, 128, size=(oc, k, k, ic)).astype(np.int8)
    if ic >= 4:
        sparsity = None if ":" in pattern else data.draw(st.sampled_from([0.6, 0.8, 0.95]))
        weights = np.where(layer_mask(weights, pattern, sparsity), weights, 0).astype(np.int8)
    else:
        weights[rng.random(weights.shape) < 0.8] = 0
    h, w = data.draw(st.integers(k, 8)), data.draw(st.integers(k, 8))
    graph, inputs = conv_graph((1, h, w, ic), weights, pad=(k // 2,) * 4, input_zp=data.draw(st.integers(-128, 127)),
                               epilogue=data.draw(st.sampled_from(["none", "rescale", "clamp"])), seed=ic)
    expected = run(graph, inputs)[graph.outputs[0]]
    tested = 0
    for target in runnable_targets():
        kb = conv_kernel(graph, target)
        knobs = {knob.name: knob.values for knob in kb.space.knobs}
        if "packed" not in knobs.get("format", ()):
            continue
        config = {"format": "packed", "window": data.draw(st.sampled_from(knobs["window"])),
                  "kind": data.draw(st.sampled_from(knobs["kind"])), "mr": data.draw(st.sampled_from([1, 3, 6])),
                  "nr_vectors": data.draw(st.sampled_from([1, 2, 4])),
                  "order": data.draw(st.sampled_from(["nm", "mn"]))}
        got = tosac.compile(graph, target, {kb.name: config}).run(inputs)[graph.outputs[0]]
        np.testing.assert_array_equal(got, expected, err_msg=f"{target} {config}")
        tested += 1
    assume(tested)


def test_packing_keeps_every_nonzero_weight_once():
    """The packed words, decoded with plain loops, rebuild the weight matrix; 2:4 halves the dot products."""
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, size=(24, 1, 1, 40)).astype(np.int8)
    w = np.where(layer_mask(w, "2:4", None), w, 0).astype(np.int8)
    weights = np.moveaxis(w, 0, -1)                                            # [KH, KW, IC, N]
    for kind in (mk.VNNI, mk.SDOT, mk.AVX2):
        for window in (8, 16):
            nr = 2 * kind.lanes
            rebuilt = np.zeros((40, -(-24 // nr) * nr), np.int64)
            for p, steps in enumerate(pack_shuffled(weights, kind, nr, window)):
                for step in steps:
                    for j, mask, vals in step.words:
                        for e, (index, value) in enumerate(zip(mask, vals)):
                            channel = p * nr + j * kind.lanes + e // kind.k_group
                            assert rebuilt[step.channel0 + index, channel] == 0 or value == 0
                            rebuilt[step.channel0 + index, channel] += value
            np.testing.assert_array_equal(rebuilt[:, :24], w[:, 0, 0, :].T, err_msg=f"{kind.name} {window}")
    assert packed_word_ratio(weights, mk.VNNI, 8) == 0.5                     # 4 of 8 channels: one word, not two
    assert packed_word_ratio(weights, mk.VNNI, 4) == 1.0                     # 2 of 4: still one word per group


def test_all_zero_and_dense_layers():
    """Sparsity 100% (every group skipped: output = bias path only) is exact; a dense layer offers no sparse knobs."""
    rng = np.random.default_rng(0)
    zero = np.zeros((8, 1, 1, 16), np.int8)
    graph, inputs = conv_graph((1, 5, 5, 16), zero, input_zp=5)
    kb = conv_kernel(graph, "host")
    got = tosac.compile(graph, "host", {kb.name: {"format": "bsr"}}).run(inputs)
    np.testing.assert_array_equal(got[graph.outputs[0]], run(graph, inputs)[graph.outputs[0]])
    dense = rng.integers(1, 100, size=(8, 1, 1, 16)).astype(np.int8)
    assert "format" not in conv_kernel(conv_graph((1, 5, 5, 16), dense)[0], "host").space.default


def test_bsr_format_holds_exactly_the_nonzero_blocks():
    rng = np.random.default_rng(1)
    w = rng.integers(-5, 6, size=(1, 1, 16, 10)).astype(np.int8)            # [KH, KW, IC, N]
    w[:, :, 4:8, :] = 0
    w[:, :, :, 3] = 0
    bsr: BlockSparse = to_bsr(w, mk.VNNI, bn=2, bk=1)
    # Rebuild the dense [N, K] matrix from the BSR arrays with plain loops.
    dense = np.zeros((10, 16), np.int64)
    for row in range(bsr.row_ptr.size - 1):
        for blk in range(bsr.row_ptr[row], bsr.row_ptr[row + 1]):
            for i in range(2):
                dense[row * 2 + i, bsr.col[blk] * 4:(bsr.col[blk] + 1) * 4] = bsr.values[blk, i, 0]
    np.testing.assert_array_equal(dense, w[0, 0].T)
    assert 1 not in bsr.col                                                  # channels 4..7 are zero everywhere
    assert all(bsr.values[b].any() for b in range(bsr.blocks))              # no stored block is all zero


def test_tasks_features_and_op_counts_see_sparsity():
    rng = np.random.default_rng(2)
    dense = rng.integers(1, 100, size=(16, 1, 1, 32)).astype(np.int8)
    pruned = np.where(layer_mask(dense, "block1x4", 0.75), dense, 0).astype(np.int8)
    g_dense, _ = conv_graph((1, 6, 6, 32), dense)
    g_pruned, _ = conv_graph((1, 6, 6, 32), pruned)
    key = lambda g: [t for t in extract_tasks(g, "host") if "CONV2D" in t.pattern][0].key  # noqa: E731
    assert key(g_dense) != key(g_pruned)
    kb = conv_kernel(g_pruned, "host")
    sparse = dict(kb.space.default, format="bsr")
    assert kb.op_count(sparse) == 36 * np.count_nonzero(pruned) == kb.mac_count // 4
    assert kb.op_count(kb.space.default) == kb.mac_count == 36 * pruned.size
    features = Featurizer(kb, kb.space)
    density = LOOP_FEATURES.index("density")
    assert np.isnan(features(kb.space.default)[density])
    assert features(sparse)[density] == pytest.approx(0.25)
    info = {k.name: k for k in tosac.compile(g_pruned, "host", {kb.name: sparse}).program.info["kernels"]}
    assert info[kb.name].mac_count == 36 * np.count_nonzero(pruned)


@pytest.mark.parametrize("target", ["aarch64-dotprod", "aarch64", "armv7"])
def test_sparse_conv_on_arm_under_qemu(target, require_cross):
    require_cross(target)
    rng = np.random.default_rng(4)
    for pattern, sparsity, k in (("block4x4", 0.8, 1), ("unstructured", 0.6, 3), ("2:4", None, 1)):
        weights = rng.integers(-128, 128, size=(20, k, k, 24)).astype(np.int8)
        weights = np.where(layer_mask(weights, pattern, sparsity), weights, 0).astype(np.int8)
        if pattern == "2:4":
            weights[:, :, :, :8] = 0                               # whole groups must be zero somewhere
        graph, inputs = conv_graph((1, 6, 5, 24), weights, pad=(k // 2,) * 4, input_zp=-3, seed=k)
        kb = conv_kernel(graph, target)
        expected = run(graph, inputs)[graph.outputs[0]]
        windows = next((knob.values for knob in kb.space.knobs if knob.name == "window"), ())
        assert windows or pattern != "2:4", "2:4 must get the N:M-packed format"
        configs = [{"format": fmt, "block_n": bn, "block_k": 2, "m_vectors": 2}
                   for fmt, bn in (("bsr", 4), ("unrolled", 2), ("panel", 1))]
        for config in configs + [{"format": "packed", "window": w} for w in windows]:
            got = tosac.compile(graph, target, {kb.name: config}).run(inputs)[graph.outputs[0]]
            np.testing.assert_array_equal(got, expected, err_msg=f"{target} {pattern} {config}")


@pytest.mark.parametrize("pattern, sparsity", [("block1x16", 0.8), ("block4x1", 0.9), ("unstructured", 0.95)])
def test_sparse_matmul_and_fully_connected(pattern, sparsity):
    """MATMUL with constant weights (rows = positions) and a single-row fully-connected layer."""
    rng = np.random.default_rng(7)
    for rows in (1, 37):
        b = rng.integers(-128, 128, size=(1, 64, 24)).astype(np.int8)                # [1, C, W]
        keep = layer_mask(b[0].T, pattern, sparsity).T                              # prune the [W, C] view
        b = np.where(keep[None], b, 0).astype(np.int8)
        g = GraphBuilder()
        a = g.input("a", DType.INT8, (1, rows, 64))
        g.output(g.matmul(a, g.const(b), a_zp=-9))
        graph = g.build()
        inputs = {"a": rng.integers(-128, 128, size=(1, rows, 64)).astype(np.int8)}
        expected = run(graph, inputs)[graph.outputs[0]]
        (kb,) = kernel_builders(optimise_graph(graph), get_target("host"))
        knobs = {k.name: k.values for k in kb.space.knobs}
        assert {"panel", "bsr", "unrolled"} <= set(knobs["format"])
        for fmt in knobs["format"][1:]:
            window = {"window": knobs["window"][-1]} if fmt == "packed" else {}
            config = {"format": fmt, "block_n": 4, "block_k": 2, **window}
            got = tosac.compile(graph, "host", {kb.name: config}).run(inputs)[graph.outputs[0]]
            np.testing.assert_array_equal(got, expected, err_msg=f"{rows} rows {pattern} {config}")


def test_two_of_four_gets_packed_words_or_skipped_channels():
    """2:4 leaves no all-zero group of 4 channels: VNNI and sdot get only the N:M-packed format (one word per
    8 channels); the portable kind (one channel per step) can also skip the zero channels."""
    rng = np.random.default_rng(9)
    weights = rng.integers(-128, 128, size=(24, 1, 1, 32)).astype(np.int8)
    weights = np.where(layer_mask(weights, "2:4", None), weights, 0).astype(np.int8)
    graph, inputs = conv_graph((1, 6, 6, 32), weights, input_zp=4)
    expected = run(graph, inputs)[graph.outputs[0]]
    formats = {t: next(k.values for k in conv_kernel(graph, t).space.knobs if k.name == "format")
               for t in ("x86_64-avx512vnni", "aarch64-dotprod", "x86_64")}
    assert formats["x86_64-avx512vnni"] == formats["aarch64-dotprod"] == ("dense", "packed")
    assert {"panel", "bsr", "unrolled", "packed"} <= set(formats["x86_64"])
    vnni = conv_kernel(graph, "x86_64-avx512vnni")
    density = Featurizer(vnni, vnni.space)(dict(vnni.space.default, format="packed", window=8))
    assert density[LOOP_FEATURES.index("density")] == 0.5                  # one word per two dense groups
    kb = conv_kernel(graph, "x86_64")
    for fmt in formats["x86_64"]:
        config = {"format": fmt, "block_n": 4}
        got = tosac.compile(graph, "x86_64", {kb.name: config}).run(inputs)[graph.outputs[0]]
        np.testing.assert_array_equal(got, expected, err_msg=fmt)

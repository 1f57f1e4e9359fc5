"""The generated model zoo (tosac.models: MobileNetV2/V3, EfficientNet-B0, ResNet-18/50, YOLOv3-tiny, BERT-tiny).

The ONNX models themselves are checked: the patterns exporters write, the
float network ONNX Runtime runs (activations neither dead nor exploding), the
quantized files ORT's quantizers make, the cache, the MAC count (against hand
computations and torchvision's published figures); and that tosac imports
them. resnet50 and efficientnet_b0 generate only with TOSAC_SLOW_MODELS=1
(about 30 s and 13 s); the others take 1 to 8 s each.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tosac import models
from tosac.errors import TosacError
from tosac.models import batchnorm, cache, vision, zoo
from tosac.models.layers import OnnxNet
from tosac.models.macs import count_macs

SMALL = ["mobilenet_v2", "mobilenet_v3_small", "resnet18", "yolo_tiny", "bert_tiny"]
SLOW = ["efficientnet_b0", "resnet50"]
slow = pytest.mark.skipif(os.environ.get("TOSAC_SLOW_MODELS") != "1",
                          reason="generating resnet50 / efficientnet_b0 takes 15-30 s: set TOSAC_SLOW_MODELS=1")
FAMILIES = SMALL + [pytest.param(name, marks=slow) for name in SLOW]


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory):
    """A fresh cache directory for this module: every family is generated once, by these tests."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("tosac-cache")
        mp.setenv("TOSAC_CACHE_DIR", str(root))
        yield root


@pytest.fixture
def ort(require_module):
    return require_module("onnxruntime", extra="test")


def _session(ort, model_or_path):
    data = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _ops(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _const(model: onnx.ModelProto, name: str) -> np.ndarray:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    raise KeyError(name)


# ----------------------------------------------------------------------------------------------- MACs


def test_macs_of_a_tiny_model_match_a_hand_count():
    b = OnnxNet("tiny", 0)
    x = b.input("x", (1, 3, 8, 8))
    y = b.conv(x, "/c1", 4, 3, stride=2)                  # out 1x4x4x4, each output 3 channels x 3x3 taps
    y = b.conv(y, "/dw", 4, 3, groups=4)                  # depthwise: out 1x4x4x4, 1 channel x 3x3 taps
    y = b.relu(y, "/r")                                   # not counted
    fc = b.linear(b.flatten(y, "/f"), "/fc", 10)          # Gemm [1,64] x [64,10]
    q = b.input("q", (1, 4, 8, 16))
    k = b.input("k", (1, 4, 16, 8))
    att = b.node("MatMul", [q, k], "/att", (1, 4, 8, 8))  # batched: 4 heads of [8,16] x [16,8]
    u = b.input("u", (2, 1, 3, 5))
    v = b.input("v", (4, 5, 6))
    bc = b.node("MatMul", [u, v], "/bc", (2, 4, 3, 6))   # broadcast batch 2x4 of [3,5] x [5,6]
    model = b.model([fc, att, bc])
    expected = (4 * 4 * 4) * (3 * 3 * 3) + (4 * 4 * 4) * (1 * 3 * 3) + 64 * 10 + 4 * (8 * 8 * 16) + 2 * 4 * (3 * 6 * 5)
    assert count_macs(model) == expected == 7760


def test_macs_of_the_shipped_kws_model_match_a_hand_count():
    # conv 10x4 stride 2 on 49x10 -> 25x5x64; 4x (depthwise 3x3 + pointwise 64->64) at 25x5; fc 64->12
    hand = 25 * 5 * 64 * (10 * 4) + 4 * (25 * 5 * 64 * 9 + 25 * 5 * 64 * 64) + 64 * 12
    assert models.record("kws").macs == hand


@pytest.mark.parametrize("builder, kwargs, published_gmacs", [
    (vision.resnet18, {}, 1.81), (vision.resnet50, {}, 4.09), (vision.efficientnet_b0, {}, 0.39),
    (vision.mobilenet_v2, {"width": 1.0}, 0.30), (vision.mobilenet_v3_small, {}, 0.06)])
def test_architectures_have_torchvisions_published_macs_at_224(builder, kwargs, published_gmacs):
    """torchvision's model tables state each network's GFLOPS (multiply-adds) at 224x224 to two decimals: the
    builders (run at 224 here) get the same count, so their layers and channels are torchvision's."""
    macs = count_macs(batchnorm.fold(builder(None, size=224, **kwargs))) / 1e9
    assert abs(macs - published_gmacs) <= 0.005 + 0.01 * published_gmacs, macs


def test_macs_need_static_shapes():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                                                [x], [y], [w]))
    with pytest.raises(TosacError, match="MatMul node 'mm'.*not static"):
        count_macs(model)


# ----------------------------------------------------------------------------------------------- catalog


def test_names_and_records():
    assert models.names("shipped") == ["kws", "vww", "ic", "ad"]
    assert set(models.names("generated")) == set(SMALL + SLOW)
    assert models.names() == models.names("shipped") + models.names("generated")
    records = {r.name: r for r in models.list()}
    assert list(records) == models.names()
    assert records["bert_tiny"].input_shapes == {"input_ids": (1, 32), "attention_mask": (1, 32)}
    assert records["yolo_tiny"].input_shapes == {"input": (1, 3, 192, 192)}
    assert records["kws"].shipped and not records["resnet18"].shipped
    assert "dynamic" in records["bert_tiny"].formats and "dynamic" not in records["kws"].formats
    for r in records.values():
        assert r.op_types == tuple(sorted(set(r.op_types))) and "BatchNormalization" not in r.op_types
        assert r.macs > 0
    expected_ops = {"mobilenet_v2": {"Clip", "Conv", "Add", "GlobalAveragePool", "Gemm"},
                    "mobilenet_v3_small": {"HardSwish", "HardSigmoid", "GlobalAveragePool", "Mul", "Relu"},
                    "efficientnet_b0": {"Sigmoid", "Mul", "ReduceMean", "Add"},
                    "resnet18": {"MaxPool", "Add", "Relu"}, "resnet50": {"MaxPool", "Add", "Relu"},
                    "yolo_tiny": {"LeakyRelu", "MaxPool", "Pad", "Resize", "Concat", "Sigmoid"},
                    "bert_tiny": {"Gather", "LayerNormalization", "MatMul", "Div", "Softmax", "Shape", "Unsqueeze",
                                  "Concat", "Reshape", "Transpose", "Erf", "ReduceMean", "Gemm", "Cast", "Sub"}}
    for name, ops in expected_ops.items():
        assert ops <= set(records[name].op_types), (name, ops - set(records[name].op_types))


def test_api_errors():
    with pytest.raises(TosacError, match="no bundled model 'resnet152'; bundled models are kws, vww, ic, ad, mob"):
        models.path("resnet152")
    with pytest.raises(TosacError, match="unknown model format 'fp16'"):
        models.onnx_model("resnet18", "fp16")
    with pytest.raises(TosacError, match="model 'kws' has no 'dynamic' form; its formats are qdq, qoperator, float"):
        models.path("kws", "dynamic")
    with pytest.raises(TosacError, match="choose one of all, shipped, generated"):
        models.names("zoo")


def test_cli_lists_the_models(capsys):
    from tosac.app.cli import main

    assert main(["models", "--ops"]) == 0
    out = capsys.readouterr().out
    for name in models.names():
        assert f"\n{name} " in out
    assert "LayerNormalization" in out and "generated" in out and "shipped" in out


# ----------------------------------------------------------------------------------------------- exporter patterns
# On skeletons (the real graph with zero weights, built in milliseconds); test_generated_float_model checks the
# generated float model has the skeleton's ops.


def test_mobilenet_v2_pattern():
    m = zoo.skeleton("mobilenet_v2")
    clips = [n for n in m.graph.node if n.op_type == "Clip"]
    assert clips and all(len(n.input) == 3 for n in clips)               # ReLU6: min and max as inputs
    assert {float(_const(m, n.input[1])) for n in clips} == {0.0}
    assert {float(_const(m, n.input[2])) for n in clips} == {6.0}
    # residual Adds: stride-1 blocks whose channels do not change (1 + 2 + 3 + 2 + 2 at width 0.35)
    assert _ops(m).count("Add") == 10
    depthwise = [n for n in m.graph.node if n.op_type == "Conv" and _attrs(n)["group"] > 1]
    assert len(depthwise) == 17
    assert m.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 1000


def test_mobilenet_v3_small_pattern():
    m = zoo.skeleton("mobilenet_v3_small")
    ops = _ops(m)
    assert ops.count("HardSigmoid") == 9 and ops.count("GlobalAveragePool") == 10    # 9 SE blocks + the head
    for n in m.graph.node:
        if n.op_type == "HardSigmoid":
            attrs = _attrs(n)
            assert np.isclose(attrs["alpha"], 1 / 6) and attrs["beta"] == 0.5
    # each SE: pool -> Conv -> Relu -> Conv -> HardSigmoid -> Mul with the block's features
    producer = {n.output[0]: n for n in m.graph.node}
    for gate in (n for n in m.graph.node if n.op_type == "HardSigmoid"):
        chain, t = [], gate.input[0]
        while producer[t].op_type != "GlobalAveragePool":
            chain.append(producer[t].op_type)
            t = producer[t].input[0]
        assert chain == ["Conv", "Relu", "Conv"]
        readers = [n for n in m.graph.node if gate.output[0] in n.input]
        assert [n.op_type for n in readers] == ["Mul"] and producer[t].input[0] in readers[0].input


def test_efficientnet_b0_pattern():
    m = zoo.skeleton("efficientnet_b0")
    reduces = [n for n in m.graph.node if n.op_type == "ReduceMean"]
    assert len(reduces) == 16                                              # one squeeze-excite per MBConv block
    assert all(_attrs(n) == {"axes": [2, 3], "keepdims": 1} for n in reduces)
    producer = {n.output[0]: n for n in m.graph.node}
    swish = [n for n in m.graph.node if n.op_type == "Mul" and n.input[1] in producer
             and producer[n.input[1]].op_type == "Sigmoid" and producer[n.input[1]].input[0] == n.input[0]]
    assert len(swish) >= 16 * 2 + 2                                        # x * Sigmoid(x): stem, blocks, head, SE
    assert _ops(m).count("Add") == 9                                       # residuals of B0's 16 blocks


@pytest.mark.parametrize("name, convs, adds", [("resnet18", 20, 8), ("resnet50", 53, 16)])
def test_resnet_pattern(name, convs, adds):
    m = zoo.skeleton(name)
    assert _ops(m).count("Conv") == convs and _ops(m).count("Add") == adds and _ops(m).count("MaxPool") == 1
    assert all(len(n.input) == 3 for n in m.graph.node if n.op_type == "Conv")    # BN folded into a bias


def test_yolo_tiny_pattern():
    m = zoo.skeleton("yolo_tiny")
    resize = next(n for n in m.graph.node if n.op_type == "Resize")
    assert _attrs(resize) == {
        "coordinate_transformation_mode": b"asymmetric", "cubic_coeff_a": -0.75, "mode": b"nearest",
        "nearest_mode": b"floor"}
    assert resize.input[1] == "" and list(_const(m, resize.input[2])) == [1.0, 1.0, 2.0, 2.0]
    concat = next(n for n in m.graph.node if n.op_type == "Concat")
    assert concat.input[0] == resize.output[0]
    leaky = [n for n in m.graph.node if n.op_type == "LeakyRelu"]
    assert len(leaky) == 11 and all(np.isclose(_attrs(n)["alpha"], 0.1) for n in leaky)
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output}
    assert shapes == {"output0": [1, 255, 6, 6], "output1": [1, 255, 12, 12]}
    producer = {n.output[0]: n for n in m.graph.node}
    for out in shapes:
        assert producer[out].op_type == "Sigmoid" and producer[producer[out].input[0]].op_type == "Conv"


def test_bert_tiny_pattern():
    m = zoo.skeleton("bert_tiny")
    ops = _ops(m)
    assert [i.type.tensor_type.elem_type for i in m.graph.input] == [TensorProto.INT64, TensorProto.INT64]
    assert ops.count("LayerNormalization") == 5 and ops.count("Erf") == 2 and ops.count("Softmax") == 2
    producer = {n.output[0]: n for n in m.graph.node}
    inits = {t.name for t in m.graph.initializer}
    runtime = [n for n in m.graph.node if n.op_type == "MatMul" and not inits & set(n.input)]
    assert len(runtime) == 4                                               # Q.K^T and P.V in both layers
    for reshape in (n for n in m.graph.node if n.op_type == "Reshape"):    # view(): Shape->Gather->Unsqueeze->Concat
        concat = producer[reshape.input[1]]
        assert concat.op_type == "Concat"
        chains = [producer[i] for i in concat.input if producer[i].op_type == "Unsqueeze"]
        assert len(chains) == 2 and all(producer[u.input[0]].op_type == "Gather" for u in chains)
        assert all(producer[producer[u.input[0]].input[0]].op_type == "Shape" for u in chains)
    div = [n for n in m.graph.node if n.op_type == "Div" and producer.get(n.input[0], n).op_type == "MatMul"]
    assert len(div) == 2 and all(np.isclose(_const(m, n.input[1]), np.sqrt(32)) for n in div)
    assert all(_attrs(n)["axis"] == -1 for n in m.graph.node if n.op_type == "Softmax")
    mask = next(n for n in m.graph.node if n.op_type == "Mul" and producer.get(n.input[0], n).op_type == "Sub")
    assert float(_const(m, mask.input[1])) == -10000.0
    pool = next(n for n in m.graph.node if n.op_type == "ReduceMean")
    assert _attrs(pool) == {"axes": [1], "keepdims": 0}
    assert producer["logits"].op_type == "Gemm"


# ----------------------------------------------------------------------------------------------- batch norm


def _tiny_bn_net(seed: int) -> onnx.ModelProto:
    b = OnnxNet("bn", seed)
    x = b.input("input", (1, 3, 12, 12))
    y = b.conv_bn(x, "/a", 8, 3, act="relu")
    y = b.conv_bn(y, "/b", 6, 3, stride=2)
    return b.model([y], ["output"])


def test_batchnorm_calibration_normalises_each_layer_on_its_data(ort):
    model = _tiny_bn_net(0)
    rng = np.random.default_rng(5)
    samples = [{"input": rng.normal(3.0, 7.0, (1, 3, 12, 12)).astype(np.float32)} for _ in range(6)]
    batchnorm.calibrate(model, samples)
    gammas = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend([helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None) for n in bns])
    session = _session(ort, probe)
    outs = [session.run([n.output[0] for n in bns], s) for s in samples]
    for i, bn in enumerate(bns):           # over the samples, each channel has mean beta and std ~gamma
        y = np.stack([o[i] for o in outs]).transpose(2, 0, 1, 3, 4).reshape(len(gammas[bn.input[1]]), -1)
        np.testing.assert_allclose(y.mean(axis=1), gammas[bn.input[2]], atol=1e-3)
        np.testing.assert_allclose(y.std(axis=1), gammas[bn.input[1]], rtol=1e-3)

    folded = batchnorm.fold(model)
    assert "BatchNormalization" not in _ops(folded)
    a, b = _session(ort, model), _session(ort, folded)
    for s in samples:
        np.testing.assert_allclose(b.run(None, s)[0], a.run(None, s)[0], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------- generation


@pytest.mark.parametrize("name", FAMILIES)
def test_generated_float_model(name, zoo_cache, ort):
    model = models.onnx_model(name, "float")
    onnx.checker.check_model(model, full_check=True)
    assert tuple(sorted(set(_ops(model)))) == models.record(name).op_types
    assert count_macs(model) == models.record(name).macs
    session = _session(ort, model)
    feeds = zoo.RECIPES[name].samples(8, 1234)              # not the seeds of BN statistics or calibration
    logits = np.stack([session.run(None, f)[0].reshape(-1) for f in feeds])
    assert np.isfinite(logits).all() and np.abs(logits).max() < 1e3          # not exploding
    spread = logits.std(axis=0).mean()                                       # across inputs, per output
    assert spread > 0.05 * max(logits.std(axis=1).mean(), 1e-6) and spread > 1e-3, spread   # not input-blind
    assert len(set(logits.argmax(axis=1))) >= 2, logits.argmax(axis=1)                    # top-1 varies


def _is_per_channel_int8_weight(model: onnx.ModelProto) -> bool:
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            if inits[node.input[0]].data_type == TensorProto.INT8 and len(inits[node.input[1]].dims) == 1 \
                    and inits[node.input[1]].dims[0] > 1:
                return True
    return False


@pytest.mark.parametrize("name", FAMILIES)
def test_quantized_models(name, zoo_cache, ort):
    reference = _session(ort, models.path(name, "float"))
    feeds = zoo.RECIPES[name].samples(4, 77)
    expected = np.stack([reference.run(None, f)[0].reshape(-1) for f in feeds])
    for fmt in models.MODELS[name].formats:
        if fmt in ("float", "tflite"):                  # the TFLite form: tests/test_tflite_networks.py
            continue
        model = models.onnx_model(name, fmt)
        onnx.checker.check_model(model)
        ops = set(_ops(model))
        if fmt == "qdq":
            assert {"QuantizeLinear", "DequantizeLinear"} <= ops and _is_per_channel_int8_weight(model)
        elif fmt == "qoperator":
            assert ops & {"QLinearConv", "QLinearMatMul", "QGemm"}
        else:
            assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
        session = _session(ort, model)
        got = np.stack([session.run(None, f)[0].reshape(-1) for f in feeds])
        corr = np.corrcoef(got.reshape(-1), expected.reshape(-1))[0, 1]
        assert corr > 0.5, (fmt, corr)       # int8 follows the float network (measured 0.6 to 1.0; broken: ~0)


@pytest.mark.parametrize("name", SMALL)
def test_tosac_imports_the_generated_models(name, zoo_cache, ort):
    for fmt in models.MODELS[name].formats:
        graph = models.load(name, fmt)
        shapes = [tuple(t.shape) for t in graph.input_types().values()]
        expected = [tuple(s) for s in models.MODELS[name].input_shapes.values()]
        if fmt == "tflite":                             # NHWC, as TFLite files are
            expected = [(s[0], s[2], s[3], s[1]) if len(s) == 4 else s for s in expected]
        assert shapes == expected, (fmt, shapes)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "yolo_tiny", "bert_tiny"])
def test_tosac_runs_the_float_models_as_onnx_runtime_does(name, zoo_cache, ort):
    from tosac.ir.reference.interpreter import run

    graph = models.load(name, "float")
    session = _session(ort, models.path(name, "float"))
    for feed in zoo.RECIPES[name].samples(2, 9):
        ours = run(graph, feed)
        for out, expected in zip(graph.outputs, session.run(None, feed)):
            np.testing.assert_allclose(ours[out].reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------- cache


def test_cache_reuses_rebuilds_damaged_and_keys_versions(zoo_cache, ort, monkeypatch):
    path = models.path("bert_tiny", "qdq")
    assert path.parent == zoo_cache / "models" and path.name.startswith("bert_tiny.qdq.")
    stamp = path.stat().st_mtime_ns
    zoo._checked.clear()                                                    # a new process: reads and checks
    assert models.path("bert_tiny", "qdq") == path and path.stat().st_mtime_ns == stamp   # reused, not rebuilt
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}[cache.KEY_PROP] == path.name.split(".")[2]

    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])                                # truncated
    assert onnx.checker.check_model(onnx.load(str(models.path("bert_tiny", "qdq")))) is None
    assert path.stat().st_size > len(data) // 2

    foreign = onnx.load(str(models.path("bert_tiny", "float")))            # whole, valid, but not this key's
    onnx.save(foreign, str(path))
    stale, unrelated = path.parent / "bert_tiny.qdq.0123456789abcdef.onnx", path.parent / "bert_tiny.qdq.mine.onnx"
    stale.write_bytes(b"an older key's file")
    unrelated.write_bytes(b"not the cache's")
    rebuilt = models.onnx_model("bert_tiny", "qdq")
    assert "QuantizeLinear" in _ops(rebuilt)
    assert not stale.exists() and unrelated.exists()                        # rebuilding drops older keys' files
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files
    assert path.stat().st_mode & 0o777 == 0o644

    monkeypatch.setattr(zoo, "_version", lambda module: "0.0-other" if module == "onnxruntime" else "1")
    assert zoo.cache_key("bert_tiny", "qdq") != path.name.split(".")[2]


def test_generation_without_onnxruntime_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("TOSAC_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)                   # import onnxruntime -> ImportError
    with pytest.raises(TosacError, match=r"model 'bert_tiny' \(float\) is generated on first use .* "
                                         r"pip install 'tosac\[bench\]' \(or 'tosac\[test\]'\)"):
        models.onnx_model("bert_tiny", "float")
    assert models.path("kws", "qdq").is_file()                              # shipped models need no onnxruntime

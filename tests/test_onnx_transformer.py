"""Transformer-family ONNX ops against ONNX Runtime: token embeddings (Gather), shape subgraphs, Cast, Expand,
LayerNormalization, GELU, attention's batched MatMul of two run-time operands, and dynamic quantization
(DynamicQuantizeLinear + MatMulInteger), on the reference interpreter and compiled for the host."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import tosac
from tosac.errors import UnsupportedError
from tosac.frontends.onnx import load
from tosac.ir.reference.interpreter import run

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def ort(require_module):
    return require_module("onnxruntime", extra="test")


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort_run(ort, model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)


def _both_targets(graph, feed: dict) -> tuple[dict, dict]:
    """The reference's results and the host-compiled ones (int64 data is fed as int32: tosac has no int64)."""
    feed = {k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in feed.items()}
    return run(graph, feed), tosac.compile(graph, "host").run(feed)


def _encoder(rng: np.random.Generator, seq: int = 8, vocab: int = 50, d: int = 16, heads: int = 2) -> onnx.ModelProto:
    """One encoder layer as torch.onnx.export writes it: embedding Gather of int64 ids, position add,
    LayerNormalization, Q/K/V MatMuls, head split by a Shape->Gather->Concat->Reshape subgraph, Q.K^T / sqrt(d)
    (two run-time operands), Softmax, .V, erf GELU MLP, mean pool and a classifier Gemm."""
    dh = d // heads
    w = {name: numpy_helper.from_array((rng.normal(0, 1, shape) / np.sqrt(shape[0])).astype(np.float32), name)
         for name, shape in (("wq", (d, d)), ("wk", (d, d)), ("wv", (d, d)), ("wo", (d, d)),
                             ("w1", (d, 4 * d)), ("w2", (4 * d, d)), ("wc", (d, 5)))}
    consts = {"table": rng.normal(0, 1, (vocab, d)), "pos": rng.normal(0, 0.1, (1, seq, d)),
              "gamma": rng.uniform(0.5, 1.5, d), "beta": rng.normal(0, 0.1, d), "sqrt_dh": np.sqrt(dh),
              "half": 0.5, "one": 1.0, "rsqrt2": 1 / np.sqrt(2)}
    inits = list(w.values()) + [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()]
    inits += [numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in
              (("i0", [0]), ("heads", [heads]), ("dh", [dh]), ("minus1", [-1]), ("d", [d]))]
    n = helper.make_node
    nodes = [n("Gather", ["table", "ids"], ["emb"]), n("Add", ["emb", "pos"], ["x0"]),
             n("LayerNormalization", ["x0", "gamma", "beta"], ["x"], axis=-1, epsilon=1e-5),
             n("Shape", ["x"], ["shape"]), n("Gather", ["shape", "i0"], ["batch"], axis=0),
             n("Concat", ["batch", "minus1", "heads", "dh"], ["split_shape"], axis=0),
             n("Concat", ["batch", "minus1", "d"], ["merge_shape"], axis=0)]
    for name in ("q", "k", "v"):
        nodes += [n("MatMul", ["x", f"w{name}"], [f"{name}0"]), n("Reshape", [f"{name}0", "split_shape"], [f"{name}1"]),
                  n("Transpose", [f"{name}1"], [f"{name}h"], perm=[0, 2, 3, 1] if name == "k" else [0, 2, 1, 3])]
    nodes += [n("MatMul", ["qh", "kh"], ["scores0"]), n("Div", ["scores0", "sqrt_dh"], ["scores"]),
              n("Softmax", ["scores"], ["probs"], axis=-1), n("MatMul", ["probs", "vh"], ["ctx0"]),
              n("Transpose", ["ctx0"], ["ctx1"], perm=[0, 2, 1, 3]), n("Reshape", ["ctx1", "merge_shape"], ["ctx"]),
              n("MatMul", ["ctx", "wo"], ["attn"]), n("Add", ["x", "attn"], ["r1"]),
              n("MatMul", ["r1", "w1"], ["h"]), n("Mul", ["h", "rsqrt2"], ["hs"]), n("Erf", ["hs"], ["he"]),
              n("Add", ["he", "one"], ["h1"]), n("Mul", ["h", "h1"], ["h2"]), n("Mul", ["h2", "half"], ["g"]),
              n("MatMul", ["g", "w2"], ["f"]), n("Add", ["r1", "f"], ["r2"]),
              n("ReduceMean", ["r2"], ["pooled"], axes=[1], keepdims=0), n("MatMul", ["pooled", "wc"], ["y"])]
    return _model(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, seq])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)


def test_encoder_layer_agrees_with_onnxruntime_in_float(ort):
    model = _encoder(np.random.default_rng(0))
    graph = load(model, io="float")
    assert graph.tensors["ids"].type.dtype.name == "INT32"
    ops = {op.name for op in graph.ops}
    assert {"GATHER", "MATMUL", "RSQRT", "ERF"} <= ops
    for seed in range(3):
        ids = np.random.default_rng(seed).integers(0, 50, (1, 8)).astype(np.int64)
        want = _ort_run(ort, model, {"ids": ids})[0]
        reference, compiled = _both_targets(graph, {"ids": ids})
        np.testing.assert_allclose(reference["y"], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(compiled["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_statically_quantized_encoder_compiles_bit_exact(ort, tmp_path, fmt):
    """ORT's static int8 quantization of the encoder: attention's Q.K^T and .V become int8 MATMULs of two
    run-time operands; compiled for the host, every output bit equals the reference's; top-1 as ORT's."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = _encoder(np.random.default_rng(1))
    source, target = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(model, source)
    rng = np.random.default_rng(2)
    samples = [{"ids": rng.integers(0, 50, (1, 8)).astype(np.int64)} for _ in range(8)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(samples)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(source), str(target), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    graph = load(target)
    producer = {name: op.name for op in graph.ops for name in op.outputs}
    int8_matmuls = [op for op in graph.ops if op.name == "MATMUL" and graph.tensors[op.inputs[0]].type.dtype.name
                    == "INT8" and producer.get(op.inputs[1]) != "CONST"]
    assert len(int8_matmuls) >= 2, "Q.K^T and probabilities.V should be int8 MATMULs of run-time operands"
    agree = 0
    for sample in samples:
        reference, compiled = _both_targets(graph, sample)
        np.testing.assert_array_equal(compiled["y"], reference["y"])
        agree += int(np.argmax(reference["y"]) == np.argmax(_ort_run(ort, onnx.load(target), sample)[0]))
    assert agree >= 6, f"top-1 agrees with ORT on {agree} of 8 calibration inputs"


@SETTINGS
@given(st.integers(0, 10_000), st.sampled_from([(6,), (2, 3, 5), (1, 16, 8)]), st.floats(1e-3, 1e3))
def test_dynamic_quantize_linear_is_bit_exact_with_onnxruntime(ort, seed, shape, spread):
    """y, scale and zero point all equal ORT's, ties and saturation included (x / s as IEEE division)."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(rng.uniform(-1, 1), 1, shape) * spread).astype(np.float32)
    x.reshape(-1)[0] = np.float32(rng.integers(-4, 5)) * 0.5 * spread           # a likely tie
    model = _model([helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "zp"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                   [helper.make_tensor_value_info(o, t, None) for o, t in
                    (("y", TensorProto.UINT8), ("s", TensorProto.FLOAT), ("zp", TensorProto.UINT8))])
    want = _ort_run(ort, model, {"x": x})
    graph = load(model, io="float")
    for results in _both_targets(graph, {"x": x}):
        for name, expected in zip(("y", "s", "zp"), want):
            np.testing.assert_array_equal(results[name], expected, err_msg=name)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 12), st.integers(1, 40), st.integers(1, 9), st.booleans())
def test_dynamically_quantized_matmul_is_bit_exact_with_onnxruntime(ort, seed, m, k, n, weight_zero_points):
    """quantize_dynamic's pattern: DynamicQuantizeLinear -> MatMulInteger (run-time A zero point, int8 B with
    per-column zero points or none) -> Cast -> Mul by the scales: the int32 product is exact."""
    rng = np.random.default_rng(seed)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    b_zp = rng.integers(-5, 6, n).astype(np.int8) if weight_zero_points else np.zeros(n, np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "zp"]),
             helper.make_node("MatMulInteger", ["q", "b", "zp", "b_zp"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "s"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, m, k])],
                   [helper.make_tensor_value_info("acc", TensorProto.INT32, None),
                    helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                   [numpy_helper.from_array(b, "b"), numpy_helper.from_array(b_zp, "b_zp")])
    x = (rng.normal(0.3, 2, (2, m, k))).astype(np.float32)
    acc, y = _ort_run(ort, model, {"x": x})
    graph = load(model, io="float")
    for results in _both_targets(graph, {"x": x}):
        np.testing.assert_array_equal(results["acc"], acc)
        np.testing.assert_array_equal(results["y"], y)


@pytest.mark.parametrize("to", [TensorProto.INT32, TensorProto.INT8, TensorProto.INT64, TensorProto.BOOL,
                                TensorProto.FLOAT])
@pytest.mark.parametrize("source", [TensorProto.FLOAT, TensorProto.INT32, TensorProto.BOOL])
def test_cast_follows_onnxruntime(ort, source, to):
    """Float to integer truncates toward zero (TOSA CAST alone would round), integers narrow by wrapping,
    anything to bool is x != 0."""
    rng = np.random.default_rng(source * 10 + to)
    data = {TensorProto.FLOAT: np.array([-2.5, -1.5, -0.7, -0.0, 0.3, 0.5, 1.5, 2.5, 99.9, -100.2], np.float32),
            TensorProto.INT32: np.array([-300, -129, -128, -1, 0, 1, 127, 128, 255, 70000], np.int32),
            TensorProto.BOOL: rng.integers(0, 2, 10).astype(bool)}[source]
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=to)],
                   [helper.make_tensor_value_info("x", source, [10])], [helper.make_tensor_value_info("y", to, None)])
    want = _ort_run(ort, model, {"x": data})[0]
    graph = load(model, io="float")
    for results in _both_targets(graph, {"x": data}):
        np.testing.assert_array_equal(results["y"], want.astype(np.int32) if want.dtype == np.int64 else want)


def test_cast_to_an_unsupported_type_names_it():
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE, name="to_double")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                   [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    with pytest.raises(UnsupportedError, match="node 'to_double' \\(Cast\\): attribute to=DOUBLE"):
        load(model, io="float")


@pytest.mark.parametrize("indices, axis", [([[3, -1], [0, 2]], 0),          # token ids into an embedding table
                                           ([1, 2, 3], 1), ([2, 0, 2], 1),  # a run (SLICE) and a general pick
                                           (2, 2), ([[-1]], 0)])            # a scalar index drops the axis
@pytest.mark.parametrize("indices_at_run_time", [False, True])
def test_gather_agrees_with_onnxruntime(ort, indices, axis, indices_at_run_time):
    rng = np.random.default_rng(axis)
    data = rng.normal(0, 1, (4, 5, 3)).astype(np.float32)
    index = np.asarray(indices, np.int64)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(data.shape))]
    inits = []
    if indices_at_run_time:
        inputs.append(helper.make_tensor_value_info("i", TensorProto.INT64, list(index.shape)))
        inits.append(numpy_helper.from_array(data, "table"))          # run-time ids into a constant table
        nodes = [helper.make_node("Gather", ["table", "i"], ["g"], axis=axis), helper.make_node("Add", ["g", "g"], ["y"])]
        inputs = inputs[1:]
        feed = {"i": index}
    else:
        inits.append(numpy_helper.from_array(index, "i"))
        nodes = [helper.make_node("Gather", ["x", "i"], ["g"], axis=axis), helper.make_node("Add", ["g", "g"], ["y"])]
        feed = {"x": data}
    model = _model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    want = _ort_run(ort, model, feed)[0]
    graph = load(model, io="float")
    for results in _both_targets(graph, feed):
        np.testing.assert_array_equal(results["y"], want)


@pytest.mark.parametrize("shape, target", [((3, 1), (2, 3, 4)), ((1, 4), (3, 4)), ((2, 1, 1), (1, 1, 5))])
def test_expand_agrees_with_onnxruntime(ort, shape, target):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    model = _model([helper.make_node("Expand", ["x", "shape"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                   [numpy_helper.from_array(np.asarray(target, np.int64), "shape")])
    want = _ort_run(ort, model, {"x": data})[0]
    for results in _both_targets(load(model, io="float"), {"x": data}):
        np.testing.assert_array_equal(results["y"], want)


@pytest.mark.parametrize("op, attrs", [("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Erf", {})])
def test_gelu_and_erf_between_dequantize_and_quantize_are_int8_tables(ort, op, attrs):
    """DQ -> Gelu/Erf -> Q is one int8 TABLE; over all 256 inputs within 1 LSB of ORT's float op, and equal
    except at near-ties of the float rounding."""
    q = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    nodes = [helper.make_node("DequantizeLinear", ["q", "s_in", "z"], ["x"]),
             helper.make_node(op, ["x"], ["g"], **attrs),
             helper.make_node("QuantizeLinear", ["g", "s_out", "z"], ["y"])]
    scales = [numpy_helper.from_array(np.array(0.035, np.float32), "s_in"),
              numpy_helper.from_array(np.array(0.021 if op == "Gelu" else 1 / 127, np.float32), "s_out"),
              numpy_helper.from_array(np.array(0, np.int8), "z")]
    model = _model(nodes, [helper.make_tensor_value_info("q", TensorProto.INT8, [1, 256])],
                   [helper.make_tensor_value_info("y", TensorProto.INT8, None)], scales, opset=20)
    want = _ort_run(ort, model, {"q": q})[0]
    graph = load(model)
    assert [o.name for o in graph.ops if o.name not in ("CONST", "CONST_SHAPE")] == ["TABLE"]
    for results in _both_targets(graph, {"q": q}):
        diff = np.abs(results["y"].astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff == 0).sum() >= 254, diff.nonzero()

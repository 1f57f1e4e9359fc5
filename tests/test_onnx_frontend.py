"""The ONNX frontend: quantized models from ONNX Runtime's quantizer agree with ORT, compile bit-exact,
ONNX's node tests pass, and bad files give typed errors naming the node."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import tosac
from tosac.conformance.onnx_agreement import compare_layers, first_difference
from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.onnx import load
from tosac.frontends.onnx.reader import OpsetUpgradeWarning
from tosac.ir.graph import Graph
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run



@pytest.fixture(scope="module")
def ort(require_module):
    """ONNX Runtime (the 'test' extra): it quantizes the test nets and is the peer they are compared with."""
    return require_module("onnxruntime", extra="test")


def _float_model(nodes, inputs, outputs, inits, opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _quantize(model: onnx.ModelProto, tmp_path, fmt: QuantFormat, act: QuantType, per_channel: bool,
              seed: int, weights: QuantType) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    rng = np.random.default_rng(seed)
    name = model.graph.input[0].name
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{name: rng.normal(0, 1, shape).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    src, dst = tmp_path / "float.onnx", tmp_path / "quant.onnx"
    onnx.save(model, src)
    # ONNX Runtime's u8 x s8 kernels on x86 without VNNI add pairs of products in int16 with saturation
    # (vpmaddubsw), so its results are not the exact integer arithmetic; its quantization guide prescribes
    # 7-bit weights (reduce_range) for such CPUs, which keeps every pair sum in range. Any uint8-activation
    # model can meet them: asked for uint8 per-channel weights, the QOperator quantizer stores int8 ones.
    # (ONNX's reference evaluator agrees with tosac bit for bit on such layers; ORT is off by up to 211.)
    reduce_range = act is QuantType.QUInt8 and not _host_has_vnni()
    quantize_static(str(src), str(dst), Reader(), quant_format=fmt, activation_type=act,
                    weight_type=weights, per_channel=per_channel, reduce_range=reduce_range)
    return onnx.load(str(dst))


def _host_has_vnni() -> bool:
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    return bool(features.get("avx512vnni") or features.get("avxvnni"))


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


@st.composite
def conv_nets(draw):
    """A small conv net: conv (k×k, stride, pads) → [depthwise] → residual add → pool → FC [→ sigmoid]."""
    from onnxruntime.quantization import QuantFormat, QuantType

    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    c_in, c = draw(st.integers(1, 4)), draw(st.sampled_from([4, 8, 12]))
    hw, k, stride = draw(st.integers(5, 12)), draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 2]))
    pad = draw(st.sampled_from(["same", "valid", "asym"]))
    pads = {"same": [k // 2] * 4, "valid": [0] * 4, "asym": [0, 0, k // 2, k // 2]}[pad]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv", pads=pads, strides=[stride] * 2),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu")]
    inits = [_init("w1", rng.normal(0, 0.5, (c, c_in, k, k))), _init("b1", rng.normal(0, 0.2, c))]
    last = "r1"
    if draw(st.booleans()):
        nodes += [helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="dw", pads=[1] * 4, group=c),
                  helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"], name="relu6"),
                  helper.make_node("Add", ["r1", "r2"], ["res"], name="residual")]
        inits += [_init("w2", rng.normal(0, 0.5, (c, 1, 3, 3))), _init("b2", rng.normal(0, 0.2, c)),
                  _init("lo", 0.0), _init("hi", 6.0)]
        last = "res"
    pool = draw(st.sampled_from(["GlobalAveragePool", "MaxPool", "AveragePool"]))
    attrs = {} if pool == "GlobalAveragePool" else {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes += [helper.make_node(pool, [last], ["p"], name="pool", **attrs),
              helper.make_node("Flatten", ["p"], ["f"], name="flatten")]
    out_hw = (hw + pads[0] + pads[2] - k) // stride + 1
    features = c if pool == "GlobalAveragePool" else c * (out_hw // 2) ** 2
    if features == 0:
        features, nodes[-2] = c, helper.make_node("GlobalAveragePool", [last], ["p"], name="pool")
    nodes.append(helper.make_node("Gemm", ["f", "w3", "b3"], ["g"], name="fc", transB=1))
    inits += [_init("w3", rng.normal(0, 0.3, (5, features))), _init("b3", rng.normal(0, 0.1, 5))]
    head = draw(st.sampled_from(["none", "Softmax", "Sigmoid"]))
    if head != "none":
        nodes.append(helper.make_node(head, ["g"], ["y"], name="head"))
    else:
        nodes[-1].output[0] = "y"
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, hw, hw])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    fmt = draw(st.sampled_from([QuantFormat.QDQ, QuantFormat.QOperator]))
    act = draw(st.sampled_from([QuantType.QInt8, QuantType.QUInt8]))
    # ONNX Runtime's quantizer refuses int8 activations with uint8 weights.
    weights = QuantType.QInt8 if act is QuantType.QInt8 else draw(st.sampled_from([QuantType.QInt8, QuantType.QUInt8]))
    return model, fmt, act, draw(st.booleans()), head, weights


@settings(max_examples=16, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                   HealthCheck.function_scoped_fixture])
@given(conv_nets(), st.integers(0, 100))
def test_quantized_nets_agree_with_onnxruntime_and_compile_exactly(ort, tmp_path, net, seed):
    model, fmt, act, per_channel, head, weights = net
    quantized = _quantize(model, tmp_path, fmt, act, per_channel, seed, weights)
    layers = compare_layers(quantized, draws=10, seed=seed, target="host")
    first = first_difference(layers)
    if first is not None:
        assert first.max_diff <= 1, f"{first}: more than 1 LSB from ONNX Runtime ({layers})"
        if first.op not in ("AveragePool", "QLinearAveragePool", "Softmax", "QLinearSoftmax"):
            # Ties (pooling with equal scales) and ORT's approximate int8 softmax aside, differences are rare.
            assert first.exact >= 0.95, f"{first}: only {first.exact:.1%} equal to ONNX Runtime ({layers})"
    graph = load(quantized)
    inputs = random_inputs(graph.input_types(), seed)
    expected = run(graph, inputs)
    got = tosac.compile(graph, "host").run(inputs)
    for name in graph.outputs:
        np.testing.assert_array_equal(got[name], expected[name])


def test_transposes_of_tf_style_models_cost_nothing(ort):
    """NHWC input → Transpose → Conv → Transpose back: the layout bookkeeping removes every TRANSPOSE."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["c"], pads=[0, 0, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 3])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w", rng.normal(0, 1, (4, 3, 3, 3)))])
    graph = load(model, io="float")
    assert [op.name for op in graph.ops if op.name not in ("CONST", "CONST_SHAPE")] == ["CONV2D", "CLAMP"]
    x = rng.normal(0, 1, (1, 8, 8, 3)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(run(graph, {"x": x})["y"], expected, rtol=1e-5, atol=1e-5)


def _agrees_in_float_and_int8(ort, tmp_path, model: onnx.ModelProto, x: np.ndarray,
                              fmt: str = "QDQ") -> Graph:
    """The float model imports within 1e-5 of ORT (fp32 is not bit-exact by design); its int8 form (ORT's
    quantizer, ``fmt``) within 1 LSB of ORT per layer and, compiled, bit-exact against the reference
    interpreter. Returns the int8 graph."""
    from onnxruntime.quantization import QuantFormat, QuantType

    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(run(load(model, io="float"), {"x": x})["y"], expected[0], rtol=1e-5, atol=1e-5)
    quantized = _quantize(model, tmp_path, getattr(QuantFormat, fmt), QuantType.QInt8, True, 0, QuantType.QInt8)
    first = first_difference(compare_layers(quantized, draws=10, seed=0, target="host"))
    assert first is None or first.max_diff <= 1, first
    graph = load(quantized)
    inputs = random_inputs(graph.input_types(), 0)
    got, want = tosac.compile(graph, "host").run(inputs), run(graph, inputs)
    for name in graph.outputs:
        np.testing.assert_array_equal(got[name], want[name])
    return graph


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_hard_sigmoid_and_hard_swish_agree_with_onnxruntime(ort, tmp_path, fmt):
    """MobileNetV3's activations: fp32 ops in a float model, one int8 TABLE each between Q and DQ."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 4),
             helper.make_node("HardSwish", ["c1"], ["h1"], name="hswish"),
             helper.make_node("Conv", ["h1", "w2", "b2"], ["c2"], name="conv2"),
             helper.make_node("HardSigmoid", ["c2"], ["y"], name="hsigmoid", alpha=0.25, beta=0.4)]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w1", rng.normal(0, 0.8, (8, 3, 3, 3))), _init("b1", rng.normal(0, 0.5, 8)),
                          _init("w2", rng.normal(0, 0.5, (4, 8, 1, 1))), _init("b2", rng.normal(0, 0.3, 4))])
    x = (3 * rng.normal(0, 1, (1, 3, 8, 8))).astype(np.float32)
    graph = _agrees_in_float_and_int8(ort, tmp_path, model, x, fmt)
    assert "TABLE" in {op.name for op in graph.ops}, "the activations should stay int8 (TABLE)"


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"])
def test_reductions_agree_with_onnxruntime(ort, op, opset):
    """Any axes (attribute, or input where the opset takes one), keepdims or not, after a conv (NHWC inside)."""
    rng = np.random.default_rng(5)
    w = _init("w", rng.normal(0, 1, (4, 3, 3, 3)))
    for axes in ([2, 3], [1], [-1], [0, 2], None):
        for keepdims in (0, 1):
            inputs, inits, attrs = ["c"], [w], {"keepdims": keepdims}
            if axes is not None and (op == "ReduceSum" or opset >= 18):
                inputs.append("axes")
                inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
            elif axes is not None:
                attrs["axes"] = axes
            nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4),
                     helper.make_node(op, inputs, ["y"], name="reduce", **attrs)]
            model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 6])],
                                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits, opset)
            x = rng.normal(0, 1, (2, 3, 5, 6)).astype(np.float32)
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            expected = session.run(None, {"x": x})[0]
            graph = load(model, io="float")
            got = run(graph, {"x": x})["y"]
            assert got.shape == expected.shape, (axes, keepdims)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=f"axes={axes} keepdims={keepdims}")
            compiled = tosac.compile(graph, "host").run({"x": x})["y"]
            np.testing.assert_allclose(compiled, got, rtol=1e-5, atol=1e-5)   # fp32 conv: accumulation order


def test_reduce_mean_in_a_quantized_squeeze_excite_block(ort, tmp_path):
    """MobileNetV3's squeeze-excite: conv -> ReduceMean over H, W (keepdims) -> conv -> HardSigmoid -> Mul."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1] * 4),
             helper.make_node("ReduceMean", ["c"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Conv", ["m", "w2"], ["s"]),
             helper.make_node("HardSigmoid", ["s"], ["g"]),
             helper.make_node("Mul", ["c", "g"], ["y"])]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w1", rng.normal(0, 0.8, (8, 3, 3, 3))), _init("w2", rng.normal(0, 0.5, (8, 8, 1, 1)))])
    _agrees_in_float_and_int8(ort, tmp_path, model, rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32))


@pytest.mark.parametrize("repeats", [[1, 1, 2, 2], [2, 1, 1, 3], [1, 2, 1, 1]])
def test_tile_agrees_with_onnxruntime_in_float_and_int8(ort, tmp_path, repeats):
    """Keras UpSampling2D exports as Tile: float within 1e-5, quantized (QDQ) within 1 LSB per layer."""
    rng = np.random.default_rng(11)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1] * 4),
             helper.make_node("Tile", ["c", "repeats"], ["t"]),
             helper.make_node("Conv", ["t", "w2"], ["y"])]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w1", rng.normal(0, 0.8, (4, 3, 3, 3))),
                          _init("w2", rng.normal(0, 0.5, (4, 4 * repeats[1], 1, 1))),
                          numpy_helper.from_array(np.array(repeats, np.int64), "repeats")])
    _agrees_in_float_and_int8(ort, tmp_path, model, rng.normal(0, 1, (1, 3, 5, 6)).astype(np.float32))


def test_slice_and_split_agree_with_onnxruntime_in_float_and_int8(ort, tmp_path):
    """Slice (negative and clamped bounds, channel and spatial axes) and Split after a conv (NHWC inside)."""
    rng = np.random.default_rng(13)
    consts = {"starts": [1, -4], "ends": [7, 100], "axes": [1, 3], "split": [2, 4]}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1] * 4),
             helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["s"]),
             helper.make_node("Split", ["s", "split"], ["a", "b"], axis=1),
             helper.make_node("Conv", ["a", "wa"], ["ya"]),
             helper.make_node("Conv", ["b", "wb"], ["yb"]),
             helper.make_node("Add", ["ya", "yb"], ["y"])]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w1", rng.normal(0, 0.8, (8, 3, 3, 3))), _init("wa", rng.normal(0, 0.5, (4, 2, 1, 1))),
                          _init("wb", rng.normal(0, 0.5, (4, 4, 1, 1)))]
                         + [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()])
    _agrees_in_float_and_int8(ort, tmp_path, model, rng.normal(0, 1, (1, 3, 5, 6)).astype(np.float32))


def test_int8_input_through_a_layout_transpose(ort, tmp_path):
    """tf2onnx puts the NHWC->NCHW Transpose before the input's QuantizeLinear: the input still becomes int8."""
    from onnxruntime.quantization import QuantFormat, QuantType

    rng = np.random.default_rng(17)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4), helper.make_node("Relu", ["c"], ["y"])]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
                         [_init("w", rng.normal(0, 1, (4, 3, 3, 3)))])
    quantized = _quantize(model, tmp_path, QuantFormat.QDQ, QuantType.QInt8, False, 0, QuantType.QInt8)
    quantized.graph.input[0].CopyFrom(helper.make_tensor_value_info("x_nhwc", TensorProto.FLOAT, [1, 6, 6, 3]))
    quantized.graph.node.insert(0, helper.make_node("Transpose", ["x_nhwc"], ["x"], perm=[0, 3, 1, 2]))
    graph = load(quantized)
    assert graph.input_types()["x_nhwc"].dtype.name == "INT8"
    io = graph.metadata["io_quantization"]
    q = rng.integers(-128, 128, (1, 6, 6, 3)).astype(np.int8)
    x = ((q.astype(np.float32) - io["x_nhwc"]["zero_point"]) * np.float32(io["x_nhwc"]["scale"])).astype(np.float32)
    session = ort.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = np.rint(session.run(None, {"x_nhwc": x})[0] / io["y"]["scale"]) + io["y"]["zero_point"]
    got = tosac.compile(graph, "host").run({"x_nhwc": q})["y"]
    np.testing.assert_array_equal(got, run(graph, {"x_nhwc": q})["y"])
    assert np.abs(got.astype(np.int32) - expected).max() <= 1


def test_comparisons_not_and_where_agree_with_onnxruntime(ort):
    """x < t, not, where on a conv's output (NHWC inside): an exact float32 result, bool masks in between."""
    rng = np.random.default_rng(19)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4),
             helper.make_node("Less", ["c", "t"], ["lt"]),
             helper.make_node("Not", ["lt"], ["ge"]),
             helper.make_node("Equal", ["c", "c"], ["same"]),
             helper.make_node("GreaterOrEqual", ["c", "t"], ["ge2"]),
             helper.make_node("Where", ["ge", "c", "t"], ["y1"]),
             helper.make_node("Where", ["ge2", "t", "c"], ["y2"]),
             helper.make_node("Where", ["same", "y1", "y2"], ["y3"]),
             helper.make_node("Add", ["y3", "y2"], ["y"])]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w", rng.normal(0, 1, (4, 3, 3, 3))), _init("t", rng.normal(0, 1, (4, 1, 1)))])
    x = rng.normal(0, 1, (1, 3, 5, 6)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    graph = load(model, io="float")
    np.testing.assert_allclose(run(graph, {"x": x})["y"], expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tosac.compile(graph, "host").run({"x": x})["y"], expected[0], rtol=1e-5, atol=1e-5)


def test_onnx_node_tests_of_claimed_ops_pass():
    from tosac.conformance.onnx_nodes import KNOWN_BAD_DATA, run_suite

    results, _ = run_suite("host")
    by_name = {r.name: r for r in results}
    failed = [f"{r.name}: {r.message}" for r in results if r.outcome == "failed"]
    assert not failed, failed
    for name in ("test_qlinearconv", "test_convinteger_with_padding", "test_matmulinteger",
                 "test_qlinearmatmul_2D_uint8_float32", "test_qlinearmatmul_3D_uint8_float32",
                 "test_dequantizelinear", "test_quantizelinear", "test_conv_with_autopad_same", "test_gemm_all_attributes",
                 "test_dynamicquantizelinear", "test_dynamicquantizelinear_min_adjusted", "test_layer_normalization_4d_axis1",
                 "test_gelu_default_1", "test_gelu_tanh_1", "test_gather_negative_indices", "test_shape", "test_div",
                 "test_sqrt", "test_pow", "test_expand_dim_changed"):
        assert by_name[name].outcome == "passed", by_name[name]
    for name in KNOWN_BAD_DATA:
        assert "differs from the bad data" in by_name[name].message
    skipped = [r for r in results if r.outcome == "skipped" and r.name not in KNOWN_BAD_DATA]
    assert all(r.message.startswith(("unsupported: node ", "unsupported: output ", "unsupported: input "))
               for r in skipped), skipped


# ----------------------------------------------------------------------------- bad input

def test_truncated_and_garbage_files_are_frontend_errors(tmp_path):
    rng = np.random.default_rng(0)
    model = _float_model([helper.make_node("Conv", ["x", "w"], ["y"])],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w", rng.normal(0, 1, (4, 3, 3, 3)))])
    data = model.SerializeToString()
    for i, blob in enumerate([data[: len(data) // 2], b"\x00garbage" * 10, b""]):
        path = tmp_path / f"bad{i}.onnx"
        path.write_bytes(blob)
        with pytest.raises(FrontendError, match=f"bad{i}.onnx"):
            load(path)
    with pytest.raises(FrontendError, match="no such ONNX file"):
        load(tmp_path / "missing.onnx")


def test_unsupported_op_names_the_node():
    model = _float_model([helper.make_node("Relu", ["x"], ["r"], name="first"),
                          helper.make_node("Hardmax", ["r"], ["y"], name="the_hardmax")],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [])
    with pytest.raises(UnsupportedError, match="node 'the_hardmax' \\(Hardmax\\).*not supported"):
        load(model)


def test_unsupported_attribute_names_the_node():
    model = _float_model([helper.make_node("Pad", ["x", "p"], ["y"], name="reflector", mode="reflect")],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [numpy_helper.from_array(np.array([1, 1, 1, 1], np.int64), "p")])
    with pytest.raises(UnsupportedError, match="node 'reflector' \\(Pad\\).*reflect"):
        load(model)


def test_dynamic_dimension_needs_a_value():
    model = _float_model([helper.make_node("Relu", ["x"], ["y"])],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [])
    with pytest.raises(FrontendError, match="input 'x': dimension 0 is dynamic \\('batch'\\)"):
        load(model)
    graph = load(model, input_shapes={"x": [4, 3]})
    assert graph.tensors["x"].type.shape == (4, 3)


def test_old_opsets_are_upgraded_and_say_so():
    """Opset 10-12 files (the ONNX Model Zoo's int8 models are opset 12) load through onnx's version converter:
    Clip's attributes become inputs, Squeeze's axes an input; the result is what the old opset means."""
    model = _float_model([helper.make_node("Clip", ["x"], ["c"], min=-1.0, max=2.0),
                          helper.make_node("Squeeze", ["c"], ["y"], axes=[0])],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [], opset=10)
    with pytest.warns(OpsetUpgradeWarning, match="opset 10 upgraded to opset 13"):
        graph = load(model)
    assert graph.metadata["onnx_upgraded_from_opset"] == 10
    x = np.array([[-3.0, 0.5, 1.5, 7.0]], np.float32)
    np.testing.assert_array_equal(run(graph, {"x": x})["y"], [-1.0, 0.5, 1.5, 2.0])
    unknown = _float_model([helper.make_node("NoSuchOp", ["x"], ["y"])],
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [], opset=9)
    with pytest.raises(FrontendError, match="opset 9 is older than 13 and onnx.version_converter cannot"):
        load(unknown)


def test_external_data_is_read_only_from_the_model_folder(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (64, 64)).astype(np.float32)
    model = _float_model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_init("w", w)])
    folder = tmp_path / "model"
    folder.mkdir()
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, folder / "m.onnx")
    graph = load(folder / "m.onnx", io="float")
    x = rng.normal(0, 1, (2, 64)).astype(np.float32)
    np.testing.assert_allclose(run(graph, {"x": x})["y"], x @ w, rtol=1e-5, atol=1e-5)

    (tmp_path / "secret.bin").write_bytes(w.tobytes())
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    onnx.save(model, folder / "escape.onnx")
    with pytest.raises(FrontendError, match="outside the model's folder"):
        load(folder / "escape.onnx")
    (folder / "weights.bin").write_bytes(b"short")
    with pytest.raises(FrontendError, match="truncated"):
        load(folder / "m.onnx")


@pytest.mark.parametrize("weights", ["QInt4", "QUInt4"])
def test_four_bit_weights_agree_with_onnxruntime(ort, tmp_path, weights):
    """ORT's QDQ quantizer with 4-bit weights (opset 21 INT4/UINT4 DequantizeLinear): the weights widen to int8
    value for value, so the int8 kernels compute exactly what ORT does (within 1 LSB per layer)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Flatten", ["r1"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    model = _float_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                         [_init("w1", rng.normal(0, 0.5, (8, 3, 3, 3))), _init("b1", rng.normal(0, 0.2, 8)),
                          _init("w2", rng.normal(0, 0.1, (10, 288))), _init("b2", rng.normal(0, 0.2, 10))], opset=21)
    quantized = _quantize(model, tmp_path, QuantFormat.QDQ, QuantType.QInt8, True, 0, getattr(QuantType, weights))
    four_bit = {TensorProto.INT4, TensorProto.UINT4}
    assert any(t.data_type in four_bit for t in quantized.graph.initializer), "ORT should store 4-bit weights"
    first = first_difference(compare_layers(quantized, draws=5, seed=0, target="host"))
    assert first is None or first.max_diff <= 1, first


def test_every_onnx_node_test_imports_or_gives_a_typed_error():
    """All of ONNX's node tests (claimed ops or not, every opset, training and ml domains): the frontend imports
    each or raises a TosacError naming what it cannot do — never another exception."""
    import warnings

    from tosac.conformance.onnx_nodes import node_test_root
    from tosac.errors import TosacError

    outcomes = {"imported": 0, "refused": 0}
    for folder in sorted(node_test_root().iterdir()):
        model = onnx.load(str(folder / "model.onnx"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load(model, io="float")
            outcomes["imported"] += 1
        except TosacError:
            outcomes["refused"] += 1
    assert outcomes["imported"] > 400, outcomes        # 419 with onnx 1.21 (inputs unbound: no constants)

"""ONNX Resize and Upsample as TOSA RESIZE: every mode combination against ONNX Runtime (float nearest bit for bit,
float linear within 1e-5, int8 nearest exactly, int8 linear within 1 LSB), compiled host code bit-exact with the
reference interpreter, typed refusals naming the attribute, and ONNX's own node tests."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import tosac
from tosac.conformance.onnx_agreement import compare_layers, first_difference
from tosac.errors import UnsupportedError
from tosac.frontends.onnx import load
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run

TRANSFORMS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
              "tf_half_pixel_for_nn"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
# Why an axis may be refused (besides the unsupported attributes): float rounding decides a tie, a length is
# fractional, the size does not change, or TOSA's ranges are exceeded.
REFUSALS = ("decides differently", "rounding boundary", "fractional", "does not change", "TOSA RESIZE cannot",
            "rows in float32")


@pytest.fixture(scope="module")
def ort(require_module):
    """ONNX Runtime (the 'test' extra): the peer every result is compared with."""
    return require_module("onnxruntime", extra="test")


def _resize_model(shape, attrs: dict, *, scales=None, sizes=None, opset: int = 19, elem=TensorProto.FLOAT,
                  op: str = "Resize") -> onnx.ModelProto:
    inits, inputs = [], ["x"]
    if op == "Upsample" or opset < 11:                               # (X, scales)
        inputs.append("scales")
    else:
        inputs += ["", "scales" if scales is not None else ""] + (["sizes"] if sizes is not None else [])
    if scales is not None:
        inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
    if sizes is not None:
        inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
    node = helper.make_node(op, inputs, ["y"], name="resize", **attrs)
    graph = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", elem, list(shape))],
                              [helper.make_tensor_value_info("y", elem, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort_run(ort, model: onnx.ModelProto, feed: dict) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]
                                ).run(None, feed)[0]


def _compiled_matches_reference(graph, feed: dict) -> None:
    want = run(graph, feed)
    got = tosac.compile(graph, "host").run(feed)
    for name in graph.outputs:
        np.testing.assert_array_equal(got[name], want[name])


def _check_float(ort, model: onnx.ModelProto, x: np.ndarray, nearest: bool) -> bool:
    """True when the model imports and agrees with ONNX Runtime (nearest: bit for bit, since every value is a
    copy; linear: within 1e-5); False when it is refused for one of the documented reasons."""
    try:
        graph = load(model, io="float")
    except UnsupportedError as exc:
        assert "node 'resize'" in str(exc) and any(r in str(exc) for r in REFUSALS), exc
        return False
    want, got = _ort_run(ort, model, {"x": x}), run(graph, {"x": x})["y"]
    assert got.shape == want.shape
    if nearest:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    return True


def _distinct(shape) -> np.ndarray:
    """Values that tell every input element apart (a wrong row or column cannot go unnoticed)."""
    return (np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) * np.float32(0.5) - 7)


# ----------------------------------------------------------------------------- float, every combination
# Cases no mode combination may refuse: scales that are exact in float32 (so no implementation rounds a tie
# differently) and whole scaled lengths. (h, w), scales or None, sizes or None.
PLAIN = [((4, 5), [1, 1, 2, 2], None), ((8, 6), [1, 1, 0.5, 0.5], None), ((4, 6), [1, 1, 3, 1.5], None),
         ((4, 5), None, [1, 2, 8, 10]), ((8, 6), None, [1, 2, 4, 3]), ((3, 4), [1, 1, 1, 4], None)]


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
def test_nearest_picks_onnxruntimes_rows(ort, transform, nearest_mode):
    """Every nearest_mode with every coordinate transform is one TOSA RESIZE NEAREST (offsets shift its
    ties-up rounding to ties-down, floor or ceil), bit for bit ONNX Runtime's result."""
    attrs = dict(mode="nearest", coordinate_transformation_mode=transform, nearest_mode=nearest_mode)
    for (h, w), scales, sizes in PLAIN:
        model = _resize_model((1, 2, h, w), attrs, scales=scales, sizes=sizes)
        x = _distinct((1, 2, h, w))
        if transform == "half_pixel_symmetric" and scales != [1, 1, 2, 2]:
            _check_float(ort, model, x, nearest=True)      # refused where a position sits on a rounding boundary
        else:
            assert _check_float(ort, model, x, nearest=True), (scales, sizes)
    graph = load(_resize_model((1, 2, 4, 5), attrs, scales=[1, 1, 2, 2]), io="float")
    assert [op.name for op in graph.ops if op.name not in ("CONST", "CONST_SHAPE")].count("RESIZE") == 1
    _compiled_matches_reference(graph, {"x": _distinct((1, 2, 4, 5))})


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_linear_is_bilinear_within_1e5_of_onnxruntime(ort, transform):
    attrs = dict(mode="linear", coordinate_transformation_mode=transform)
    rng = np.random.default_rng(1)
    for (h, w), scales, sizes in PLAIN + [((5, 7), [1, 1, 1.3333334, 0.6], None), ((6, 5), None, [1, 2, 7, 3])]:
        model = _resize_model((1, 2, h, w), attrs, scales=scales, sizes=sizes)
        x = rng.normal(0, 3, (1, 2, h, w)).astype(np.float32)
        supported = _check_float(ort, model, x, nearest=False)
        assert supported or scales == [1, 1, 1.3333334, 0.6], (scales, sizes)   # (fractional lengths)
    graph = load(_resize_model((1, 2, 5, 7), attrs, sizes=[1, 2, 10, 9]), io="float")
    _compiled_matches_reference(graph, {"x": rng.normal(0, 3, (1, 2, 5, 7)).astype(np.float32)})


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TRANSFORMS), st.sampled_from(NEAREST_MODES + ["linear"]), st.integers(1, 12),
       st.integers(1, 12), st.sampled_from([0.25, 0.3, 0.5, 0.6, 0.75, 1.25, 1.3333334, 1.5, 2.0, 2.5, 3.0, 4.0]),
       st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), st.booleans(), st.integers(1, 24))
def test_any_shape_and_scale_agrees_or_is_refused(ort, transform, mode, h, w, sy, sx, by_size, size):
    """Random shapes, scales and sizes: each imports and agrees with ONNX Runtime, or is refused with a reason
    (ties that float32 and float64 round apart, fractional lengths, unchanged sizes, TOSA's ranges)."""
    attrs = dict(mode="linear", coordinate_transformation_mode=transform) if mode == "linear" else \
        dict(mode="nearest", coordinate_transformation_mode=transform, nearest_mode=mode)
    if by_size:
        model = _resize_model((1, 2, h, w), attrs, sizes=[1, 2, size, max(1, int(w * sx))])
    elif int(np.float32(sy) * np.float32(h)) < 1 or int(np.float32(sx) * np.float32(w)) < 1:
        return                                                           # an empty output
    else:
        model = _resize_model((1, 2, h, w), attrs, scales=[1, 1, sy, sx])
    x = _distinct((1, 2, h, w)) if mode != "linear" else np.random.default_rng(h * w).normal(0, 3, (1, 2, h, w)
                                                                                            ).astype(np.float32)
    _check_float(ort, model, x, nearest=mode != "linear")


def test_nhwc_tensors_single_axes_and_ones(ort):
    """Any two axes of a 4-D tensor (here NHWC data, scales [1, 2, 3, 1]); one resized axis; an axis of length 1
    (every output row reads the same input row: edge copies where TOSA needs its positions inside the input)."""
    for shape, scales, mode in [((1, 4, 5, 3), [1, 2, 3, 1], "linear"), ((1, 4, 5, 3), [1, 2, 3, 1], "nearest"),
                                ((2, 3, 4, 5), [1, 1, 1, 2.5], "nearest"), ((1, 3, 1, 4), [1, 1, 5, 2], "linear"),
                                ((1, 3, 1, 4), [1, 1, 5, 2], "nearest"), ((1, 2, 5, 4), [1, 1, 3, 3], "nearest")]:
        attrs = dict(mode=mode, coordinate_transformation_mode="asymmetric")
        if mode == "nearest":
            attrs["nearest_mode"] = "ceil"                       # ceil reads past the last row: edge copies
        model = _resize_model(shape, attrs, scales=scales)
        x = _distinct(shape)
        assert _check_float(ort, model, x, nearest=mode == "nearest"), (shape, scales, mode)
        _compiled_matches_reference(load(model, io="float"), {"x": x})


def test_resize_between_convolutions_stays_nhwc(ort):
    """Conv -> Resize -> Conv: the resize works in the convolutions' NHWC layout, no TRANSPOSE in between."""
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1] * 4),
             helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="linear"),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(rng.normal(0, 0.8, (4, 3, 3, 3)).astype(np.float32), "w1"),
                               numpy_helper.from_array(rng.normal(0, 0.5, (4, 4, 1, 1)).astype(np.float32), "w2"),
                               numpy_helper.from_array(np.array([1, 1, 2, 1.5], np.float32), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.normal(0, 1, (1, 3, 5, 6)).astype(np.float32)
    imported = load(model, io="float")
    ops = [op.name for op in imported.ops]
    between = ops[ops.index("RESIZE") - 2: ops.index("RESIZE") + 2]
    assert "TRANSPOSE" not in between, ops
    np.testing.assert_allclose(run(imported, {"x": x})["y"], _ort_run(ort, model, {"x": x}), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- int8: QDQ and QOperator
def _int8_model(fmt: str, elem, attrs: dict, scales, out_quant: tuple[float, int], shape=(1, 3, 5, 6)
                ) -> onnx.ModelProto:
    """x (int8/uint8) -> [DequantizeLinear] -> Resize -> [QuantizeLinear] -> y: QDQ, or QOperator's Resize on
    the integers themselves."""
    storage = np.int8 if elem == TensorProto.INT8 else np.uint8
    zp_in = 3 if storage is np.int8 else 131
    inits = [numpy_helper.from_array(np.array(scales, np.float32), "scales"),
             numpy_helper.from_array(np.array(0.05, np.float32), "s_in"),
             numpy_helper.from_array(np.array(zp_in, storage), "z_in"),
             numpy_helper.from_array(np.array(out_quant[0], np.float32), "s_out"),
             numpy_helper.from_array(np.array(out_quant[1] + (0 if storage is np.int8 else 128), storage), "z_out")]
    if fmt == "QDQ":
        nodes = [helper.make_node("DequantizeLinear", ["x", "s_in", "z_in"], ["d"]),
                 helper.make_node("Resize", ["d", "", "scales"], ["r"], name="resize", **attrs),
                 helper.make_node("QuantizeLinear", ["r", "s_out", "z_out"], ["y"])]
    else:
        nodes, inits = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", **attrs)], inits[:1]
    graph = helper.make_graph(nodes, "int8", [helper.make_tensor_value_info("x", elem, list(shape))],
                              [helper.make_tensor_value_info("y", elem, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


INT8_MODES = [dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
              dict(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil"),
              dict(mode="linear", coordinate_transformation_mode="half_pixel"),
              dict(mode="linear", coordinate_transformation_mode="align_corners"),
              dict(mode="linear", coordinate_transformation_mode="asymmetric")]


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("elem", [TensorProto.INT8, TensorProto.UINT8])
@pytest.mark.parametrize("attrs", INT8_MODES, ids=lambda a: f"{a['mode']}-{a['coordinate_transformation_mode']}")
def test_int8_resize_agrees_with_onnxruntime_and_compiles_exactly(ort, fmt, elem, attrs):
    """Nearest moves the integers (equal to ONNX Runtime); linear is int8 BILINEAR + one RESCALE, within one
    step of ONNX Runtime (which rounds its float result, QDQ, or truncates it, QOperator)."""
    storage = np.int8 if elem == TensorProto.INT8 else np.uint8
    info = np.iinfo(storage)
    for scales in ([1, 1, 2, 2], [1, 1, 1.5, 0.5], [1, 1, 3, 2.5]):
        for out_quant in ((0.05, 3), (0.07, -5)) if fmt == "QDQ" else ((0.05, 3),):
            if attrs["coordinate_transformation_mode"] == "align_corners" and scales != [1, 1, 2, 2]:
                continue                                         # (fractional scaled lengths are refused)
            model = _int8_model(fmt, elem, attrs, scales, out_quant)
            graph = load(model)
            assert graph.input_types()["x"].dtype.name.lower() == storage.__name__
            for seed in range(3):
                x = np.random.default_rng(seed).integers(info.min, info.max + 1, (1, 3, 5, 6)).astype(storage)
                want, got = _ort_run(ort, model, {"x": x}), run(graph, {"x": x})["y"]
                assert got.dtype == want.dtype and got.shape == want.shape
                lsb = np.abs(got.astype(np.int64) - want).max()
                assert lsb <= (0 if attrs["mode"] == "nearest" else 1), (scales, out_quant, lsb)
            _compiled_matches_reference(graph, {"x": x})


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("elem", [TensorProto.INT8, TensorProto.UINT8])
@pytest.mark.parametrize("transform", ["half_pixel", "asymmetric", "align_corners"])
def test_int8_linear_equals_onnx_reference_where_no_tie_exists(fmt, elem, transform):
    """Scale 3: the bilinear weights are multiples of 1/n_y·1/n_x with n odd (1/9, 1/49, 1/119), so no sum is ever a
    tie and rounding to nearest has one answer: tosac's equals ONNX's reference evaluator (float, then
    QuantizeLinear; or its int8 Resize) element for element."""
    from onnx.reference import ReferenceEvaluator

    storage = np.int8 if elem == TensorProto.INT8 else np.uint8
    info = np.iinfo(storage)
    model = _int8_model(fmt, elem, dict(mode="linear", coordinate_transformation_mode=transform), [1, 1, 3, 3],
                        (0.05, 3), shape=(1, 2, 4, 5))
    graph, reference = load(model), ReferenceEvaluator(model)      # (ONNX's reference is slow: small tensors)
    for seed in range(2):
        x = np.random.default_rng(seed).integers(info.min, info.max + 1, (1, 2, 4, 5)).astype(storage)
        np.testing.assert_array_equal(run(graph, {"x": x})["y"], reference.run(None, {"x": x})[0])


def _quantize(model: onnx.ModelProto, tmp_path, fmt: str) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{"x": rng.normal(0, 1, (1, 3, 5, 6)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    src, dst = tmp_path / "float.onnx", tmp_path / f"{fmt}.onnx"
    onnx.save(model, src)
    quantize_static(str(src), str(dst), Reader(), quant_format=getattr(QuantFormat, fmt),
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    return onnx.load(str(dst))


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_onnxruntime_quantized_upsampling_net(ort, tmp_path, fmt, mode):
    """Conv -> Resize -> Conv quantized by ORT's quantizer: within 1 LSB of ORT per layer, the Resize itself
    (QOperator: Resize on int8) exactly for nearest and within 1 LSB for linear, compiled bit-exact."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1] * 4),
             helper.make_node("Resize", ["c", "", "scales"], ["r"], mode=mode),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(rng.normal(0, 0.8, (4, 3, 3, 3)).astype(np.float32), "w1"),
                               numpy_helper.from_array(rng.normal(0, 0.5, (4, 4, 1, 1)).astype(np.float32), "w2"),
                               numpy_helper.from_array(np.array([1, 1, 2, 1.5], np.float32), "scales")])
    quantized = _quantize(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path, fmt)
    resize = next(n for n in quantized.graph.node if n.op_type == "Resize")
    first = first_difference(compare_layers(quantized, draws=10, seed=0, target="host"))
    if not (fmt == "QOperator" and mode == "linear"):
        # (QOperator's int8 Resize is no compared layer: ORT truncates it where tosac rounds, so the conv after
        # it drifts by up to a few steps; the Resize itself is checked below.)
        assert first is None or first.max_diff <= 1, first
    # The Resize's own result (after its QuantizeLinear in QDQ; the int8 Resize output in QOperator), fed with the
    # int8 input ONNX Runtime's own QuantizeLinear makes.
    name = resize.output[0] if fmt == "QOperator" else next(
        n.output[0] for n in quantized.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == resize.output[0])
    x_q = next(n.output[0] for n in quantized.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    exposed = onnx.ModelProto.FromString(quantized.SerializeToString())
    exposed.graph.output.extend(helper.make_tensor_value_info(v, TensorProto.INT8, None) for v in (name, x_q))
    imported = load(exposed)
    for seed in range(5):
        x = np.random.default_rng(seed).normal(0, 1, (1, 3, 5, 6)).astype(np.float32)
        want, xq = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"]
                                        ).run([name, x_q], {"x": x})
        got = run(imported, {"x": xq})[name]
        assert np.abs(got.astype(np.int64) - want).max() <= (0 if mode == "nearest" else 1)
    _compiled_matches_reference(imported, random_inputs(imported.input_types(), 0))


# ----------------------------------------------------------------------------- old files: Upsample, Resize-10
@pytest.mark.parametrize("op,opset", [("Upsample", 9), ("Resize", 10)])
@pytest.mark.parametrize("mode,scales", [("nearest", [1, 1, 1.5, 2.5]), ("linear", [1, 1, 1.5, 2.5]),
                                         ("nearest", [1, 1, 3, 2]), ("linear", [1, 1, 2, 2])])
def test_old_opsets_keep_their_asymmetric_meaning(ort, op, opset, mode, scales):
    """onnx.version_converter turns Upsample-9 and Resize-10 (asymmetric coordinates, ONNX Runtime's truncating
    nearest) into Resize without coordinate_transformation_mode, whose default means half_pixel: the frontend
    restores the old meaning for files upgraded from opset <= 10, and agrees with ONNX Runtime on the original."""
    model = _resize_model((1, 2, 4, 5), dict(mode=mode), scales=scales, opset=opset, op=op)
    x = np.random.default_rng(4).normal(0, 1, (1, 2, 4, 5)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                           # the upgrade warning
        graph = load(model, io="float")
    np.testing.assert_allclose(run(graph, {"x": x})["y"], _ort_run(ort, model, {"x": x}), rtol=1e-6, atol=1e-6)


def test_resize10_downscaling_nearest_rounds_up(ort):
    model = _resize_model((1, 1, 7, 9), dict(mode="nearest"), scales=[1, 1, 0.5, 0.6], opset=10)
    x = _distinct((1, 1, 7, 9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = load(model, io="float")
    np.testing.assert_array_equal(run(graph, {"x": x})["y"], _ort_run(ort, model, {"x": x}))


# ----------------------------------------------------------------------------- fp32 TOSA RESIZE itself
def _random_fp32_resizes(count: int, seed: int, dtype: str = "FP32"):
    """Valid fp32 (or fp16) RESIZE graphs with random scale, offset and border (large n included: float
    fractions)."""
    from tosac.ir import DType
    from tosac.ir.builder import GraphBuilder
    from tosac.ir.ops import ResizeMode

    rng = np.random.default_rng(seed)
    made = 0
    while made < count:
        h, w = (int(v) for v in rng.integers(1, 8, 2))
        ns = [int(rng.choice([1, 2, 3, 7, 64, 1000, 2048])) for _ in range(2)]
        ds = [int(rng.integers(1, 16 * n)) for n in ns]
        offsets = [int(rng.integers(-n, n)) for n in ns]
        borders = []
        for size, n, d, off in zip((h, w), ns, ds, offsets):
            extent = (size - 1) * n - off                 # border makes (extent + border) a multiple of d
            low = -16 * n + (-extent + 16 * n) % d
            choices = [b for b in range(low, n, d) if extent + b >= 0]
            borders.append(int(rng.choice(choices)) if choices else None)
        if None in borders:
            continue
        g = GraphBuilder()
        x = g.input("x", DType[dtype], (1, h, w, 2))
        mode = (ResizeMode.NEAREST, ResizeMode.BILINEAR)[made % 2]
        g.output(g.resize(x, scale=(ns[0], ds[0], ns[1], ds[1]), offset=offsets, border=borders, mode=mode))
        made += 1
        yield g.build(), {"x": rng.normal(0, 100, (1, h, w, 2)).astype(DType[dtype].storage)}


def test_fp32_resize_reference_is_the_official_models(require_tosa_tools):
    """The reference interpreter's fp32 RESIZE computes in float32, operation by operation, as the official TOSA
    reference model does (fraction float(pos)/float(n) − floor, products and sums left to right): bit for bit."""
    from tosac.conformance.official_model import run_official

    for graph, feed in _random_fp32_resizes(60, seed=0):
        status, official = run_official(graph, feed, isolate=False)
        assert status == "TOSA_VALID"
        name = graph.outputs[0]
        np.testing.assert_array_equal(run(graph, feed)[name], official[name])


def test_fp32_resize_compiles_bit_exactly():
    for graph, feed in _random_fp32_resizes(12, seed=1):
        _compiled_matches_reference(graph, feed)


def test_fp16_resize_compiles_bit_exactly():
    """fp16 RESIZE (had no code generation; 17 official fp tests failed): nearest by the exact fraction,
    bilinear in f64 with one rounding to f16, as the reference."""
    for graph, feed in _random_fp32_resizes(16, seed=2, dtype="FP16"):
        _compiled_matches_reference(graph, feed)


# ----------------------------------------------------------------------------- refusals
def _refused(model: onnx.ModelProto, *words: str) -> None:
    with pytest.raises(UnsupportedError) as info:
        load(model, io="float")
    assert "node 'resize'" in str(info.value) and all(w in str(info.value) for w in words), info.value


def test_unsupported_combinations_name_the_attribute():
    for shape, attrs, scales, words in [
            ((1, 2, 4, 6), dict(mode="cubic"), [1, 1, 2, 2], ["mode 'cubic'"]),
            ((1, 2, 4, 6), dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"), [1, 1, 2, 2],
             ["coordinate_transformation_mode 'tf_crop_and_resize'"]),
            ((1, 2, 4, 6), dict(mode="linear", antialias=1), [1, 1, 0.5, 0.5], ["antialias=1"]),
            ((1, 2, 4, 6), dict(mode="nearest", antialias=1), [1, 1, 2, 2], ["antialias=1"]),
            ((1, 2, 4, 6), dict(mode="linear", exclude_outside=1), [1, 1, 2, 2], ["exclude_outside=1"]),
            ((1, 2, 4, 6), dict(mode="nearest", nearest_mode="round_half_even"), [1, 1, 2, 2],
             ["nearest_mode 'round_half_even'"]),
            ((1, 2, 4, 6), dict(mode="nearest", coordinate_transformation_mode="mirror"), [1, 1, 2, 2],
             ["coordinate_transformation_mode 'mirror'"]),
            ((1, 2, 4, 6), dict(mode="nearest"), [2, 1, 2, 2], ["resizing axes [0, 2, 3]"]),
            ((1, 2, 32, 6), dict(mode="linear"), [1, 1, 0.0625, 1], ["scale 0.0625", "TOSA RESIZE cannot"]),  # 1/16
            ((1, 2, 5, 6), dict(mode="linear", coordinate_transformation_mode="align_corners"), [1, 1, 1.5, 2],
             ["coordinate_transformation_mode 'align_corners'", "fractional"]),
            ((1, 2, 4, 6), dict(mode="linear"), [1, 1, 1.1, 1], ["scale 1.1", "does not change"])]:
        _refused(_resize_model(shape, attrs, scales=scales), *words)
    shape = (1, 2, 4, 6)
    # A tie that float64 and exact arithmetic round apart: scale 1.3333334 is 4/3, output row 2 sits at 1.5
    # exactly (ONNX Runtime's float32 agrees and reads row 2) but at 1.49999995 in float64 (ONNX's reference
    # evaluator reads row 1).
    _refused(_resize_model((1, 1, 3, 11), dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                                               nearest_mode="round_prefer_ceil"), scales=[1, 1, 1, 1.3333334]),
             "nearest_mode 'round_prefer_ceil'", "output row 2", "float64")
    _refused(_resize_model((1, 2, 3, 4, 5), dict(mode="nearest"), scales=[1, 1, 2, 2, 2]), "rank-5")
    _refused(_resize_model(shape, dict(mode="nearest"), scales=[1, 1, 2, 2], elem=TensorProto.INT32), "INT32")
    _refused(_resize_model(shape, dict(mode="linear"), scales=[1, 1, 2, 2], elem=TensorProto.INT16), "INT16")
    # Non-constant scales: a graph input.
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="resize", mode="nearest")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape)),
                                            helper.make_tensor_value_info("s", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    _refused(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), "scales", "constant")


# ----------------------------------------------------------------------------- ONNX's node tests
def test_onnx_node_tests_for_resize_and_upsample():
    """ONNX's own Resize/Upsample node tests on the host: the supported ones pass, the others (cubic,
    tf_crop_and_resize, antialias when downscaling, align_corners with a fractional scaled length) are refused
    with an UnsupportedError; none gives a wrong answer."""
    from tosac.conformance.onnx_nodes import run_suite

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                           # test_upsample_nearest is an opset-9 file
        results = {r.name: r for pattern in ("resize", "upsample") for r in run_suite("host", pattern)[0]}
    assert not [r for r in results.values() if r.outcome == "failed"], [
        f"{r.name}: {r.message}" for r in results.values() if r.outcome == "failed"]
    skipped = [r for r in results.values() if r.outcome == "skipped"]
    assert all(r.message.startswith("unsupported: node ") for r in skipped), skipped
    assert all(("cubic" in r.name or "tf_crop" in r.name or "antialias" in r.name or "align_corners" in r.name)
               for r in skipped), [r.name for r in skipped]
    passed = sorted(r.name for r in results.values() if r.outcome == "passed")
    for name in ("test_resize_upsample_scales_nearest", "test_resize_downsample_sizes_nearest_not_larger",
                 "test_resize_upsample_sizes_nearest_ceil_half_pixel", "test_resize_upsample_scales_linear",
                 "test_resize_downsample_sizes_linear_pytorch_half_pixel",
                 "test_resize_upsample_scales_linear_half_pixel_symmetric", "test_upsample_nearest"):
        assert name in passed, (name, results[name])

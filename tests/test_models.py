"""The example models: the shipped MLPerf Tiny ones and the generated zoo import, compile bit-exact, agree with
ONNX Runtime layer by layer, and the demo runs end to end."""
from __future__ import annotations

import os

import numpy as np
import pytest

import tosac
from tosac import models
from tosac.errors import TosacError
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run


# Generated families compiled in the default suite (EfficientNet-B0 and ResNet-50 with TOSAC_SLOW_MODELS=1).
ZOO = [name for name in models.names("generated")
       if name not in ("efficientnet_b0", "resnet50") or os.environ.get("TOSAC_SLOW_MODELS")]


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
@pytest.mark.parametrize("name", models.names("shipped"))
def test_model_compiles_bit_exact_on_the_host(name, fmt):
    graph = models.load(name, fmt)
    assert graph.input_types()[graph.inputs[0]].shape == models.MODELS[name].input_shape
    exe = tosac.compile(graph, "host")
    outputs = set()
    for seed in range(4):
        inputs = random_inputs(graph.input_types(), seed)
        expected, got = run(graph, inputs), exe.run(inputs)
        for out in graph.outputs:
            np.testing.assert_array_equal(got[out], expected[out])
        outputs.add(expected[graph.outputs[0]].tobytes())
    assert len(outputs) > 1, "the output does not depend on the input"


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_compiles_bit_exact_on_the_host(name, require_module):
    """Every generated family in every format it has imports, compiles and gives the reference's bits on inputs
    such as the model expects (images; token ids within the vocabulary); float models (and float outputs)
    agree to float rounding, since compiled float sums run in another order."""
    require_module("onnxruntime", extra="test")   # generates and quantizes the zoo on first use
    for fmt in models.MODELS[name].formats:
        graph = models.load(name, fmt)
        exe = tosac.compile(graph, "host")
        outputs = set()
        for inputs in models.sample_inputs(name, graph, count=2, seed=1):
            expected, got = run(graph, inputs), exe.run(inputs)
            for out in graph.outputs:
                if expected[out].dtype == np.float32:
                    scale = float(np.max(np.abs(expected[out])))
                    np.testing.assert_allclose(got[out], expected[out], rtol=1e-4, atol=1e-5 * scale,
                                               err_msg=f"{name} {fmt} {out}")
                else:
                    np.testing.assert_array_equal(got[out], expected[out], err_msg=f"{name} {fmt} {out}")
            outputs.add(expected[graph.outputs[0]].tobytes())
        assert len(outputs) > 1, f"{name} {fmt}: the output does not depend on the input"


@pytest.mark.parametrize("name", models.names("shipped"))
def test_model_agrees_with_onnxruntime_layer_by_layer(name, require_module):
    require_module("onnxruntime", extra="test")   # the agreement peer
    from tosac.conformance.onnx_agreement import compare_layers, first_difference

    layers = compare_layers(models.onnx_model(name), draws=3)
    first = first_difference(layers)
    assert first is None or first.max_diff <= 1, first
    inner = [layer for layer in layers if layer.op != "Softmax"]
    exact = sum(layer.equal for layer in inner) / sum(layer.total for layer in inner)
    assert exact >= 0.999, f"{exact:.4%} of quantized layer outputs equal ORT's: {layers}"


@pytest.mark.parametrize("target", ["aarch64-dotprod", "armv7"])
def test_kws_gives_identical_bits_on_arm(target, require_cross):
    require_cross(target)
    graph = models.load("kws")
    inputs = random_inputs(graph.input_types(), 3)
    expected = run(graph, inputs)
    got = tosac.compile(graph, target).run(inputs)
    for out in graph.outputs:
        np.testing.assert_array_equal(got[out], expected[out])


def test_models_api_errors():
    with pytest.raises(TosacError, match="no bundled model 'resnet152'; bundled models are kws, vww, ic, ad, "):
        models.load("resnet152")
    with pytest.raises(TosacError, match="unknown model format"):
        models.load("kws", "fp16")


def test_float_model_is_the_network_that_was_quantized():
    """The float network built in code has the same layers as the shipped quantized file."""
    quantized = models.onnx_model("ic")
    float_ops = [n.op_type for n in models.onnx_model("ic", "float").graph.node]
    quantized_ops = [n.op_type for n in quantized.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    assert quantized_ops == [op for op in float_ops if op != "Relu"]   # ORT folds Relu into the quantized range
    graph = models.load("ic", "float")
    x = np.random.default_rng(0).uniform(0, 1, models.MODELS["ic"].input_shape).astype(np.float32)
    probabilities = run(graph, {"input": x})[graph.outputs[0]]
    assert probabilities.shape == (1, 10) and abs(float(probabilities.sum()) - 1.0) < 1e-5


def test_rebuilt_model_matches_the_shipped_file(tmp_path, require_module):
    require_module("onnxruntime", extra="test")   # rebuilding quantizes with onnxruntime
    import onnx

    from tosac.models.build import build

    build(["kws"], tmp_path)
    shipped, rebuilt = models.onnx_model("kws"), onnx.load(str(tmp_path / "kws.qdq.onnx"))
    assert [n.op_type for n in rebuilt.graph.node] == [n.op_type for n in shipped.graph.node]
    assert {t.name for t in rebuilt.graph.initializer} == {t.name for t in shipped.graph.initializer}


def test_demo_runs_end_to_end(tmp_path, capsys):
    from tosac.app.demo import run_demo

    assert run_demo("kws", tmp_path, runs=5) == 0
    out = capsys.readouterr().out
    assert "bit-exact against the reference interpreter: YES" in out
    assert "all checks agree bit for bit" in out
    assert (tmp_path / "kws.tosa").stat().st_size > 10_000


def test_header_and_executable_state_the_models_scales():
    """A C user quantizes sensor data and reads results with the scales the header states."""
    from tosac.pipeline.artefacts import header_text
    from tosac.targets import get_target

    graph = models.load("kws")
    io = graph.metadata["io_quantization"]
    exe = tosac.compile(graph, "aarch64")
    assert exe.program.info["io_quantization"] == io
    header = header_text(graph, exe, get_target("aarch64"))
    for kind, names in (("INPUT", exe.program.inputs), ("OUTPUT", exe.program.outputs)):
        for index, name in enumerate(names):
            scale = float(header.split(f"#define MODEL_{kind}_{index}_SCALE ")[1].split("f\n")[0])
            zero_point = int(header.split(f"#define MODEL_{kind}_{index}_ZERO_POINT (")[1].split(")")[0])
            assert np.float32(scale) == np.float32(io[name]["scale"]) and zero_point == io[name]["zero_point"], name

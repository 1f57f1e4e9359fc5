"""The bundled networks as int8 TFLite files (tosac.models' ``tflite`` form) against LiteRT's reference kernels.

Each network's QDQ ONNX model is written as a TFLite flatbuffer by
:mod:`tosac.models.tflite_export`; LiteRT (``BUILTIN_REF``) runs it and every
output element must equal tosac's reference interpreter and compiled code, on
image-like sample inputs and on uniform random int8 inputs, on the host and
(the MLPerf Tiny networks; with ``TOSAC_SLOW_MODELS=1`` the zoo too) on AArch64
and ARMv7 under qemu. resnet50 and efficientnet_b0 are generated only with
``TOSAC_SLOW_MODELS=1``, as in test_models_zoo.py.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tflite_writer import check, encoder_model, random_inputs, run_litert  # noqa: E402

import tosac  # noqa: E402
from tosac import models  # noqa: E402
from tosac.errors import TosacError  # noqa: E402
from tosac.frontends.tflite.reader import read_model  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402

slow = pytest.mark.skipif(os.environ.get("TOSAC_SLOW_MODELS") != "1",
                          reason="generating resnet50 / efficientnet_b0 takes 15-30 s: set TOSAC_SLOW_MODELS=1")
SHIPPED = ["kws", "vww", "ic", "ad"]
GENERATED = ["mobilenet_v2", "mobilenet_v3_small", "resnet18", "yolo_tiny"]
NETWORKS = SHIPPED + GENERATED + [pytest.param(n, marks=slow) for n in ("efficientnet_b0", "resnet50")]
# Cross-compiling a zoo network cold takes 30-50 s per ARM target: the zoo runs on ARM with TOSAC_SLOW_MODELS=1.
ARM_NETWORKS = SHIPPED + [pytest.param(n, marks=slow) for n in GENERATED]


def _feeds(name: str, graph) -> list[dict[str, np.ndarray]]:
    """Two image-like (or, for ad, spectrogram-like) samples and two uniform random int8 inputs."""
    rng = np.random.default_rng(5)
    return models.sample_inputs(name, graph, count=2) + \
        [dict(zip(graph.main.inputs, random_inputs(graph, rng))) for _ in range(2)]


def _compare(litert, name: str, targets: tuple[str, ...]) -> None:
    path = models.path(name, "tflite")
    data = path.read_bytes()
    graph = tosac.frontends.tflite.load(data)
    compiled = {t: tosac.compile(graph, t) for t in targets}
    for k, feed in enumerate(_feeds(name, graph)):
        want = run_litert(litert, data, [feed[n] for n in graph.main.inputs])
        ref = interpreter.run(graph, feed)
        got = {t: exe.run(feed) for t, exe in compiled.items()}
        for i, out in enumerate(graph.main.outputs):
            assert len(np.unique(want[i])) > 1 or want[i].size == 1, f"{name}: LiteRT's output {i} is constant"
            bad = np.flatnonzero(ref[out] != want[i])
            assert bad.size == 0, f"{name} input {k} output {i}: the reference interpreter differs from LiteRT " \
                                  f"at {bad.size}/{want[i].size} elements"
            for t in targets:
                np.testing.assert_array_equal(got[t][out], want[i], err_msg=f"{name}: {t} code differs from LiteRT")


@pytest.mark.parametrize("name", NETWORKS)
def test_network_is_bit_exact_with_litert_reference(litert, name):
    _compare(litert, name, ("host",))


@pytest.mark.parametrize("name", ARM_NETWORKS)
@pytest.mark.parametrize("arm", ["aarch64", "armv7"])
def test_network_on_arm(litert, require_cross, arm, name):
    require_cross(arm)
    _compare(litert, name, ("host", arm))


@pytest.mark.parametrize("target", ["host", "aarch64", "armv7"])
def test_encoder_with_batch_matmul_softmax_and_gelu(litert, require_cross, target):
    """A 2-layer transformer encoder written as TensorFlow's converter writes one (tests/tflite_writer.py)."""
    if target != "host":
        require_cross(target)
    check(litert, encoder_model(), seeds=(0, 1, 2), targets=("host",) if target == "host" else ("host", target))


def test_tflite_form_is_nhwc_with_the_qdq_models_quantization():
    """The TFLite file keeps the QDQ model's input quantization and turns NCHW into NHWC."""
    graph = models.load("mobilenet_v2", "tflite")
    onnx_graph = models.load("mobilenet_v2", "qdq")
    (name,) = graph.main.inputs
    assert tuple(graph.main.type_of(name).shape) == (1, 96, 96, 3)
    (onnx_name,) = onnx_graph.main.inputs
    assert graph.metadata["io_quantization"][name]["scale"] == \
        pytest.approx(onnx_graph.metadata["io_quantization"][onnx_name]["scale"], rel=1e-7)


def test_sample_inputs_follow_the_graph_layout():
    graph = models.load("mobilenet_v2", "tflite")
    (feed,) = models.sample_inputs("mobilenet_v2", graph, count=1)
    onnx_graph = models.load("mobilenet_v2", "qdq")
    (onnx_feed,) = models.sample_inputs("mobilenet_v2", onnx_graph, count=1)
    np.testing.assert_array_equal(next(iter(feed.values())), next(iter(onnx_feed.values())).transpose(0, 2, 3, 1))


def test_damaged_cached_tflite_is_rebuilt(tmp_path, monkeypatch):
    """A truncated cached .tflite is not trusted: it is written again, whole."""
    monkeypatch.setenv("TOSAC_CACHE_DIR", str(tmp_path))
    from tosac.models import zoo
    path = models.path("mobilenet_v3_small", "tflite")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    zoo._checked.clear()
    assert models.path("mobilenet_v3_small", "tflite").read_bytes() == good
    assert read_model(path).description.startswith("tosac model mobilenet_v3_small")


def test_transformer_has_no_tflite_form():
    with pytest.raises(TosacError, match="no 'tflite' form"):
        models.path("bert_tiny", "tflite")

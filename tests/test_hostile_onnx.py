"""Hostile ONNX files: attributes that crash onnx's C++ shape inference, external data that lies about its
size or location, outputs nobody produces. Each must be a typed error naming what and where — never a signal,
a MemoryError, or a raw OSError/ValueError/KeyError."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tosac.errors import FrontendError, TosacError
from tosac.frontends.onnx import load

F, U8 = TensorProto.FLOAT, TensorProto.UINT8

# (label, op, attributes, opset, expected words in the message). Every one of these killed the process with
# SIGFPE/SIGSEGV inside onnx 1.21's shape inference (or would overflow it) before attributes were checked.
CRASHERS = [
    ("conv-strides-0", "Conv", {"strides": [0, 0]}, 17, ["strides", "[0, 0]"]),
    ("conv-strides-0-opset11", "Conv", {"strides": [0, 0]}, 11, ["strides", "[0, 0]"]),
    ("maxpool-strides-0", "MaxPool", {"kernel_shape": [2, 2], "strides": [0, 0]}, 17, ["strides"]),
    ("avgpool-strides-0", "AveragePool", {"kernel_shape": [2, 2], "strides": [0, 0]}, 17, ["strides"]),
    ("lppool-strides-0", "LpPool", {"kernel_shape": [2, 2], "strides": [0, 0]}, 18, ["strides"]),
    ("convinteger-strides-0", "ConvInteger", {"strides": [0, 0]}, 17, ["strides"]),
    ("qlinearconv-strides-0", "QLinearConv", {"strides": [0, 0]}, 17, ["strides"]),
    ("deformconv-strides-0", "DeformConv", {"strides": [0, 0]}, 19, ["strides"]),
    ("conv-strides-negative", "Conv", {"strides": [-1, -1]}, 17, ["strides", "-1"]),
    ("conv-dilations-0", "Conv", {"dilations": [0, 0]}, 17, ["dilations"]),
    ("conv-kernel-0", "Conv", {"kernel_shape": [0, 0]}, 17, ["kernel_shape"]),
    ("conv-pads-negative", "Conv", {"pads": [-1, -1, -1, -1]}, 17, ["pads"]),
    ("conv-pads-odd-length", "Conv", {"pads": [1, 1, 1]}, 17, ["pads"]),
    ("conv-group-0", "Conv", {"group": 0}, 17, ["group"]),
    ("convtranspose-strides-0", "ConvTranspose", {"strides": [0, 0]}, 17, ["strides"]),
    ("convtranspose-output-padding", "ConvTranspose", {"output_padding": [-1, -1]}, 17, ["output_padding"]),
    ("maxpool-kernel-negative", "MaxPool", {"kernel_shape": [-2, 2]}, 17, ["kernel_shape"]),
    ("maxpool-strides-length", "MaxPool", {"kernel_shape": [2, 2], "strides": [1, 1, 1]}, 17, ["strides"]),
    ("depthtospace-blocksize-huge", "DepthToSpace", {"blocksize": 1 << 40}, 17, ["blocksize"]),
    ("spacetodepth-blocksize-0", "SpaceToDepth", {"blocksize": 0}, 17, ["blocksize"]),
    ("scan-no-body", "Scan", {"num_scan_inputs": 1}, 17, ["body"]),
]

_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from tosac.frontends.onnx import load

    F, U8 = TensorProto.FLOAT, TensorProto.UINT8
    INPUTS = {
        "Conv": [("x", F, [1, 4, 8, 8])], "ConvTranspose": [("x", F, [1, 4, 8, 8])],
        "ConvInteger": [("x", U8, [1, 4, 8, 8])],
        "QLinearConv": [("x", U8, [1, 4, 8, 8])], "DeformConv": [("x", F, [1, 4, 8, 8]), ("off", F, [1, 8, 7, 7])],
        "Scan": [("x", F, [2, 3])], "DepthToSpace": [("x", F, [1, 4, 8, 8])],
    }
    def weights(op):
        w = lambda shape, dt=np.float32: numpy_helper.from_array(np.ones(shape, dt), "w")
        s = lambda name: numpy_helper.from_array(np.array(0.5, np.float32), name)
        z = lambda name: numpy_helper.from_array(np.array(0, np.uint8), name)
        if op in ("Conv", "DeformConv"):
            return ["w"], [w((2, 4, 2, 2))]
        if op == "ConvTranspose":
            return ["w"], [w((4, 2, 2, 2))]
        if op == "ConvInteger":
            return ["w"], [w((2, 4, 2, 2), np.uint8)]
        if op == "QLinearConv":
            return (["xs", "xz", "w", "ws", "wz", "ys", "yz"],
                    [s("xs"), z("xz"), w((2, 4, 2, 2), np.uint8), s("ws"), z("wz"), s("ys"), z("yz")])
        return [], []
    for label, op, attrs, opset in json.loads(sys.argv[1]):
        inputs = INPUTS.get(op, [("x", F, [1, 4, 8, 8])])
        extra, inits = weights(op)
        names = [inputs[0][0]] + extra + [n for n, _, _ in inputs[1:]]
        if op == "QLinearConv":
            names = ["x"] + extra
        node = helper.make_node(op, names, ["y"], name="bad_node", **attrs)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                                  [helper.make_tensor_value_info("y", F, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        print(json.dumps(["start", label]), flush=True)
        try:
            load(model, io="float")
            outcome = ["loaded", ""]
        except Exception as exc:
            outcome = [type(exc).__name__, str(exc)]
        print(json.dumps([label] + outcome), flush=True)
""")


def test_attributes_that_crash_onnx_shape_inference_are_refused_first():
    """One child process loads every crasher in turn: a signal kills it (and fails the test, naming the case)."""
    cases = [[label, op, attrs, opset] for label, op, attrs, opset, _ in CRASHERS]
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cases)], capture_output=True, text=True,
                          timeout=300)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[")]
    started = [line[1] for line in lines if line[0] == "start"]
    assert proc.returncode == 0, (f"the process died (return code {proc.returncode}) loading "
                                  f"'{started[-1] if started else '?'}': {proc.stderr[-2000:]}")
    outcomes = {line[0]: line[1:] for line in lines if line[0] != "start"}
    for label, op, attrs, _, words in CRASHERS:
        kind, message = outcomes[label]
        assert kind in ("FrontendError", "UnsupportedError"), (label, kind, message)
        assert "bad_node" in message and op in message, (label, message)
        for word in words:
            assert word in message, (label, word, message)


def test_good_spatial_attributes_still_load():
    w = numpy_helper.from_array(np.ones((2, 4, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], dilations=[1, 1], pads=[1, 1, 1, 1],
                            kernel_shape=[3, 3], group=1)
    pool = helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[1, 1])
    graph = helper.make_graph([node, pool], "g", [helper.make_tensor_value_info("x", F, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", F, None)], [w])
    load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), io="float")



def _rank_mismatch_models() -> dict[str, onnx.ModelProto]:
    """Conv shapes whose ranks disagree: onnx's bounds-checked C++ shape inference aborts (SIGABRT) on them
    (found by the fuzz suite: an initializer with an extra dimension, an input of rank 3 with 2-D pads)."""
    def model(x_shape, w_shape, pads):
        node = helper.make_node("Conv", ["x", "w"], ["y"], name="bad_node", pads=pads)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, x_shape)],
                                  [helper.make_tensor_value_info("y", F, None)],
                                  [numpy_helper.from_array(np.ones(w_shape, np.float32), "w")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return {"weights-rank-5": model([1, 3, 8, 8], (4, 3, 3, 3, 2), [1, 1, 1, 1]),
            "input-rank-3": model([1, 3, 6], (4, 3, 3, 3), [1, 1, 1, 1])}


@pytest.mark.parametrize("label", ["weights-rank-5", "input-rank-3"])
def test_models_that_abort_onnx_shape_inference_are_frontend_errors(label):
    with pytest.raises(FrontendError, match="shape inference"):
        load(_rank_mismatch_models()[label], io="float")


def test_a_signal_in_onnx_code_is_a_frontend_error_naming_it():
    from tosac.frontends.onnx.isolated import run_isolated

    with pytest.raises(FrontendError, match="the pass died with SIGABRT"):
        run_isolated(os.abort, "the pass")
    with pytest.raises(FrontendError, match="the pass failed: ValueError: no"):
        run_isolated(lambda: (_ for _ in ()).throw(ValueError("no")), "the pass")
    assert run_isolated(lambda: b"x" * 1_000_000, "the pass") == b"x" * 1_000_000

# ---------------------------------------------------------------------------------------------- external data
def _external_model(folder, **entries: str) -> os.PathLike:
    """A MatMul model whose weight 'w' (16 float32) lives in ``weights.bin`` with the given external_data keys."""
    folder.mkdir(exist_ok=True)
    (folder / "weights.bin").write_bytes(np.arange(16, dtype=np.float32).tobytes())
    w = helper.make_tensor("w", F, [4, 4], vals=[])
    w.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "weights.bin", **entries}.items():
        w.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", F, [2, 4])],
                              [helper.make_tensor_value_info("y", F, None)], [w])
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("entries, words", [
    ({"length": str(10 ** 12)}, ["length", "1000000000000"]),
    ({"offset": "-8"}, ["offset", "-8"]),
    ({"offset": str(10 ** 15)}, ["offset", "beyond"]),
    ({"offset": "abc"}, ["offset", "abc"]),
    ({"length": "1e3"}, ["length", "1e3"]),
    ({"offset": "32", "length": "64"}, ["ends at byte 96"]),
    ({"location": "weights\0.bin"}, ["NUL"]),
    ({"location": "a" * 5000}, ["location"]),
    ({"location": "loop/x.bin"}, ["location"]),
], ids=["huge-length", "negative-offset", "huge-offset", "text-offset", "float-length", "past-end", "nul",
        "long-location", "symlink-loop"])
def test_external_data_lies_are_frontend_errors(tmp_path, entries, words):
    folder = tmp_path / "model"
    path = _external_model(folder, **entries)
    (folder / "loop").symlink_to(folder / "loop")
    with pytest.raises(FrontendError) as info:
        load(path, io="float")
    message = str(info.value)
    assert "tensor 'w'" in message, message
    for word in words:
        assert word in message, (word, message)


def test_external_data_that_is_honest_still_loads(tmp_path):
    path = _external_model(tmp_path / "model", offset="0", length="64")
    graph = load(path, io="float")
    assert graph is not None
    path = _external_model(tmp_path / "other")                 # no offset, no length: the whole file
    load(path, io="float")


def test_external_data_path_guard_is_kept(tmp_path):
    for location in ("../secret.bin", "/dev/zero", "/etc/passwd"):
        with pytest.raises(FrontendError, match="outside the model's folder"):
            load(_external_model(tmp_path / "model", location=location), io="float")


# ---------------------------------------------------------------------------------------------- outputs
def test_output_produced_by_no_node_is_a_frontend_error_naming_it():
    relu = helper.make_node("Relu", ["x"], ["r"])
    graph = helper.make_graph([relu], "g", [helper.make_tensor_value_info("x", F, [2, 3])],
                              [helper.make_tensor_value_info("r", F, [2, 3]),
                               helper.make_tensor_value_info("ghost", F, [2, 3])])
    with pytest.raises(FrontendError, match="'ghost'"):
        load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), io="float")


def test_empty_graph_with_an_output_is_a_frontend_error_naming_it():
    graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", F, [2, 3])],
                              [helper.make_tensor_value_info("nowhere", F, [2, 3])])
    with pytest.raises(FrontendError, match="'nowhere'"):
        load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), io="float")


def test_graph_without_outputs_is_a_typed_error():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"])], "g",
                              [helper.make_tensor_value_info("x", F, [2, 3])], [])
    with pytest.raises(TosacError):
        load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), io="float")


def test_an_input_passed_straight_through_still_loads():
    graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", F, [2, 3])],
                              [helper.make_tensor_value_info("x", F, [2, 3])])
    load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), io="float")

"""The ONNX agreement report (`tosac conformance onnx-agreement`): tosac's layers fed ONNX Runtime's own inputs
stay within 1 LSB of ORT, the counts add up, the figures are measured (a planted wrong layer and a tampered
ORT are seen), the CLI's JSON holds what its table prints, and bad input is one clear error."""
from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tosac import models
from tosac.app.cli import main
from tosac.conformance import onnx_agreement as agreement
from tosac.frontends.onnx import load
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run

# Ops whose differences are not requantization ties: ORT's int8 softmax is its own approximation.
NOT_TIES = ("Softmax", "QLinearSoftmax")


@pytest.fixture(scope="module")
def ort(require_module):
    return require_module("onnxruntime", extra="test")


@pytest.fixture(scope="module", params=["qdq", "qoperator"])
def kws_report(request, ort):
    fmt = request.param
    report = agreement.agreement_report(models.onnx_model("kws", fmt), models.onnx_model("kws", "float"),
                                        inputs=12, node_inputs=3, seed=1, labels=(f"kws.{fmt}", "kws.float"))
    return fmt, report


def _host_has_vnni() -> bool:
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    return bool(features.get("avx512vnni") or features.get("avxvnni"))


def _within_one_lsb_or_explained(report) -> None:
    """Every node within 1 LSB of the layer's float definition, and of ORT in both modes unless this CPU lacks
    VNNI (ORT's u8 x s8 kernels saturate) and the report says so."""
    assert report.host_vnni == _host_has_vnni()
    for row in report.nodes:
        if not row.compared:
            continue
        assert row.vs_float_path is not None and row.vs_float_path.max_lsb <= 1, row
        if row.max_lsb > 1:
            assert not report.host_vnni, row
            assert any(f"'{row.name}'" in f and "vpmaddubsw" in f for f in report.findings), report.findings


def test_every_node_is_within_one_lsb_of_onnxruntime_and_differences_are_ties(kws_report):
    fmt, report = kws_report
    _within_one_lsb_or_explained(report)
    for row in report.nodes:
        if row.compared and row.op not in NOT_TIES:
            # The project's claim: fed the same inputs, tosac and the float definition differ only at near ties.
            assert row.vs_float_path.near_ties == row.vs_float_path.differing, row
            if fmt == "qdq":
                # ORT's unoptimised QDQ path is that float path, rounded: it too differs only at near ties.
                assert row.vs_unoptimised.near_ties == row.vs_unoptimised.differing, row
    assert not any(row.error for row in report.nodes), [row.error for row in report.nodes]


def test_node_counts_add_up(kws_report):
    fmt, report = kws_report
    model = models.onnx_model("kws", fmt)
    quantizing = [n for n in model.graph.node if n.op_type == "QuantizeLinear" or n.op_type.startswith("QLinear")
                  or n.op_type == "QGemm"]
    assert [row.name for row in report.nodes] == [n.output[0] for n in quantizing]
    skipped = [row for row in report.nodes if row.skipped]
    assert [row.name for row in skipped] == [quantizing[0].output[0]]     # the input's QuantizeLinear
    # Each compared node saw its output's element count once per node input (shapes from ONNX's inference).
    float_shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                    for v in onnx.shape_inference.infer_shapes(models.onnx_model("kws", "float")).graph.value_info}
    size = {r.name: r.vs_unoptimised.elements for r in report.nodes if r.compared}
    assert size[report.nodes[1].name] == report.node_inputs * int(np.prod(float_shapes["conv1.relu"]))
    assert size[report.nodes[-1].name] == report.node_inputs * 12
    summary = report.to_json()["summary"]
    assert summary["layers"] == len(report.nodes) and summary["compared"] + summary["skipped"] == len(report.nodes)
    for key in ("vs_unoptimised", "vs_optimised", "ort_self"):
        stats = [getattr(r, key) for r in report.nodes if r.compared]
        assert summary[key]["elements"] == sum(size.values())
        assert summary[key]["differing"] == sum(s.differing for s in stats)
        assert summary[key]["nodes_differing"] == sum(s.differing > 0 for s in stats)
        for s in stats:
            assert 0 <= s.near_ties <= s.differing <= s.elements
            assert s.near_ties <= s.near_ties_all <= s.elements
            assert (s.max_lsb == 0) == (s.differing == 0)


def test_end_to_end_and_float_figures_are_measured(kws_report, ort):
    """Recomputed here from ORT and the interpreter directly: top-1 of tosac and ORT against the float model."""
    fmt, report = kws_report
    end = report.end_to_end
    assert end.classifier and end.inputs == 12 and [o.name for o in end.outputs] == ["softmax"]
    graph = load(models.onnx_model("kws", fmt))
    iq = graph.metadata["io_quantization"]["input"]
    float_session = ort.InferenceSession(models.onnx_model("kws", "float").SerializeToString(),
                                         providers=["CPUExecutionProvider"])
    quant_session = ort.InferenceSession(models.onnx_model("kws", fmt).SerializeToString(),
                                         providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    tosac_hits = ort_hits = 0
    for _ in range(end.inputs):
        x = random_inputs(graph.input_types(), rng)
        real = ((x["input"].astype(np.float32) - iq["zero_point"]) * np.float32(iq["scale"])).astype(np.float32)
        want = int(np.argmax(float_session.run(None, {"input": real})[0]))
        tosac_hits += int(np.argmax(run(graph, x)["softmax"])) == want
        ort_hits += int(np.argmax(quant_session.run(None, {"input": real})[0])) == want
    assert (end.top1_float_tosac, end.top1_float_ort_optimised) == (tosac_hits, ort_hits)
    for o in end.outputs:
        for d in (o.tosac_vs_optimised, o.tosac_vs_unoptimised, o.optimised_vs_unoptimised):
            assert d.total == end.inputs * 12 and 0 <= d.equal <= d.total


def test_ort_floor_is_computed_from_ort_runs(monkeypatch, ort):
    """ORT 'optimised' tampered to reverse the class scores: the floor and tosac's top-1 agreement with it follow
    what these runs give (counted here), not an assumed 100%."""
    real_session = agreement._session

    class Reversed:
        def __init__(self, session):
            self.session = session

        def run(self, names, feed):
            return [v[..., ::-1] for v in self.session.run(names, feed)]

    def session(model, mode):
        s = real_session(model, mode)
        return Reversed(s) if mode == "optimised" and [o.name for o in model.graph.output] == ["softmax"] else s

    monkeypatch.setattr(agreement, "_session", session)
    model = models.onnx_model("kws", "qdq")
    report = agreement.agreement_report(model, inputs=10, node_inputs=0, seed=3)
    graph = load(model)
    iq = graph.metadata["io_quantization"]["input"]
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    floor = tosac_agree = 0
    for _ in range(10):
        x = random_inputs(graph.input_types(), rng)
        real = ((x["input"].astype(np.float32) - iq["zero_point"]) * np.float32(iq["scale"])).astype(np.float32)
        y = plain.run(None, {"input": real})[0]
        floor += int(np.argmax(y) == np.argmax(y[..., ::-1]))
        tosac_agree += int(np.argmax(run(graph, x)["softmax"]) == np.argmax(y[..., ::-1]))
    assert report.end_to_end.top1_optimised_vs_unoptimised == floor < 10
    assert report.end_to_end.top1_tosac_vs_optimised == tosac_agree
    assert report.end_to_end.top1_tosac_vs_unoptimised >= 9


def _planted(shift_layer: str, delta: int):
    """layer_model with the output zero point of one layer's tosac sub-model moved by ``delta``."""
    real_layer_model = agreement.layer_model

    def layer_model(model, layer, inputs):
        sub = real_layer_model(model, layer, inputs)
        if layer.name == shift_layer:
            q = sub.graph.node[-1]
            zp = next(t for t in sub.graph.initializer if t.name == q.input[2])
            zp.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(zp) + np.int8(delta), zp.name))
        return sub
    return layer_model


def test_a_planted_wrong_layer_is_found_and_fails_the_gate(monkeypatch, ort, capsys, tmp_path):
    planted = "dw2.relu_QuantizeLinear_Output"
    monkeypatch.setattr(agreement, "layer_model", _planted(planted, 3))
    argv = ["conformance", "onnx-agreement", "kws", "--inputs", "3", "--node-inputs", "2",
            "--json", str(tmp_path / "r.json")]
    assert main([*argv, "--max-node-lsb", "1"]) == 1
    out = capsys.readouterr().out
    assert "EXCEEDED" in out and planted in out
    data = json.loads((tmp_path / "r.json").read_text())
    rows = {r["name"]: r for r in data["nodes"]}
    assert rows[planted]["vs_unoptimised"]["max_lsb"] == 3 and rows[planted]["vs_optimised"]["max_lsb"] == 3
    assert rows[planted]["vs_unoptimised"]["near_ties"] < rows[planted]["vs_unoptimised"]["differing"]
    # The layers after it are fed ORT's tensors, not the planted layer's output: they stay within 1 LSB.
    assert all(r["vs_unoptimised"]["max_lsb"] <= 1 for name, r in rows.items() if name != planted)
    assert any(planted in f and "more than 1 LSB" in f for f in data["findings"])
    assert data["within_max_node_lsb"] is False
    assert main([*argv, "--max-node-lsb", "3"]) == 0


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "").rstrip("%")) for n in re.findall(r"-?\d[\d,]*\.?\d*%?", text)]


def _counts(text: str) -> list[int]:
    """The k of each 'k/n' in a line."""
    return [int(k) for k, _ in re.findall(r"(\d+)/(\d+)", text)]


def test_cli_json_holds_what_the_table_prints(ort, capsys, tmp_path):
    path = tmp_path / "report.json"
    assert main(["conformance", "onnx-agreement", "kws:qoperator", "--float", "kws", "--inputs", "6",
                 "--node-inputs", "2", "--seed", "4", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    summary = data["summary"]
    for label, key in (("tosac vs ORT unoptimised", "vs_unoptimised"), ("tosac vs ORT optimised", "vs_optimised"),
                       ("ORT optimised vs unoptimised (same inputs)", "ort_self")):
        line = next(line for line in out.splitlines() if line.strip().startswith(label))
        nodes, compared, max_lsb, differing, elements, ties, _equal = _numbers(line[len(label) + 2:])
        t = summary[key]
        assert (nodes, compared, max_lsb, differing, elements, ties) == (
            t["nodes_differing"], summary["compared"], t["max_lsb"], t["differing"], t["elements"], t["near_ties"])
    top1 = next(line for line in out.splitlines() if "top-1 agreement" in line)
    end = data["end_to_end"]
    assert _counts(top1) == [end["top1_tosac_vs_optimised"], end["top1_optimised_vs_unoptimised"],
                                    end["top1_tosac_vs_unoptimised"]]
    versus_float = next(line for line in out.splitlines() if "top-1 equal to the float model's" in line)
    assert _counts(versus_float) == [end["top1_float_tosac"], end["top1_float_ort_optimised"],
                                                 end["top1_float_ort_unoptimised"]]
    assert data["model"] == "kws:qoperator" and data["float_model"] == "kws" and data["seed"] == 4
    assert len(data["nodes"]) == summary["layers"] and all(f in out for f in data["findings"])


def test_uint8_activations_are_within_one_lsb_or_the_saturation_is_reported(ort, tmp_path):
    """uint8 activations x int8 weights with full 8-bit weights: exact on VNNI; elsewhere ORT's fused kernels
    may saturate, and then the report must say so (checked by _within_one_lsb_or_explained)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1] * 4),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    inits = [numpy_helper.from_array(rng.normal(0, 1, (16, 8, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.3, 16).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 1, (4, 16, 1, 1)).astype(np.float32), "w2")]
    model = helper.make_model(helper.make_graph(
        nodes, "u8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", 17)])

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{"x": rng.normal(0, 1, (1, 8, 6, 6)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    onnx.save(model, tmp_path / "float.onnx")
    for fmt in (QuantFormat.QDQ, QuantFormat.QOperator):
        quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "u8.onnx"), Reader(), quant_format=fmt,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=False)
        report = agreement.agreement_report(tmp_path / "u8.onnx", tmp_path / "float.onnx", inputs=4,
                                            node_inputs=2)
        assert sum(row.compared for row in report.nodes) == 2, report.nodes
        assert not report.end_to_end.classifier and report.end_to_end.outputs[0].unit == "LSB"
        _within_one_lsb_or_explained(report)


def test_findings_name_saturating_kernels_only_without_vnni():
    row = agreement.NodeRow("conv_out", "QLinearConv", ["x"])
    row.vs_unoptimised = agreement.NodeStats(100, 0, 0, 0, 1)
    row.vs_optimised = agreement.NodeStats(100, 30, 211, 0, 1, 0.4)
    row.ort_self = agreement.NodeStats(100, 30, 211, 0, 1, 0.4)
    row.vs_float_path = agreement.NodeStats(100, 1, 1, 1, 1, 0.0)
    end = agreement.EndToEnd(0, False, [])
    for vnni in (False, True):
        report = agreement.AgreementReport("m", "reference", 0, agreement.TIE_EPSILON, 1, vnni, "x", [row], end)
        found = agreement.findings(report)
        text = " ".join(found)
        assert "up to 211 LSB at 'conv_out'" in text and "ORT's integer kernel is off there" in text
        assert ("vpmaddubsw" in text and "reduce_range" in text) == (not vnni)
        assert "tosac differs from ORT unoptimised" not in text and "tosac differs from ORT optimised" in text
        assert "from the float definition" not in text
    row.vs_float_path = agreement.NodeStats(100, 30, 211, 0, 1, 0.4)
    text = " ".join(agreement.findings(report))
    assert "ORT's integer kernel is off" not in text and "from the float definition by more than 1 LSB" in text


def _unsupported_op_model(path) -> None:
    """A QDQ model around an op the frontend does not legalise (Elu)."""
    scale, zp = numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(0), "z")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("Elu", ["xd"], ["e"], name="the_elu"),
             helper.make_node("QuantizeLinear", ["e", "s", "z"], ["eq"]),
             helper.make_node("DequantizeLinear", ["eq", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "elu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [scale, zp])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_bad_input_is_one_clear_error(ort, tmp_path, capsys):
    float_file, bad, elu = tmp_path / "float.onnx", tmp_path / "bad.onnx", tmp_path / "elu.onnx"
    onnx.save(models.onnx_model("kws", "float"), float_file)
    bad.write_bytes(b"\x08\x01garbage")
    _unsupported_op_model(elu)
    cases = [([str(float_file)], "no quantized layer"),
             ([str(tmp_path / "missing.onnx")], "no such ONNX file"),
             ([str(bad)], "not a valid ONNX file"),
             ([str(elu)], "Elu"),
             (["kws", "--float", "kws:qdq"], "this model is quantized"),
             (["kws", "--inputs", "0"], "inputs must be at least 1")]
    for argv, message in cases:
        assert main(["conformance", "onnx-agreement", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)

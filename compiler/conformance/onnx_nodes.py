"""ONNX's own backend node tests (shipped in the ``onnx`` wheel) for the ops the frontend claims.

Every test whose nodes are all operators the frontend legalises is imported
(``io="float"``, test inputs that the model needs as constants bound with
``constants=``), run on a target, and compared with the test's expected
outputs: integer outputs bit for bit, float outputs within the ONNX backend
runner's tolerance (rtol 1e-3, atol 1e-7).

Outcomes: ``passed``; ``failed`` (wrong numbers, or an unexpected error);
``skipped`` when the frontend rejects an attribute or dtype variant with a
typed :class:`UnsupportedError` (the message says which), or when the test's
expected data is known to be wrong (:data:`KNOWN_BAD_DATA`; we still run it
and require our result to differ from the bad data only where the spec says
saturate).
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from tosac.conformance.results import CaseResult
from tosac.errors import TosacError, UnsupportedError
from tosac.frontends.onnx.reader import tensor_data
from tosac.ir.dtypes import DType

RTOL, ATOL = 1e-3, 1e-7

#: Tests whose expected outputs contradict the ONNX specification (onnx issues 6169 and 7835: the int8
#: QLinearMatMul tests expect wrap-around where the spec saturates), fixed upstream after onnx 1.21.
KNOWN_BAD_DATA = {
    "test_qlinearmatmul_2D_int8_float16", "test_qlinearmatmul_2D_int8_float32",
    "test_qlinearmatmul_3D_int8_float16", "test_qlinearmatmul_3D_int8_float32",
}


@dataclass(frozen=True)
class NodeTest:
    name: str
    op: str
    folder: Path


def node_test_root() -> Path:
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"


def claimed_tests(pattern: str | None = None) -> list[NodeTest]:
    """Node tests made only of operators the frontend claims (optionally filtered by a substring)."""
    from tosac.frontends.onnx import supported_ops

    supported = set(supported_ops())
    tests = []
    for folder in sorted(node_test_root().iterdir()):
        if pattern and pattern not in folder.name:
            continue
        model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
        ops = [(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type for n in model.graph.node]
        plain = all(v.type.HasField("tensor_type") for v in [*model.graph.input, *model.graph.output])
        if ops and set(ops) <= supported and plain:
            tests.append(NodeTest(folder.name, ops[0], folder))
    return tests


#: Operators that define quantized arithmetic in ONNX (a test using one counts as a quantized test).
QUANTIZATION_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                    "ConvInteger", "MatMulInteger"}
_LOW_BIT = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4,
            onnx.TensorProto.INT2, onnx.TensorProto.UINT2}


def quantized_tests(pattern: str | None = None) -> list[NodeTest]:
    """Every node test of a quantization operator or with an 8-, 4- or 2-bit integer input or output, whether the
    frontend claims its operators or not: the set users of quantized models meet."""
    tests = []
    for folder in sorted(node_test_root().iterdir()):
        if pattern and pattern not in folder.name:
            continue
        model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
        ops = [n.op_type for n in model.graph.node]
        types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]
                 if v.type.HasField("tensor_type")}
        if ops and (QUANTIZATION_OPS & set(ops) or types & _LOW_BIT):
            tests.append(NodeTest(folder.name, ops[0], folder))
    return tests


def _read_tensors(folder: str, prefix: str) -> list[np.ndarray]:
    files = sorted(glob.glob(os.path.join(folder, f"{prefix}_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
    out = []
    for path in files:
        t = onnx.TensorProto()
        t.ParseFromString(Path(path).read_bytes())
        out.append(tensor_data(t))
    return out


def run_test(test: NodeTest, target: str = "reference") -> CaseResult:
    """Import, run on ``target`` and compare every data set of one node test."""
    from tosac.conformance.execute import run_graph_on_target
    from tosac.frontends.onnx import load

    model = onnx.load(str(test.folder / "model.onnx"))
    in_names = [v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}]
    out_names = [v.name for v in model.graph.output]
    messages = []
    for data_set in sorted(glob.glob(str(test.folder / "test_data_set_*"))):
        inputs = dict(zip(in_names, _read_tensors(data_set, "input")))
        expected = dict(zip(out_names, _read_tensors(data_set, "output")))
        try:
            graph = load(model, io="float", constants=inputs)
            feed = {n: _as_input(inputs[n], graph.tensors[n].type.dtype) for n in graph.inputs}
            got = run_graph_on_target(graph, feed, target)
        except UnsupportedError as exc:
            return CaseResult(test.name, test.op, False, "skipped", f"unsupported: {exc}")
        except TosacError as exc:
            return CaseResult(test.name, test.op, False, "failed", f"{type(exc).__name__}: {exc}")
        for name, want in expected.items():
            have = got[name]
            problem = compare(have, want)
            if problem:
                messages.append(f"{os.path.basename(data_set)} output '{name}': {problem}")
    if test.name in KNOWN_BAD_DATA:
        verdict = "differs from the bad data, as expected" if messages else "MATCHES the bad data"
        outcome = "skipped" if messages else "failed"
        return CaseResult(test.name, test.op, False, outcome, f"known bad expected data (onnx #6169, #7835): "
                          f"our saturating result {verdict}")
    return CaseResult(test.name, test.op, False, "failed" if messages else "passed", "; ".join(messages))


def _as_input(data: np.ndarray, dtype: DType) -> np.ndarray:
    """ONNX int64 test data for an int32 graph input (tosac has no int64 tensors), when the values fit."""
    if data.dtype == np.int64 and dtype is DType.INT32 and np.all(np.abs(data) < 2**31):
        return data.astype(np.int32)
    return data


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def compare(have: np.ndarray, want: np.ndarray) -> str:
    """'' when ``have`` matches ``want`` (exactly for integers, within tolerance for floats)."""
    if have.shape != want.shape:
        return f"shape {list(have.shape)} != expected {list(want.shape)}"
    if np.issubdtype(want.dtype, np.floating):
        ok = np.isclose(have.astype(np.float64), want.astype(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True)
        return "" if ok.all() else f"{(~ok).sum()} of {ok.size} values outside rtol {RTOL}"
    if have.dtype != want.dtype and not (want.dtype == np.int64 and have.dtype == np.int32):
        return f"dtype {have.dtype} != expected {want.dtype}"      # (ONNX int64 is int32 in tosac)
    diff = have != want
    return "" if not diff.any() else f"{diff.sum()} of {diff.size} values differ (max |d| " \
        f"{np.abs(have.astype(np.int64) - want.astype(np.int64)).max()})"


def run_suite(target: str = "reference", pattern: str | None = None,
              quantized: bool = False) -> tuple[list[CaseResult], float]:
    """The claimed-op suite, or with ``quantized`` every quantized node test (:func:`quantized_tests`)."""
    start = time.perf_counter()
    results = [run_test(t, target) for t in (quantized_tests if quantized else claimed_tests)(pattern)]
    return results, time.perf_counter() - start

"""Run a graph on the official TOSA reference model (from tosa-tools).

By default the reference model executable runs in a child process: it dies
with SIGFPE on some inputs (INTDIV by zero), and that must never take a test
run down; and unlike the Python binding it returns INT48 outputs.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tosac.errors import ToolchainMissingError, TosacError
from tosac.ir.graph import Graph


def available() -> bool:
    try:
        import tosa_reference_model  # noqa: F401
    except ImportError:
        return False
    return True


def run_official(graph: Graph, inputs: dict[str, np.ndarray], timeout: float = 120.0,
                 isolate: bool = True) -> tuple[str, dict]:
    """(status, outputs by name): status is TOSA_VALID, TOSA_UNPREDICTABLE or TOSA_ERROR.

    ``isolate=False`` runs the model in this process: much faster for many
    small graphs, but only safe for graphs that cannot divide by zero.
    """
    from tosac.ir.serialize import write_tosa

    if not available():
        raise ToolchainMissingError("the official TOSA reference model is not installed: "
                                    "pip install 'tosac[conformance]'")
    if not isolate:
        import tosa_reference_model as trm

        raw, status = trm.run(write_tosa(graph), [np.asarray(inputs[n]) for n in graph.inputs])
        outputs = {}
        if status.name == "TOSA_VALID":
            outputs = {n: _decode(r, graph.main.type_of(n)) for n, r in zip(graph.outputs, raw)}
        return status.name, outputs
    with tempfile.TemporaryDirectory(prefix="tosac-ref-") as tmp:
        return _run_binary(graph, inputs, Path(tmp), timeout)


def _binary() -> tuple[Path, Path]:
    """The reference model executable and the schema it reads, as installed by tosa-tools."""
    import tosa_reference_model

    bin_dir = Path(tosa_reference_model.__file__).parent.parent / "bin"
    return bin_dir / "tosa_reference_model", bin_dir / "tosa.fbs"


def _run_binary(graph: Graph, inputs: dict[str, np.ndarray], work: Path, timeout: float) -> tuple[str, dict]:
    """Run the tosa_reference_model executable on a test description, as the official runner does.

    The executable (unlike the Python binding) writes INT48 outputs too.
    """
    from tosac.ir.serialize import write_tosa

    exe, schema = _binary()
    (work / "graph.tosa").write_bytes(write_tosa(graph))
    for k, name in enumerate(graph.inputs):
        np.save(work / f"in{k}.npy", np.asarray(inputs[name]))
    desc = {"tosa_file": "graph.tosa", "ifm_name": list(graph.inputs),
            "ifm_file": [f"in{k}.npy" for k in range(len(graph.inputs))], "ofm_name": list(graph.outputs),
            "ofm_file": [f"out{k}.npy" for k in range(len(graph.outputs))], "expected_failure": False}
    (work / "desc.json").write_text(json.dumps(desc))
    proc = subprocess.run([str(exe), "--tosa_level", "EIGHTK", "--operator_fbs", str(schema), "--test_desc",
                           str(work / "desc.json")], capture_output=True, text=True, timeout=timeout, cwd=work)
    status = {0: "TOSA_VALID", 1: "TOSA_UNPREDICTABLE", 2: "TOSA_ERROR"}.get(proc.returncode)
    if status is None:
        raise TosacError(f"official reference model crashed (exit {proc.returncode}): {proc.stderr[-1000:]}")
    outputs = {}
    if status == "TOSA_VALID":
        for k, name in enumerate(graph.outputs):
            outputs[name] = _decode(np.load(work / f"out{k}.npy"), graph.main.type_of(name))
    return status, outputs


def _decode(raw: np.ndarray, ttype) -> np.ndarray:
    """The model returns arrays in their storage type, or raw bytes: normalise to our storage."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint8 and ttype.dtype.storage != np.uint8 and arr.size != ttype.size:
        arr = arr.view(ttype.dtype.storage)
    return arr.reshape(ttype.shape).astype(ttype.dtype.storage)

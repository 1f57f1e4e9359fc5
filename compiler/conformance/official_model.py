"""Run a graph on the official TOSA reference model (from tosa-tools).

The reference model runs in a child process: it dies with SIGFPE on some
inputs (INTDIV by zero), and that must never take a test run down.
"""
from __future__ import annotations

import subprocess
import sys
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


def run_official(graph: Graph, inputs: dict[str, np.ndarray], timeout: float = 120.0) -> tuple[str, dict]:
    """(status, outputs by name): status is TOSA_VALID, TOSA_UNPREDICTABLE or TOSA_ERROR."""
    from tosac.ir.serialize import write_tosa

    if not available():
        raise ToolchainMissingError("the official TOSA reference model is not installed: "
                                    "pip install 'tosac[conformance]'")
    with tempfile.TemporaryDirectory(prefix="tosac-ref-") as tmp:
        work = Path(tmp)
        (work / "graph.tosa").write_bytes(write_tosa(graph))
        np.savez(work / "inputs.npz", **{f"i{k}": np.asarray(inputs[n]) for k, n in enumerate(graph.inputs)})
        proc = subprocess.run([sys.executable, "-m", "tosac.conformance.official_model", str(work)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise TosacError(f"official reference model crashed (exit {proc.returncode}): {proc.stderr[-1000:]}")
        status = (work / "status.txt").read_text().strip()
        outputs = {}
        if status == "TOSA_VALID":
            with np.load(work / "outputs.npz") as data:
                for k, name in enumerate(graph.outputs):
                    ttype = graph.main.type_of(name)
                    raw = data[f"o{k}"]
                    outputs[name] = _decode(raw, ttype)
        return status, outputs


def _decode(raw: np.ndarray, ttype) -> np.ndarray:
    """The model returns arrays in their storage type, or raw bytes: normalise to our storage."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint8 and ttype.dtype.storage != np.uint8 and arr.size != ttype.size:
        arr = arr.view(ttype.dtype.storage)
    return arr.reshape(ttype.shape).astype(ttype.dtype.storage)


def _child(work: Path) -> None:
    import tosa_reference_model as trm

    with np.load(work / "inputs.npz") as data:
        inputs = [data[f"i{k}"] for k in range(len(data.files))]
    outputs, status = trm.run((work / "graph.tosa").read_bytes(), inputs)
    (work / "status.txt").write_text(status.name)
    np.savez(work / "outputs.npz", **{f"o{k}": np.asarray(o) for k, o in enumerate(outputs)})


if __name__ == "__main__":
    _child(Path(sys.argv[1]))

"""Every Python block of the README and of docs/*.md runs as written.

The blocks of one document run in order in one namespace (later blocks use
what earlier ones defined), in a fresh folder that holds the files they name
(``model.onnx`` is a bundled model's ONNX file, ``model.tflite`` the tests' int8
DS-CNN-like network), in a child process so that
a block cannot change the test process.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

_RUNNER = """
import sys
blocks = {blocks!r}
namespace = {{"__name__": "__main__"}}
for line, source in blocks:
    print(f"-- {name}:{{line}}", flush=True)
    exec(compile(source, f"{name}:{{line}}", "exec"), namespace)
"""


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(first line number, source) of each ```python block."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_documents_have_python_blocks():
    assert python_blocks(ROOT / "README.md"), "the README lost its examples (or this test's block pattern broke)"
    assert (ROOT / "docs" / "architecture.md").exists()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_python_blocks_run(document: Path, tmp_path: Path):
    from tosac import models

    blocks = python_blocks(document)
    if not blocks:
        pytest.skip(f"{document.name} has no Python block")   # not a tool: the document simply has none
    sys.path.insert(0, str(Path(__file__).parent))   # the test-side .tflite writer
    from tflite_writer import ds_cnn_model

    (tmp_path / "model.onnx").write_bytes(models.onnx_model("kws", "qdq").SerializeToString())
    (tmp_path / "model.tflite").write_bytes(ds_cnn_model())
    script = _RUNNER.format(blocks=blocks, name=document.name)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"{document.name}: a Python block failed\n{result.stdout}\n{result.stderr}"

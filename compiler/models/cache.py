"""Generated model files on disk: where they live, atomic writes, and reads that trust nothing damaged.

The directory follows the convention of tosac's other caches (the TOSA
conformance suite, object code): ``$TOSAC_CACHE_DIR``, else
``$XDG_CACHE_HOME/tosac``, else ``~/.cache/tosac``; models go to its
``models/`` folder. A file is written to a temporary name in the same folder
and renamed into place, so readers never see half a file. Each file records
its cache key in the model's metadata (``tosac.cache_key``, serialised after
the graph), and a read checks the key and runs the ONNX checker: a truncated,
foreign or otherwise damaged file is reported as missing and rebuilt. Writing
a file removes the same model's and format's files of other keys.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import onnx

KEY_PROP = "tosac.cache_key"


def cache_root() -> Path:
    """tosac's cache directory (``$TOSAC_CACHE_DIR``, ``$XDG_CACHE_HOME/tosac`` or ``~/.cache/tosac``)."""
    base = os.environ.get("TOSAC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tosac")
    return Path(base)


def model_file(name: str, fmt: str, key: str) -> Path:
    """Where the ``fmt`` file of model ``name`` built under ``key`` is cached (``.tflite`` or ``.onnx``)."""
    return cache_root() / "models" / f"{name}.{fmt}.{key}.{'tflite' if fmt == 'tflite' else 'onnx'}"


def read_valid(path: Path, key: str) -> onnx.ModelProto | None:
    """The model cached at ``path`` if it is whole and was written under ``key``; None otherwise."""
    if not path.is_file():
        return None
    try:
        model = onnx.load(str(path))
        props = {p.key: p.value for p in model.metadata_props}
        if props.get(KEY_PROP) != key:
            return None
        onnx.checker.check_model(model)
    except Exception:                                    # any damage at all: rebuild rather than trust it
        return None
    return model


def write_atomic(path: Path, model: onnx.ModelProto, key: str, props: dict[str, str] | None = None) -> None:
    """Stamps ``key`` (and ``props``) into ``model``'s metadata and writes it to ``path`` through a temporary
    file and a rename."""
    merged = {p.key: p.value for p in model.metadata_props}
    merged.update(props or {})
    merged[KEY_PROP] = key
    onnx.helper.set_model_props(model, merged)
    write_bytes_atomic(path, model.SerializeToString())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder, fsync and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)                              # mkstemp's 0600 would hide the cache from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prune(path: Path) -> list[Path]:
    """Removes the files of the same model and format cached under other keys (older builder sources or
    versions: each resnet50 file is 25-100 MB); returns them. Two installations with different onnxruntime
    versions sharing one cache would each rebuild after the other; set ``$TOSAC_CACHE_DIR`` apart for them."""
    name, fmt = path.name.split(".")[:2]
    stale = [p for p in path.parent.glob(f"{name}.{fmt}.*{path.suffix}")
             if p != path and re.fullmatch(r"[0-9a-f]{16}", p.name[len(name) + len(fmt) + 2:-len(path.suffix)])]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale

"""Lossless serialisation of graphs: TOSA flatbuffers (``.tosa``) and a readable JSON form."""
from __future__ import annotations

import os

from tosac.errors import SerializationError
from tosac.ir.atomic_io import atomic_write
from tosac.ir.graph import Graph
from tosac.ir.serialize.files import MAX_MODEL_BYTES, check_regular_file, read_model_bytes
from tosac.ir.serialize.json_form import format_graph, from_json, to_json
from tosac.ir.serialize.tosa_flatbuffer import read_tosa, write_tosa

__all__ = ["read_tosa", "write_tosa", "to_json", "from_json", "format_graph", "load", "save",
           "read_model_bytes", "check_regular_file", "MAX_MODEL_BYTES"]


def _format(path: str | os.PathLike) -> str:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".tosa", ".json"):
        raise SerializationError(f"{os.fspath(path)}: unknown model file extension '{ext}'; "
                                 f"use .tosa (TOSA flatbuffer) or .json (tosac JSON form)")
    return ext


def load(path: str | os.PathLike) -> Graph:
    """Read a graph from ``path``, choosing the format by extension (.tosa or .json)."""
    if _format(path) == ".tosa":
        return read_tosa(path)
    try:
        text = read_model_bytes(path).decode("utf-8")     # a regular file only, read within bounds
    except UnicodeDecodeError as e:
        raise SerializationError(f"{os.fspath(path)}: cannot read: {e}") from None
    return from_json(text, source=os.fspath(path))


def save(graph: Graph, path: str | os.PathLike) -> None:
    """Write ``graph`` to ``path`` in the format its extension names, all or nothing."""
    ext = _format(path)
    data = write_tosa(graph) if ext == ".tosa" else to_json(graph).encode("utf-8")
    try:
        atomic_write(path, data)                    # a failed write leaves an existing file as it was
    except OSError as e:
        raise SerializationError(f"{os.fspath(path)}: cannot write: {e.strerror or e} "
                                 f"(an existing file is unchanged)") from None

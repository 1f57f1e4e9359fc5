"""A readable, lossless JSON form of a graph, and a text listing for ``tosac inspect``.

Layout (``"format": "tosac-graph", "version": 1``)::

    {"format": "tosac-graph", "version": 1, "tosa_version": [1, 0, 0],
     "blocks": [{"name": "main", "inputs": [...], "outputs": [...],
                 "tensors": [{"name": "x", "type": "i8[1,4]"}, ...],   one per line
                 "ops": [{"op": "CONV2D", "inputs": [...], "outputs": [...], "attrs": {...}}, ...]}]}

Constants: integer/bool/shape data with at most ``LIST_LIMIT`` elements is a flat
list of ints (exact and easy to edit); anything larger, and all float data (so
NaN payloads and -0.0 survive), is ``"data_b64"``: base64 of the little-endian
numpy storage bytes (:attr:`DType.storage`), row-major. Attributes: int lists are
lists, DTypes and enums are their names, CLAMP bounds are JSON numbers.
"""
from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

from tosac.errors import SerializationError
from tosac.ir.serialize.guard import parse_guarded
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType
from tosac.ir.ops import SCHEMAS, AttrKind, NanMode, ResizeMode, RoundingMode

FORMAT = "tosac-graph"
VERSION = 1
LIST_LIMIT = 64
_ENUMS: dict[AttrKind, type] = {AttrKind.NAN_MODE: NanMode, AttrKind.ROUNDING_MODE: RoundingMode,
                                AttrKind.RESIZE_MODE: ResizeMode}


# --- types -------------------------------------------------------------------------------------

def type_text(ttype: TensorType) -> str:
    return str(ttype)   # e.g. i8[1,4], i32[] for rank 0


def parse_type(text: str) -> TensorType:
    """Inverse of :func:`type_text`: ``i8[1,4]`` → TensorType."""
    try:
        name, dims = text.strip().split("[", 1)
        if not dims.endswith("]"):
            raise ValueError
        inner = dims[:-1].strip()
        shape = tuple(int(d) for d in inner.split(",")) if inner else ()
        return TensorType(DType.parse(name), shape)
    except ValueError:
        raise SerializationError(f"bad tensor type '{text}' (expected e.g. 'i8[1,16,16,3]')") from None


# --- writing ----------------------------------------------------------------------------------

def _data_json(t: Tensor) -> dict[str, Any]:
    data = np.asarray(t.data).astype(t.dtype.storage)
    if not t.dtype.is_float and data.size <= LIST_LIMIT:
        return {"data": [bool(v) if t.dtype is DType.BOOL else int(v) for v in data.reshape(-1)]}
    raw = np.ascontiguousarray(data).astype(t.dtype.storage.newbyteorder("<")).tobytes()
    return {"data_b64": base64.b64encode(raw).decode("ascii")}


def _attr_json(value: Any) -> Any:
    if isinstance(value, (DType, NanMode, RoundingMode, ResizeMode)):
        return value.name
    if isinstance(value, tuple):
        return [int(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}      # keep the output strict JSON
    return value


def to_json(graph: Graph) -> str:
    """Serialise ``graph`` as readable JSON: one tensor or op per line."""
    lines = ["{", f'  "format": "{FORMAT}", "version": {VERSION}, '
                  f'"tosa_version": {json.dumps(list(graph.version))},', '  "blocks": [']
    for bi, block in enumerate(graph.blocks.values()):
        lines.append(f'    {{"name": {json.dumps(block.name)}, "inputs": {json.dumps(block.inputs)}, '
                     f'"outputs": {json.dumps(block.outputs)},')
        tensors = []
        for t in block.tensors.values():
            item: dict[str, Any] = {"name": t.name, "type": type_text(t.type)}
            if t.data is not None:
                item.update(_data_json(t))
            tensors.append("      " + json.dumps(item))
        lines.append('     "tensors": [' + ("\n" + ",\n".join(tensors) + "\n     " if tensors else "") + "],")
        ops = []
        for op in block.ops:
            item = {"op": op.name, "inputs": op.inputs, "outputs": op.outputs,
                    "attrs": {k: _attr_json(v) for k, v in op.attrs.items()}}
            if op.location is not None:
                item["location"] = op.location
            ops.append("      " + json.dumps(item))
        lines.append('     "ops": [' + ("\n" + ",\n".join(ops) + "\n     " if ops else "") + "]}"
                     + ("," if bi < len(graph.blocks) - 1 else ""))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


# --- reading ----------------------------------------------------------------------------------

def from_json(text: str, source: str = "<json>") -> Graph:
    """Parse the JSON form back into a :class:`Graph` (exact inverse of :func:`to_json`)."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError, RecursionError) as e:
        raise SerializationError(f"{source}: not valid JSON: {e}") from None
    return parse_guarded(lambda: _graph(doc, source), source, "tosac graph JSON")


def _graph(doc: Any, source: str) -> Graph:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SerializationError(f"not a tosac graph (missing \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise SerializationError(f"tosac graph JSON version {doc.get('version')!r} is not supported "
                                 f"(this tosac reads version {VERSION})")
    version = tuple(int(v) for v in doc.get("tosa_version", (1, 0, 0)))
    if len(version) != 3:
        raise SerializationError(f"tosa_version must have 3 numbers, got {list(version)}")
    graph = Graph(version=version)  # type: ignore[arg-type]
    for bd in doc["blocks"]:
        block = Block(name=str(bd["name"]), inputs=[str(s) for s in bd["inputs"]],
                      outputs=[str(s) for s in bd["outputs"]])
        if block.name in graph.blocks:
            raise SerializationError(f"block '{block.name}' defined twice")
        for td in bd["tensors"]:
            t = _tensor(td)
            if t.name in block.tensors:
                raise SerializationError(f"block '{block.name}': tensor '{t.name}' defined twice")
            block.tensors[t.name] = t
        for i, od in enumerate(bd["ops"]):
            block.ops.append(_op(od, f"block '{block.name}' op #{i}"))
        graph.blocks[block.name] = block
    if not graph.blocks:
        raise SerializationError("graph has no blocks")
    return graph


def _tensor(td: dict[str, Any]) -> Tensor:
    name = str(td["name"])
    ttype = parse_type(td["type"])
    data = None
    storage = ttype.dtype.storage
    if "data" in td:
        values = td["data"]
        if len(values) != ttype.size:
            raise SerializationError(f"tensor '{name}' data has {len(values)} values, {ttype} needs "
                                     f"{ttype.size}")
        if ttype.dtype is DType.BOOL:
            ok = all(isinstance(v, bool) for v in values)
        else:
            ok = all(isinstance(v, int) and not isinstance(v, bool) and
                     ttype.dtype.min <= v <= ttype.dtype.max for v in values)
        if not ok:
            raise SerializationError(f"tensor '{name}' data has values that are not {ttype.dtype.name}")
        data = np.array(values, dtype=object).astype(storage).reshape(ttype.shape) if values else \
            np.zeros(ttype.shape, dtype=storage)
    elif "data_b64" in td:
        try:
            raw = base64.b64decode(td["data_b64"], validate=True)
        except ValueError:
            raise SerializationError(f"tensor '{name}': data_b64 is not valid base64") from None
        need = ttype.size * storage.itemsize
        if len(raw) != need:
            raise SerializationError(f"tensor '{name}' data has {len(raw)} bytes, {ttype} needs {need}")
        data = np.frombuffer(raw, dtype=storage.newbyteorder("<")).astype(storage).reshape(ttype.shape)
    return Tensor(name, ttype, data)


def _op(od: dict[str, Any], where: str) -> Op:
    name = str(od["op"])
    if name not in SCHEMAS:
        raise SerializationError(f"{where}: unknown operator '{name}'")
    specs = SCHEMAS[name].attrs
    attrs: dict[str, Any] = {}
    for key, value in od.get("attrs", {}).items():
        if key not in specs:
            raise SerializationError(f"{where}: {name} has no attribute '{key}'")
        attrs[key] = _attr_value(specs[key].kind, value, f"{where} attribute '{key}'")
    loc = od.get("location")
    return Op(name, [str(s) for s in od["inputs"]], [str(s) for s in od["outputs"]], attrs,
              None if loc is None else str(loc))


def _attr_value(kind: AttrKind, value: Any, where: str) -> Any:
    try:
        if kind is AttrKind.INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
            return value
        if kind is AttrKind.BOOL:
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind is AttrKind.INTS:
            return tuple(int(v) for v in value)
        if kind is AttrKind.DTYPE:
            return DType[value]
        if kind in _ENUMS:
            return _ENUMS[kind][value]
        if kind is AttrKind.STRING:
            return str(value)
        if kind is AttrKind.SCALAR:
            if isinstance(value, dict):
                return float(value["float"])
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError
            return value
    except (KeyError, ValueError, TypeError):
        pass
    raise SerializationError(f"{where}: bad {kind.value} value {value!r}")


# --- human-readable listing ------------------------------------------------------------------

def _attr_text(value: Any) -> str:
    if isinstance(value, (DType, NanMode, RoundingMode, ResizeMode)):
        return value.name if not isinstance(value, DType) else value.short
    if isinstance(value, tuple):
        return "[" + ",".join(map(str, value)) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _value_text(block: Block, name: str) -> str:
    t = block.tensors.get(name)
    if t is None:
        return f"{name}: ?"
    if t.data is None:
        return f"{name}: {t.type}"
    if t.type.size <= 8:
        flat = np.asarray(t.data).reshape(-1).tolist()
        return f"{name}: {t.type} = {flat}"
    return f"{name}: {t.type} const"


def format_graph(graph: Graph) -> str:
    """A listing for ``tosac inspect``: per block its inputs, ops (typed) and outputs."""
    out = [f"TOSA {'.'.join(map(str, graph.version))} graph, {len(graph.blocks)} block(s)"]
    for block in graph.blocks.values():
        out.append(f"block {block.name}:")
        for name in block.inputs:
            out.append(f"  input  {_value_text(block, name)}")
        for i, op in enumerate(block.ops):
            if op.name in ("CONST", "CONST_SHAPE"):
                consts = ", ".join(_value_text(block, o) for o in op.outputs)
                out.append(f"  #{i:<3} {op.name} -> {consts}")
                continue
            ins = ", ".join(_value_text(block, n) for n in op.inputs)
            outs = ", ".join(_value_text(block, n) for n in op.outputs)
            attrs = " ".join(f"{k}={_attr_text(v)}" for k, v in op.attrs.items())
            loc = f"  @ {op.location}" if op.location else ""
            out.append(f"  #{i:<3} {op.name}({ins}) -> {outs}" + (f"  {{{attrs}}}" if attrs else "") + loc)
        for name in block.outputs:
            out.append(f"  output {_value_text(block, name)}")
    return "\n".join(out) + "\n"

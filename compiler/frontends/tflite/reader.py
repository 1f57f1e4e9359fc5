"""Reading a ``.tflite`` flatbuffer into plain Python records, every offset checked.

The schema comes from the ``tflite`` PyPI package: the flatbuffers-generated
Python classes of the published TFLite schema (153 KB, no TensorFlow). We use
its enums (operator codes, tensor types, option kinds) and its generated option
tables for scalar fields. The flatbuffers Python runtime itself checks nothing:
a uoffset past the end raises ``struct.error`` at best, a negative soffset
silently reads from the end of the buffer (``struct.unpack_from`` accepts
negative offsets), and a huge vector length makes a loop run for ever. So the
structure (tables, vtables, vectors, strings, sub-tables) is walked here by
:class:`_Buf`, which checks every position against the buffer length before
reading it, the way the C++ flatbuffers verifier does; the generated classes
only ever read scalar fields of tables that passed that check. Any failure is a
:class:`~tosac.errors.FrontendError` naming the file and what was being read.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions

from tosac.errors import FrontendError, UnsupportedError

#: builtin operator code → name (``CONV_2D`` ...).
OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
#: builtin options type → name (``Conv2DOptions`` ...).
OPTION_NAMES = {v: k for k, v in vars(BuiltinOptions).items() if not k.startswith("_")}
MAX_FILE_BYTES = 2 << 30            # flatbuffers without the large-buffer extension are < 2 GiB


@dataclass
class TensorDef:
    """One tensor of subgraph 0: its type code, shape, constant data (raw bytes) and quantization."""
    index: int
    name: str
    type: int
    shape: tuple[int, ...]
    data: bytes | None
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_points: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0


@dataclass
class OpDef:
    """One operator: its builtin code and name, tensor indices and (checked) options table."""
    index: int
    code: int
    name: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any                    # an Init'ed generated options object, or None
    options_name: str


@dataclass
class ModelDef:
    source: str
    tensors: list[TensorDef]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    ops: list[OpDef]
    description: str = ""


class _Buf:
    """A flatbuffer with bounds-checked primitive reads; ``where`` names the file in errors."""

    def __init__(self, data: bytes, where: str):
        self.data, self.n, self.where = data, len(data), where

    def fail(self, what: str, why: str) -> FrontendError:
        return FrontendError(f"{self.where}: malformed TFLite flatbuffer reading {what}: {why}")

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.n:
            raise self.fail(what, f"bytes [{pos}, {pos + size}) lie outside the {self.n}-byte buffer")

    def get(self, fmt: str, pos: int, what: str) -> int:
        self.need(pos, struct.calcsize(fmt), what)
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def follow(self, pos: int, what: str) -> int:
        """The target of the uoffset stored at ``pos``."""
        return pos + self.get("I", pos, what)

    def table(self, pos: int, what: str) -> "_Table":
        self.need(pos, 4, what)
        vt = pos - self.get("i", pos, what)
        vt_size = self.get("H", vt, f"{what} vtable")
        t_size = self.get("H", vt + 2, f"{what} vtable")
        if vt_size < 4 or vt_size % 2:
            raise self.fail(what, f"vtable size {vt_size} is not an even number >= 4")
        self.need(vt, vt_size, f"{what} vtable")
        if t_size < 4:
            raise self.fail(what, f"table size {t_size} < 4")
        self.need(pos, t_size, what)
        return _Table(self, pos, vt, vt_size, t_size, what)


class _Table:
    """A checked table: every field offset lies inside the table, which lies inside the buffer."""

    def __init__(self, buf: _Buf, pos: int, vt: int, vt_size: int, t_size: int, what: str):
        self.buf, self.pos, self.vt, self.vt_size, self.t_size, self.what = buf, pos, vt, vt_size, t_size, what
        for slot in range((vt_size - 4) // 2):
            off = buf.get("H", vt + 4 + 2 * slot, f"{what} vtable")
            if off and off + 1 > t_size:
                raise buf.fail(what, f"field {slot} at offset {off} lies outside the {t_size}-byte table")

    def field(self, slot: int, size: int) -> int:
        """Absolute position of field ``slot`` (0 if absent); the ``size`` bytes are inside the table."""
        o = 4 + 2 * slot
        if o >= self.vt_size:
            return 0
        off = self.buf.get("H", self.vt + o, f"{self.what} vtable")
        if not off:
            return 0
        if off + size > self.t_size:
            raise self.buf.fail(self.what, f"field {slot} ({size} bytes at {off}) overruns the table")
        return self.pos + off

    def scalar(self, slot: int, fmt: str, default: int | float = 0) -> Any:
        p = self.field(slot, struct.calcsize(fmt))
        return self.buf.get(fmt, p, f"{self.what} field {slot}") if p else default

    def _vector(self, slot: int, elem: int, what: str) -> tuple[int, int] | None:
        p = self.field(slot, 4)
        if not p:
            return None
        start = self.buf.follow(p, what)
        length = self.buf.get("I", start, f"{what} length")
        self.buf.need(start + 4, length * elem, what)
        return start + 4, length

    def vector(self, slot: int, dtype: str, what: str) -> np.ndarray | None:
        """A scalar vector as a numpy copy (None if absent)."""
        dt = np.dtype(dtype).newbyteorder("<")
        v = self._vector(slot, dt.itemsize, f"{self.what} {what}")
        if v is None:
            return None
        start, length = v
        return np.frombuffer(self.buf.data, dt, count=length, offset=start).astype(dt.newbyteorder("="))

    def bytes_vector(self, slot: int, what: str) -> bytes | None:
        v = self._vector(slot, 1, f"{self.what} {what}")
        return None if v is None else bytes(self.buf.data[v[0]:v[0] + v[1]])

    def string(self, slot: int, what: str) -> str:
        raw = self.bytes_vector(slot, what)
        return "" if raw is None else raw.decode("utf-8", errors="replace")

    def tables(self, slot: int, what: str) -> list["_Table"]:
        v = self._vector(slot, 4, f"{self.what} {what}")
        if v is None:
            return []
        start, length = v
        return [self.buf.table(self.buf.follow(start + 4 * i, f"{what}[{i}]"), f"{what}[{i}]")
                for i in range(length)]

    def sub_table(self, slot: int, what: str) -> "_Table | None":
        p = self.field(slot, 4)
        return None if not p else self.buf.table(self.buf.follow(p, what), what)


def _load_bytes(model: str | os.PathLike | bytes | bytearray | memoryview) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "<tflite bytes>"
    path = os.fspath(model)
    try:
        if not os.path.isfile(path):
            raise FrontendError(f"{path}: not a regular file")
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise FrontendError(f"{path}: {size} bytes is larger than a TFLite flatbuffer can be")
        with open(path, "rb") as f:
            return f.read(), path
    except OSError as e:
        raise FrontendError(f"{path}: cannot read the TFLite file: {e}") from e


def _options(op_table: _Table, where: str) -> tuple[Any, str]:
    kind = op_table.scalar(3, "B", 0)
    if kind == 0:
        return None, "NONE"
    name = OPTION_NAMES.get(kind)
    if name is None:
        raise UnsupportedError(f"{where}: unknown builtin options type {kind}")
    tab = op_table.sub_table(4, f"{where} {name}")
    if tab is None:
        return None, name
    module = getattr(tflite, name, None)
    cls = getattr(module, name, module)
    if cls is None:
        raise UnsupportedError(f"{where}: options {name} are not in the tflite schema package")
    obj = cls()
    obj.Init(op_table.buf.data, tab.pos)   # only scalar getters are used: inside the checked table
    return obj, name


def read_model(model: str | os.PathLike | bytes | bytearray | memoryview) -> ModelDef:
    """Parse subgraph 0 of a TFLite model (path or bytes) into :class:`ModelDef`, every read bounds-checked."""
    data, where = _load_bytes(model)
    buf = _Buf(data, where)
    try:
        return _read(buf)
    except (FrontendError, UnsupportedError):
        raise
    except (IndexError, struct.error, ValueError, OverflowError, TypeError, MemoryError) as e:
        raise buf.fail("the model", f"{type(e).__name__}: {e}") from e


def _read(buf: _Buf) -> ModelDef:
    where = buf.where
    if buf.n < 8:
        raise buf.fail("the header", f"{buf.n} bytes is too short for a flatbuffer")
    ident = buf.data[4:8]
    if ident != b"TFL3":
        raise buf.fail("the header", f"file identifier {ident!r} is not b'TFL3' (not a TFLite model)")
    model = buf.table(buf.follow(0, "root offset"), "Model")
    version = model.scalar(0, "I", 0)
    if version != 3:
        raise UnsupportedError(f"{where}: TFLite schema version {version} (only 3 is supported)")
    codes = []
    for i, t in enumerate(model.tables(1, "operator_codes")):
        deprecated = t.scalar(0, "b", 0)
        builtin = t.scalar(3, "i", 0)
        codes.append((max(deprecated, builtin), t.string(1, "custom_code"), t.scalar(2, "i", 1)))
    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        raise buf.fail("subgraphs", "the model has no subgraph")
    if len(subgraphs) > 1:
        raise UnsupportedError(f"{where}: {len(subgraphs)} subgraphs (control flow); only one is supported")
    buffers = model.tables(4, "buffers")
    sg = subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tables(0, "tensors")):
        what = f"tensor {i}"
        shape = t.vector(0, "i4", f"{what} shape")
        shape = tuple(int(d) for d in (shape if shape is not None else ()))
        if any(d < 0 for d in shape):
            raise UnsupportedError(f"{where}: {what} has a dynamic or negative shape {list(shape)}")
        b = t.scalar(2, "I", 0)
        if b >= len(buffers):
            raise buf.fail(what, f"buffer index {b} is out of range ({len(buffers)} buffers)")
        data = None
        if b:
            bt = buffers[b]
            data = bt.bytes_vector(0, f"buffer {b} data")
            offset, size = bt.scalar(1, "Q", 0), bt.scalar(2, "Q", 0)
            if offset > 1:
                buf.need(offset, size, f"buffer {b} (offset {offset}, size {size})")
                data = bytes(buf.data[offset:offset + size])
            if data is not None and not data:
                data = None
        rec = TensorDef(i, t.string(3, f"{what} name"), t.scalar(1, "b", 0), shape, data)
        q = t.sub_table(4, f"{what} quantization")
        if q is not None:
            scales = q.vector(2, "f4", "scale")
            zps = q.vector(3, "i8", "zero_point")
            rec.scales = scales if scales is not None else rec.scales
            rec.zero_points = zps if zps is not None else rec.zero_points
            rec.quantized_dimension = q.scalar(6, "i", 0)
            if q.scalar(4, "B", 0):
                raise UnsupportedError(f"{where}: {what} uses custom quantization details")
        if t.field(6, 4):
            raise UnsupportedError(f"{where}: {what} is sparse")
        tensors.append(rec)

    def indices(tab: _Table, slot: int, what: str, optional: bool = False) -> tuple[int, ...]:
        v = tab.vector(slot, "i4", what)
        out = tuple(int(x) for x in (v if v is not None else ()))
        for x in out:
            if x >= len(tensors) or x < (-1 if optional else 0):
                raise buf.fail(what, f"tensor index {x} is out of range ({len(tensors)} tensors)")
        return out

    ops = []
    for i, t in enumerate(sg.tables(3, "operators")):
        what = f"operator {i}"
        ci = t.scalar(0, "I", 0)
        if ci >= len(codes):
            raise buf.fail(what, f"opcode index {ci} is out of range ({len(codes)} operator codes)")
        code, custom, version = codes[ci]
        name = OP_NAMES.get(code)
        if name is None:
            raise UnsupportedError(f"{where}: {what}: unknown builtin operator code {code}")
        if name == "CUSTOM":
            raise UnsupportedError(f"{where}: {what}: custom operator '{custom}' is not supported")
        options, options_name = _options(t, f"{where}: {what} ({name})")
        ops.append(OpDef(i, code, name, version, indices(t, 1, f"{what} inputs", True),
                         indices(t, 2, f"{what} outputs"), options, options_name))
    return ModelDef(where, tensors, indices(sg, 1, "subgraph inputs"), indices(sg, 2, "subgraph outputs"), ops,
                    model.string(3, "description"))

"""Read and write TOSA flatbuffer files (``.tosa``) without the generated tosa-tools code.

The schema (``tosa.fbs`` of tosa-tools) is described here by small tables: the
field order of each flatbuffer table (a field's id is its declaration index; the
union ``attribute`` is preceded by a hidden ``attribute_type`` field) and the enum
orders. Reading validates every offset before use, so malformed files raise
:class:`~tosac.errors.SerializationError` instead of IndexError/struct.error or
silently wrapping to negative positions.

Mapping to the IR: each region's single block becomes a :class:`Block` named after
the region (the first is ``main``); ``TosaShape`` entries become SHAPE tensors of
shape ``(rank,)``; constant bytes are decoded as tosa-tools packs them (INT4 two
per byte low nibble first, INT48 6 bytes little-endian, BOOL one byte, SHAPE/INT64
8 bytes). TOSA files have no unsigned types: UINT8/UINT16 tensors are written as
INT8/INT16 and recovered on reading from the RESCALE ``*_unsigned`` flags.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Callable

import flatbuffers
import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table
from flatbuffers.util import BufferHasIdentifier

from tosac.errors import SerializationError
from tosac.ir.serialize.files import read_model_bytes
from tosac.ir.serialize.guard import parse_guarded
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType
from tosac.ir.ops import SCHEMAS, AttrKind, NanMode, ResizeMode, RoundingMode

FILE_IDENTIFIER = b"TOSA"

# --- enums of tosa.fbs, in declaration order (value = index) -------------------------------
FB_DTYPES = ("UNKNOWN", "BOOL", "INT4", "INT8", "INT16", "INT32", "INT48", "FP32", "FP16", "BF16",
             "SHAPE", "FP8E4M3", "FP8E5M2", "FP6E2M3", "FP6E3M2", "FP4E2M1", "FP8UE8M0", "INT64",
             "MXINT8")
FB_OPS = (
    "UNKNOWN", "ARGMAX", "AVG_POOL2D", "CONV2D", "CONV3D", "DEPTHWISE_CONV2D", "FFT2D", "MATMUL",
    "MAX_POOL2D", "RFFT2D", "TRANSPOSE_CONV2D", "CLAMP", "ERF", "SIGMOID", "TANH", "ADD",
    "ARITHMETIC_RIGHT_SHIFT", "BITWISE_AND", "BITWISE_OR", "BITWISE_XOR", "INTDIV", "LOGICAL_AND",
    "LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT", "LOGICAL_OR", "LOGICAL_XOR", "MAXIMUM", "MINIMUM",
    "MUL", "POW", "SUB", "TABLE", "ABS", "BITWISE_NOT", "CEIL", "CLZ", "COS", "EXP", "FLOOR", "LOG",
    "LOGICAL_NOT", "NEGATE", "RECIPROCAL", "RSQRT", "SIN", "SELECT", "EQUAL", "GREATER",
    "GREATER_EQUAL", "REDUCE_ALL", "REDUCE_ANY", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PRODUCT",
    "REDUCE_SUM", "CONCAT", "PAD", "RESHAPE", "REVERSE", "SLICE", "TILE", "TRANSPOSE", "GATHER",
    "SCATTER", "RESIZE", "CAST", "RESCALE", "CONST", "IDENTITY", "CUSTOM", "COND_IF", "WHILE_LOOP",
    "VARIABLE", "VARIABLE_WRITE", "VARIABLE_READ", "CONST_SHAPE", "MATMUL_T_BLOCK_SCALED",
    "CAST_FROM_BLOCK_SCALED", "CAST_TO_BLOCK_SCALED", "DIM", "CONCAT_SHAPE", "ADD_SHAPE",
    "SUB_SHAPE", "MUL_SHAPE", "SLICE_SHAPE", "EXP2_SHAPE", "LOG2_CEIL_SHAPE", "LOG2_FLOOR_SHAPE",
    "MAX_SHAPE", "MIN_SHAPE", "MOD_SHAPE", "DIV_CEIL_SHAPE", "DIV_FLOOR_SHAPE", "ASSERT_EQUAL_SHAPE",
    "CONV2D_BLOCK_SCALED", "MAX_POOL2D_ADAPTIVE", "AVG_POOL2D_ADAPTIVE", "RESHAPE_BLOCK_SCALED",
    "ROW_GATHER_BLOCK_SCALED", "ROW_GATHER", "MATMUL_T")
OP_CODE = {name: i for i, name in enumerate(FB_OPS)}
# The union Attribute lists one table per op in Op-enum order, so attribute_type == op code.

# --- attribute tables: fields in declaration order (field id = index) ---------------------
_CONV_FIELDS = ("pad", "stride", "dilation", "local_bound", "acc_type")
ATTR_FIELDS: dict[str, tuple[str, ...]] = {
    "ARGMAX": ("axis", "nan_mode"),
    "AVG_POOL2D": ("kernel", "stride", "pad", "acc_type"),
    "CONV2D": _CONV_FIELDS, "CONV3D": _CONV_FIELDS, "DEPTHWISE_CONV2D": _CONV_FIELDS,
    "MAX_POOL2D": ("kernel", "stride", "pad", "nan_mode"),
    "TRANSPOSE_CONV2D": ("out_pad", "stride", "local_bound", "acc_type"),
    "CLAMP": ("min_val", "max_val", "nan_mode"),
    "ARITHMETIC_RIGHT_SHIFT": ("round",),
    "MAXIMUM": ("nan_mode",), "MINIMUM": ("nan_mode",),
    "REDUCE_ALL": ("axis",), "REDUCE_ANY": ("axis",), "REDUCE_PRODUCT": ("axis",),
    "REDUCE_SUM": ("axis",), "REDUCE_MAX": ("axis", "nan_mode"), "REDUCE_MIN": ("axis", "nan_mode"),
    "CONCAT": ("axis",), "REVERSE": ("axis",), "TRANSPOSE": ("perms",), "RESIZE": ("mode",),
    "RESCALE": ("scale32", "rounding_mode", "per_channel", "input_unsigned", "output_unsigned"),
    "COND_IF": ("then_graph", "else_graph"), "WHILE_LOOP": ("cond_graph", "body_graph"),
}
_ENUMS: dict[AttrKind, type] = {AttrKind.NAN_MODE: NanMode, AttrKind.ROUNDING_MODE: RoundingMode,
                                AttrKind.RESIZE_MODE: ResizeMode}

# --- element encodings ----------------------------------------------------------------------
# bytes per element in a TosaTensor's data (INT4 is special: two per byte)
_ELEM_BYTES = {DType.BOOL: 1, DType.INT8: 1, DType.INT16: 2, DType.INT32: 4, DType.INT48: 6,
               DType.INT64: 8, DType.SHAPE: 8, DType.FP16: 2, DType.BF16: 2, DType.FP32: 4,
               DType.UINT8: 1, DType.UINT16: 2}
_UNSIGNED_OF = {DType.INT8: DType.UINT8, DType.INT16: DType.UINT16}
_SIGNED_OF = {v: k for k, v in _UNSIGNED_OF.items()}

# Slots (field ids) of the container tables.
_G_VERSION, _G_REGIONS = 0, 1
_V_MAJOR, _V_MINOR, _V_PATCH, _V_DRAFT = 0, 1, 2, 3
_R_NAME, _R_BLOCKS = 0, 1
_B_NAME, _B_OPERATORS, _B_TENSORS, _B_INPUTS, _B_OUTPUTS, _B_SHAPES = range(6)
_T_NAME, _T_SHAPE, _T_TYPE, _T_DATA, _T_VARIABLE, _T_UNRANKED, _T_VARNAME, _T_OFFSET, _T_SIZE = range(9)
_T_SCALE_TYPE, _T_SCALE_DATA = 9, 10
_S_NAME, _S_RANK, _S_DATA = 0, 1, 2
_O_OP, _O_ATTR_TYPE, _O_ATTR, _O_INPUTS, _O_OUTPUTS, _O_LOCATION = range(6)


def data_size(dtype: DType, count: int) -> int:
    """Bytes that ``count`` elements of ``dtype`` take in a TOSA file."""
    if dtype is DType.INT4:
        return (count + 1) // 2
    return _ELEM_BYTES[dtype] * count


def decode_data(raw: bytes, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """Unpack TOSA constant bytes into the IR storage dtype (caller checked the size)."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    u8 = np.frombuffer(raw, dtype=np.uint8)
    if dtype is DType.INT4:
        nib = np.empty(2 * len(u8), dtype=np.int16)
        nib[0::2], nib[1::2] = u8 & 0xF, u8 >> 4
        flat = ((nib[:count] ^ 8) - 8).astype(np.int8)
    elif dtype is DType.BOOL:
        flat = u8 != 0
    elif dtype is DType.INT48:
        wide = np.zeros((count, 8), dtype=np.uint8)
        wide[:, :6] = u8.reshape(count, 6)
        flat = (wide.view("<i8").reshape(count) << 16) >> 16
    elif dtype is DType.BF16:
        flat = (u8.view("<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        flat = u8.view(dtype.storage.newbyteorder("<")).astype(dtype.storage)
    return flat.astype(dtype.storage).reshape(shape)


def encode_data(data: np.ndarray, dtype: DType) -> bytes:
    """Pack IR constant values into TOSA bytes (inverse of :func:`decode_data`)."""
    flat = np.ascontiguousarray(np.asarray(data).astype(dtype.storage)).reshape(-1)
    if dtype is DType.INT4:
        nib = (flat.astype(np.int16) & 0xF).astype(np.uint8)
        if len(nib) % 2:
            nib = np.append(nib, np.uint8(0))
        return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()
    if dtype is DType.BOOL:
        return flat.astype(np.uint8).tobytes()
    if dtype is DType.INT48:
        return flat.astype("<i8").view(np.uint8).reshape(-1, 8)[:, :6].tobytes()
    if dtype is DType.BF16:
        bits = flat.astype("<f4").view("<u4")
        if np.any(bits & 0xFFFF):
            raise SerializationError("BF16 data has values that are not bfloat16 (low 16 bits set)")
        return (bits >> 16).astype("<u2").tobytes()
    return flat.astype(dtype.storage.newbyteorder("<")).tobytes()


def _scalar_from_bytes(raw: bytes, dtype: DType, where: str) -> int | float:
    """CLAMP bounds: raw bytes of one value of the input's element type."""
    if dtype not in _ELEM_BYTES and dtype is not DType.INT4:
        raise SerializationError(f"{where}: cannot decode a {dtype.name} value")
    need = data_size(dtype, 1)
    if len(raw) < need:
        raise SerializationError(f"{where}: has {len(raw)} bytes, a {dtype.name} value needs {need}")
    value = decode_data(raw[:need], dtype, ())
    return float(value) if dtype.is_float else int(value)


def _scalar_to_bytes(value: int | float, dtype: DType) -> bytes:
    raw = encode_data(np.array(value).astype(dtype.storage) if dtype.is_float
                      else np.array(int(value), dtype=np.int64), dtype)
    return raw + bytes(-len(raw) % 8)   # tosa-tools pads CLAMP bounds to 8 bytes


# ============================================================================================
# Reading
# ============================================================================================

class _View:
    """A flatbuffer table at ``pos`` with every access bounds-checked."""

    __slots__ = ("buf", "pos", "tab", "vt_len", "what")

    def __init__(self, buf: bytes, pos: int, what: str):
        self.buf, self.pos, self.what = buf, pos, what
        _need(buf, pos, 4, what)
        self.tab = Table(buf, pos)
        vtable = pos - self.tab.Get(N.SOffsetTFlags, pos)
        _need(buf, vtable, 4, f"{what} vtable")
        vt_len = self.tab.Get(N.VOffsetTFlags, vtable)
        _need(buf, vtable, vt_len, f"{what} vtable")
        self.vt_len = vt_len

    def _field(self, slot: int) -> int:
        """Absolute position of field ``slot`` or 0 when absent."""
        if 4 + 2 * slot >= self.vt_len:
            return 0
        rel = self.tab.Offset(4 + 2 * slot)
        return self.pos + rel if rel else 0

    def scalar(self, slot: int, flags: Any, default: Any) -> Any:
        at = self._field(slot)
        if not at:
            return default
        _need(self.buf, at, flags.bytewidth, f"{self.what} field {slot}")
        return self.tab.Get(flags, at)

    def _target(self, at: int, what: str) -> int:
        _need(self.buf, at, 4, what)
        target = at + self.tab.Get(N.UOffsetTFlags, at)
        _need(self.buf, target, 4, what)
        return target

    def table(self, slot: int, what: str) -> "_View | None":
        at = self._field(slot)
        return _View(self.buf, self._target(at, what), what) if at else None

    def _vector(self, slot: int, elem: int, what: str) -> tuple[int, int]:
        at = self._field(slot)
        if not at:
            return 0, 0
        start = self._target(at, what)
        count = self.tab.Get(N.UOffsetTFlags, start)
        _need(self.buf, start + 4, count * elem, what)
        return start + 4, count

    def raw(self, slot: int, elem: int, what: str) -> bytes:
        start, count = self._vector(slot, elem, what)
        return bytes(self.buf[start:start + count * elem])

    def ints(self, slot: int, what: str) -> tuple[int, ...]:
        raw = self.raw(slot, 4, what)
        return tuple(int(v) for v in struct.unpack(f"<{len(raw) // 4}i", raw))

    def tables(self, slot: int, what: str) -> list["_View"]:
        start, count = self._vector(slot, 4, what)
        return [_View(self.buf, self._target(start + 4 * i, what), f"{what}[{i}]") for i in range(count)]

    def string(self, slot: int, what: str) -> str:
        at = self._field(slot)
        return _string(self.buf, self._target(at, what), what, self.tab) if at else ""

    def strings(self, slot: int, what: str) -> list[str]:
        start, count = self._vector(slot, 4, what)
        return [_string(self.buf, self._target(start + 4 * i, what), f"{what}[{i}]", self.tab)
                for i in range(count)]


def _need(buf: bytes, pos: int, size: int, what: str) -> None:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise SerializationError(f"{what}: offset {pos} (+{size} bytes) is outside the "
                                 f"{len(buf)}-byte file (truncated or corrupt)")


def _string(buf: bytes, pos: int, what: str, tab: Table) -> str:
    length = tab.Get(N.UOffsetTFlags, pos)
    _need(buf, pos + 4, length, what)
    try:
        return bytes(buf[pos + 4:pos + 4 + length]).decode("utf-8")
    except UnicodeDecodeError:
        raise SerializationError(f"{what}: string is not valid UTF-8") from None


def read_tosa(data: bytes | str | os.PathLike, source: str | None = None) -> Graph:
    """Parse a TOSA flatbuffer (bytes or a file path) into a :class:`Graph`."""
    if isinstance(data, (str, os.PathLike)):
        source = source or os.fspath(data)
        data = read_model_bytes(data)            # a regular file only, read within bounds
    source = source or "<tosa bytes>"
    buf = bytes(data)
    return parse_guarded(lambda: _read_graph(buf, source), source, "TOSA flatbuffer")


def _read_graph(buf: bytes, source: str) -> Graph:
    if len(buf) < 8:
        raise SerializationError(f"file has {len(buf)} bytes, too short for a TOSA flatbuffer")
    if not BufferHasIdentifier(buf, 0, FILE_IDENTIFIER):
        raise SerializationError(f"file identifier is {bytes(buf[4:8])!r}, expected b'TOSA' "
                                 f"(not a TOSA flatbuffer)")
    root = _View(buf, struct.unpack_from("<I", buf, 0)[0], "TosaGraph")
    ver = root.table(_G_VERSION, "TosaGraph.version")
    if ver is None:
        raise SerializationError("TosaGraph has no version")
    version = tuple(ver.scalar(s, N.Int32Flags, -1) for s in (_V_MAJOR, _V_MINOR, _V_PATCH))
    if version[0] != 1:
        raise SerializationError(f"TOSA version {'.'.join(map(str, version))} is not supported "
                                 f"(tosac reads TOSA 1.x)")
    graph = Graph(version=version)  # type: ignore[arg-type]
    for r, region in enumerate(root.tables(_G_REGIONS, "TosaGraph.regions")):
        blocks = region.tables(_R_BLOCKS, f"region {r} blocks")
        if len(blocks) != 1:
            raise SerializationError(f"region {r} has {len(blocks)} basic blocks; tosac supports "
                                     f"exactly one per region")
        name = region.string(_R_NAME, f"region {r} name") or blocks[0].string(_B_NAME, "block name")
        if name in graph.blocks:
            raise SerializationError(f"region name '{name}' is used twice")
        graph.blocks[name] = _read_block(blocks[0], name)
    if not graph.blocks:
        raise SerializationError("TosaGraph has no regions")
    return graph


def _read_block(view: _View, name: str) -> Block:
    where = f"block '{name}'"
    block = Block(name=name, inputs=view.strings(_B_INPUTS, f"{where} inputs"),
                  outputs=view.strings(_B_OUTPUTS, f"{where} outputs"))
    shells = [_read_op_shell(v, f"{where} op #{i}") for i, v in
              enumerate(view.tables(_B_OPERATORS, f"{where} operators"))]
    const_outputs = {o for op, _ in shells if op.name in ("CONST", "CONST_SHAPE") for o in op.outputs}
    for i, tv in enumerate(view.tables(_B_TENSORS, f"{where} tensors")):
        _add(block, _read_tensor(tv, f"{where} tensor #{i}", const_outputs), where)
    for i, sv in enumerate(view.tables(_B_SHAPES, f"{where} shapes")):
        _add(block, _read_shape(sv, f"{where} shape #{i}", const_outputs), where)
    for i, (op, attr_view) in enumerate(shells):
        op.attrs = _read_attrs(op, attr_view, block, f"{where}: {op.label(i)}")
        block.ops.append(op)
    _restore_unsigned(block)
    return block


def _add(block: Block, tensor: Tensor, where: str) -> None:
    if tensor.name in block.tensors:
        raise SerializationError(f"{where}: tensor '{tensor.name}' is defined twice")
    block.tensors[tensor.name] = tensor


def _dtype(code: int, where: str) -> DType:
    name = FB_DTYPES[code] if 0 <= code < len(FB_DTYPES) else None
    if name is None:
        raise SerializationError(f"{where}: unknown dtype code {code}")
    if name not in DType.__members__:
        raise SerializationError(f"{where}: dtype {name} is not supported by tosac")
    return DType[name]


def _read_tensor(v: _View, where: str, const_outputs: set[str]) -> Tensor:
    name = v.string(_T_NAME, f"{where} name")
    where = f"tensor '{name}'"
    if v.scalar(_T_VARIABLE, N.BoolFlags, False) or v.scalar(_T_UNRANKED, N.BoolFlags, False):
        raise SerializationError(f"{where}: variable or unranked tensors are not supported")
    if v.scalar(_T_OFFSET, N.Uint64Flags, 0) > 1 or v.scalar(_T_SCALE_TYPE, N.Uint32Flags, 0):
        raise SerializationError(f"{where}: external data or block scales are not supported")
    dtype = _dtype(v.scalar(_T_TYPE, N.Uint32Flags, 0), where)
    shape = v.ints(_T_SHAPE, f"{where} shape")   # negative dims: ERROR_IF tests, the verifier's job
    ttype = TensorType(dtype, shape)
    raw = v.raw(_T_DATA, 1, f"{where} data")
    data = None
    if raw or name in const_outputs:
        data = _decode_checked(raw, ttype, where)
    return Tensor(name, ttype, data)


def _read_shape(v: _View, where: str, const_outputs: set[str]) -> Tensor:
    name = v.string(_S_NAME, f"{where} name")
    where = f"shape '{name}'"
    rank = v.scalar(_S_RANK, N.Uint32Flags, 0)
    ttype = TensorType(DType.SHAPE, (rank,))
    raw = v.raw(_S_DATA, 1, f"{where} data")
    data = _decode_checked(raw, ttype, where) if raw or name in const_outputs else None
    return Tensor(name, ttype, data)


def _decode_checked(raw: bytes, ttype: TensorType, where: str) -> np.ndarray:
    if any(d < 0 for d in ttype.shape):
        raise SerializationError(f"{where}: constant with negative dimension {list(ttype.shape)}")
    if ttype.dtype is DType.SHAPE and ttype.shape == (0,) and len(raw) == 8:
        raw = b""   # tosa-tools writes an empty (rank 0) shape value as one int64
    need = data_size(ttype.dtype, ttype.size)
    if len(raw) != need:
        raise SerializationError(f"{where} data has {len(raw)} bytes, {ttype.dtype.name}"
                                 f"[{','.join(map(str, ttype.shape))}] needs {need}")
    return decode_data(raw, ttype.dtype, ttype.shape)


def _read_op_shell(v: _View, where: str) -> tuple[Op, _View | None]:
    code = v.scalar(_O_OP, N.Uint32Flags, 0)
    if not 0 < code < len(FB_OPS):
        raise SerializationError(f"{where}: unknown op code {code}")
    name = FB_OPS[code]
    if name not in SCHEMAS:
        raise SerializationError(f"{where}: operator {name} is not supported by tosac")
    attr_type = v.scalar(_O_ATTR_TYPE, N.Uint8Flags, 0)
    if attr_type not in (0, code):
        raise SerializationError(f"{where}: {name} has attribute type {attr_type}, expected {code}")
    attr = v.table(_O_ATTR, f"{where} attribute") if attr_type else None
    loc = v.table(_O_LOCATION, f"{where} location")
    text = loc.string(0, f"{where} location text") if loc is not None else ""
    op = Op(name, v.strings(_O_INPUTS, f"{where} inputs"), v.strings(_O_OUTPUTS, f"{where} outputs"),
            location=text or None)
    return op, attr


def _read_attrs(op: Op, v: _View | None, block: Block, where: str) -> dict[str, Any]:
    fields = ATTR_FIELDS.get(op.name, ())
    specs = SCHEMAS[op.name].attrs
    attrs: dict[str, Any] = {}
    for slot, fname in enumerate(fields):
        kind = specs[fname].kind
        what = f"{where} attribute {fname}"
        if kind is AttrKind.INT:
            attrs[fname] = v.scalar(slot, N.Int32Flags, 0) if v else 0
        elif kind is AttrKind.BOOL:
            attrs[fname] = bool(v.scalar(slot, N.BoolFlags, False)) if v else False
        elif kind is AttrKind.INTS:
            attrs[fname] = v.ints(slot, what) if v else ()
        elif kind is AttrKind.STRING:
            attrs[fname] = v.string(slot, what) if v else ""
        elif kind is AttrKind.DTYPE:
            attrs[fname] = _dtype(v.scalar(slot, N.Uint32Flags, 0) if v else 0, what)
        elif kind in _ENUMS:
            code = v.scalar(slot, N.Uint32Flags, 0) if v else 0
            enum = _ENUMS[kind]
            try:
                attrs[fname] = enum(code)
            except ValueError:
                raise SerializationError(f"{what}: {code} is not a valid {enum.__name__}") from None
        elif kind is AttrKind.SCALAR:
            src = _clamp_type_source(op, block)
            if src is None:
                raise SerializationError(f"{what}: needs the input's dtype but input is undefined")
            attrs[fname] = _scalar_from_bytes(v.raw(slot, 1, what) if v else b"", src.dtype, what)
    return attrs


def _clamp_type_source(op: Op, block: Block) -> Tensor | None:
    """The tensor whose dtype CLAMP bounds use: the input, else (malformed op) the output."""
    for name in op.inputs[:1] + op.outputs[:1]:
        if name in block.tensors:
            return block.tensors[name]
    return None


def _restore_unsigned(block: Block) -> None:
    """INT8/INT16 tensors that only serve as a RESCALE's unsigned input/output become UINT8/16.

    A tensor qualifies when every op reference to it is an unsigned RESCALE role (input 0
    with ``input_unsigned``, output 0 with ``output_unsigned``) or the output of a CONST,
    and at least one is a RESCALE role; any other use means the signed reading is meant.
    """
    unsigned_roles: dict[str, int] = {}
    other_uses: set[str] = set()
    for op in block.ops:
        refs = [(i, n, False) for i, n in enumerate(op.inputs)] + [(i, n, True) for i, n in
                                                                   enumerate(op.outputs)]
        for index, name, is_output in refs:
            flag = "output_unsigned" if is_output else "input_unsigned"
            if op.name == "RESCALE" and index == 0 and op.attrs.get(flag):
                unsigned_roles[name] = unsigned_roles.get(name, 0) + 1
            elif not (op.name == "CONST" and is_output):
                other_uses.add(name)
    for name in unsigned_roles:
        t = block.tensors.get(name)
        if t is None or t.dtype not in _UNSIGNED_OF or name in other_uses:
            continue
        new = _UNSIGNED_OF[t.dtype]
        data = None if t.data is None else t.data.view(new.storage)
        block.tensors[name] = Tensor(name, TensorType(new, t.shape), data)


# ============================================================================================
# Writing
# ============================================================================================

def write_tosa(graph: Graph) -> bytes:
    """Serialise ``graph`` as a TOSA flatbuffer accepted by the official tools."""
    try:
        return _Writer(graph).build()
    except SerializationError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, struct.error, AttributeError) as e:
        raise SerializationError(f"cannot write TOSA flatbuffer: {type(e).__name__}: {e}") from None


class _Writer:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.b = flatbuffers.Builder(1024)

    def build(self) -> bytes:
        b = self.b
        if not self.graph.blocks:
            raise SerializationError("cannot write a graph without blocks")
        regions = [self._region(name, blk) for name, blk in self.graph.blocks.items()]
        regions_vec = self._offsets(regions)
        major, minor, patch = (int(x) for x in self.graph.version)
        b.StartObject(4)
        b.PrependInt32Slot(_V_MAJOR, major, -1)
        b.PrependInt32Slot(_V_MINOR, minor, -1)
        b.PrependInt32Slot(_V_PATCH, patch, -1)
        b.PrependBoolSlot(_V_DRAFT, False, True)
        version = b.EndObject()
        b.StartObject(4)
        b.PrependUOffsetTRelativeSlot(_G_VERSION, version, 0)
        b.PrependUOffsetTRelativeSlot(_G_REGIONS, regions_vec, 0)
        root = b.EndObject()
        b.Finish(root, FILE_IDENTIFIER)
        return bytes(b.Output())

    # -- vector helpers
    def _offsets(self, items: list[int]) -> int:
        self.b.StartVector(4, len(items), 4)
        for off in reversed(items):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def _strings(self, items: list[str]) -> int:
        return self._offsets([self.b.CreateString(s) for s in items])

    def _ints(self, values: tuple[int, ...]) -> int:
        self.b.StartVector(4, len(values), 4)
        for x in reversed(values):
            self.b.PrependInt32(int(x))
        return self.b.EndVector()

    def _bytes(self, raw: bytes) -> int:
        """A [ubyte] vector aligned to 8 (the schema's force_align: 8)."""
        b = self.b
        b.StartVector(1, len(raw), 8)
        b.head = b.head - len(raw)
        b.Bytes[b.head:b.head + len(raw)] = raw
        return b.EndVector()

    def _table(self, nfields: int, fields: list[tuple[Callable[..., None], int, Any, Any]]) -> int:
        self.b.StartObject(nfields)
        for fn, slot, value, default in fields:
            fn(slot, value, default)
        return self.b.EndObject()

    # -- graph pieces
    def _region(self, name: str, block: Block) -> int:
        blk = self._block(block)
        b = self.b
        name_off, blocks = b.CreateString(name), self._offsets([blk])
        return self._table(2, [(b.PrependUOffsetTRelativeSlot, _R_NAME, name_off, 0),
                               (b.PrependUOffsetTRelativeSlot, _R_BLOCKS, blocks, 0)])

    def _block(self, block: Block) -> int:
        b = self.b
        ops = [self._op(op, block, i) for i, op in enumerate(block.ops)]
        tensors = [self._tensor(t) for t in block.tensors.values() if t.dtype is not DType.SHAPE]
        shapes = [self._shape(t) for t in block.tensors.values() if t.dtype is DType.SHAPE]
        offs = (b.CreateString(block.name), self._offsets(ops), self._offsets(tensors),
                self._strings(block.inputs), self._strings(block.outputs), self._offsets(shapes))
        return self._table(6, [(b.PrependUOffsetTRelativeSlot, slot, off, 0)
                               for slot, off in enumerate(offs)])

    def _tensor(self, t: Tensor) -> int:
        b = self.b
        dtype = _SIGNED_OF.get(t.dtype, t.dtype)
        name, shape = b.CreateString(t.name), self._ints(t.shape)
        data = self._bytes(self._encode(t)) if t.data is not None else 0
        fields = [(b.PrependUOffsetTRelativeSlot, _T_NAME, name, 0),
                  (b.PrependUOffsetTRelativeSlot, _T_SHAPE, shape, 0),
                  (b.PrependUint32Slot, _T_TYPE, FB_DTYPES.index(dtype.name), 0)]
        if data:
            fields.append((b.PrependUOffsetTRelativeSlot, _T_DATA, data, 0))
        return self._table(15, fields)

    def _shape(self, t: Tensor) -> int:
        b = self.b
        if len(t.shape) != 1:
            raise SerializationError(f"SHAPE tensor '{t.name}' must have type shape (rank,), "
                                     f"got {list(t.shape)}")
        name = b.CreateString(t.name)
        raw = self._encode(t) if t.data is not None else None
        data = self._bytes(raw or bytes(8)) if raw is not None else 0   # as tosa-tools: rank 0 → 8 bytes
        fields = [(b.PrependUOffsetTRelativeSlot, _S_NAME, name, 0),
                  (b.PrependUint32Slot, _S_RANK, int(t.shape[0]), 0)]
        if data:
            fields.append((b.PrependUOffsetTRelativeSlot, _S_DATA, data, 0))
        return self._table(3, fields)

    @staticmethod
    def _encode(t: Tensor) -> bytes:
        data = np.asarray(t.data)
        if data.size != t.type.size:
            raise SerializationError(f"tensor '{t.name}' data has {data.size} elements, "
                                     f"type {t.type} needs {t.type.size}")
        if t.dtype in _SIGNED_OF:   # unsigned: same bits as the signed file type
            signed = _SIGNED_OF[t.dtype]
            bits = np.ascontiguousarray(data.astype(t.dtype.storage)).view(signed.storage)
            return encode_data(bits, signed)
        return encode_data(data, t.dtype)

    def _op(self, op: Op, block: Block, index: int) -> int:
        b = self.b
        code = OP_CODE.get(op.name)
        if code is None or op.name not in SCHEMAS:
            raise SerializationError(f"block '{block.name}': {op.label(index)}: unknown operator")
        attr = self._attrs(op, block, index)
        inputs, outputs = self._strings(op.inputs), self._strings(op.outputs)
        loc = 0
        if op.location is not None:
            text = b.CreateString(op.location)
            loc = self._table(1, [(b.PrependUOffsetTRelativeSlot, 0, text, 0)])
        fields = [(b.PrependUint32Slot, _O_OP, code, 0), (b.PrependUint8Slot, _O_ATTR_TYPE, code, 0),
                  (b.PrependUOffsetTRelativeSlot, _O_ATTR, attr, 0),
                  (b.PrependUOffsetTRelativeSlot, _O_INPUTS, inputs, 0),
                  (b.PrependUOffsetTRelativeSlot, _O_OUTPUTS, outputs, 0)]
        if loc:
            fields.append((b.PrependUOffsetTRelativeSlot, _O_LOCATION, loc, 0))
        return self._table(6, fields)

    def _attrs(self, op: Op, block: Block, index: int) -> int:
        b = self.b
        fields = ATTR_FIELDS.get(op.name, ())
        specs = SCHEMAS[op.name].attrs
        where = f"block '{block.name}': {op.label(index)}"
        entries = []
        for slot, fname in enumerate(fields):
            spec = specs[fname]
            value = op.attrs.get(fname, spec.default)
            if value is None:
                raise SerializationError(f"{where}: attribute '{fname}' is missing")
            kind = spec.kind
            if kind is AttrKind.INT:
                entries.append((b.PrependInt32Slot, slot, int(value), 0))
            elif kind is AttrKind.BOOL:
                entries.append((b.PrependBoolSlot, slot, bool(value), False))
            elif kind is AttrKind.DTYPE:
                entries.append((b.PrependUint32Slot, slot, FB_DTYPES.index(value.name), 0))
            elif kind in _ENUMS:
                entries.append((b.PrependUint32Slot, slot, _ENUMS[kind](value).value, 0))
            elif kind is AttrKind.INTS:
                entries.append((b.PrependUOffsetTRelativeSlot, slot, self._ints(tuple(value)), 0))
            elif kind is AttrKind.STRING:
                entries.append((b.PrependUOffsetTRelativeSlot, slot, b.CreateString(value), 0))
            elif kind is AttrKind.SCALAR:
                src = _clamp_type_source(op, block)
                if src is None:
                    raise SerializationError(f"{where}: attribute '{fname}' needs the input's dtype")
                raw = _scalar_to_bytes(value, _SIGNED_OF.get(src.dtype, src.dtype))
                entries.append((b.PrependUOffsetTRelativeSlot, slot, self._bytes(raw), 0))
        return self._table(len(fields), entries)

"""How IR tensors appear in loop nests: storage types, constant operands, value conversions.

Values inside expressions use the tensor's storage width (``i8`` for int8,
``i64`` for int48), except booleans, which are ``i1`` in expressions and one
byte in memory, as numpy stores them.
"""
from __future__ import annotations

import numpy as np

from tosac.errors import UnsupportedError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, TensorType
from tosac.schedules import loopnest as ln
from tosac.schedules.generic import TensorArg

_STORAGE = {DType.BOOL: "i8", DType.INT4: "i8", DType.INT8: "i8", DType.UINT8: "i8", DType.INT16: "i16",
            DType.UINT16: "i16", DType.INT32: "i32", DType.INT48: "i64", DType.INT64: "i64", DType.SHAPE: "i64",
            DType.FP32: "f32", DType.FP16: "f16", DType.BF16: "f32"}


def storage_type(dtype: DType) -> str:
    try:
        return _STORAGE[dtype]
    except KeyError:
        raise UnsupportedError(f"no code generation for element type {dtype.name}") from None


def value_type(dtype: DType) -> str:
    """The expression type of a value of ``dtype`` (``i1`` for bool)."""
    return "i1" if dtype is DType.BOOL else storage_type(dtype)


def tensor_arg(name: str, ttype: TensorType) -> TensorArg:
    return TensorArg(name, storage_type(ttype.dtype), ttype.shape)


def loaded(value: ln.Expr, dtype: DType) -> ln.Expr:
    """A value just loaded from memory, as an expression of ``value_type(dtype)``."""
    if dtype is DType.BOOL:
        return ln.binary("ne", value, ln.Const(0, "i8"))
    return value


def stored(value: ln.Expr, dtype: DType) -> ln.Expr:
    """An expression value converted to what memory holds."""
    if dtype is DType.BOOL:
        return ln.cast(value, "i8", signed=False)
    return value


def to_i64(value: ln.Expr, dtype: DType, unsigned: bool = False) -> ln.Expr:
    """Exact integer value in i64 (zero-extended for bool and unsigned types)."""
    return ln.cast(value, "i64", signed=not (unsigned or dtype is DType.BOOL or not dtype.signed))


def i64(v: int) -> ln.Const:
    return ln.Const(int(v), "i64")


class Operands:
    """The operands of one op in a block: constant values or buffers to load."""

    def __init__(self, block: Block, names: list[str]):
        self.block = block
        self.names = names

    def type(self, i: int) -> TensorType:
        return self.block.type_of(self.names[i])

    def const(self, i: int) -> np.ndarray | None:
        return self.block.constant(self.names[i])

    def scalar(self, i: int, unsigned: bool = False) -> ln.Expr:
        """A one-element operand (zero point, shift) as an i64 expression."""
        data = self.const(i)
        dtype = self.type(i).dtype
        if data is not None:
            v = int(np.asarray(data).reshape(-1)[0])
            if unsigned and dtype.signed and dtype.bits < 64:
                v &= (1 << dtype.bits) - 1
            return i64(v)
        st = storage_type(dtype)
        return to_i64(loaded(ln.Load(self.names[i], ln.Const(0), st), dtype), dtype, unsigned)

    def per_channel(self, i: int, channel: ln.Expr | None) -> ln.Expr:
        """Element ``channel`` of a 1-D operand (or element 0 when it has one), as i64."""
        data = self.const(i)
        dtype = self.type(i).dtype
        if data is not None:
            flat = np.asarray(data).reshape(-1)
            if flat.size == 1 or channel is None or bool(np.all(flat == flat[0])):
                return i64(int(flat[0]))
        size = self.type(i).size
        index = ln.Const(0) if size == 1 or channel is None else channel
        return to_i64(ln.Load(self.names[i], index, storage_type(dtype)), dtype)

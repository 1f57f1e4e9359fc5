"""Element types of the IR and how each is stored in numpy.

Integer types are exact: int4 values live in int8 storage, int48 values in
int64 storage (the TOSA conformance tests store INT48 as int64 too). UINT8 and
UINT16 exist only as the input of a RESCALE with ``input_unsigned`` or the
output of one with ``output_unsigned``: TOSA 1.0 files store such tensors as
INT8/INT16 and the RESCALE flags say how to read the bits.
"""
from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    """An element type: (numpy storage, bits, signed, kind)."""

    BOOL = ("bool", 1, False, "bool")
    INT4 = ("int8", 4, True, "int")
    INT8 = ("int8", 8, True, "int")
    UINT8 = ("uint8", 8, False, "int")
    INT16 = ("int16", 16, True, "int")
    UINT16 = ("uint16", 16, False, "int")
    INT32 = ("int32", 32, True, "int")
    INT48 = ("int64", 48, True, "int")
    INT64 = ("int64", 64, True, "int")
    FP16 = ("float16", 16, True, "float")
    BF16 = ("float32", 16, True, "float")
    FP32 = ("float32", 32, True, "float")
    SHAPE = ("int64", 64, True, "shape")

    def __init__(self, storage: str, bits: int, signed: bool, kind: str):
        self.storage = np.dtype(storage)
        self.bits = bits
        self.signed = signed
        self.kind = kind

    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def min(self) -> int:
        """Smallest representable integer value."""
        if self is DType.BOOL:
            return 0
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        """Largest representable integer value."""
        if self is DType.BOOL:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def short(self) -> str:
        """Short lower-case name used in text form and the CLI (``i8``, ``i48``...)."""
        return _SHORT[self]

    @classmethod
    def parse(cls, name: str) -> "DType":
        """Accept ``INT8``, ``int8`` or ``i8``."""
        key = name.strip()
        for dt in cls:
            if key.upper() == dt.name or key.lower() == _SHORT[dt]:
                return dt
        raise ValueError(f"unknown dtype '{name}'; expected one of {[d.name.lower() for d in cls]}")


_SHORT = {
    DType.BOOL: "bool", DType.INT4: "i4", DType.INT8: "i8", DType.UINT8: "u8",
    DType.INT16: "i16", DType.UINT16: "u16", DType.INT32: "i32", DType.INT48: "i48",
    DType.INT64: "i64", DType.FP16: "f16", DType.BF16: "bf16", DType.FP32: "f32",
    DType.SHAPE: "shape",
}


def wrap(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Two's-complement wrap of exact integer values into ``dtype`` storage."""
    v = np.asarray(values).astype(np.int64)
    if dtype.bits < 64:
        mask = (1 << dtype.bits) - 1
        v = v & mask
        if dtype.signed:
            v = np.where(v >= (1 << (dtype.bits - 1)), v - (1 << dtype.bits), v)
    return v.astype(dtype.storage)


def in_range(values: np.ndarray, dtype: DType) -> bool:
    """True when every value fits ``dtype`` without wrapping."""
    v = np.asarray(values)
    return v.size == 0 or (int(v.min()) >= dtype.min and int(v.max()) <= dtype.max)

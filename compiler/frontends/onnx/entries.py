"""What the converter knows about each ONNX tensor.

An :class:`Entry` is either a constant (numpy data, folded at import time) or
a tosac value. Two ideas keep the imported graph free of needless work:

- **Lazy layout.** ``layout`` is a permutation: the stored data is
  ``np.transpose(onnx_data, layout)``. A convolution leaves its result in NHWC
  (layout ``(0, 2, 3, 1)``), elementwise ops keep whatever layout they get, and
  an ONNX ``Transpose`` only changes the permutation. Data moves only where an
  op needs ONNX order (Reshape, Flatten, a graph output).
- **Lazy dequantization.** ``quant`` set means the ONNX tensor is the *float*
  ``scale · (q − zero_point)`` of the stored integers ``q``. DequantizeLinear
  produces such an entry without emitting anything; a float op whose inputs
  are all lazy and whose result goes straight into QuantizeLinear becomes an
  integer op (this is how QDQ models are legalised). Only a float consumer
  makes the frontend materialise floats.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tosac.errors import UnsupportedError
from tosac.ir.builder import NUMPY_TO_DTYPE, Value
from tosac.ir.dtypes import DType


@dataclass(frozen=True)
class Quant:
    """Affine quantization: real = scale · (q − zero_point); per-channel along ONNX ``axis``."""
    scale: np.ndarray           # float32, shape () or (C,)
    zero_point: np.ndarray      # int64, shape () or (C,)
    axis: int | None = None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def zp(self) -> int:
        """The zero point of a per-tensor quantization (or the common one of a per-channel one)."""
        return int(self.zero_point.reshape(-1)[0])

    @property
    def s(self) -> np.float32:
        return np.float32(self.scale.reshape(-1)[0])

    def same_as(self, other: "Quant") -> bool:
        return (self.scale.shape == other.scale.shape and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def shifted(self, delta: int) -> "Quant":
        return replace(self, zero_point=self.zero_point + delta)


@dataclass(frozen=True)
class Entry:
    """One ONNX tensor: constant ``data`` (ONNX order) or a tosac ``value`` in ``layout``."""
    shape: tuple[int, ...]                    # ONNX shape
    value: Value | None = None
    data: np.ndarray | None = None
    layout: tuple[int, ...] | None = None     # None: identity
    quant: Quant | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def perm(self) -> tuple[int, ...]:
        return self.layout if self.layout is not None else tuple(range(self.rank))

    @property
    def dtype(self) -> DType:
        return self.value.dtype if self.value is not None else dtype_of(self.data)

    def stored_axis(self, onnx_axis: int) -> int:
        """Where ONNX axis ``onnx_axis`` sits in the stored data."""
        return self.perm.index(onnx_axis % self.rank)


def dtype_of(data: np.ndarray) -> DType:
    dtype = np.asarray(data).dtype
    if dtype not in NUMPY_TO_DTYPE:
        raise UnsupportedError(f"element type {dtype} is not supported")
    return NUMPY_TO_DTYPE[dtype]


def relayout(current: tuple[int, ...], wanted: tuple[int, ...]) -> tuple[int, ...]:
    """The TRANSPOSE perm taking data stored in ``current`` layout to ``wanted`` layout."""
    return tuple(current.index(w) for w in wanted)


NHWC = (0, 2, 3, 1)

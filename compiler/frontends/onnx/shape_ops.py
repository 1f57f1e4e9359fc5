"""Shapes, types and indexing: Shape, Size, Cast, Expand and Gather.

Shapes are static in a tosac graph, so ``Shape`` and ``Size`` become constants
and the shape arithmetic exporters write around them (Gather, Concat,
ConstantOfShape, Range, Reshape targets) folds away at import. ONNX int64
tensors are int32 in tosac (TOSA has no int64 tensors): an int64 graph input,
such as a transformer's token ids, is an int32 input, and an int64 constant
that does not fit is refused.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
from onnx import helper

from tosac.errors import UnsupportedError
from tosac.frontends.onnx.converter import Converter, handles
from tosac.frontends.onnx.entries import Entry
from tosac.frontends.onnx.floating import float_entry, tiled
from tosac.frontends.onnx.reader import tensor_data
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType

# ONNX element type -> the tosac dtype Cast produces (int64 is carried as int32).
_CAST_TARGETS = {onnx.TensorProto.FLOAT: DType.FP32, onnx.TensorProto.INT8: DType.INT8,
                 onnx.TensorProto.INT16: DType.INT16, onnx.TensorProto.INT32: DType.INT32,
                 onnx.TensorProto.INT64: DType.INT32, onnx.TensorProto.BOOL: DType.BOOL}
_NUMPY_TARGETS = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT8: np.int8,
                  onnx.TensorProto.INT16: np.int16, onnx.TensorProto.INT32: np.int32,
                  onnx.TensorProto.INT64: np.int64, onnx.TensorProto.BOOL: np.bool_}


@handles("Constant")
def constant(cv: Converter, node: onnx.NodeProto) -> None:
    """A Constant node's value (tensor, or float/int scalar or list); sparse and string values are refused."""
    attr = next((a for a in node.attribute), None)
    if attr is None or attr.name not in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        raise UnsupportedError(f"attribute {attr.name if attr else '(none)'}: Constant needs value, value_float(s) "
                               "or value_int(s)")
    value = helper.get_attribute_value(attr)
    if attr.name == "value":
        data = tensor_data(value)
    else:
        data = np.asarray(value, np.float32 if "float" in attr.name else np.int64)
    cv.set_entry(node.output[0], Entry(data.shape, data=data))


@handles("Shape")
def shape(cv: Converter, node: onnx.NodeProto) -> None:
    """The static shape as an int64 constant (``start``/``end`` from opset 15)."""
    dims = cv.entry(node, 0).shape
    begin, end, _ = slice(cv.attr(node, "start", 0), cv.attr(node, "end", None)).indices(len(dims))
    data = np.asarray(dims[begin:end], np.int64)
    cv.set_entry(node.output[0], Entry(data.shape, data=data))


@handles("Size")
def size(cv: Converter, node: onnx.NodeProto) -> None:
    data = np.asarray(int(np.prod(cv.entry(node, 0).shape)), np.int64)
    cv.set_entry(node.output[0], Entry((), data=data))


@handles("Cast")
def cast(cv: Converter, node: onnx.NodeProto) -> None:
    """ONNX Cast as ONNX Runtime computes it: float to integer truncates toward zero (TOSA CAST rounds, so the
    value is truncated first), integers narrow by wrapping, anything to bool is ``x != 0``."""
    to = int(cv.attr(node, "to"))
    if to not in _CAST_TARGETS:
        raise UnsupportedError(f"attribute to={onnx.TensorProto.DataType.Name(to)}: Cast supports "
                               f"{', '.join(onnx.TensorProto.DataType.Name(t) for t in _CAST_TARGETS)}")
    e = cv.entry(node, 0)
    if e.is_const and e.quant is None:
        data = e.data.astype(_NUMPY_TARGETS[to]) if to != onnx.TensorProto.FLOAT or e.data.dtype != np.float64 \
            else e.data.astype(np.float32)
        cv.set_entry(node.output[0], Entry(e.shape, data=np.asarray(data)))
        return
    target = _CAST_TARGETS[to]
    if e.quant is not None or (target is DType.FP32 and e.dtype.is_float):
        e = float_entry(cv, node, 0)
    if e.dtype is target:
        cv.set_entry(node.output[0], e)
        return
    cv.set(node.output[0], converted(cv, cv.value(e), target), e.perm)


def converted(cv: Converter, x: Value, target: DType) -> Value:
    """``x`` (float32, bool or a signed integer) converted to ``target`` with C's rules, as ONNX Runtime does."""
    g, rank = cv.g, x.type.rank
    if x.dtype is DType.UINT8:
        x = g.add(g.cast(cv.signed(x)[0], DType.INT32), g.const(np.full((1,) * rank, 128, np.int32)))
    if target is DType.BOOL:
        zero = g.const(np.zeros((1,) * rank, x.dtype.storage if not x.dtype.is_float else np.float32), x.dtype)
        return g.op("LOGICAL_NOT", [g.op("EQUAL", [x, zero])])
    if x.dtype is DType.BOOL:
        x = g.cast(x, DType.INT32)
        return x if target is DType.INT32 else g.cast(x, target)
    if x.dtype.is_float and not target.is_float:
        zero = g.const(np.zeros((1,) * rank, np.float32))
        whole = g.select(g.greater_equal(x, zero), g.op("FLOOR", [x]), g.op("CEIL", [x]))
        x = g.cast(whole, DType.INT32)
        return x if target is DType.INT32 else g.cast(x, target)
    return g.cast(x, target)


@handles("Expand")
def expand(cv: Converter, node: onnx.NodeProto) -> None:
    """Broadcast to a constant shape: TOSA TILE of the size-1 axes (quantization passes through)."""
    e = cv.entry(node, 0)
    wanted = tuple(int(d) for d in cv.const(node, 1, "shape"))
    try:
        out = np.broadcast_shapes(e.shape, wanted)
    except ValueError:
        raise UnsupportedError(f"shape {list(wanted)} does not broadcast with the input's {list(e.shape)}") from None
    e = cv.to_rank(e, len(out))
    cv.set_entry(node.output[0], tiled(cv, node, e, [o if d == 1 else 1 for d, o in zip(e.shape, out)]))


@handles("Gather")
def gather(cv: Converter, node: onnx.NodeProto) -> None:
    """``np.take(data, indices, axis)``: constant indices into a tensor, or runtime indices (token ids) into a
    constant table (an embedding) or a tensor — TOSA GATHER on ``data`` seen as [outer, K, inner]; a run of
    consecutive constant indices is a SLICE. Negative indices count from the end, as ONNX says."""
    e = cv.entry(node, 0)
    indices = cv.entry(node, 1)
    axis = int(cv.attr(node, "axis", 0)) % e.rank
    if e.quant is not None and e.quant.per_channel:
        e = float_entry(cv, node, 0)
    k = e.shape[axis]
    if e.is_const and indices.is_const:
        data = np.take(e.data, _normalised(indices.data, k, node), axis=axis)
        cv.set_entry(node.output[0], replace(e, data=data, shape=data.shape))
        return
    out_shape = e.shape[:axis] + indices.shape + e.shape[axis + 1:]
    outer, inner = int(np.prod(e.shape[:axis])), int(np.prod(e.shape[axis + 1:]))
    if indices.is_const:
        flat = _normalised(indices.data, k, node).reshape(-1)
        if flat.size and np.array_equal(flat, np.arange(flat[0], flat[0] + flat.size)):
            start, count = [0, int(flat[0]), 0], [outer, flat.size, inner]
            values = cv.move(lambda v: cv.g.slice(v, start, count), cv.reshape_onnx(e, (outer, k, inner)))
            cv.set(node.output[0], cv.move(lambda v: cv.g.reshape(v, out_shape), values), None, e.quant)
            return
        index = cv.g.const(np.tile(flat.astype(np.int32), (outer, 1)))
    else:
        index = _runtime_index(cv, indices, k, outer)
    table = cv.g.const(e.data.reshape(outer, k, inner)) if e.is_const else cv.reshape_onnx(e, (outer, k, inner))
    picked = cv.move(lambda v: cv.g.op("GATHER", [v, index]), table)
    cv.set(node.output[0], cv.move(lambda v: cv.g.reshape(v, out_shape), picked), None, e.quant)


def _normalised(indices: np.ndarray, k: int, node: onnx.NodeProto) -> np.ndarray:
    indices = np.asarray(indices).astype(np.int64)
    if np.any(indices < -k) or np.any(indices >= k):
        raise UnsupportedError(f"Gather index out of range for an axis of size {k}: "
                               f"{int(indices.min())}..{int(indices.max())}")
    return np.where(indices < 0, indices + k, indices)


def _runtime_index(cv: Converter, indices: Entry, k: int, outer: int) -> Value:
    """Runtime indices as TOSA GATHER's int32 [outer, W], negative ones counted from the end, out-of-range ones
    clamped to the table."""
    if indices.quant is not None or indices.dtype not in (DType.INT32, DType.INT16, DType.INT8):
        raise UnsupportedError(f"Gather indices of type {indices.dtype.name} (int32/int64 indices are supported)")
    g = cv.g
    idx = g.reshape(cv.onnx_order(indices), (1, int(np.prod(indices.shape))))
    if idx.dtype is not DType.INT32:
        idx = g.cast(idx, DType.INT32)
    negative = g.greater(g.const(np.zeros((1, 1), np.int32)), idx)
    idx = g.select(negative, g.add(idx, g.const(np.full((1, 1), k, np.int32))), idx)
    # Out of range (ONNX Runtime raises): clamped, so no input can make the compiled code read outside the table.
    idx = g.minimum(g.maximum(idx, g.const(np.zeros((1, 1), np.int32))), g.const(np.full((1, 1), k - 1, np.int32)))
    return g.tile(idx, [outer, 1]) if outer > 1 else idx

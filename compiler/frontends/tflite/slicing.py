"""SLICE, STRIDED_SLICE and GATHER (int8, int16): index selection with constant indices.

All three copy raw values (same quantization in and out, :func:`.shape_ops.same_quant`),
so the work is computing at import which input index lands at each output index,
exactly as the reference kernel does, then selecting it per axis: SLICE for an
ascending run, TOSA GATHER by constant indices otherwise (:func:`.shape_ops.take`).

SLICE (slice.cc): ``begin``/``size`` int32 or int64 constants, ``size = −1`` meaning
"to the end"; Prepare rejects ``begin + size`` beyond a dimension.

STRIDED_SLICE (strided_slice.cc ``BuildStridedSliceParams`` and reference
``StartForAxis``/``EndForAxis``): the ellipsis expands to the axes that ``begin``
does not name, a ``new_axis_mask`` bit outside it inserts a size-1 axis, axes past
``begin`` are taken whole; per axis the start is ``begin`` (+ size if negative),
clamped to ``[0, n]`` (``[−1, n−1]`` for a negative stride) and replaced by the
first element under ``begin_mask``; the end likewise (``end_mask``: past the last),
``start + end`` with the ``offset`` option, ``start + 1`` under ``shrink_axis_mask``
(whose axis is then dropped). Elements ``start, start + stride, ...`` before the end
are taken; a negative stride walks backwards (GATHER with descending indices).

GATHER (gather.cc, reference ``Gather``): ``output[b, o, i..., n] = params[b, o,
indices[b, i...], n]`` over ``batch_dims`` leading batch axes; indices must be a
constant (int16/int32/int64) in ``[0, axis size)`` — TFLite's Eval fails on a
negative or too large one, so those are FrontendError here. ``params`` may be a
constant (an int8 embedding table) or a run-time tensor.
"""
from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, opt
from tosac.frontends.tflite.reader import OpDef
from tosac.frontends.tflite.shape_ops import axis_in, const_ints, counts, moved, reshaped, take
from tosac.ir.builder import Value


def _select(cv: Converter, op: OpDef, x: Value, picks: list[list[int]]) -> Value:
    """``x`` restricted to index list ``picks[d]`` on each axis ``d`` (each non-empty and in range)."""
    for d, idx in enumerate(picks):
        if not idx:
            raise UnsupportedError(f"{cv.where(op)}: the result is empty along axis {d}")
        if min(idx) < 0 or max(idx) >= x.shape[d]:
            raise FrontendError(f"{cv.where(op)}: index {idx} outside axis {d} of size {x.shape[d]}")
        if idx != list(range(x.shape[d])):
            x = take(cv.g, x, d, np.asarray(idx))
    return x


@handles("SLICE")
def slice_(cv: Converter, op: OpDef) -> None:
    counts(cv, op, (3, 3))
    x = moved(cv, op, op.inputs[0])
    begin, size = (const_ints(cv, op, k, w).reshape(-1) for k, w in ((1, "begin"), (2, "size")))
    if begin.size != len(x.shape) or size.size != len(x.shape):
        raise FrontendError(f"{cv.where(op)}: begin {begin.tolist()} and size {size.tolist()} for rank "
                            f"{len(x.shape)}")
    picks = []
    for d, (b, n) in enumerate(zip(begin.tolist(), size.tolist())):
        n = x.shape[d] - b if n == -1 else n
        if b < 0 or n < 0 or b + n > x.shape[d]:
            raise FrontendError(f"{cv.where(op)}: begin {b} and size {n} are beyond axis {d} of size {x.shape[d]}")
        picks.append(list(range(b, b + n)))
    cv.define(op, reshaped(cv.g, _select(cv, op, x, picks), [len(p) for p in picks]))


def _bit(mask: int, i: int) -> bool:
    return bool(mask >> i & 1)


def strided_picks(shape: tuple[int, ...], begin: list[int], end: list[int], strides: list[int], begin_mask: int,
                  end_mask: int, ellipsis_mask: int, new_axis_mask: int, shrink_mask: int, offset: bool
                  ) -> tuple[list[int], list[list[int]], list[bool]]:
    """TFLite's strided-slice index logic: the effective input shape (new axes inserted), the indices taken on
    each of its axes, and which of them are shrunk away."""
    count = len(begin)
    num_add = sum(1 for i in range(count) if not _bit(ellipsis_mask, i) and _bit(new_axis_mask, i))
    dims = len(shape) + num_add
    ellipsis, new_axis = set(), set()
    ellipsis_start, expanded, i = dims, 0, 0
    while i < dims:
        if _bit(ellipsis_mask, i):
            ellipsis_start = i
            stop = max(i + 1, min(i + 1 + num_add + len(shape) - count, dims))
            expanded = stop - i - 1
            ellipsis.update(range(i, stop))
            i = stop
            continue
        if _bit(new_axis_mask, i - expanded):
            new_axis.add(i)
        i += 1
    eff_shape, picks, shrunk = [], [], []
    added_ellipsis = added_axes = 0
    for i in range(dims):
        if i in ellipsis or (i not in new_axis and i >= count + expanded):
            if i in ellipsis:
                added_ellipsis = max(0, i - ellipsis_start)
            n = shape[i - added_axes]
            eff_shape.append(n)
            picks.append(list(range(n)))
            shrunk.append(False)
            continue
        if i in new_axis:
            eff_shape.append(1)
            picks.append([0])
            shrunk.append(False)
            added_axes += 1
            continue
        j = i - added_ellipsis
        n, s = shape[i - added_axes], strides[j]
        if s == 0:
            raise ValueError(f"stride {j} is 0")
        lo, hi = (0, n) if s > 0 else (-1, n - 1)
        start = min(max(begin[j] + n if begin[j] < 0 else begin[j], lo), hi)
        if _bit(begin_mask, j):
            start = 0 if s > 0 else n - 1
        if _bit(shrink_mask, j):
            stop = start if start >= n else start + 1
        else:
            stop = end[j] + (start if offset else 0)
            stop = min(max(stop + n if stop < 0 else stop, lo), hi)
            if _bit(end_mask, j):
                stop = n if s > 0 else -1
        eff_shape.append(n)
        picks.append(list(range(start, stop, s)))          # TFLite's loop; empty for a shrunk axis with s < 0
        shrunk.append(_bit(shrink_mask, j))
    return eff_shape, picks, shrunk


@handles("STRIDED_SLICE")
def strided_slice(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "StridedSliceOptions")
    counts(cv, op, (4, 4))
    x = moved(cv, op, op.inputs[0])
    begin, end, strides = (const_ints(cv, op, k, w, (TensorType.INT32,)).reshape(-1).tolist()
                           for k, w in ((1, "begin"), (2, "end"), (3, "strides")))
    if not len(begin) == len(end) == len(strides) <= 32:          # the masks have 32 bits
        raise FrontendError(f"{cv.where(op)}: begin, end and strides of lengths {len(begin)}, {len(end)}, "
                            f"{len(strides)}")
    try:
        eff, picks, shrunk = strided_picks(tuple(x.shape), begin, end, strides, o.BeginMask(), o.EndMask(),
                                           o.EllipsisMask(), o.NewAxisMask(), o.ShrinkAxisMask(), bool(o.Offset()))
    except (ValueError, IndexError) as e:
        raise FrontendError(f"{cv.where(op)}: begin {begin}, end {end}, strides {strides} and the masks do not "
                            f"fit shape {list(x.shape)}: {e}") from e
    y = _select(cv, op, reshaped(cv.g, x, eff), picks)
    cv.define(op, reshaped(cv.g, y, [len(p) for p, s in zip(picks, shrunk) if not s]))   # the file must agree


@handles("GATHER")
def gather(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "GatherOptions")
    counts(cv, op, (2, 2))
    x = moved(cv, op, op.inputs[0])
    idx = const_ints(cv, op, 1, "indices", (TensorType.INT16, TensorType.INT32, TensorType.INT64))
    rank = len(x.shape)
    axis = axis_in(cv, op, o.Axis(), rank, "option axis")
    bd = o.BatchDims() + (idx.ndim if o.BatchDims() < 0 else 0)
    if not 0 <= bd <= min(axis, idx.ndim) or bd >= rank or idx.shape[:bd] != x.shape[:bd]:
        raise FrontendError(f"{cv.where(op)}: option batch_dims {o.BatchDims()} for params {list(x.shape)}, "
                            f"indices {list(idx.shape)} and axis {axis}")
    k = x.shape[axis]
    if idx.size and (idx.min() < 0 or idx.max() >= k):
        raise FrontendError(f"{cv.where(op)}: indices {idx.min()}..{idx.max()} outside [0, {k}) (TFLite fails)")
    if idx.size == 0:
        raise UnsupportedError(f"{cv.where(op)}: empty indices give an empty output")
    batch, outer = int(np.prod(x.shape[:bd], dtype=np.int64)), int(np.prod(x.shape[bd:axis], dtype=np.int64))
    rows = np.repeat(idx.reshape(batch, -1), outer, axis=0)              # one row per (batch, outer)
    shape = list(x.shape[:axis]) + list(idx.shape[bd:]) + list(x.shape[axis + 1:])
    cv.define(op, reshaped(cv.g, take(cv.g, x, axis, rows), shape))

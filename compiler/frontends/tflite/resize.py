"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (int8, int16; NHWC; a constant output size).

RESIZE_NEAREST_NEIGHBOR (reference ``GetNearestNeighbor``) picks, per output row
``y``, the input row ``min(f((y + o) · s), H − 1)`` (``max(0, ·)`` too with
``half_pixel_centers``) in float32: ``s = H / OH`` or ``(H − 1) / (OH − 1)`` with
``align_corners``, ``o = 0.5`` with ``half_pixel_centers``, ``f`` = ``floor`` or,
with ``align_corners``, ``round`` (half away from zero); columns likewise. The
indices depend only on the sizes, so they are computed at import with the same
float32 operations (numpy float32 arithmetic is IEEE, as the C++ is on these
targets) and the output is two GATHERs (rows, then columns). Raw values are copied.

RESIZE_BILINEAR int8/int16 (reference ``ResizeBilinearInteger``): 10-bit fixed
point throughout. Per axis ``s10 = (1024·H + OH/2) / OH`` (align_corners:
``(1024·(H−1) + (OH−1)/2) / (OH−1)``), C integer division; the source position of
output ``y`` is ``p = y·s10`` (half_pixel_centers: ``y·s10 + s10/2 − 512``), rows
``y0 = max(p / 1024, 0)``, ``y1 = min(ceil(p / 1024), H − 1)`` and weight
``p − 1024·y0`` on ``y1``. The four products are summed in int64 and the output
is ``(Σ ± 2^19) / 2^20`` truncated: rounding half away from zero (measured: LiteRT
2.3 BUILTIN_REF gives −1 for a −0.5 tie at both types, so it is built without
``TFLITE_SINGLE_ROUNDING``, whose ``(Σ + 2^19) >> 20`` would give 0).

The sum is TOSA RESIZE BILINEAR with ``scale_n = 1024``, ``scale_d = s10``,
``offset = 0`` (half pixel: ``s10/2 − 512``) and the border that makes the output
size exact: RESIZE takes ``iy = floor(p / 1024)``, ``y0 = max(iy, 0)``,
``y1 = min(iy + 1, H − 1)``, fraction ``p − 1024·iy``, and returns the unrounded
sum. The two index rules differ only where the results agree: for ``p < 0`` (half
pixel, first rows) both read row 0 twice with weights summing to 1024, and where
``p`` is a multiple of 1024 TFLite's ``y1 = y0`` and TOSA's ``y1 = y0 + 1`` carries
weight 0. The input is first cut to the rows TFLite reads (``floor(p/1024)`` of the
first position to ``ceil(p/1024)`` of the last), which keeps the offset in
``[−512, 1024)`` and the border in ``(−1024, 1024)``; a single row read makes every
output row equal (RESIZE to one row, then TILE). Beyond the remaining TOSA level
limits (``scale_d < 16·scale_n``, upscale ``<= 256``) or where TFLite would read
past the input, UnsupportedError.

Rounding in int32: with ``Σ = 2^20·q + r``, ``0 <= r < 2^20``, the result is
``q + ((r + (q >> 31) + 2^19) >> 20)`` — ``q + 1`` above the tie, and at the tie
only for ``Σ > 0`` (``q >= 0``). int8 RESIZE's int32 sum is Σ itself (``|Σ| <=
2^27``); an int16 sum needs up to 36 bits (TOSA's int48 result feeds only RESCALE,
which cannot round half away from zero), so int16 input splits into ``x = 256·h
+ l`` (``h = x >> 8`` and ``l − 128`` both int8): ``Σ = 256·A + B + 128·2^20``
from two int8 RESIZEs (the weights sum to ``2^20``), and ``q``, ``r`` follow from
shifts and masks of ``A`` and ``B`` without overflow.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, opt
from tosac.frontends.tflite.reader import OpDef
from tosac.frontends.tflite.shape_ops import const_ints, counts, moved, take
from tosac.ir.builder import GraphBuilder, Value
from tosac.ir.dtypes import DType
from tosac.ir.ops import ResizeMode

FRACTION_BITS = 10
ONE = 1 << FRACTION_BITS


def _operands(cv: Converter, op: OpDef, options: str) -> tuple[Value, int, int, bool, bool]:
    """Input, output height and width, align_corners, half_pixel_centers (checked as TFLite's Prepare does)."""
    o = opt(op, cv, options)
    counts(cv, op, (2, 2))
    x = moved(cv, op, op.inputs[0])
    size = const_ints(cv, op, 1, "size", (TensorType.INT32,)).reshape(-1)
    if len(x.shape) != 4 or size.size != 2 or size.min() < 1:
        raise FrontendError(f"{cv.where(op)}: input {list(x.shape)} and size {size.tolist()} (rank 4 NHWC and two "
                            "positive sizes needed)")
    align, half = bool(o.AlignCorners()), bool(o.HalfPixelCenters())
    if align and half:
        raise FrontendError(f"{cv.where(op)}: align_corners and half_pixel_centers are both set (TFLite refuses)")
    return x, int(size[0]), int(size[1]), align, half


def nearest_indices(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """TFLite's ``GetNearestNeighbor`` for every output index, in float32."""
    f32 = np.float32
    scale = f32(n_in - 1) / f32(n_out - 1) if align and n_out > 1 else f32(n_in) / f32(n_out)
    pos = (np.arange(n_out).astype(f32) + f32(0.5 if half else 0.0)) * scale
    wide = pos.astype(np.float64)                           # + 0.5 exact: roundf / floorf of float32 values
    idx = np.sign(wide) * np.floor(np.abs(wide) + 0.5) if align else np.floor(pos)
    idx = np.minimum(idx.astype(np.int64), n_in - 1)
    return np.maximum(idx, 0) if half else idx


@handles("RESIZE_NEAREST_NEIGHBOR")
def resize_nearest(cv: Converter, op: OpDef) -> None:
    x, oh, ow, align, half = _operands(cv, op, "ResizeNearestNeighborOptions")
    rows = take(cv.g, x, 1, nearest_indices(x.shape[1], oh, align, half))
    cv.define(op, take(cv.g, rows, 2, nearest_indices(x.shape[2], ow, align, half)))


class BilinearAxis(NamedTuple):
    """One axis of the TOSA RESIZE (scale_n = 1024) reproducing TFLite's 10-bit positions on the input rows
    ``[start, start + rows)`` only, and how often the result is tiled."""
    start: int
    rows: int
    scale_d: int
    offset: int
    border: int
    tile: int


def bilinear_axis(n_in: int, n_out: int, align: bool, half: bool) -> BilinearAxis | None:
    """The axis plan, or None where TFLite would read past the input."""
    if align and n_out > 1:
        s10 = (ONE * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
    else:
        s10 = (ONE * n_in + n_out // 2) // n_out
    first = s10 // 2 - ONE // 2 if half else 0
    last = (n_out - 1) * s10 + first                    # TFLite's first and last positions p
    if last // ONE > n_in - 1:
        return None
    lo, hi = max(first // ONE, 0), min(-(-last // ONE), n_in - 1)      # the rows TFLite reads
    if lo == hi:                                        # one row: every output row is that row
        return BilinearAxis(lo, 1, ONE, 0, 0, n_out)
    step = s10 if n_out > 1 else ONE                   # one output: only p = first is used, any step will do
    return BilinearAxis(lo, hi - lo + 1, step, first - ONE * lo, last - ONE * hi, 1)


def _k(g: GraphBuilder, v: int) -> Value:
    """An int32 constant broadcast over rank-4 operands."""
    return g.const(np.full((1, 1, 1, 1), v, np.int32))


def _resize(g: GraphBuilder, x: Value, params: dict) -> Value:
    return g.resize(x, mode=ResizeMode.BILINEAR, **params)


def _floor_split(cv: Converter, x: Value, params: dict) -> tuple[Value, Value]:
    """TFLite's int64 sum Σ as ``(q, r)``, ``Σ = 2^20·q + r``, ``0 <= r < 2^20``, in int32 arithmetic."""
    g = cv.g
    if x.dtype is DType.INT8:                               # |Σ| <= 2^27: RESIZE's int32 result is Σ
        acc = _resize(g, x, params)
        return g.arithmetic_right_shift(acc, _k(g, 20), round=False), g.bitwise_and(acc, _k(g, ONE * ONE - 1))
    # int16: x = 256·h + l with h in int8 and l in [0, 256), so Σ = 256·A + B over two int8 RESIZEs
    # (B from l − 128, plus 128·2^20: the four weights always sum to 2^20).
    x32 = g.cast(x, DType.INT32)
    h = g.cast(g.arithmetic_right_shift(x32, _k(g, 8), round=False), DType.INT8)
    low = g.cast(g.sub(g.bitwise_and(x32, _k(g, 255)), _k(g, 128)), DType.INT8)
    a, b = _resize(g, h, params), g.add(_resize(g, low, params), _k(g, 128 << 20))
    # A = 2^12·a_hi + a_lo; Σ = 2^20·a_hi + R with 0 <= R = 256·a_lo + B < 2^29.
    rest = g.add(g.logical_left_shift(g.bitwise_and(a, _k(g, 4095)), _k(g, 8)), b)
    q = g.add(g.arithmetic_right_shift(a, _k(g, 12), round=False),
              g.arithmetic_right_shift(rest, _k(g, 20), round=False))
    return q, g.bitwise_and(rest, _k(g, ONE * ONE - 1))


@handles("RESIZE_BILINEAR")
def resize_bilinear(cv: Converter, op: OpDef) -> None:
    x, oh, ow, align, half = _operands(cv, op, "ResizeBilinearOptions")
    plans = [bilinear_axis(x.shape[a], n, align, half) for a, n in ((1, oh), (2, ow))]
    for p in plans:
        if p is None or not (p.scale_d < 16 * ONE and ONE <= 256 * p.scale_d):
            raise UnsupportedError(f"{cv.where(op)}: resizing {list(x.shape[1:3])} to {[oh, ow]} reads past the "
                                   "input or needs a TOSA RESIZE scale beyond the level limits (1/16 to 256)")
    py, px = plans
    x = take(cv.g, take(cv.g, x, 1, np.arange(py.start, py.start + py.rows)), 2,
             np.arange(px.start, px.start + px.rows))
    q, r = _floor_split(cv, x, dict(scale=[ONE, py.scale_d, ONE, px.scale_d], offset=[py.offset, px.offset],
                                    border=[py.border, px.border]))
    # Half away from zero: q + 1 when r > 2^19, or r = 2^19 and Σ >= 0 (i.e. q >= 0, as (q >> 31) + 1 = 1).
    g = cv.g
    up = g.add(g.add(r, g.arithmetic_right_shift(q, _k(g, 31), round=False)), _k(g, 1 << 19))
    y = g.add(q, g.arithmetic_right_shift(up, _k(g, 20), round=False))
    y = g.cast(y, x.dtype)
    cv.define(op, g.tile(y, [1, py.tile, px.tile, 1]) if py.tile * px.tile > 1 else y)

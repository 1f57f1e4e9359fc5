"""Reductions, data layout, scatter/gather and RESIZE (spec chapters reduction,
data_layout, scatter_gather, image)."""
from __future__ import annotations

import numpy as np

from tosac.ir.dtypes import DType
from tosac.ir.ops import NanMode, ResizeMode
from tosac.ir.reference.arith import check_range, i64, require
from tosac.ir.reference.registry import OpCall, kernel


def _shape_arg(call: OpCall, operand: str) -> list[int]:
    return [int(v) for v in np.asarray(call.arg(operand)).reshape(-1)]


@kernel("REDUCE_ALL", "REDUCE_ANY", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_SUM", "REDUCE_PRODUCT")
def reduce(call: OpCall) -> list[np.ndarray]:
    x, axis, dtype = call.args[0], call.attrs["axis"], call.in_types[0].dtype
    name = call.op.name
    if name == "REDUCE_SUM" and dtype.is_int:
        partial = np.cumsum(i64(x), axis=axis)     # every partial sum must fit (REQUIRE)
        check_range(partial, DType.INT32, call.label, "each partial sum")
        out = i64(x).sum(axis=axis, keepdims=True)
    elif name in ("REDUCE_MAX", "REDUCE_MIN"):
        ignore = dtype.is_float and call.attrs["nan_mode"] is NanMode.IGNORE
        fn = {("REDUCE_MAX", False): np.max, ("REDUCE_MIN", False): np.min,
              ("REDUCE_MAX", True): np.nanmax, ("REDUCE_MIN", True): np.nanmin}[(name, ignore)]
        with np.errstate(all="ignore"):
            out = fn(x, axis=axis, keepdims=True)
    else:
        fn = {"REDUCE_ALL": np.all, "REDUCE_ANY": np.any, "REDUCE_SUM": np.sum, "REDUCE_PRODUCT": np.prod}[name]
        out = fn(x, axis=axis, keepdims=True)
    return [np.asarray(out).astype(call.out.dtype.storage)]


@kernel("CONCAT")
def concat(call: OpCall) -> list[np.ndarray]:
    return [np.concatenate(call.args, axis=call.attrs["axis"]).astype(call.out.dtype.storage)]


@kernel("PAD")
def pad(call: OpCall) -> list[np.ndarray]:
    x, padding = call.args[0], _shape_arg(call, "padding")
    value = np.asarray(call.arg("pad_const")).reshape(-1)[0]
    widths = [(padding[2 * i], padding[2 * i + 1]) for i in range(x.ndim)]
    return [np.pad(x, widths, constant_values=value).astype(call.out.dtype.storage)]


@kernel("RESHAPE")
def reshape(call: OpCall) -> list[np.ndarray]:
    return [call.args[0].reshape(call.out.shape)]


@kernel("REVERSE")
def reverse(call: OpCall) -> list[np.ndarray]:
    return [np.flip(call.args[0], axis=call.attrs["axis"]).copy()]


@kernel("SLICE")
def slice_(call: OpCall) -> list[np.ndarray]:
    start, size = _shape_arg(call, "start"), _shape_arg(call, "size")
    return [call.args[0][tuple(slice(b, b + n) for b, n in zip(start, size))].copy()]


@kernel("TILE")
def tile(call: OpCall) -> list[np.ndarray]:
    return [np.tile(call.args[0], _shape_arg(call, "multiples")).reshape(call.out.shape)]


@kernel("TRANSPOSE")
def transpose(call: OpCall) -> list[np.ndarray]:
    return [np.transpose(call.args[0], call.attrs["perms"]).copy()]


@kernel("IDENTITY")
def identity(call: OpCall) -> list[np.ndarray]:
    return [call.args[0].copy()]


@kernel("GATHER")
def gather(call: OpCall) -> list[np.ndarray]:
    values, indices = call.args
    k = values.shape[1]
    require((indices >= 0) & (indices < k), call.label, f"0 <= index < K={k}")
    return [np.take_along_axis(values, i64(indices)[:, :, None], axis=1).astype(values.dtype)]


@kernel("SCATTER")
def scatter(call: OpCall) -> list[np.ndarray]:
    values_in, indices, inp = call.args
    k = values_in.shape[1]
    require((indices >= 0) & (indices < k), call.label, f"0 <= index < K={k}")
    for row in i64(indices):
        require(len(set(row.tolist())) == len(row), call.label, "each index is written at most once")
    out = values_in.copy()
    n_idx = np.arange(values_in.shape[0])[:, None]
    out[n_idx, i64(indices)] = inp
    return [out]


@kernel("RESIZE")
def resize(call: OpCall) -> list[np.ndarray]:
    x = call.args[0]
    sy_n, sy_d, sx_n, sx_d = _shape_arg(call, "scale")
    off_y, off_x = _shape_arg(call, "offset")
    _, oh, ow, _ = call.out.shape
    ih, iw = x.shape[1], x.shape[2]
    is_float = call.in_types[0].dtype.is_float

    def axis_coords(out_size: int, n: int, d: int, offset: int, in_size: int):
        pos = np.arange(out_size, dtype=np.int64) * d + offset
        base = np.floor_divide(pos, n)
        rem = pos - base * n
        return np.maximum(base, 0), np.minimum(base + 1, in_size - 1), rem

    y0, y1, dy = axis_coords(oh, sy_n, sy_d, off_y, ih)
    x0, x1, dx = axis_coords(ow, sx_n, sx_d, off_x, iw)
    out_t = call.out.dtype
    if call.in_types[0].dtype is DType.FP32:
        return [_resize_fp32(x, call.attrs["mode"], (oh, sy_n, sy_d, off_y, y0, y1), (ow, sx_n, sx_d, off_x, x0, x1))]
    if call.attrs["mode"] is ResizeMode.NEAREST:
        if is_float:
            ys, xs = np.where(dy / sy_n >= 0.5, y1, y0), np.where(dx / sx_n >= 0.5, x1, x0)
        else:
            ys, xs = np.where(2 * dy >= sy_n, y1, y0), np.where(2 * dx >= sx_n, x1, x0)
        return [x[:, ys][:, :, xs].astype(out_t.storage)]
    v = x.astype(np.float64) if is_float else i64(x)
    if is_float:
        fy, fx = (dy / sy_n)[None, :, None, None], (dx / sx_n)[None, None, :, None]
        uy = ux = 1.0
    else:
        fy, fx = dy[None, :, None, None], dx[None, None, :, None]
        uy, ux = sy_n, sx_n
    v00, v01 = v[:, y0][:, :, x0], v[:, y0][:, :, x1]
    v10, v11 = v[:, y1][:, :, x0], v[:, y1][:, :, x1]
    acc = v00 * (uy - fy) * (ux - fx) + v01 * (uy - fy) * fx + v10 * fy * (ux - fx) + v11 * fy * fx
    return [np.asarray(acc).astype(out_t.storage)]


def _resize_fp32(x: np.ndarray, mode: ResizeMode, ys: tuple, xs: tuple) -> np.ndarray:
    """fp32 RESIZE in float32 arithmetic, operation by operation as the official reference model computes it:
    the fraction is float(pos) / float(n) − float(floor(pos / n)), and the bilinear sum is accumulated left to
    right (compiled code repeats these exact operations)."""
    f32 = np.float32

    def fraction(out_size: int, n: int, d: int, offset: int) -> np.ndarray:
        pos = np.arange(out_size, dtype=np.int64) * d + offset
        return pos.astype(f32) / f32(n) - np.floor_divide(pos, n).astype(f32)

    (oh, sy_n, sy_d, off_y, y0, y1), (ow, sx_n, sx_d, off_x, x0, x1) = ys, xs
    dy, dx = fraction(oh, sy_n, sy_d, off_y), fraction(ow, sx_n, sx_d, off_x)
    if mode is ResizeMode.NEAREST:
        return x[:, np.where(dy >= f32(0.5), y1, y0)][:, :, np.where(dx >= f32(0.5), x1, x0)]
    dy, dx = dy[None, :, None, None], dx[None, None, :, None]
    ey, ex = f32(1) - dy, f32(1) - dx
    acc = x[:, y0][:, :, x0] * ey * ex
    acc = acc + x[:, y0][:, :, x1] * ey * dx
    acc = acc + x[:, y1][:, :, x0] * dy * ex
    acc = acc + x[:, y1][:, :, x1] * dy * dx
    return acc.astype(f32)

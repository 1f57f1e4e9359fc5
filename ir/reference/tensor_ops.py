"""Tensor operators: convolutions, MATMUL, pooling, ARGMAX (spec chapter tensor_ops).

Convolutions subtract the input zero point before padding, so out-of-bounds
taps contribute exactly 0, as the pseudo-code says. Accumulation is exact in
int64 (int8 x int8 into int32, int16 x int8 into int48); the accumulator's
REQUIRE is checked on the final sums (partial sums of int8 or int16 products
cannot leave the accumulator range for any kernel within the level limits
before the total does, except with cancellation; documented limitation).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tosac.ir.dtypes import DType
from tosac.ir.ops import NanMode
from tosac.ir.reference.arith import apply_scale_32, check_range, i64, reciprocal_scale
from tosac.ir.reference.registry import OpCall, kernel


def _operands(call: OpCall) -> tuple[np.ndarray, np.ndarray]:
    """(input - input_zp, weight - weight_zp) in int64, or the float values."""
    x, w = call.arg("input"), call.arg("weight")
    if call.in_types[0].dtype.is_float:
        return x.astype(np.float64), w.astype(np.float64)
    return i64(x) - call.scalar("input_zp"), i64(w) - call.scalar("weight_zp")


def _finish(call: OpCall, acc: np.ndarray) -> list[np.ndarray]:
    """Add the bias (broadcast when it has one element) and check the accumulator range."""
    out_t = call.out.dtype
    bias = call.arg("bias")
    bias = (bias.astype(np.float64) if out_t.is_float else i64(bias)).reshape(-1)
    if out_t.is_int:
        check_range(acc, out_t, call.label, "the accumulator")
        acc = acc + bias
        check_range(acc, out_t, call.label, "accumulator + bias")
    else:
        acc = acc + bias
    return [acc.astype(out_t.storage).reshape(call.out.shape)]


def _windows(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
             axes: tuple[int, ...]) -> np.ndarray:
    """Sliding windows over ``axes`` of ``x``: [..out positions.., C, *kernel]."""
    eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    win = sliding_window_view(x, eff, axis=axes)
    index = [slice(None)] * win.ndim
    for axis, s in zip(axes, stride):
        index[axis] = slice(None, None, s)
    for i, d in enumerate(dilation):
        index[x.ndim + i] = slice(None, None, d)
    return win[tuple(index)]


def _pad(x: np.ndarray, pad: tuple[int, ...], value=0) -> np.ndarray:
    widths = [(0, 0)] + [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)] + [(0, 0)]
    return np.pad(x, widths, constant_values=value)


@kernel("CONV2D", "CONV3D")
def conv(call: OpCall) -> list[np.ndarray]:
    x, w = _operands(call)
    spatial = w.ndim - 2
    axes = tuple(range(1, 1 + spatial))
    win = _windows(_pad(x, call.attrs["pad"]), w.shape[1:-1], call.attrs["stride"], call.attrs["dilation"], axes)
    # win: [N, *O, C, *K] -> [N, *O, *K, C]
    win = np.moveaxis(win, 1 + spatial, -1)
    lead = win.shape[:1 + spatial]
    cols = win.reshape(int(np.prod(lead)), -1)
    acc = cols @ w.reshape(w.shape[0], -1).T
    return _finish(call, acc.reshape(*lead, w.shape[0]))


@kernel("DEPTHWISE_CONV2D")
def depthwise_conv2d(call: OpCall) -> list[np.ndarray]:
    x, w = _operands(call)                      # w: [KH, KW, C, M]
    win = _windows(_pad(x, call.attrs["pad"]), w.shape[:2], call.attrs["stride"], call.attrs["dilation"], (1, 2))
    acc = np.einsum("nhwcij,ijcm->nhwcm", win, w)
    n, oh, ow, c, m = acc.shape
    return _finish(call, acc.reshape(n, oh, ow, c * m))


@kernel("TRANSPOSE_CONV2D")
def transpose_conv2d(call: OpCall) -> list[np.ndarray]:
    x, w = _operands(call)                      # x: [N, IH, IW, IC], w: [OC, KH, KW, IC]
    n, ih, iw, _ = x.shape
    oc, kh, kw, _ = w.shape
    _, oh, ow, _ = call.out.shape
    sy, sx = call.attrs["stride"]
    top, _, left, _ = call.attrs["out_pad"]
    acc = np.zeros((n, oh, ow, oc), dtype=x.dtype)
    iy, ix = np.arange(ih) * sy + top, np.arange(iw) * sx + left
    for ky in range(kh):
        ys = iy + ky
        ymask = (ys >= 0) & (ys < oh)
        if not ymask.any():
            continue
        for kx in range(kw):
            xs = ix + kx
            xmask = (xs >= 0) & (xs < ow)
            if not xmask.any():
                continue
            contrib = x[:, ymask][:, :, xmask] @ w[:, ky, kx, :].T
            acc[:, ys[ymask][:, None], xs[xmask][None, :], :] += contrib
    return _finish(call, acc)


@kernel("MATMUL")
def matmul(call: OpCall) -> list[np.ndarray]:
    a, b = call.arg("A"), call.arg("B")
    out_t = call.out.dtype
    if out_t.is_float:
        return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(out_t.storage)]
    acc = np.matmul(i64(a) - call.scalar("A_zp"), i64(b) - call.scalar("B_zp"))
    check_range(acc, out_t, call.label, "the accumulator")
    return [acc.astype(out_t.storage)]


@kernel("AVG_POOL2D")
def avg_pool2d(call: OpCall) -> list[np.ndarray]:
    x, dtype = call.arg("input"), call.in_types[0].dtype
    kernel_, stride, pad = call.attrs["kernel"], call.attrs["stride"], call.attrs["pad"]
    values = x.astype(np.float64) if dtype.is_float else i64(x) - call.scalar("input_zp")
    sums = _windows(_pad(values, pad), kernel_, stride, (1, 1), (1, 2)).sum(axis=(-2, -1))
    ones = np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64)
    counts = _windows(_pad(ones, pad), kernel_, stride, (1, 1), (1, 2)).sum(axis=(-2, -1))
    if dtype.is_float:
        return [(sums / counts).astype(dtype.storage)]
    check_range(sums, DType.INT32, call.label, "the accumulator")
    out = np.empty(sums.shape, dtype=np.int64)
    for count in np.unique(counts):
        mult, shift = reciprocal_scale(int(count))
        mask = np.broadcast_to(counts == count, sums.shape)
        out[mask] = apply_scale_32(sums[mask], mult, shift, False, call.label)
    out = np.clip(out + call.scalar("output_zp"), dtype.min, dtype.max)
    return [out.astype(dtype.storage)]


@kernel("MAX_POOL2D")
def max_pool2d(call: OpCall) -> list[np.ndarray]:
    x, dtype = call.arg("input"), call.in_types[0].dtype
    fill = -np.inf if dtype.is_float else dtype.min
    win = _windows(_pad(x, call.attrs["pad"], fill), call.attrs["kernel"], call.attrs["stride"], (1, 1), (1, 2))
    if dtype.is_float and call.attrs["nan_mode"] is NanMode.IGNORE:
        with np.errstate(all="ignore"):
            out = np.nanmax(win, axis=(-2, -1))
    else:
        out = win.max(axis=(-2, -1))
    return [out.astype(dtype.storage)]


@kernel("ARGMAX")
def argmax(call: OpCall) -> list[np.ndarray]:
    x, axis = call.args[0], call.attrs["axis"]
    if call.in_types[0].dtype.is_float and call.attrs["nan_mode"] is NanMode.IGNORE:
        all_nan = np.all(np.isnan(x), axis=axis)
        filled = np.where(np.isnan(x), -np.inf, x)
        out = np.where(all_nan, 0, np.argmax(filled, axis=axis))
    else:
        out = np.argmax(x, axis=axis)           # first index of the maximum (first NaN when propagating)
    return [np.asarray(out).astype(np.int32).reshape(call.out.shape)]

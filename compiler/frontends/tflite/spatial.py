"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D and MAX_POOL_2D (int8, NHWC).

Convolutions: TFLite's reference kernels skip padded taps, which is TOSA's
zero-point padding (a padded tap contributes ``(zp − zp) · w = 0``); the int32
accumulator plus bias is requantized per output channel with
``QuantizeMultiplier(input_scale · filter_scale[c] / output_scale)`` in double.

FULLY_CONNECTED is a 1x1 CONV2D on ``[batch, 1, 1, depth]``, but its
requantization rounds once: LiteRT 2.3's BUILTIN_REF FULLY_CONNECTED matches
``(acc·M + 2^(30−s)) >> (31−s)`` (TOSA SINGLE_ROUND), not the double rounding
of CONV_2D — measured: 5 of 300 random int8 models differ by 1 LSB with
DOUBLE_ROUND (ties created by the first rounding), 0 of 300 with SINGLE_ROUND,
and 150 hypothesis examples per op keep CONV_2D/DEPTHWISE_CONV_2D on DOUBLE_ROUND.

AVERAGE_POOL_2D: the reference kernel sums the *valid* taps and divides by
their count with rounding half away from zero (``(acc ± n/2) / n`` in C). TOSA's
AVG_POOL2D rounds differently, so the sum is a DEPTHWISE_CONV2D with weights of
ones (padded taps add 0) and the division is INTDIV (truncation, as C) of
``acc ± n//2`` by a constant tensor of per-position counts, the sign chosen
with SELECT: the reference kernel's arithmetic, step for step.
"""
from __future__ import annotations

import numpy as np
from tflite.Padding import Padding
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, nargs, opt
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType
from tosac.ir.ops import RoundingMode


def padding(code: int, in_size: int, k: int, stride: int, dil: int, where: str) -> tuple[int, int, int]:
    """TFLite's output size and (before, after) padding for SAME / VALID."""
    if stride < 1 or dil < 1 or k < 1:
        raise FrontendError(f"{where}: stride {stride}, dilation {dil}, kernel {k} must be >= 1")
    eff = (k - 1) * dil + 1
    if code == Padding.SAME:
        out = (in_size + stride - 1) // stride
    elif code == Padding.VALID:
        out = (in_size - eff + stride) // stride
    else:
        raise UnsupportedError(f"{where}: option padding {code} is not supported")
    if out < 1:
        raise FrontendError(f"{where}: the window ({eff}) is larger than the input ({in_size})")
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2, total - total // 2


def fit(cv: Converter, x: Value, code: int, ks: tuple[int, int], strides: tuple[int, int],
        dils: tuple[int, int], where: str) -> tuple[Value, tuple[int, int, int, int], tuple[int, int]]:
    """Input (sliced where TFLite ignores trailing rows/columns), TOSA pad and output size.

    TOSA requires ``IH − 1 + pad − (KH − 1)·d`` to be a multiple of the stride;
    the bottom/right padding is reduced to that, and where it would be negative
    the unused trailing input rows are sliced off (TFLite never reads them).
    """
    pads, outs, sizes = [], [], list(x.shape)
    for i in range(2):
        in_size = x.shape[1 + i]
        out, before, _ = padding(code, in_size, ks[i], strides[i], dils[i], where)
        after = (out - 1) * strides[i] + (ks[i] - 1) * dils[i] + 1 - in_size - before
        if after < 0:
            sizes[1 + i] = in_size + after
            after = 0
        pads += [before, after]
        outs.append(out)
    if sizes != list(x.shape):
        x = cv.g.slice(x, [0] * len(sizes), sizes)
    return x, (pads[0], pads[1], pads[2], pads[3]), (outs[0], outs[1])


def _filter(cv: Converter, op: OpDef, idx: int, axis: int, channels: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Weights, their per-channel (or per-tensor) float scales, and the weight zero point."""
    t = cv.t(idx)
    if t.type != TensorType.INT8:
        raise UnsupportedError(f"{cv.where(op)}: filter of type {t.type}; only int8 is supported")
    w = cv.const_array(idx, op)
    scales = np.asarray(t.scales, np.float32).astype(np.float64)
    zps = np.asarray(t.zero_points, np.int64)
    if scales.size == 1:
        return w, scales, int(zps[0]) if zps.size else 0
    if scales.size != channels or t.quantized_dimension != axis:
        raise UnsupportedError(f"{cv.where(op)}: filter has {scales.size} scales on axis "
                               f"{t.quantized_dimension}; expected 1 or {channels} on axis {axis}")
    if zps.size and np.any(zps != 0):
        raise UnsupportedError(f"{cv.where(op)}: per-channel filter with non-zero zero points")
    return w, scales, 0


def _bias(cv: Converter, op: OpDef, channels: int) -> np.ndarray | None:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    t = cv.t(op.inputs[2])
    if t.type != TensorType.INT32:
        raise UnsupportedError(f"{cv.where(op)}: bias of type {t.type}; only int32 is supported")
    b = cv.const_array(op.inputs[2], op).reshape(-1)
    if b.size != channels:
        raise FrontendError(f"{cv.where(op)}: bias has {b.size} values for {channels} channels")
    return b


def _scales(cv: Converter, op: OpDef, w_scales: np.ndarray, channels: int) -> np.ndarray:
    in_s, _ = cv.quant(op.inputs[0], op)
    out_s, _ = cv.quant(op.outputs[0], op)
    eff = np.float64(in_s) * w_scales / np.float64(out_s)
    return np.broadcast_to(eff, (channels,)) if eff.size > 1 else eff


def _convolve(cv: Converter, op: OpDef, o, x: Value, out: int, kernel: tuple[int, int], w_scales: np.ndarray,
              channels: int, conv) -> None:
    """CONV_2D's and DEPTHWISE_CONV_2D's shared part: TFLite padding, the int32 convolution ``conv(x, bias,
    pad=, stride=, dilation=, input_zp=)``, then one requantization clamped to the fused activation."""
    where = cv.where(op)
    stride, dilation = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    _, in_zp = cv.quant(op.inputs[0], op)
    x, pad, _ = fit(cv, x, o.Padding(), kernel, stride, dilation, where)
    acc = conv(x, _bias(cv, op, channels), pad=pad, stride=stride, dilation=dilation, input_zp=in_zp)
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    _, out_zp = cv.quant(out, op)
    cv.define(op, cv.requantize(acc, _scales(cv, op, w_scales, channels), DType.INT8, out_zp, lo, hi, where))


@handles("CONV_2D")
def conv2d(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2, 3)
    o = opt(op, cv, "Conv2DOptions")
    x = cv.value(op.inputs[0], op)
    out = cv.out_int8(op)
    if len(x.shape) != 4:
        raise UnsupportedError(f"{cv.where(op)}: input rank {len(x.shape)}; CONV_2D needs NHWC")
    w_t = cv.t(op.inputs[1])
    if len(w_t.shape) != 4:
        raise FrontendError(f"{cv.where(op)}: filter shape {list(w_t.shape)} is not OHWI")
    oc, kh, kw, ic = w_t.shape
    if ic != x.shape[3]:
        raise UnsupportedError(f"{cv.where(op)}: grouped convolution ({x.shape[3]} input channels, filter {ic})")
    w, ws, wzp = _filter(cv, op, op.inputs[1], 0, oc)
    _convolve(cv, op, o, x, out, (kh, kw), ws, oc,
              lambda x, b, **conv_args: cv.g.conv2d(x, cv.g.const(w), b, weight_zp=wzp, **conv_args))


@handles("DEPTHWISE_CONV_2D")
def depthwise(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2, 3)
    o = opt(op, cv, "DepthwiseConv2DOptions")
    x = cv.value(op.inputs[0], op)
    out = cv.out_int8(op)
    if len(x.shape) != 4:
        raise UnsupportedError(f"{cv.where(op)}: input rank {len(x.shape)}; DEPTHWISE_CONV_2D needs NHWC")
    w_t = cv.t(op.inputs[1])
    if len(w_t.shape) != 4 or w_t.shape[0] != 1:
        raise FrontendError(f"{cv.where(op)}: filter shape {list(w_t.shape)} is not [1, KH, KW, C·M]")
    _, kh, kw, oc = w_t.shape
    c = x.shape[3]
    if oc % c:
        raise FrontendError(f"{cv.where(op)}: {oc} output channels are not a multiple of {c} input channels")
    mult = oc // c
    if o.DepthMultiplier() not in (0, mult):
        raise FrontendError(f"{cv.where(op)}: option depth_multiplier {o.DepthMultiplier()} but the filter "
                            f"gives {mult}")
    w, ws, wzp = _filter(cv, op, op.inputs[1], 3, oc)
    _convolve(cv, op, o, x, out, (kh, kw), ws, oc,
              lambda x, b, **conv_args: cv.g.depthwise_conv2d(x, cv.g.const(w.reshape(kh, kw, c, mult)), b,
                                                       weight_zp=wzp, **conv_args))


@handles("FULLY_CONNECTED")
def fully_connected(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2, 3)
    o = opt(op, cv, "FullyConnectedOptions")
    if o.WeightsFormat() != 0:
        raise UnsupportedError(f"{cv.where(op)}: option weights_format {o.WeightsFormat()} (only DEFAULT)")
    x = cv.value(op.inputs[0], op)
    out = cv.out_int8(op)
    w_t = cv.t(op.inputs[1])
    if len(w_t.shape) != 2:
        raise FrontendError(f"{cv.where(op)}: filter shape {list(w_t.shape)} is not [units, depth]")
    units, depth = w_t.shape
    size = int(np.prod(x.shape))
    if size % depth:
        raise FrontendError(f"{cv.where(op)}: input of {size} elements is not a multiple of depth {depth}")
    batch = size // depth
    w, ws, wzp = _filter(cv, op, op.inputs[1], 0, units)
    b = _bias(cv, op, units)
    _, in_zp = cv.quant(op.inputs[0], op)
    x4 = cv.g.reshape(x, [batch, 1, 1, depth])
    acc = cv.g.conv2d(x4, cv.g.const(w.reshape(units, 1, 1, depth)), b, input_zp=in_zp, weight_zp=wzp)
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    _, out_zp = cv.quant(out, op)
    y = cv.requantize(acc, _scales(cv, op, ws, units), DType.INT8, out_zp, lo, hi, cv.where(op),
                      RoundingMode.SINGLE_ROUND)
    shape = list(x.shape[:-1]) + [units] if o.KeepNumDims() else [batch, units]
    cv.define(op, cv.g.reshape(y, shape))


def _pool_common(cv: Converter, op: OpDef):
    nargs(op, cv, 1)
    o = opt(op, cv, "Pool2DOptions")
    x = cv.value(op.inputs[0], op)
    out = cv.out_int8(op)
    if len(x.shape) != 4:
        raise UnsupportedError(f"{cv.where(op)}: input rank {len(x.shape)}; pooling needs NHWC")
    if cv.quant(op.inputs[0], op) != cv.quant(out, op):
        raise UnsupportedError(f"{cv.where(op)}: input and output quantization differ (TFLite requires them equal)")
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    return o, x, lo, hi


@handles("MAX_POOL_2D")
def max_pool(cv: Converter, op: OpDef) -> None:
    o, x, lo, hi = _pool_common(cv, op)
    k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    x, pad, _ = fit(cv, x, o.Padding(), k, s, (1, 1), cv.where(op))
    y = cv.g.max_pool2d(x, kernel=k, stride=s, pad=pad)
    if lo > -128 or hi < 127:
        y = cv.g.clamp(y, min_val=lo, max_val=hi)
    cv.define(op, y)


@handles("AVERAGE_POOL_2D")
def avg_pool(cv: Converter, op: OpDef) -> None:
    o, x, lo, hi = _pool_common(cv, op)
    k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    ih, iw = x.shape[1], x.shape[2]
    x, pad, (oh, ow) = fit(cv, x, o.Padding(), k, s, (1, 1), cv.where(op))
    counts = np.zeros((1, oh, ow, 1), np.int32)
    for r in range(oh):
        h0 = r * s[0] - pad[0]
        nh = min(k[0], ih - h0) - max(0, -h0)
        for c in range(ow):
            w0 = c * s[1] - pad[2]
            counts[0, r, c, 0] = nh * (min(k[1], iw - w0) - max(0, -w0))
    if counts.min() <= 0:
        raise FrontendError(f"{cv.where(op)}: a pooling window covers no input element")
    ch = x.shape[3]
    g = cv.g
    acc = g.depthwise_conv2d(x, g.const(np.ones((k[0], k[1], ch, 1), np.int8)), None, pad=pad, stride=s)
    half, n = g.const(counts // 2), g.const(counts)
    up = g.intdiv(g.add(acc, half), n)
    down = g.intdiv(g.sub(acc, half), n)
    y = g.select(g.greater(acc, g.const(np.zeros((1, 1, 1, 1), np.int32))), up, down)
    y = cv.clamp_channels(y, [max(lo, -128)], [min(hi, 127)])
    cv.define(op, g.cast(y, DType.INT8))

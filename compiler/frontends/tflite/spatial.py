"""CONV_2D (grouped too), DEPTHWISE_CONV_2D, TRANSPOSE_CONV, AVERAGE_POOL_2D and MAX_POOL_2D, int8 and int16x8.

Convolutions: TFLite's reference kernels skip padded taps, which is TOSA's
zero-point padding (a padded tap contributes ``(zp − zp) · w = 0``); the
accumulator plus bias is requantized per output channel with
``QuantizeMultiplier(input_scale · filter_scale[c] / output_scale)`` in double.
int8 activations accumulate in int32 and requantize with the double-rounding
``MultiplyByQuantizedMultiplier`` (RESCALE DOUBLE_ROUND). int16 activations
(zero point 0, int8 weights) accumulate in int64 with an int64 bias — TOSA's
int16 x int8 CONV2D accumulates in INT48 — and requantize with TFLite's int64
``MultiplyByQuantizedMultiplier``, a single rounding with the multiplier cut to
15 bits: RESCALE of the int48 accumulator with ``scale32 = false``, see
:mod:`.accumulators`, which also proves at import that no accumulator can
leave the ranges where the two agree. With ``quantized_bias_type = INT32``
(CONV_2D and TRANSPOSE_CONV) TFLite accumulates int16 x int8 in int32 with an
int32 bias and requantizes like int8; with the default option it reads the bias
as int64, so an int32 bias there is refused.

Grouped CONV_2D (input channels a multiple ``G`` of the filter's): the
reference kernel's output channel ``o`` reads input channels ``[g·IC_f, (g+1)·IC_f)``
with ``g = o // (OC / G)``; TOSA CONV2D has no groups, so each group is a SLICE
of the input convolved with its filters, and the accumulators are
concatenated before the one per-channel requantization.

TRANSPOSE_CONV scatters ``(x − zp) · w`` into an int32 (int16: int64) scratch
at ``out = in · stride − pad + k`` and requantizes like CONV_2D. TOSA
TRANSPOSE_CONV2D places tap ``k`` of input ``in`` at ``in · stride + out_pad_top
+ k`` with the same [OC, KH, KW, IC] weights, so ``out_pad_top = −pad`` and the
bottom (right) pad makes the output ``output_shape``'s size: ``pad`` is
TFLite's ``ComputePaddingHeightWidth`` for the output size, the input size
computed from it must be the input's.

AVERAGE_POOL_2D: the reference kernel sums the *valid* taps and divides by
their count with rounding half away from zero (``(acc ± n/2) / n`` in C). TOSA's
AVG_POOL2D rounds differently, so the sum is a DEPTHWISE_CONV2D with weights of
ones (padded taps add 0; int16 sums accumulate in int48 and are narrowed to
int32 exactly) and the division is INTDIV (truncation, as C) of ``acc ± n//2``
by a constant tensor of per-position counts, the sign chosen with SELECT: the
reference kernel's arithmetic, step for step. MAX_POOL_2D is MAX_POOL2D.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from tflite.Padding import Padding
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.accumulators import (INT16_ABS_MAX, filter_acc_bound, narrow_to_int32,
                                                 requantize_wide, wide_bound_ok)
from tosac.frontends.tflite.converter import TYPE_NAMES, Converter, handles, nargs, opt
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType

ACTIVATIONS = (TensorType.INT8, TensorType.INT16)


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


def filter_weights(cv: Converter, op: OpDef, idx: int, axis: int, channels: int
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Constant int8 weights, their per-channel (or per-tensor) float scales, and the weight zero point."""
    t = cv.t(idx)
    if t.type != TensorType.INT8:
        raise UnsupportedError(f"{cv.where(op)}: filter of type {TYPE_NAMES.get(t.type, t.type)}; only int8 is "
                               "supported")
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


def bias_values(cv: Converter, op: OpDef, k: int, channels: int, types: tuple[int, ...]) -> np.ndarray | None:
    """Input ``k``'s constant bias (absent: None), of one of ``types``."""
    if len(op.inputs) <= k or op.inputs[k] < 0:
        return None
    t = cv.t(op.inputs[k])
    if t.type not in types:
        raise UnsupportedError(f"{cv.where(op)}: bias of type {TYPE_NAMES.get(t.type, t.type)}; expected "
                               f"{' or '.join(TYPE_NAMES[x] for x in types)} here")
    b = cv.const_array(op.inputs[k], op).reshape(-1)
    if b.size != channels:
        raise FrontendError(f"{cv.where(op)}: bias has {b.size} values for {channels} channels")
    return b


def effective_scales(cv: Converter, op: OpDef, x_idx: int, w_scales: np.ndarray, channels: int) -> np.ndarray:
    """``input_scale · filter_scale[c] / output_scale`` in double, per channel, as TFLite's Prepare."""
    in_s, _ = cv.quant(x_idx, op)
    out_s, _ = cv.quant(op.outputs[0], op)
    return np.broadcast_to(np.float64(in_s) * w_scales / np.float64(out_s), (channels,))


def wide_bias(cv: Converter, op: OpDef, k: int, channels: int,
              option_code: int | None) -> tuple[np.ndarray | None, bool]:
    """An int16 kernel's bias and whether TFLite accumulates in int64 (else int32), from the bias type and
    ``quantized_bias_type`` (``option_code``; None where the operator has no such option: int64 only)."""
    if option_code in (None, TensorType.FLOAT32, TensorType.INT64):
        b = bias_values(cv, op, k, channels, (TensorType.INT64,))
        return b, True
    if option_code == TensorType.INT32:
        return bias_values(cv, op, k, channels, (TensorType.INT32,)), False
    raise UnsupportedError(f"{cv.where(op)}: option quantized_bias_type {TYPE_NAMES.get(option_code, option_code)}")


Conv = Callable[..., Value]


def conv_requantized(cv: Converter, op: OpDef, o, x: Value, w: np.ndarray, w_axis: int, ws: np.ndarray,
                     channels: int, conv: Conv, bias_option: int | None) -> Value:
    """The accumulator ``conv(x, bias, acc_type=...)`` (int32 for int8, int48 for int16 activations),
    requantized per channel and clamped to the fused activation, as TFLite's reference kernels."""
    where, out = cv.where(op), op.outputs[0]
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    scales = effective_scales(cv, op, op.inputs[0] if op.name != "TRANSPOSE_CONV" else op.inputs[2], ws, channels)
    bias_k = 3 if op.name == "TRANSPOSE_CONV" else 2
    if x.dtype is DType.INT8:
        b = bias_values(cv, op, bias_k, channels, (TensorType.INT32,))
        _, out_zp = cv.quant(out, op)
        return cv.requantize(conv(x, b), scales, DType.INT8, out_zp, lo, hi, where)
    b, int64 = wide_bias(cv, op, bias_k, channels, bias_option)
    bound = filter_acc_bound(w, w_axis, INT16_ABS_MAX, b)
    if int64:
        wide_bound_ok(bound, scales, where)
        return requantize_wide(cv, conv(x, b), scales, DType.INT16, lo, hi, where)
    if int(bound.max()) >= 1 << 31:
        raise UnsupportedError(f"{where}: the int32 accumulator may overflow (bound {int(bound.max())})")
    return cv.requantize(narrow_to_int32(cv, conv(x, b)), scales, DType.INT16, 0, lo, hi, where)


def activation_input(cv: Converter, op: OpDef, k: int = 0) -> tuple[Value, int]:
    """Input ``k`` (int8, or int16 with zero point 0) of the output's type, NHWC, and the output index."""
    out = cv.out_int8(op, allowed=ACTIVATIONS)
    x = cv.value(op.inputs[k], op, cv.t(out).type)
    if len(x.shape) != 4:
        raise UnsupportedError(f"{cv.where(op)}: input rank {len(x.shape)}; {op.name} needs NHWC")
    cv.quant(op.inputs[k], op)
    cv.quant(out, op)
    return x, out


def _bias_option(o) -> int | None:
    return o.QuantizedBiasType() if hasattr(o, "QuantizedBiasType") else None


def _spatial_conv(cv: Converter, op: OpDef, o, x: Value, kernel: tuple[int, int], w: np.ndarray, w_axis: int,
                  ws: np.ndarray, channels: int, conv: Conv) -> None:
    """CONV_2D's and DEPTHWISE_CONV_2D's shared part: TFLite padding, then :func:`conv_requantized`."""
    stride, dilation = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    _, in_zp = cv.quant(op.inputs[0], op)
    x, pad, _ = fit(cv, x, o.Padding(), kernel, stride, dilation, cv.where(op))
    args = dict(pad=pad, stride=stride, dilation=dilation, input_zp=in_zp)
    cv.define(op, conv_requantized(cv, op, o, x, w, w_axis, ws, channels,
                                   lambda x, b: conv(x, b, **args), _bias_option(o)))


@handles("CONV_2D")
def conv2d(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2, 3)
    o = opt(op, cv, "Conv2DOptions")
    x, _ = activation_input(cv, op)
    w_t = cv.t(op.inputs[1])
    if len(w_t.shape) != 4:
        raise FrontendError(f"{cv.where(op)}: filter shape {list(w_t.shape)} is not OHWI")
    oc, kh, kw, icf = w_t.shape
    c = x.shape[3]
    if icf < 1 or c % icf or oc % (c // icf or 1):
        raise FrontendError(f"{cv.where(op)}: {c} input channels and a filter of {oc} x {icf} channels do not "
                            "make whole groups")
    groups, per_group = c // icf, oc // (c // icf)
    w, ws, wzp = filter_weights(cv, op, op.inputs[1], 0, oc)
    g = cv.g

    def conv(x: Value, b: np.ndarray | None, **args) -> Value:
        accs = []
        for i in range(groups):
            xi = x if groups == 1 else g.slice(x, [0, 0, 0, i * icf], list(x.shape[:3]) + [icf])
            sl = slice(i * per_group, (i + 1) * per_group)
            accs.append(g.conv2d(xi, g.const(w[sl]), None if b is None else b[sl], weight_zp=wzp, **args))
        return accs[0] if groups == 1 else g.concat(*accs, axis=3)

    _spatial_conv(cv, op, o, x, (kh, kw), w, 0, ws, oc, conv)


@handles("DEPTHWISE_CONV_2D")
def depthwise(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2, 3)
    o = opt(op, cv, "DepthwiseConv2DOptions")
    x, _ = activation_input(cv, op)
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
    w, ws, wzp = filter_weights(cv, op, op.inputs[1], 3, oc)
    _spatial_conv(cv, op, o, x, (kh, kw), w, 3, ws, oc,
                  lambda x, b, **args: cv.g.depthwise_conv2d(x, cv.g.const(w.reshape(kh, kw, c, mult)), b,
                                                             weight_zp=wzp, **args))


@handles("TRANSPOSE_CONV")
def transpose_conv(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 3, 4)
    o = opt(op, cv, "TransposeConvOptions")
    where = cv.where(op)
    x, out = activation_input(cv, op, 2)
    shape_t = cv.t(op.inputs[0])
    if shape_t.data is None:
        raise UnsupportedError(f"{where}: output_shape (tensor {op.inputs[0]}) must be a constant")
    out_shape = [int(v) for v in cv.const_array(op.inputs[0], op).reshape(-1)]
    if out_shape != list(cv.t(out).shape):
        raise FrontendError(f"{where}: output_shape {out_shape} differs from the output tensor's "
                            f"{list(cv.t(out).shape)}")
    w_t = cv.t(op.inputs[1])
    if len(w_t.shape) != 4 or w_t.shape[3] != x.shape[3] or w_t.shape[0] != out_shape[3] or \
            out_shape[0] != x.shape[0]:
        raise FrontendError(f"{where}: filter {list(w_t.shape)}, input {list(x.shape)} and output_shape "
                            f"{out_shape} do not match (OHWI filter)")
    oc, kh, kw, _ = w_t.shape
    stride = (o.StrideH(), o.StrideW())
    out_pad = []
    for i, k in enumerate((kh, kw)):
        size, in_size = out_shape[1 + i], x.shape[1 + i]
        computed, pad, _ = padding(o.Padding(), size, k, stride[i], 1, where)
        if computed != in_size:
            raise FrontendError(f"{where}: output_shape {out_shape} with this padding and stride needs an input "
                                f"of size {computed} on axis {1 + i}, the input has {in_size}")
        out_pad += [-pad, size - ((in_size - 1) * stride[i] + k) + pad]
    w, ws, wzp = filter_weights(cv, op, op.inputs[1], 0, oc)
    if wzp:
        raise UnsupportedError(f"{where}: filter zero point {wzp} (TFLite's kernel ignores it)")
    _, in_zp = cv.quant(op.inputs[2], op)
    cv.define(op, conv_requantized(
        cv, op, o, x, w, 0, ws, oc,
        lambda x, b: cv.g.transpose_conv2d(x, cv.g.const(w), b, out_pad=tuple(out_pad), stride=stride,
                                           input_zp=in_zp),
        o.QuantizedBiasType()))


# ---------------------------------------------------------------- pooling
def _pool_common(cv: Converter, op: OpDef):
    nargs(op, cv, 1)
    o = opt(op, cv, "Pool2DOptions")
    x, out = activation_input(cv, op)
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
    if lo > x.dtype.min or hi < x.dtype.max:
        y = cv.g.clamp(y, min_val=lo, max_val=hi)
    cv.define(op, y)


@handles("AVERAGE_POOL_2D")
def avg_pool(cv: Converter, op: OpDef) -> None:
    o, x, lo, hi = _pool_common(cv, op)
    k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    ih, iw, dt = x.shape[1], x.shape[2], x.dtype
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
    if dt is DType.INT16 and k[0] * k[1] >= 1 << 16:
        raise UnsupportedError(f"{cv.where(op)}: a {k[0]}x{k[1]} int16 window may overflow TFLite's int32 sum")
    ch = x.shape[3]
    g = cv.g
    acc = g.depthwise_conv2d(x, g.const(np.ones((k[0], k[1], ch, 1), np.int8)), None, pad=pad, stride=s)
    if dt is DType.INT16:
        acc = narrow_to_int32(cv, acc)
    half, n = g.const(counts // 2), g.const(counts)
    up = g.intdiv(g.add(acc, half), n)
    down = g.intdiv(g.sub(acc, half), n)
    y = g.select(g.greater(acc, g.const(np.zeros((1, 1, 1, 1), np.int32))), up, down)
    y = cv.clamp_channels(y, [max(lo, dt.min)], [min(hi, dt.max)])
    cv.define(op, g.cast(y, dt))

"""Integer legalisations of quantized ops, shared by the QDQ and QOperator formats.

Each function takes lazily dequantized operands (:class:`Entry` with
``quant``) and a :class:`QOut`, and emits TOSA integer ops the way the
TFLite→TOSA legalisation does: int8 CONV2D/MATMUL with zero points, an int32
accumulator, one RESCALE per output (per-channel when the weights are),
a CLAMP for a fused Relu/Clip, TABLE for pointwise nonlinearities. uint8
tensors are moved to int8 by subtracting 128 (exact), as TOSA computes in int8.

QDQ models reach these through :data:`QDQ_RULES`: a float op whose data
inputs are all lazy and whose result flows into one QuantizeLinear.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np
import onnx

from tosac.errors import UnsupportedError
from tosac.frontends.onnx.converter import Converter, QOut, handles, pattern
from tosac.frontends.onnx.entries import NHWC, Entry, Quant
from tosac.frontends.onnx.fixed_point import lookup_table, multiplier_shift
from tosac.frontends.onnx.spatial import window
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType

ADD_LEFT_SHIFT = 20   # headroom bits for ADD, as TFLite's int8 ADD uses


def int8_operand(cv: Converter, e: Entry, layout: tuple[int, ...] | None = None) -> tuple[Value, int]:
    """The stored int8 value of a lazy per-tensor entry in ``layout``, and its zero point."""
    if e.quant.per_channel:
        raise UnsupportedError("per-channel quantized activations are not supported")
    v, shift = cv.signed(cv.value(e, layout))
    return v, e.quant.zp + shift


def widen(cv: Converter, v: Value, zp: int, real_scale: float = 1.0) -> Value:
    """int8 → int32 ``(q − zp) · real_scale`` (exact for scale 1)."""
    if real_scale == 1.0:
        return cv.g.rescale(v, DType.INT32, multiplier=1 << 30, shift=30, input_zp=zp, output_zp=0)
    m, s = multiplier_shift(real_scale, "input rescale")
    return cv.g.rescale(v, DType.INT32, multiplier=m, shift=s, input_zp=zp, output_zp=0)


def requantize_int8(cv: Converter, v: Value, zp: int, in_scale: float, out: QOut) -> Value:
    """int8 (q, zp, in_scale) → the output quantization; free when nothing changes."""
    out_zp8 = out.quant.zp - (128 if out.dtype is DType.UINT8 else 0)
    if np.float32(in_scale) == out.quant.s and zp == out_zp8 and math.isinf(out.low) and math.isinf(out.high):
        return cv.unsigned(v) if out.dtype is DType.UINT8 else v
    return cv.requantize(widen(cv, v, zp), np.array([np.float32(in_scale) / out.quant.s]), out)


# ---------------------------------------------------------------------- convolution
def weights_int8(cv: Converter, w: Entry) -> tuple[Entry, int | np.ndarray]:
    """Weights as int8 (uint8 is shifted by 128, exactly) and their zero point: one int, or per output
    channel when the channels' zero points differ (see :func:`subtract_zero_point_term`)."""
    zps = w.quant.zero_point.reshape(-1).astype(np.int64)
    shift = 0
    if w.is_const and w.data.dtype == np.uint8:
        w, shift = Entry(w.shape, data=(w.data.astype(np.int16) - 128).astype(np.int8)), -128
    elif w.is_const:
        w = Entry(w.shape, data=w.data)
    else:
        v, shift = cv.signed(w.value)
        w = Entry(w.shape, value=v, layout=w.layout)
    zps = zps + shift
    return w, int(zps[0]) if np.unique(zps).size == 1 else zps


def subtract_zero_point_term(cv: Converter, acc: Value, x: Value, x_zp: int, w_zp: np.ndarray,
                             kernel: tuple[int, int], depthwise_multiplier: int | None, **window) -> Value:
    """acc − w_zp[c] · Σ_window (x − x_zp): the per-channel weight zero point TOSA's scalar one cannot hold.

    The window sums are a convolution with unit weights (one output channel, or per channel for depthwise).
    """
    g, channels = cv.g, x.shape[-1]
    if depthwise_multiplier is None:
        ones = g.const(np.ones((1, *kernel, channels), np.int8))
        sums = g.conv2d(x, ones, input_zp=x_zp, acc_type=DType.INT32, **window)
    else:
        ones = g.const(np.ones((*kernel, channels, depthwise_multiplier), np.int8))
        sums = g.depthwise_conv2d(x, ones, input_zp=x_zp, acc_type=DType.INT32, **window)
    zps = g.const(w_zp.astype(np.int32).reshape(1, 1, 1, -1))
    return g.sub(acc, g.mul(sums, zps))


def weight_scales(w: Entry, channels: int) -> np.ndarray:
    return np.broadcast_to(w.quant.scale.reshape(-1).astype(np.float32), (channels,)).copy() \
        if w.quant.per_channel else np.full(channels, w.quant.s, np.float32)


def bias_int32(cv: Converter, b: Entry | None, acc_scales: np.ndarray) -> np.ndarray | None:
    """The bias in accumulator units (scale = x_scale · w_scale per channel)."""
    if b is None:
        return None
    if not b.is_const:
        raise UnsupportedError("a run-time bias is not supported")
    if b.quant is not None and b.data.dtype == np.int32 and np.all(b.quant.zero_point == 0) and np.allclose(
            np.broadcast_to(b.quant.scale, acc_scales.shape), acc_scales, rtol=1e-6, atol=0):
        return b.data.astype(np.int32).reshape(-1)
    real = cv.dequantize(b).data if b.quant is not None else b.data.astype(np.float32)
    q = np.rint(real.reshape(-1).astype(np.float64) / acc_scales.astype(np.float64))
    return np.clip(q, -2**31, 2**31 - 1).astype(np.int32)


def conv_accumulate(cv: Converter, node: onnx.NodeProto, x: Value, x_zp: int, w: Entry,
                    w_zp: int | np.ndarray, bias: np.ndarray | None) -> Value:
    """int8 CONV2D or DEPTHWISE_CONV2D of NHWC ``x`` with ONNX [O, I/g, KH, KW] weights → int32 NHWC."""
    n, h, wd, c = x.shape
    o, per_group, kh, kw = w.shape
    group = int(cv.attr(node, "group", 1))
    win = window(node, cv.attr, (h, wd), (kh, kw))
    x = crop(cv, x, win.crop)
    per_channel_zp = isinstance(w_zp, np.ndarray)
    scalar_zp = 0 if per_channel_zp else w_zp
    attrs = dict(pad=win.pad, stride=win.stride, dilation=win.dilation)
    if group == 1:
        wt = cv.value(w, (0, 2, 3, 1))
        acc = cv.g.conv2d(x, wt, bias, input_zp=x_zp, weight_zp=scalar_zp, acc_type=DType.INT32, **attrs)
        multiplier = None
    elif group == c and per_group == 1:
        multiplier = o // c
        if w.is_const:
            wt = cv.g.const(w.data.reshape(c, multiplier, kh, kw).transpose(2, 3, 0, 1))
        else:
            wt = cv.g.transpose(cv.g.reshape(cv.onnx_order(w), (c, multiplier, kh, kw)), perms=(2, 3, 0, 1))
        acc = cv.g.depthwise_conv2d(x, wt, bias, input_zp=x_zp, weight_zp=scalar_zp, acc_type=DType.INT32, **attrs)
    else:
        raise UnsupportedError(f"grouped convolution with group={group} (only 1 and depthwise are supported)")
    if per_channel_zp:
        acc = subtract_zero_point_term(cv, acc, x, x_zp, w_zp, (kh, kw), multiplier, **attrs)
    return acc


def crop(cv: Converter, x: Value, amount: tuple[int, int]) -> Value:
    if amount == (0, 0):
        return x
    n, h, w, c = x.shape
    return cv.move(lambda v: cv.g.slice(v, (0, 0, 0, 0), (n, h - amount[0], w - amount[1], c)), x)


def conv(cv: Converter, node: onnx.NodeProto, x: Entry, w: Entry, b: Entry | None, out: QOut) -> None:
    xv, x_zp = int8_operand(cv, x, NHWC)
    w8, w_zp = weights_int8(cv, w)
    acc_scales = np.float32(x.quant.s) * weight_scales(w, w.shape[0])
    acc = conv_accumulate(cv, node, xv, x_zp, w8, w_zp, bias_int32(cv, b, acc_scales))
    cv.set(out.name, cv.requantize(acc, acc_scales / out.quant.s, out, channel_axis=3), NHWC)


# ---------------------------------------------------------------------- matrix products
def matmul_accumulate(cv: Converter, a: Value, a_zp: int, a_shape: tuple[int, ...], b: Entry, b_zp: int,
                      bias: np.ndarray | None) -> tuple[Value, tuple[int, ...]]:
    """int8 ``a @ b`` (ONNX order, numpy broadcasting) → int32 value and its ONNX shape.

    Constant 2-D weights become a 1×1 CONV2D (as TFLite→TOSA legalises
    FULLY_CONNECTED), so the dense micro-kernels apply; run-time ``b`` is a
    batched MATMUL.
    """
    k, n = b.shape[-2], b.shape[-1]
    lead = a_shape[:-1]
    rows = int(np.prod(lead))
    if b.is_const and b.rank == 2:
        x = cv.g.reshape(a, (rows, 1, 1, k))
        wt = cv.g.const(np.ascontiguousarray(b.data.T).reshape(n, 1, 1, k))
        per_column = isinstance(b_zp, np.ndarray)
        acc = cv.g.conv2d(x, wt, bias, input_zp=a_zp, weight_zp=0 if per_column else b_zp, acc_type=DType.INT32)
        if per_column:
            acc = subtract_zero_point_term(cv, acc, x, a_zp, b_zp, (1, 1), None)
        return cv.g.reshape(acc, lead + (n,)), lead + (n,)
    if bias is not None:
        raise UnsupportedError("a bias with run-time weights is not supported")
    if isinstance(b_zp, np.ndarray):
        raise UnsupportedError("per-column zero points of run-time MatMul weights are not supported")
    batch_a, batch_b = a_shape[:-2], b.shape[:-2]
    bv = cv.onnx_order(b)
    if not batch_b and batch_a:
        x = cv.g.reshape(a, (1, rows, k))
        bv = cv.g.reshape(bv, (1, k, n))
        out_shape = lead + (n,)
    elif batch_a == batch_b or not batch_a:
        if batch_a != batch_b:
            raise UnsupportedError(f"MatMul broadcasting {list(a_shape)} @ {list(b.shape)} is not supported")
        nb = int(np.prod(batch_a)) if batch_a else 1
        x = cv.g.reshape(a, (nb, a_shape[-2], k))
        bv = cv.g.reshape(bv, (nb, k, n))
        out_shape = a_shape[:-1] + (n,)
    else:
        raise UnsupportedError(f"MatMul broadcasting {list(a_shape)} @ {list(b.shape)} is not supported")
    acc = cv.g.matmul(x, bv, a_zp=a_zp, b_zp=b_zp)
    return cv.g.reshape(acc, out_shape), out_shape


def gemm_operands(cv: Converter, node: onnx.NodeProto, a: Entry, b: Entry) -> tuple[Entry, Entry]:
    """Gemm's transA/transB applied: (A [M,K], B [K,N])."""
    if cv.attr(node, "transA", 0):
        raise UnsupportedError("Gemm with transA=1 is not supported")
    if cv.attr(node, "transB", 0):
        if b.is_const:
            b = replace(b, data=b.data.T, shape=b.shape[::-1],
                        quant=replace(b.quant, axis=1 - b.quant.axis) if b.quant and b.quant.per_channel else b.quant)
        else:
            b = Entry(b.shape[::-1], value=cv.g.transpose(cv.onnx_order(b), perms=(1, 0)), quant=b.quant)
    return a, b


def matmul(cv: Converter, node: onnx.NodeProto, a: Entry, b: Entry, bias: Entry | None, out: QOut | None,
           alpha: float = 1.0) -> Value:
    """Quantized MatMul/Gemm; with ``out`` None returns the int32 accumulator and its real scales."""
    av, a_zp = int8_operand(cv, a, tuple(range(a.rank)))
    b8, b_zp = weights_int8(cv, b)
    if b.quant.per_channel and (b.rank != 2 or b.quant.axis % 2 != 1):
        raise UnsupportedError("per-channel weights of MatMul must be 2-D and quantized along N")
    n = b.shape[-1]
    acc_scales = np.float32(a.quant.s) * weight_scales(b, n)
    acc, shape = matmul_accumulate(cv, av, a_zp, a.shape, b8, b_zp, bias_int32(cv, bias, acc_scales))
    real = acc_scales * np.float32(alpha) / out.quant.s
    cv.set(out.name, cv.requantize(acc, real, out, channel_axis=len(shape) - 1))


# ---------------------------------------------------------------------- elementwise
def binary(cv: Converter, node: onnx.NodeProto, a: Entry, b: Entry, out: QOut) -> None:
    """Quantized Add/Sub (TFLite-style common scale with 20 bits of headroom) and Mul."""
    (a, b), layout = cv.common_layout([a, b])
    av, a_zp = int8_operand(cv, a, layout)
    bv, b_zp = int8_operand(cv, b, layout)
    sa, sb, sy = np.float64(a.quant.s), np.float64(b.quant.s), np.float64(out.quant.s)
    if node.op_type.endswith("Mul"):
        prod = cv.g.mul(widen(cv, av, a_zp), widen(cv, bv, b_zp))
        y = cv.requantize(prod, np.array([sa * sb / sy]), out)
    else:
        twice_max = 2 * max(sa, sb)
        a32 = widen(cv, av, a_zp, sa / twice_max * (1 << ADD_LEFT_SHIFT))
        b32 = widen(cv, bv, b_zp, sb / twice_max * (1 << ADD_LEFT_SHIFT))
        total = cv.g.sub(a32, b32) if node.op_type == "Sub" else cv.g.add(a32, b32)
        y = cv.requantize(total, np.array([twice_max / ((1 << ADD_LEFT_SHIFT) * sy)]), out)
    cv.set(out.name, y, layout)


def table(cv: Converter, x: Entry, out: QOut, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """A pointwise nonlinearity as one int8 TABLE (with a fused clamp folded into the entries)."""
    v, zp = int8_operand(cv, x)
    out_zp8 = out.quant.zp - (128 if out.dtype is DType.UINT8 else 0)
    entries = lookup_table(fn, float(x.quant.s), zp, float(out.quant.s), out_zp8)
    if not math.isinf(out.low):
        entries = np.maximum(entries, np.clip(np.rint(out.low / out.quant.s) + out_zp8, -128, 127)).astype(np.int8)
    if not math.isinf(out.high):
        entries = np.minimum(entries, np.clip(np.rint(out.high / out.quant.s) + out_zp8, -128, 127)).astype(np.int8)
    y = cv.g.table(v, entries)
    cv.set(out.name, cv.unsigned(y) if out.dtype is DType.UINT8 else y, x.perm)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def hard_sigmoid(alpha: float, beta: float) -> Callable[[np.ndarray], np.ndarray]:
    """max(0, min(1, alpha * x + beta)) in fp32, as ONNX Runtime computes it between DQ and Q."""
    a, b = np.float32(alpha), np.float32(beta)
    return lambda x: np.clip(x * a + b, np.float32(0), np.float32(1))


def hard_swish(x: np.ndarray) -> np.ndarray:
    return x * hard_sigmoid(1 / 6, 0.5)(x)


def gelu(approximate: str) -> Callable[[np.ndarray], np.ndarray]:
    """Opset 20's Gelu in float64 (the table entries are rounded once)."""
    def exact(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1 + _erf(x / np.sqrt(2)))

    def tanh(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return (lambda x: exact(x.astype(np.float64))) if approximate == "none" else (lambda x: tanh(x.astype(np.float64)))


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def softmax(cv: Converter, node: onnx.NodeProto, x: Entry, out: QOut, axis: int) -> None:
    """Integer softmax: a 256-entry exp table (Q15) indexed by max − q, an exact integer sum and division.

    p = round(2^15 · e / Σe) by INTDIV, then one RESCALE to the output scale.
    """
    v, _ = int8_operand(cv, x)
    stored_axis = x.stored_axis(axis)
    g = cv.g
    q = g.cast(v, DType.INT32)
    diff = g.sub(g.reduce_max(q, axis=stored_axis), q)                              # 0 .. 255
    exp_q15 = np.rint(np.exp(-np.arange(256, dtype=np.float64) * float(x.quant.s)) * (1 << 15))
    values = g.const(exp_q15.astype(np.int32).reshape(1, 256, 1))
    size = int(np.prod(v.shape))
    e = g.reshape(g.gather(values, g.reshape(diff, (1, size))), v.shape)
    total = g.reduce_sum(e, axis=stored_axis)
    ones = (1,) * len(v.shape)
    numerator = g.add(g.mul(e, g.const(np.full(ones, 1 << 15, np.int32))),
                      g.arithmetic_right_shift(total, g.const(np.ones(ones, np.int32)), round=False))
    p = g.intdiv(numerator, total)
    cv.set(out.name, cv.requantize(p, np.array([2.0 ** -15 / np.float64(out.quant.s)]), out), x.perm)


# ---------------------------------------------------------------------- pooling and concatenation
def average_pool(cv: Converter, node: onnx.NodeProto, x: Entry, out: QOut, global_pool: bool) -> None:
    v, zp = int8_operand(cv, x, NHWC)
    n, h, w, c = v.shape
    g = cv.g
    kernel = (h, w) if global_pool else tuple(cv.attr(node, "kernel_shape"))
    pads = [0, 0, 0, 0] if global_pool else list(cv.attr(node, "pads", [0, 0, 0, 0]))
    if kernel == (h, w) and not any(pads) and cv.attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        # Global: an exact int32 sum and one RESCALE by x_scale / (y_scale · H · W).
        total = g.reshape(g.reduce_sum(g.reshape(widen(cv, v, zp), (n, h * w, c)), axis=1), (n, 1, 1, c))
        real = np.float64(x.quant.s) / np.float64(out.quant.s) / (h * w)
        cv.set(out.name, cv.requantize(total, np.array([real]), out), NHWC)
        return
    win = window(node, cv.attr, (h, w), ceil_mode_ok=not cv.attr(node, "count_include_pad", 0))
    if win.dilation != (1, 1):
        raise UnsupportedError("AveragePool with dilations is not supported")
    v = crop(cv, v, win.crop)
    pad = win.pad
    if cv.attr(node, "count_include_pad", 0) and any(pad):
        v = g.pad(v, (0, 0, pad[0], pad[1], pad[2], pad[3], 0, 0), pad_const=zp)
        pad = (0, 0, 0, 0)
    if not any(pad):
        # Every window has kernel-area elements: an exact int32 window sum (a depthwise conv with unit weights)
        # and one RESCALE by x_scale / (y_scale · area) — a single rounding, as ORT's float average.
        area = win.kernel[0] * win.kernel[1]
        ones = g.const(np.ones((*win.kernel, c, 1), np.int8))
        total = g.depthwise_conv2d(v, ones, pad=(0, 0, 0, 0), stride=win.stride, input_zp=zp, acc_type=DType.INT32)
        real = np.float64(x.quant.s) / np.float64(out.quant.s) / area
        cv.set(out.name, cv.requantize(total, np.array([real]), out), NHWC)
        return
    # Padded windows without the padding in the count: TOSA's AVG_POOL2D divides by each window's own count;
    # a different output scale then costs a second rounding.
    y = g.avg_pool2d(v, kernel=win.kernel, stride=win.stride, pad=pad, input_zp=zp, output_zp=zp)
    cv.set(out.name, requantize_int8(cv, y, zp, float(x.quant.s), out), NHWC)


def concat(cv: Converter, node: onnx.NodeProto, inputs: list[Entry], out: QOut, axis: int) -> None:
    inputs, layout = cv.common_layout(inputs)
    parts = []
    for e in inputs:
        v, zp = int8_operand(cv, e, layout)
        parts.append(requantize_int8(cv, v, zp, float(e.quant.s), replace(out, dtype=DType.INT8, quant=out.quant.shifted(
            -128 if out.dtype is DType.UINT8 else 0))))
    y = cv.g.concat(*parts, axis=layout.index(axis % len(layout)))
    cv.set(out.name, cv.unsigned(y) if out.dtype is DType.UINT8 else y, layout)


# ---------------------------------------------------------------------- QDQ: float ops between (De)QuantizeLinear
def _qdq_conv(cv, node, out):
    conv(cv, node, cv.entry(node, 0), cv.entry(node, 1), cv.entry(node, 2), out)


def _qdq_matmul(cv, node, out):
    a, b = cv.entry(node, 0), cv.entry(node, 1)
    if node.op_type == "Gemm":
        if float(cv.attr(node, "beta", 1.0)) != 1.0 and len(node.input) > 2 and node.input[2]:
            raise UnsupportedError("quantized Gemm with beta != 1 is not supported")
        a, b = gemm_operands(cv, node, a, b)
        matmul(cv, node, a, b, cv.entry(node, 2), out, float(cv.attr(node, "alpha", 1.0)))
    else:
        matmul(cv, node, a, b, None, out)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _qdq_unary(fn):
    return lambda cv, node, out: table(cv, cv.entry(node, 0), out, fn(cv, node))


QDQ_RULES: dict[str, tuple[Callable[[onnx.NodeProto], list[int]], Callable]] = {
    "Conv": (lambda n: [0, 1], _qdq_conv),
    "MatMul": (lambda n: [0, 1], _qdq_matmul),
    "Gemm": (lambda n: [0, 1], _qdq_matmul),
    "Add": (lambda n: [0, 1], lambda cv, node, out: binary(cv, node, cv.entry(node, 0), cv.entry(node, 1), out)),
    "Sub": (lambda n: [0, 1], lambda cv, node, out: binary(cv, node, cv.entry(node, 0), cv.entry(node, 1), out)),
    "Mul": (lambda n: [0, 1], lambda cv, node, out: binary(cv, node, cv.entry(node, 0), cv.entry(node, 1), out)),
    "AveragePool": (lambda n: [0], lambda cv, node, out: average_pool(cv, node, cv.entry(node, 0), out, False)),
    "GlobalAveragePool": (lambda n: [0],
                          lambda cv, node, out: average_pool(cv, node, cv.entry(node, 0), out, True)),
    "Softmax": (lambda n: [0], lambda cv, node, out: softmax(cv, node, cv.entry(node, 0), out,
                                                             int(cv.attr(node, "axis", -1)))),
    "Concat": (lambda n: list(range(len(n.input))),
               lambda cv, node, out: concat(cv, node, [cv.entry(node, i) for i in range(len(node.input))], out,
                                            int(cv.attr(node, "axis")))),
    "Sigmoid": (lambda n: [0], _qdq_unary(lambda cv, node: sigmoid)),
    "Tanh": (lambda n: [0], _qdq_unary(lambda cv, node: np.tanh)),
    "HardSigmoid": (lambda n: [0], _qdq_unary(
        lambda cv, node: hard_sigmoid(cv.attr(node, "alpha", 0.2), cv.attr(node, "beta", 0.5)))),
    "HardSwish": (lambda n: [0], _qdq_unary(lambda cv, node: hard_swish)),
    "Gelu": (lambda n: [0], _qdq_unary(lambda cv, node: gelu(_text(cv.attr(node, "approximate", "none"))))),
    "Erf": (lambda n: [0], _qdq_unary(lambda cv, node: _erf)),
    "LeakyRelu": (lambda n: [0], _qdq_unary(
        lambda cv, node: (lambda x, a=np.float32(cv.attr(node, "alpha", 0.01)): np.where(x >= 0, x, x * a)))),
}


@pattern
def try_qdq(cv: Converter, node: onnx.NodeProto) -> bool:
    """Legalise ``node`` as an integer op if it sits between DequantizeLinear and QuantizeLinear."""
    rule = QDQ_RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    if rule is None:
        return False
    indices, fn = rule
    for i in indices(node):
        e = cv.entry(node, i)
        if e is None or e.quant is None:
            return False
    out = cv.quantized_output(node)
    if out is None:
        return False
    fn(cv, node, out)
    return True


# ---------------------------------------------------------------------- QuantizeLinear / DequantizeLinear
@handles("DequantizeLinear")
def dequantize_linear(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    if e.quant is not None or e.dtype.is_float:
        raise UnsupportedError(f"DequantizeLinear input must be an integer tensor, got {e.dtype.name}")
    if cv.attr(node, "block_size", 0):
        raise UnsupportedError("blocked quantization (block_size) is not supported")
    quant, _ = cv.quantize_params(node, axis=int(cv.attr(node, "axis", 1)))
    if e.dtype is DType.INT32 and not e.is_const:
        raise UnsupportedError("DequantizeLinear of a run-time int32 tensor is not supported")
    cv.set_entry(node.output[0], replace(e, quant=Quant(quant.scale, quant.zero_point,
                                                        quant.axis % e.rank if quant.axis is not None else None)))


@handles("QuantizeLinear")
def quantize_linear(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    if cv.attr(node, "block_size", 0):
        raise UnsupportedError("blocked quantization (block_size) is not supported")
    quant, dtype = cv.quantize_params(node, axis=int(cv.attr(node, "axis", 1)))
    info = np.iinfo(dtype.storage)
    if e.is_const:
        real = cv.dequantize(e).data if e.quant is not None else e.data.astype(np.float32)
        scale = quant.scale if quant.axis is None else quant.scale.reshape(
            [-1 if i == quant.axis % e.rank else 1 for i in range(e.rank)])
        zp = quant.zero_point if quant.axis is None else quant.zero_point.reshape(scale.shape)
        q = np.clip(np.rint(real / scale) + zp, info.min, info.max).astype(dtype.storage)
        cv.set_entry(node.output[0], Entry(e.shape, data=q))
        return
    out = QOut(quant, dtype, node.output[0])
    if e.quant is not None and not quant.per_channel and node.input[2] not in cv.narrow and dtype is not DType.INT16:
        v, zp = int8_operand(cv, e)
        cv.set(node.output[0], requantize_int8(cv, v, zp, float(e.quant.s), out), e.perm)
        return
    if e.quant is not None:
        e = cv.dequantize(e)
    bounds = cv.narrow.get(node.input[2]) if len(node.input) > 2 else None
    cv.set(node.output[0], quantize_float(cv, e.value, out, e.perm, bounds), e.perm)


def quantize_float(cv: Converter, x: Value, out: QOut, layout: tuple[int, ...] | None = None,
                   bounds: tuple[int, int] | None = None) -> Value:
    """saturate(round_half_even(x / scale) + zp), per tensor or per channel (along ONNX ``quant.axis``, ``x``
    stored in ``layout``), saturating to ``bounds`` (a 4- or 2-bit type's) or the output type's range;
    x / scale is computed as x · (1/scale) in float32."""
    g, rank = cv.g, len(x.shape)
    if x.dtype is not DType.FP32:
        raise UnsupportedError(f"QuantizeLinear of a {x.dtype.name} tensor (expects float32)")
    q = out.quant
    shape = cv.channel_shape(rank, q.axis, layout or tuple(range(rank)), q.scale.size) if q.per_channel \
        else (1,) * rank
    inverse = (np.float32(1.0) / q.scale.astype(np.float32)).reshape(shape)
    rounded = g.cast(g.mul(x, g.const(inverse.astype(np.float32))), DType.INT32)
    y = g.add(rounded, g.const(q.zero_point.astype(np.int32).reshape(shape)))
    low, high = bounds or (np.iinfo(out.dtype.storage).min, np.iinfo(out.dtype.storage).max)
    ones = (1,) * rank
    y = g.minimum(g.maximum(y, g.const(np.full(ones, low, np.int32))), g.const(np.full(ones, high, np.int32)))
    return cv.wrapped(y, out.dtype)

"""The QOperator format: QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger and the
``com.microsoft`` quantized ops ONNX Runtime emits (semantics from ORT's contrib-op documentation).

Each wraps its integer inputs with their explicit scales and zero points as
lazily dequantized entries and calls the same legalisation as the QDQ format.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx

from tosac.errors import UnsupportedError
from tosac.frontends.onnx import dynamic, quantized
from tosac.frontends.onnx.converter import Converter, QOut, handles
from tosac.frontends.onnx.entries import NHWC, Entry, Quant

MS = "com.microsoft"


def lazy(cv: Converter, node: onnx.NodeProto, data: int, scale: int, zp: int, axis: int | None = None) -> Entry:
    """Input ``data`` with the quantization given by inputs ``scale`` and ``zp``."""
    e = cv.entry(node, data)
    if e.quant is not None or e.dtype.is_float:
        raise UnsupportedError(f"input {data} must be an integer tensor")
    quant, _ = cv.quantize_params(node, scale, zp, axis)
    return replace(e, quant=quant)


def output(cv: Converter, node: onnx.NodeProto, scale: int, zp: int) -> QOut:
    quant, dtype = cv.quantize_params(node, scale, zp)
    return QOut(quant, dtype, node.output[0])


def zero_points(cv: Converter, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
    """An optional zero-point input (scalar or per channel), 0 when absent."""
    return np.asarray(cv.const(node, index, what, 0)).astype(np.int64).reshape(-1)


@handles("QLinearConv")
def qlinear_conv(cv: Converter, node: onnx.NodeProto) -> None:
    x, w = lazy(cv, node, 0, 1, 2), lazy(cv, node, 3, 4, 5, axis=0)
    bias = cv.entry(node, 8)
    if bias is not None:
        scales = np.float32(x.quant.s) * quantized.weight_scales(w, w.shape[0])
        bias = replace(bias, quant=Quant(scales, np.zeros(scales.shape, np.int64), 0))
    quantized.conv(cv, node, x, w, bias, output(cv, node, 6, 7))


@handles("QLinearMatMul")
def qlinear_matmul(cv: Converter, node: onnx.NodeProto) -> None:
    a, b = lazy(cv, node, 0, 1, 2), lazy(cv, node, 3, 4, 5, axis=1)
    quantized.matmul(cv, node, a, b, None, output(cv, node, 6, 7))


@handles("QGemm", domain=MS)
def qgemm(cv: Converter, node: onnx.NodeProto) -> None:
    a, b = lazy(cv, node, 0, 1, 2), lazy(cv, node, 3, 4, 5, axis=0 if cv.attr(node, "transB", 0) else 1)
    if cv.entry(node, 7) is None:
        raise UnsupportedError("QGemm with a float output (no y_scale) is not supported")
    if float(cv.attr(node, "beta", 1.0)) != 1.0 and cv.entry(node, 6) is not None:
        raise UnsupportedError("QGemm with beta != 1 is not supported")
    a, b = quantized.gemm_operands(cv, node, a, b)
    bias = cv.entry(node, 6)
    if bias is not None:
        scales = np.float32(a.quant.s) * quantized.weight_scales(b, b.shape[-1])
        bias = replace(bias, quant=Quant(scales, np.zeros(scales.shape, np.int64), 0))
    quantized.matmul(cv, node, a, b, bias, output(cv, node, 7, 8), float(cv.attr(node, "alpha", 1.0)))


@handles("ConvInteger")
def conv_integer(cv: Converter, node: onnx.NodeProto) -> None:
    x, w = cv.entry(node, 0), cv.entry(node, 1)
    x_zp, w_zp = zero_points(cv, node, 2, "x_zero_point"), zero_points(cv, node, 3, "w_zero_point")
    x = replace(x, quant=Quant(np.float32(1), x_zp.reshape(())))
    w = replace(w, quant=Quant(np.ones(w_zp.shape, np.float32), w_zp, 0))
    xv, x_zp = quantized.int8_operand(cv, x, NHWC)
    w8, w_zp = quantized.weights_int8(cv, w)
    cv.set(node.output[0], quantized.conv_accumulate(cv, node, xv, x_zp, w8, w_zp, None), NHWC)


@handles("MatMulInteger")
def matmul_integer(cv: Converter, node: onnx.NodeProto) -> None:
    if dynamic.runtime_zero_point(cv, node, 2):
        dynamic.matmul_integer(cv, node)
        return
    a, b = cv.entry(node, 0), cv.entry(node, 1)
    a_zp, b_zp = zero_points(cv, node, 2, "a_zero_point"), zero_points(cv, node, 3, "b_zero_point")
    a = replace(a, quant=Quant(np.float32(1), a_zp.reshape(())))
    av, a_zp = quantized.int8_operand(cv, a, tuple(range(a.rank)))
    b8, b_zp = quantized.weights_int8(cv, replace(b, quant=Quant(np.ones(b_zp.shape, np.float32), b_zp, b.rank - 1)))
    acc, _ = quantized.matmul_accumulate(cv, av, a_zp, a.shape, b8, b_zp, None)
    cv.set(node.output[0], acc)


def _binary(cv: Converter, node: onnx.NodeProto) -> None:
    quantized.binary(cv, node, lazy(cv, node, 0, 1, 2), lazy(cv, node, 3, 4, 5), output(cv, node, 6, 7))


handles("QLinearAdd", "QLinearMul", domain=MS)(_binary)


@handles("QLinearAveragePool", domain=MS)
def qlinear_average_pool(cv: Converter, node: onnx.NodeProto) -> None:
    _channels_first(cv, node)
    quantized.average_pool(cv, node, lazy(cv, node, 0, 1, 2), output(cv, node, 3, 4), False)


@handles("QLinearGlobalAveragePool", domain=MS)
def qlinear_global_average_pool(cv: Converter, node: onnx.NodeProto) -> None:
    _channels_first(cv, node)
    quantized.average_pool(cv, node, lazy(cv, node, 0, 1, 2), output(cv, node, 3, 4), True)


def _channels_first(cv: Converter, node: onnx.NodeProto) -> None:
    if cv.attr(node, "channels_last", 0):
        raise UnsupportedError("channels_last=1 is not supported")


@handles("QLinearSoftmax", domain=MS)
def qlinear_softmax(cv: Converter, node: onnx.NodeProto) -> None:
    x = lazy(cv, node, 0, 1, 2)
    axis = int(cv.attr(node, "axis", -1))
    if int(cv.attr(node, "opset", 13)) < 13 and axis % x.rank != x.rank - 1:
        raise UnsupportedError("QLinearSoftmax with opset < 13 semantics over a non-last axis is not supported")
    quantized.softmax(cv, node, x, output(cv, node, 3, 4), axis)


@handles("QLinearSigmoid", domain=MS)
def qlinear_sigmoid(cv: Converter, node: onnx.NodeProto) -> None:
    quantized.table(cv, lazy(cv, node, 0, 1, 2), output(cv, node, 3, 4), quantized.sigmoid)


@handles("QLinearLeakyRelu", domain=MS)
def qlinear_leaky_relu(cv: Converter, node: onnx.NodeProto) -> None:
    alpha = np.float32(cv.attr(node, "alpha", 0.01))
    quantized.table(cv, lazy(cv, node, 0, 1, 2), output(cv, node, 3, 4),
                    lambda x: np.where(x >= 0, x, x * alpha))


@handles("QLinearConcat", domain=MS)
def qlinear_concat(cv: Converter, node: onnx.NodeProto) -> None:
    count = (len(node.input) - 2) // 3
    inputs = [lazy(cv, node, 2 + 3 * i, 3 + 3 * i, 4 + 3 * i) for i in range(count)]
    quantized.concat(cv, node, inputs, output(cv, node, 0, 1), int(cv.attr(node, "axis")))

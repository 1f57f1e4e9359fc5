"""Normalisation in float32: LayerNormalization (opset 17) and inference-mode BatchNormalization.

Exporters usually fold BatchNormalization into the preceding convolution; an
unfolded one is a per-channel multiply-add. LayerNormalization is computed as
ONNX Runtime's CPU kernel does: mean, then the mean of squared deviations,
then ``(x − mean) · rsqrt(var + epsilon) · scale + bias``. The decomposed form
older exporters write (ReduceMean, Sub, Pow 2, ReduceMean, Add, Sqrt, Div, Mul,
Add) imports op by op through the same TOSA ops.
"""
from __future__ import annotations

import numpy as np
import onnx

from tosac.errors import UnsupportedError
from tosac.frontends.onnx.converter import Converter, handles
from tosac.frontends.onnx.floating import float_entry, ones
from tosac.ir.builder import Value


@handles("LayerNormalization")
def layer_normalization(cv: Converter, node: onnx.NodeProto) -> None:
    """Normalise over the ONNX axes ``axis..rank-1`` in the stored layout; Mean and InvStdDev outputs too."""
    e = float_entry(cv, node, 0)
    axis = int(cv.attr(node, "axis", -1)) % e.rank
    epsilon = np.float32(cv.attr(node, "epsilon", 1e-5))
    g, x = cv.g, cv.value(e)
    axes = [e.stored_axis(a) for a in range(axis, e.rank)]
    count = int(np.prod(e.shape[axis:]))
    reciprocal = g.const(np.full(ones(e.rank), 1 / count, np.float32))

    def mean(v: Value) -> Value:
        for a in axes:
            v = g.reduce_sum(v, axis=a)
        return g.mul(v, reciprocal)

    average = mean(x)
    deviation = g.sub(x, average)
    inv_std = g.rsqrt(g.add(mean(g.mul(deviation, deviation)), g.const(np.full(ones(e.rank), epsilon, np.float32))))
    y = g.mul(deviation, inv_std)
    for index in (1, 2):                                         # Scale, then the optional bias
        operand = float_entry(cv, node, index)
        if operand is not None:
            operand = cv.value(cv.to_rank(operand, e.rank), e.perm)
            y = g.mul(y, operand) if index == 1 else g.add(y, operand)
    cv.set(node.output[0], y, e.perm)
    for index, stat in ((1, average), (2, inv_std)):
        if len(node.output) > index and node.output[index]:
            cv.set(node.output[index], stat, e.perm)


@handles("BatchNormalization")
def batch_normalization(cv: Converter, node: onnx.NodeProto) -> None:
    """Inference mode: x · scale / sqrt(var + eps) + (B − mean · scale / sqrt(var + eps)), folded per channel."""
    if cv.attr(node, "training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise UnsupportedError("attribute training_mode=1 (only inference-mode BatchNormalization is supported)")
    e = float_entry(cv, node, 0)
    scale, bias, mean, var = (np.asarray(cv.const(node, i, what), np.float64)
                              for i, what in ((1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")))
    factor = scale / np.sqrt(var + float(cv.attr(node, "epsilon", 1e-5)))
    shape = cv.channel_shape(e.rank, 1, e.perm, factor.size)
    g = cv.g
    y = g.add(g.mul(cv.value(e), g.const(factor.astype(np.float32).reshape(shape))),
              g.const((bias - mean * factor).astype(np.float32).reshape(shape)))
    cv.set(node.output[0], y, e.perm)

"""ADD, SUB, MUL, RELU, RELU6, RELU_N1_TO_1 and QUANTIZE (int8 → int8), as the reference kernels compute them.

ADD/SUB int8 (reference ``AddElementwise``, Prepare in add.cc / sub.cc): each
input ``(x − zp) · 2^20`` is scaled by ``QuantizeMultiplierSmallerThanOneExp(
s_i / (2·max(s_1, s_2)))``, the two int32 results are added (subtracted), and
the sum is scaled by ``2·max(s_1, s_2) / (2^20 · s_out)`` and offset. Each of the
three products is one DOUBLE_ROUND RESCALE (:mod:`.fixed_point`); the ``· 2^20``
is a separate exact RESCALE (multiplier 2^29, shift 9) because the first
rounding of TFLite's high mul happens on the shifted value.

MUL int8: ``MBQM((x1 − z1)·(x2 − z2), QuantizeMultiplier(s1·s2/s_out)) + z_out``.
RELU family (activations.cc ``QuantizedReluX``): ``MBQM(x − z_in,
QuantizeMultiplier(float(s_in / s_out))) + z_out`` clamped to the range from
``z_out + roundf(bound / s_out)``; the scale ratio is a float32 division there.
QUANTIZE int8 → int8 (``Requantize``): ``MBQM(x − z_in, QuantizeMultiplier(s_in / s_out)) + z_out``.
"""
from __future__ import annotations

import numpy as np

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, nargs, opt
from tosac.frontends.tflite.fixed_point import INT32_MAX, INT32_MIN, quantize_float32
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.dtypes import DType
from tosac.ir.ops import RoundingMode


def _binary_inputs(cv: Converter, op: OpDef):
    nargs(op, cv, 2)
    a, b = cv.value(op.inputs[0], op), cv.value(op.inputs[1], op)
    rank = max(len(a.shape), len(b.shape))
    return cv.broadcast_rank(a, rank), cv.broadcast_rank(b, rank)


@handles("ADD", "SUB")
def add_sub(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "AddOptions" if op.name == "ADD" else "SubOptions")
    a, b = _binary_inputs(cv, op)
    out = cv.out_int8(op)
    (s1, z1), (s2, z2), (so, zo) = cv.quant(op.inputs[0], op), cv.quant(op.inputs[1], op), cv.quant(out, op)
    where = cv.where(op)
    twice_max = 2.0 * max(s1, s2)                                  # float32 doubling: exact
    scaled = []
    for x, s, z in ((a, s1, z1), (b, s2, z2)):
        shifted = cv.to_int32(x, z, 20)
        scaled.append(cv.requantize(shifted, [s / twice_max], DType.INT32, 0, INT32_MIN, INT32_MAX, where))
    total = cv.g.add(*scaled) if op.name == "ADD" else cv.g.sub(*scaled)
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    out_scale = twice_max / float(np.float32((1 << 20) * np.float32(so)))
    cv.define(op, cv.requantize(total, [out_scale], DType.INT8, zo, lo, hi, where))


@handles("MUL")
def mul(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "MulOptions")
    a, b = _binary_inputs(cv, op)
    out = cv.out_int8(op)
    (s1, z1), (s2, z2), (so, zo) = cv.quant(op.inputs[0], op), cv.quant(op.inputs[1], op), cv.quant(out, op)
    prod = cv.g.mul(cv.to_int32(a, z1), cv.to_int32(b, z2))
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    cv.define(op, cv.requantize(prod, [s1 * s2 / so], DType.INT8, zo, lo, hi, cv.where(op)))


_RELU_BOUNDS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


@handles("RELU", "RELU6", "RELU_N1_TO_1")
def relu(cv: Converter, op: OpDef) -> None:
    x, out, (si, zi), (so, zo) = cv.unary_int8(op)
    low, high = _RELU_BOUNDS[op.name]
    lo = max(-128, quantize_float32(low, so, zo))
    hi = 127 if high is None else min(127, quantize_float32(high, so, zo))
    ratio = float(np.float32(si) / np.float32(so))
    cv.define(op, cv.requantize(cv.to_int32(x, zi), [ratio], DType.INT8, zo, lo, hi, cv.where(op)))


@handles("QUANTIZE")
def quantize(cv: Converter, op: OpDef) -> None:
    x, out, (si, zi), (so, zo) = cv.unary_int8(op)
    cv.define(op, cv.requantize(cv.to_int32(x, zi), [si / so], DType.INT8, zo, -128, 127, cv.where(op)))


@handles("DEQUANTIZE")
def dequantize(cv: Converter, op: OpDef) -> None:
    raise UnsupportedError(f"{cv.where(op)}: DEQUANTIZE inside the graph (float tensors) is not supported; "
                           "only at a graph output")

"""Element-wise arithmetic as the reference kernels compute it. Binary ops broadcast.

int8 and int16 (zero point 0): ADD, SUB, MUL, MAXIMUM, MINIMUM, RELU, RELU6, PRELU and QUANTIZE
(int8/int16 → int8/int16); int8 only: SQUARED_DIFFERENCE, RELU_N1_TO_1 (TFLite's
own type sets).

ADD/SUB int8 (reference ``AddElementwise``, Prepare in add.cc / sub.cc): each
input ``(x − zp) · 2^20`` is scaled by ``QuantizeMultiplierSmallerThanOneExp(
s_i / (2·max(s_1, s_2)))``, the two int32 results are added (subtracted), and
the sum is scaled by ``2·max(s_1, s_2) / (2^20 · s_out)`` and offset. Each of the
three products is one DOUBLE_ROUND RESCALE (:mod:`.fixed_point`); the ``· 2^20``
is a separate exact RESCALE (multiplier 2^29, shift 9) because the first
rounding of TFLite's high mul happens on the shifted value. int16 (add.cc/sub.cc's
general-scale path): the same with ``2^15`` for ``2^20``. With all three scales powers
of two and option ``pot_scale_int16`` TFLite takes a saturating power-of-two path
instead: UnsupportedError.

SQUARED_DIFFERENCE int8 (squared_difference.cc): ADD's structure with
``left_shift`` 7 — both inputs ``(x − zp)·2^7`` scaled by ``s_i / (2·max s)``,
the difference squared in int32 (``|d| <= 2^15``, so the square fits), then
``MBQM(d², QuantizeMultiplierSmallerThanOneExp((2·max s)² / (2^14 · s_out)))
+ zp_out``: SUB, an int32 MUL and RESCALEs. Prepare aborts (TFLITE_CHECK) when that
output multiplier is not below 1: UnsupportedError here.

MAXIMUM/MINIMUM (maximum_minimum.cc): the raw int8/int16 values are compared,
whatever the quantization of inputs and output (Prepare checks none): a CAST to
int32 (TOSA's MAXIMUM/MINIMUM are int32), the comparison, a CAST back.

MUL int8/int16: ``MBQM((x1 − z1)·(x2 − z2), QuantizeMultiplier(s1·s2/s_out)) + z_out``, the scale
a float32 expression in Prepare (the int16 product of zero-point-0 values is at most 2^30).

PRELU (``BroadcastPrelu4DSlow``; alpha any broadcastable int8 tensor, constant or
not): ``x − zp >= 0 ? MBQM(x − zp, M1) : MBQM((x − zp)·(α − zp_α), M2)``, plus zp_out,
clamped, with ``M1 = s_in/s_out`` and ``M2 = s_in·s_α/s_out`` computed in float32
as Prepare does: two exact RESCALEs (the second of an int32 MUL, |.| <= 2^16 for
int8, 2^23 for int16) and a SELECT on ``x − zp >= 0``. The int16 kernel (int16 input
and output) reads alpha's data as int8, so alpha must be an int8 tensor (an int16 one
is refused); where a left shift would overflow C's int32 ``(x·α)·2^s`` (int16 with
``M2 >= 128``) the op is refused. Measured: int16 PRELU 0 mismatches with LiteRT 2.3
BUILTIN_REF over 30 probe models and the tests' draws.

RELU family (activations.cc ``QuantizedReluX``): ``MBQM(x − z_in,
QuantizeMultiplier(float(s_in / s_out))) + z_out`` clamped to the range from
``z_out + roundf(bound / s_out)``; the scale ratio is a float32 division there.
The same for int16 (zero points 0). QUANTIZE int8/int16 → int8/int16 (``Requantize``):
``MBQM(x − z_in, QuantizeMultiplier(s_in / s_out)) + z_out`` clamped to the output type.
"""
from __future__ import annotations

import math

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, nargs, opt
from tosac.frontends.tflite.fixed_point import (INT32_MAX, INT32_MIN, check_left_shift, quantize_float32,
                                                 quantize_multiplier)
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType


INT8, INT8_OR_16 = (TensorType.INT8,), (TensorType.INT8, TensorType.INT16)


def _binary_inputs(cv: Converter, op: OpDef, types: tuple[int, ...] = (TensorType.INT8,)
                   ) -> tuple[Value, Value]:
    """The two inputs, of the output's type (one of ``types``), reshaped to one rank for broadcasting."""
    nargs(op, cv, 2)
    out_type = cv.t(cv.out_int8(op, allowed=types)).type
    a, b = cv.value(op.inputs[0], op, out_type), cv.value(op.inputs[1], op, out_type)
    rank = max(len(a.shape), len(b.shape))
    return cv.broadcast_rank(a, rank), cv.broadcast_rank(b, rank)


def _quants(cv: Converter, op: OpDef) -> list[tuple[float, int]]:
    """(scale, zero point) of every input, then of the output."""
    return [cv.quant(i, op) for i in (*op.inputs, op.outputs[0])]


def _near_power_of_two(scale: float) -> bool:
    """TFLite's ``CheckedLog2`` test (|log2 − round| < 1e-3), with a margin: such int16 scales take its
    power-of-two path."""
    return abs(math.log2(scale) - round(math.log2(scale))) < 2e-3


@handles("ADD", "SUB")
def add_sub(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "AddOptions" if op.name == "ADD" else "SubOptions")
    a, b = _binary_inputs(cv, op, INT8_OR_16)
    out = op.outputs[0]
    quants = _quants(cv, op)
    (s1, z1), (s2, z2), (so, zo) = quants
    where = cv.where(op)
    if a.dtype == DType.INT16 and o.PotScaleInt16() and all(_near_power_of_two(q[0]) for q in quants):
        raise UnsupportedError(f"{where}: int16 with power-of-two scales and option pot_scale_int16 (TFLite's "
                               "saturating power-of-two path is not supported)")
    left_shift = 15 if a.dtype == DType.INT16 else 20
    twice_max = 2.0 * max(s1, s2)                                  # float32 doubling: exact
    scaled = []
    for x, s, z in ((a, s1, z1), (b, s2, z2)):
        shifted = cv.to_int32(x, z, left_shift)
        span = ((x.dtype.min - z) << left_shift, (x.dtype.max - z) << left_shift)
        scaled.append(cv.requantize(shifted, [s / twice_max], DType.INT32, 0, INT32_MIN, INT32_MAX, where,
                                    acc_range=span))
    total = cv.g.add(*scaled) if op.name == "ADD" else cv.g.sub(*scaled)
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    out_scale = twice_max / float(np.float32((1 << left_shift) * np.float32(so)))
    cv.define(op, cv.requantize(total, [out_scale], a.dtype, zo, lo, hi, where))


@handles("MUL")
def mul(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "MulOptions")
    a, b = _binary_inputs(cv, op, INT8_OR_16)
    out = op.outputs[0]
    (s1, z1), (s2, z2), (so, zo) = _quants(cv, op)
    prod = cv.g.mul(cv.to_int32(a, z1), cv.to_int32(b, z2))       # int16 (zero points 0): |.| <= 2^30
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    scale = float(np.float32(np.float32(s1) * np.float32(s2)) / np.float32(so))     # float32 in Prepare
    cv.define(op, cv.requantize(prod, [scale], a.dtype, zo, lo, hi, cv.where(op)))


_RELU_BOUNDS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


@handles("MAXIMUM", "MINIMUM")
def maximum_minimum(cv: Converter, op: OpDef) -> None:
    a, b = _binary_inputs(cv, op, INT8_OR_16)
    fn = cv.g.maximum if op.name == "MAXIMUM" else cv.g.minimum
    cv.define(op, cv.g.cast(fn(cv.g.cast(a, DType.INT32), cv.g.cast(b, DType.INT32)), a.dtype))


@handles("SQUARED_DIFFERENCE")
def squared_difference(cv: Converter, op: OpDef) -> None:
    a, b = _binary_inputs(cv, op)
    (s1, z1), (s2, z2), (so, zo) = _quants(cv, op)
    where = cv.where(op)
    twice_max = 2.0 * max(s1, s2)
    out_scale = twice_max * twice_max / float(np.float32((1 << 14) * np.float32(so)))
    if quantize_multiplier(out_scale, where)[1] > 0:
        raise UnsupportedError(f"{where}: (2·max input scale)² / (2^14 · output scale) = {out_scale} must be "
                               "below 1 (TFLite's Prepare aborts otherwise)")
    scaled = [cv.requantize(cv.to_int32(x, z, 7), [s / twice_max], DType.INT32, 0, INT32_MIN, INT32_MAX, where)
              for x, s, z in ((a, s1, z1), (b, s2, z2))]
    diff = cv.g.sub(*scaled)
    cv.define(op, cv.requantize(cv.g.mul(diff, diff), [out_scale], DType.INT8, zo, -128, 127, where))


@handles("PRELU")
def prelu(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2)
    out = cv.out_int8(op, allowed=INT8_OR_16)
    x, alpha = cv.value(op.inputs[0], op, cv.t(out).type), cv.value(op.inputs[1], op)
    if len(alpha.shape) > len(x.shape) or tuple(np.broadcast_shapes(x.shape, alpha.shape)) != tuple(x.shape):
        raise FrontendError(f"{cv.where(op)}: alpha of shape {list(alpha.shape)} does not broadcast to the "
                            f"input's {list(x.shape)}")
    (si, zi), (sa, za), (so, zo) = _quants(cv, op)
    where, dt = cv.where(op), x.dtype
    xi = cv.to_int32(x, zi)
    ai = cv.broadcast_rank(cv.to_int32(alpha, za), len(x.shape))
    f32 = np.float32
    scales = (float(f32(si) / f32(so)), float(f32(f32(si) * f32(sa)) / f32(so)))      # float32 in Prepare
    bound = max(abs(dt.min - zi), abs(dt.max - zi))                 # |x − zp|, then times |α − zp_α| <= 255
    for b, scale in zip((bound, bound * max(128 + za, 127 - za)), scales):
        check_left_shift(b, quantize_multiplier(scale, where)[1], where)
    positive = cv.requantize(xi, [scales[0]], dt, zo, dt.min, dt.max, where)
    negative = cv.requantize(cv.g.mul(xi, ai), [scales[1]], dt, zo, dt.min, dt.max, where)
    zero = cv.g.const(np.zeros([1] * len(x.shape), np.int32))
    cv.define(op, cv.g.select(cv.g.greater_equal(xi, zero), positive, negative))


@handles("RELU", "RELU6", "RELU_N1_TO_1")
def relu(cv: Converter, op: OpDef) -> None:
    x, out, (si, zi), (so, zo) = cv.unary_int8(op, INT8_OR_16 if op.name != "RELU_N1_TO_1" else INT8)
    low, high = _RELU_BOUNDS[op.name]
    lo = max(x.dtype.min, quantize_float32(low, so, zo))
    hi = x.dtype.max if high is None else min(x.dtype.max, quantize_float32(high, so, zo))
    ratio = float(np.float32(si) / np.float32(so))
    cv.define(op, cv.requantize(cv.to_int32(x, zi), [ratio], x.dtype, zo, lo, hi, cv.where(op)))


@handles("QUANTIZE")
def quantize(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 1)
    out = cv.out_int8(op, allowed=INT8_OR_16)
    x = cv.value(op.inputs[0], op, INT8_OR_16)
    (si, zi), (so, zo) = _quants(cv, op)
    dt = cv.dtype(out, op)
    cv.define(op, cv.requantize(cv.to_int32(x, zi), [si / so], dt, zo, dt.min, dt.max, cv.where(op)))


@handles("DEQUANTIZE")
def dequantize(cv: Converter, op: OpDef) -> None:
    raise UnsupportedError(f"{cv.where(op)}: DEQUANTIZE inside the graph (float tensors) is not supported; "
                           "only at a graph output")

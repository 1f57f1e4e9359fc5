"""FULLY_CONNECTED and BATCH_MATMUL, int8 and int16x8.

FULLY_CONNECTED: ``acc = Σ (w − w_zp)·(x − x_zp) + bias`` (int32; int16 inputs: int64 with an int64 bias,
int32 with ``quantized_bias_type = INT32``) is a 1x1 CONV2D on ``[batch, 1, 1, depth]`` (int16: INT48,
narrowed to int32 once its bound is proved below 2^31). LiteRT 2.3's reference kernel then requantizes in
floating point, ``(int32) round((double) acc · s_in · s_w[c] / s_out)`` (per tensor and per channel alike;
"Make the fully_connected ref kernel do requant in float", 2025), which no single RESCALE rounds like —
measured: with ``eff = 2^−7`` the accumulator −64 gives −1 in LiteRT and 0 with SINGLE_ROUND, and the
31-bit multiplier misses a few steps of ``round`` for some scales. :func:`.accumulators.float_rounded`
reproduces it exactly with integer ops.

BATCH_MATMUL: ``lhs [..., A, B] x rhs [..., B, C]`` (``adj_x``/``adj_y`` transpose the last two
dimensions of an operand first), batch dimensions broadcast. The int8 reference kernel accumulates
``(lhs − lhs_zp)·(rhs − rhs_zp)`` in int32 and requantizes per tensor with the double-rounding
``MultiplyByQuantizedMultiplier(s_lhs · s_rhs / s_out)`` — TOSA MATMUL with both zero points and RESCALE
DOUBLE_ROUND (measured: 150 of 150 random models match DOUBLE_ROUND, 146 SINGLE_ROUND). The scale's
product ``s_lhs · s_rhs`` is rounded to float32 before the division in double (the bias-less
``GetQuantizedConvolutionMultipler``; measured: with ``s_lhs · s_rhs / s_out`` just below ``2^−9`` the
double product gives ``M = 0x7FFFFFFC`` where LiteRT's float product gives exactly ``2^−9``). int16 x int16 and int16 x int8 (zero points 0) accumulate in int64 and requantize with
TFLite's int64 ``MultiplyByQuantizedMultiplier`` — TOSA MATMUL int16 (the int8 operand CAST to int16) into
INT48 and :func:`.accumulators.requantize_wide`. TOSA MATMUL is ``[N, H, C] x [N, C, W]``: the operands are
brought to the output's rank, transposed (TRANSPOSE) where ``adj`` says, tiled (TILE) along the batch
dimensions they broadcast, and reshaped to one batch dimension; the result is reshaped back.
"""
from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.accumulators import (filter_acc_bound, float_rounded, narrow_to_int32,
                                                 requantize_wide, wide_bound_ok)
from tosac.frontends.tflite.converter import Converter, handles, nargs, opt
from tosac.frontends.tflite.reader import OpDef
from tosac.frontends.tflite.spatial import ACTIVATIONS, bias_values, filter_weights, wide_bias
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType


def _input_abs_max(dtype: DType, zp: int) -> int:
    """The largest ``|x − zp|`` over the type's range."""
    return max(dtype.max - zp, zp - dtype.min)


@handles("FULLY_CONNECTED")
def fully_connected(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2, 3)
    o = opt(op, cv, "FullyConnectedOptions")
    where = cv.where(op)
    if o.WeightsFormat() != 0:
        raise UnsupportedError(f"{where}: option weights_format {o.WeightsFormat()} (only DEFAULT)")
    out = cv.out_int8(op, allowed=ACTIVATIONS)
    x = cv.value(op.inputs[0], op, cv.t(out).type)
    w_t = cv.t(op.inputs[1])
    if len(w_t.shape) != 2:
        raise FrontendError(f"{where}: filter shape {list(w_t.shape)} is not [units, depth]")
    units, depth = w_t.shape
    size = int(np.prod(x.shape))
    if size % depth:
        raise FrontendError(f"{where}: input of {size} elements is not a multiple of depth {depth}")
    batch = size // depth
    w, ws, wzp = filter_weights(cv, op, op.inputs[1], 0, units)
    in_s, in_zp = cv.quant(op.inputs[0], op)
    out_s, out_zp = cv.quant(out, op)
    if x.dtype is DType.INT8:
        b = bias_values(cv, op, 2, units, (TensorType.INT32,))
    else:
        b, _ = wide_bias(cv, op, 2, units, o.QuantizedBiasType())
    # The kernel's double arithmetic: (double) input_scale * (double) filter_scale / (double) output_scale.
    effs = [in_s * float(s) / out_s for s in np.broadcast_to(ws, (units,)).tolist()]
    bound = filter_acc_bound(w.astype(np.int64) - wzp, 0, _input_abs_max(x.dtype, in_zp), b)
    x4 = cv.g.reshape(x, [batch, 1, 1, depth])
    acc = cv.g.conv2d(x4, cv.g.const(w.reshape(units, 1, 1, depth)), b, input_zp=in_zp, weight_zp=wzp)
    if x.dtype is DType.INT16:
        if int(bound.max()) >= 1 << 31:
            raise UnsupportedError(f"{where}: the accumulator may reach {int(bound.max())}, beyond int32")
        acc = narrow_to_int32(cv, acc)
    lo, hi = cv.act(op, o.FusedActivationFunction(), out)
    y = float_rounded(cv, acc, effs, bound, x.dtype, out_zp, lo, hi, where)
    shape = list(x.shape[:-1]) + [units] if o.KeepNumDims() else [batch, units]
    cv.define(op, cv.g.reshape(y, shape))


def _operand_abs_max(cv: Converter, op: OpDef, idx: int, dtype: DType) -> int:
    """The largest ``|x|`` an int16/int8 operand (zero point 0) can hold: from its data when constant."""
    if cv.t(idx).data is not None:
        return int(np.abs(cv.const_array(idx, op).astype(np.int64)).max(initial=0))
    return -dtype.min


@handles("BATCH_MATMUL")
def batch_matmul(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2)
    o = opt(op, cv, "BatchMatMulOptions")
    where, g = cv.where(op), cv.g
    out = cv.out_int8(op, allowed=ACTIVATIONS)
    out_t = cv.t(out).type
    rhs_types = (TensorType.INT8,) if out_t == TensorType.INT8 else (TensorType.INT16, TensorType.INT8)
    a = cv.value(op.inputs[0], op, out_t)
    b = cv.value(op.inputs[1], op, rhs_types)
    if not (2 <= len(a.shape) <= 5 and 2 <= len(b.shape) <= 5):
        raise FrontendError(f"{where}: operand ranks {len(a.shape)} and {len(b.shape)} (2 to 5 allowed)")
    (sa, za), (sb, zb), (so, zo) = cv.quant(op.inputs[0], op), cv.quant(op.inputs[1], op), cv.quant(out, op)
    if out_t == TensorType.INT16 and zb:
        raise UnsupportedError(f"{where}: int16 BATCH_MATMUL needs zero points 0, the rhs has {zb}")
    rank = max(len(a.shape), len(b.shape))
    a, b = cv.broadcast_rank(a, rank), cv.broadcast_rank(b, rank)
    swap = list(range(rank - 2)) + [rank - 1, rank - 2]
    if o.AdjX():
        a = g.transpose(a, perms=swap)
    if o.AdjY():
        b = g.transpose(b, perms=swap)
    if a.shape[-1] != b.shape[-2]:
        raise FrontendError(f"{where}: inner dimensions {a.shape[-1]} and {b.shape[-2]} differ")
    batch = []
    for i, (da, db) in enumerate(zip(a.shape[:-2], b.shape[:-2])):
        if da != db and 1 not in (da, db):
            raise FrontendError(f"{where}: batch dimension {i} ({da} vs {db}) does not broadcast")
        batch.append(max(da, db))

    def flat(v: Value) -> Value:
        if list(v.shape[:-2]) != batch:
            v = g.tile(v, [n // d for n, d in zip(batch, v.shape[:-2])] + [1, 1])
        return g.reshape(v, [int(np.prod(batch, dtype=np.int64))] + list(v.shape[-2:]))

    rows, depth, cols = a.shape[-2], a.shape[-1], b.shape[-1]
    # GetQuantizedConvolutionMultipler without a bias: (double)(float lhs_scale * float rhs_scale) / out_scale.
    scale = float(np.float32(sa) * np.float32(sb)) / so
    if out_t == TensorType.INT8:
        acc = g.matmul(flat(a), flat(b), a_zp=za, b_zp=zb)
        y = cv.requantize(acc, [scale], DType.INT8, zo, DType.INT8.min, DType.INT8.max, where)
    else:
        bound = depth * _operand_abs_max(cv, op, op.inputs[0], a.dtype) * \
            _operand_abs_max(cv, op, op.inputs[1], b.dtype)
        wide_bound_ok(np.asarray([bound], np.int64), np.asarray([scale]), where)
        if b.dtype is DType.INT8:
            b = g.cast(b, DType.INT16)
        acc = g.matmul(flat(a), flat(b))
        y = requantize_wide(cv, acc, np.asarray([scale]), DType.INT16, DType.INT16.min, DType.INT16.max, where)
    cv.define(op, g.reshape(y, batch + [rows, cols]))

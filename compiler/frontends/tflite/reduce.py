"""MEAN (int8): the 4-D form over axes {1, 2} with keep_dims (global average pooling).

What LiteRT 2.3's BUILTIN_REF computes was measured over every reachable sum
(e.g. 765 sums for one 3-element model: 0 mismatches), not taken from the
older ``reference_integer_ops::Mean`` (requantize by ``s_in / s_out``, then
divide by ``n`` rounding half away — that gives 0 where LiteRT gives 1 for a sum
of 1 over n = 4 at equal scales). LiteRT folds ``1/n`` into the multiplier in
integer arithmetic and requantizes the sum once::

    (M0, s0) = QuantizeMultiplier(s_in / s_out)                # double
    k = min(floor(log2 n), 32, 31 + s0)
    M, s = (M0 · 2^k) // n, s0 − k                               # M may be below 2^30
    y = MultiplyByQuantizedMultiplier(Σ_{h,w} (x − zp_in), M, s) + zp_out, clamped to int8

with the double-rounding MBQM. Here: REDUCE_SUM twice over the exact int32
``x − zp_in`` and one DOUBLE_ROUND RESCALE with ``(M, s)`` (see :mod:`.fixed_point`;
``M >= 2^29`` since ``2^k > n/2``, so its left-shift clamp argument holds).
Other axes and ``keep_dims = false`` take other TFLite code paths and are
UnsupportedError here.
"""
from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, nargs, opt
from tosac.frontends.tflite.fixed_point import quantize_multiplier
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.dtypes import DType


@handles("MEAN")
def mean(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2)
    o = opt(op, cv, "ReducerOptions")
    x = cv.value(op.inputs[0], op)
    out = cv.out_int8(op)
    where = cv.where(op)
    axes = cv.const_array(op.inputs[1], op) if cv.t(op.inputs[1]).type == TensorType.INT32 else None
    rank = len(x.shape)
    resolved = None if axes is None or rank != 4 or np.any((axes < -4) | (axes >= 4)) \
        else sorted(int(a) % 4 for a in axes.reshape(-1))
    if resolved != [1, 2] or not o.KeepDims():
        raise UnsupportedError(f"{where}: only the 4-D MEAN over axes [1, 2] with keep_dims is supported "
                               f"(rank {rank}, axes {None if axes is None else axes.tolist()}, "
                               f"keep_dims {bool(o.KeepDims())})")
    n = x.shape[1] * x.shape[2]
    (si, zi), (so, zo) = cv.quant(op.inputs[0], op), cv.quant(out, op)
    g = cv.g
    acc = g.reduce_sum(g.reduce_sum(cv.to_int32(x, zi), axis=1), axis=2)
    m0, s0 = quantize_multiplier(si / so, where)
    k = min(n.bit_length() - 1, 32, 31 + s0)
    cv.define(op, cv.requantize(acc, [], DType.INT8, zo, -128, 127, where, quantized=[((m0 << k) // n, s0 - k)]))

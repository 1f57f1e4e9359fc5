"""MEAN (int8) over any set of constant axes, keep_dims or not (global average pooling is axes {1, 2}).

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

with the double-rounding MBQM and ``n`` the number of elements reduced into
one output. The same formula matched LiteRT for the other axis sets and
``keep_dims = false`` (100 probe models, equal and unequal quantization; the
hypothesis test draws them too). Here: REDUCE_SUM per reduced axis over the
exact int32 ``x − zp_in``, one DOUBLE_ROUND RESCALE with ``(M, s)`` (see
:mod:`.fixed_point`; ``M >= 2^29`` since ``2^k > n/2``, so its left-shift clamp
argument holds) and a RESHAPE without ``keep_dims``. Empty or repeated axes are
UnsupportedError (not measured).
"""
from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
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
    if cv.t(op.inputs[1]).type != TensorType.INT32:
        raise UnsupportedError(f"{where}: the axes must be an int32 constant")
    axes = cv.const_array(op.inputs[1], op).reshape(-1)
    rank = len(x.shape)
    if np.any((axes < -rank) | (axes >= rank)):
        raise FrontendError(f"{where}: axes {axes.tolist()} out of range for rank {rank}")
    resolved = sorted({int(a) % rank for a in axes})
    if not resolved or len(resolved) != axes.size:
        raise UnsupportedError(f"{where}: axes {axes.tolist()} (empty or repeated axes are not supported)")
    n = int(np.prod([x.shape[a] for a in resolved]))
    (si, zi), (so, zo) = cv.quant(op.inputs[0], op), cv.quant(out, op)
    acc = cv.to_int32(x, zi)
    for a in resolved:
        acc = cv.g.reduce_sum(acc, axis=a)
    m0, s0 = quantize_multiplier(si / so, where)
    k = min(n.bit_length() - 1, 32, 31 + s0)
    y = cv.requantize(acc, [], DType.INT8, zo, -128, 127, where, quantized=[((m0 << k) // n, s0 - k)])
    if not o.KeepDims():
        y = cv.g.reshape(y, [d for i, d in enumerate(x.shape) if i not in resolved])
    cv.define(op, y)

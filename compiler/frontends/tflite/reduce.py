"""MEAN, SUM and REDUCE_MAX (int8, int16) over any set of constant axes, keep_dims or not; ARG_MAX (int8).

MEAN: what LiteRT 2.3's BUILTIN_REF computes was measured over every reachable sum
(e.g. 765 sums for one 3-element model: 0 mismatches), not taken from the
older ``reference_integer_ops::Mean`` (requantize by ``s_in / s_out``, then
divide by ``n`` rounding half away — that gives 0 where LiteRT gives 1 for a sum
of 1 over n = 4 at equal scales). LiteRT folds ``1/n`` into the multiplier in
integer arithmetic and requantizes the sum once::

    (M0, s0) = QuantizeMultiplier(s_in / s_out)                # double
    k = min(floor(log2 n), 32, 31 + s0)
    M, s = (M0 · 2^k) // n, s0 − k                               # M may be below 2^30
    y = MultiplyByQuantizedMultiplier(Σ (x − zp_in), M, s) + zp_out, clamped to int8

with the double-rounding MBQM and ``n`` the number of elements reduced into
one output. The same formula matched LiteRT for the other axis sets and
``keep_dims = false`` (100 probe models, equal and unequal quantization; the
hypothesis test draws them too). Here: REDUCE_SUM per reduced axis over the
exact int32 ``x − zp_in``, one DOUBLE_ROUND RESCALE with ``(M, s)`` (see
:mod:`.fixed_point`; ``M >= 2^29`` since ``2^k > n/2``, so its left-shift clamp
argument holds) and a RESHAPE without ``keep_dims``. Empty or repeated axes are
UnsupportedError (not measured).

SUM is the same reference routine (``QuantizedMeanOrSum`` with ``compute_sum``)
without the ``1/n``: ``MBQM(Σ (x − zp_in), QuantizeMultiplier(s_in / s_out)) + zp_out``,
clamped. Measured: LiteRT 2.3's BUILTIN_REF passes int8 SUM data to that routine
as *uint8* (a kReference dispatch bug: −100 reads as 156 and the result is
clamped to [0, 255] and stored as the int8 bit pattern), so it is not the law
here; tosac computes the routine on the int8 values, as TFLite Micro does. The
tests check it against LiteRT where both readings agree (inputs in [0, 127]
after a RELU, outputs mapped from LiteRT's unsigned clamp).

int16 (zero points 0, TFLite's Prepare requires them): the same routine, its sum
in int32 and the result clamped to int16. Measured: MEAN int16 matches LiteRT 2.3
BUILTIN_REF (30 probe models and the tests' draws). SUM int16 suffers the same
dispatch bug worse: BUILTIN_REF sums the first *bytes* of the int16 data as uint8
and writes a uint8 result (30 of 30 probes unrelated to any int16 reading), so
tosac computes the routine on the int16 values, and the tests compare it with
LiteRT's MEAN over a power-of-two ``n`` with output scale ``s_out / n``, whose
multiplier ``(M · n) // n`` with shift ``s + log2 n − log2 n`` is SUM's ``(M, s)``:
the identical computation. Refused: reductions whose int32 sum could overflow
(e.g. more than 65,536 int16 values) and left shifts overflowing C's int32.

REDUCE_MAX requires equal input and output quantization (TFLite's Eval fails
otherwise) and is the raw maximum: TOSA REDUCE_MAX per axis. ARG_MAX (int8 input,
one constant axis) keeps the first index of the maximum (strict ``>`` in
``reference_ops::ArgMinMax``), as TOSA ARGMAX does; its index is int32 — an
``output_type`` INT64 tensor is produced as int32 with the same values (TOSA has
no int64, as the ONNX frontend's int64 indices).
"""
from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.converter import TYPE_NAMES, Converter, handles, nargs, opt
from tosac.frontends.tflite.fixed_point import INT32_MAX, INT32_MIN, check_left_shift, quantize_multiplier
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import Value

INDEX_TYPES = (TensorType.INT32, TensorType.INT64)


def constant_axes(cv: Converter, op: OpDef, rank: int, types: tuple[int, ...] = (TensorType.INT32,)) -> list[int]:
    """The constant axes input (the reducers take int32 only, ARG_MAX int64 too) resolved to sorted distinct
    axes in ``[0, rank)``."""
    where = cv.where(op)
    if cv.t(op.inputs[1]).type not in types:
        raise UnsupportedError(f"{where}: the axes must be an "
                               f"{' or '.join(TYPE_NAMES[t] for t in types)} constant")
    axes = cv.const_array(op.inputs[1], op).reshape(-1)
    if np.any((axes < -rank) | (axes >= rank)):
        raise FrontendError(f"{where}: axes {axes.tolist()} out of range for rank {rank}")
    resolved = sorted({int(a) % rank for a in axes})
    if not resolved or len(resolved) != axes.size:
        raise UnsupportedError(f"{where}: axes {axes.tolist()} (empty or repeated axes are not supported)")
    return resolved


def _reduction(cv: Converter, op: OpDef, types: tuple[int, ...]) -> tuple[Value, list[int], bool]:
    """A reducer's input value (of the output's type), its axes and keep_dims."""
    nargs(op, cv, 2)
    keep = opt(op, cv, "ReducerOptions").KeepDims()
    x = cv.value(op.inputs[0], op, cv.t(cv.out_int8(op, allowed=types)).type)
    return x, constant_axes(cv, op, len(x.shape)), keep


def _define_reduced(cv: Converter, op: OpDef, y: Value, axes: list[int], keep: bool) -> None:
    if not keep:
        y = cv.g.reshape(y, [d for i, d in enumerate(y.shape) if i not in axes])
    cv.define(op, y)


@handles("MEAN", "SUM")
def mean_sum(cv: Converter, op: OpDef) -> None:
    x, axes, keep = _reduction(cv, op, (TensorType.INT8, TensorType.INT16))
    (si, zi), (so, zo) = cv.quant(op.inputs[0], op), cv.quant(op.outputs[0], op)
    where, dt = cv.where(op), x.dtype
    n = int(np.prod([x.shape[a] for a in axes]))
    lo, hi = n * (dt.min - zi), n * (dt.max - zi)                # the range of Σ (x − zp_in)
    if lo < INT32_MIN or hi > INT32_MAX:
        raise UnsupportedError(f"{where}: a sum of {n} {dt.name.lower()} values may overflow TFLite's int32 "
                               "accumulator")
    acc = cv.to_int32(x, zi)
    for a in axes:
        acc = cv.g.reduce_sum(acc, axis=a)
    m, s = quantize_multiplier(si / so, where)
    if op.name == "MEAN":
        k = min(n.bit_length() - 1, 32, 31 + s)
        m, s = (m << k) // n, s - k
    check_left_shift(max(-lo, hi), s, where)
    y = cv.requantize(acc, [], dt, zo, dt.min, dt.max, where, quantized=[(m, s)])
    _define_reduced(cv, op, y, axes, keep)


@handles("REDUCE_MAX")
def reduce_max(cv: Converter, op: OpDef) -> None:
    x, axes, keep = _reduction(cv, op, (TensorType.INT8, TensorType.INT16))
    if cv.quant(op.inputs[0], op) != cv.quant(op.outputs[0], op):
        raise UnsupportedError(f"{cv.where(op)}: input and output quantization differ (TFLite requires them equal)")
    for a in axes:
        x = cv.g.reduce_max(x, axis=a)
    _define_reduced(cv, op, x, axes, keep)


@handles("ARG_MAX")
def arg_max(cv: Converter, op: OpDef) -> None:
    nargs(op, cv, 2)
    if opt(op, cv, "ArgMaxOptions").OutputType() not in INDEX_TYPES:
        raise UnsupportedError(f"{cv.where(op)}: option output_type {op.options.OutputType()}")
    cv.out_int8(op, allowed=INDEX_TYPES)
    x = cv.value(op.inputs[0], op)
    axes = constant_axes(cv, op, len(x.shape), INDEX_TYPES)
    if len(axes) != 1:
        raise FrontendError(f"{cv.where(op)}: ARG_MAX takes one axis, got {axes}")
    cv.define(op, cv.g.argmax(x, axis=axes[0]))

"""SOFTMAX and LOG_SOFTMAX (int8 → int8, last axis): TFLite's gemmlowp fixed-point algorithms in TOSA integer ops.

LiteRT's ``BUILTIN_REF`` resolver registers ``Register_SOFTMAX_REF`` /
``Register_LOG_SOFTMAX_REF``, whose int8 Eval is ``reference_ops::Softmax`` and
``reference_integer_ops::LogSoftmax`` (activations.cc, ``kernel_type ==
kReference``: no lookup-table kernel; the LUT variants are the optimized
kernels'). Both work per row of the last axis on ``d = x − max(row)`` in
``[−255, 0]``:

* Prepare: ``(M, l) = QuantizeMultiplier(min(β·s_in·2^26, 2^31 − 1))`` (β = 1 for
  LOG_SOFTMAX), ``diff_min = −floor(31·2^26 / 2^l)``; elements with ``d < diff_min``
  contribute nothing.
* ``e(d) = exp_on_negative_values(Q5.26 SRDHM(d·2^l, M))`` in Q0.31, and the row
  sum ``Σ RoundingDivideByPOT(e, 12)`` in Q12.19.
* SOFTMAX: ``GetReciprocal``: ``c = CLZ(sum)``, ``1/(1 + x)`` by gemmlowp's
  Newton-Raphson of ``(sum << c) − 2^31``; each output is
  ``RoundingDivideByPOT(SRDHM(recip, e(d)), 35 − c) − 128``, saturated.
* LOG_SOFTMAX: ``L = log_x_for_x_greater_than_or_equal_to_1<5>(sum)`` (Q5.26),
  a cut-off ``max(diff_min − 1, MBQM(L − 2^31, reverse_multiplier, reverse_shift))``
  and ``RoundingDivideByPOT(q(d) − L, 22) + 127``, saturated, with
  ``q(d) = SRDHM(d·2^l, M)``; elements at or below the cut-off give −128.

Legalisation: everything that depends on ``d`` alone is computed here at
import, exactly as the C++ does (Python integers): the 256 values of ``e`` (and
``q``) become a constant table read by GATHER with index ``max − x``. What
depends on the row sum — the reciprocal, the logarithm — is emitted as TOSA
int32 ops on the ``[..., 1]`` row tensors (:class:`FixedPointOps`), then
broadcast back. Why each primitive is exact:

* ``SaturatingRoundingDoublingHighMul(a, b)``: gemmlowp adds ``2^30`` (``ab >= 0``)
  or ``1 − 2^30`` and divides truncating; for ``ab < 0`` that is
  ``ceil((ab + 1 − 2^30) / 2^31) = floor((ab + 2^30) / 2^31)``, so in every case it
  is TOSA ``MUL(a, b, shift=31)`` = ``floor((ab + 2^30) / 2^31)`` (ties toward
  +∞ both) — except ``a = b = −2^31``, where gemmlowp saturates to ``2^31 − 1`` and
  TOSA's result would not fit: there ``a`` is replaced by ``−2^31 + 1``, whose
  product rounds to exactly ``2^31 − 1``.
* ``RoundingDivideByPOT(x, e)`` (ties away from zero) is TOSA
  ``ARITHMETIC_RIGHT_SHIFT(x − [x < 0], e, round)`` (ties up) for ``e >= 1``: for
  ``x < 0`` the −1 moves a tie below the midpoint and nothing else.
* Saturating left shifts (``SaturatingRoundingMultiplyByPOT(Param)``) clamp
  ``x·2^e`` to int32: with ``h = x >> (31 − e)``, ``h > 0`` saturates up,
  ``h < −1`` down, else ``x << e`` is exact.
* ``RoundingHalfSum(a, b) = round_half_away((a + b) / 2)`` is
  ``(a>>1) + (b>>1) + (a0 | b0)`` when ``(a>>1) + (b>>1) >= 0`` and ``… + (a0 & b0)``
  otherwise (``a0``, ``b0`` the low bits), without forming ``a + b``.
* Plain gemmlowp additions never overflow on these ranges (the reference
  interpreter checks every TOSA ADD/SUB).

* LOG_SOFTMAX's ``q(d) − L`` is formed as ``max(q, L − 2^30) − L``: no int32
  overflow, and every ``q − L <= −2^30`` gives −128 either way. Import refuses a
  scale for which a kept element's ``q − L`` could wrap int32 in the C++ (never
  met in a scan of 4,000 scales from 1e-4 to 100).

Measured against LiteRT 2.3 BUILTIN_REF: a scalar Python model of both kernels
matched 300 (SOFTMAX) and 400 (LOG_SOFTMAX) random probe models with input
scales from 1e-3 to 50, with ``TFLITE_SINGLE_ROUNDING`` either way (its
``2^30 − 1`` multiplier cap and single-rounding MBQM change no output); the
emitted ``log_x`` and reciprocal equal that model on 201,025 row sums (every
power of two ±64 in ``[2^19, 511·2^19]``). The code follows the double-rounding
reading.

Limits: the row length is at most 511 — at 512 equal maxima the SOFTMAX sum
reaches ``2^28`` and TFLite's ``TFLITE_CHECK(exponent <= 31)`` aborts (LOG_SOFTMAX
shares the bound: ``log_x`` was checked on sums up to there); int16 SOFTMAX (a
different, LUT-interpolating kernel) and int8 → int16 are UnsupportedError.
"""
from __future__ import annotations

import math

import numpy as np

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, opt
from tosac.frontends.tflite.fixed_point import INT32_MAX, INT32_MIN, quantize_multiplier
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import GraphBuilder, Value
from tosac.ir.dtypes import DType

SCALED_DIFF_BITS, ACCUM_BITS = 5, 12         # Q5.26 scaled differences, Q12.19 sum of exps
MAX_DEPTH = 511                              # 512 equal maxima make TFLite's softmax exponent 32 (abort)


# ------------------------------------------------------------ gemmlowp on Python ints (import time)
def srdhm(a: int, b: int) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    n = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return abs(n) >> 31 if n >= 0 else -(abs(n) >> 31)


def rounding_divide_by_pot(x: int, e: int) -> int:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2^e`` rounded half away from zero."""
    mask = (1 << e) - 1
    return (x >> e) + (1 if (x & mask) > (mask >> 1) + (x < 0) else 0)


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp ``exp_on_negative_values`` of a Q(integer_bits) raw value ``a <= 0``, in Q0.31."""
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter                           # in [−1/4, 0)
    x = (a_mod << integer_bits) + (1 << 28)                         # Rescale<0> (|a_mod| <= 2^(29−ib)), + 1/8
    x2 = srdhm(x, x)
    x3, x4 = srdhm(x2, x), srdhm(x2, x2)
    poly = rounding_divide_by_pot(srdhm(rounding_divide_by_pot(x4, 2) + x3, 715827883) + x2, 1)
    result = 1895147668 + srdhm(1895147668, x + poly)              # exp(−1/8)·(1 + x + x²/2 + ...)
    remainder = a_mod - a
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                 (2, 39332535), (3, 720401), (4, 242)):
        if integer_bits > exponent and remainder & (1 << (frac + exponent)):
            result = srdhm(result, multiplier)                      # · exp(−2^exponent)
    return INT32_MAX if a == 0 else result


def softmax_scaling(beta: float, input_scale: float, where: str) -> tuple[int, int, int]:
    """``PreprocessSoftmaxScaling`` and ``CalculateInputRadius``: ``(M, left_shift, diff_min)``."""
    real = min(beta * input_scale * (1 << (31 - SCALED_DIFF_BITS)), (1 << 31) - 1.0)
    if not real > 1.0:
        raise UnsupportedError(f"{where}: beta · input scale = {beta * input_scale} is below 2^-26 (TFLite's "
                               "QuantizeMultiplierGreaterThanOne fails)")
    q, shift = math.frexp(real)                  # QuantizeMultiplier, keeping shift 31 for the 2^31 − 1 cap
    m = math.floor(q * (1 << 31) + 0.5)
    if m == 1 << 31:
        m, shift = m // 2, shift + 1
    radius = math.floor(((1 << SCALED_DIFF_BITS) - 1) * (1 << (31 - SCALED_DIFF_BITS)) / (1 << shift))
    return m, shift, -radius


def scaled_diffs(m: int, shift: int, diff_min: int) -> list[int | None]:
    """``MultiplyByQuantizedMultiplierGreaterThanOne(−k, M, l)`` for ``k = max − x`` in 0..255 (None below
    diff_min: the kernel skips those)."""
    return [srdhm(-k << shift, m) if -k >= diff_min else None for k in range(256)]


# ------------------------------------------------------------ the same fixed point as TOSA int32 ops
class FixedPointOps:
    """gemmlowp's int32 fixed-point primitives emitted as exact TOSA ops on tensors of one rank."""

    def __init__(self, g: GraphBuilder, rank: int):
        self.g, self.rank = g, rank
        self._consts: dict[int, Value] = {}

    def c(self, v: int) -> Value:
        """An int32 constant broadcastable to every tensor of the rank."""
        if v not in self._consts:
            self._consts[v] = self.g.const(np.full([1] * self.rank, v, np.int32))
        return self._consts[v]

    def _val(self, v: Value | int) -> Value:
        return self.c(v) if isinstance(v, int) else v

    def srdhm(self, a: Value, b: Value | int, both_may_be_min: bool = True) -> Value:
        """``SaturatingRoundingDoublingHighMul(a, b)`` = MUL shift 31 (module docstring)."""
        g, b = self.g, self._val(b)
        if both_may_be_min:
            both = g.logical_and(g.equal(a, self.c(INT32_MIN)), g.equal(b, self.c(INT32_MIN)))
            a = g.select(both, self.c(INT32_MIN + 1), a)
        return g.mul(a, b, shift=31)

    def rdbpot(self, x: Value, e: Value | int, nonnegative: bool = False) -> Value:
        """``RoundingDivideByPOT(x, e)`` for ``e >= 1`` (``x > INT32_MIN`` unless ``nonnegative``)."""
        g = self.g
        if not nonnegative:
            x = g.add(x, g.arithmetic_right_shift(x, self.c(31), round=False))    # x − [x < 0]
        return g.arithmetic_right_shift(x, self._val(e), round=True)

    def shl_sat(self, x: Value, e: Value | int) -> Value:
        """``SaturatingRoundingMultiplyByPOTParam(x, e)``, ``0 <= e <= 31``: ``x·2^e`` clamped to int32."""
        g = self.g
        e = self._val(e)
        h = g.arithmetic_right_shift(x, g.sub(self.c(31), e), round=False)
        y = g.select(g.greater(self.c(-1), h), self.c(INT32_MIN), g.logical_left_shift(x, e))
        return g.select(g.greater(h, self.c(0)), self.c(INT32_MAX), y)

    def half_sum(self, a: Value, b: Value | int) -> Value:
        """``RoundingHalfSum(a, b)`` without forming ``a + b`` (module docstring)."""
        g, b = self.g, self._val(b)
        one = self.c(1)
        halves = g.add(g.arithmetic_right_shift(a, one, round=False), g.arithmetic_right_shift(b, one, round=False))
        low_a, low_b = g.bitwise_and(a, one), g.bitwise_and(b, one)
        carry = g.select(g.greater_equal(halves, self.c(0)), g.bitwise_or(low_a, low_b), g.bitwise_and(low_a, low_b))
        return g.add(halves, carry)

    def one_over_one_plus_x(self, a: Value) -> Value:
        """gemmlowp ``one_over_one_plus_x_for_x_in_0_1`` (Q0.31 in and out): three Newton-Raphson steps in Q2.29."""
        g = self.g
        half_denominator = self.half_sum(a, INT32_MAX)
        x = g.add(self.c(1515870810), self.srdhm(half_denominator, -1010580540, False))     # 48/17 − 32/17·d
        for _ in range(3):
            residual = g.sub(self.c(1 << 29), self.srdhm(half_denominator, x, False))
            x = g.add(x, self.shl_sat(self.srdhm(x, residual, False), 2))
        return self.shl_sat(x, 1)

    def log_x(self, x: Value, input_bits: int = ACCUM_BITS, output_bits: int = SCALED_DIFF_BITS) -> Value:
        """TFLite's ``log_x_for_x_greater_than_or_equal_to_1_impl`` (common.h) of a positive Q(input_bits)
        value: ``log2`` of the leading power of two, adjusted by a quarter, plus a rational approximation of
        ``log`` of the mantissa ``r`` in ``[2^−1/4, 2^1/4)``; result in Q(output_bits)."""
        g, c = self.g, self.c
        acc_bits = output_bits + 1
        sqrt_half, sqrt_sqrt_half, log_2 = 1518500250, 1805811301, 1488522236
        quarter = 1 << (31 - acc_bits - 2)                                          # 1/4 in Q(acc_bits)
        headroom_a = g.clz(x)
        r_a = self.shl_sat(self.srdhm(self.shl_sat(x, g.sub(headroom_a, c(1))), sqrt_half, False), 1)
        pow_a = g.add(self.shl_sat(g.sub(c(input_bits), headroom_a), 31 - acc_bits), c(quarter))
        headroom_b = g.sub(g.clz(self.srdhm(x, sqrt_half, False)), c(1))
        r_b = self.shl_sat(x, headroom_b)
        pow_b = g.sub(self.shl_sat(g.sub(c(input_bits), headroom_b), 31 - acc_bits), c(quarter))
        r, z_pow = g.minimum(r_a, r_b), g.maximum(pow_a, pow_b)
        p = self.half_sum(r, sqrt_sqrt_half)
        q = g.sub(r, c(sqrt_sqrt_half))
        q = g.add(q, q)
        mul = lambda a, b: self.srdhm(a, b, False)                                  # noqa: E731
        q2 = mul(q, q)
        num = g.add(mul(q, r), mul(mul(q, q2), 117049297))
        denominator_minus_one = g.add(mul(p, g.add(g.add(c(1057819769), q), mul(c(127690142), q2))),
                                      mul(c(638450708), q))
        ratio = mul(self.rdbpot(num, acc_bits), self.one_over_one_plus_x(denominator_minus_one))
        return self.shl_sat(g.add(mul(z_pow, log_2), ratio), acc_bits - output_bits)


# ------------------------------------------------------------ the operators
def _lookup(cv: Converter, k: Value, table: list[int]) -> Value:
    """``table[k]`` for every element of the int32 index tensor ``k`` (GATHER from a [1, 256, 1] constant)."""
    g = cv.g
    values = g.const(np.asarray(table, np.int32).reshape(1, 256, 1))
    return g.reshape(g.gather(values, g.reshape(k, [1, int(np.prod(k.shape))])), k.shape)


def _rows(cv: Converter, op: OpDef, beta: float
          ) -> tuple[Value, Value, Value, FixedPointOps, tuple[int, int, int]]:
    """``k = max − x``, ``e(−k)`` (Q0.31), the Q12.19 row sums, the emitter and ``(M, l, diff_min)``."""
    x, _, (si, _), _ = cv.unary_int8(op)
    where = cv.where(op)
    rank, depth = len(x.shape), x.shape[-1]
    if rank < 1 or depth > MAX_DEPTH:
        raise UnsupportedError(f"{where}: a last axis of {depth} (at most {MAX_DEPTH}: TFLite aborts beyond)")
    scaling = softmax_scaling(beta, si, where)
    q = scaled_diffs(*scaling)
    g = cv.g
    k = g.sub(cv.to_int32(g.reduce_max(x, axis=rank - 1), 0), cv.to_int32(x, 0))      # max − x in [0, 255]
    e = _lookup(cv, k, [0 if v is None else exp_on_negative_values(v, SCALED_DIFF_BITS) for v in q])
    fp = FixedPointOps(g, rank)
    total = g.reduce_sum(fp.rdbpot(e, ACCUM_BITS, nonnegative=True), axis=rank - 1)
    return k, e, total, fp, scaling


def _check_output(cv: Converter, op: OpDef, scale: str, zero_point: int, tolerance: float) -> None:
    """Prepare's output quantization requirement (``scale`` as a fraction, e.g. "1/256")."""
    so, zo = cv.quant(cv.out_int8(op), op)
    num, den = (float(v) for v in scale.split("/"))
    if zo != zero_point or abs(np.float32(so) - np.float32(num / den)) > np.float32(tolerance):
        raise UnsupportedError(f"{cv.where(op)}: int8 {op.name} needs output scale {scale} and zero point "
                               f"{zero_point} (TFLite refuses {so}, {zo})")


@handles("SOFTMAX")
def softmax(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "SoftmaxOptions")
    _check_output(cv, op, "1/256", -128, 0.001 / 256)
    _, e, total, fp, _ = _rows(cv, op, float(np.float32(o.Beta())))
    g = cv.g
    headroom = g.clz(total)                                          # sum >= 2^19: 1 <= headroom <= 12
    shifted = g.bitwise_and(g.logical_left_shift(total, headroom), fp.c(INT32_MAX))   # (sum << c) − 2^31
    recip = fp.one_over_one_plus_x(shifted)
    exponent = g.sub(fp.c(ACCUM_BITS + 31 - 8), headroom)           # num_bits_over_unit + 31 − 8
    y = fp.rdbpot(fp.srdhm(e, recip, False), exponent, nonnegative=True)
    cv.define(op, g.rescale(y, DType.INT8, multiplier=1 << 30, shift=30, output_zp=-128))


def _mbqm_right(x: int, m: int, shift: int) -> int:
    """``MultiplyByQuantizedMultiplier`` for ``shift <= 0`` (double rounding)."""
    y = srdhm(x, m)
    return rounding_divide_by_pot(y, -shift) if shift else y


@handles("LOG_SOFTMAX")
def log_softmax(cv: Converter, op: OpDef) -> None:
    _check_output(cv, op, "16/256", 127, 0.0)
    where = cv.where(op)
    k, _, total, fp, (m, shift, diff_min) = _rows(cv, op, 1.0)
    q = scaled_diffs(m, shift, diff_min)
    rev_m, rev_shift = quantize_multiplier((1 << (31 - shift)) / m, where)      # PreprocessLogSoftmaxScalingExp
    # A kept element (d above the cut-off) whose q(d) − L would wrap int32 in C: the smallest such L,
    # q(d) + 2^31 + 1, must already cut d off (the cut-off grows with L).
    for i, v in enumerate(q):
        if v is not None and -i > max(diff_min - 1, _mbqm_right(v + 1, rev_m, rev_shift)):
            raise UnsupportedError(f"{where}: input scale whose q(d) − log(sum) could wrap in TFLite")
    g = cv.g
    log_sum = fp.log_x(total)
    cutoff = fp.srdhm(g.add(log_sum, fp.c(INT32_MIN)), rev_m, False)
    if rev_shift:
        cutoff = fp.rdbpot(cutoff, -rev_shift)
    cutoff = g.maximum(cutoff, fp.c(diff_min - 1))
    # q − L, with q raised to L − 2^30 first: no int32 overflow, and any q − L <= −2^30 gives −128 anyway.
    qd = _lookup(cv, k, [0 if v is None else v for v in q])
    diff = g.sub(g.maximum(qd, g.sub(log_sum, fp.c(1 << 30))), log_sum)
    y = fp.rdbpot(diff, 31 - SCALED_DIFF_BITS - 4)
    y = g.rescale(y, DType.INT8, multiplier=1 << 30, shift=30, output_zp=127)
    kept = g.greater(g.sub(fp.c(0), cutoff), k)                      # −k > cut-off
    cv.define(op, g.select(kept, y, g.const(np.full([1] * len(k.shape), -128, np.int8))))

"""SOFTMAX and LOG_SOFTMAX (last axis): TFLite's integer algorithms in TOSA integer ops.

int8 → int8 SOFTMAX and LOG_SOFTMAX follow gemmlowp's fixed point; int16 → int16 SOFTMAX follows the
table-interpolating ``SoftmaxInt16`` (end of this docstring).

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
shares the bound: ``log_x`` was checked on sums up to there); int8 → int16 SOFTMAX
and int16 LOG_SOFTMAX are UnsupportedError.

int16 SOFTMAX (int16 → int16, zero points 0, output scale 1/32768 within 0.001/32768 as Prepare
requires). ``SoftmaxEval`` sends every int16 → int16 softmax to ``reference_ops::SoftmaxInt16``
whatever the kernel type, so BUILTIN_REF runs it too. Prepare builds two 513-entry int16 tables with
``LUTPopulate<int16_t>`` on doubles (``LUTPopulateInt16<double>``: input range the int16 range at the
given scale and zero point, output scale ``2/65535``, ``TfLiteRound`` = ``std::round``): ``exp`` over
``[−10, 0]`` (scale ``10/65535``, zero point 32767) and ``1/(1 + x)`` over ``[0, 1]`` (scale ``1/65535``,
zero point −32768); :func:`lut_int16` repeats that double arithmetic in Python (``math.exp`` is the
same libm ``exp``). ``(M, s) = QuantizeMultiplier((float)(s_in · β) / (10/65535))`` — the product in
float32, the division in double. Per row, with ``LUTLookup(v) = base + ((slope·frac + 64) >> 7)``
(9-bit index, 7-bit fraction):

* ``e = LUTLookup(sat16(MultiplyByQuantizedMultiplier(x − max, M, s) + 32767), exp)`` in ``[0, 32762]``;
* ``S = Σ e`` (int32), ``h = CLZ(S)``, ``r = LUTLookup(sat16(((S << (h−1)) + 2^13 >> 14) − 98304),
  1/(1+x))``;
* output ``min(max((e·r + 2^(30−h)) >> (31 − h), 0), 32767)``.

In TOSA: ``x − max`` in int32; RESCALE (DOUBLE_ROUND) for the MBQM — :mod:`.fixed_point`; ``d <= 0``
keeps it ``<= 0``, so ``sat16(· + 32767)`` is ``max(·, −65535) + 32767`` then CAST. ``LUTLookup`` is TOSA
TABLE int16 (``(base << 7) + slope·frac``, int32) then ``ARITHMETIC_RIGHT_SHIFT(·, 7, round)``
(``floor((t + 64) / 128)``, = ``base + ((slope·frac + 64) >> 7)`` since ``base·128`` is a multiple of 128;
the tables' slopes are far inside TABLE's int16 bound and the result lies between two entries, so
the C++'s int16 casts never wrap). The row sum is REDUCE_SUM, ``S << (h−1)`` lies in ``[2^30, 2^31)``
(LOGICAL_LEFT_SHIFT, no wrap) and ``+ 2^13 >> 14`` is a rounding ARITHMETIC_RIGHT_SHIFT (no int32
``+ 2^13`` needed); the −98304 result lies in ``[−32768, 32768]``, so only the top needs a MINIMUM.
``e·r < 2^30`` is an int32 MUL and the last shift a rounding ARITHMETIC_RIGHT_SHIFT by the per-row
``31 − h`` (``e(0) = 32762`` keeps ``S >= 32762``: ``h <= 17``, shift >= 14); the result is ``>= 0``.

Limits (UnsupportedError): rows longer than 65,548 (``65,549 · 32762`` would wrap the C++'s int32
sum); ``s`` above 15, i.e. ``β·s_in`` above about 5 (TFLite's ``(x − max) · 2^s`` overflows int32 —
measured: a row ``[−32768, 32767, 0, 32767]`` at ``β·s_in = 5.2`` gives the −32768 element 10922, as
much as the maxima); negative β.

Measured against LiteRT 2.3 BUILTIN_REF: a scalar Python model of the above matched 1,199 of 1,200
random probe models (input scales 1e-5..3, β 0.3..2, rows 1..70 wide, uniform / narrow-band /
few-valued rows; the one miss had ``s = 16``, the overflow now refused) with
``MultiplyByQuantizedMultiplier`` in its double-rounding form; in its ``TFLITE_SINGLE_ROUNDING`` form it
missed 106 (the two round ``x − max < 0`` differently), so LiteRT 2.3 is built double-rounding. The
emitted graph then matched 1,800 more such models (scales 1e-6..4, rows up to 300), the extremes
(``M = 0`` below ``s = −31``, β = 0, ``s = 15``: a test), and, in the tests, every difference
0..65535 at three scales and the 65,548-long row of equal maxima (``h = 1``, sum ``2^31 − 71``). Not
checked: an aarch64 LiteRT, whose compiler might contract the table arithmetic into FMAs (only x86-64
LiteRT runs here).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import TYPE_NAMES, Converter, handles, opt
from tosac.frontends.tflite.fixed_point import INT32_MAX, INT32_MIN, quantize_multiplier, round_half_away
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import GraphBuilder, Value
from tosac.ir.dtypes import DType

SCALED_DIFF_BITS, ACCUM_BITS = 5, 12         # Q5.26 scaled differences, Q12.19 sum of exps
MAX_DEPTH = 511                              # 512 equal maxima make TFLite's softmax exponent 32 (abort)
INT16_RANGE = 65535                          # int16 max − min, as in Prepare


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


def lut_int16(fn: Callable[[float], float], input_scale: float, input_zero_point: int) -> list[int]:
    """``LUTPopulateInt16<double>`` with output scale ``2/65535``, zero point 0: 513 int16 samples of ``fn``
    over the int16 input range, each but the last biased by half the interpolation error at its midpoint
    (double arithmetic in C's order; every rounded value is >= 1 or a half-integer, where
    ``round_half_away`` is exact)."""
    in_min, in_max = input_scale * (-32768 - input_zero_point), input_scale * (32767 - input_zero_point)
    out_scale = 2.0 / INT16_RANGE
    inv = 65536.0 / (out_scale * 32767 - out_scale * -32768)
    step = (in_max - in_min) / 512
    sat = lambda v: int(min(max(v, -32768), 32767))                             # noqa: E731
    lut = []
    for i in range(512):
        val, mid, nxt = fn(in_min + i * step), fn(in_min + i * step + step / 2), fn(in_min + (i + 1) * step)
        interp = round_half_away((nxt * inv + round_half_away(val * inv)) / 2)
        lut.append(sat(round_half_away(val * inv) - round_half_away((interp - round_half_away(mid * inv)) / 2)))
    return lut + [sat(round_half_away(fn(in_max) * inv))]


EXP_LUT = lut_int16(math.exp, 10.0 / INT16_RANGE, 32767)                       # exp over [−10, 0]
RECIPROCAL_LUT = lut_int16(lambda v: 1.0 / (1.0 + v), 1.0 / INT16_RANGE, -32768)     # 1/(1 + x) over [0, 1]
# The largest LUTLookup result (32762 = exp(0)), and the longest row whose int32 sum cannot wrap.
EXP_MAX = max(max(a, a + (((b - a) * 127 + 64) >> 7)) for a, b in zip(EXP_LUT, EXP_LUT[1:]))
MAX_DEPTH_INT16 = INT32_MAX // EXP_MAX


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
def _check_depth(x: Value, limit: int, where: str) -> int:
    """The rank of ``x``, checked to be at least 1 with a last axis of at most ``limit``."""
    if not x.shape or x.shape[-1] > limit:
        raise UnsupportedError(f"{where}: a last axis of {x.shape[-1] if x.shape else 'none (rank 0)'} (at most "
                               f"{limit}: TFLite's integer sums overflow or abort beyond)")
    return len(x.shape)


def _rows(cv: Converter, op: OpDef, beta: float
          ) -> tuple[Value, Value, Value, FixedPointOps, tuple[int, int, int]]:
    """``k = max − x``, ``e(−k)`` (Q0.31), the Q12.19 row sums, the emitter and ``(M, l, diff_min)``."""
    x, _, (si, _), _ = cv.unary_int8(op)
    where = cv.where(op)
    rank = _check_depth(x, MAX_DEPTH, where)
    scaling = softmax_scaling(beta, si, where)
    q = scaled_diffs(*scaling)
    g = cv.g
    k = g.sub(cv.to_int32(g.reduce_max(x, axis=rank - 1), 0), cv.to_int32(x, 0))      # max − x in [0, 255]
    e = cv.gather_table(k, [0 if v is None else exp_on_negative_values(v, SCALED_DIFF_BITS) for v in q])
    fp = FixedPointOps(g, rank)
    total = g.reduce_sum(fp.rdbpot(e, ACCUM_BITS, nonnegative=True), axis=rank - 1)
    return k, e, total, fp, scaling


def _check_output(cv: Converter, op: OpDef, scale: str, zero_point: int, tolerance: float,
                  dtype: int = TensorType.INT8) -> None:
    """Prepare's output quantization requirement (``scale`` as a fraction, e.g. "1/256")."""
    so, zo = cv.quant(cv.out_int8(op, allowed=(dtype,)), op)
    num, den = (float(v) for v in scale.split("/"))
    if zo != zero_point or abs(np.float32(so) - np.float32(num / den)) > np.float32(tolerance):
        raise UnsupportedError(f"{cv.where(op)}: {TYPE_NAMES[dtype]} {op.name} needs output scale {scale} and "
                               f"zero point {zero_point} (TFLite refuses {so}, {zo})")


@handles("SOFTMAX")
def softmax(cv: Converter, op: OpDef) -> None:
    beta = float(np.float32(opt(op, cv, "SoftmaxOptions").Beta()))
    if op.inputs and cv.t(op.inputs[0]).type == TensorType.INT16:
        return softmax_int16(cv, op, beta)
    _check_output(cv, op, "1/256", -128, 0.001 / 256)
    _, e, total, fp, _ = _rows(cv, op, beta)
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
    qd = cv.gather_table(k, [0 if v is None else v for v in q])
    diff = g.sub(g.maximum(qd, g.sub(log_sum, fp.c(1 << 30))), log_sum)
    y = fp.rdbpot(diff, 31 - SCALED_DIFF_BITS - 4)
    y = g.rescale(y, DType.INT8, multiplier=1 << 30, shift=30, output_zp=127)
    kept = g.greater(g.sub(fp.c(0), cutoff), k)                      # −k > cut-off
    cv.define(op, g.select(kept, y, g.const(np.full([1] * len(k.shape), -128, np.int8))))


def _lut_lookup(fp: FixedPointOps, v: Value, lut: list[int]) -> Value:
    """TFLite's ``LUTLookup(v, lut)`` of an int16 tensor, as int32: TOSA TABLE's ``(base << 7) + slope·frac``
    rounded by ``ARITHMETIC_RIGHT_SHIFT(·, 7, round)``."""
    return fp.g.arithmetic_right_shift(fp.g.table(v, lut), fp.c(7), round=True)


def softmax_int16(cv: Converter, op: OpDef, beta: float) -> None:
    """``reference_ops::SoftmaxInt16`` (module docstring)."""
    x, _, (si, _), _ = cv.unary_int8(op, allowed=(TensorType.INT16,))
    _check_output(cv, op, "1/32768", 0, 0.001 / 32768, TensorType.INT16)
    where = cv.where(op)
    rank = _check_depth(x, MAX_DEPTH_INT16, where)
    scale_beta = float(np.float32(si) * np.float32(beta))          # float32 product, then double division
    if not scale_beta >= 0:
        raise UnsupportedError(f"{where}: beta {beta} is negative")
    m, shift = quantize_multiplier(scale_beta / (10.0 / INT16_RANGE), where)
    if shift > 15:
        raise UnsupportedError(f"{where}: beta · input scale = {scale_beta} gives a left shift of {shift} "
                               "(beyond 15, TFLite's (x − max) · 2^shift overflows int32)")
    g, fp = cv.g, FixedPointOps(cv.g, rank)
    d = g.sub(cv.to_int32(x, 0), cv.to_int32(g.reduce_max(x, axis=rank - 1), 0))       # x − max in [−65535, 0]
    scaled = cv.requantize(d, [], DType.INT32, 0, INT32_MIN, INT32_MAX, where, quantized=[(m, shift)],
                           acc_range=(-INT16_RANGE, 0))                              # <= 0
    sym = g.add(g.maximum(scaled, fp.c(-INT16_RANGE)), fp.c(32767))                 # sat16: scaled <= 0
    e = _lut_lookup(fp, g.cast(sym, DType.INT16), EXP_LUT)                         # Q0.15, <= 32762
    total = g.reduce_sum(e, axis=rank - 1)
    headroom = g.clz(total)                                   # total >= e(0): 1 <= headroom <= 17
    normalized = g.logical_left_shift(total, g.sub(headroom, fp.c(1)))              # in [2^30, 2^31)
    shifted = g.arithmetic_right_shift(normalized, fp.c(14), round=True)            # in [2^16, 2^17]
    sym_sum = g.minimum(g.sub(shifted, fp.c((1 << 15) + (1 << 16))), fp.c(32767))
    recip = _lut_lookup(fp, g.cast(sym_sum, DType.INT16), RECIPROCAL_LUT)           # Q0.15, in [16384, 32767]
    y = g.arithmetic_right_shift(g.mul(e, recip), g.sub(fp.c(31), headroom), round=True)
    cv.define(op, g.cast(g.minimum(y, fp.c(32767)), DType.INT16))

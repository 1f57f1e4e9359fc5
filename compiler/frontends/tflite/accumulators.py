"""Requantizing a convolution's or matrix product's accumulator the three ways TFLite's reference kernels do.

**int32, double rounding** (int8 CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, BATCH_MATMUL; int16 kernels given
an int32 bias with ``quantized_bias_type = INT32``): ``MultiplyByQuantizedMultiplier(int32)`` — RESCALE
DOUBLE_ROUND, see :mod:`.fixed_point` and :meth:`Converter.requantize`.

**int64, TFLite's reduced multiplier** (int16 x int8 kernels with an int64 bias, int16 BATCH_MATMUL): the
accumulator is int64 and ``MultiplyByQuantizedMultiplier(int64 x, M, s)`` computes::

    m = (M + 2^15) >> 16   if M < 0x7FFF0000 else 0x7FFF       # M rounded to 15 bits
    r = (x · m + 2^(14 − s)) >> (15 − s)                         # one rounding, ties up
    return (int32) r

TOSA accumulates int16 x int8 (and int16 x int16) in INT48, and RESCALE of an int48 input with ``scale32 =
false`` is ``apply_scale_16(x, m, t) = (x · m + 2^(t−1)) >> t`` with an int16 multiplier ``m >= 0`` and
``2 <= t <= 62``: with ``m`` as above (``<= 0x7FFF``) and ``t = 15 − s`` it is the same expression, term for
term (``s >= −31`` from QuantizeMultiplier; ``s > 13`` would need ``t < 2`` and is refused). The two differ
only where TFLite's ``r`` leaves int32 (it wraps, TOSA requires it to fit) or the accumulator leaves int48
(TOSA requires it to fit, TFLite's DCHECK asks ``|x| < 2^47`` too): :func:`wide_bound_ok` proves, at import,
from the constant weights and bias and the int16 input range, that neither can happen, and the operator is
refused where it cannot prove it.

**double, one rounding half away from zero** (LiteRT 2.3's reference FULLY_CONNECTED, int8 and int16): the
kernel computes ``(int32) round((double) acc · eff)`` with ``eff = (double) s_in · (double) s_w / (double)
s_out`` — floating point at run time. :func:`float_rounded` reproduces it with integers: the result is an odd
function of ``acc`` (``round`` is symmetric, so is the product's rounding), and for ``m = |acc|`` it is a
monotone step function ``R(m) = #{k >= 1 : m >= T_k}`` whose steps ``T_k = min{m : fl(m · eff) >= k − ½}``
are computed at import with the very double product (``k − ½`` is a double, ``fl`` is monotone, so the
test is exact). RESCALE SINGLE_ROUND of ``m`` with ``(M, 31 − s) = QuantizeMultiplier(eff)`` is another
such step function ``R'`` whose steps ``T'_k = ceil((2k − 1) · 2^(n−1) / M)`` are integers too; where they
differ (the 31-bit ``M`` is within ``2^−31`` of ``eff``, so rarely, and never when ``eff`` is a power of
two) the difference ``R − R' = Σ_k ([m >= T_k] − [m >= T'_k])`` is ±1 on the few ``m`` between them, added
back with EQUAL/SELECT. Only the steps that change the clamped output are compared: ``m`` is first capped
where both functions have passed every output level. The sign is restored with SELECT.
"""
from __future__ import annotations

import numpy as np

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import Converter
from tosac.frontends.tflite.fixed_point import quantize_multiplier
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType
from tosac.ir.ops import RoundingMode

INT16_ABS_MAX = 1 << 15
#: At most this many EQUAL/SELECT correction rounds in :func:`float_rounded`; beyond it the op is refused.
MAX_CORRECTION_ROUNDS = 8
_UNREACHABLE = 1 << 40          # a step of the double rounding no int32 accumulator reaches


def reduced_multiplier(scale: float, where: str) -> tuple[int, int]:
    """TFLite's int64 MultiplyByQuantizedMultiplier as RESCALE's (int16 multiplier, shift ``15 − s``)."""
    m, s = quantize_multiplier(scale, where)
    if s > 13:
        raise UnsupportedError(f"{where}: requantization scale {scale} >= 2^13 needs a TOSA shift below 2")
    return ((m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF), 15 - s


def wide_bound_ok(acc_bounds: np.ndarray, scales: np.ndarray, where: str) -> None:
    """Refuse unless every ``|acc| <= acc_bounds[c]`` lies in int48 and its rescaled value in int32."""
    for a, sc in zip(np.broadcast_to(acc_bounds, np.shape(scales)).tolist(), np.asarray(scales).tolist()):
        m, t = reduced_multiplier(sc, where)
        if a >= (1 << 47) or (int(a) * m + (1 << (t - 1))) >> t >= (1 << 31):
            raise UnsupportedError(f"{where}: the int64 accumulator may reach {a}, whose requantized value "
                                   f"(scale {sc}) leaves int32 where TFLite's int64 MultiplyByQuantizedMultiplier "
                                   "wraps; not reproduced")


def requantize_wide(cv: Converter, acc: Value, scales: np.ndarray, out_dtype: DType, lo: int, hi: int,
                    where: str) -> Value:
    """``clamp((int32) MBQM_int64(acc, QuantizeMultiplier(scale)), lo, hi)`` per channel of an int48 ``acc``
    (zero points are 0 in TFLite's int64-accumulating kernels); the caller has checked :func:`wide_bound_ok`
    before building ``acc``."""
    scales = np.asarray(scales, np.float64).reshape(-1)
    pairs = [reduced_multiplier(s, where) for s in scales.tolist()]
    out = cv.g.rescale(acc, out_dtype, multiplier=[m for m, _ in pairs], shift=[t for _, t in pairs],
                       scale32=False, rounding_mode=RoundingMode.SINGLE_ROUND, per_channel=len(pairs) > 1)
    if lo > out_dtype.min or hi < out_dtype.max:
        out = cv.g.clamp(out, min_val=lo, max_val=hi)
    return out


def narrow_to_int32(cv: Converter, acc: Value) -> Value:
    """An int48 accumulator known (by the caller's bound) to fit int32, as int32: ``(4x + 2) >> 2 = x``."""
    return cv.g.rescale(acc, DType.INT32, multiplier=4, shift=2, scale32=False)


def filter_acc_bound(w: np.ndarray, axis: int, x_abs_max: int, bias: np.ndarray | None) -> np.ndarray:
    """Per output channel (``axis`` of ``w``), the largest ``|Σ w·x + bias|`` with ``|x| <= x_abs_max``."""
    w = np.moveaxis(np.abs(w.astype(np.int64)), axis, 0).reshape(w.shape[axis], -1).sum(axis=1) * x_abs_max
    return w + (np.abs(bias.astype(np.int64)) if bias is not None else 0)


# ---------------------------------------------------------------- FULLY_CONNECTED's float rounding
def _steps_double(eff: float, k: np.ndarray) -> np.ndarray:
    """``T_k = min{m >= 0 : fl(m · eff) >= k − ½}`` (TFLite's double product), vectorised, exact. Steps beyond
    ``2^40`` (tiny ``eff``) are returned as ``2^40``: an int32 accumulator never reaches them."""
    t = np.minimum(np.ceil((k - 0.5) / eff), float(_UNREACHABLE)).astype(np.float64)

    def hit(m: np.ndarray) -> np.ndarray:
        return m * eff >= k - 0.5                     # m < 2^53: m is exact, the product is IEEE's

    for _ in range(8):
        t = np.where((t > 0) & (t < _UNREACHABLE) & hit(t - 1), t - 1, t)
        t = np.where((t < _UNREACHABLE) & ~hit(t), t + 1, t)
    found = t >= _UNREACHABLE
    assert np.all(found | (hit(t) & ((t == 0) | ~hit(t - 1)))), "threshold search did not converge"
    return t.astype(np.int64)


def _steps_rescale(mult: int, shift: int, k: np.ndarray) -> np.ndarray:
    """``T'_k = min{m >= 0 : (m·M + 2^(n−1)) >> n >= k}`` (RESCALE SINGLE_ROUND), exact integers."""
    return np.asarray([-((-(2 * int(kk) - 1) << (shift - 1)) // mult) for kk in k.tolist()], np.int64)


def float_rounded(cv: Converter, acc: Value, effs: list[float], acc_bounds: np.ndarray, out_dtype: DType,
                  out_zp: int, lo: int, hi: int, where: str) -> Value:
    """``clamp((int32) round((double) acc · eff[c]) + out_zp, lo, hi)`` per channel (last axis) of an int32
    ``acc`` with ``|acc| <= acc_bounds[c]``, exactly (see the module docstring)."""
    g = cv.g
    levels = max(hi - out_zp, out_zp - lo, 0)            # |R| beyond this saturates the clamped output
    k = np.arange(1, levels + 1, dtype=np.int64)
    mults, shifts, caps, fixes = [], [], [], []
    for c, (eff, bound) in enumerate(zip(effs, np.broadcast_to(acc_bounds, (len(effs),)).tolist())):
        if bound >= (1 << 31) - 1 or bound * eff >= (1 << 31) - 1:
            raise UnsupportedError(f"{where}: the accumulator may reach {bound}, beyond where TFLite's int32 "
                                   f"accumulation and (int32) round(acc · {eff}) are defined")
        m, s = quantize_multiplier(eff, where)
        n = 31 - s if m else 31                           # M = 0 (eff < 2^-32): R' = 0, steps never reached
        t_ref = _steps_double(eff, k)
        t_tosa = _steps_rescale(m, n, k) if m else np.full_like(k, 1 << 62)
        cap = int(min(bound, max(t_ref[-1], t_tosa[-1]) if levels else 0))
        if cap >= 1 << (n - 1):
            raise UnsupportedError(f"{where}: requantization scale {eff} >= 2^29 is not supported")
        lo_m, hi_m = np.minimum(t_ref, t_tosa), np.minimum(np.maximum(t_ref, t_tosa), cap + 1)
        fix = {}
        for a0, a1, d in zip(lo_m.tolist(), hi_m.tolist(), np.where(t_ref < t_tosa, 1, -1).tolist()):
            for v in range(a0, a1):
                fix[v] = fix.get(v, 0) + d
        fixes.append([(v, d) for v, d in sorted(fix.items()) if d])
        mults.append(m)
        shifts.append(n)
        caps.append(cap)
    rounds = max((len(f) for f in fixes), default=0)
    if rounds > MAX_CORRECTION_ROUNDS:
        raise UnsupportedError(f"{where}: TFLite's float requantization differs from the nearest 31-bit "
                               f"multiplier at {rounds} accumulator values of one channel (limit "
                               f"{MAX_CORRECTION_ROUNDS}); not reproduced")
    shape = [1] * (len(acc.shape) - 1) + [len(effs)]

    def vec(values: list[int]) -> Value:
        return g.const(np.asarray(values, np.int32).reshape(shape))

    mag = g.minimum(g.abs(acc), vec(caps))
    r = g.rescale(mag, DType.INT32, multiplier=mults, shift=shifts, rounding_mode=RoundingMode.SINGLE_ROUND,
                  per_channel=len(mults) > 1)
    zero = vec([0] * len(effs))
    for j in range(rounds):
        at = [f[j][0] if j < len(f) else -1 for f in fixes]          # -1: no |acc| takes it
        r = g.add(r, g.select(g.equal(mag, vec(at)), vec([f[j][1] if j < len(f) else 0 for f in fixes]), zero))
    signed = g.select(g.greater(zero, acc), g.negate(r), r)
    out = g.rescale(signed, out_dtype, multiplier=1 << 30, shift=30, output_zp=out_zp)   # |signed| <= levels + 1
    if lo > out_dtype.min or hi < out_dtype.max:
        out = g.clamp(out, min_val=lo, max_val=hi)
    return out

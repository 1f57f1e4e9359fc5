"""TFLite's integer requantization, reproduced exactly as TOSA integer constants.

TFLite's ``MultiplyByQuantizedMultiplier(x, M, s)`` (the double-rounding
variant the reference kernels use) is::

    h = SaturatingRoundingDoublingHighMul(x · 2^max(s,0), M)   # round(x·2^l·M / 2^31), ties up
    y = RoundingDivideByPOT(h, max(-s, 0))                       # ties away from zero

TOSA RESCALE with ``DOUBLE_ROUND``, ``scale32``, multiplier ``M`` and shift
``31 - s`` computes exactly ``y``:

* ``s <= 0`` (TOSA shift ``r + 31`` with ``r = -s``): RESCALE adds
  ``2^(30+r) ± 2^30`` (sign of x) and shifts by ``31 + r``. Nesting the two
  floor divisions of TFLite gives ``floor((xM + 2^30 + 2^(30+r)) / 2^(31+r))``
  for ``x >= 0`` and ``floor((xM + 2^30 − 2^31 + 2^(30+r)) / 2^(31+r))`` for
  ``x < 0`` (ties away from zero in the second step is ``floor((h + 2^(r-1) − 1)/2^r)``
  for ``h <= 0``), which are RESCALE's two rounding constants. For ``r = 0`` both
  are the single rounding ``floor((xM + 2^30) / 2^31)``.
* ``s = l > 0`` (TOSA shift ``31 − l``, single rounding): ``floor((xM + 2^(30−l)) / 2^(31−l))
  = floor((x·2^l·M + 2^30) / 2^31)``, TFLite's high mul of ``x·2^l``, as long as
  ``x·2^l`` fits int32 (TFLite's own precondition: beyond it its C++ overflows).
* RESCALE requires ``|x| < 2^(30−l)`` (``l = max(s, 0)``), one bit less than int32
  for ``s = 0`` and than TFLite's precondition for ``s > 0``, so for ``s >= 0`` the
  caller clamps ``x`` to ``[−2^(30−l), 2^(30−l) − 1]`` first: every ``x`` in the band
  cut off gives ``|y| >= 2^29 − 2^(l−1) >= 2^28`` in TFLite and in RESCALE
  (``M >= 2^30``, ``l <= 29``), far outside any int8/int16 output even after the
  zero point is added, so the saturated result is the same.
* ``s >= 30`` would need a TOSA shift below 2: refused (a requantization scale
  >= 2^29 has no use).

The multiplier and shift are derived as TFLite's ``QuantizeMultiplier(double)``
does: ``frexp``, the mantissa rounded half away from zero to 31 bits, the
``2^31`` carry, and shifts below −31 giving a zero multiplier.
"""
from __future__ import annotations

import math

import numpy as np

from tosac.errors import UnsupportedError

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def round_half_away(v: float) -> int:
    """C's ``std::round``."""
    a = abs(v)
    r = math.floor(a)
    r += a - r >= 0.5                                 # exact; floor(a + 0.5) rounds 0.49999999999999994 up
    return int(r if v >= 0 else -r)


def quantize_multiplier(scale: float, where: str) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``(M, s)`` with ``scale ≈ M · 2^(s−31)``, ``M`` in ``[2^30, 2^31)`` or 0."""
    scale = float(scale)
    if not (scale >= 0 and math.isfinite(scale)):
        raise UnsupportedError(f"{where}: requantization scale {scale} is not a finite non-negative number")
    if scale == 0.0:
        return 0, 0
    q, shift = math.frexp(scale)
    fixed = math.floor(q * (1 << 31) + 0.5)          # exact: q·2^31 < 2^31 has at most 22 fraction bits
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        fixed, shift = (1 << 31) - 1, 30             # TFLite saturates here
    return int(fixed), int(shift)


def check_left_shift(bound: int, shift: int, where: str) -> None:
    """Refuse a requantization whose left shift ``s > 0`` overflows TFLite's int32 ``x · 2^s`` for some
    ``|x| <= bound`` (the C++ wraps there, RESCALE saturates: the band argument above needs no overflow)."""
    if shift > 0 and bound << shift > INT32_MAX:
        raise UnsupportedError(f"{where}: requantization left shift {shift} of values up to {bound} overflows "
                               "int32 in TFLite")


def tosa_rescale_params(scales: np.ndarray | list[float], where: str,
                        quantized: list[tuple[int, int]] | None = None
                        ) -> tuple[list[int], list[int], list[int] | None]:
    """Multipliers, TOSA shifts, and per channel the clamp bound ``2^(30−l)`` where TFLite left-shifts (else None).

    ``quantized`` gives TFLite's ``(M, s)`` pairs directly where a kernel derives them otherwise than
    ``QuantizeMultiplier(scale)`` (MEAN divides ``M`` by the element count); ``M`` must be at least
    ``2^29`` when ``s >= 0`` so the clamped band still saturates (see the module docstring).
    """
    pairs = quantized if quantized is not None else \
        [quantize_multiplier(float(s), where) for s in np.asarray(scales, np.float64).reshape(-1)]
    mults, shifts, bounds = [], [], []
    for m, sh in pairs:
        if sh >= 0 and 0 < m < (1 << 29):
            raise UnsupportedError(f"{where}: requantization multiplier {m} with left shift {sh}")
        if sh >= 30:
            raise UnsupportedError(f"{where}: requantization scale {m}·2^({sh}−31) >= 2^29 needs a TOSA shift "
                                   "below 2")
        mults.append(m)
        shifts.append(31 - sh)
        bounds.append(1 << (30 - sh) if sh >= 0 else None)
    return mults, shifts, (bounds if any(b is not None for b in bounds) else None)


def quantize_float32(f: float, scale: float, zero_point: int) -> int:
    """``zero_point + (int)std::round(f / scale)`` with the division in float32, as TFLite's activation ranges."""
    v = float(np.float32(f) / np.float32(scale))
    if not math.isfinite(v):
        return INT32_MAX if v > 0 else INT32_MIN
    return zero_point + round_half_away(v)


def activation_range(act: str, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127,
                     where: str = "") -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized`` for a fused activation."""
    if act == "NONE":
        return qmin, qmax
    if act == "RELU":
        return max(qmin, quantize_float32(0.0, scale, zero_point)), qmax
    if act == "RELU6":
        return (max(qmin, quantize_float32(0.0, scale, zero_point)),
                min(qmax, quantize_float32(6.0, scale, zero_point)))
    if act == "RELU_N1_TO_1":
        return (max(qmin, quantize_float32(-1.0, scale, zero_point)),
                min(qmax, quantize_float32(1.0, scale, zero_point)))
    raise UnsupportedError(f"{where}: fused activation {act} is not supported")

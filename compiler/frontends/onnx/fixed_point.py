"""Float quantization parameters turned into TOSA integer arithmetic.

A real requantization scale ``r`` becomes a 32-bit ``multiplier`` and a
``shift`` with ``r ≈ multiplier · 2^-shift`` (``2^30 <= multiplier < 2^31``),
applied by RESCALE with **SINGLE_ROUND** (one rounding, ties towards +∞, as
the base integer profile's ``apply_scale_32`` defines it).

Why single rounding: ONNX and ONNX Runtime requantize once, in float
(``nearbyint(acc · r)``). TFLite's DOUBLE_ROUND rounds twice and exists to
match TFLite's gemmlowp kernels, which ONNX models never meant. With one
rounding our integer result differs from ORT's float result only where
``acc · r`` is within float32 rounding error of a tie (x.5): ORT rounds ties
to even and its float32 product is itself rounded; RESCALE rounds exact ties
up. The scale is computed in float32 exactly as ORT does
(``x_scale * w_scale / y_scale``), so the 24-bit float mantissa fits the 31-bit
multiplier without loss.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from tosac.errors import UnsupportedError

MIN_SHIFT, MAX_SHIFT = 2, 62


def multiplier_shift(scale: float, where: str) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``scale ≈ multiplier · 2^-shift`` for RESCALE with scale32."""
    if not (scale > 0 and math.isfinite(scale)):
        raise UnsupportedError(f"{where}: requantization scale {scale} must be positive and finite")
    mantissa, exponent = math.frexp(scale)             # scale = mantissa · 2^exponent, mantissa in [0.5, 1)
    multiplier = round(mantissa * (1 << 31))
    if multiplier == 1 << 31:
        multiplier, exponent = multiplier >> 1, exponent + 1
    shift = 31 - exponent
    if shift > MAX_SHIFT:                               # tiny scales: give up low multiplier bits
        multiplier = (multiplier + (1 << (shift - MAX_SHIFT - 1))) >> (shift - MAX_SHIFT)
        shift = MAX_SHIFT
        if multiplier == 0:
            return 0, MAX_SHIFT
    if shift < MIN_SHIFT:
        raise UnsupportedError(f"{where}: requantization scale {scale} is too large for RESCALE (>= 2^29)")
    return int(multiplier), int(shift)


def multipliers_shifts(scales: np.ndarray, where: str) -> tuple[list[int], list[int]]:
    """Per-channel :func:`multiplier_shift`."""
    pairs = [multiplier_shift(float(s), where) for s in np.asarray(scales, np.float64).reshape(-1)]
    return [m for m, _ in pairs], [s for _, s in pairs]


def lookup_table(fn: Callable[[np.ndarray], np.ndarray], in_scale: float, in_zp: int,
                 out_scale: float, out_zp: int) -> np.ndarray:
    """An int8 TABLE: ``q_out = clip(round_half_even(fn(s_in·(q_in − z_in)) / s_out) + z_out)``.

    ONNX Runtime builds the same 256-entry table for its QLinearSigmoid and
    QLinearLeakyRelu kernels, in float32, which is what this computes.
    """
    q = np.arange(-128, 128, dtype=np.float32)
    real = fn((q - np.float32(in_zp)) * np.float32(in_scale)).astype(np.float32)
    out = np.rint(real / np.float32(out_scale)) + out_zp
    return np.clip(out, -128, 127).astype(np.int8)

"""LOGISTIC, TANH and HARD_SWISH (int8 → int8): one 256-entry TABLE computed at import.

Each is a function of one int8 value once the quantization is fixed, so the
exact route is to evaluate what the reference kernel computes for all 256
inputs and emit a TOSA TABLE (``table[x + 128]``).

LOGISTIC and TANH: LiteRT's reference kernels (activations.cc Prepare,
``PopulateLookupTable``) build their int8 table in float32 —
``q = zp_out + round_half_away(f(s_in · (x − zp_in)) · (1 / s_out))``, clamped —
with ``f`` = ``1 / (1 + expf(−v))`` or ``tanhf(v)``: the tests compare all 256
inputs with LiteRT 2.3 BUILTIN_REF for 150 drawn quantizations per op, and a
400-example hypothesis soak passed (0 mismatches). ``expf``/``tanhf``
are taken as the float64 value rounded to float32 (what a correctly rounded libm
returns), so the table does not depend on numpy's float32 kernels; a libm
differing by one float32 ulp could only matter where ``f · (1/s_out)`` lands
within an ulp of a ``.5``. LOGISTIC int8 requires ``s_out = 1/256`` (LiteRT
refuses other scales); TANH accepts any output quantization.

HARD_SWISH (reference ``HardSwish`` with Prepare's int16 fixed-point multipliers):
reproduced step for step in integer Python — int16 saturating rounding doubling
high mul, saturating left shifts, rounding divide by a power of two and the
truncating doubling high mul of the final product.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles
from tosac.frontends.tflite.fixed_point import quantize_multiplier
from tosac.frontends.tflite.reader import OpDef

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)


def _logistic(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-v.astype(np.float64)).astype(np.float32)
    return np.float32(1) / (np.float32(1) + e)


def _tanh(v: np.ndarray) -> np.ndarray:
    return np.tanh(v.astype(np.float64)).astype(np.float32)


FLOAT_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"LOGISTIC": _logistic, "TANH": _tanh}


def float_lut(fn: Callable[[np.ndarray], np.ndarray], s_in: float, z_in: int, s_out: float,
              z_out: int) -> np.ndarray:
    """TFLite's ``PopulateLookupTable<int8_t>``: the table for all 256 inputs, float32 arithmetic as in C."""
    deq = np.float32(s_in) * (INT8_VALUES - z_in).astype(np.float32)
    scaled = (fn(deq) * (np.float32(1) / np.float32(s_out))).astype(np.float64)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)          # std::round, exact in float64
    return np.clip(rounded + z_out, -128, 127).astype(np.int8)


# ------------------------------------------------------------ int16 fixed point as gemmlowp/TFLite do it
def _srdhm16(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16 (ties away from zero, C truncation)."""
    if a == b == -32768:
        return 32767
    ab = a * b
    n = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return (abs(n) >> 15) * (1 if n >= 0 else -1)


def _sdhm16(a: int, b: int) -> int:
    """TFLite's SaturatingDoublingHighMul: ``a·b / 2^15`` truncated toward zero."""
    if a == b == -32768:
        return 32767
    ab = a * b
    return (abs(ab) >> 15) * (1 if ab >= 0 else -1)


def _wrap16(v: int) -> int:
    return (v + (1 << 15)) % (1 << 16) - (1 << 15)


def _rounding_divide_by_pot16(x: int, e: int) -> int:
    """gemmlowp RoundingDivideByPOT on int16: the mask ``(1 << e) − 1`` is an int16, so for ``e >= 16`` it is
    −1 and the result is ``(x >> e) + (x >= 0)`` (0 becomes 1) — what the C++ computes, reproduced."""
    mask = _wrap16((1 << e) - 1)
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return _wrap16((x >> e) + (1 if (x & mask) > threshold else 0))


def _sat16(v: int) -> int:
    return max(-32768, min(32767, v))


def _downscale_to_int16(m: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier."""
    return 32767 if m >= (1 << 31) - 1 - (1 << 15) else (m + (1 << 15)) >> 16


def hard_swish_lut(s_in: float, z_in: int, s_out: float, z_out: int, where: str) -> np.ndarray:
    """The int8 reference HARD_SWISH for all 256 inputs (Prepare's multipliers computed as in C, in float32)."""
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(s_in))
    out_m, out_e = quantize_multiplier(float(hires / np.float32(s_out)), where)
    relu_m, relu_e = quantize_multiplier(float(hires / np.float32(3.0 / 32768.0)), where)
    if out_e > 0:
        raise UnsupportedError(f"{where}: HARD_SWISH needs input_scale / output_scale < 128 "
                               "(TFLite's Prepare refuses a left-shifting output multiplier)")
    out_m, relu_m = _downscale_to_int16(out_m), _downscale_to_int16(relu_m)
    table = []
    for v in INT8_VALUES.tolist():
        hires_x = (v - z_in) * 128                                  # |.| <= 255·128 fits int16
        pre_out = _srdhm16(hires_x, out_m)
        r = _sat16(hires_x << (relu_e - 1)) if relu_e > 0 else hires_x
        r = _srdhm16(r, relu_m)
        if relu_e > 0:
            r = _sat16(r * 2)
        elif relu_e < 0:
            r = _rounding_divide_by_pot16(r, -relu_e)
        r = (r + (1 << 15)) >> 1                                    # [-1, 1] → [0, 1]
        y = _wrap16(_rounding_divide_by_pot16(_sdhm16(r, pre_out), -out_e) + z_out)
        table.append(max(-128, min(127, y)))
    return np.asarray(table, np.int8)


@handles("LOGISTIC", "TANH", "HARD_SWISH")
def table_activation(cv: Converter, op: OpDef) -> None:
    x, out, (si, zi), (so, zo) = cv.unary_int8(op)
    where = cv.where(op)
    if op.name == "HARD_SWISH":
        table = hard_swish_lut(si, zi, so, zo, where)
    else:
        if op.name == "LOGISTIC" and so != 1.0 / 256:
            raise UnsupportedError(f"{where}: int8 LOGISTIC needs output scale 1/256 (TFLite refuses {so})")
        table = float_lut(FLOAT_FUNCTIONS[op.name], si, zi, so, zo)
    cv.define(op, cv.g.table(x, table))

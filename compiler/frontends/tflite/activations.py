"""LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, GELU and RSQRT (int8 → int8): one 256-entry TABLE computed at import.

Each is a function of one int8 value once the quantization and options are
fixed, so the exact route is to evaluate what the reference kernel computes for
all 256 inputs and emit a TOSA TABLE (``table[x + 128]``).

LOGISTIC, TANH and GELU: LiteRT's reference kernels (activations.cc Prepare,
``PopulateLookupTable`` / ``LUTPopulate``) build their int8 table in float32 —
``q = zp_out + round_half_away(f(s_in · (x − zp_in)) · (1 / s_out))``, clamped —
with ``f`` = ``1 / (1 + expf(−v))``, ``tanhf(v)``, or gelu.h's
``0.5f · v · erfcf(v · −√½)`` (``approximate``: ``0.5f · v · (1 + tanhf(√(2/π) ·
(v + 0.044715f · v³)))``), each operation in float32 in C's order. ``expf``/
``tanhf``/``erfcf`` are taken as the float64 value rounded to float32 (what a
correctly rounded libm returns), so the table does not depend on numpy's float32
kernels; a libm differing by one float32 ulp could only matter where
``f · (1/s_out)`` lands within an ulp of a ``.5``. Measured against LiteRT 2.3
BUILTIN_REF on all 256 inputs: LOGISTIC and TANH 150 drawn quantizations each
(plus a 400-example soak), GELU 200 (both options): 0 mismatches. LOGISTIC int8
requires ``s_out = 1/256`` (LiteRT refuses other scales); TANH and GELU accept any.

HARD_SWISH (reference ``HardSwish`` with Prepare's int16 fixed-point multipliers):
reproduced step for step in integer Python — int16 saturating rounding doubling
high mul, saturating left shifts, rounding divide by a power of two and the
truncating doubling high mul of the final product.

LEAKY_RELU (``QuantizeLeakyRelu``): ``zp_out + MBQM(x − zp_in, M_id)`` for
``x >= zp_in``, else ``± MBQM(x − zp_in, |M_α|)`` (a negative alpha's sign applied
after the MBQM of its magnitude), clamped; ``M_id = s_in/s_out`` and
``M_α = s_in·α/s_out`` are float32 expressions in Prepare. RSQRT
(elementwise.cc ``RsqrtEvalQuantizedInt8``): ``GetInvSqrtQuantizedMultiplierExp(x − zp_in)``
— five Newton-Raphson steps in gemmlowp Q3.28 — then two MBQMs (by the inverse
square root with shift + 20, by ``1 / (sqrtf(s_in) · s_out)`` with shift − 20),
``x = zp_in`` giving 127; below ``zp_in`` TFLite's Eval fails, and the table
gives 127 there too. Both reproduced in integer Python (the gemmlowp primitives
below, with C's int32 wrap-around); measured: 200 drawn quantizations each
(alpha in [−2, 2] included), all inputs, 0 mismatches with LiteRT 2.3 BUILTIN_REF.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, opt
from tosac.frontends.tflite.fixed_point import INT32_MAX, INT32_MIN, quantize_multiplier
from tosac.frontends.tflite.reader import OpDef

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)
Quant = tuple[float, int]


def _logistic(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-v.astype(np.float64)).astype(np.float32)
    return np.float32(1) / (np.float32(1) + e)


def _tanh(v: np.ndarray) -> np.ndarray:
    return np.tanh(v.astype(np.float64)).astype(np.float32)


_ERFC = np.vectorize(math.erfc, otypes=[np.float64])
_SQRT_2_OVER_PI = np.float32(1.12837916709551257390 * 0.70710678118654752440)  # float(M_2_SQRTPI · M_SQRT1_2)


def _gelu(v: np.ndarray) -> np.ndarray:
    """``0.5f · x · erfcf(x · (float)−M_SQRT1_2)`` in float32 (reference gelu.h ``GeluTransform``)."""
    return np.float32(0.5) * v * _ERFC(v * np.float32(-math.sqrt(0.5))).astype(np.float32)


def _gelu_tanh(v: np.ndarray) -> np.ndarray:
    """``GeluTransformApproximate``: ``0.5f · x · (1 + tanhf(sqrt(2/π) · (x + 0.044715f · x³)))`` in float32."""
    inner = _SQRT_2_OVER_PI * (v + np.float32(0.044715) * v * v * v)
    return np.float32(0.5) * v * (np.float32(1) + _tanh(inner))


def float_lut(fn: Callable[[np.ndarray], np.ndarray], s_in: float, z_in: int, s_out: float,
              z_out: int) -> np.ndarray:
    """TFLite's ``PopulateLookupTable<int8_t>``: the table for all 256 inputs, float32 arithmetic as in C."""
    deq = np.float32(s_in) * (INT8_VALUES - z_in).astype(np.float32)
    scaled = (fn(deq) * (np.float32(1) / np.float32(s_out))).astype(np.float64)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)          # std::round, exact in float64
    return np.clip(rounded + z_out, -128, 127).astype(np.int8)


# ------------------------------------------------------------ gemmlowp fixed point, as TFLite's C++ computes it
def _wrap(v: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return (v + half) % (1 << bits) - half


def _srdhm(a: int, b: int, bits: int = 32) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on intN (ties away from zero, C truncation)."""
    if a == b == -(1 << (bits - 1)):
        return (1 << (bits - 1)) - 1
    ab = a * b
    n = ab + ((1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2)))
    return (abs(n) >> (bits - 1)) * (1 if n >= 0 else -1)


def _sdhm16(a: int, b: int) -> int:
    """TFLite's SaturatingDoublingHighMul: ``a·b / 2^15`` truncated toward zero."""
    if a == b == -32768:
        return 32767
    ab = a * b
    return (abs(ab) >> 15) * (1 if ab >= 0 else -1)


def _rounding_divide_by_pot(x: int, e: int, bits: int = 32) -> int:
    """gemmlowp RoundingDivideByPOT on intN: the mask ``(1 << e) − 1`` is an intN, so for int16 and ``e >= 16``
    it is −1 and the result is ``(x >> e) + (x >= 0)`` (0 becomes 1) — what the C++ computes, reproduced."""
    mask = _wrap((1 << e) - 1, bits)
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return _wrap((x >> e) + (1 if (x & mask) > threshold else 0), bits)


def _saturating_shift_left(x: int, e: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0 on int32."""
    threshold = (1 << (31 - e)) - 1
    return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else x << e


def mbqm(x: int, m: int, s: int) -> int:
    """TFLite's double-rounding MultiplyByQuantizedMultiplier (``x · 2^l`` wraps as the C++ does)."""
    return _rounding_divide_by_pot(_srdhm(_wrap(x << max(s, 0), 32), m), max(-s, 0))


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
        pre_out = _srdhm(hires_x, out_m, 16)
        r = _sat16(hires_x << (relu_e - 1)) if relu_e > 0 else hires_x
        r = _srdhm(r, relu_m, 16)
        if relu_e > 0:
            r = _sat16(r * 2)
        elif relu_e < 0:
            r = _rounding_divide_by_pot(r, -relu_e, 16)
        r = (r + (1 << 15)) >> 1                                    # [-1, 1] → [0, 1]
        y = _wrap(_rounding_divide_by_pot(_sdhm16(r, pre_out), -out_e, 16) + z_out, 16)
        table.append(max(-128, min(127, y)))
    return np.asarray(table, np.int8)


def leaky_relu_lut(s_in: float, z_in: int, s_out: float, z_out: int, alpha: float, where: str) -> np.ndarray:
    """The int8 reference LEAKY_RELU for all 256 inputs: Prepare's two multipliers (float32 ratios, as in C),
    the identity one for ``x >= zp``, the alpha one (its sign applied after the MBQM of its magnitude) below."""
    identity = quantize_multiplier(float(np.float32(s_in) / np.float32(s_out)), where)
    a = float(np.float32(np.float32(s_in) * np.float32(alpha)) / np.float32(s_out))
    alpha_m, alpha_s = quantize_multiplier(abs(a), where)
    if a < 0 and alpha_m and alpha_s != math.frexp(a)[1]:
        raise UnsupportedError(f"{where}: LEAKY_RELU alpha {alpha} rounds to the multiplier -2^31 (C++ overflow)")
    sign = -1 if a < 0 else 1
    table = [z_out + (mbqm(v, *identity) if v >= 0 else sign * mbqm(v, alpha_m, alpha_s))
             for v in (INT8_VALUES - z_in).tolist()]
    return np.clip(table, -128, 127).astype(np.int8)


def _inv_sqrt_multiplier(v: int) -> tuple[int, int]:
    """TFLite's ``GetInvSqrtQuantizedMultiplierExp(v, kReverseShift)`` for ``1 <= v < 2^29``: five
    Newton-Raphson steps in gemmlowp Q3.28 fixed point; returns the multiplier and the (left) shift."""
    if v <= 1:
        return INT32_MAX, 0
    pairs = (31 - v.bit_length()) // 2 - 1              # (CountLeadingZeros(v) − 1) / 2 − 1
    shift, v = 11 - pairs, v << (2 * pairs)
    half_input = _rounding_divide_by_pot(v >> 1, 1)
    x = 1 << 28                                        # F3::One()
    for _ in range(5):
        x3 = _saturating_shift_left(_srdhm(_srdhm(x, x), x), 6)
        x = _saturating_shift_left(_wrap(_srdhm(3 << 27, x) - _srdhm(half_input, x3), 32), 3)
    x = _srdhm(x, 1518500250)                          # · sqrt(2)/2 in Q0.31
    if shift < 0:
        x, shift = _wrap(x << -shift, 32), 0
    return x, -shift


def rsqrt_lut(s_in: float, z_in: int, s_out: float, z_out: int, where: str) -> np.ndarray:
    """The int8 reference RSQRT (elementwise.cc ``RsqrtEvalQuantizedInt8``) for all 256 inputs."""
    m, s = quantize_multiplier(1.0 / float(np.sqrt(np.float32(s_in)) * np.float32(s_out)), where)
    table = []
    for v in (INT8_VALUES - z_in).tolist():
        if v <= 0:                       # 0: TFLite's "close to 0" maximum; below the zero point Eval fails
            table.append(127)
            continue
        inv, inv_shift = _inv_sqrt_multiplier(v)
        table.append(mbqm(mbqm(1, inv, inv_shift + 20), m, s - 20) + z_out)
    return np.clip(table, -128, 127).astype(np.int8)


def _option(op: OpDef, cv: Converter, name: str, field: str, default):
    """An option's value; absent options take TFLite's zero-initialised default."""
    return default if op.options is None else getattr(opt(op, cv, name), field)()


def _logistic_lut(cv: Converter, op: OpDef, qi: Quant, qo: Quant) -> np.ndarray:
    if qo[0] != 1.0 / 256:
        raise UnsupportedError(f"{cv.where(op)}: int8 LOGISTIC needs output scale 1/256 (TFLite refuses {qo[0]})")
    return float_lut(_logistic, *qi, *qo)


def _gelu_lut(cv: Converter, op: OpDef, qi: Quant, qo: Quant) -> np.ndarray:
    approximate = _option(op, cv, "GeluOptions", "Approximate", False)
    return float_lut(_gelu_tanh if approximate else _gelu, *qi, *qo)


LUTS: dict[str, Callable[[Converter, OpDef, Quant, Quant], np.ndarray]] = {
    "LOGISTIC": _logistic_lut,
    "TANH": lambda cv, op, qi, qo: float_lut(_tanh, *qi, *qo),
    "HARD_SWISH": lambda cv, op, qi, qo: hard_swish_lut(*qi, *qo, cv.where(op)),
    "LEAKY_RELU": lambda cv, op, qi, qo: leaky_relu_lut(*qi, *qo, opt(op, cv, "LeakyReluOptions").Alpha(),
                                                        cv.where(op)),
    "GELU": _gelu_lut,
    "RSQRT": lambda cv, op, qi, qo: rsqrt_lut(*qi, *qo, cv.where(op)),
}


@handles(*LUTS)
def table_activation(cv: Converter, op: OpDef) -> None:
    x, out, qi, qo = cv.unary_int8(op)
    cv.define(op, cv.g.table(x, LUTS[op.name](cv, op, qi, qo)))

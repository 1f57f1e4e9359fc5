"""LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, GELU and RSQRT: int8 by one 256-entry TABLE computed at import; int16
(zero points 0) all but HARD_SWISH (TFLite has no int16 kernel) by exact int32 ops or an int16 TABLE.

Each int8 op is a function of one int8 value once the quantization and options are
fixed, so the exact route is to evaluate what the reference kernel computes for
all 256 inputs and emit a TOSA TABLE (``table[x + 128]``).

LOGISTIC, TANH and GELU: LiteRT's reference kernels (activations.cc Prepare,
``PopulateLookupTable`` / ``LUTPopulate``) build their int8 table in float32 —
``q = zp_out + round_half_away(f(s_in · (x − zp_in)) · (1 / s_out))``, clamped —
with ``f`` = ``1 / (1 + expf(−v))``, ``tanhf(v)``, or gelu.h's
``0.5f · v · erfcf(v · −√½)`` (``approximate``: ``0.5f · v · (1 + tanhf(√(2/π) ·
(v + 0.044715f · v³)))``), each operation in float32 in C's order. ``expf``/
``tanhf``/``erfcf``/``logf`` are the C math library's own (ctypes), as LiteRT
calls them: glibc 2.36's are not correctly rounded (on random arguments in [−10,
10] tanhf differs from the correctly rounded value 5.5% of the time, erfcf 18%),
and for int16 GELU that was measured to matter (one table entry off by one, s_in
2^−14, s_out 1e−5, found by a 300-example soak); where no C math library loads,
the float64 function rounded to float32 (a correctly rounded libm) is used. So
the tables match LiteRT on the machine that compiles, as TFLite's own Prepare
does. Measured against LiteRT 2.3 BUILTIN_REF on all 256 inputs: LOGISTIC and
TANH 150 drawn quantizations each (plus a 400-example soak), GELU 200 (both
options): 0 mismatches. LOGISTIC int8 requires ``s_out = 1/256`` (LiteRT refuses
other scales); TANH and GELU accept any.

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

int16 LOGISTIC and TANH (``reference_integer_ops::Logistic``/``Tanh``, no table of
their own): Prepare picks ``(M, l)`` (:func:`sigmoid_input_scaling`: ``(3, 0)``, for
TANH also ``(6, 0)``, when ``CheckedLog2`` finds ``s_in`` within 1e-3 of 2^−12 or
2^−11 in log2, else ``s_in · 12288`` doubled in double until above 32767/2 and
truncated); Eval computes ``v = (x·M + 2^(l−1)) >> l`` — TOSA MUL with shift ``l``
— and interpolates TFLite's 256-entry Q0.16 sigmoid table (:data:`SIGMOID_TABLE`,
σ(i/24); data, not a rounding rule) at ``|v|``, 9 fraction bits for LOGISTIC and 8
for TANH: ``r = (t[h] << b) + (|v| & (2^b − 1)) · (t[h+1] − t[h])``, ``h = |v| >> b``,
saturated for ``h >= 255``. Here ABS, shifts, BITWISE_AND and two GATHERs of
256-entry tables (``t[h] << b`` with the saturation value at 255, and the slopes
with 0) give ``r`` exactly; C's sign handling reduces to ``p = (r + 2^9) >> 10`` and
``v < 0 ? 32768 − p : p`` for LOGISTIC, ``q = ((r + 2^7) >> 8) − 32768`` and
``±q`` for TANH (ARITHMETIC_RIGHT_SHIFT with round, SELECT). Both require output
scale 2^−15 (LOGISTIC exactly, TANH per ``CheckedLog2``). Refused: input scales
with ``M >= 65536`` (C's int32 ``x·M`` or its ``abs`` overflows, ``s_in >= 5.33``) and scales
within float32 rounding of ``CheckedLog2``'s threshold.

int16 GELU and RSQRT (``LUTPopulate<int16_t>`` then ``LUTLookup``): a 513-entry
table sampled in float32 over ``[s_in·−32768, s_in·32767]``, each entry lowered
by half its midpoint interpolation error (:func:`int16_lut`; RSQRT's function is
``1.0f / sqrtf(v)``, ``32767 · s_out`` for ``v <= 0``), read as ``base + ((slope ·
frac + 64) >> 7)`` with ``base = lut[256 + (x >> 7)]``, ``frac = x & 127``. That is
TOSA TABLE int16's ``(base << 7) + slope · frac`` followed by a SINGLE_ROUND
RESCALE ``(t + 64) >> 7``. TFLite keeps the slope in an int16 (wraps); tables
whose adjacent entries differ by more than 32767 (GELU with ``s_in/s_out`` above
~200) are refused, as TOSA TABLE requires the slope to fit.

int16 LEAKY_RELU: the int8 formula on int32 ops — two DOUBLE_ROUND RESCALEs to
int32, a negation after the alpha one for negative alpha (MBQM rounds ties up,
so it is not odd: negating the input instead was measured wrong), SELECT on
``x >= 0``, clamp to int16; left shifts that overflow C's int32 are refused.

Measured against LiteRT 2.3 BUILTIN_REF on all 65,536 inputs (RSQRT: the 32,768
non-negative ones; its Eval fails below zero): a numpy emulation of each int16
kernel for 80 quantizations per op before legalising, then the legalised graphs
for 300 drawn quantizations and options per op (tests/test_tflite_int16.py with
TOSAC_TFLITE_EXAMPLES=300; power-of-two and near-power-of-two input scales
included): 0 mismatches.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Callable

import numpy as np

from tflite.TensorType import TensorType

from tosac.errors import UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, opt
from tosac.frontends.tflite.fixed_point import (INT32_MAX, INT32_MIN, check_left_shift, quantize_multiplier,
                                                 round_half_away)
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)
INT8, INT8_OR_16 = (TensorType.INT8,), (TensorType.INT8, TensorType.INT16)
Quant = tuple[float, int]


def _c_float_function(name: str, exact: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The C math library's float function ``name`` — what LiteRT's Prepare calls (``std::exp(float)`` is
    ``expf``) — element-wise on float32 arrays; without a loadable C math library, ``exact`` (float64) rounded
    to float32, i.e. a correctly rounded libm."""
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("m")), name)
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
        compute = np.vectorize(fn, otypes=[np.float32])
    except (OSError, AttributeError, TypeError):
        compute = lambda v: exact(v.astype(np.float64))            # noqa: E731

    def call(v: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return np.asarray(compute(np.asarray(v, np.float32))).astype(np.float32)
    return call


EXPF, TANHF, ERFCF, LOGF = (_c_float_function(name, fn) for name, fn in (
    ("expf", np.exp), ("tanhf", np.tanh), ("erfcf", np.vectorize(math.erfc, otypes=[np.float64])), ("logf", np.log)))


def _logistic(v: np.ndarray) -> np.ndarray:
    return np.float32(1) / (np.float32(1) + EXPF(-v))


_tanh = TANHF
_SQRT_2_OVER_PI = np.float32(1.12837916709551257390 * 0.70710678118654752440)  # float(M_2_SQRTPI · M_SQRT1_2)


def _gelu(v: np.ndarray) -> np.ndarray:
    """``0.5f · x · erfcf(x · (float)−M_SQRT1_2)`` in float32 (reference gelu.h ``GeluTransform``)."""
    return np.float32(0.5) * v * ERFCF(v * np.float32(-math.sqrt(0.5)))


def _gelu_tanh(v: np.ndarray) -> np.ndarray:
    """``GeluTransformApproximate``: ``0.5f · x · (1 + tanhf(sqrt(2/π) · (x + 0.044715f · x³)))`` in float32."""
    inner = _SQRT_2_OVER_PI * (v + np.float32(0.044715) * v * v * v)
    return np.float32(0.5) * v * (np.float32(1) + _tanh(inner))


def _round(v: np.ndarray) -> np.ndarray:
    """``roundf`` (half away from zero) of float32 values, exact in float64, as float32."""
    v = np.asarray(v, np.float64)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.float32)


def float_lut(fn: Callable[[np.ndarray], np.ndarray], s_in: float, z_in: int, s_out: float,
              z_out: int) -> np.ndarray:
    """TFLite's ``PopulateLookupTable<int8_t>``: the table for all 256 inputs, float32 arithmetic as in C."""
    deq = np.float32(s_in) * (INT8_VALUES - z_in).astype(np.float32)
    rounded = _round(fn(deq) * (np.float32(1) / np.float32(s_out)))
    return np.clip(rounded.astype(np.float64) + z_out, -128, 127).astype(np.int8)


def int16_lut(fn: Callable[[np.ndarray], np.ndarray], s_in: float, s_out: float, where: str) -> np.ndarray:
    """TFLite's ``LUTPopulate<int16_t>`` (zero points 0): 513 samples of ``fn`` over the input range, each
    less half its midpoint interpolation error, in float32 as in C; the last is ``fn(input_max)``."""
    f32 = np.float32
    s_in, s_out = f32(s_in), f32(s_out)
    in_min, in_max = s_in * f32(-32768), s_in * f32(32767)
    step = (in_max - in_min) / f32(512)
    inv = f32(65536) / (s_out * f32(32767) - s_out * f32(-32768))
    i = np.arange(512, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        val, mid, nxt = fn(in_min + i * step), fn(in_min + i * step + step / f32(2)), fn(in_min + (i + 1) * step)
        interpolated = _round((nxt * inv + _round(val * inv)) / f32(2))
        bias = _round((interpolated - _round(mid * inv)) / f32(2))
        lut = np.append(_round(val * inv) - bias, _round(fn(np.asarray([in_max], np.float32)) * inv))
    if np.isnan(lut).any():
        raise UnsupportedError(f"{where}: TFLite's int16 table has a NaN entry (int16_t of NaN in C)")
    lut = np.clip(lut, -32768, 32767).astype(np.int64)
    if np.abs(np.diff(lut)).max() > 32767:
        raise UnsupportedError(f"{where}: adjacent int16 table entries differ by more than 32767 (TFLite's int16 "
                               "slope wraps; TOSA TABLE requires it to fit)")
    return lut.astype(np.int16)


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


def leaky_relu_multipliers(s_in: float, s_out: float, alpha: float, where: str
                           ) -> tuple[tuple[int, int], tuple[int, int], int]:
    """LEAKY_RELU Prepare's identity and alpha ``(M, s)`` (float32 ratios, as in C), the alpha one of ``|α|``,
    and the sign Eval applies after the MBQM by it."""
    identity = quantize_multiplier(float(np.float32(s_in) / np.float32(s_out)), where)
    a = float(np.float32(np.float32(s_in) * np.float32(alpha)) / np.float32(s_out))
    alpha_m, alpha_s = quantize_multiplier(abs(a), where)
    if a < 0 and alpha_m and alpha_s != math.frexp(a)[1]:
        raise UnsupportedError(f"{where}: LEAKY_RELU alpha {alpha} rounds to the multiplier -2^31 (C++ overflow)")
    return identity, (alpha_m, alpha_s), -1 if a < 0 else 1


def leaky_relu_lut(s_in: float, z_in: int, s_out: float, z_out: int, alpha: float, where: str) -> np.ndarray:
    """The int8 reference LEAKY_RELU for all 256 inputs: the identity multiplier for ``x >= zp``, the alpha
    one (its sign applied after the MBQM of its magnitude) below."""
    identity, alpha_pair, sign = leaky_relu_multipliers(s_in, s_out, alpha, where)
    table = [z_out + (mbqm(v, *identity) if v >= 0 else sign * mbqm(v, *alpha_pair))
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


def _gelu_fn(cv: Converter, op: OpDef) -> Callable[[np.ndarray], np.ndarray]:
    return _gelu_tanh if _option(op, cv, "GeluOptions", "Approximate", False) else _gelu


def _logistic_lut(cv: Converter, op: OpDef, qi: Quant, qo: Quant) -> np.ndarray:
    if qo[0] != 1.0 / 256:
        raise UnsupportedError(f"{cv.where(op)}: int8 LOGISTIC needs output scale 1/256 (TFLite refuses {qo[0]})")
    return float_lut(_logistic, *qi, *qo)


LUTS: dict[str, Callable[[Converter, OpDef, Quant, Quant], np.ndarray]] = {
    "LOGISTIC": _logistic_lut,
    "TANH": lambda cv, op, qi, qo: float_lut(_tanh, *qi, *qo),
    "HARD_SWISH": lambda cv, op, qi, qo: hard_swish_lut(*qi, *qo, cv.where(op)),
    "LEAKY_RELU": lambda cv, op, qi, qo: leaky_relu_lut(*qi, *qo, opt(op, cv, "LeakyReluOptions").Alpha(),
                                                        cv.where(op)),
    "GELU": lambda cv, op, qi, qo: float_lut(_gelu_fn(cv, op), *qi, *qo),
    "RSQRT": lambda cv, op, qi, qo: rsqrt_lut(*qi, *qo, cv.where(op)),
}


# ------------------------------------------------------------ int16 (zero points 0)
# TFLite's sigmoid_table_uint16 (kernels/internal/common.h), σ(i/24) in unsigned Q0.16 for i = 0..255: the
# nearest integer, except one more at these indices (hand-tuned data, no rounding rule; 255 thus holds 65535).
_SIGMOID_PLUS_ONE = frozenset({4, 8, 12, 14, 15, 16, 17, 19, 20, 21, 22, 25, 27, 28, 29, 30, 31, 33, 34, 35, 37,
                               39, 40, 41, 43, 44, 45, 46, 49, 50, 54, 62, 63, 64, 66, 82, 86, 93, 100, 103, 112,
                               116, 135, 255})
SIGMOID_TABLE = [round(65536 / (1 + math.exp(-i / 24))) + (i in _SIGMOID_PLUS_ONE) for i in range(256)]


def checked_log2(scale: float, where: str) -> tuple[bool, int]:
    """TFLite's ``CheckedLog2`` in float32 with ``logf``: ``(|log2 − round(log2)| < 1e-3, round(log2))``; scales
    within a few float32 ulps of the threshold are refused (a different libm could decide them otherwise)."""
    log2 = float(LOGF(scale) * (np.float32(1) / LOGF(2.0)))
    rounded = round_half_away(log2)
    frac = abs(log2 - rounded)
    if abs(frac - 1e-3) < 4e-6:
        raise UnsupportedError(f"{where}: scale {scale} is at TFLite's power-of-two threshold (log2 {log2})")
    return frac < 1e-3, rounded


def sigmoid_input_scaling(name: str, s_in: float, where: str) -> tuple[int, int]:
    """int16 LOGISTIC/TANH Prepare's ``(input_multiplier, input_left_shift)`` as Eval uses them: ``(3 · 2^l, 0)``
    for ``s_in = 2^(l − 12)`` (``l`` = 0, and 1 for TANH, per ``CheckedLog2``), else ``s_in · 3 · 4096`` doubled
    (in double) while at most 32767/2, truncated."""
    pot, log2 = checked_log2(s_in, where)
    if pot and (log2 == -12 or (name == "TANH" and log2 == -11)):
        return 3 << (log2 + 12), 0
    m, shift = s_in * 4096.0 * 3.0, 0
    while m <= 32767.0 / 2.0 and shift <= 30:
        m, shift = m * 2.0, shift + 1
    if int(m) >= 65536:                  # −32768 · 65536 is INT32_MIN, whose abs() C takes next
        raise UnsupportedError(f"{where}: input scale {s_in}: TFLite's int32 product x · {int(m)} overflows")
    return int(m), shift


def _sigmoid_int16(cv: Converter, op: OpDef, x: Value, qi: Quant, qo: Quant) -> Value:
    """int16 LOGISTIC/TANH (``reference_integer_ops::Logistic``/``Tanh``) in exact int32 ops."""
    where, tanh, g = cv.where(op), op.name == "TANH", cv.g
    if (checked_log2(qo[0], where) != (True, -15)) if tanh else qo[0] != 2.0 ** -15:
        raise UnsupportedError(f"{where}: int16 {op.name} needs output scale 1/32768 (TFLite refuses {qo[0]})")
    m, shift = sigmoid_input_scaling(op.name, qi[0], where)
    bits, saturated = (8, 0xFFFF << 8) if tanh else (9, 0x7FFF << 10)

    def c(v: int) -> Value:
        return g.const(np.full([1] * len(x.shape), v, np.int32))

    v = g.mul(g.cast(x, DType.INT32), c(m), shift=shift)          # (x·M + 2^(l−1)) >> l
    a = g.abs(v)
    index = g.minimum(g.arithmetic_right_shift(a, c(bits), round=False), c(255))
    base = [t << bits for t in SIGMOID_TABLE[:255]] + [saturated]
    slope = np.diff(SIGMOID_TABLE).tolist() + [0]
    fraction = g.bitwise_and(a, c((1 << bits) - 1))
    r = g.add(cv.gather_table(index, base), g.mul(fraction, cv.gather_table(index, slope)))
    p = g.arithmetic_right_shift(r, c(8 if tanh else 10), round=True)
    if tanh:                                 # q = ((r + 2^7) >> 8) − 2^15, and −q for v < 0
        p = g.sub(p, c(32768))
        neg = g.sub(c(0), p)
    else:                                    # p = (r + 2^9) >> 10, and 2^15 − p for v < 0
        neg = g.sub(c(32768), p)
    return g.cast(g.select(g.greater_equal(v, c(0)), p, neg), DType.INT16)


def _lut_int16(cv: Converter, x: Value, lut: np.ndarray) -> Value:
    """TFLite's int16 ``LUTLookup``: ``base + ((slope · frac + 64) >> 7)`` = TOSA TABLE's
    ``(base << 7) + slope · frac`` then ``(t + 64) >> 7`` (a SINGLE_ROUND RESCALE by 2^20 / 2^27)."""
    return cv.g.rescale(cv.g.table(x, lut), DType.INT16, multiplier=1 << 20, shift=27)


def _rsqrt_fn(s_out: float) -> Callable[[np.ndarray], np.ndarray]:
    """elementwise.cc's int16 RSQRT table function: ``1.0f / sqrtf(v)``, ``32767 · s_out`` for ``v <= 0``."""
    def fn(v: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.float32(1) / np.sqrt(v)
        return np.where(v <= 0, np.float32(32767) * np.float32(s_out), r).astype(np.float32)
    return fn


def _leaky_relu_int16(cv: Converter, op: OpDef, x: Value, qi: Quant, qo: Quant) -> Value:
    """``x >= 0 ? MBQM(x, M_id) : ±MBQM(x, |M_α|)``, clamped: two int32 RESCALEs, a SELECT, a clamp."""
    where, g = cv.where(op), cv.g
    identity, alpha, sign = leaky_relu_multipliers(qi[0], qo[0], opt(op, cv, "LeakyReluOptions").Alpha(), where)
    for _, shift in (identity, alpha):
        check_left_shift(32768, shift, where)
    xi = g.cast(x, DType.INT32)
    pos, neg = (cv.requantize(xi, [], DType.INT32, 0, INT32_MIN, INT32_MAX, where, quantized=[q])
                for q in (identity, alpha))
    zero = g.const(np.zeros([1] * len(x.shape), np.int32))
    if sign < 0:                                      # TFLite negates after the MBQM (not an odd function at ties)
        neg = g.sub(zero, neg)
    y = cv.clamp_channels(g.select(g.greater_equal(xi, zero), pos, neg), [-32768], [32767])
    return g.cast(y, DType.INT16)


INT16_OPS: dict[str, Callable[[Converter, OpDef, Value, Quant, Quant], Value]] = {
    "LOGISTIC": _sigmoid_int16,
    "TANH": _sigmoid_int16,
    "LEAKY_RELU": _leaky_relu_int16,
    "GELU": lambda cv, op, x, qi, qo: _lut_int16(cv, x, int16_lut(_gelu_fn(cv, op), qi[0], qo[0], cv.where(op))),
    "RSQRT": lambda cv, op, x, qi, qo: _lut_int16(cv, x, int16_lut(_rsqrt_fn(qo[0]), qi[0], qo[0], cv.where(op))),
}


@handles(*LUTS)
def table_activation(cv: Converter, op: OpDef) -> None:
    x, out, qi, qo = cv.unary_int8(op, INT8_OR_16 if op.name in INT16_OPS else INT8)
    if x.dtype == DType.INT16:
        cv.define(op, INT16_OPS[op.name](cv, op, x, qi, qo))
    else:
        cv.define(op, cv.g.table(x, LUTS[op.name](cv, op, qi, qo)))

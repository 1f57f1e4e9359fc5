"""Element-wise TOSA semantics as loop-nest expressions.

Each function gives one output element from the input elements, following the
spec pseudo-code (and ``tosac.ir.reference``, the law) exactly. Where the spec
says REQUIRE (a result that must fit, a shift in range, a nonzero divisor),
the reference raises and any result is acceptable, but the generated code
must still never trap: divisors and shift amounts are guarded here because
LLVM makes them undefined behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tosac.errors import UnsupportedError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Op
from tosac.ir.ops import FLOAT_MATH_OPS, SCHEMAS, NanMode, RoundingMode
from tosac.lower.values import Operands, i64, storage_type, to_i64, value_type
from tosac.schedules import loopnest as ln
from tosac.schedules.loopnest import binary, cast, select, smax, smin


@dataclass
class ElementOp:
    """One op applied to element values ``x`` (expressions of the operands' value types)."""
    op: Op
    operands: Operands
    in_dtypes: list[DType]
    out_dtype: DType
    channel: ln.Expr | None          # index along the last output dimension (per-channel RESCALE)

    @property
    def attrs(self) -> dict:
        filled = {k: spec.default for k, spec in SCHEMAS[self.op.name].attrs.items()}
        filled.update(self.op.attrs)
        return filled


def uses_channel(op: Op, operands: Operands) -> bool:
    """True when the element function needs the channel index (per-channel RESCALE with varying values)."""
    if op.name != "RESCALE" or not op.attrs.get("per_channel", False):
        return False
    for i in (1, 2):
        data = operands.const(i)
        if data is None or data.size > 1 and not (data == data.reshape(-1)[0]).all():
            return True
    return False


def element(e: ElementOp, x: list[ln.Expr]) -> ln.Expr:
    rule = ELEMENT_RULES.get(e.op.name)
    if rule is None:
        raise UnsupportedError(f"{e.op.name} is not an element-wise op")
    if e.out_dtype.is_float or any(d.is_float for d in e.in_dtypes):
        if e.op.name not in _FLOAT_OK:
            raise UnsupportedError(f"{e.op.name} on {e.in_dtypes[0].name} has no code generation")
    return rule(e, x)


# ----------------------------------------------------------------------------- integer arithmetic

def _add_sub(e: ElementOp, x):
    if e.out_dtype.is_float:
        return binary("fadd" if e.op.name == "ADD" else "fsub", *x)
    return binary("add" if e.op.name == "ADD" else "sub", *x)          # int32, wraps (REQUIRE in range)


def _max_min(e: ElementOp, x):
    if e.out_dtype.is_float:
        ignore = e.attrs["nan_mode"] is NanMode.IGNORE
        name = {("MAXIMUM", True): "maxnum", ("MAXIMUM", False): "maximum",
                ("MINIMUM", True): "minnum", ("MINIMUM", False): "minimum"}[(e.op.name, ignore)]
        return ln.Intrinsic(name, tuple(x), x[0].type)
    return binary("smax" if e.op.name == "MAXIMUM" else "smin", *x)


def _mul(e: ElementOp, x):
    if e.out_dtype.is_float:
        return binary("fmul", *x)
    a, b = (to_i64(v, d) for v, d in zip(x, e.in_dtypes))
    product = a * b
    shift = e.operands.scalar(2)
    if isinstance(shift, ln.Const) and shift.value == 0:
        return cast(product, "i32")                                     # low 32 bits
    s = smin(smax(shift, i64(0)), i64(63))
    rounded = binary("ashr", product + binary("shl", i64(1), smax(s - i64(1), i64(0))), s)
    if isinstance(shift, ln.Const):
        return cast(rounded, "i32")
    return cast(select(binary("sgt", s, i64(0)), rounded, product), "i32")


def _intdiv(e: ElementOp, x):
    a, b = (to_i64(v, DType.INT32) for v in x)
    safe = select(binary("eq", b, i64(0)), i64(1), b)                  # REQUIRE(b != 0): never trap
    return cast(binary("sdiv", a, safe), "i32")                         # truncates toward zero


def _shift_amount(e: ElementOp, b: ln.Expr) -> ln.Expr:
    bits = e.in_dtypes[0].bits
    return binary("umin", b, ln.Const(bits - 1, b.type))


def _arith_shift(e: ElementOp, x):
    a = to_i64(x[0], e.in_dtypes[0])
    s = to_i64(_shift_amount(e, x[1]), e.in_dtypes[1], unsigned=True)
    r = binary("ashr", a, s)
    if e.attrs["round"]:
        bit = binary("and", binary("ashr", a, smax(s - i64(1), i64(0))), i64(1))
        r = r + select(binary("sgt", s, i64(0)), bit, i64(0))
    return cast(r, x[0].type)


def _logical_shift(e: ElementOp, x):
    s = _shift_amount(e, x[1])
    return binary("shl" if e.op.name == "LOGICAL_LEFT_SHIFT" else "lshr", x[0], s)


def _bitwise(e: ElementOp, x):
    return binary(e.op.name.split("_")[1].lower(), *x)


def _not(e: ElementOp, x):
    return binary("xor", x[0], ln.Const(-1 if x[0].type != "i1" else 1, x[0].type))


def _abs(e: ElementOp, x):
    if e.out_dtype.is_float:
        return ln.Intrinsic("fabs", (x[0],), x[0].type)
    zero = ln.Const(0, x[0].type)
    return select(binary("slt", x[0], zero), zero - x[0], x[0])


def _clz(e: ElementOp, x):
    return ln.Intrinsic("ctlz", (x[0],), x[0].type)


def _clip(value: ln.Expr, dtype: DType) -> ln.Expr:
    return smin(smax(value, i64(dtype.min)), i64(dtype.max))


def _negate(e: ElementOp, x):
    if e.out_dtype.is_float:
        return binary("fsub", ln.Const(-0.0, x[0].type), x[0])
    dt = e.in_dtypes[0]
    v = to_i64(x[0], dt) - e.operands.scalar(1)
    r = (i64(0) - v) + e.operands.scalar(2)
    return cast(_clip(r, dt), storage_type(dt))


def _clamp(e: ElementOp, x):
    lo, hi = e.attrs["min_val"], e.attrs["max_val"]
    v = x[0]
    if e.out_dtype.is_float:
        ignore = e.attrs["nan_mode"] is NanMode.IGNORE
        lo_c, hi_c = ln.Const(float(lo), v.type), ln.Const(float(hi), v.type)
        r = ln.Intrinsic("minimum", (ln.Intrinsic("maximum", (v, lo_c), v.type), hi_c), v.type)
        return select(binary("funo", v, v), lo_c, r) if ignore else r
    return smin(smax(v, ln.Const(int(lo), v.type)), ln.Const(int(hi), v.type))


def _select(e: ElementOp, x):
    return select(*x)


def _compare(e: ElementOp, x):
    float_ = e.in_dtypes[0].is_float
    op = {"EQUAL": "eq", "GREATER": "sgt", "GREATER_EQUAL": "sge"}[e.op.name]
    return binary(("fo" + op[-2:]) if float_ else op, *x)


def _table(e: ElementOp, x):
    table = e.operands.names[1]
    t_type = storage_type(e.operands.type(1).dtype)
    v = to_i64(x[0], e.in_dtypes[0])
    if e.in_dtypes[0] is DType.INT8:
        return ln.TableLoad(table, v + i64(128), t_type)
    biased = v + i64(32768)
    index = binary("ashr", biased, i64(7))
    fraction = binary("and", biased, i64(0x7F))
    base = to_i64(ln.Load(table, index, t_type), DType.INT16)
    nxt = to_i64(ln.Load(table, index + i64(1), t_type), DType.INT16)
    return cast(binary("shl", base, i64(7)) + (nxt - base) * fraction, "i32")


# ----------------------------------------------------------------------------- conversions

def _cast(e: ElementOp, x):
    v, src, dst = x[0], e.in_dtypes[0], e.out_dtype
    if dst is DType.BOOL:
        return binary("fune", v, ln.Const(0.0, v.type)) if src.is_float else binary("ne", v, ln.Const(0, v.type))
    if dst.is_float:
        if src.is_float:
            return cast(v, value_type(dst))
        return cast(v, value_type(dst), signed=src is not DType.BOOL)
    if src.is_float:
        wide = cast(v, "f64")
        rounded = ln.Intrinsic("rint", (wide,), "f64")
        finite = select(binary("funo", rounded, rounded), ln.Const(0.0, "f64"), rounded)
        clipped = ln.Intrinsic("minnum", (ln.Intrinsic("maxnum", (finite, ln.Const(float(dst.min), "f64")), "f64"),
                                          ln.Const(float(dst.max), "f64")), "f64")
        return cast(cast(clipped, "i64"), storage_type(dst))
    return cast(v, storage_type(dst), signed=src is not DType.BOOL)    # sign-extend or truncate (wrap)


_UNSIGNED_RANGE = {DType.INT8: DType.UINT8, DType.INT16: DType.UINT16, DType.UINT8: DType.UINT8,
                   DType.UINT16: DType.UINT16}


def rescale_value(value: ln.Expr, multiplier: ln.Expr, shift: ln.Expr, scale32: bool, double_round: bool) -> ln.Expr:
    """apply_scale_32 / apply_scale_16 on an exact i64 value (spec pseudo-code)."""
    s = smin(smax(shift, i64(2)), i64(62))                  # REQUIRE 2 <= shift <= 62
    rnd = binary("shl", i64(1), s - i64(1))
    if scale32 and double_round:
        half = select(binary("sge", value, i64(0)), i64(1 << 30), i64(-(1 << 30)))
        rnd = rnd + select(binary("sgt", s, i64(31)), half, i64(0))
    return binary("ashr", value * multiplier + rnd, s)


def _rescale(e: ElementOp, x):
    a = e.attrs
    in_t, out_t = e.in_dtypes[0], e.out_dtype
    in_u, out_u = a["input_unsigned"], a["output_unsigned"]
    value = to_i64(x[0], in_t, unsigned=in_u) - e.operands.scalar(3, unsigned=in_u)
    channel = e.channel if a["per_channel"] else None
    mult, shift = e.operands.per_channel(1, channel), e.operands.per_channel(2, channel)
    double = a["rounding_mode"] is RoundingMode.DOUBLE_ROUND
    target = _UNSIGNED_RANGE[out_t] if out_u else out_t
    power = _power_of_two_scale(e)
    if power is not None:
        result = power_of_two_rescale(value, *power, double) + e.operands.scalar(4, unsigned=out_u)
        return cast(_clip(result, target), storage_type(out_t))
    if _fits_high_word(e):
        i32 = lambda v: ln.Const(v, "i32")  # noqa: E731
        result = high_word_rescale(cast(value, "i32"), cast(mult, "i32"), cast(shift, "i32"), double)
        result = result + cast(e.operands.scalar(4, unsigned=out_u), "i32")
        return cast(smin(smax(result, i32(max(target.min, -(1 << 31)))), i32(min(target.max, (1 << 31) - 1))),
                    storage_type(out_t))
    result = rescale_value(value, mult, shift, a["scale32"], double) + e.operands.scalar(4, unsigned=out_u)
    return cast(_clip(result, target), storage_type(out_t))


def _power_of_two_scale(e: ElementOp) -> tuple[int, int] | None:
    """``(a, shift)`` when every multiplier is the constant ``2^a`` and every shift the constant ``shift``
    (32-bit scale): the RESCALE is then a rounding shift, no multiply (TFLite frontends emit these to widen
    ``(x − zp) · 2^k`` and to halve ADD's larger input)."""
    if not e.attrs["scale32"] or e.in_dtypes[0].is_float:
        return None
    mults, shifts = e.operands.const(1), e.operands.const(2)
    if mults is None or shifts is None:
        return None
    mults, shifts = np.asarray(mults, np.int64).reshape(-1), np.asarray(shifts, np.int64).reshape(-1)
    m, s = int(mults[0]), int(shifts[0])
    if np.any(mults != m) or np.any(shifts != s) or m <= 0 or m & (m - 1) or not 2 <= s <= 62:
        return None
    return m.bit_length() - 1, s


def power_of_two_rescale(value: ln.Expr, a: int, shift: int, double_round: bool) -> ln.Expr:
    """apply_scale_32 with multiplier ``2^a`` on an i64 value, as a rounding shift.

    ``a >= shift``: (v·2^a + 2^(shift−1)) >> shift = v·2^(a−shift) (the rounding term is below 2^shift, and
    DOUBLE_ROUND needs shift > 31 >= a). ``a < shift``: the numerator v·2^a + 2^(shift−1) [± 2^30 when
    DOUBLE_ROUND and shift > 31] is a multiple of 2^a (a <= 30), so the result is (v + 2^(shift−a−1)
    [± 2^(30−a)]) >> (shift − a): exactly the spec's, with one add and one shift.
    """
    if a >= shift:
        return binary("shl", value, i64(a - shift))
    rnd = i64(1 << (shift - a - 1))
    if double_round and shift > 31:
        rnd = rnd + select(binary("sge", value, i64(0)), i64(1 << (30 - a)), i64(-(1 << (30 - a))))
    return binary("ashr", value + rnd, i64(shift - a))


def _fits_high_word(e: ElementOp) -> bool:
    """Whether ``high_word_rescale`` is exact for this RESCALE: a 32-bit multiplier, constant shifts in
    33..62, an input minus zero point that fits int32 (int8/int16 inputs, or int32 with zero point 0) and
    an output zero point that keeps ``result + zp`` in int32 (|result| <= 2^30)."""
    a = e.attrs
    in_t = e.in_dtypes[0]
    shifts, in_zp, out_zp = (e.operands.const(i) for i in (2, 3, 4))
    if (not a["scale32"] or in_t.is_float or in_t.bits > 32
            or shifts is None or in_zp is None or out_zp is None):
        return False
    shifts = np.asarray(shifts, dtype=np.int64)
    return (bool(np.all((shifts >= 33) & (shifts <= 62))) and (in_t.bits < 32 or not np.any(in_zp))
            and bool(np.all(np.abs(np.asarray(out_zp, dtype=np.int64)) < 1 << 30)))


def high_word_rescale(value: ln.Expr, multiplier: ln.Expr, shift: ln.Expr, double_round: bool = False) -> ln.Expr:
    """apply_scale_32 for an i32 value and 33 <= shift <= 62, in 32-bit lanes.

    Write value * multiplier = hi * 2^32 + lo with 0 <= lo < 2^32. The rounding term 2^(shift-1) is a multiple
    of 2^32, so floor((hi * 2^32 + lo + 2^(shift-1)) / 2^shift) = floor((hi + 2^(shift-33)) / 2^(shift-32)):
    ``lo`` never reaches the result. hi is the high word of a 32x32 product (|hi| <= 2^30, so the sum fits),
    which vector units compute without 64-bit lanes (pmuldq pairs, smull). Exactly the spec's result.

    DOUBLE_ROUND (shift > 31) adds ``+2^30`` for value >= 0, ``-2^30`` otherwise. Nested floor divisions
    give floor((value * multiplier ± 2^30 + 2^(shift-1)) / 2^shift) = floor((hi' + 2^(shift-33)) /
    2^(shift-32)) with hi' = floor((value * multiplier ± 2^30) / 2^32): the ±2^30 is added to the 64-bit
    product before its high word is taken (a vector add, no 64-bit lanes beyond the product's), TFLite's
    MultiplyByQuantizedMultiplier exactly.
    """
    one = ln.Const(1, "i32")
    product = cast(value, "i64") * cast(multiplier, "i64")
    if double_round:
        product = product + select(binary("sge", value, ln.Const(0, "i32")), i64(1 << 30), i64(-(1 << 30)))
    hi = cast(binary("ashr", product, i64(32)), "i32")
    return binary("ashr", hi + binary("shl", one, shift - ln.Const(33, "i32")), shift - ln.Const(32, "i32"))


# ----------------------------------------------------------------------------- float-only math

def _float_unary(e: ElementOp, x):
    v = cast(x[0], "f64")
    one = ln.Const(1.0, "f64")
    name = e.op.name
    if name == "SIGMOID":
        r = binary("fdiv", one, binary("fadd", one, ln.Intrinsic("exp", (binary("fsub", ln.Const(0.0, "f64"), v),),
                                                                "f64")))
    elif name == "RECIPROCAL":
        r = binary("fdiv", one, v)
    elif name == "RSQRT":
        r = binary("fdiv", one, ln.Intrinsic("sqrt", (v,), "f64"))
    elif name == "POW":
        r = ln.Intrinsic("pow", (v, cast(x[1], "f64")), "f64")
    elif name == "ERF":
        r = ln.Intrinsic("erf", (v,), "f64")
    else:
        r = ln.Intrinsic({"TANH": "tanh", "CEIL": "ceil", "FLOOR": "floor", "COS": "cos", "SIN": "sin",
                          "EXP": "exp", "LOG": "log"}[name], (v,), "f64")
    return cast(r, x[0].type)


# How each element-wise op computes one element: one rule per op of category ELEMENTWISE in the schema.
ELEMENT_RULES: dict[str, Callable[[ElementOp, list[ln.Expr]], ln.Expr]] = {
    "ADD": _add_sub, "SUB": _add_sub, "MAXIMUM": _max_min, "MINIMUM": _max_min, "MUL": _mul,
    "INTDIV": _intdiv, "ARITHMETIC_RIGHT_SHIFT": _arith_shift, "LOGICAL_LEFT_SHIFT": _logical_shift,
    "LOGICAL_RIGHT_SHIFT": _logical_shift, "BITWISE_AND": _bitwise, "BITWISE_OR": _bitwise,
    "BITWISE_XOR": _bitwise, "LOGICAL_AND": _bitwise, "LOGICAL_OR": _bitwise, "LOGICAL_XOR": _bitwise,
    "BITWISE_NOT": _not, "LOGICAL_NOT": _not, "ABS": _abs, "CLZ": _clz, "NEGATE": _negate, "CLAMP": _clamp,
    "SELECT": _select, "EQUAL": _compare, "GREATER": _compare, "GREATER_EQUAL": _compare, "TABLE": _table,
    "CAST": _cast, "RESCALE": _rescale, **{n: _float_unary for n in FLOAT_MATH_OPS},
}
# The rules that also generate float code; every other rule is integer/bool only.
_FLOAT_OK = {"ADD", "SUB", "MAXIMUM", "MINIMUM", "MUL", "ABS", "NEGATE", "CLAMP", "SELECT", "EQUAL", "GREATER",
             "GREATER_EQUAL", "CAST"} | FLOAT_MATH_OPS

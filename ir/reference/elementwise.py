"""Elementwise, comparison and activation ops (spec chapters ewise_*, comparison, activation).

Inputs broadcast as numpy does, which matches TOSA once ranks are equal (the
verifier checks that). Integer work is in int64 with the spec's wrap,
saturation or REQUIRE at the end.
"""
from __future__ import annotations

import numpy as np

from tosac.ir.dtypes import DType, wrap
from tosac.ir.ops import FLOAT_MATH_OPS, NanMode
from tosac.ir.reference.arith import check_range, clz32, i64, require
from tosac.ir.reference.registry import OpCall, kernel


def _out(call: OpCall, values) -> list[np.ndarray]:
    return [np.broadcast_to(np.asarray(values), call.out.shape).astype(call.out.dtype.storage)]


def _dtype(call: OpCall) -> DType:
    return call.in_types[0].dtype


@kernel("ADD", "SUB")
def add_sub(call: OpCall) -> list[np.ndarray]:
    a, b = call.args[0], call.args[1]
    if _dtype(call).is_float:
        return _out(call, a + b if call.op.name == "ADD" else a - b)
    r = i64(a) + i64(b) if call.op.name == "ADD" else i64(a) - i64(b)
    check_range(r, DType.INT32, call.label, "the result")
    return _out(call, r)


@kernel("MAXIMUM", "MINIMUM")
def max_min(call: OpCall) -> list[np.ndarray]:
    a, b = call.args
    pick = np.maximum if call.op.name == "MAXIMUM" else np.minimum
    if _dtype(call).is_float and call.attrs["nan_mode"] is NanMode.IGNORE:
        pick = np.fmax if call.op.name == "MAXIMUM" else np.fmin
    return _out(call, pick(a, b))


@kernel("MUL")
def mul(call: OpCall) -> list[np.ndarray]:
    a, b, shift_arr = call.args
    if _dtype(call).is_float:
        return _out(call, a * b)
    shift = int(np.asarray(shift_arr).reshape(-1)[0])
    require(0 <= shift <= 63, call.label, "0 <= shift <= 63")
    require(_dtype(call) is DType.INT32 or shift == 0, call.label, "shift == 0 unless int32")
    if shift > 0:
        product = i64(a) * i64(b)            # |int32 * int32| < 2^62: exact in int64
        r = (product + (1 << (shift - 1))) >> shift
        check_range(r, DType.INT32, call.label, "the shifted product")
        return _out(call, r)
    return _out(call, wrap(i64(a) * i64(b), DType.INT32))   # low 32 bits (wraps for int32)


@kernel("INTDIV")
def intdiv(call: OpCall) -> list[np.ndarray]:
    a, b = i64(call.args[0]), i64(call.args[1])
    require(np.all(b != 0), call.label, "input2 != 0")
    a, b = np.broadcast_arrays(a, b)
    q = np.abs(a) // np.abs(b) * np.sign(a) * np.sign(b)       # truncation toward zero
    check_range(q, DType.INT32, call.label, "the quotient")
    return _out(call, q)


@kernel("ARITHMETIC_RIGHT_SHIFT")
def arithmetic_right_shift(call: OpCall) -> list[np.ndarray]:
    a, b = i64(call.args[0]), i64(call.args[1])
    bits = _dtype(call).bits
    require((b >= 0) & (b < bits), call.label, f"0 <= shift < {bits}")
    a, b = np.broadcast_arrays(a, b)
    r = a >> b
    if call.attrs["round"]:
        r = r + np.where(b > 0, (a >> np.maximum(b - 1, 0)) & 1, 0)
    return _out(call, r)


@kernel("LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT")
def logical_shift(call: OpCall) -> list[np.ndarray]:
    dtype = _dtype(call)
    a, b = i64(call.args[0]), i64(call.args[1])
    require((b >= 0) & (b <= dtype.bits - 1), call.label, f"0 <= shift <= {dtype.bits - 1}")
    mask = (1 << dtype.bits) - 1
    if call.op.name == "LOGICAL_LEFT_SHIFT":
        return _out(call, wrap(a << b, dtype))
    return _out(call, wrap((a & mask) >> b, dtype))


@kernel("BITWISE_AND", "BITWISE_OR", "BITWISE_XOR", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_XOR")
def bitwise(call: OpCall) -> list[np.ndarray]:
    fn = {"AND": np.bitwise_and, "OR": np.bitwise_or, "XOR": np.bitwise_xor}[call.op.name.split("_")[1]]
    return _out(call, fn(call.args[0], call.args[1]))


@kernel("BITWISE_NOT", "LOGICAL_NOT")
def bitwise_not(call: OpCall) -> list[np.ndarray]:
    return _out(call, np.invert(call.args[0]))


@kernel("ABS")
def abs_(call: OpCall) -> list[np.ndarray]:
    x = call.args[0]
    if _dtype(call).is_float:
        return _out(call, np.abs(x))
    r = np.abs(i64(x))
    check_range(r, DType.INT32, call.label, "|input1|")
    return _out(call, r)


@kernel("CLZ")
def clz(call: OpCall) -> list[np.ndarray]:
    return _out(call, clz32(call.args[0]))


@kernel("NEGATE")
def negate(call: OpCall) -> list[np.ndarray]:
    x = call.args[0]
    dtype = _dtype(call)
    if dtype.is_float:
        return _out(call, -x)
    zp_in, zp_out = call.scalar("input1_zp"), call.scalar("output_zp")
    v = i64(x) - zp_in                                  # acc_t is int32 for every integer type
    check_range(v, DType.INT32, call.label, "input1 - input1_zp")
    r = -v
    check_range(r, DType.INT32, call.label, "the negation")
    r = r + zp_out
    check_range(r, DType.INT32, call.label, "the result before clipping")
    return _out(call, np.clip(r, dtype.min, dtype.max))


@kernel("CLAMP")
def clamp(call: OpCall) -> list[np.ndarray]:
    x = call.args[0]
    lo, hi = call.attrs["min_val"], call.attrs["max_val"]
    if _dtype(call).is_float:
        r = np.minimum(np.maximum(x, lo), hi)
        if call.attrs["nan_mode"] is NanMode.IGNORE:
            r = np.where(np.isnan(x), lo, r)
        return _out(call, r)
    return _out(call, np.clip(i64(x), int(lo), int(hi)))


@kernel("SELECT")
def select(call: OpCall) -> list[np.ndarray]:
    return _out(call, np.where(call.args[0], call.args[1], call.args[2]))


@kernel("EQUAL", "GREATER", "GREATER_EQUAL")
def compare(call: OpCall) -> list[np.ndarray]:
    fn = {"EQUAL": np.equal, "GREATER": np.greater, "GREATER_EQUAL": np.greater_equal}[call.op.name]
    return _out(call, fn(call.args[0], call.args[1]))


@kernel("TABLE")
def table(call: OpCall) -> list[np.ndarray]:
    x, tab = i64(call.args[0]), i64(call.args[1])
    if _dtype(call) is DType.INT8:
        return _out(call, tab[x + 128])
    # int16: apply_lookup_s — 9 bits select the entry, 7 bits interpolate; the result is scaled by 2^7.
    index = (x + 32768) >> 7
    fraction = (x + 32768) & 0x7F
    base, nxt = tab[index], tab[index + 1]
    slope = nxt - base
    require((slope >= -32768) & (slope <= 32767), call.label, "the table slope at each used entry fits int16")
    return _out(call, (base << 7) + (nxt - base) * fraction)


@kernel(*sorted(FLOAT_MATH_OPS))
def float_unary(call: OpCall) -> list[np.ndarray]:
    """Float-only ops (float profile): plain numpy float math, not bit-exact by design."""
    import math

    x = call.args[0].astype(np.float64)
    fns = {"SIGMOID": lambda v: 1 / (1 + np.exp(-v)), "TANH": np.tanh, "CEIL": np.ceil, "COS": np.cos,
           "EXP": np.exp, "FLOOR": np.floor, "LOG": np.log, "RECIPROCAL": lambda v: 1 / v,
           "RSQRT": lambda v: 1 / np.sqrt(v), "SIN": np.sin, "ERF": np.vectorize(math.erf)}
    if call.op.name == "POW":
        return _out(call, np.power(x, call.args[1].astype(np.float64)))
    with np.errstate(all="ignore"):
        return _out(call, fns[call.op.name](x))

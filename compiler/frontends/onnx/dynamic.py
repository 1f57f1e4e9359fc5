"""Dynamic quantization, ONNX Runtime's ``quantize_dynamic`` route for transformers.

``DynamicQuantizeLinear`` chooses a uint8 scale and zero point from each
tensor's range at run time; ``MatMulInteger`` then multiplies with int8
weights and a Cast and Mul bring the result back to float. The range and the
quantization are float ops computed as ONNX Runtime computes them, divisions
included: TOSA has no float division, so x / s is x · (1/s) corrected by its
exact remainder (:func:`quotient`). The product is exact integer arithmetic
whatever the run-time zero point: with a = q − 128 and za = zp − 128 (int8),

    Σ (q − zp)(b − zb) = Σ a·b − zb·Σ a − za·Σ b + K·za·zb,

one int8 MATMUL and int32 corrections.
"""
from __future__ import annotations

import numpy as np
import onnx

from tosac.errors import UnsupportedError
from tosac.frontends.onnx.converter import Converter, handles
from tosac.frontends.onnx.floating import float_entry
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType

UINT8_LEVELS = 255


@handles("DynamicQuantizeLinear")
def dynamic_quantize_linear(cv: Converter, node: onnx.NodeProto) -> None:
    """y = saturate(round(x / scale) + zp) with scale = (max(x, 0) − min(x, 0)) / 255 (1 when that is 0) and
    zp = round(clamp(−min / scale, 0, 255)), rounding half to even — ONNX Runtime's GetQuantizationParameter."""
    e = float_entry(cv, node, 0)
    g, x = cv.g, cv.value(e)
    total = int(np.prod(e.shape))

    def scalar(value: float) -> Value:
        return g.const(np.full((1, 1), value, np.float32))

    flat = g.reshape(x, (1, total))
    low = g.minimum(g.reduce_min(flat, axis=1), scalar(0.0))
    high = g.maximum(g.reduce_max(flat, axis=1), scalar(0.0))
    span = g.sub(high, low)
    scale = g.select(g.equal(span, scalar(0.0)), scalar(1.0), quotient(g, span, scalar(UINT8_LEVELS)))
    zero_point = g.cast(g.clamp(g.negate(quotient(g, low, scale)), min_val=0.0, max_val=float(UINT8_LEVELS)),
                        DType.INT32)                                  # CAST rounds half to even
    ones = (1,) * e.rank
    # saturate(round(x / s) + zp): rounded before zp is added, since a tie rounds to even.
    q = g.add(g.cast(quotient(g, x, g.reshape(scale, ones)), DType.INT32), g.reshape(zero_point, ones))
    q = g.minimum(g.maximum(q, g.const(np.zeros(ones, np.int32))), g.const(np.full(ones, UINT8_LEVELS, np.int32)))
    cv.set(node.output[0], cv.wrapped(q, DType.UINT8), e.perm)
    cv.set(node.output[1], g.reshape(scale, ()))
    if len(node.output) > 2 and node.output[2]:
        cv.set(node.output[2], cv.wrapped(g.reshape(zero_point, ()), DType.UINT8))


def quotient(g, x: Value, s: Value) -> Value:
    """float32 x / s rounded as IEEE division rounds it, from TOSA's correctly rounded ops (no FMA needed):
    q = x · (1/s) is within two ulps; the remainder x − q·s is exact (Dekker's product, Veltkamp's split)
    and q + remainder · (1/s) rounds to the quotient unless that lies within 2^-40 of a midpoint between two
    floats. Valid while |x|, |s| and |q| stay below 2^100 and above 2^-100 (or are zero), as activations do."""
    r = g.reciprocal(s)
    q = g.mul(x, r)
    product, error = _two_product(g, q, s)
    remainder = g.sub(g.sub(x, product), error)
    return g.add(q, g.mul(remainder, r))


def _two_product(g, a: Value, b: Value) -> tuple[Value, Value]:
    """(a·b rounded, its exact rounding error) with plain float32 multiplies and adds (Dekker)."""
    a_hi, a_lo = _split(g, a)
    b_hi, b_lo = _split(g, b)
    product = g.mul(a, b)
    error = g.sub(g.mul(a_hi, b_hi), product)
    error = g.add(g.add(error, g.mul(a_hi, b_lo)), g.mul(a_lo, b_hi))
    return product, g.add(error, g.mul(a_lo, b_lo))


def _split(g, a: Value) -> tuple[Value, Value]:
    """a = hi + lo with 12 significant bits each (Veltkamp), so products of halves are exact in float32."""
    c = g.mul(a, g.const(np.full((1,) * a.type.rank, 4097.0, np.float32)))
    hi = g.sub(c, g.sub(c, a))
    return hi, g.sub(a, hi)


def runtime_zero_point(cv: Converter, node: onnx.NodeProto, index: int) -> bool:
    e = cv.entry(node, index)
    return e is not None and not e.is_const and node.input[index] not in cv.bound


def matmul_integer(cv: Converter, node: onnx.NodeProto) -> None:
    """MatMulInteger whose A zero point is a run-time value (DynamicQuantizeLinear's); B constant."""
    a, b, a_zp = cv.entry(node, 0), cv.entry(node, 1), cv.entry(node, 2)
    if not b.is_const or b.rank != 2 or runtime_zero_point(cv, node, 3):
        raise UnsupportedError("MatMulInteger with a run-time A zero point needs constant 2-D B and B zero point")
    if a_zp.dtype is not DType.UINT8 or a.dtype is not DType.UINT8:
        raise UnsupportedError("MatMulInteger with a run-time zero point needs uint8 A and A zero point")
    g = cv.g
    k, n = b.shape
    b_zp = np.asarray(cv.const(node, 3, "b_zero_point", 0)).astype(np.int64).reshape(-1)
    b_signed = b.data.astype(np.int64) - (128 if b.data.dtype == np.uint8 else 0)
    b_zp = np.broadcast_to(b_zp - (128 if b.data.dtype == np.uint8 else 0), (n,))
    a8 = cv.signed(cv.onnx_order(a))[0]                               # q − 128
    za = g.reshape(g.cast(cv.signed(cv.value(a_zp))[0], DType.INT32), (1, 1))   # zp − 128
    rows = int(np.prod(a.shape[:-1]))
    a2 = g.reshape(a8, (1, rows, k))
    acc = g.reshape(g.matmul(a2, g.const(b_signed.astype(np.int8).reshape(1, k, n)), a_zp=0, b_zp=0), (rows, n))
    column_sums = g.const((b_signed.sum(axis=0) - k * b_zp).astype(np.int32).reshape(1, n))   # Σ (b − zb)
    acc = g.sub(acc, g.mul(za, column_sums))
    if np.any(b_zp != 0):
        row_sums = g.reduce_sum(g.reshape(g.cast(a2, DType.INT32), (rows, k)), axis=1)        # Σ a
        acc = g.sub(acc, g.mul(row_sums, g.const(b_zp.astype(np.int32).reshape(1, n))))
    cv.set(node.output[0], g.reshape(acc, a.shape[:-1] + (n,)))

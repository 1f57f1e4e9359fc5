"""Type conversion: CAST and RESCALE (spec chapter type_conversion)."""
from __future__ import annotations

import numpy as np

from tosac.ir.dtypes import DType, wrap
from tosac.ir.ops import RoundingMode
from tosac.ir.reference.arith import apply_scale_16, apply_scale_32, i64
from tosac.ir.reference.registry import OpCall, kernel

_UNSIGNED = {DType.INT8: DType.UINT8, DType.INT16: DType.UINT16, DType.UINT8: DType.UINT8,
             DType.UINT16: DType.UINT16}


@kernel("CAST")
def cast(call: OpCall) -> list[np.ndarray]:
    x, src, dst = call.args[0], call.in_types[0].dtype, call.out.dtype
    if dst is DType.BOOL:
        out = x != 0
    elif dst.is_float:
        out = x.astype(np.float64)                       # numpy rounds to nearest even on the final cast
    elif src is DType.BOOL:
        out = x.astype(np.int64)
    elif src.is_float:
        # round_to_nearest_int (ties to even), clip to the output range
        rounded = np.rint(x.astype(np.float64))
        out = np.clip(np.nan_to_num(rounded, nan=0.0), dst.min, dst.max).astype(np.int64)
    else:
        out = wrap(i64(x), dst)                          # widening sign-extends, narrowing truncates
    return [np.asarray(out).astype(dst.storage).reshape(call.out.shape)]


def _read(values: np.ndarray, dtype: DType, unsigned: bool) -> np.ndarray:
    """The exact value of stored bits, zero-extended when the unsigned flag is set."""
    v = i64(values)
    if unsigned and dtype.signed:
        v = v & ((1 << dtype.bits) - 1)
    return v


@kernel("RESCALE")
def rescale(call: OpCall) -> list[np.ndarray]:
    a = call.attrs
    in_t, out_t = call.in_types[0].dtype, call.out.dtype
    in_u, out_u = a["input_unsigned"], a["output_unsigned"]
    value = _read(call.args[0], in_t, in_u)
    in_zp = int(_read(np.asarray(call.arg("input_zp")).reshape(-1)[:1], call.type("input_zp").dtype, in_u)[0])
    out_zp = int(_read(np.asarray(call.arg("output_zp")).reshape(-1)[:1], call.type("output_zp").dtype, out_u)[0])
    mult = i64(call.arg("multiplier")).reshape(-1)
    shift = i64(call.arg("shift")).reshape(-1)
    if not a["per_channel"]:
        mult, shift = mult[:1], shift[:1]
    value = value - in_zp
    if a["scale32"]:
        double = a["rounding_mode"] is RoundingMode.DOUBLE_ROUND
        result = apply_scale_32(value, mult, shift, double, call.label)
    else:
        result = apply_scale_16(value, mult, shift, call.label)
    result = result + out_zp
    target = _UNSIGNED[out_t] if out_u else out_t
    lo, hi = target.min, target.max
    result = np.clip(result, lo, hi)
    return [wrap(result, out_t).reshape(call.out.shape)]

"""ONNX Resize (opset 13 to 19) and Upsample (opset 9 form) as TOSA RESIZE.

TOSA RESIZE reads, for output row ``o``, the input position ``v = (o·d + offset) / n``
with integers ``n <= 2048, d, offset`` (``border`` only fixes the output size);
NEAREST reads row ``floor(v + 1/2)``, BILINEAR weights the two rows around ``v``
by its exact fraction. Once the scale is a fraction ``p/q`` (output / input
size, or the simplest fraction that rounds to the float32 scale), every ONNX
coordinate transform except tf_crop_and_resize is an exact affine position
``t(o) = (A·o + B) / D``, and every nearest_mode is ``floor(t + 1/2 + c/(2D))``
for a constant ``c`` (round_prefer_ceil 0, round_prefer_floor −1, floor −D,
ceil D−1), so NEAREST takes ``v = t + c/(2D)`` and BILINEAR ``v = t``: all
combinations map onto TOSA RESIZE exactly, within its ranges.

ONNX Runtime (float32) and ONNX's reference (float64) evaluate the formula in
floating point, where a tie (a NEAREST position exactly on a rounding
boundary) can fall either way when the scale is not exactly representable
(4/3); such axes are refused rather than answered one way. An output size that
float32 and exact arithmetic disagree on, and a scale that leaves the size
unchanged (ONNX Runtime copies the input there), are refused too.

Forms: NEAREST moves stored values, whatever they are (float32, int8, uint8,
int16, lazily dequantized), so QDQ and QOperator int8 pass through unchanged.
BILINEAR is fp32 RESIZE for floats; between DequantizeLinear and
QuantizeLinear, or on an int8/uint8 tensor (QOperator), it is int8 RESIZE (an
exact int32 sum, scaled by ``n_y · n_x``) and one RESCALE rounding to nearest
(ties up; ONNX Runtime's own int8 Resize truncates instead).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np
import onnx

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.onnx.converter import Converter, QOut, handles, pattern
from tosac.frontends.onnx.entries import Entry, Quant
from tosac.frontends.onnx.floating import float_entry
from tosac.frontends.onnx.quantized import int8_operand
from tosac.frontends.onnx.reader import UPGRADED_FROM
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType
from tosac.ir.ops import ResizeMode

TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
              "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MAX_N = 1 << 11                       # TOSA: scale_n <= 2048 (keeps the int8 BILINEAR sum in int32)


@dataclass(frozen=True)
class Spec:
    """What one Resize/Upsample node asks for, per ONNX axis: output size and scale."""
    mode: str                          # "nearest" or "linear"
    transform: str
    nearest: str                       # a NEAREST_MODES value, or "simple" (Upsample)
    out_shape: tuple[int, ...]
    scales: tuple[float, ...]          # the float32 scale (ONNX Runtime computes with it), as a Python float
    ratios: tuple[Fraction | None, ...]  # the exact scale when sizes define it (output / input size)


@dataclass(frozen=True)
class AxisPlan:
    """TOSA RESIZE parameters of one axis, applied to input rows [start, start + kept) with ``before`` copies of
    the first and ``after`` copies of the last input row around them: ONNX clamps positions to the edge rows,
    TOSA needs them inside its input."""
    start: int
    kept: int
    before: int
    after: int
    n: int
    d: int
    offset: int
    border: int

    @staticmethod
    def identity(size: int) -> "AxisPlan":
        return AxisPlan(0, size, 0, 0, 1, 1, 0, 0)

    @property
    def extent(self) -> int:
        """Rows of TOSA RESIZE's input."""
        return self.before + self.kept + self.after


# ---------------------------------------------------------------------- reading the node
def _text(value: str | bytes | None, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _scaled_size(scale: float, size: int, axis: int) -> int:
    """floor(scale · size): ONNX Runtime multiplies in float32, ONNX's shape inference exactly; refused where
    float32 rounding makes them differ."""
    f32 = int(np.float32(scale) * np.float32(size))
    exact = math.floor(Fraction(scale) * size)
    if f32 != exact:
        raise UnsupportedError(f"scale {scale:g} on axis {axis} (size {size}) gives {f32} rows in float32 (ONNX "
                               f"Runtime) but {exact} exactly (ONNX shape inference)")
    return exact


def read_spec(cv: Converter, node: onnx.NodeProto, shape: tuple[int, ...]) -> Spec:
    """Attributes and constant inputs; anything TOSA RESIZE cannot express is an UnsupportedError naming it."""
    rank = len(shape)
    mode = _text(cv.attr(node, "mode"), "nearest")
    if mode not in ("nearest", "linear"):
        raise UnsupportedError(f"mode '{mode}' is not supported (nearest and linear map onto TOSA RESIZE)")
    if node.op_type == "Upsample":
        scales = cv.const(node, 1, "scales") if len(node.input) > 1 else cv.attr(node, "scales")
        if scales is None:
            raise FrontendError("Upsample needs scales")
        scales = [float(s) for s in np.asarray(scales, np.float32).reshape(-1)]
        if len(scales) != rank or min(scales) < 1:
            raise FrontendError(f"Upsample scales {scales} must give each of the {rank} axes a scale >= 1")
        out = tuple(_scaled_size(s, d, a) for a, (s, d) in enumerate(zip(scales, shape)))
        return Spec(mode, "asymmetric", "simple", out, tuple(scales), (None,) * rank)
    transform, nearest, policy, upgraded = _transform_attributes(cv, node)
    if transform == "tf_crop_and_resize":
        raise UnsupportedError("coordinate_transformation_mode 'tf_crop_and_resize' is not supported "
                               "(its roi crop and extrapolation_value have no TOSA RESIZE form)")
    if transform not in TRANSFORMS:
        raise UnsupportedError(f"coordinate_transformation_mode '{transform}' is not supported")
    if mode == "nearest" and nearest not in NEAREST_MODES + (("simple",) if upgraded else ()):
        raise UnsupportedError(f"nearest_mode '{nearest}' is not supported")
    if int(cv.attr(node, "exclude_outside", 0)):
        raise UnsupportedError("exclude_outside=1 is not supported")
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise UnsupportedError(f"keep_aspect_ratio_policy '{policy}' is not supported")
    axes = cv.attr(node, "axes")
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    scales = _optional_const(cv, node, 2, "scales")
    sizes = _optional_const(cv, node, 3, "sizes")
    if (scales is None) == (sizes is None):
        raise FrontendError("Resize needs exactly one of scales and sizes")
    full = [1.0] * rank
    ratios: list[Fraction | None] = [Fraction(1)] * rank
    out = list(shape)
    if scales is not None:
        if scales.size != len(axes) or np.any(~(scales > 0)):
            raise FrontendError(f"scales {scales.tolist()} must give a positive scale for each of axes {axes}")
        for a, s in zip(axes, scales.astype(np.float32)):
            full[a], ratios[a], out[a] = float(s), None, _scaled_size(float(s), shape[a], a)
    else:
        sizes = [int(v) for v in sizes.reshape(-1)]
        if len(sizes) != len(axes) or min(sizes) < 1:
            raise FrontendError(f"sizes {sizes} must give a positive size for each of axes {axes}")
        for a, size in zip(axes, sizes):
            full[a] = float(np.float32(size) / np.float32(shape[a]))      # as ONNX Runtime computes it
            ratios[a], out[a] = Fraction(size, shape[a]), size
        if policy != "stretch":
            axis = (min if policy == "not_larger" else max)(axes, key=lambda a: ratios[a])
            for a in axes:
                full[a], ratios[a] = full[axis], ratios[axis]
                f32 = float(np.float32(full[a]) * np.float32(shape[a]))
                out[a] = math.floor(ratios[a] * shape[a] + Fraction(1, 2))
                if out[a] != math.floor(f32 + 0.5):
                    raise UnsupportedError(f"keep_aspect_ratio_policy '{policy}': axis {a} has {out[a]} rows exactly "
                                           f"but {math.floor(f32 + 0.5)} in float32 (ONNX Runtime)")
    if int(cv.attr(node, "antialias", 0)) and (mode == "nearest" or min(full) < 1):
        raise UnsupportedError(f"antialias=1 with mode '{mode}' and scales {full} is not supported (only linear "
                               "upscaling, where the antialias filter is plain linear)")
    if min(out) < 1:
        raise UnsupportedError(f"the output shape {out} is empty")
    return Spec(mode, transform, nearest, tuple(out), tuple(full), tuple(ratios))


def _transform_attributes(cv: Converter, node: onnx.NodeProto) -> tuple[str, str, str, bool]:
    """coordinate_transformation_mode, nearest_mode, keep_aspect_ratio_policy, and whether the model was upgraded
    from opset 10 or older. onnx.version_converter turns Upsample and Resize-10 (asymmetric; ONNX Runtime's
    'simple' rounding: truncation, ceil when downscaling) into Resize without these attributes, whose defaults
    (half_pixel, round_prefer_floor) mean something else: for such a node the old meaning is restored."""
    upgraded = {p.key: p.value for p in cv.proto.metadata_props}.get(UPGRADED_FROM)
    old = upgraded is not None and int(upgraded) <= 10
    transform = _text(cv.attr(node, "coordinate_transformation_mode"), "asymmetric" if old else "half_pixel")
    nearest = _text(cv.attr(node, "nearest_mode"), "simple" if old else "round_prefer_floor")
    return transform, nearest, _text(cv.attr(node, "keep_aspect_ratio_policy"), "stretch"), old


def _optional_const(cv: Converter, node: onnx.NodeProto, index: int, what: str) -> np.ndarray | None:
    """An optional constant input; an empty tensor counts as absent (exporters write scales=[] with sizes)."""
    if index >= len(node.input) or not node.input[index]:
        return None
    data = np.asarray(cv.const(node, index, what))
    return data if data.size else None


# ---------------------------------------------------------------------- positions and rows
def float_positions(transform: str, length: int, out: int, scale: float, dtype: type) -> np.ndarray | None:
    """The input position of each output row, ONNX's formula evaluated in ``dtype`` (float32: as ONNX Runtime
    does; None for half_pixel_symmetric, whose float32 order differs between ONNX Runtime's kernels)."""
    f = dtype
    o, s = np.arange(out, dtype=f), f(scale)
    if transform == "asymmetric":
        return o / s
    if transform == "tf_half_pixel_for_nn":
        return (o + f(0.5)) / s
    if transform == "align_corners":
        return np.zeros(out, f) if out == 1 else o * f(length - 1) / f(out - 1)
    if transform == "pytorch_half_pixel" and out == 1:
        return np.zeros(out, f)
    if transform == "half_pixel_symmetric":
        if dtype is np.float32:
            return None
        return (f(length) / 2) * (1 - f(out) / (s * f(length))) + (o + f(0.5)) / s - f(0.5)
    return (o + f(0.5)) / s - f(0.5)


def rounded(t: np.ndarray, nearest: str, downscale: bool) -> np.ndarray:
    """ONNX Runtime's nearest_mode functions (std::round rounds halves away from zero)."""
    t = t.astype(np.float64)
    half_away = np.sign(t) * np.floor(np.abs(t) + 0.5)
    return {"round_prefer_ceil": half_away, "floor": np.floor(t), "ceil": np.ceil(t),
            "round_prefer_floor": np.where(t == np.trunc(t) + 0.5, np.floor(t), half_away),
            "simple": np.ceil(t) if downscale else np.trunc(t)}[nearest]


# ---------------------------------------------------------------------- exact TOSA parameters
def _convergents(x: Fraction, limit: int) -> Iterator[Fraction]:
    """The continued-fraction convergents of ``x`` (simplest first) with numerator and denominator <= limit."""
    h0, h1, k0, k1 = 0, 1, 1, 0
    while True:
        a = math.floor(x)
        h0, h1, k0, k1 = h1, a * h1 + h0, k1, a * k1 + k0
        if max(h1, k1) > limit:
            return
        yield Fraction(h1, k1)
        if x == a:
            return
        x = 1 / (x - a)


def exact_scale(spec: Spec, axis: int) -> Fraction | None:
    """The scale as a fraction: output / input size when sizes define it, else the simplest fraction that
    rounds to the float32 scale (4/3 for 1.3333334)."""
    if spec.ratios[axis] is not None:
        return spec.ratios[axis]
    s = spec.scales[axis]
    return next((r for r in _convergents(Fraction(s), 1 << 16) if float(np.float32(float(r))) == s), None)


def _affine(transform: str, length: int, out: int, ratio: Fraction) -> tuple[int, int, int]:
    """(A, B, D) with the exact input position t(o) = (A·o + B) / D."""
    p, q = ratio.numerator, ratio.denominator
    if transform == "align_corners":
        return (0, 0, 1) if out == 1 else (length - 1, 0, out - 1)
    if transform == "pytorch_half_pixel" and out == 1:
        return 0, 0, 1
    return {"asymmetric": (q, 0, p), "half_pixel": (2 * q, q - p, 2 * p), "pytorch_half_pixel": (2 * q, q - p, 2 * p),
            "tf_half_pixel_for_nn": (2 * q, q, 2 * p),
            "half_pixel_symmetric": (2 * q, q * (1 - out) + p * (length - 1), 2 * p)}[transform]


def tosa_rows(plan: AxisPlan, out: int, fp32: bool) -> np.ndarray:
    """The input rows TOSA RESIZE NEAREST reads (the reference interpreter's rule; fp32 by its float fraction)."""
    pos = np.arange(out, dtype=np.int64) * plan.d + plan.offset
    base = np.floor_divide(pos, plan.n)
    if fp32:
        up = pos.astype(np.float32) / np.float32(plan.n) - base.astype(np.float32) >= np.float32(0.5)
    else:
        up = 2 * (pos - base * plan.n) >= plan.n
    row = np.where(up, np.minimum(base + 1, plan.extent - 1), np.maximum(base, 0))
    return plan.start + np.clip(row - plan.before, 0, plan.kept - 1)


def tosa_positions(plan: AxisPlan, out: int) -> np.ndarray:
    """The input position TOSA RESIZE BILINEAR reads (edge copies read as the clamped edge)."""
    pos = (np.arange(out) * plan.d + plan.offset) / plan.n - plan.before
    return plan.start + np.clip(pos, 0, plan.kept - 1)


def _fit(length: int, out: int, n: int, d: int, offset: int) -> AxisPlan | None:
    """Position ``(o·d + offset) / n`` fitted to TOSA's ranges: the fraction reduced, input rows that are never
    read cropped and edge rows copied where positions leave the input; None when impossible."""
    d = d or 1                                            # one output row, or a constant position: any d > 0
    g = math.gcd(n, d, offset)
    n, d, offset = n // g, d // g, offset // g
    if n > MAX_N or d >= 16 * n:
        return None
    first, last = offset // n, ((out - 1) * d + offset) // n
    before = max(0, -1 - first)                           # TOSA: every position >= -1
    start = min(first, length - 1) if first >= 16 else 0  # TOSA: offset < 16·n
    offset += (before - start) * n
    last += before - start
    kept = length - start
    after = max(0, last - (before + kept - 1))            # TOSA: every position < its input size
    border = (out - 1) * d + offset - (before + kept + after - 1) * n
    if border < -16 * n:                                  # TOSA: border >= -16·n: crop the rows after the last read
        kept = last + 2 - before
        border = (out - 1) * d + offset - (before + kept - 1) * n
    if not (-n <= offset < 16 * n and -16 * n <= border < n and kept >= 1):
        return None
    return AxisPlan(start, kept, before, after, n, d, offset, border)


def axis_plan(spec: Spec, axis: int, length: int, fp32: bool) -> AxisPlan:
    """Exact TOSA RESIZE parameters for one resized axis.

    NEAREST: the rows ONNX's formula picks in exact arithmetic, also required of its float32 (ONNX Runtime) and
    float64 evaluations, so that no implementation's rounding of a tie is silently overruled. LINEAR: the exact
    positions, checked against the float64 formula."""
    out, scale = spec.out_shape[axis], spec.scales[axis]
    where = (f"coordinate_transformation_mode '{spec.transform}'"
             + (f", nearest_mode '{spec.nearest}'" if spec.mode == "nearest" else "")
             + f", scale {scale:g} on axis {axis} ({length} -> {out})")
    width = Fraction(scale) * length if spec.ratios[axis] is None else Fraction(out)
    if width != out and (spec.transform, out > 1) in (("align_corners", True), ("pytorch_half_pixel", False)):
        raise UnsupportedError(f"{where}: the scaled length {float(width):g} is fractional, where ONNX Runtime "
                               f"uses the output size {out} and ONNX's reference the fractional length")
    ratio = Fraction(1) if spec.transform == "align_corners" else exact_scale(spec, axis)
    if ratio is None:
        raise UnsupportedError(f"{where}: the scale is no fraction p/q with p, q <= 65536")
    a, b, den = _affine(spec.transform, length, out, ratio)
    unchanged = UnsupportedError(f"{where}: the size does not change, where ONNX Runtime copies the input but "
                                 "ONNX's formula moves it")
    scale64 = float(spec.ratios[axis]) if spec.ratios[axis] is not None else scale
    if spec.mode == "linear":
        if out == length > 1:
            raise unchanged
        plan = _fit(length, out, den, a, b)
        if plan is None:
            raise UnsupportedError(f"{where}: TOSA RESIZE cannot express it (scale numerator <= {MAX_N}, "
                                   "downscale < 16)")
        ours = tosa_positions(plan, out)
        theirs = np.clip(float_positions(spec.transform, length, out, scale64, np.float64), 0, length - 1)
        if not np.all(np.abs(ours - theirs) <= 1e-6 * np.maximum(1.0, theirs)):
            raise UnsupportedError(f"{where}: the exact positions are not ONNX's (internal check)")
        return plan
    c = {"round_prefer_ceil": 0, "round_prefer_floor": -1, "floor": -den, "ceil": den - 1,
         "simple": den - 1 if scale < 1 else -den}[spec.nearest]
    o = np.arange(out, dtype=np.int64)
    row = np.floor_divide(2 * a * o + 2 * b + den + c, 2 * den)
    exact = np.clip(row, 0, length - 1)
    if out == length and length > 1 and not np.array_equal(exact, o):
        raise unchanged
    if spec.transform == "half_pixel_symmetric":
        # ONNX Runtime's NEAREST evaluates this transform in an order of its own: positions exactly on a rounding
        # boundary (a tie, or an integer for floor and ceil) may land on either side there.
        tie = spec.nearest.startswith("round")
        on_boundary = (2 * (a * o + b) + den) % (2 * den) == 0 if tie else (a * o + b) % den == 0
        other = np.clip(row + (np.where(row > np.floor_divide(a * o + b, den), -1, 1) if tie else
                               (1 if spec.nearest == "ceil" else -1)), 0, length - 1)
        hits = np.flatnonzero(on_boundary & (other != exact))
        if hits.size:
            raise UnsupportedError(f"{where}: output row {int(hits[0])} sits exactly on a rounding boundary, which "
                                   "floating-point evaluations of this transform decide either way")
    for name, dtype, value in (("float32 (ONNX Runtime)", np.float32, scale), ("float64", np.float64, scale64)):
        t = float_positions(spec.transform, length, out, value, dtype)
        if t is None:
            continue
        rows = np.clip(rounded(t, spec.nearest, scale < 1), 0, length - 1)
        if not np.array_equal(rows, exact):
            k = int(np.flatnonzero(rows != exact)[0])
            raise UnsupportedError(f"{where}: output row {k} is a tie that {name} rounding decides differently "
                                   f"(input row {int(rows[k])}, exactly {int(exact[k])})")
    plan = _fit(length, out, 2 * den, 2 * a, 2 * b + c)
    if plan is None or not np.array_equal(tosa_rows(plan, out, fp32), exact):
        raise UnsupportedError(f"{where}: TOSA RESIZE cannot express it (scale numerator <= {MAX_N}, "
                               "downscale < 16)")
    return plan


@dataclass(frozen=True)
class Plan:
    """One TOSA RESIZE: the ONNX axes in its [N, H, W, C] order and the parameters of H and W."""
    layout: tuple[int, ...]
    rows: AxisPlan                     # ONNX axis layout[1]
    cols: AxisPlan                     # ONNX axis layout[2]


def resized_axes(spec: Spec, shape: tuple[int, ...]) -> list[int]:
    return [a for a in range(len(shape)) if spec.scales[a] != 1 or spec.out_shape[a] != shape[a]]


def plan_for(spec: Spec, shape: tuple[int, ...], fp32: bool) -> Plan | None:
    """The TOSA RESIZE for this node (``fp32``: of float32 values); None when it changes nothing."""
    resized = resized_axes(spec, shape)
    if not resized:
        return None
    if len(shape) != 4 or len(resized) > 2:
        raise UnsupportedError(f"resizing axes {resized} of a rank-{len(shape)} tensor is not supported (TOSA "
                               "RESIZE scales two axes of a 4-D tensor)")
    pair = resized if len(resized) == 2 else [2, 3] if resized[0] in (2, 3) else [resized[0], resized[0] + 1]
    others = [a for a in range(4) if a not in pair]
    plans = [axis_plan(spec, a, shape[a], fp32) if a in resized else AxisPlan.identity(shape[a]) for a in pair]
    return Plan((others[0], pair[0], pair[1], others[1]), plans[0], plans[1])


# ---------------------------------------------------------------------- emitting
def _resize(cv: Converter, v: Value, plan: Plan, mode: ResizeMode) -> Value:
    """One RESIZE in TOSA's NHWC order, on the rows and columns each axis plan keeps and copies."""
    rows, cols = plan.rows, plan.cols
    v = cv.move(lambda x: _edges(cv, _edges(cv, x, 1, rows), 2, cols), v)
    return cv.g.resize(v, scale=(rows.n, rows.d, cols.n, cols.d), offset=(rows.offset, cols.offset),
                       border=(rows.border, cols.border), mode=mode)


def _edges(cv: Converter, v: Value, axis: int, plan: AxisPlan) -> Value:
    """SLICE the rows an axis keeps along ``axis``, and CONCAT copies (TILE) of its first and last row around them."""
    g = cv.g

    def rows(x: Value, begin: int, count: int) -> Value:
        start, size = [0] * len(x.shape), list(x.shape)
        start[axis], size[axis] = begin, count
        return g.slice(x, start, size)

    def copies(x: Value, edge: int, count: int) -> Value:
        multiples = [1] * len(x.shape)
        multiples[axis] = count
        return g.tile(rows(x, edge, 1), multiples) if count > 1 else rows(x, edge, 1)

    if (plan.start, plan.kept) != (0, v.shape[axis]):
        v = rows(v, plan.start, plan.kept)
    if not plan.before and not plan.after:
        return v
    parts = ([copies(v, 0, plan.before)] if plan.before else []) + [v] \
        + ([copies(v, v.shape[axis] - 1, plan.after)] if plan.after else [])
    return g.concat(*parts, axis=axis)


def _nearest(cv: Converter, node: onnx.NodeProto, e: Entry, plan: Plan) -> None:
    """Data movement: stored values (float, int8, uint8 as int8, int16, lazily dequantized) move unchanged."""
    v = cv.value(e, plan.layout)
    if v.dtype not in (DType.INT8, DType.UINT8, DType.INT16, DType.FP32):
        raise UnsupportedError(f"nearest Resize of {v.dtype.name} tensors is not supported (TOSA RESIZE moves "
                               "int8, int16 and float32)")
    y = cv.move(lambda x: _resize(cv, x, plan, ResizeMode.NEAREST), v)
    cv.set(node.output[0], y, plan.layout, e.quant)


def _bilinear_int8(cv: Converter, v: Value, zp: int, plan: Plan, real_scale: float, out: QOut) -> Value:
    """int8 BILINEAR sums Σ w·q exactly, with integer weights adding up to N = n_y·n_x; subtracting zp·N leaves
    Σ w·(q − zp), and one RESCALE by real_scale / N rounds it to the output (RESIZE+SUB+RESCALE fuse into one
    kernel). RESCALE rounds exact ties up where QuantizeLinear rounds them to even (the project's rounding rule,
    fixed_point.py); an exact round-half-even costs ten int32 ops that do not fuse."""
    acc = _resize(cv, v, plan, ResizeMode.BILINEAR)
    total = plan.rows.n * plan.cols.n
    if zp:
        acc = cv.g.sub(acc, cv.g.const(np.full((1, 1, 1, 1), zp * total, np.int32)))
    return cv.requantize(acc, np.array([real_scale / total]), out)


@pattern
def qdq_linear_resize(cv: Converter, node: onnx.NodeProto) -> bool:
    """DequantizeLinear → linear Resize → QuantizeLinear: int8 BILINEAR and one RESCALE (ORT's quantizer gives
    input and output one scale; different ones cost nothing more)."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("Resize", "Upsample"):
        return False
    if _text(cv.attr(node, "mode"), "nearest") != "linear":
        return False
    e = cv.entry(node, 0)
    if e is None or e.is_const or e.quant is None or e.quant.per_channel:
        return False
    plan = plan_for(read_spec(cv, node, e.shape), e.shape, fp32=False)
    if plan is None:
        return False
    out = cv.quantized_output(node)
    if out is None:
        return False
    v, zp = int8_operand(cv, e, plan.layout)
    y = _bilinear_int8(cv, v, zp, plan, float(np.float32(e.quant.s)) / float(out.quant.s), out)
    cv.set(out.name, y, plan.layout)
    return True


@handles("Resize", "Upsample")
def resize(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    spec = read_spec(cv, node, e.shape)
    resized = resized_axes(spec, e.shape)
    if not resized:
        cv.set_entry(node.output[0], e)
        return
    if e.quant is not None and (spec.mode == "linear" or e.quant.per_channel and e.quant.axis in resized):
        e = float_entry(cv, node, 0)          # linear without QuantizeLinear after it, or channels that move
    plan = plan_for(spec, e.shape, fp32=e.dtype is DType.FP32)
    if spec.mode == "nearest":
        _nearest(cv, node, e, plan)
    elif e.dtype is DType.FP32:
        cv.set(node.output[0], _resize(cv, cv.value(e, plan.layout), plan, ResizeMode.BILINEAR), plan.layout)
    elif e.dtype in (DType.INT8, DType.UINT8) and e.quant is None:
        # QOperator: Resize straight on int8/uint8 values (uint8 moved to int8 and back, exactly).
        v, shift = cv.signed(cv.value(e, plan.layout))
        unit = QOut(Quant(np.float32(1.0).reshape(()), np.int64(-shift).reshape(())), e.dtype, node.output[0])
        cv.set(node.output[0], _bilinear_int8(cv, v, 0, plan, 1.0, unit), plan.layout)
    else:
        raise UnsupportedError(f"linear Resize of {e.dtype.name} tensors is not supported (float32, and int8/uint8 "
                               "as quantized values)")

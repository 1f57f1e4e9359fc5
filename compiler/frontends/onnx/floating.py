"""Float ops and data movement.

Data-movement ops (Identity, Transpose, Reshape, Flatten, Squeeze, Unsqueeze,
MaxPool, Relu, Concat and Pad of quantized tensors) work on the stored values
whatever they are — float, integer or lazily dequantized — because they
commute with dequantization. The other ops here compute in float32 (TOSA's fp
ops): a lazily dequantized input is materialised first.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx

from tosac.errors import UnsupportedError
from tosac.frontends.onnx.converter import Converter, handles
from tosac.frontends.onnx.entries import NHWC, Entry
from tosac.frontends.onnx.quantized import crop
from tosac.frontends.onnx.spatial import window
from tosac.ir.builder import Value
from tosac.ir.dtypes import DType

FLOAT_MAX = float(np.finfo(np.float32).max)


def float_entry(cv: Converter, node: onnx.NodeProto, index: int) -> Entry | None:
    """Input ``index`` as a float32 entry (lazily dequantized inputs are materialised)."""
    e = cv.entry(node, index)
    if e is None:
        return None
    if e.quant is not None:
        e = cv.dequantize(e)
    if e.is_const and e.data.dtype != np.float32:
        if not np.issubdtype(e.data.dtype, np.floating):
            raise UnsupportedError(f"input {index} has type {e.data.dtype}, expected float")
        e = replace(e, data=e.data.astype(np.float32))
    if not e.is_const and e.dtype is not DType.FP32:
        raise UnsupportedError(f"input {index} has type {e.dtype.name}; this op is supported for float32 "
                               "(and quantized tensors between DequantizeLinear and QuantizeLinear)")
    return e


def ones(rank: int) -> tuple[int, ...]:
    return (1,) * rank


def onnx_shape(cv: Converter, node: onnx.NodeProto, e: Entry, compute) -> tuple[int, ...]:
    """The output shape of a shape-changing op: computed on a dummy array (cheap: no data)."""
    dummy = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), e.shape, [0] * e.rank)
    return tuple(int(d) for d in compute(dummy).shape)


# ---------------------------------------------------------------------- data movement
@handles("Identity")
def identity(cv: Converter, node: onnx.NodeProto) -> None:
    cv.set_entry(node.output[0], cv.entry(node, 0))


@handles("Transpose")
def transpose(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    perm = tuple(cv.attr(node, "perm", list(range(e.rank))[::-1]))
    quant = e.quant
    if quant is not None and quant.axis is not None:
        quant = replace(quant, axis=perm.index(quant.axis))
    if e.is_const:
        cv.set_entry(node.output[0], Entry(tuple(e.shape[p] for p in perm), data=np.transpose(e.data, perm),
                                           quant=quant))
        return
    layout = tuple(perm.index(p) for p in e.perm)      # stored axis j holds output axis layout[j]
    cv.set(node.output[0], e.value, layout, quant)


def _reshape_to(cv: Converter, node: onnx.NodeProto, e: Entry, shape: tuple[int, ...]) -> None:
    if e.quant is not None and e.quant.per_channel:
        e = cv.dequantize(e)
    if e.is_const:
        cv.set_entry(node.output[0], replace(e, data=e.data.reshape(shape), shape=shape))
        return
    cv.set(node.output[0], cv.reshape_onnx(e, shape), None, e.quant)


@handles("Reshape")
def reshape(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    target = [int(d) for d in cv.const(node, 1, "shape")]
    if not cv.attr(node, "allowzero", 0):
        target = [e.shape[i] if d == 0 else d for i, d in enumerate(target)]
    _reshape_to(cv, node, e, onnx_shape(cv, node, e, lambda a: a.reshape(target)))


@handles("Flatten")
def flatten(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    axis = int(cv.attr(node, "axis", 1))
    axis = axis + e.rank if axis < 0 else axis
    _reshape_to(cv, node, e, (int(np.prod(e.shape[:axis])), int(np.prod(e.shape[axis:]))))


@handles("Squeeze")
def squeeze(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    axes = cv.const(node, 1, "axes")
    axes = tuple(int(a) % e.rank for a in axes) if axes is not None else None
    _reshape_to(cv, node, e, onnx_shape(cv, node, e, lambda a: np.squeeze(a, axis=axes)))


@handles("Unsqueeze")
def unsqueeze(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    axes = sorted(int(a) % (e.rank + len(cv.const(node, 1, "axes"))) for a in cv.const(node, 1, "axes"))
    shape = list(e.shape)
    for a in axes:
        shape.insert(a, 1)
    _reshape_to(cv, node, e, tuple(shape))


@handles("Concat")
def concat(cv: Converter, node: onnx.NodeProto) -> None:
    entries = [cv.entry(node, i) for i in range(len(node.input))]
    axis = int(cv.attr(node, "axis"))
    quants = [e.quant for e in entries]
    if any(q is not None for q in quants) and not all(q is not None and not q.per_channel
                                                      and q.same_as(quants[0]) for q in quants):
        entries = [float_entry(cv, node, i) for i in range(len(node.input))]
    entries, layout = cv.common_layout(entries)
    values = [cv.value(e, layout) for e in entries]
    axis = layout.index(axis % len(layout))
    cv.set(node.output[0], cv.move(lambda *vs: cv.g.concat(*vs, axis=axis), *values), layout, entries[0].quant)


def _per_tensor_along(cv: Converter, node: onnx.NodeProto, e: Entry, axes) -> Entry:
    """``e``, dequantized when its quantization is per channel along one of ``axes`` (ONNX axes an op tiles
    or cuts, which the channel scales would no longer line up with)."""
    if e.quant is not None and e.quant.per_channel and e.quant.axis in axes:
        return float_entry(cv, node, 0)
    return e


@handles("Tile")
def tile(cv: Converter, node: onnx.NodeProto) -> None:
    """TOSA TILE in the stored layout (Keras UpSampling2D exports as Tile + Reshape); quantization passes through
    unless a per-channel axis is repeated."""
    e = cv.entry(node, 0)
    repeats = [int(r) for r in cv.const(node, 1, "repeats")]
    if len(repeats) != e.rank or min(repeats) < 1:
        raise UnsupportedError(f"repeats {repeats} must give a positive count for each of the {e.rank} axes")
    cv.set_entry(node.output[0], tiled(cv, node, e, repeats))


def tiled(cv: Converter, node: onnx.NodeProto, e: Entry, repeats: list[int]) -> Entry:
    """``e`` repeated ``repeats[a]`` times along each ONNX axis ``a`` (TOSA TILE in the stored layout)."""
    if e.is_const:
        data = np.tile(e.data, repeats)
        return replace(e, data=data, shape=data.shape)
    e = _per_tensor_along(cv, node, e, [a for a, r in enumerate(repeats) if r != 1])
    if all(r == 1 for r in repeats):
        return e
    stored = [repeats[axis] for axis in e.perm]
    value = cv.move(lambda v: cv.g.tile(v, stored), cv.value(e))
    return Entry(tuple(d * r for d, r in zip(e.shape, repeats)), value=value, layout=e.layout, quant=e.quant)


def _slice_axes(cv: Converter, node: onnx.NodeProto, e: Entry, bounds: dict[int, tuple[int, int]]) -> Entry:
    """``e`` restricted to ``bounds`` (ONNX axis -> [begin, end)) with TOSA SLICE in the stored layout; a
    per-channel quantization whose axis is cut is dequantized first."""
    if e.is_const:
        index = tuple(slice(*bounds[a]) if a in bounds else slice(None) for a in range(e.rank))
        data = e.data[index]
        return replace(e, data=data, shape=data.shape)
    e = _per_tensor_along(cv, node, e, bounds)
    start = [bounds.get(a, (0, e.shape[a]))[0] for a in e.perm]
    size = [bounds[a][1] - bounds[a][0] if a in bounds else e.shape[a] for a in e.perm]
    value = cv.move(lambda v: cv.g.slice(v, start, size), cv.value(e))
    shape = list(e.shape)
    for a, (begin, end) in bounds.items():
        shape[a] = end - begin
    return Entry(tuple(shape), value=value, layout=e.layout, quant=e.quant)


@handles("Slice")
def slice_(cv: Converter, node: onnx.NodeProto) -> None:
    """Constant starts/ends/axes with step 1 (negative and out-of-range bounds clamped as ONNX says)."""
    e = cv.entry(node, 0)
    starts, ends = (cv.const(node, i, what) for i, what in ((1, "starts"), (2, "ends")))
    axes = cv.const(node, 3, "axes", default=range(len(starts)))
    steps = cv.const(node, 4, "steps", default=[1] * len(starts))
    bounds = {}
    for begin, end, axis, step in zip(starts, ends, axes, steps):
        if int(step) != 1:
            raise UnsupportedError(f"steps {[int(s) for s in steps]}: only step 1 is supported")
        axis = int(axis) % e.rank
        begin, end, _ = slice(int(begin), int(end)).indices(e.shape[axis])
        if end <= begin:
            raise UnsupportedError(f"Slice gives an empty tensor along axis {axis}")
        bounds[axis] = (begin, end)
    cv.set_entry(node.output[0], _slice_axes(cv, node, e, bounds))


@handles("Split")
def split(cv: Converter, node: onnx.NodeProto) -> None:
    """Split sizes from the ``split`` input (or attribute before opset 13), else equal parts."""
    e = cv.entry(node, 0)
    axis = int(cv.attr(node, "axis", 0)) % e.rank
    sizes = cv.const(node, 1, "split") if len(node.input) > 1 and node.input[1] else cv.attr(node, "split")
    if sizes is None:
        parts = int(cv.attr(node, "num_outputs", len(node.output)))
        chunk = -(-e.shape[axis] // parts)
        sizes = [min(chunk, e.shape[axis] - k * chunk) for k in range(parts)]
    sizes = [int(n) for n in sizes]
    if sum(sizes) != e.shape[axis] or len(sizes) != len(node.output) or min(sizes) < 1:
        raise UnsupportedError(f"split sizes {sizes} do not cut axis {axis} of size {e.shape[axis]} "
                               f"into {len(node.output)} non-empty parts")
    begin = 0
    for name, size in zip(node.output, sizes):
        cv.set_entry(name, _slice_axes(cv, node, e, {axis: (begin, begin + size)}))
        begin += size


@handles("Pad")
def pad(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    mode = cv.attr(node, "mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise UnsupportedError(f"Pad mode '{mode}' (only 'constant' is supported)")
    pads = [int(p) for p in cv.const(node, 1, "pads")]
    fill = cv.const(node, 2, "constant_value", 0)
    axes = cv.const(node, 3, "axes")
    axes = [int(a) % e.rank for a in axes] if axes is not None else list(range(e.rank))
    if min(pads) < 0:
        raise UnsupportedError("negative pads are not supported")
    fill = float(np.asarray(fill).reshape(-1)[0]) if np.size(fill) else 0.0
    if e.quant is not None:
        q = e.quant
        on_grid = not q.per_channel and np.rint(fill / q.s) * q.s == fill
        if not on_grid:
            e = float_entry(cv, node, 0)
    begin, end = [0] * e.rank, [0] * e.rank
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[len(axes) + i]
    v = e.value if not e.is_const else cv.value(e)
    padding = []
    for a in e.perm:
        padding += [begin[a], end[a]]
    if e.quant is not None:
        v, shift = cv.signed(v)
        value = int(np.rint(fill / e.quant.s)) + e.quant.zp + shift
        y = cv.g.pad(v, padding, pad_const=value)
        y = cv.unsigned(y) if shift else y
    else:
        y = cv.g.pad(v, padding, pad_const=fill if v.dtype.is_float else int(fill))
    cv.set(node.output[0], y, e.perm, e.quant)


@handles("MaxPool")
def max_pool(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedError("MaxPool's Indices output is not supported")
    if e.rank != 4:
        raise UnsupportedError("only 2-D MaxPool (NCHW input) is supported")
    if e.quant is not None and e.quant.per_channel:
        e = cv.dequantize(e)
    v, shift = cv.signed(cv.value(e, NHWC))
    win = window(node, cv.attr, (v.shape[1], v.shape[2]), ceil_mode_ok=True)
    if win.dilation != (1, 1):
        raise UnsupportedError("MaxPool with dilations is not supported")
    if max(win.pad[:2]) >= win.kernel[0] or max(win.pad[2:]) >= win.kernel[1]:
        raise UnsupportedError(f"MaxPool padding {list(win.pad)} must be smaller than the kernel (TOSA)")
    if v.dtype not in (DType.INT8, DType.INT16, DType.FP32):
        raise UnsupportedError(f"MaxPool of {v.dtype.name} is not supported")
    y = cv.g.max_pool2d(crop(cv, v, win.crop), kernel=win.kernel, stride=win.stride, pad=win.pad)
    cv.set(node.output[0], cv.unsigned(y) if shift else y, NHWC, e.quant)


@handles("Relu")
def relu(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    if e.quant is not None and not e.quant.per_channel and not e.is_const:
        v, shift = cv.signed(e.value)
        y = cv.g.clamp(v, min_val=int(np.clip(e.quant.zp + shift, -128, 127)), max_val=127)
        cv.set(node.output[0], cv.unsigned(y) if shift else y, e.perm, e.quant)
        return
    if e.dtype.is_int and e.quant is None and not e.is_const:
        v, shift = cv.signed(e.value)
        y = cv.g.clamp(v, min_val=max(0 + shift, v.dtype.min), max_val=v.dtype.max)
        cv.set(node.output[0], cv.unsigned(y) if shift else y, e.perm)
        return
    clip_float(cv, node, 0.0, FLOAT_MAX)


@handles("Clip")
def clip(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    if e.quant is None and not e.is_const and e.dtype in (DType.INT8, DType.INT16):
        lo = int(cv.const(node, 1, "min", e.dtype.min))
        hi = int(cv.const(node, 2, "max", e.dtype.max))
        lo = min(lo, hi)                                  # min > max: every value becomes max (ONNX)
        cv.set(node.output[0], cv.g.clamp(e.value, min_val=lo, max_val=hi), e.perm)
        return
    lo = float(cv.const(node, 1, "min", -FLOAT_MAX))
    hi = float(cv.const(node, 2, "max", FLOAT_MAX))
    clip_float(cv, node, min(lo, hi), hi)


def clip_float(cv: Converter, node: onnx.NodeProto, lo: float, hi: float) -> None:
    e = float_entry(cv, node, 0)
    cv.set(node.output[0], cv.g.clamp(cv.value(e), min_val=lo, max_val=hi), e.perm)


# ---------------------------------------------------------------------- float arithmetic
_PLAIN_INTS = (DType.INT8, DType.INT16, DType.INT32, DType.UINT8)


def _operands(cv: Converter, node: onnx.NodeProto,
              indices: tuple[int, ...] = (0, 1)) -> tuple[list[Value], tuple[int, ...], DType | None]:
    """The inputs in a common layout: float32, or (when all are plain integers of one type) int32, exactly;
    the integer type they had, or None for float."""
    entries, dtype = _typed(cv, node, indices)
    entries, layout = cv.common_layout(entries)
    values = [cv.value(e, layout) for e in entries]
    return [cv.int32(v) for v in values] if dtype else values, layout, dtype


def _typed(cv: Converter, node: onnx.NodeProto, indices: tuple[int, ...]) -> tuple[list[Entry], DType | None]:
    """The inputs as they are when all are plain integers of one type (and that type), else as float32."""
    raw = [cv.entry(node, i) for i in indices]
    if all(e.quant is None and e.dtype in _PLAIN_INTS and e.dtype is raw[0].dtype for e in raw):
        return raw, raw[0].dtype
    return [float_entry(cv, node, i) for i in indices], None


def _binary(cv: Converter, node: onnx.NodeProto, op: str) -> None:
    """Float32 arithmetic, or integer arithmetic that wraps as C's does (computed in int32, wrapped back)."""
    (a, b), layout, dtype = _operands(cv, node)
    y = cv.g.mul(a, b) if op == "MUL" else cv.g.op(op, [a, b])
    cv.set(node.output[0], cv.wrapped(y, dtype) if dtype is not None else y, layout)


for _onnx, _tosa in (("Add", "ADD"), ("Sub", "SUB"), ("Mul", "MUL")):
    handles(_onnx)(lambda cv, node, _op=_tosa: _binary(cv, node, _op))


@handles("Max", "Min")
def extremum(cv: Converter, node: onnx.NodeProto) -> None:
    """Element-wise max/min of any number of float32 or same-type integer inputs (exact in int32)."""
    values, layout, dtype = _operands(cv, node, tuple(range(len(node.input))))
    op = "MAXIMUM" if node.op_type == "Max" else "MINIMUM"
    y = values[0]
    for v in values[1:]:
        y = cv.g.op(op, [y, v])
    cv.set(node.output[0], cv.wrapped(y, dtype) if dtype is not None else y, layout)


@handles("Mod")
def mod(cv: Converter, node: onnx.NodeProto) -> None:
    """Integer remainder: with fmod=1 the sign of the dividend (C's %), else the divisor's (Python's %)."""
    (a, b), layout, dtype = _operands(cv, node)
    if dtype is None:
        raise UnsupportedError("Mod of floats is not supported (integer Mod is)")
    g = cv.g
    remainder = g.sub(a, g.mul(g.intdiv(a, b), b))
    if not cv.attr(node, "fmod", 0):
        zero = g.const(np.zeros((1,) * len(layout), np.int32))
        differs = g.logical_and(g.logical_not(g.equal(remainder, zero)),
                                g.logical_xor(g.greater(zero, remainder), g.greater(zero, b)))
        remainder = g.select(differs, g.add(remainder, b), remainder)
    cv.set(node.output[0], cv.wrapped(remainder, dtype), layout)

# ONNX comparison -> (TOSA op, operands swapped): a < b is b > a.
_COMPARISONS = {"Greater": ("GREATER", False), "Less": ("GREATER", True), "GreaterOrEqual": ("GREATER_EQUAL", False),
                "LessOrEqual": ("GREATER_EQUAL", True), "Equal": ("EQUAL", False)}


@handles(*_COMPARISONS)
def compare(cv: Converter, node: onnx.NodeProto) -> None:
    """A bool tensor from float32 or signed integer inputs (compared exactly, in int32)."""
    op, swapped = _COMPARISONS[node.op_type]
    (a, b), layout, _ = _operands(cv, node)
    cv.set(node.output[0], cv.g.op(op, [b, a] if swapped else [a, b]), layout)


@handles("Not")
def logical_not(cv: Converter, node: onnx.NodeProto) -> None:
    e = cv.entry(node, 0)
    if e.dtype is not DType.BOOL:
        raise UnsupportedError(f"Not needs a bool input, got {e.dtype.name}")
    cv.set(node.output[0], cv.g.op("LOGICAL_NOT", [cv.value(e)]), e.perm)


@handles("Where")
def where(cv: Converter, node: onnx.NodeProto) -> None:
    """SELECT(condition, x, y) on float32 values (a quantized x or y is dequantized) or same-type integers."""
    condition = cv.entry(node, 0)
    if condition.dtype is not DType.BOOL:
        raise UnsupportedError(f"Where needs a bool condition, got {condition.dtype.name}")
    choices, dtype = _typed(cv, node, (1, 2))
    entries, layout = cv.common_layout([condition, *choices])
    condition, x, y = (cv.value(e, layout) for e in entries)
    if dtype is not None:
        x, y = cv.int32(x), cv.int32(y)
    picked = cv.g.select(condition, x, y)
    cv.set(node.output[0], cv.wrapped(picked, dtype) if dtype is not None else picked, layout)


def _unary(tosa_op: str):
    def handler(cv: Converter, node: onnx.NodeProto) -> None:
        e = float_entry(cv, node, 0)
        cv.set(node.output[0], cv.g.op(tosa_op, [cv.value(e)]), e.perm)
    return handler


for _onnx, _tosa in (("Sigmoid", "SIGMOID"), ("Tanh", "TANH"), ("Exp", "EXP"), ("Log", "LOG"), ("Abs", "ABS"),
                     ("Reciprocal", "RECIPROCAL"), ("Erf", "ERF"), ("Floor", "FLOOR"), ("Ceil", "CEIL"),
                     ("Sin", "SIN"), ("Cos", "COS")):
    handles(_onnx)(_unary(_tosa))


@handles("Sqrt")
def sqrt(cv: Converter, node: onnx.NodeProto) -> None:
    """1 / RSQRT(x): TOSA has no SQRT; exact at 0 and infinity, NaN below 0 as ONNX says."""
    e = float_entry(cv, node, 0)
    cv.set(node.output[0], cv.g.reciprocal(cv.g.rsqrt(cv.value(e))), e.perm)


@handles("Div")
def div(cv: Converter, node: onnx.NodeProto) -> None:
    """Float x / y as x · RECIPROCAL(y) (TOSA has no float division; within an ulp of IEEE division, exact for a
    power-of-two divisor); signed integers divide truncating toward zero (TOSA INTDIV), as ONNX Runtime does."""
    (a, b), layout, dtype = _operands(cv, node)
    g = cv.g
    y = g.mul(a, g.reciprocal(b)) if dtype is None else cv.wrapped(g.intdiv(a, b), dtype)
    cv.set(node.output[0], y, layout)


@handles("Pow")
def pow_(cv: Converter, node: onnx.NodeProto) -> None:
    """Float x ** y: a constant exponent 1, 2 or 3 as multiplications and 0.5 as Sqrt (what exported LayerNorm
    and GELU use; exact for negative x, unlike TOSA POW, which is undefined there); TOSA POW otherwise."""
    exponent = cv.entry(node, 1)
    if exponent.is_const and exponent.quant is None and exponent.data.size == 1:
        power = float(exponent.data.reshape(-1)[0])
        if power in (1.0, 2.0, 3.0, 0.5):
            e = float_entry(cv, node, 0)
            x, g = cv.value(e), cv.g
            y = {1.0: lambda: x, 2.0: lambda: g.mul(x, x), 3.0: lambda: g.mul(g.mul(x, x), x),
                 0.5: lambda: g.reciprocal(g.rsqrt(x))}[power]()
            cv.set(node.output[0], y, e.perm)
            return
    (a, b), layout, dtype = _operands(cv, node)
    if dtype is not None:
        raise UnsupportedError("Pow of integers is not supported")
    cv.set(node.output[0], cv.g.pow(a, b), layout)


@handles("Gelu")
def gelu(cv: Converter, node: onnx.NodeProto) -> None:
    """Opset 20's Gelu: 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation."""
    e = float_entry(cv, node, 0)
    g, x, ones_ = cv.g, cv.value(e), ones(e.rank)

    def scalar(v: float) -> Value:
        return g.const(np.full(ones_, v, np.float32))

    approximate = cv.attr(node, "approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate == "none":
        inner = g.erf(g.mul(x, scalar(1 / np.sqrt(2))))
    elif approximate == "tanh":
        cubic = g.add(x, g.mul(scalar(0.044715), g.mul(g.mul(x, x), x)))
        inner = g.tanh(g.mul(scalar(np.sqrt(2 / np.pi)), cubic))
    else:
        raise UnsupportedError(f"attribute approximate='{approximate}' (none and tanh are defined)")
    cv.set(node.output[0], g.mul(g.mul(x, scalar(0.5)), g.add(inner, scalar(1.0))), e.perm)


@handles("Round")
def round_(cv: Converter, node: onnx.NodeProto) -> None:
    """Round half to even (TOSA CAST to int32 rounds so); values of 2^23 and above are whole already."""
    e = float_entry(cv, node, 0)
    g, x = cv.g, cv.value(e)
    whole = g.greater_equal(g.abs(x), g.const(np.full(ones(e.rank), 2.0 ** 23, np.float32)))
    cv.set(node.output[0], g.select(whole, x, g.cast(g.cast(x, DType.INT32), DType.FP32)), e.perm)


@handles("Neg")
def neg(cv: Converter, node: onnx.NodeProto) -> None:
    e = float_entry(cv, node, 0)
    cv.set(node.output[0], cv.g.negate(cv.value(e)), e.perm)


@handles("LeakyRelu")
def leaky_relu(cv: Converter, node: onnx.NodeProto) -> None:
    e = float_entry(cv, node, 0)
    x, g = cv.value(e), cv.g
    alpha = g.const(np.full(ones(e.rank), cv.attr(node, "alpha", 0.01), np.float32))
    zero = g.const(np.zeros(ones(e.rank), np.float32))
    cv.set(node.output[0], g.select(g.greater_equal(x, zero), x, g.mul(x, alpha)), e.perm)


def _hard_sigmoid(cv: Converter, x, rank: int, alpha: float, beta: float):
    """max(0, min(1, alpha * x + beta)) in fp32, as ONNX defines it."""
    g = cv.g
    scaled = g.add(g.mul(x, g.const(np.full(ones(rank), alpha, np.float32))),
                   g.const(np.full(ones(rank), beta, np.float32)))
    return g.clamp(scaled, min_val=0.0, max_val=1.0)


@handles("HardSigmoid")
def hard_sigmoid(cv: Converter, node: onnx.NodeProto) -> None:
    e = float_entry(cv, node, 0)
    y = _hard_sigmoid(cv, cv.value(e), e.rank, cv.attr(node, "alpha", 0.2), cv.attr(node, "beta", 0.5))
    cv.set(node.output[0], y, e.perm)


@handles("HardSwish")
def hard_swish(cv: Converter, node: onnx.NodeProto) -> None:
    """x * HardSigmoid(x) with alpha = 1/6, beta = 1/2 (MobileNetV3's activation)."""
    e = float_entry(cv, node, 0)
    x = cv.value(e)
    cv.set(node.output[0], cv.g.mul(x, _hard_sigmoid(cv, x, e.rank, 1 / 6, 0.5)), e.perm)


_REDUCTIONS = {"ReduceMean": "REDUCE_SUM", "ReduceSum": "REDUCE_SUM", "ReduceMax": "REDUCE_MAX",
               "ReduceMin": "REDUCE_MIN"}


@handles(*_REDUCTIONS)
def reduce(cv: Converter, node: onnx.NodeProto) -> None:
    """ReduceMean/Sum/Max/Min over any axes (attribute, or input from opset 18), keepdims or not, in fp32."""
    e = float_entry(cv, node, 0)
    axes = cv.const(node, 1, "axes") if len(node.input) > 1 and node.input[1] else cv.attr(node, "axes")
    if axes is None or len(axes) == 0:
        if cv.attr(node, "noop_with_empty_axes", 0):
            cv.set(node.output[0], cv.value(e), e.perm)
            return
        axes = range(e.rank)
    axes = sorted({int(a) % e.rank for a in axes})
    g, y = cv.g, cv.value(e)
    for axis in axes:
        y = g.op(_REDUCTIONS[node.op_type], [y], axis=e.stored_axis(axis))
    if node.op_type == "ReduceMean":
        count = int(np.prod([e.shape[a] for a in axes]))
        y = g.mul(y, g.const(np.full(ones(e.rank), 1 / count, np.float32)))
    kept = cv.set(node.output[0], y, e.perm)
    if not cv.attr(node, "keepdims", 1):
        shape = tuple(d for i, d in enumerate(e.shape) if i not in axes)
        cv.set(node.output[0], cv.reshape_onnx(kept, shape))


@handles("Softmax")
def softmax(cv: Converter, node: onnx.NodeProto) -> None:
    e = float_entry(cv, node, 0)
    axis = e.stored_axis(int(cv.attr(node, "axis", -1)))
    g, x = cv.g, cv.value(e)
    ex = g.exp(g.sub(x, g.reduce_max(x, axis=axis)))
    cv.set(node.output[0], g.mul(ex, g.reciprocal(g.reduce_sum(ex, axis=axis))), e.perm)


@handles("Conv")
def conv(cv: Converter, node: onnx.NodeProto) -> None:
    x, w, b = float_entry(cv, node, 0), float_entry(cv, node, 1), float_entry(cv, node, 2)
    if x.rank != 4:
        raise UnsupportedError("only 2-D convolution (NCHW input) is supported")
    g = cv.g
    xv = cv.value(x, NHWC)
    n, h, wd, c = xv.shape
    o, per_group, kh, kw = w.shape
    group = int(cv.attr(node, "group", 1))
    win = window(node, cv.attr, (h, wd), (kh, kw))
    xv = crop(cv, xv, win.crop)
    bias = b.data if b is not None and b.is_const else np.zeros(o, np.float32)
    args = dict(pad=win.pad, stride=win.stride, dilation=win.dilation, acc_type=DType.FP32,
                input_zp=np.float32(0), weight_zp=np.float32(0))
    if group == 1:
        y = g.conv2d(xv, cv.value(w, (0, 2, 3, 1)), bias, **args)
    elif group == c and per_group == 1:
        wt = g.transpose(g.reshape(cv.onnx_order(w), (c, o // c, kh, kw)), perms=(2, 3, 0, 1))
        y = g.depthwise_conv2d(xv, wt, bias, **args)
    else:
        raise UnsupportedError(f"grouped convolution with group={group} (only 1 and depthwise are supported)")
    if b is not None and not b.is_const:
        y = g.add(y, g.reshape(cv.value(b), (1, 1, 1, o)))
    cv.set(node.output[0], y, NHWC)


def _float_matmul(cv: Converter, a: Value, b: Value) -> Value:
    """float a [..., M, K] @ b [..., K, N] with equal batch or 2-D b."""
    g = cv.g
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    if batch_b and batch_a != batch_b:
        raise UnsupportedError(f"MatMul broadcasting {list(a.shape)} @ {list(b.shape)} is not supported")
    rows = int(np.prod(a.shape[:-1]))
    if not batch_b:
        y = g.matmul(g.reshape(a, (1, rows, k)), g.reshape(b, (1, k, n)),
                     a_zp=np.float32(0), b_zp=np.float32(0))
    else:
        nb = int(np.prod(batch_a))
        y = g.matmul(g.reshape(a, (nb, m, k)), g.reshape(b, (nb, k, n)), a_zp=np.float32(0), b_zp=np.float32(0))
    return g.reshape(y, tuple(a.shape[:-1]) + (n,))


@handles("MatMul")
def matmul(cv: Converter, node: onnx.NodeProto) -> None:
    a, b = float_entry(cv, node, 0), float_entry(cv, node, 1)
    av, bv = cv.onnx_order(a), cv.onnx_order(b)
    if a.rank == 1:                                  # numpy rules: a vector is a row (or column) matrix
        av = cv.g.reshape(av, (1, a.shape[0]))
    if b.rank == 1:
        bv = cv.g.reshape(bv, (b.shape[0], 1))
    if a.rank == 1 and b.rank > 2:
        av = cv.g.reshape(av, (1,) * (b.rank - 1) + (a.shape[0],))
    y = _float_matmul(cv, av, bv)
    shape = np.matmul(np.empty(a.shape, np.int8), np.empty(b.shape, np.int8)).shape
    cv.set(node.output[0], y if tuple(y.shape) == shape else cv.g.reshape(y, shape))


@handles("Gemm")
def gemm(cv: Converter, node: onnx.NodeProto) -> None:
    a, b, c = float_entry(cv, node, 0), float_entry(cv, node, 1), float_entry(cv, node, 2)
    g = cv.g
    av, bv = cv.onnx_order(a), cv.onnx_order(b)
    if cv.attr(node, "transA", 0):
        av = g.transpose(av, perms=(1, 0))
    if cv.attr(node, "transB", 0):
        bv = g.transpose(bv, perms=(1, 0))
    y = _float_matmul(cv, av, bv)
    alpha, beta = np.float32(cv.attr(node, "alpha", 1.0)), np.float32(cv.attr(node, "beta", 1.0))
    if alpha != 1:
        y = g.mul(y, g.const(np.full((1, 1), alpha, np.float32)))
    if c is not None:
        c = cv.to_rank(c, 2)
        cv_c = cv.onnx_order(c) if not c.is_const else g.const(c.data * beta if beta != 1 else c.data)
        if beta != 1 and not c.is_const:
            cv_c = g.mul(cv_c, g.const(np.full((1, 1), beta, np.float32)))
        y = g.add(y, cv_c)
    cv.set(node.output[0], y)


def _avg_pool(cv: Converter, node: onnx.NodeProto, global_pool: bool) -> None:
    e = float_entry(cv, node, 0)
    if e.rank != 4:
        raise UnsupportedError("only 2-D pooling (NCHW input) is supported")
    g = cv.g
    v = cv.value(e, NHWC)
    if global_pool:
        n, h, w, c = v.shape
        total = g.reshape(g.reduce_sum(g.reshape(v, (n, h * w, c)), axis=1), (n, 1, 1, c))
        y = g.mul(total, g.const(np.full((1, 1, 1, 1), 1.0 / (v.shape[1] * v.shape[2]), np.float32)))
        cv.set(node.output[0], y, NHWC)
        return
    win = window(node, cv.attr, (v.shape[1], v.shape[2]),
                 ceil_mode_ok=not cv.attr(node, "count_include_pad", 0))  # ceil padding is not counted
    if win.dilation != (1, 1):
        raise UnsupportedError("AveragePool with dilations is not supported")
    v, pad = crop(cv, v, win.crop), win.pad
    if cv.attr(node, "count_include_pad", 0) and any(pad):
        v = g.pad(v, (0, 0, pad[0], pad[1], pad[2], pad[3], 0, 0), pad_const=np.float32(0))
        pad = (0, 0, 0, 0)
    y = g.avg_pool2d(v, kernel=win.kernel, stride=win.stride, pad=pad, input_zp=np.float32(0),
                     output_zp=np.float32(0))
    cv.set(node.output[0], y, NHWC)


handles("AveragePool")(lambda cv, node: _avg_pool(cv, node, False))
handles("GlobalAveragePool")(lambda cv, node: _avg_pool(cv, node, True))

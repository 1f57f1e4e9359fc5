"""Data movement that copies quantized values unchanged (int8, and int16 with zero point 0).

The reference kernels of RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, PACK, UNPACK,
SPLIT, SPLIT_V, CONCATENATION and PAD/PADV2 move raw integers (``memcpy`` and
index loops), so each becomes the TOSA data-layout op with the same index
mapping (RESHAPE, TRANSPOSE, SLICE, CONCAT, PAD) and is exact by construction.
Quantization: TFLite's int8 CONCATENATION Prepare requires every input's scale
and zero point to equal the output's — no requantizing kernel serves int8
(``ConcatenationWithScaling`` is the uint8 path; measured: LiteRT 2.3 refuses an
int8 input of another scale, and copies int16 inputs of other scales raw);
EXPAND_DIMS checks the same, PACK/UNPACK the zero points, and the converter writes
equal parameters for the rest. A tensor quantized differently from the data it
copies is refused here (UnsupportedError), never given a meaning.

PAD fills with the output zero point; PADV2's ``constant_values`` (same type and
quantization as the output, TFLite checks) is the fill, a constant or a run-time
value (TOSA PAD's ``pad_const`` operand).

Constant index operands (axes, sizes, paddings, permutations) are read at import;
a non-constant one is UnsupportedError, a value TFLite's Prepare would reject
(an axis out of range, sizes not adding up) FrontendError naming the operator.
:func:`take` (TOSA GATHER by import-time indices along one axis) serves the
slicing and resize modules.
"""
from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.converter import TYPE_NAMES, Converter, handles, opt
from tosac.frontends.tflite.reader import OpDef
from tosac.ir.builder import GraphBuilder, Value

#: The TFLite types the data-movement operators accept (int16 needs zero point 0: Converter.quant).
DATA = (TensorType.INT8, TensorType.INT16)
INDEX = (TensorType.INT32, TensorType.INT64)


def counts(cv: Converter, op: OpDef, inputs: tuple[int, int], outputs: int | None = 1) -> None:
    """``inputs`` = (min, max) input count; ``outputs`` the exact output count (None: at least one)."""
    lo, hi = inputs
    if not lo <= len(op.inputs) <= hi or (len(op.outputs) != outputs if outputs else not op.outputs):
        raise FrontendError(f"{cv.where(op)}: {len(op.inputs)} inputs and {len(op.outputs)} outputs")


def same_quant(cv: Converter, op: OpDef, src: int) -> int:
    """Check that every output is int8 or int16 and has tensor ``src``'s type and quantization; returns that
    TFLite type."""
    outs = [cv.out_int8(op, k, allowed=DATA) for k in range(len(op.outputs))]
    ttype = cv.t(outs[0]).type
    if cv.t(src).type != ttype:
        raise UnsupportedError(f"{cv.where(op)}: tensor {src} is {TYPE_NAMES.get(cv.t(src).type)}, the output "
                               f"{TYPE_NAMES[ttype]}")
    q = cv.quant(src, op)
    for o in outs:
        if cv.quant(o, op) != q:
            raise UnsupportedError(f"{cv.where(op)}: tensor {src} (scale, zero point) {q} differs from output "
                                   f"tensor {o}'s {cv.quant(o, op)}; this data movement does not requantize")
    return ttype


def moved(cv: Converter, op: OpDef, src: int) -> Value:
    """Input tensor ``src`` as a value, checked by :func:`same_quant`."""
    return cv.value(src, op, same_quant(cv, op, src))


def const_ints(cv: Converter, op: OpDef, k: int, what: str, types: tuple[int, ...] = INDEX) -> np.ndarray:
    """Input ``k`` (``what``: "axis", "paddings", ...) as an int64 array; it must be a constant of ``types``."""
    if k >= len(op.inputs) or op.inputs[k] < 0:
        raise FrontendError(f"{cv.where(op)}: the {what} input is absent")
    t = cv.t(op.inputs[k])
    if t.type not in types:
        raise UnsupportedError(f"{cv.where(op)}: the {what} input is {TYPE_NAMES.get(t.type, t.type)}, expected "
                               f"{' or '.join(TYPE_NAMES[k] for k in types)}")
    if t.data is None:
        raise UnsupportedError(f"{cv.where(op)}: the {what} input must be a constant (run-time {what} is not "
                               "supported)")
    return cv.const_array(op.inputs[k], op).astype(np.int64)


def axis_in(cv: Converter, op: OpDef, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in ``[-rank, rank)`` made non-negative, else FrontendError."""
    if not -rank <= axis < rank:
        raise FrontendError(f"{cv.where(op)}: {what} {axis} is out of range for rank {rank}")
    return axis % rank


def reshaped(g: GraphBuilder, x: Value, shape: tuple[int, ...] | list[int]) -> Value:
    return x if tuple(shape) == tuple(x.shape) else g.reshape(x, list(shape))


def take(g: GraphBuilder, x: Value, axis: int, indices: np.ndarray) -> Value:
    """``x`` indexed along ``axis`` by constant ``indices`` (0 <= i < x.shape[axis]): ``[W]`` for every leading
    position, or ``[prod(x.shape[:axis]), W]`` one row per leading position. SLICE when the indices are one
    ascending run, else TOSA GATHER on ``x`` seen as ``[outer, K, inner]``."""
    shape = list(x.shape)
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1:], dtype=np.int64))
    idx = np.asarray(indices, np.int64)
    w = idx.shape[-1]
    if np.all(idx == idx.reshape(-1)[0] + np.arange(w)):
        if w == shape[axis]:
            return x
        start = [0] * len(shape)
        start[axis] = int(idx.reshape(-1)[0])
        return g.slice(x, start, shape[:axis] + [w] + shape[axis + 1:])
    rows = np.broadcast_to(idx.reshape(-1, w), (outer, w)).astype(np.int32)
    out = g.gather(reshaped(g, x, (outer, shape[axis], inner)), g.const(np.ascontiguousarray(rows)))
    return reshaped(g, out, shape[:axis] + [w] + shape[axis + 1:])


def split_at(g: GraphBuilder, x: Value, axis: int, sizes: list[int]) -> list[Value]:
    """Consecutive SLICEs of ``sizes`` along ``axis``."""
    parts, start = [], 0
    for n in sizes:
        parts.append(take(g, x, axis, np.arange(start, start + n)))
        start += n
    return parts


# ------------------------------------------------------------------ reshapes
@handles("RESHAPE", "SQUEEZE")
def reshape(cv: Converter, op: OpDef) -> None:
    """The output tensor's static shape is the target (the shape input / options only repeat it)."""
    counts(cv, op, (1, 2))
    x = moved(cv, op, op.inputs[0])
    shape = cv.t(op.outputs[0]).shape
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise FrontendError(f"{cv.where(op)}: cannot reshape {list(x.shape)} to {list(shape)}")
    cv.define(op, cv.g.reshape(x, list(shape)) if tuple(shape) != tuple(x.shape) else cv.g.identity(x))


@handles("EXPAND_DIMS")
def expand_dims(cv: Converter, op: OpDef) -> None:
    """A 1 inserted at ``axis`` in ``[-rank-1, rank]`` (a negative axis counts from the end of the output)."""
    counts(cv, op, (2, 2))
    x = moved(cv, op, op.inputs[0])
    axis = const_ints(cv, op, 1, "axis")
    if axis.size != 1:
        raise FrontendError(f"{cv.where(op)}: the axis input has {axis.size} elements, needs 1")
    rank = len(x.shape)
    a = axis_in(cv, op, int(axis.reshape(-1)[0]), rank + 1)
    cv.define(op, cv.g.reshape(x, list(x.shape[:a]) + [1] + list(x.shape[a:])))


@handles("TRANSPOSE")
def transpose(cv: Converter, op: OpDef) -> None:
    counts(cv, op, (2, 2))
    x = moved(cv, op, op.inputs[0])
    rank = len(x.shape)
    perm = const_ints(cv, op, 1, "permutation", (TensorType.INT32,)).reshape(-1)
    perm = [axis_in(cv, op, int(p), rank, "permutation entry") for p in perm]
    if sorted(perm) != list(range(rank)):
        raise FrontendError(f"{cv.where(op)}: {perm} is not a permutation of the {rank} axes")
    cv.define(op, cv.g.transpose(x, perms=perm))


# ------------------------------------------------------------------ joining and splitting
@handles("CONCATENATION")
def concatenation(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "ConcatenationOptions")
    counts(cv, op, (1, 1 << 16))
    if o.FusedActivationFunction() != 0:          # TFLite's Prepare requires NONE
        raise UnsupportedError(f"{cv.where(op)}: option fused_activation_function {o.FusedActivationFunction()}")
    vals = [moved(cv, op, i) for i in op.inputs]
    rank = len(vals[0].shape)
    cv.define(op, cv.g.concat(*vals, axis=axis_in(cv, op, o.Axis(), rank, "option axis")))


@handles("PACK")
def pack(cv: Converter, op: OpDef) -> None:
    """Stack ``values_count`` equal-shaped inputs along a new ``axis`` in ``[-rank-1, rank]``."""
    o = opt(op, cv, "PackOptions")
    counts(cv, op, (1, 1 << 16))
    if o.ValuesCount() != len(op.inputs):
        raise FrontendError(f"{cv.where(op)}: option values_count {o.ValuesCount()} but {len(op.inputs)} inputs")
    vals = [moved(cv, op, i) for i in op.inputs]
    shape = list(vals[0].shape)
    if any(list(v.shape) != shape for v in vals):
        raise FrontendError(f"{cv.where(op)}: inputs of different shapes {[list(v.shape) for v in vals]}")
    a = axis_in(cv, op, o.Axis(), len(shape) + 1, "option axis")
    vals = [cv.g.reshape(v, shape[:a] + [1] + shape[a:]) for v in vals]
    cv.define(op, cv.g.concat(*vals, axis=a) if len(vals) > 1 else vals[0])


def _define_parts(cv: Converter, op: OpDef, parts: list[Value], drop_axis: int | None = None) -> None:
    for k, p in enumerate(parts):
        if drop_axis is not None:
            p = cv.g.reshape(p, [d for i, d in enumerate(p.shape) if i != drop_axis])
        cv.define(op, p, k)


@handles("UNPACK")
def unpack(cv: Converter, op: OpDef) -> None:
    """Output k is index k along ``axis``; ``num`` must equal that dimension."""
    o = opt(op, cv, "UnpackOptions")
    counts(cv, op, (1, 1), None)
    x = moved(cv, op, op.inputs[0])
    a = axis_in(cv, op, o.Axis(), len(x.shape), "option axis")
    if not o.Num() == x.shape[a] == len(op.outputs):
        raise FrontendError(f"{cv.where(op)}: option num {o.Num()}, {len(op.outputs)} outputs, dimension "
                            f"{a} of size {x.shape[a]}")
    _define_parts(cv, op, split_at(cv.g, x, a, [1] * x.shape[a]), drop_axis=a)


def _split(cv: Converter, op: OpDef, x: Value, axis: np.ndarray, sizes: list[int] | None, num: int) -> None:
    if axis.size != 1:
        raise FrontendError(f"{cv.where(op)}: the axis input has {axis.size} elements, needs 1")
    a = axis_in(cv, op, int(axis.reshape(-1)[0]), len(x.shape))
    dim = x.shape[a]
    if num != len(op.outputs):
        raise FrontendError(f"{cv.where(op)}: option num_splits {num} but {len(op.outputs)} outputs")
    if sizes is None:
        if dim % num:
            raise FrontendError(f"{cv.where(op)}: dimension {a} of size {dim} does not split into {num}")
        sizes = [dim // num] * num
    elif len(sizes) != num:
        raise FrontendError(f"{cv.where(op)}: {len(sizes)} size_splits for {num} outputs")
    elif sizes.count(-1) == 1:                      # the rest of the dimension
        sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    if any(s < 0 for s in sizes) or sum(sizes) != dim:
        raise FrontendError(f"{cv.where(op)}: size_splits {sizes} do not add up to dimension {a} of size {dim}")
    if 0 in sizes:
        raise UnsupportedError(f"{cv.where(op)}: size_splits {sizes} make an empty output")
    _define_parts(cv, op, split_at(cv.g, x, a, sizes))


@handles("SPLIT")
def split(cv: Converter, op: OpDef) -> None:
    """Inputs (axis, value): ``num_splits`` equal parts."""
    o = opt(op, cv, "SplitOptions")
    counts(cv, op, (2, 2), None)
    _split(cv, op, moved(cv, op, op.inputs[1]), const_ints(cv, op, 0, "axis", (TensorType.INT32,)), None,
           o.NumSplits())


@handles("SPLIT_V")
def split_v(cv: Converter, op: OpDef) -> None:
    """Inputs (value, size_splits, axis); one size may be −1 (the rest of the dimension)."""
    o = opt(op, cv, "SplitVOptions")
    counts(cv, op, (3, 3), None)
    sizes = [int(s) for s in const_ints(cv, op, 1, "size_splits").reshape(-1)]
    _split(cv, op, moved(cv, op, op.inputs[0]), const_ints(cv, op, 2, "axis", (TensorType.INT32,)), sizes,
           o.NumSplits())


# ------------------------------------------------------------------ padding
@handles("PAD", "PADV2")
def pad(cv: Converter, op: OpDef) -> None:
    """Fill: the output zero point (PAD) or PADV2's ``constant_values`` scalar (constant or run-time)."""
    counts(cv, op, (2, 3 if op.name == "PADV2" else 2))
    x = moved(cv, op, op.inputs[0])
    rank = len(x.shape)
    p = const_ints(cv, op, 1, "paddings")
    if p.shape != (rank, 2) or np.any(p < 0):
        raise FrontendError(f"{cv.where(op)}: paddings {p.tolist()} do not fit rank {rank}")
    fill: int | Value = cv.quant(op.outputs[0], op)[1]
    if len(op.inputs) == 3:
        c = op.inputs[2]
        same_quant(cv, op, c)
        if int(np.prod(cv.t(c).shape)) != 1:
            raise FrontendError(f"{cv.where(op)}: constant_values has shape {list(cv.t(c).shape)}, needs one "
                                "element")
        fill = int(cv.const_array(c, op).reshape(-1)[0]) if cv.t(c).data is not None else \
            reshaped(cv.g, cv.value(c, op, cv.t(c).type), (1,))
    cv.define(op, cv.g.pad(x, [int(v) for v in p.reshape(-1)], pad_const=fill))

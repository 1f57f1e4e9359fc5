"""Output types of every op, from input types, attributes and constant operands.

The builder uses this to type new ops; the verifier uses it to check that a
graph's declared output types are the ones the specification implies.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tosac.errors import VerificationError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Op, TensorType
from tosac.ir.ops import SCHEMAS, ResizeMode, schema

_ACC_OUT = {DType.INT32: DType.INT32, DType.INT48: DType.INT48, DType.FP16: DType.FP16,
            DType.FP32: DType.FP32}


class _Ctx:
    """What an inference rule needs: the op, its input types and constant values."""

    def __init__(self, op: Op, block: Block, out_dtypes: list[DType] | None,
                 blocks: dict[str, Block] | None):
        self.op, self.block, self.out_dtypes, self.blocks = op, block, out_dtypes, blocks
        self.label = f"{block.name}:{op.name}"
        self.types = []
        for name in op.inputs:
            if name not in block.tensors:
                raise VerificationError(self.label, name, f"input tensor '{name}' is not defined")
            self.types.append(block.tensors[name].type)

    def fail(self, operand: str | None, rule: str) -> VerificationError:
        return VerificationError(self.label, operand, rule)

    def t(self, i: int) -> TensorType:
        if i >= len(self.types):
            raise self.fail(None, f"expects at least {i + 1} inputs, got {len(self.types)}")
        return self.types[i]

    def const(self, i: int, operand: str) -> list[int]:
        if i >= len(self.op.inputs):
            raise self.fail(operand, f"operand '{operand}' is missing")
        data = self.block.constant(self.op.inputs[i])
        if data is None:
            raise self.fail(operand, f"'{operand}' must be a compile-time constant (CONST_SHAPE/CONST)")
        return [int(v) for v in np.asarray(data).reshape(-1)]

    def attr(self, name: str):
        if name not in self.op.attrs:
            default = SCHEMAS[self.op.name].attrs[name].default
            if default is None:
                raise self.fail(name, f"attribute '{name}' is required")
            return default
        return self.op.attrs[name]

    def out_dtype(self) -> DType:
        if not self.out_dtypes:
            raise self.fail(None, f"the output dtype of {self.op.name} cannot be inferred; pass it explicitly")
        return self.out_dtypes[0]


def broadcast_shapes(ctx: _Ctx, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """TOSA broadcasting: equal ranks, each dimension equal or 1."""
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        raise ctx.fail(None, f"operand ranks differ {[len(s) for s in shapes]}: TOSA broadcasting needs equal ranks")
    out = []
    for dims in zip(*shapes):
        non_one = {d for d in dims if d != 1}
        if len(non_one) > 1:
            raise ctx.fail(None, f"shapes {shapes} cannot be broadcast (dimension sizes {sorted(non_one)})")
        out.append(non_one.pop() if non_one else 1)
    return tuple(out)


def _conv_size(ctx: _Ctx, size: int, k: int, pad_a: int, pad_b: int, stride: int, dilation: int, what: str) -> int:
    if stride < 1 or dilation < 1:
        raise ctx.fail("stride" if stride < 1 else "dilation", f"{what}: stride and dilation must be >= 1")
    span = size - 1 + pad_a + pad_b - (k - 1) * dilation
    if span < 0:
        raise ctx.fail("input", f"{what}: padded input {size}+{pad_a}+{pad_b} is smaller than the dilated kernel")
    if span % stride:
        raise ctx.fail("stride", f"{what}: (IH - 1 + pad - (KH - 1) * dilation) = {span} is not divisible by "
                       f"stride {stride}")
    return span // stride + 1


def _conv(ctx: _Ctx) -> list[TensorType]:
    """CONV2D, CONV3D and DEPTHWISE_CONV2D: one output-size rule per spatial axis."""
    x, w = ctx.t(0), ctx.t(1)
    spatial = 3 if ctx.op.name == "CONV3D" else 2
    if x.rank != spatial + 2 or w.rank != spatial + 2:
        raise ctx.fail("input" if x.rank != spatial + 2 else "weight",
                       f"{ctx.op.name} input and weight must be rank {spatial + 2}")
    _lens(ctx, pad=2 * spatial, stride=spatial, dilation=spatial)
    pad, stride, dil = ctx.attr("pad"), ctx.attr("stride"), ctx.attr("dilation")
    depthwise = ctx.op.name == "DEPTHWISE_CONV2D"
    _same_channels(ctx, x, w, 2 if depthwise else -1, "[KH,KW,C,M]" if depthwise else
                   f"[OC,{'KD,' if spatial == 3 else ''}KH,KW,IC]")
    kernel = w.shape[:2] if depthwise else w.shape[1:-1]     # [KH,KW,C,M] or [OC,(KD,)KH,KW,IC]
    axes = ("depth", "height", "width")[-spatial:]
    dims = [_conv_size(ctx, x.shape[1 + i], kernel[i], pad[2 * i], pad[2 * i + 1], stride[i], dil[i], axis)
            for i, axis in enumerate(axes)]
    channels = w.shape[2] * w.shape[3] if depthwise else w.shape[0]
    return [TensorType(_acc_out(ctx), (x.shape[0], *dims, channels))]


def _transpose_conv(ctx: _Ctx) -> list[TensorType]:
    x, w = ctx.t(0), ctx.t(1)
    if x.rank != 4 or w.rank != 4:
        raise ctx.fail("input" if x.rank != 4 else "weight", "TRANSPOSE_CONV2D input and weight must be rank 4")
    _same_channels(ctx, x, w, -1, "[OC,KH,KW,IC]")
    out_pad, stride = ctx.attr("out_pad"), ctx.attr("stride")
    _lens(ctx, out_pad=4, stride=2)
    if min(stride) < 1:
        raise ctx.fail("stride", "stride must be >= 1")
    oh = (x.shape[1] - 1) * stride[0] + out_pad[0] + out_pad[1] + w.shape[1]
    ow = (x.shape[2] - 1) * stride[1] + out_pad[2] + out_pad[3] + w.shape[2]
    return [TensorType(_acc_out(ctx), (x.shape[0], oh, ow, w.shape[0]))]


def _same_channels(ctx: _Ctx, x: TensorType, w: TensorType, axis: int, layout: str) -> None:
    """The weights' input-channel dimension is the input's last one (the spec names both IC, or C)."""
    for operand, t in (("input", x), ("weight", w)):
        if 0 in t.shape:
            raise ctx.fail(operand, f"{operand} shape {list(t.shape)} has a dimension of size 0")
    if w.shape[axis] != x.shape[-1]:
        raise ctx.fail("weight", f"weight {list(w.shape)} ({layout}) has {w.shape[axis]} input channels, the input "
                       f"{list(x.shape)} has {x.shape[-1]}")


def _acc_out(ctx: _Ctx) -> DType:
    acc = ctx.attr("acc_type")
    if not isinstance(acc, DType) or acc not in _ACC_OUT:
        raise ctx.fail("acc_type", f"acc_type must be one of INT32, INT48, FP16, FP32, not {acc}")
    if acc is DType.FP32 and ctx.t(0).dtype in (DType.FP16, DType.BF16):
        return ctx.t(0).dtype
    return _ACC_OUT[acc]


def _lens(ctx: _Ctx, **expected: int) -> None:
    for name, n in expected.items():
        value = ctx.attr(name)
        if not isinstance(value, tuple) or len(value) != n:
            raise ctx.fail(name, f"attribute '{name}' must have {n} values, got {value}")


def _pool(ctx: _Ctx) -> list[TensorType]:
    x = ctx.t(0)
    if x.rank != 4:
        raise ctx.fail("input", "pooling input must be rank 4 (NHWC)")
    _lens(ctx, kernel=2, stride=2, pad=4)
    k, s, p = ctx.attr("kernel"), ctx.attr("stride"), ctx.attr("pad")
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ctx.fail("kernel", "kernel and stride must be >= 1, pad >= 0")
    oh = _conv_size(ctx, x.shape[1], k[0], p[0], p[1], s[0], 1, "height")
    ow = _conv_size(ctx, x.shape[2], k[1], p[2], p[3], s[1], 1, "width")
    return [TensorType(x.dtype, (x.shape[0], oh, ow, x.shape[3]))]


def _matmul(ctx: _Ctx) -> list[TensorType]:
    a, b = ctx.t(0), ctx.t(1)
    if a.rank != 3 or b.rank != 3:
        raise ctx.fail("A" if a.rank != 3 else "B", "MATMUL operands must be rank 3 ([N,H,C] and [N,C,W])")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ctx.fail("B", f"MATMUL shapes {list(a.shape)} and {list(b.shape)} do not match ([N,H,C] x [N,C,W])")
    out = {DType.INT8: DType.INT32, DType.INT16: DType.INT48}.get(a.dtype, a.dtype)
    if a.dtype is DType.FP16 and ctx.out_dtypes and ctx.out_dtypes[0] is DType.FP32:
        out = DType.FP32                  # fp16 x fp16 accumulating in fp32: the declared output says which
    return [TensorType(out, (a.shape[0], a.shape[1], b.shape[2]))]


def _argmax(ctx: _Ctx) -> list[TensorType]:
    x, axis = ctx.t(0), ctx.attr("axis")
    _axis(ctx, axis, x.rank)
    return [TensorType(DType.INT32, x.shape[:axis] + x.shape[axis + 1:])]


def _axis(ctx: _Ctx, axis: int, rank: int) -> None:
    if not 0 <= axis < max(rank, 1) or rank == 0:
        raise ctx.fail("axis", f"axis {axis} is out of range for rank {rank}")


def _same(ctx: _Ctx) -> list[TensorType]:
    return [ctx.t(0)]


def _elementwise(ctx: _Ctx, out: DType | None = None) -> list[TensorType]:
    n = SCHEMAS[ctx.op.name].data_operands  # the broadcast operands: MUL's shift is a parameter
    shapes = [ctx.t(i).shape for i in range(n)]
    dtype = out or ctx.t(n - 1).dtype
    if ctx.op.name == "MUL" and dtype.is_int:
        dtype = DType.INT32                     # integer MUL always produces int32
    return [TensorType(dtype, broadcast_shapes(ctx, shapes))]


def _table(ctx: _Ctx) -> list[TensorType]:
    x = ctx.t(0)
    return [TensorType(DType.INT32 if x.dtype is DType.INT16 else x.dtype, x.shape)]


def _reduce(ctx: _Ctx) -> list[TensorType]:
    x, axis = ctx.t(0), ctx.attr("axis")
    _axis(ctx, axis, x.rank)
    shape = list(x.shape)
    shape[axis] = 1
    return [TensorType(x.dtype, tuple(shape))]


def _concat(ctx: _Ctx) -> list[TensorType]:
    if not ctx.types:
        raise ctx.fail("input1", "CONCAT needs at least one input")
    first, axis = ctx.types[0], ctx.attr("axis")
    _axis(ctx, axis, first.rank)
    total = 0
    for i, t in enumerate(ctx.types):
        if t.rank != first.rank or any(a != b for d, (a, b) in enumerate(zip(t.shape, first.shape)) if d != axis):
            raise ctx.fail(f"input1[{i}]", f"shape {list(t.shape)} does not match {list(first.shape)} off axis {axis}")
        total += t.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return [TensorType(first.dtype, tuple(shape))]


def _pad(ctx: _Ctx) -> list[TensorType]:
    x, padding = ctx.t(0), ctx.const(1, "padding")
    if len(padding) != 2 * x.rank:
        raise ctx.fail("padding", f"padding has {len(padding)} values, rank {x.rank} needs {2 * x.rank}")
    if min(padding, default=0) < 0:
        raise ctx.fail("padding", f"padding values must be >= 0, got {padding}")
    return [TensorType(x.dtype, tuple(d + padding[2 * i] + padding[2 * i + 1] for i, d in enumerate(x.shape)))]


def _reshape(ctx: _Ctx) -> list[TensorType]:
    x, shape = ctx.t(0), ctx.const(1, "shape")
    if min(shape, default=1) < 0 or int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ctx.fail("shape", f"cannot reshape {list(x.shape)} ({x.size} elements) to {shape}")
    return [TensorType(x.dtype, tuple(shape))]


def _reverse(ctx: _Ctx) -> list[TensorType]:
    _axis(ctx, ctx.attr("axis"), ctx.t(0).rank)
    return [ctx.t(0)]


def _slice(ctx: _Ctx) -> list[TensorType]:
    x, start, size = ctx.t(0), ctx.const(1, "start"), ctx.const(2, "size")
    if len(start) != x.rank or len(size) != x.rank:
        raise ctx.fail("start", f"start {start} and size {size} must have rank {x.rank} values")
    for d, (b, n) in enumerate(zip(start, size)):
        if b < 0 or n <= 0 or b + n > x.shape[d]:
            raise ctx.fail("size", f"slice [{b}, {b}+{n}) is outside dimension {d} of size {x.shape[d]}")
    return [TensorType(x.dtype, tuple(size))]


def _tile(ctx: _Ctx) -> list[TensorType]:
    x, mult = ctx.t(0), ctx.const(1, "multiples")
    if len(mult) != x.rank or min(mult, default=1) < 1:
        raise ctx.fail("multiples", f"multiples {mult} must be rank {x.rank} values >= 1")
    return [TensorType(x.dtype, tuple(d * m for d, m in zip(x.shape, mult)))]


def _transpose(ctx: _Ctx) -> list[TensorType]:
    x, perms = ctx.t(0), ctx.attr("perms")
    if sorted(perms) != list(range(x.rank)):
        raise ctx.fail("perms", f"perms {list(perms)} is not a permutation of 0..{x.rank - 1}")
    return [TensorType(x.dtype, tuple(x.shape[p] for p in perms))]


def _gather(ctx: _Ctx) -> list[TensorType]:
    values, indices = ctx.t(0), ctx.t(1)
    if values.rank != 3 or indices.rank != 2 or values.shape[0] != indices.shape[0]:
        raise ctx.fail("indices", f"GATHER needs values [N,K,C] and indices [N,W], got {list(values.shape)}, "
                       f"{list(indices.shape)}")
    return [TensorType(values.dtype, (values.shape[0], indices.shape[1], values.shape[2]))]


def _scatter(ctx: _Ctx) -> list[TensorType]:
    values, indices, inp = ctx.t(0), ctx.t(1), ctx.t(2)
    if values.rank != 3 or indices.rank != 2 or inp.rank != 3 or values.shape[0] != indices.shape[0] \
            or inp.shape[:2] != indices.shape or inp.shape[2] != values.shape[2]:
        raise ctx.fail("input", f"SCATTER shapes {list(values.shape)}, {list(indices.shape)}, {list(inp.shape)} "
                       "do not match [N,K,C], [N,W], [N,W,C]")
    return [values]


def _resize(ctx: _Ctx) -> list[TensorType]:
    x = ctx.t(0)
    scale, offset, border = ctx.const(1, "scale"), ctx.const(2, "offset"), ctx.const(3, "border")
    if x.rank != 4 or len(scale) != 4 or len(offset) != 2 or len(border) != 2:
        raise ctx.fail("scale", "RESIZE needs a rank-4 input, scale[4], offset[2], border[2]")
    if min(scale) <= 0:
        raise ctx.fail("scale", f"scale values must be > 0, got {scale}")
    oh_num = (x.shape[1] - 1) * scale[0] - offset[0] + border[0]
    ow_num = (x.shape[2] - 1) * scale[2] - offset[1] + border[1]
    if oh_num % scale[1] or ow_num % scale[3]:
        raise ctx.fail("scale", "RESIZE output size is not an integer for this scale, offset and border")
    oh, ow = oh_num // scale[1] + 1, ow_num // scale[3] + 1
    out = x.dtype
    if ctx.attr("mode") is ResizeMode.BILINEAR:
        out = {DType.INT8: DType.INT32, DType.INT16: DType.INT48}.get(x.dtype, x.dtype)
    if ctx.out_dtypes:
        out = ctx.out_dtypes[0]
    return [TensorType(out, (x.shape[0], oh, ow, x.shape[3]))]


def _with_out_dtype(ctx: _Ctx) -> list[TensorType]:
    return [TensorType(ctx.out_dtype(), ctx.t(0).shape)]


def _const(ctx: _Ctx) -> list[TensorType]:
    out = ctx.op.outputs[0] if ctx.op.outputs else None
    if out is None or out not in ctx.block.tensors:
        raise ctx.fail(None, "CONST needs a declared output tensor holding its value")
    return [ctx.block.tensors[out].type]


def _control_flow(ctx: _Ctx) -> list[TensorType]:
    graph_attr = "then_graph" if ctx.op.name == "COND_IF" else "body_graph"
    name = ctx.attr(graph_attr)
    if ctx.blocks is None or name not in ctx.blocks:
        raise ctx.fail(graph_attr, f"block '{name}' is not defined in this graph")
    body = ctx.blocks[name]
    undefined = [n for n in body.outputs if n not in body.tensors]
    if undefined:
        raise ctx.fail(graph_attr, f"output '{undefined[0]}' of block '{name}' has no tensor declaration")
    return [body.type_of(n) for n in body.outputs]


_RULES: dict[str, Callable[[_Ctx], list[TensorType]]] = {
    "ARGMAX": _argmax, "AVG_POOL2D": _pool, "MAX_POOL2D": _pool, "CONV2D": _conv, "CONV3D": _conv,
    "DEPTHWISE_CONV2D": _conv, "TRANSPOSE_CONV2D": _transpose_conv, "MATMUL": _matmul,
    "TABLE": _table, "CONCAT": _concat, "PAD": _pad, "RESHAPE": _reshape, "REVERSE": _reverse,
    "SLICE": _slice, "TILE": _tile, "TRANSPOSE": _transpose, "GATHER": _gather, "SCATTER": _scatter,
    "RESIZE": _resize, "CAST": _with_out_dtype, "RESCALE": _with_out_dtype, "CONST": _const,
    "CONST_SHAPE": _const, "COND_IF": _control_flow, "WHILE_LOOP": _control_flow,
}
for _name in ("ADD", "SUB", "ARITHMETIC_RIGHT_SHIFT", "BITWISE_AND", "BITWISE_OR", "BITWISE_XOR", "INTDIV",
              "LOGICAL_AND", "LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT", "LOGICAL_OR", "LOGICAL_XOR",
              "MAXIMUM", "MINIMUM", "MUL", "POW", "SELECT"):
    _RULES[_name] = _elementwise
for _name in ("EQUAL", "GREATER", "GREATER_EQUAL"):
    _RULES[_name] = lambda ctx: _elementwise(ctx, DType.BOOL)
for _name in ("CLAMP", "ERF", "SIGMOID", "TANH", "ABS", "BITWISE_NOT", "CEIL", "CLZ", "COS", "EXP", "FLOOR",
              "LOG", "LOGICAL_NOT", "NEGATE", "RECIPROCAL", "RSQRT", "SIN", "IDENTITY"):
    _RULES[_name] = _same
for _name in ("REDUCE_ALL", "REDUCE_ANY", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PRODUCT", "REDUCE_SUM"):
    _RULES[_name] = _reduce
assert set(_RULES) == set(SCHEMAS), set(SCHEMAS) ^ set(_RULES)


def infer_types(op: Op, block: Block, out_dtypes: list[DType] | None = None,
                blocks: dict[str, Block] | None = None) -> list[TensorType]:
    """Output types of ``op`` placed in ``block`` (``blocks``: the graph's blocks, for control flow)."""
    schema(op.name)
    return _RULES[op.name](_Ctx(op, block, out_dtypes, blocks))

"""Non-element-wise TOSA ops as compute definitions for the schedule templates.

Each ``lower_*`` function turns one op (its block gives types and constants)
into a compute (``MapCompute``, ``ReduceCompute`` or ``TapCompute``) whose
final value goes through ``epilogue(value, ctx)`` — the fused RESCALE / CLAMP /
ADD chain, or just the store conversion. Semantics follow the reference
interpreter exactly; see ``tosac.ir.reference`` for the law each mirrors.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tosac.errors import UnsupportedError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Op
from tosac.ir.ops import SCHEMAS, NanMode, ResizeMode
from tosac.lower.elementwise import rescale_value
from tosac.lower.values import Operands, i64, loaded, storage_type, tensor_arg, to_i64, value_type
from tosac.schedules import loopnest as ln
from tosac.schedules.generic import ElementContext, MapCompute, ReduceCompute, TensorArg
from tosac.schedules.loopnest import binary, cast, clamp_index, select, smax, smin
from tosac.schedules.taps import TapCompute, all_of, in_bounds
from tosac.schedules.transpose import TransposeCompute, tiled_transpose_applies

Epilogue = Callable[[ln.Expr, ElementContext], ln.Expr]


def attrs_of(op: Op) -> dict:
    filled = {k: spec.default for k, spec in SCHEMAS[op.name].attrs.items()}
    filled.update(op.attrs)
    return filled


class OpLowering:
    """Shared context: the op, its block, the kernel name and the constants packed for it."""

    def __init__(self, block: Block, op: Op, name: str, output: TensorArg, epilogue: Epilogue,
                 epilogue_inputs: list[TensorArg]):
        self.block, self.op, self.name = block, op, name
        self.attrs = attrs_of(op)
        self.operands = Operands(block, op.inputs)
        self.output = output
        self.epilogue = epilogue
        self.epilogue_inputs = epilogue_inputs
        self.constants: dict[str, np.ndarray] = {}

    def arg(self, i: int) -> TensorArg:
        return tensor_arg(self.op.inputs[i], self.block.type_of(self.op.inputs[i]))

    def dtype(self, i: int) -> DType:
        return self.block.type_of(self.op.inputs[i]).dtype

    @property
    def out_type(self):
        return self.block.type_of(self.op.outputs[0])

    def packed(self, suffix: str, data: np.ndarray, type_: str) -> TensorArg:
        """A constant re-laid out at compile time, passed to the kernel as its own buffer."""
        name = f"{self.name}.{suffix}"
        self.constants[name] = np.array(data, order="C")
        return TensorArg(name, type_, tuple(data.shape))

    def inputs(self, *args: TensorArg) -> list[TensorArg]:
        return [*args, *self.epilogue_inputs]


# ----------------------------------------------------------------------------- data movement

def tiled_transpose(lw: OpLowering) -> TransposeCompute | None:
    """A TRANSPOSE that changes the innermost axis, as register-transposed tiles (nothing fused after it)."""
    x, perms = lw.arg(0), tuple(int(p) for p in lw.attrs["perms"])
    if not tiled_transpose_applies(x.shape, perms):
        return None
    return TransposeCompute(lw.name, x, lw.output, perms)


def lower_data_movement(lw: OpLowering) -> MapCompute:
    op, x = lw.op, lw.arg(0)
    out_t = lw.out_type
    shape = out_t.shape
    in_dtype = lw.dtype(0)

    def finish(value: ln.Expr, ctx: ElementContext) -> ln.Expr:
        return lw.epilogue(loaded(value, in_dtype), ctx)

    if op.name in ("RESHAPE", "IDENTITY"):
        return MapCompute(lw.name, lw.output, lw.inputs(x), lambda ctx: finish(ctx.load(x), ctx),
                          positional=bool(lw.epilogue_inputs))
    if op.name == "TRANSPOSE":
        perms = lw.attrs["perms"]

        def element(ctx):
            src = [None] * len(shape)
            for d, p in enumerate(perms):
                src[p] = ctx.index[d]
            return finish(ctx.load_at(x, src), ctx)
    elif op.name == "SLICE":
        start = [int(v) for v in lw.operands.const(1).reshape(-1)]

        def element(ctx):
            return finish(ctx.load_at(x, [i + s for i, s in zip(ctx.index, start)]), ctx)
    elif op.name == "TILE":
        def element(ctx):
            return finish(ctx.load_at(x, [i if d == o else binary("urem", i, ln.Const(d))
                                          for i, d, o in zip(ctx.index, x.shape, shape)]), ctx)
    elif op.name == "REVERSE":
        axis = lw.attrs["axis"]

        def element(ctx):
            idx = list(ctx.index)
            idx[axis] = ln.Const(x.shape[axis] - 1) - idx[axis]
            return finish(ctx.load_at(x, idx), ctx)
    elif op.name == "PAD":
        padding = [int(v) for v in lw.operands.const(1).reshape(-1)]
        pad_const = None if lw.operands.const(2) is not None else lw.arg(2)     # a run-time pad value: an input

        def element(ctx):
            pad_value = _pad_const(lw) if pad_const is None else ctx.load_at(pad_const, [ln.Const(0)])
            idx, conds = [], []
            for d, i in enumerate(ctx.index):
                j = i - padding[2 * d]
                conds.append(None if padding[2 * d] == 0 and padding[2 * d + 1] == 0 else in_bounds(j, x.shape[d]))
                idx.append(j if conds[-1] is None else clamp_index(j, x.shape[d]))
            value = ctx.load_at(x, idx)
            cond = all_of(conds)
            return finish(value if cond is None else select(cond, value, pad_value), ctx)
        return MapCompute(lw.name, lw.output, lw.inputs(x, *([pad_const] if pad_const else [])), element)
    elif op.name == "CONCAT":
        axis = lw.attrs["axis"]
        parts = [lw.arg(i) for i in range(len(op.inputs))]

        def element(ctx):
            value, offset = None, 0
            for part in parts:
                idx = list(ctx.index)
                idx[axis] = clamp_index(idx[axis] - offset, part.shape[axis])
                loaded_part = ctx.load_at(part, idx)
                value = loaded_part if value is None else select(
                    binary("slt", ctx.index[axis], ln.Const(offset)), value, loaded_part)
                offset += part.shape[axis]
            return finish(value, ctx)
        return MapCompute(lw.name, lw.output, lw.inputs(*parts), element)
    elif op.name == "GATHER":
        idx_arg = lw.arg(1)
        k = x.shape[1]

        def element(ctx):
            n, w, c = ctx.index
            row = to_i64(ctx.load_at(idx_arg, [n, w]), lw.dtype(1))
            return finish(ctx.load_at(x, [n, clamp_index(row, k), c]), ctx)
        return MapCompute(lw.name, lw.output, lw.inputs(x, idx_arg), element)
    elif op.name == "RESIZE":
        return _lower_resize(lw, finish)
    else:
        raise UnsupportedError(f"{op.name} has no data-movement lowering")
    return MapCompute(lw.name, lw.output, lw.inputs(x), element)


def _pad_const(lw: OpLowering) -> ln.Expr:
    """PAD's constant pad value as an immediate."""
    st = storage_type(lw.dtype(0))
    v = np.asarray(lw.operands.const(2)).reshape(-1)[0]
    return ln.Const(float(v) if ln.is_float(st) else int(v), st)


def _lower_resize(lw: OpLowering, finish) -> MapCompute:
    x = lw.arg(0)
    sy_n, sy_d, sx_n, sx_d = (int(v) for v in lw.operands.const(1).reshape(-1))
    off_y, off_x = (int(v) for v in lw.operands.const(2).reshape(-1))
    ih, iw = x.shape[1], x.shape[2]
    nearest = lw.attrs["mode"] is ResizeMode.NEAREST
    dtype = lw.dtype(0)
    if dtype.is_float and dtype not in (DType.FP32, DType.FP16):
        raise UnsupportedError(f"RESIZE on {dtype.name} inputs has no code generation")
    fp32 = dtype is DType.FP32
    fp16 = dtype is DType.FP16      # as the reference: nearest by the exact fraction, bilinear in f64

    def coords(o: ln.Expr, n: int, d: int, offset: int, size: int):
        pos = o * d + offset
        base = _floor_div(pos, n)
        # fp32: the fraction float(pos) / float(n) - float(base), as the reference (and the official model) has it
        rem = binary("fsub", binary("fdiv", cast(pos, "f32"), ln.Const(float(n), "f32")), cast(base, "f32")) \
            if fp32 else pos - base * n
        return smax(base, ln.Const(0)), smin(base + 1, ln.Const(size - 1)), rem

    def element(ctx):
        b, oy, ox, c = ctx.index
        y0, y1, dy = coords(oy, sy_n, sy_d, off_y, ih)
        x0, x1, dx = coords(ox, sx_n, sx_d, off_x, iw)
        # y0 may exceed the input when the offset is large; the reference indexes with it as is,
        # which the verifier's constraints keep in range; clamp for safety.
        y0, x0 = clamp_index(y0, ih), clamp_index(x0, iw)
        at = lambda yy, xx: to_i64(ctx.load_at(x, [b, yy, xx, c]), dtype)  # noqa: E731
        if nearest and fp32:
            half = ln.Const(0.5, "f32")
            ys, xs = select(binary("foge", dy, half), y1, y0), select(binary("foge", dx, half), x1, x0)
            return finish(ctx.load_at(x, [b, ys, xs, c]), ctx)
        if nearest:
            ys = select(binary("sge", dy * 2, ln.Const(sy_n)), y1, y0)
            xs = select(binary("sge", dx * 2, ln.Const(sx_n)), x1, x0)
            return finish(ctx.load_at(x, [b, ys, xs, c]), ctx)
        if fp32 or fp16:    # left to right, each product and sum rounded as the reference computes it
            ft = "f32" if fp32 else "f64"
            if fp16:                                   # fractions dy / n in f64, one rounding to f16 at the end
                dy = binary("fdiv", cast(dy, "f64"), ln.Const(float(sy_n), "f64"))
                dx = binary("fdiv", cast(dx, "f64"), ln.Const(float(sx_n), "f64"))
            one = ln.Const(1.0, ft)
            ey, ex = binary("fsub", one, dy), binary("fsub", one, dx)
            terms = [(y0, x0, ey, ex), (y0, x1, ey, dx), (y1, x0, dy, ex), (y1, x1, dy, dx)]
            acc = None
            for yy, xx, wy, wx in terms:
                term = binary("fmul", binary("fmul", cast(ctx.load_at(x, [b, yy, xx, c]), ft), wy), wx)
                acc = term if acc is None else binary("fadd", acc, term)
            return lw.epilogue(cast(acc, "f16") if fp16 else acc, ctx)
        uy, ux = ln.Const(sy_n), ln.Const(sx_n)
        acc = (at(y0, x0) * (uy - dy) * (ux - dx) + at(y0, x1) * (uy - dy) * dx
               + at(y1, x0) * dy * (ux - dx) + at(y1, x1) * dy * dx)
        return lw.epilogue(cast(acc, storage_type(lw.out_type.dtype)), ctx)
    return MapCompute(lw.name, lw.output, lw.inputs(x), element)


def _floor_div(pos: ln.Expr, n: int) -> ln.Expr:
    """floor(pos / n) for n > 0 (sdiv truncates toward zero)."""
    q = binary("sdiv", pos, ln.Const(n))
    return select(binary("slt", binary("srem", pos, ln.Const(n)), ln.Const(0)), q - 1, q)


# ----------------------------------------------------------------------------- reductions

def lower_reduction(lw: OpLowering) -> ReduceCompute:
    op, x = lw.op, lw.arg(0)
    dtype = lw.dtype(0)
    axis = lw.attrs["axis"]
    vt = value_type(dtype)
    name = op.name

    def value(v: ln.Expr) -> ln.Expr:
        return loaded(v, dtype)

    if name == "ARGMAX":
        best_init = ln.Const(float("-inf"), vt) if dtype.is_float else ln.Const(dtype.min, vt)
        ignore = dtype.is_float and lw.attrs["nan_mode"] is NanMode.IGNORE

        def argmax_step(accs, v, k):
            best, index = accs
            better = binary("fogt" if dtype.is_float else "sgt", v, best)
            if dtype.is_float and not ignore:     # the first NaN wins, as np.argmax
                is_nan = binary("funo", v, v)
                better = binary("or", better, binary("and", is_nan, binary("ford", best, best)))
            return [select(better, cast(k, "i32"), index), select(better, v, best)]
        return ReduceCompute(lw.name, lw.output, x, axis, ["i32", vt], [ln.Const(0, "i32"), best_init],
                             lambda accs, v, k: argmax_step([accs[1], accs[0]], value(v), k),
                             lambda accs: lw.epilogue(accs[0], _reduce_ctx(lw)))
    if name in ("REDUCE_ALL", "REDUCE_ANY"):
        init = ln.Const(1 if name == "REDUCE_ALL" else 0, "i1")
        fold = "and" if name == "REDUCE_ALL" else "or"
        return ReduceCompute(lw.name, lw.output, x, axis, ["i8"], [cast(init, "i8", signed=False)],
                             lambda accs, v, k: [cast(binary(fold, loaded(accs[0], DType.BOOL), value(v)), "i8",
                                                      signed=False)],
                             lambda accs: lw.epilogue(loaded(accs[0], DType.BOOL), _reduce_ctx(lw)))
    if name == "REDUCE_SUM":
        add = "fadd" if dtype.is_float else "add"
        zero = ln.Const(0.0 if dtype.is_float else 0, vt)
        return ReduceCompute(lw.name, lw.output, x, axis, [vt], [zero],
                             lambda accs, v, k: [binary(add, accs[0], v)],
                             lambda accs: lw.epilogue(accs[0], _reduce_ctx(lw)))
    if name == "REDUCE_PRODUCT":
        if not dtype.is_float:
            raise UnsupportedError("REDUCE_PRODUCT is float-only")
        return ReduceCompute(lw.name, lw.output, x, axis, [vt], [ln.Const(1.0, vt)],
                             lambda accs, v, k: [binary("fmul", accs[0], v)],
                             lambda accs: lw.epilogue(accs[0], _reduce_ctx(lw)))
    is_max = name == "REDUCE_MAX"
    if dtype.is_float:
        ignore = lw.attrs["nan_mode"] is NanMode.IGNORE
        fn = ("maxnum" if is_max else "minnum") if ignore else ("maximum" if is_max else "minimum")
        init = ln.Const(float("nan") if ignore else float("-inf") if is_max else float("inf"), vt)
        combine = lambda accs, v, k: [ln.Intrinsic(fn, (accs[0], v), vt)]  # noqa: E731
    else:
        init = ln.Const(dtype.min if is_max else dtype.max, vt)
        combine = lambda accs, v, k: [binary("smax" if is_max else "smin", accs[0], v)]  # noqa: E731
    return ReduceCompute(lw.name, lw.output, x, axis, [vt], [init], combine,
                         lambda accs: lw.epilogue(accs[0], _reduce_ctx(lw)))


def _reduce_ctx(lw: OpLowering) -> ElementContext:
    # Reductions fuse only epilogues that read nothing positional (checked by the grouping).
    return ElementContext(lw.output, [], None)


# ----------------------------------------------------------------------------- convolutions and MATMUL

def _acc_type(lw: OpLowering) -> str:
    """The accumulator's value type: the op's float ``acc_type`` (fp16 convolutions may accumulate in fp32),
    else the output's."""
    out = lw.out_type.dtype
    if out.is_float:
        acc = lw.attrs.get("acc_type")
        return value_type(acc if isinstance(acc, DType) and acc.is_float else out)
    return "i64" if out is DType.INT48 else "i32"


def _zero_point(lw: OpLowering, i: int, acc: str) -> ln.Expr:
    return cast(lw.operands.scalar(i), acc)


def _operand_value(v: ln.Expr, dtype: DType, zp: ln.Expr | None, acc: str) -> ln.Expr:
    if ln.is_float(acc):
        return cast(v, acc)
    return ln.binary("sub", cast(v, acc), zp) if zp is not None else cast(v, acc)


def _mac(acc_type: str):
    add, mul = ("fadd", "fmul") if ln.is_float(acc_type) else ("add", "mul")
    return lambda acc, a, b: binary(add, acc, binary(mul, a, b))


def _finish_with_bias(lw: OpLowering, bias_index: int, acc_type: str):
    """The spec's ending: the accumulator converted to the output type, then the bias added in that type."""
    bias = lw.arg(bias_index)
    add = "fadd" if ln.is_float(acc_type) else "add"
    out_type = value_type(lw.out_type.dtype)

    def finalize(acc, pos, c):
        b = ln.Load(bias.name, c if bias.size > 1 else ln.Const(0), bias.type)
        ctx = ElementContext(lw.output, [*pos, c], None)
        return lw.epilogue(binary(add, acc if acc_type == out_type else cast(acc, out_type), cast(b, out_type)), ctx)
    return bias, finalize


def lower_conv(lw: OpLowering) -> TapCompute:
    """CONV2D and CONV3D, NHWC / NDHWC, weights [OC, *K, IC]."""
    x, w = lw.arg(0), lw.arg(1)
    acc = _acc_type(lw)
    spatial = len(x.shape) - 2
    kernel = list(w.shape[1:-1])
    ic, oc = x.shape[-1], w.shape[0]
    pad, stride, dilation = lw.attrs["pad"], lw.attrs["stride"], lw.attrs["dilation"]
    out_shape = lw.out_type.shape
    x_zp = None if ln.is_float(acc) else _zero_point(lw, 3, acc)
    w_zp = None if ln.is_float(acc) else _zero_point(lw, 4, acc)
    w_const = lw.operands.const(1)
    if w_const is not None:            # pack to [*K, IC, OC]: output channels contiguous for the vector loop
        w = lw.packed("w_kio", np.moveaxis(w_const, 0, -1), w.type)

    def coords(pos, taps):
        return [pos[1 + d] * stride[d] - pad[2 * d] + taps[d] * dilation[d] for d in range(spatial)]

    def condition(pos, taps):
        return all_of([in_bounds(i, x.shape[1 + d]) for d, i in enumerate(coords(pos, taps))])

    mac = _mac(acc)

    def update(a, pos, taps, c):
        idx = [pos[0], *(clamp_index(i, x.shape[1 + d]) for d, i in enumerate(coords(pos, taps))), taps[spatial]]
        xv = _operand_value(ln.Load(x.name, ln.row_major(idx, x.shape), x.type), lw.dtype(0), x_zp, acc)
        if w_const is not None:
            w_index = ln.row_major([*taps[:spatial], taps[spatial], c], [*kernel, ic, oc])
        else:
            w_index = ln.row_major([c, *taps[:spatial], taps[spatial]], [oc, *kernel, ic])
        wv = _operand_value(ln.Load(w.name, w_index, w.type), lw.dtype(1), w_zp, acc)
        return mac(a, xv, wv)

    bias, finalize = _finish_with_bias(lw, 2, acc)
    return TapCompute(lw.name, lw.output, lw.inputs(x, w, bias), list(out_shape[:-1]), oc, [*kernel, ic], acc,
                      ln.Const(0.0 if ln.is_float(acc) else 0, acc), condition, update, finalize,
                      tap_condition_depth=spatial,
                      mac_count=int(np.prod(out_shape, dtype=np.int64) * np.prod(kernel) * ic))


def lower_depthwise(lw: OpLowering) -> TapCompute:
    x, w = lw.arg(0), lw.arg(1)               # w: [KH, KW, C, M]
    acc = _acc_type(lw)
    kh, kw, channels, mult = w.shape
    pad, stride, dilation = lw.attrs["pad"], lw.attrs["stride"], lw.attrs["dilation"]
    x_zp = None if ln.is_float(acc) else _zero_point(lw, 3, acc)
    w_zp = None if ln.is_float(acc) else _zero_point(lw, 4, acc)
    out_shape = lw.out_type.shape

    def coords(pos, taps):
        return [pos[1 + d] * stride[d] - pad[2 * d] + taps[d] * dilation[d] for d in range(2)]

    def condition(pos, taps):
        return all_of([in_bounds(i, x.shape[1 + d]) for d, i in enumerate(coords(pos, taps))])

    mac = _mac(acc)

    def update(a, pos, taps, c):
        iy, ix = (clamp_index(i, x.shape[1 + d]) for d, i in enumerate(coords(pos, taps)))
        cin = c if mult == 1 else binary("sdiv", c, ln.Const(mult))
        xv = _operand_value(ln.Load(x.name, ln.row_major([pos[0], iy, ix, cin], x.shape), x.type),
                            lw.dtype(0), x_zp, acc)
        wv = _operand_value(ln.Load(w.name, ln.row_major([taps[0], taps[1], c], [kh, kw, channels * mult]), w.type),
                            lw.dtype(1), w_zp, acc)
        return mac(a, xv, wv)

    bias, finalize = _finish_with_bias(lw, 2, acc)
    return TapCompute(lw.name, lw.output, lw.inputs(x, w, bias), list(out_shape[:-1]), channels * mult, [kh, kw],
                      acc, ln.Const(0.0 if ln.is_float(acc) else 0, acc), condition, update, finalize,
                      mac_count=int(np.prod(out_shape, dtype=np.int64) * kh * kw))


def lower_transpose_conv(lw: OpLowering) -> TapCompute:
    x, w = lw.arg(0), lw.arg(1)               # x [N, IH, IW, IC], w [OC, KH, KW, IC]
    acc = _acc_type(lw)
    oc, kh, kw, ic = w.shape
    top, _, left, _ = lw.attrs["out_pad"]
    stride = lw.attrs["stride"]
    x_zp = None if ln.is_float(acc) else _zero_point(lw, 3, acc)
    w_zp = None if ln.is_float(acc) else _zero_point(lw, 4, acc)
    out_shape = lw.out_type.shape
    w_const = lw.operands.const(1)
    if w_const is not None:
        w = lw.packed("w_kio", np.moveaxis(w_const, 0, -1), w.type)
    origin = (top, left)

    def source(pos, taps, d):
        return pos[1 + d] - ln.Const(origin[d]) - taps[d]          # = input index * stride when on the grid

    def condition(pos, taps):
        conds = []
        for d in range(2):
            t = source(pos, taps, d)
            conds.append(in_bounds(t, x.shape[1 + d] * stride[d]))
            if stride[d] > 1:
                conds.append(binary("eq", binary("urem", t, ln.Const(stride[d])), ln.Const(0)))
        return all_of(conds)

    mac = _mac(acc)

    def update(a, pos, taps, c):
        iy, ix = (binary("udiv", clamp_index(source(pos, taps, d), x.shape[1 + d] * stride[d]), ln.Const(stride[d]))
                  for d in range(2))
        xv = _operand_value(ln.Load(x.name, ln.row_major([pos[0], iy, ix, taps[2]], x.shape), x.type),
                            lw.dtype(0), x_zp, acc)
        if w_const is not None:
            w_index = ln.row_major([taps[0], taps[1], taps[2], c], [kh, kw, ic, oc])
        else:
            w_index = ln.row_major([c, taps[0], taps[1], taps[2]], [oc, kh, kw, ic])
        wv = _operand_value(ln.Load(w.name, w_index, w.type), lw.dtype(1), w_zp, acc)
        return mac(a, xv, wv)

    bias, finalize = _finish_with_bias(lw, 2, acc)
    return TapCompute(lw.name, lw.output, lw.inputs(x, w, bias), list(out_shape[:-1]), oc, [kh, kw, ic], acc,
                      ln.Const(0.0 if ln.is_float(acc) else 0, acc), condition, update, finalize,
                      tap_condition_depth=2, mac_count=int(np.prod(x.shape, dtype=np.int64) * oc * kh * kw))


def lower_matmul(lw: OpLowering) -> TapCompute:
    a, b = lw.arg(0), lw.arg(1)               # [N, H, C] x [N, C, W]
    acc = _acc_type(lw)
    n, h, c_dim = a.shape
    width = b.shape[2]
    a_zp = None if ln.is_float(acc) else _zero_point(lw, 2, acc)
    b_zp = None if ln.is_float(acc) else _zero_point(lw, 3, acc)
    mac = _mac(acc)

    def update(s, pos, taps, w):
        av = _operand_value(ln.Load(a.name, ln.row_major([pos[0], pos[1], taps[0]], a.shape), a.type),
                            lw.dtype(0), a_zp, acc)
        bv = _operand_value(ln.Load(b.name, ln.row_major([pos[0], taps[0], w], b.shape), b.type),
                            lw.dtype(1), b_zp, acc)
        return mac(s, av, bv)

    def finalize(s, pos, w):
        return lw.epilogue(s, ElementContext(lw.output, [*pos, w], None))

    return TapCompute(lw.name, lw.output, lw.inputs(a, b), [n, h], width, [c_dim], acc,
                      ln.Const(0.0 if ln.is_float(acc) else 0, acc), lambda pos, taps: None, update, finalize,
                      mac_count=n * h * width * c_dim)


# ----------------------------------------------------------------------------- pooling

def lower_pool(lw: OpLowering) -> TapCompute:
    x = lw.arg(0)
    dtype = lw.dtype(0)
    kernel, stride, pad = lw.attrs["kernel"], lw.attrs["stride"], lw.attrs["pad"]
    out_shape = lw.out_type.shape
    vt = value_type(dtype)
    is_avg = lw.op.name == "AVG_POOL2D"

    def coords(pos, taps):
        return [pos[1 + d] * stride[d] - pad[2 * d] + taps[d] for d in range(2)]

    def condition(pos, taps):
        return all_of([in_bounds(i, x.shape[1 + d]) for d, i in enumerate(coords(pos, taps))])

    def load(pos, taps, c):
        iy, ix = (clamp_index(i, x.shape[1 + d]) for d, i in enumerate(coords(pos, taps)))
        return ln.Load(x.name, ln.row_major([pos[0], iy, ix, c], x.shape), x.type)

    if not is_avg:
        if dtype.is_float:
            fn = "maxnum" if lw.attrs["nan_mode"] is NanMode.IGNORE else "maximum"
            init = ln.Const(float("nan") if fn == "maxnum" else float("-inf"), vt)
            update = lambda acc, pos, taps, c: ln.Intrinsic(fn, (acc, load(pos, taps, c)), vt)  # noqa: E731
        else:
            init = ln.Const(dtype.min, vt)
            update = lambda acc, pos, taps, c: smax(acc, load(pos, taps, c))  # noqa: E731
        finalize = lambda acc, pos, c: lw.epilogue(acc, ElementContext(lw.output, [*pos, c], None))  # noqa: E731
        acc_type = vt
    else:
        acc_type = "f32" if dtype.is_float else "i32"
        zp = None if dtype.is_float else cast(lw.operands.scalar(1), "i32")
        out_zp = None if dtype.is_float else lw.operands.scalar(2)
        add = "fadd" if dtype.is_float else "add"
        init = ln.Const(0.0 if dtype.is_float else 0, acc_type)

        def update(acc, pos, taps, c):
            return binary(add, acc, _operand_value(load(pos, taps, c), dtype, zp, acc_type))

        def finalize(acc, pos, c):
            count = ln.Const(1)
            for d in range(2):
                start = pos[1 + d] * stride[d] - ln.Const(pad[2 * d])
                count = count * (smin(start + kernel[d], ln.Const(x.shape[1 + d])) - smax(start, ln.Const(0)))
            ctx = ElementContext(lw.output, [*pos, c], None)
            if dtype.is_float:
                return lw.epilogue(cast(binary("fdiv", acc, cast(count, "f32")), vt), ctx)
            k = ln.Const(32) - cast(ln.Intrinsic("ctlz", (cast(count - 1, "i32"),), "i32"), "i64")
            multiplier = binary("udiv", binary("shl", ln.Const((1 << 30) + 1), k), count)
            value = rescale_value(cast(acc, "i64"), multiplier, ln.Const(30) + k, True, False) + out_zp
            return lw.epilogue(cast(smin(smax(value, i64(dtype.min)), i64(dtype.max)), storage_type(dtype)), ctx)

    return TapCompute(lw.name, lw.output, lw.inputs(x), list(out_shape[:-1]), x.shape[-1], list(kernel), acc_type,
                      init, condition, update, finalize)


# ----------------------------------------------------------------------------- scatter

def lower_scatter(lw: OpLowering) -> ln.Kernel:
    """SCATTER: copy values_in, then write each input row to its index (clamped; REQUIRE in range)."""
    values_in, indices, inp = lw.arg(0), lw.arg(1), lw.arg(2)
    n, k, c = values_in.shape
    w = indices.shape[1]
    out = lw.output
    i = ln.Var("i")
    copy = ln.For("i", values_in.size, (ln.Store(out.name, i, ln.Load(values_in.name, i, values_in.type)),),
                  ln.LoopKind.VECTORIZE, 16)
    bn, bw, bc = ln.Var("n"), ln.Var("w"), ln.Var("c")
    row = clamp_index(to_i64(ln.Load(indices.name, ln.row_major([bn, bw], indices.shape), indices.type),
                             lw.dtype(1)), k)
    write = ln.Store(out.name, ln.row_major([bn, row, bc], values_in.shape),
                     ln.Load(inp.name, ln.row_major([bn, bw, bc], inp.shape), inp.type))
    nest = ln.loops([("n", n), ("w", w), ("c", c)], [write])
    return ln.Kernel(lw.name, tuple(a.param() for a in (values_in, indices, inp, out)), (copy, *nest))

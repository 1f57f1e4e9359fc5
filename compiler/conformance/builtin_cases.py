"""Hypothesis strategies for the built-in conformance suite: one graph family per operator,
plus the fused int8 patterns models are made of.

Each strategy draws a :class:`Case`: a small graph, inputs whose values reach
the edges of their types, and the operator it exercises. Shapes, attributes,
zero points and scales are drawn too. Cases whose reference result is
unpredictable (a REQUIRE fails) are dropped by the suite, not here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.graph import Graph
from tosac.ir.ops import ResizeMode, RoundingMode


@dataclass
class Case:
    op: str
    graph: Graph
    inputs: dict[str, np.ndarray]


def values(rng: np.random.Generator, dtype: DType, shape, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """Random values of ``dtype``, a quarter of the time all at the extremes."""
    lo = dtype.min if lo is None else lo
    hi = dtype.max if hi is None else hi
    out = rng.integers(lo, hi, size=shape, endpoint=True)
    if rng.random() < 0.25:
        out = np.where(rng.random(shape) < 0.5, lo, hi)
    return np.asarray(out).astype(dtype.storage)


small_shape = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


@st.composite
def _elementwise(draw, op: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(small_shape)
    other = tuple(d if draw(st.booleans()) else 1 for d in shape)
    g = GraphBuilder()
    logical = op.startswith("LOGICAL_") and "SHIFT" not in op
    dtype = DType.BOOL if logical else draw(st.sampled_from([DType.INT8, DType.INT16, DType.INT32])) \
        if op in ("BITWISE_AND", "BITWISE_OR", "BITWISE_XOR", "BITWISE_NOT",
                  "ARITHMETIC_RIGHT_SHIFT", "LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT", "MUL") else DType.INT32
    x = g.input("x", dtype, shape)
    half = op in ("ADD", "SUB", "ABS")           # keep most sums in range: overflow is unpredictable
    lo, hi = (-(1 << 30), 1 << 30) if half else (None, None)
    xv = rng.integers(0, 2, shape).astype(bool) if logical else values(rng, dtype, shape, lo, hi)
    inputs = {"x": xv}
    if op in ("LOGICAL_NOT", "BITWISE_NOT", "ABS", "CLZ"):
        g.output(getattr(g, op.lower())(x))
        return Case(op, g.build(), inputs)
    y = g.input("y", dtype, other)
    if logical:
        inputs["y"] = rng.integers(0, 2, other).astype(bool)
    elif "SHIFT" in op:
        inputs["y"] = values(rng, dtype, other, 0, dtype.bits - 1)
    elif op == "INTDIV":
        yv = values(rng, dtype, other)
        inputs["y"] = np.where(yv == 0, 1, yv).astype(dtype.storage)
    else:
        inputs["y"] = values(rng, dtype, other, lo, hi)
    if op == "MUL":
        out = g.mul(x, y, shift=draw(st.sampled_from([0, 1, 13, 31])) if dtype is DType.INT32 else 0)
    elif op == "ARITHMETIC_RIGHT_SHIFT":
        out = g.arithmetic_right_shift(x, y, round=draw(st.booleans()))
    else:
        out = getattr(g, op.lower())(x, y)
    g.output(out)
    return Case(op, g.build(), inputs)


@st.composite
def _unary_int(draw, op: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(small_shape)
    g = GraphBuilder()
    if op == "SELECT":
        c, a, b = g.input("c", DType.BOOL, shape), g.input("a", DType.INT8, shape), g.input("b", DType.INT8, shape)
        g.output(g.select(c, a, b))
        return Case(op, g.build(), {"c": rng.integers(0, 2, shape).astype(bool), "a": values(rng, DType.INT8, shape),
                                    "b": values(rng, DType.INT8, shape)})
    dtype = draw(st.sampled_from([DType.INT8, DType.INT16]))
    x = g.input("x", dtype, shape)
    xv = values(rng, dtype, shape)
    if op == "NEGATE":
        zp = (int(rng.integers(-128, 128)), int(rng.integers(-128, 128))) if dtype is DType.INT8 else (0, 0)
        out = g.negate(x, input_zp=zp[0], output_zp=zp[1])
    elif op == "CLAMP":
        lo = int(rng.integers(dtype.min, 0))
        out = g.clamp(x, min_val=lo, max_val=int(rng.integers(lo, dtype.max)))
    elif op == "TABLE":
        size = 256 if dtype is DType.INT8 else 513
        table = values(rng, dtype, (size,)) if dtype is DType.INT8 else \
            np.cumsum(rng.integers(-200, 200, size)).clip(-32768, 32767).astype(np.int16)
        out = g.table(x, table)
    elif op == "CAST":
        out = g.cast(x, draw(st.sampled_from([t for t in (DType.BOOL, DType.INT8, DType.INT16, DType.INT32)
                                              if t is not dtype])))
    elif op == "IDENTITY":
        out = g.identity(x)
    else:                                                        # RESCALE
        return draw(_rescale(rng, shape))
    g.output(out)
    return Case(op, g.build(), {"x": xv})


@st.composite
def _rescale(draw, rng: np.random.Generator, shape) -> Case:
    in_t = draw(st.sampled_from([DType.INT8, DType.INT16, DType.INT32, DType.UINT8]))
    out_t = draw(st.sampled_from([DType.INT8, DType.INT16, DType.INT32] + ([DType.UINT8] if in_t is DType.INT8 else [])))
    if in_t is DType.UINT8:
        out_t = DType.INT8
    scale32 = in_t is not DType.INT16 or draw(st.booleans())
    channels = shape[-1]
    per_channel = draw(st.booleans())
    n = channels if per_channel else 1
    mult = rng.integers(1 << 20, 1 << 31 if scale32 else 1 << 15, n)
    shift = rng.integers(20, 45, n)
    mode = draw(st.sampled_from(list(RoundingMode)))
    g = GraphBuilder()
    x = g.input("x", in_t, shape)
    zp_in = 0 if in_t in (DType.INT32, DType.INT16) else int(rng.integers(in_t.min, in_t.max + 1))
    zp_out = 0 if out_t in (DType.INT32, DType.INT16) else int(rng.integers(out_t.min, out_t.max + 1))
    g.output(g.rescale(x, out_t, multiplier=mult, shift=shift, input_zp=zp_in, output_zp=zp_out,
                       scale32=scale32, rounding_mode=mode, per_channel=per_channel))
    return Case("RESCALE", g.build(), {"x": values(rng, in_t, shape)})


@st.composite
def _data(draw, op: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple))
    rank = len(shape)
    dtype = draw(st.sampled_from([DType.INT8, DType.INT16, DType.INT32]))
    g = GraphBuilder()
    x = g.input("x", dtype, shape)
    axis = draw(st.integers(0, rank - 1))
    if op == "TRANSPOSE":
        out = g.transpose(x, perms=list(draw(st.permutations(range(rank)))))
    elif op == "REVERSE":
        out = g.reverse(x, axis=axis)
    elif op == "PAD":
        out = g.pad(x, [int(v) for v in rng.integers(0, 3, 2 * rank)], pad_const=int(rng.integers(dtype.min, dtype.max)))
    elif op == "TILE":
        out = g.tile(x, [int(v) for v in rng.integers(1, 3, rank)])
    elif op == "CONCAT":
        out = g.concat(x, g.input("y", dtype, shape), axis=axis)
    elif op == "SLICE":
        start = [int(rng.integers(0, d)) for d in shape]
        out = g.slice(x, start, [int(rng.integers(1, d - s + 1)) for d, s in zip(shape, start)])
    elif op == "RESHAPE":
        out = g.reshape(x, [int(np.prod(shape))] if rank > 1 else [1, shape[0]])
    elif op == "ARGMAX":
        x = g.input("x8", DType.INT8, shape)
        out = g.argmax(x, axis=axis)
    elif op in ("REDUCE_ALL", "REDUCE_ANY"):
        x = g.input("b", DType.BOOL, shape)
        out = getattr(g, op.lower())(x, axis=axis)
    elif op == "REDUCE_SUM":
        x = g.input("x32", DType.INT32, shape)
        out = g.reduce_sum(x, axis=axis)
    else:
        out = getattr(g, op.lower())(x, axis=axis)
    g.output(out)
    graph = g.build()
    inputs = {}
    for name, ttype in graph.input_types().items():
        if ttype.dtype is DType.BOOL:
            inputs[name] = rng.integers(0, 2, ttype.shape).astype(bool)
        elif name == "x32":
            inputs[name] = values(rng, DType.INT32, ttype.shape, -10**6, 10**6)
        else:
            inputs[name] = values(rng, ttype.dtype, ttype.shape)
    return Case(op, graph, inputs)


@st.composite
def _gather_scatter(draw, op: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, k, c = (draw(st.integers(1, 4)) for _ in range(3))
    w = draw(st.integers(1, k))
    dtype = draw(st.sampled_from([DType.INT8, DType.INT16, DType.INT32]))
    g = GraphBuilder()
    vals = g.input("values", dtype, (n, k, c))
    idx = g.input("indices", DType.INT32, (n, w))
    inputs = {"values": values(rng, dtype, (n, k, c)),
              "indices": np.stack([rng.permutation(k)[:w] for _ in range(n)]).astype(np.int32)}
    if op == "GATHER":
        g.output(g.gather(vals, idx))
    else:
        rows = g.input("rows", dtype, (n, w, c))
        inputs["rows"] = values(rng, dtype, (n, w, c))
        g.output(g.scatter(vals, idx, rows))
    return Case(op, g.build(), inputs)


@st.composite
def _resize(draw, op: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w, c = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    sy, sx = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    mode = draw(st.sampled_from([ResizeMode.NEAREST, ResizeMode.BILINEAR]))
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, h, w, c))
    g.output(g.resize(x, scale=[2 * sy, 2, 2 * sx, 2], offset=[0, 0], border=[2 * sy - 2, 2 * sx - 2], mode=mode))
    return Case(op, g.build(), {"x": values(rng, DType.INT8, (1, h, w, c))})


@st.composite
def _tensor(draw, op: str) -> Case:
    """Convolutions, MATMUL and pooling, int8 and int16, constant or runtime weights."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = GraphBuilder()
    wide = draw(st.integers(0, 4)) == 0                      # int16 x int8 -> int48 now and then
    dt = DType.INT16 if wide else DType.INT8
    zp = 0 if wide else int(rng.integers(-128, 128))
    inputs = {}

    def weights(shape):
        data = values(rng, DType.INT8, shape)
        if draw(st.integers(0, 3)) == 0:
            inputs["w"] = data
            return g.input("w", DType.INT8, shape)
        return g.const(data)

    h, w, ic, oc = (draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 9)),
                    draw(st.integers(1, 12)))
    k = draw(st.integers(1, 3))
    pad = tuple(draw(st.integers(0, k - 1)) for _ in range(4))
    if h + pad[0] + pad[1] < k or w + pad[2] + pad[3] < k:
        pad = (k - 1,) * 4
    hp, wp = h + pad[0] + pad[1], w + pad[2] + pad[3]
    stride = 1 if (hp - k) % 2 or (wp - k) % 2 else draw(st.integers(1, 2))
    if op == "MATMUL":
        m, kk, n = draw(st.integers(1, 9)), draw(st.integers(1, 20)), draw(st.integers(1, 20))
        x = g.input("x", dt, (1, m, kk))
        if wide:
            b = g.input("w", DType.INT16, (1, kk, n))
            inputs["w"] = values(rng, DType.INT16, (1, kk, n))
        else:
            b = weights((1, kk, n))
        b_zp = 0 if wide else int(rng.integers(-128, 128)) * draw(st.integers(0, 1))
        g.output(g.matmul(x, b, a_zp=zp, b_zp=b_zp))
        inputs["x"] = values(rng, dt, (1, m, kk))
        return Case(op, g.build(), inputs)
    x_shape = (1, 2, h, w, ic) if op == "CONV3D" else (1, h, w, ic)
    x = g.input("x", dt, x_shape)
    inputs["x"] = values(rng, dt, x_shape)
    acc = DType.INT48 if wide else DType.INT32
    bias = lambda n: g.const(values(rng, acc, (n,), -9999, 9999), acc)  # noqa: E731
    if op == "CONV2D":
        out = g.conv2d(x, weights((oc, k, k, ic)), bias(oc), pad=pad, stride=(stride, stride), input_zp=zp)
    elif op == "DEPTHWISE_CONV2D":
        mult = draw(st.integers(1, 2))
        out = g.depthwise_conv2d(x, weights((k, k, ic, mult)), bias(ic * mult), pad=pad, stride=(stride, stride),
                                 input_zp=zp)
    elif op == "TRANSPOSE_CONV2D":
        out = g.transpose_conv2d(x, weights((oc, k, k, ic)), bias(oc), out_pad=(0, 0, 0, 0),
                                 stride=(stride, stride), input_zp=zp)
    elif op == "CONV3D":
        out = g.conv3d(x, weights((oc, 1, k, k, ic)), bias(oc), pad=(0, 0) + pad, input_zp=zp)
    elif op == "AVG_POOL2D":
        out = g.avg_pool2d(x, kernel=(k, k), stride=(stride, stride), pad=pad, input_zp=zp, output_zp=0 if wide else -zp)
    else:
        out = g.max_pool2d(x, kernel=(k, k), stride=(stride, stride), pad=pad)
    g.output(out)
    return Case(op, g.build(), inputs)


@st.composite
def _fused(draw, op: str) -> Case:
    """The int8 patterns of real models: conv/depthwise/FC + per-channel RESCALE + CLAMP (+ residual ADD)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = GraphBuilder()
    h, w, c, oc = draw(st.integers(2, 8)), draw(st.integers(2, 8)), draw(st.integers(1, 16)), draw(st.integers(1, 24))
    x = g.input("x", DType.INT8, (1, h, w, c))
    inputs = {"x": values(rng, DType.INT8, (1, h, w, c))}
    zp = int(rng.integers(-128, 128))
    kind = op.split(":")[1]
    if kind == "fc":
        y = g.matmul(g.reshape(x, [1, 1, h * w * c]), g.const(values(rng, DType.INT8, (1, h * w * c, oc))), a_zp=zp)
    elif kind == "depthwise":
        oc = c
        y = g.depthwise_conv2d(x, g.const(values(rng, DType.INT8, (3, 3, c, 1))), pad=(1, 1, 1, 1), input_zp=zp)
    else:
        y = g.conv2d(x, g.const(values(rng, DType.INT8, (oc, 3, 3, c))),
                     g.const(values(rng, DType.INT32, (oc,), -3000, 3000)), pad=(1, 1, 1, 1), input_zp=zp)
    mode = draw(st.sampled_from([RoundingMode.SINGLE_ROUND, RoundingMode.DOUBLE_ROUND]))
    y = g.rescale(y, DType.INT8, multiplier=rng.integers(1 << 29, 1 << 31, oc), shift=rng.integers(36, 42, oc),
                  output_zp=int(rng.integers(-10, 10)), per_channel=True, rounding_mode=mode)
    y = g.clamp(y, min_val=-128, max_val=int(rng.integers(0, 128)))
    if kind == "residual":
        r = g.input("r", DType.INT8, y.shape)
        inputs["r"] = values(rng, DType.INT8, y.shape)
        a = g.rescale(y, DType.INT32, multiplier=1 << 30, shift=30, input_zp=0)
        b = g.rescale(r, DType.INT32, multiplier=1 << 30, shift=31, input_zp=3)
        y = g.rescale(g.add(a, b), DType.INT8, multiplier=1 << 30, shift=31, output_zp=-1)
    g.output(y)
    return Case(op, g.build(), inputs)


@st.composite
def _control_flow(draw, op: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = GraphBuilder()
    shape = draw(small_shape)
    x = g.input("x", DType.INT32, shape)
    inputs = {"x": values(rng, DType.INT32, shape, -1000, 1000)}
    if op == "COND_IF":
        c = g.input("c", DType.BOOL, ())
        inputs["c"] = np.array(bool(rng.integers(0, 2)))
        then, other = g.block("then"), g.block("else")
        for body, fn in ((then, "add"), (other, "sub")):
            v = body.input("v", DType.INT32, shape)
            body.output(getattr(body, fn)(v, body.const(np.full(shape, 7, np.int32))))
        (out,) = g.op("COND_IF", [c, x], out_dtypes=[DType.INT32], then_graph="then", else_graph="else")
        g.output(out)
        return Case(op, g.build(), inputs)
    n = g.input("n", DType.INT32, ())
    inputs["n"] = np.array(int(rng.integers(0, 5)), np.int32)
    cond, body = g.block("cond"), g.block("body")
    ci = cond.input("i", DType.INT32, ())
    cond.input("v", DType.INT32, shape)
    cond.output(cond.greater(ci, cond.const(np.array(0, np.int32))))
    bi, bv = body.input("i", DType.INT32, ()), body.input("v", DType.INT32, shape)
    body.output(body.sub(bi, body.const(np.array(1, np.int32))), body.add(bv, bv))
    outs = g.op("WHILE_LOOP", [n, x], out_dtypes=[DType.INT32, DType.INT32], cond_graph="cond", body_graph="body")
    g.output(*outs)
    return Case(op, g.build(), inputs)


_FAMILIES: dict[str, Callable[[str], st.SearchStrategy]] = {}
for _op in ("ADD SUB MAXIMUM MINIMUM MUL INTDIV BITWISE_AND BITWISE_OR BITWISE_XOR BITWISE_NOT ARITHMETIC_RIGHT_SHIFT "
            "LOGICAL_LEFT_SHIFT LOGICAL_RIGHT_SHIFT LOGICAL_AND LOGICAL_OR LOGICAL_XOR LOGICAL_NOT ABS CLZ EQUAL "
            "GREATER GREATER_EQUAL").split():
    _FAMILIES[_op] = _elementwise
for _op in "SELECT NEGATE CLAMP TABLE CAST IDENTITY RESCALE".split():
    _FAMILIES[_op] = _unary_int
for _op in ("TRANSPOSE REVERSE PAD TILE CONCAT SLICE RESHAPE ARGMAX REDUCE_ALL REDUCE_ANY REDUCE_MAX REDUCE_MIN "
            "REDUCE_SUM").split():
    _FAMILIES[_op] = _data
for _op in "GATHER SCATTER".split():
    _FAMILIES[_op] = _gather_scatter
_FAMILIES["RESIZE"] = _resize
for _op in "CONV2D CONV3D DEPTHWISE_CONV2D TRANSPOSE_CONV2D MATMUL AVG_POOL2D MAX_POOL2D".split():
    _FAMILIES[_op] = _tensor
for _op in ("FUSED:conv", "FUSED:depthwise", "FUSED:fc", "FUSED:residual"):
    _FAMILIES[_op] = _fused
for _op in ("COND_IF", "WHILE_LOOP"):
    _FAMILIES[_op] = _control_flow

OPS = tuple(_FAMILIES)


def strategy(op: str) -> st.SearchStrategy:
    """Cases for ``op`` (an operator name or ``FUSED:<pattern>``)."""
    return _FAMILIES[op](op)

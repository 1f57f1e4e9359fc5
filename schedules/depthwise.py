"""The depthwise int8 template: padded int16 activations, taps unrolled, products in int16.

Depthwise convolution reduces over only KH x KW taps per channel, so dot-product
instructions do not help; what matters is doing little per multiply. A
prologue stores ``x - input_zp`` as int16 with the padding already applied
(zeros), so the inner loop has no bounds checks. With int8 weights and a zero
weight zero point, ``|x - zp| <= 255`` and ``|w| <= 128`` make every product fit
int16 exactly (``255 * 128 = 32640``), so products are computed 32 lanes at a
time in int16 and only then widened and summed in int32 — the same bits as the
spec's int32 accumulation, in fewer instructions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tosac.schedules import loopnest as ln
from tosac.schedules.dense import pack_activations
from tosac.schedules.generic import Schedule, TensorArg
from tosac.schedules.space import Config, ConfigSpace
from tosac.schedules.taps import MAX_UNROLLED_TAPS

TAP_BLOCK = 8                 # taps summed per step of a looped (big) kernel


@dataclass
class DepthwiseCompute:
    name: str
    input: TensorArg                       # NHWC int8
    output: TensorArg
    weights: np.ndarray                    # int8 [KH, KW, C]
    input_zp: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]
    finalize: Callable[[ln.Expr, list[ln.Expr], ln.Expr], ln.Expr]
    epilogue_inputs: list[TensorArg] = field(default_factory=list)

    @property
    def mac_count(self) -> int:
        kh, kw, _ = self.weights.shape
        return int(np.prod(self.output.shape, dtype=np.int64)) * kh * kw


def depthwise_space(c: DepthwiseCompute, vector_bits: int) -> ConfigSpace:
    space = ConfigSpace("depthwise")
    channels = c.weights.shape[2]
    lanes = max(8, vector_bits // 32)
    while lanes > 8 and lanes > channels:
        lanes //= 2
    space.add("lanes", (8, 16, 32, 64), lanes, "channels per vector (int16 products)")
    space.add("threads", (1, 2, 4), 1, "threads over output rows")
    return space


def depthwise_schedule(c: DepthwiseCompute, config: Config) -> Schedule:
    lanes, threads = int(config["lanes"]), int(config["threads"])
    kh, kw, channels = c.weights.shape
    batch, ih, iw, _ = c.input.shape
    top, bottom, left, right = c.pad
    ihp, iwp = ih + top + bottom, iw + left + right
    _, oh, ow, _ = c.output.shape
    act = ln.Param(f"{c.name}.act", "i16", batch * ihp * iwp * channels)
    wname = f"{c.name}.w16"
    prologue = pack_activations(f"{c.name}_pack", c.input, c.pad, c.input_zp, "i16", 0, act, (ihp, iwp, channels))
    parallel = threads > 1 and batch == 1 and oh > 1
    n = ln.Const(0) if parallel else ln.Var("n")
    y, x, ch = (ln.Var(v) for v in ("oy", "ox", "c"))
    sy, sx = c.stride
    dy, dx = c.dilation

    def tap(ky: ln.Expr, kx: ln.Expr) -> ln.Expr:
        """One int16 product, widened to int32."""
        a = ln.Load(act.name, ln.row_major([n, y * sy + ky * dy, x * sx + kx * dx, ch], [batch, ihp, iwp, channels]),
                    "i16")
        w = ln.Load(wname, ln.row_major([ky, kx, ch], [kh, kw, channels]), "i16")
        return ln.cast(ln.binary("mul", a, w), "i32")

    out_index = ln.row_major([n, y, x, ch], c.output.shape)
    locals_: dict[str, tuple[str, int]] = {}
    if kh * kw <= MAX_UNROLLED_TAPS:
        acc: ln.Expr = ln.Const(0, "i32")
        for ky in range(kh):
            for kx in range(kw):
                acc = acc + tap(ln.Const(ky), ln.Const(kx))
        pixel: tuple[ln.Stmt, ...] = (ln.For("c", channels, (ln.Store(c.output.name, out_index,
                                                                     c.finalize(acc, [n, y, x], ch)),),
                                             ln.LoopKind.VECTORIZE, lanes),)
    else:
        locals_["acc"] = ("i32", channels)
        pixel = _looped_taps(c, tap, out_index, [n, y, x], lanes)
    row = ln.For("ox", ow, pixel)
    if parallel:
        body: tuple[ln.Stmt, ...] = (ln.For("oy", oh, (row,), ln.LoopKind.PARALLEL),)
    else:
        threads = 1
        body = (ln.For("n", batch, (ln.For("oy", oh, (row,)),)),)
    params = ln.unique_params([c.input.param(), act, ln.Param(wname, "i16", c.weights.size),
                      *[a.param() for a in c.epilogue_inputs], c.output.param()])
    constants = {wname: c.weights.astype(np.int16)}
    return Schedule(ln.Kernel(c.name, params, body, locals_), threads, prologue, [act], constants)


def _looped_taps(c: DepthwiseCompute, tap: Callable[[ln.Expr, ln.Expr], ln.Expr], out_index: ln.Expr,
                 pos: list[ln.Expr], lanes: int) -> tuple[ln.Stmt, ...]:
    """One output pixel of a big kernel: taps looped (TAP_BLOCK per step) into a stack row of accumulators.

    Unrolling thousands of taps into one expression (a 64x64 kernel is legal) would make an expression
    thousands of nodes deep and a huge function; int32 sums wrap, so the order does not change the bits.
    """
    kh, kw, channels = c.weights.shape
    ch, ky, kb = ln.Var("c"), ln.Var("ky"), ln.Var("kb")
    row = ln.Load("acc", ch, "i32")

    def accumulate(taps: list[ln.Expr]) -> ln.Stmt:
        total: ln.Expr = row
        for t in taps:
            total = total + t
        return ln.For("c", channels, (ln.Store("acc", ch, total),), ln.LoopKind.VECTORIZE, lanes)

    blocks, rest = divmod(kw, TAP_BLOCK)
    per_row: list[ln.Stmt] = []
    if blocks:
        per_row.append(ln.For("kb", blocks, (accumulate([tap(ky, kb * TAP_BLOCK + u) for u in range(TAP_BLOCK)]),)))
    if rest:
        per_row.append(accumulate([tap(ky, ln.Const(blocks * TAP_BLOCK + u)) for u in range(rest)]))
    return (ln.For("c", channels, (ln.Store("acc", ch, ln.Const(0, "i32")),), ln.LoopKind.VECTORIZE, lanes),
            ln.For("ky", kh, tuple(per_row)),
            ln.For("c", channels, (ln.Store(c.output.name, out_index, c.finalize(row, pos, ch)),),
                   ln.LoopKind.VECTORIZE, lanes))

"""The depthwise int8 template: taps in dot-product groups (``kind`` = a dot-product kind), or int16 products.

Dot-product kinds (``vnni``, ``sdot``, ``avx2``; see
``microkernels.depthwise``): a prologue interleaves each output column's
horizontal taps per channel, so one instruction sums ``g`` taps of a vector of
channels; a block of ``pixels`` output columns shares each weight load; the
raw sums plus a per-channel correction go through the fused epilogue.

``int16`` (every target): a prologue stores ``x - input_zp`` as int16 with the
padding applied (zeros), so the inner loop has no bounds checks. With int8
weights and a zero weight zero point, ``|x - zp| <= 255`` and ``|w| <= 128``
make every product fit int16 exactly (``255 * 128 = 32640``), so products are
computed in int16 and only then widened and summed in int32 — the same bits
as the spec's int32 accumulation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tosac.schedules import loopnest as ln
from tosac.schedules.dense import encode_activation, pack_activations
from tosac.schedules.generic import Schedule, TensorArg
from tosac.schedules.microkernels.base import DotKernel, kind_for, kinds_for
from tosac.schedules.microkernels.depthwise import (DepthwiseGeometry, depthwise_block, pack_depthwise_weights,
                                                    tap_groups)
from tosac.schedules.space import Config, ConfigSpace
from tosac.schedules.taps import MAX_UNROLLED_TAPS, all_of, in_bounds
from tosac.targets import Target

TAP_BLOCK = 8                 # taps summed per step of a looped (big) kernel
INT16 = "int16"               # the ``kind`` knob's value for int16 products
MAX_DOT_TAP_GROUPS = 4        # wider kernels (groups of taps per row) take the int16 products


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


def depthwise_space(c: DepthwiseCompute, target: Target) -> ConfigSpace:
    space = ConfigSpace("depthwise")
    channels = c.weights.shape[2]
    dots = [k.name for k in _dot_kinds(c, target)]
    space.add("kind", (*dots, INT16), dots[0] if dots else INT16, "a dot-product kind (taps in its groups), or int16")
    lanes = max(8, target.vector_bits // 32)
    while lanes > 8 and lanes > channels:
        lanes //= 2
    space.add("lanes", (8, 16, 32, 64), lanes, "channels per vector (int16 products)")
    space.add("pixels", (1, 2, 4), 4, "output columns per block (dot-product kinds)")
    space.add("threads", (1, 2, 4), 1, "threads over output rows")
    return space


def _dot_kinds(c: DepthwiseCompute, target: Target) -> list[DotKernel]:
    """The target's dot-product kinds that can take this layer (a few groups of taps per kernel row)."""
    kw = c.weights.shape[1]
    return [k for k in kinds_for(target) if k.k_group > 1 and tap_groups(kw, k) <= MAX_DOT_TAP_GROUPS]


def depthwise_schedule(c: DepthwiseCompute, config: Config, target: Target) -> Schedule:
    if config["kind"] != INT16:
        return _dot_schedule(c, config, kind_for(target, str(config["kind"])))
    lanes, threads = int(config["lanes"]), int(config["threads"])
    kh, kw, channels = c.weights.shape
    batch, ih, iw, _ = c.input.shape
    top, bottom, left, right = c.pad
    ihp, iwp = ih + top + bottom, iw + left + right
    _, oh, ow, _ = c.output.shape
    act = ln.Param(f"{c.name}.act", "i16", batch * ihp * iwp * channels)
    wname = f"{c.name}.w16"
    prologue = pack_activations(f"{c.name}_pack", c.input, c.pad, c.input_zp, "i16", 0, act, (ihp, iwp, channels),
                                threads)
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


def _dot_schedule(c: DepthwiseCompute, config: Config, micro: DotKernel) -> Schedule:
    """Taps in dot-product groups: the prologue packs them, blocks of ``pixels`` columns x ``lanes`` channels."""
    pixels, threads = int(config["pixels"]), int(config["threads"])
    lanes, g = micro.lanes, micro.k_group
    kh, kw, channels = c.weights.shape
    groups = tap_groups(kw, micro)
    padded_channels = -(-channels // lanes) * lanes
    batch, ih, _, _ = c.input.shape
    top, bottom, _, _ = c.pad
    ihp = ih + top + bottom
    _, oh, ow, _ = c.output.shape
    act = ln.Param(f"{c.name}.taps", micro.act_type, batch * ihp * ow * groups * padded_channels * g)
    wname, cname = f"{c.name}.wtaps", f"{c.name}.corr"
    offset = micro.zp_correction
    correction = np.zeros(channels, dtype=np.int64)
    if offset >= 0:               # sum((x + offset) * w) - (offset + zp) * sum(w) = sum((x - zp) * w)
        correction = -(offset + c.input_zp) * c.weights.astype(np.int64).sum(axis=(0, 1))
    constants = {wname: pack_depthwise_weights(c.weights, micro, padded_channels),
                 cname: correction.astype(np.int32)}
    prologue = _pack_taps(c, micro, act, groups, padded_channels, threads)

    parallel = threads > 1 and batch == 1 and oh > 1
    n = ln.Const(0) if parallel else ln.Var("n")
    oy, oxb = ln.Var("oy"), ln.Var("oxb")
    geo = DepthwiseGeometry((kh, kw), c.dilation[0], groups, padded_channels, ow, pixels)
    emit = depthwise_block(micro, geo, act.name, wname)
    features = {"mr": pixels, "nr": lanes, "k": kh * groups * g, "lanes": lanes}
    row = n * ln.Const(ihp) + oy * ln.Const(c.stride[0])

    def block(cb: ln.Expr, width: int) -> tuple[ln.Stmt, ...]:
        call = ln.MicroKernel(f"{micro.name}_dw{pixels}x{lanes}", emit, {"row": row, "ox0": oxb * pixels, "cb": cb},
                              features)
        p, ch = ln.Var("p"), ln.Var("ch")
        ox, channel = oxb * pixels + p, cb * lanes + ch
        acc = ln.binary("add", ln.Load("tile", p * lanes + ch, "i32"), ln.Load(cname, channel, "i32"))
        store = ln.Store(c.output.name, ln.row_major([n, oy, ox, channel], c.output.shape),
                         c.finalize(acc, [n, oy, ox], channel))
        epilogue = ln.For("p", pixels, (ln.If(ln.binary("slt", ox, ln.Const(ow)),
                                             (ln.For("ch", width, (store,), ln.LoopKind.VECTORIZE,
                                                     ln.vector_factor(width, min(lanes, 16))),)),))
        return call, epilogue

    full, tail = divmod(channels, lanes)
    columns: tuple[ln.Stmt, ...] = ((ln.For("cb", full, block(ln.Var("cb"), lanes)),) if full else ()) + (
        block(ln.Const(full), tail) if tail else ())
    row_loop = ln.For("oxb", -(-ow // pixels), columns)
    if parallel:
        body: tuple[ln.Stmt, ...] = (ln.For("oy", oh, (row_loop,), ln.LoopKind.PARALLEL),)
    else:
        threads = 1
        body = (ln.For("n", batch, (ln.For("oy", oh, (row_loop,)),)),)
    params = ln.unique_params([c.input.param(), act, ln.Param(wname, micro.weight_type, constants[wname].size),
                               ln.Param(cname, "i32", channels), *[a.param() for a in c.epilogue_inputs],
                               c.output.param()])
    kernel = ln.Kernel(c.name, params, body, {"tile": ("i32", pixels * lanes)})
    return Schedule(kernel, threads, prologue, [act], constants)


def _pack_taps(c: DepthwiseCompute, micro: DotKernel, act: ln.Param, groups: int, padded_channels: int,
               threads: int) -> ln.Kernel:
    """act[n][y][ox][j][ch][k] = encode(input[n][y - top][ox * sx + (j * g + k) * dx - left][ch]) (the encoded
    zero point outside the input and beyond the kernel's width; channels past the real ones are not written)."""
    batch, ih, iw, channels = c.input.shape
    top, bottom, left, _ = c.pad
    ihp = ih + top + bottom
    _, _, ow, _ = c.output.shape
    _, kw, _ = c.weights.shape
    g, sx, dx = micro.k_group, c.stride[1], c.dilation[1]
    n, y, ox, ch = (ln.Var(v) for v in ("n", "y", "ox", "ch"))
    zp = ln.Const(c.input_zp, "i32")

    def encode(value: ln.Expr) -> ln.Expr:
        return encode_activation(value, zp, micro.act_type, micro.encode_offset())

    iy = y - ln.Const(top)
    row_inside = in_bounds(iy, ih) if top or bottom else None
    per_group = []
    for j in range(groups):
        values = []
        for k in range(g):
            kx = j * g + k
            if kx >= kw:
                values.append(encode(zp))
                continue
            ix = ox * ln.Const(sx) + ln.Const(kx * dx - c.pad[2])
            inside = all_of([row_inside, in_bounds(ix, iw)])
            src = ln.row_major([n, ln.clamp_index(iy, ih), ln.clamp_index(ix, iw), ch], c.input.shape)
            value = ln.cast(ln.Load(c.input.name, src, "i8"), "i32")
            values.append(encode(value if inside is None else ln.select(inside, value, zp)))
        at = ln.row_major([n, y, ox, ln.Const(j), ch], [batch, ihp, ow, groups, padded_channels]) * ln.Const(g)
        store = ln.InterleavedStore(act.name, at, values[0], tuple(values[1:]))
        # Only the real channels: the padded ones meet zero weights, so whatever their bytes hold adds 0.
        per_group.append(ln.For("ch", channels, (store,), ln.LoopKind.VECTORIZE, ln.vector_factor(channels)))
    inner = ln.loops([("n", batch), ("ox", ow)], per_group)
    if threads > 1 and ihp > 1:
        nest: tuple[ln.Stmt, ...] = (ln.For("y", ihp, inner, ln.LoopKind.PARALLEL),)
    else:
        nest = (ln.For("y", ihp, inner),)
    return ln.Kernel(f"{c.name}_taps", (c.input.param(), act), nest)

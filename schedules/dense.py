"""The packed int8 template: CONV2D (NHWC) and MATMUL with constant weights as an implicit GEMM.

Rows are output positions (M), columns output channels (N), the reduction is
(ky, kx, input channel) (K). Weights are packed at compile time into panels of
NR columns in the micro-kernel's layout; activations are packed once per run
(padding with the zero point, channels rounded up to the micro-kernel's
group, encoded for the instruction) by a prologue. The micro-kernel keeps an
MR x NR block of int32 accumulators in vector registers for the whole
reduction, writes it to an L1-resident tile, and the fused epilogue (bias,
zero-point correction, RESCALE, CLAMP, residual ADD) turns the tile into
output values. The correction term is exact (see ``microkernels.base``); the
register block and the weight formats are ``microkernels.gemm``.

Knobs: ``kind`` (micro-kernel), ``mr`` (rows per tile), ``nr_vectors``
(accumulator vectors per row; NR = lanes x nr_vectors), ``order`` (``nm``:
weight panel outer, reused from L1 across all rows; ``mn``: row tile outer),
``unroll_k``, ``threads``. Default: the best kind for the target, the largest
register block that fits its register file, ``nm`` order. Pruned weights add
two weight-specialised formats of this template (offered by
``sparse.add_sparse_knobs``): ``panel`` (each panel's all-zero groups left
out) and ``packed`` (N:M-packed: nonzeros packed into words, activations
shuffled to match).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tosac.schedules import loopnest as ln
from tosac.schedules.generic import Schedule, TensorArg
from tosac.schedules.microkernels.base import DotKernel, WeightFormat, kind_for, kinds_for, register_budget
from tosac.schedules.microkernels.gemm import GemmGeometry, gemm_kernel, pack_shuffled, pack_weights, panel_groups
from tosac.schedules.space import Config, ConfigSpace
from tosac.schedules.taps import all_of, in_bounds
from tosac.targets import Target


@dataclass
class DenseCompute:
    """An int8 x int8 -> int32 implicit GEMM with constant weights and a per-element epilogue."""
    name: str
    input: TensorArg                       # NHWC int8 activations
    output: TensorArg                      # final output, shape [*positions, N]
    weights: np.ndarray                    # int8 [KH, KW, IC, N]
    input_zp: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]         # top, bottom, left, right
    out_hw: tuple[int, int]
    finalize: Callable[[ln.Expr, list[ln.Expr], ln.Expr], ln.Expr]   # (acc i32, position, channel) -> stored
    epilogue_inputs: list[TensorArg] = field(default_factory=list)
    bias: np.ndarray | None = None         # constant int32 bias [N], folded into the per-channel correction

    @property
    def m(self) -> int:
        return self.input.shape[0] * self.out_hw[0] * self.out_hw[1]

    @property
    def n(self) -> int:
        return self.weights.shape[3]

    @property
    def mac_count(self) -> int:
        kh, kw, ic, n = self.weights.shape
        return self.m * n * kh * kw * ic

    @property
    def nonzero_mac_count(self) -> int:
        """The MACs with a nonzero weight: what a sparse schedule performs (and reports)."""
        return self.m * int(np.count_nonzero(self.weights))


def dense_space(compute: DenseCompute, target: Target) -> ConfigSpace:
    space = ConfigSpace("dense")
    kinds = kinds_for(target)
    space.add("kind", [k.name for k in kinds], kinds[0].name, "dot-product micro-kernel")
    regs = register_budget(target)
    if compute.m < 4:
        mr, nv = compute.m, min(16, regs // 2) // compute.m   # few rows: many columns keep the unit busy
    else:
        mr, nv = (6, 4) if regs == 32 else (4, 2) if target.vector_bits >= 256 else (4, 3)
    nv = max(1, min(nv, -(-compute.n // kinds[0].lanes)))      # no wider than the padded output channels
    space.add("mr", (1, 2, 3, 4, 5, 6, 8), mr, "output rows per register block")
    space.add("nr_vectors", (1, 2, 3, 4, 6, 8, 16), nv, "accumulator vectors per row")
    space.add("order", ("nm", "mn"), "nm", "loop order of weight panels (n) and row tiles (m)")
    space.add("unroll_k", (1, 2, 4), 2, "reduction groups unrolled per iteration")
    space.add("threads", (1, 2, 4), 1, "threads over the outer loop")
    return space


def column_correction(c: DenseCompute, micro: DotKernel) -> np.ndarray:
    """What to add to the raw dot product so it equals bias + sum((x - zp) * w), wrapped to int32 (int32
    addition wraps, so adding the constant bias here instead of per output gives the same bits)."""
    corr = np.zeros(c.n, dtype=np.int64)
    if micro.zp_correction >= 0:
        corr -= (micro.zp_correction + c.input_zp) * c.weights.astype(np.int64).sum(axis=(0, 1, 2))
    if c.bias is not None:
        corr += c.bias.astype(np.int64)
    return ((corr + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


def dense_schedule(c: DenseCompute, config: Config, target: Target) -> Schedule:
    micro = kind_for(target, config["kind"])
    mr, nv, threads = int(config["mr"]), int(config["nr_vectors"]), int(config["threads"])
    nr = micro.lanes * nv
    kh, kw, ic, n = c.weights.shape
    g = micro.k_group
    icp = -(-ic // g) * g
    batch, ih, iw, _ = c.input.shape
    top, bottom, left, right = c.pad
    ihp, iwp = ih + top + bottom, iw + left + right
    m = c.m
    act = ln.Param(f"{c.name}.act", micro.act_type, batch * ihp * iwp * icp)
    wname, cname = f"{c.name}.wpack", f"{c.name}.corr"
    constants = {wname: pack_weights(c.weights, micro, nr), cname: column_correction(c, micro)}
    prologue = pack_activations(f"{c.name}_pack", c.input, c.pad, c.input_zp, micro.act_type, micro.encode_offset(),
                                act, (ihp, iwp, icp), threads)

    geo = GemmGeometry(mr, nr, icp // g, m, c.out_hw, (ihp, iwp), (kh, kw), c.stride, c.dilation,
                       int(config["unroll_k"]))
    fmt = WeightFormat.of(config)
    nonzero = panel_groups(constants[wname]) if fmt is WeightFormat.PANEL else None
    packed = pack_shuffled(c.weights, micro, nr, int(config["window"])) if fmt is WeightFormat.PACKED else None
    emit = gemm_kernel(micro, geo, act.name, wname)
    density = None                                # steps run per dense step, for the cost model
    if nonzero is not None:
        density = sum(map(len, nonzero)) / max(len(nonzero) * geo.k_groups, 1)
    if packed is not None:
        density = sum(len(w.words) for steps in packed for w in steps) / max(len(packed) * nv * geo.k_groups, 1)
    m_tiles = -(-m // mr)
    full_panels, tail = divmod(n, nr)
    mt, np_ = ln.Var("mt"), ln.Var("np")

    def tile(panel: ln.Expr, width: int) -> tuple[ln.Stmt, ...]:
        features = {"mr": mr, "nr": nr, "k": kh * kw * icp, "lanes": micro.lanes}
        kernel_emit = emit
        if isinstance(panel, ln.Const) and density is not None:   # weight-specialised: this panel's nonzeros
            p = int(panel.value)
            kernel_emit = gemm_kernel(micro, geo, act.name, wname, groups=nonzero[p] if nonzero is not None else None,
                                      packed=packed[p] if packed is not None else None)
            features["density"] = density
        call = ln.MicroKernel(f"{micro.name}_{mr}x{nr}", kernel_emit, {"m0": mt * mr, "panel": panel}, features)
        return (call, tile_epilogue(c, cname, mt * mr, mr, nr, panel * nr, width, micro.lanes))

    panels_loop = (ln.For("np", full_panels, tile(np_, nr)),) if full_panels else ()
    tail_tile = tile(ln.Const(full_panels), tail) if tail else ()
    order = config["order"] if threads == 1 else "mn"
    if fmt in (WeightFormat.PANEL, WeightFormat.PACKED):   # panels unrolled at compile time: one kernel body each
        panels = [tile(ln.Const(p), nr) for p in range(full_panels)] + ([tail_tile] if tail else [])
        if order == "nm":
            body = tuple(ln.For("mt", m_tiles, t) for t in panels)
        else:
            kind_outer = ln.LoopKind.PARALLEL if threads > 1 else ln.LoopKind.SERIAL
            body = (ln.For("mt", m_tiles, tuple(s for t in panels for s in t), kind_outer),)
    elif order == "nm":
        body: tuple[ln.Stmt, ...] = ()
        if full_panels:
            body += (ln.For("np", full_panels, (ln.For("mt", m_tiles, tile(np_, nr)),)),)
        if tail:
            body += (ln.For("mt", m_tiles, tail_tile),)
    else:
        kind_outer = ln.LoopKind.PARALLEL if threads > 1 else ln.LoopKind.SERIAL
        body = (ln.For("mt", m_tiles, (*panels_loop, *tail_tile), kind_outer),)
    weight_params = [ln.Param(wname, micro.weight_type, constants[wname].size)]
    if packed is not None:                        # the packed words are immediates in the code
        del constants[wname]
        weight_params = []
    params = ln.unique_params([c.input.param(), *weight_params, ln.Param(cname, "i32", n), act,
                               *[a.param() for a in c.epilogue_inputs], c.output.param()])
    kernel = ln.Kernel(c.name, params, body, {"tile": ("i32", mr * nr)})
    return Schedule(kernel, threads if order == "mn" else 1, prologue, [act], constants)


def tile_epilogue(c: DenseCompute, corr: str, row0: ln.Expr, rows: int, tile_row: int, channel0: ln.Expr | None,
                  width: int, lanes: int) -> ln.For:
    """The fused epilogue of one register tile: output[row][channel] = finalize(tile[r][ch] + corr[channel]).

    Rows ``row0 + r`` (those past M are dropped), channels ``channel0 + ch`` (``ch`` when None); the tile
    holds ``tile_row`` int32 per row.
    """
    r, ch = ln.Var("r"), ln.Var("ch")
    row = row0 + r
    channel = ch if channel0 is None else channel0 + ch
    acc = ln.binary("add", ln.Load("tile", r * tile_row + ch, "i32"), ln.Load(corr, channel, "i32"))
    store = ln.Store(c.output.name, row * c.n + channel, c.finalize(acc, ln.unravel(row, c.output.shape[:-1]), channel))
    return ln.For("r", rows, (ln.If(ln.binary("slt", row, ln.Const(c.m)),
                                    (ln.For("ch", width, (store,), ln.LoopKind.VECTORIZE,
                                            ln.vector_factor(width, min(lanes, 16))),)),))


def encode_activation(value: ln.Expr, zero_point: ln.Expr, act_type: str, offset: int) -> ln.Expr:
    """An int32 activation as the packed buffer holds it: ``i16`` buffers ``x - zero point`` (padding is 0),
    ``i8`` buffers ``x + offset`` (the micro-kernel's encoding)."""
    return ln.cast(value - zero_point, "i16") if act_type == "i16" else ln.cast(value + offset, "i8")


def pack_activations(name: str, source: TensorArg, pad: tuple[int, int, int, int], input_zp: int, act_type: str,
                     offset: int, act: ln.Param, padded: tuple[int, int, int], threads: int = 1) -> ln.Kernel:
    """act[n, y, x, ch] = encode(input[n, y - top, x - left, ch]), or encode(zero point) outside
    (``encode_activation``). With ``threads`` > 1 the rows are split over threads (the loop over rows is outermost).
    """
    ihp, iwp, icp = padded
    batch, ih, iw, ic = source.shape
    top, _, left, _ = pad
    n, y, x = (ln.Var(v) for v in ("n", "y", "x"))
    iy, ix = y - top, x - left
    inside = all_of([in_bounds(iy, ih) if pad[0] or pad[1] else None,
                     in_bounds(ix, iw) if pad[2] or pad[3] else None])
    pad_value = ln.Const(input_zp, "i32")

    def store(ch: ln.Expr, real: bool = True, clamp: bool = False) -> ln.Store:
        """act at channel ``ch``: the input's value (``real``), or the zero point's; ``clamp`` keeps a vector of
        channels that runs past the real ones in bounds (a gather: only where needed)."""
        value = pad_value
        if real:
            channel = ln.clamp_index(ch, ic) if clamp else ch
            src = ln.row_major([n, ln.clamp_index(iy, ih), ln.clamp_index(ix, iw), channel], source.shape)
            value = ln.cast(ln.Load(source.name, src, "i8"), "i32")
            cond = all_of([inside, in_bounds(ch, ic) if clamp else None])
            value = value if cond is None else ln.select(cond, value, pad_value)
        return ln.Store(act.name, ln.row_major([n, y, x, ch], [batch, ihp, iwp, icp]),
                        encode_activation(value, pad_value, act_type, offset))

    if icp != ic and icp <= 16:
        # A few channels padded to a group (RGB -> 4): one store per channel, so LLVM vectorizes along the row
        # (a per-lane channel check in a vector of channels would be a gather per pixel).
        channels = [store(ln.Const(c), real=c < ic) for c in range(icp)]
    else:
        channels = [ln.For("ch", icp, (store(ln.Var("ch"), clamp=icp != ic),), ln.LoopKind.VECTORIZE,
                           ln.vector_factor(icp))]
    if threads > 1 and ihp > 1:
        nest = (ln.For("y", ihp, ln.loops([("n", batch), ("x", iwp)], channels), ln.LoopKind.PARALLEL),)
    else:
        nest = ln.loops([("n", batch), ("y", ihp), ("x", iwp)], channels)
    return ln.Kernel(name, (source.param(), act), nest)

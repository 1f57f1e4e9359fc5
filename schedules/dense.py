"""The packed int8 template: CONV2D (NHWC) and MATMUL with constant weights as an implicit GEMM.

Rows are output positions (M), columns output channels (N), the reduction is
(ky, kx, input channel) (K). Weights are packed at compile time into panels of
NR columns in the micro-kernel's layout; activations are packed once per run
(padding with the zero point, channels rounded up to the micro-kernel's
group, encoded for the instruction) by a prologue. The micro-kernel keeps an
MR x NR block of int32 accumulators in vector registers for the whole
reduction, writes it to an L1-resident tile, and the fused epilogue (bias,
zero-point correction, RESCALE, CLAMP, residual ADD) turns the tile into
output values. The correction term is exact (see ``microkernels``).

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

import llvmlite.ir as ir
import numpy as np

from tosac.schedules import loopnest as ln
from tosac.schedules import microkernels as mk
from tosac.schedules.generic import Schedule, TensorArg, _unique
from tosac.schedules.space import Config, ConfigSpace
from tosac.schedules.taps import all_of, in_bounds
from tosac.targets import Target

I64 = ir.IntType(64)


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


def _register_budget(target: Target) -> int:
    return 32 if target.vector_bits >= 512 else 16


def dense_space(compute: DenseCompute, target: Target) -> ConfigSpace:
    space = ConfigSpace("dense")
    kinds = mk.kinds_for(target)
    space.add("kind", [k.name for k in kinds], kinds[0].name, "dot-product micro-kernel")
    regs = _register_budget(target)
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


def _kind(config: Config, target: Target) -> mk.MicroKernelKind:
    return next(k for k in mk.kinds_for(target) if k.name == config["kind"])


def pack_weights(weights: np.ndarray, kind: mk.MicroKernelKind, nr: int) -> np.ndarray:
    """[KH, KW, IC, N] -> [panels, K/g, NR, g]: one panel's reduction step is contiguous vector loads."""
    kh, kw, ic, n = weights.shape
    g = kind.k_group
    icp = -(-ic // g) * g
    panels = -(-n // nr)
    w = np.zeros((kh, kw, icp, panels * nr), dtype=np.int64)
    w[:, :, :ic, :n] = weights
    w = w.reshape(kh * kw * icp // g, g, panels, nr).transpose(2, 0, 3, 1)
    return np.ascontiguousarray(w.astype(np.int16 if kind.weight_type == "i16" else np.int8))


def panel_groups(packed: np.ndarray) -> list[list[int]]:
    """Per weight panel ``[K/g, NR, g]``: the reduction groups with any nonzero weight (what panel-sparse code runs)."""
    return [np.nonzero(panel.reshape(panel.shape[0], -1).any(axis=1))[0].tolist() for panel in packed]


@dataclass(frozen=True)
class PackedWindow:
    """One window of ``width`` input channels of one tap in an N:M-packed panel.

    ``words`` holds, per packed word, the panel vector it feeds, the shuffle that gathers each lane's
    ``g`` activations from the window, and those lanes' weights (zeros where a lane has fewer nonzeros).
    """
    tap: int
    channel0: int
    width: int
    words: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]


def pack_shuffled(weights: np.ndarray, kind: mk.MicroKernelKind, nr: int, window: int) -> list[list[PackedWindow]]:
    """Per panel of ``nr`` output channels, the windows with a nonzero weight and their packed words.

    Within a window, each output channel's nonzero weights (in channel order) fill words of ``g``; a vector
    of ``lanes`` channels needs as many words as its densest lane. A 2:4 pattern in windows of 8 needs one
    word where the dense kernel runs two groups, 1:4 in windows of 16 one instead of four.
    """
    kh, kw, ic, n = weights.shape
    g, lanes = kind.k_group, kind.lanes
    icp = -(-ic // g) * g
    w = np.zeros((kh * kw, icp, -(-n // nr) * nr), dtype=np.int64)
    w[:, :ic, :n] = weights.reshape(kh * kw, ic, n)
    panels = []
    for p in range(w.shape[2] // nr):
        steps = []
        for tap in range(kh * kw):
            for c0 in range(0, icp, window):
                block = w[tap, c0:c0 + window, p * nr:(p + 1) * nr]           # [width, nr]
                words = []
                for j in range(nr // lanes):
                    vector = block[:, j * lanes:(j + 1) * lanes]
                    nonzero = [np.flatnonzero(vector[:, lane]) for lane in range(lanes)]
                    for k in range(-(-max(map(len, nonzero)) // g)):
                        mask: list[int] = []
                        vals: list[int] = []
                        for lane, idx in enumerate(nonzero):
                            pick = idx[k * g:(k + 1) * g]
                            mask += [int(x) for x in pick] + [0] * (g - len(pick))
                            vals += [int(vector[x, lane]) for x in pick] + [0] * (g - len(pick))
                        words.append((j, tuple(mask), tuple(vals)))
                if words:
                    steps.append(PackedWindow(tap, c0, block.shape[0], tuple(words)))
        panels.append(steps)
    return panels


def packed_word_ratio(weights: np.ndarray, kind: mk.MicroKernelKind, window: int) -> float:
    """Words the N:M-packed format runs per group the dense kernel runs (one vector of ``lanes`` channels wide)."""
    kh, kw, ic, n = weights.shape
    g, lanes = kind.k_group, kind.lanes
    icp, np_ = -(-ic // g) * g, -(-n // lanes) * lanes
    w = np.zeros((kh * kw, -(-icp // window) * window, np_), dtype=bool)
    w[:, :ic, :n] = weights.reshape(kh * kw, ic, n) != 0
    per_lane = w.reshape(kh * kw, -1, window, np_ // lanes, lanes).sum(axis=2)     # nonzeros per window and lane
    words = -(-per_lane.max(axis=3) // g)
    return float(words.sum()) / (kh * kw * (icp // g) * (np_ // lanes))


def column_correction(c: DenseCompute, kind: mk.MicroKernelKind) -> np.ndarray:
    """What to add to the raw dot product so it equals bias + sum((x - zp) * w), wrapped to int32 (int32
    addition wraps, so adding the constant bias here instead of per output gives the same bits)."""
    corr = np.zeros(c.n, dtype=np.int64)
    if kind.zp_correction >= 0:
        corr -= (kind.zp_correction + c.input_zp) * c.weights.astype(np.int64).sum(axis=(0, 1, 2))
    if c.bias is not None:
        corr += c.bias.astype(np.int64)
    return ((corr + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


def dense_schedule(c: DenseCompute, config: Config, target: Target) -> Schedule:
    kind = _kind(config, target)
    mr, nv, threads = int(config["mr"]), int(config["nr_vectors"]), int(config["threads"])
    nr = kind.lanes * nv
    kh, kw, ic, n = c.weights.shape
    g = kind.k_group
    icp = -(-ic // g) * g
    batch, ih, iw, _ = c.input.shape
    top, bottom, left, right = c.pad
    ihp, iwp = ih + top + bottom, iw + left + right
    oh, ow = c.out_hw
    m = c.m
    act = ln.Param(f"{c.name}.act", kind.act_type, batch * ihp * iwp * icp)
    wname, cname = f"{c.name}.wpack", f"{c.name}.corr"
    constants = {wname: pack_weights(c.weights, kind, nr), cname: column_correction(c, kind)}
    prologue = _pack_activations(c, kind, act, (ihp, iwp, icp))

    geometry = dict(m=m, oh=oh, ow=ow, ihp=ihp, iwp=iwp, icp=icp, kh=kh, kw=kw, stride=c.stride,
                    dilation=c.dilation, k_groups=kh * kw * icp // g, unroll=int(config["unroll_k"]))
    fmt = config.get("format", "dense")
    nonzero = panel_groups(constants[wname]) if fmt == "panel" else None
    packed = pack_shuffled(c.weights, kind, nr, int(config["window"])) if fmt == "packed" else None
    emit = _micro_kernel(kind, mr, nv, act.name, wname, geometry)
    density = None                                # steps run per dense step, for the cost model
    if nonzero is not None:
        density = sum(map(len, nonzero)) / max(len(nonzero) * geometry["k_groups"], 1)
    if packed is not None:
        density = sum(len(w.words) for steps in packed for w in steps) / max(len(packed) * nv * geometry["k_groups"], 1)
    m_tiles = -(-m // mr)
    full_panels, tail = divmod(n, nr)
    mt, np_ = ln.Var("mt"), ln.Var("np")

    def tile(panel: ln.Expr, width: int) -> tuple[ln.Stmt, ...]:
        features = {"mr": mr, "nr": nr, "k": kh * kw * icp, "lanes": kind.lanes}
        kernel_emit = emit
        if isinstance(panel, ln.Const) and density is not None:   # weight-specialised: this panel's nonzeros
            p = int(panel.value)
            kernel_emit = _micro_kernel(kind, mr, nv, act.name, wname, geometry,
                                        groups=nonzero[p] if nonzero is not None else None,
                                        packed=packed[p] if packed is not None else None)
            features["density"] = density
        call = ln.MicroKernel(f"{kind.name}_{mr}x{nr}", kernel_emit, {"m0": mt * mr, "panel": panel}, features)
        r, ch = ln.Var("r"), ln.Var("ch")
        row = mt * mr + r
        channel = panel * nr + ch
        acc = ln.binary("add", ln.Load("tile", r * nr + ch, "i32"), ln.Load(cname, channel, "i32"))
        position = _unravel(row, c.output.shape[:-1])
        store = ln.Store(c.output.name, row * n + channel, c.finalize(acc, position, channel))
        epilogue = ln.For("r", mr, (ln.If(ln.binary("slt", row, ln.Const(m)),
                                          (ln.For("ch", width, (store,), ln.LoopKind.VECTORIZE,
                                                  min(kind.lanes, 16) if width >= 4 else 1),)),))
        return (call, epilogue)

    panels_loop = (ln.For("np", full_panels, tile(np_, nr)),) if full_panels else ()
    tail_tile = tile(ln.Const(full_panels), tail) if tail else ()
    order = config["order"] if threads == 1 else "mn"
    if fmt in ("panel", "packed"):               # panels unrolled at compile time: one kernel body each
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
    weight_params = [ln.Param(wname, kind.weight_type, constants[wname].size)]
    if packed is not None:                        # the packed words are immediates in the code
        del constants[wname]
        weight_params = []
    params = _unique([c.input.param(), *weight_params, ln.Param(cname, "i32", n), act,
                      *[a.param() for a in c.epilogue_inputs], c.output.param()])
    kernel = ln.Kernel(c.name, params, body, {"tile": ("i32", mr * nr)})
    return Schedule(kernel, threads if order == "mn" else 1, prologue, [act], constants)


def _unravel(flat: ln.Expr, shape: tuple[int, ...]) -> list[ln.Expr]:
    out: list[ln.Expr] = []
    rest = flat
    for k, dim in enumerate(shape):
        inner = int(np.prod(shape[k + 1:], dtype=np.int64))
        q = rest if inner == 1 else ln.binary("sdiv", rest, ln.Const(inner))
        out.append(ln.Const(0) if dim == 1 else q)
        rest = rest if inner == 1 else ln.binary("srem", rest, ln.Const(inner))
    return out


def _pack_activations(c: DenseCompute, kind: mk.MicroKernelKind, act: ln.Param, padded) -> ln.Kernel:
    return pack_activations(f"{c.name}_pack", c.input, c.pad, c.input_zp, kind.act_type, kind.encode_offset(),
                            act, padded)


def pack_activations(name: str, source: TensorArg, pad: tuple[int, int, int, int], input_zp: int, act_type: str,
                     offset: int, act: ln.Param, padded: tuple[int, int, int]) -> ln.Kernel:
    """act[n, y, x, ch] = encode(input[n, y - top, x - left, ch]), or encode(zero point) outside.

    ``i16`` buffers hold ``x - input_zp`` (so padding is 0); ``i8`` buffers hold ``x + offset``.
    """
    ihp, iwp, icp = padded
    batch, ih, iw, ic = source.shape
    top, _, left, _ = pad
    n, y, x, ch = (ln.Var(v) for v in ("n", "y", "x", "ch"))
    iy, ix = y - top, x - left
    inside = all_of([in_bounds(iy, ih) if pad[0] or pad[1] else None,
                     in_bounds(ix, iw) if pad[2] or pad[3] else None,
                     in_bounds(ch, ic) if icp != ic else None])
    channel = ln.clamp_index(ch, ic) if icp != ic else ch      # clamping makes the load a gather: only if needed
    src = ln.row_major([n, ln.clamp_index(iy, ih), ln.clamp_index(ix, iw), channel], source.shape)
    value = ln.cast(ln.Load(source.name, src, "i8"), "i32")
    pad_value = ln.Const(input_zp, "i32")
    if inside is not None:
        value = ln.select(inside, value, pad_value)
    if act_type == "i16":
        encoded = ln.cast(value - pad_value, "i16")
    else:
        encoded = ln.cast(value + offset, "i8")
    store = ln.Store(act.name, ln.row_major([n, y, x, ch], [batch, ihp, iwp, icp]), encoded)
    nest = ln.loops([("n", batch), ("y", ihp), ("x", iwp)],
                    [ln.For("ch", icp, (store,), ln.LoopKind.VECTORIZE, 16 if icp >= 16 else 1)])
    return ln.Kernel(name, (source.param(), act), nest)


def _micro_kernel(kind: mk.MicroKernelKind, mr: int, nv: int, act: str, wpack: str, geo: dict,
                  groups: list[int] | None = None, packed: list[PackedWindow] | None = None):
    """The emit function of the MR x NR register-blocked micro-kernel.

    ``groups`` (panel-sparse format) lists the reduction groups ``tap * icg + group`` of this panel that
    hold a nonzero weight: only those are emitted, unrolled, with constant offsets. ``packed`` (N:M-packed
    format) lists the panel's windows: each row loads a window of activations once, and every packed word
    is a constant shuffle of it (vpshufb / tbl) and one dot product with constant weights.
    """
    nr = kind.lanes * nv
    i32v = ir.VectorType(ir.IntType(32), kind.lanes)
    wvty = mk.weight_vector_type(kind)
    group_ty = mk.activation_group_type(kind)
    g = kind.k_group
    icg = geo["icp"] // g                                  # reduction groups per tap
    unroll = geo["unroll"] if icg % geo["unroll"] == 0 else 1
    sy, sx = geo["stride"]
    dy, dx = geo["dilation"]

    def emit(em, operands) -> None:
        b = em.builder
        c64 = lambda v: ir.Constant(I64, v)  # noqa: E731
        m0, panel = operands["m0"], operands["panel"]
        act_base, _ = em.buffers[act]
        act_bytes = b.bitcast(act_base, ir.IntType(8).as_pointer())
        w_bytes = None if packed is not None else b.bitcast(em.buffers[wpack][0], ir.IntType(8).as_pointer())
        elem = 1 if kind.act_type == "i8" else 2
        wel = 1 if kind.weight_type == "i8" else 2
        rows = []
        for r in range(mr):
            mrow = b.add(m0, c64(r))
            mrow = b.select(b.icmp_signed("<", mrow, c64(geo["m"])), mrow, c64(geo["m"] - 1))
            img = b.sdiv(mrow, c64(geo["oh"] * geo["ow"]))
            rem = b.srem(mrow, c64(geo["oh"] * geo["ow"]))
            oy, ox = b.sdiv(rem, c64(geo["ow"])), b.srem(rem, c64(geo["ow"]))
            pix = b.add(b.mul(b.add(b.mul(img, c64(geo["ihp"])), b.mul(oy, c64(sy))), c64(geo["iwp"])),
                        b.mul(ox, c64(sx)))
            rows.append(b.mul(pix, c64(geo["icp"] * elem)))          # byte offset of the row's pixel
        accs = [[em.entry_alloca(i32v) for _ in range(nv)] for _ in range(mr)]
        for row in accs:
            for slot in row:
                b.store(ir.Constant(i32v, None), slot)
        panel_bytes = b.mul(panel, c64(geo["k_groups"] * nr * g * wel))

        def tap_body(t):
            ty, tx = b.sdiv(t, c64(geo["kw"])), b.srem(t, c64(geo["kw"]))
            tap = b.mul(b.add(b.mul(b.mul(ty, c64(dy)), c64(geo["iwp"])), b.mul(tx, c64(dx))),
                        c64(geo["icp"] * elem))

            def group_body(gi):
                for u in range(unroll):
                    gg = b.add(gi, c64(u)) if u else gi
                    kk = b.add(b.mul(t, c64(icg)), gg)
                    step(b.mul(kk, c64(nr * g * wel)), b.add(tap, b.mul(gg, c64(g * elem))))
            em._loop("kg", c64(0), c64(icg), unroll, group_body)

        def step(w_off, a_off) -> None:
            """One reduction group: nv weight vectors x mr activation groups into the accumulators."""
            w_off = b.add(panel_bytes, w_off)
            wv = []
            for j in range(nv):
                p = b.gep(w_bytes, [b.add(w_off, c64(j * kind.lanes * g * wel))], source_etype=ir.IntType(8))
                wv.append(b.load(b.bitcast(p, wvty.as_pointer()), typ=wvty, align=1))
            for r in range(mr):
                p = b.gep(act_bytes, [b.add(rows[r], a_off)], source_etype=ir.IntType(8))
                a = b.load(b.bitcast(p, group_ty.as_pointer()), typ=group_ty, align=1)
                for j in range(nv):
                    slot = accs[r][j]
                    b.store(mk.accumulate(em, kind, b.load(slot, typ=i32v), a, wv[j]), slot)

        def window_step(window: PackedWindow) -> None:
            ty, tx = divmod(window.tap, geo["kw"])
            a_off = c64(((ty * dy * geo["iwp"] + tx * dx) * geo["icp"] + window.channel0) * elem)
            wty = ir.VectorType(ir.IntType(8 if kind.act_type == "i8" else 16), window.width)
            for r in range(mr):
                p = b.gep(act_bytes, [b.add(rows[r], a_off)], source_etype=ir.IntType(8))
                a = b.load(b.bitcast(p, wty.as_pointer()), typ=wty, align=1)
                for j, mask, vals in window.words:
                    lanes_a = b.shuffle_vector(a, ir.Constant(wty, ir.Undefined),
                                               ir.Constant(ir.VectorType(ir.IntType(32), len(mask)), list(mask)))
                    slot = accs[r][j]
                    wv = ir.Constant(ir.VectorType(wvty.element, len(vals)), list(vals))
                    b.store(mk.dot(em, kind, b.load(slot, typ=i32v), lanes_a, wv), slot)

        if packed is not None:
            for window in packed:
                window_step(window)
        elif groups is None:
            em._loop("tap", c64(0), c64(geo["kh"] * geo["kw"]), 1, tap_body)
        else:
            for kk in groups:                     # constant offsets: the panel's nonzero groups only
                t, gi = divmod(kk, icg)
                ty, tx = divmod(t, geo["kw"])
                step(c64(kk * nr * g * wel), c64(((ty * dy * geo["iwp"] + tx * dx) * geo["icp"] + gi * g) * elem))
        tile, _ = em.buffers["tile"]
        for r in range(mr):
            for j in range(nv):
                p = b.gep(tile, [c64(r * nr + j * kind.lanes)], source_etype=ir.IntType(32))
                b.store(b.load(accs[r][j], typ=i32v), b.bitcast(p, i32v.as_pointer()), align=4)

    return emit

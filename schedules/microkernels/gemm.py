"""The dense GEMM family: an MR x NR block of int32 accumulators in vector registers over packed weight panels.

Weights are packed at compile time into panels of NR output channels in the
kernel's layout (``pack_weights``). Three weight formats share the block:

- ``dense``: every reduction group, in loops over taps and groups;
- ``panel`` (pruned weights): each panel's all-zero groups left out, the rest
  unrolled with constant offsets (``panel_groups``);
- ``packed`` (N:M-pruned weights): each vector's nonzero weights in a window of
  input channels packed into words of constant weights, the window's
  activations loaded once per row and gathered by a constant shuffle
  (vpshufb / tbl) per word (``pack_shuffled``).

The correction that makes the encoded activations exact is the template's
(see ``base``); the block writes its raw sums to the ``tile`` buffer.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import llvmlite.ir as ir
import numpy as np

from tosac.schedules.emit_llvm import Emitter
from tosac.schedules.microkernels.base import (I8, I32, Accumulators, DotKernel, Emit, accumulator_type, c64,
                                               const_vector, dot_activation_group, group_scalar_type, int_type,
                                               weight_vector_type)


# ----------------------------------------------------------------------------- weight formats

def pack_weights(weights: np.ndarray, micro: DotKernel, nr: int) -> np.ndarray:
    """[KH, KW, IC, N] -> [panels, K/g, NR, g]: one panel's reduction step is contiguous vector loads."""
    kh, kw, ic, n = weights.shape
    g = micro.k_group
    icp = -(-ic // g) * g
    panels = -(-n // nr)
    w = np.zeros((kh, kw, icp, panels * nr), dtype=np.int64)
    w[:, :, :ic, :n] = weights
    w = w.reshape(kh * kw * icp // g, g, panels, nr).transpose(2, 0, 3, 1)
    return np.ascontiguousarray(w.astype(np.int16 if micro.weight_type == "i16" else np.int8))


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


def pack_shuffled(weights: np.ndarray, micro: DotKernel, nr: int, window: int) -> list[list[PackedWindow]]:
    """Per panel of ``nr`` output channels, the windows with a nonzero weight and their packed words.

    Within a window, each output channel's nonzero weights (in channel order) fill words of ``g``; a vector
    of ``lanes`` channels needs as many words as its densest lane. A 2:4 pattern in windows of 8 needs one
    word where the dense kernel runs two groups, 1:4 in windows of 16 one instead of four.
    """
    kh, kw, ic, n = weights.shape
    g, lanes = micro.k_group, micro.lanes
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


def packed_word_ratio(weights: np.ndarray, micro: DotKernel, window: int) -> float:
    """Words the N:M-packed format runs per group the dense kernel runs (one vector of ``lanes`` channels wide)."""
    kh, kw, ic, n = weights.shape
    g, lanes = micro.k_group, micro.lanes
    icp, np_ = -(-ic // g) * g, -(-n // lanes) * lanes
    w = np.zeros((kh * kw, -(-icp // window) * window, np_), dtype=bool)
    w[:, :ic, :n] = weights.reshape(kh * kw, ic, n) != 0
    per_lane = w.reshape(kh * kw, -1, window, np_ // lanes, lanes).sum(axis=2)     # nonzeros per window and lane
    words = -(-per_lane.max(axis=3) // g)
    return float(words.sum()) / (kh * kw * (icp // g) * (np_ // lanes))


# ----------------------------------------------------------------------------- the register block

@dataclass(frozen=True)
class GemmGeometry:
    """An implicit GEMM as the register block reads it: rows are output positions of a convolution (MATMUL
    is a 1x1 one), the reduction runs over taps x ``kr`` groups of ``g`` channels of the padded activations."""
    mr: int                            # output rows per register block
    nr: int                            # output channels per weight panel (a multiple of the kernel's lanes)
    kr: int                            # reduction groups per tap: padded input channels / g
    m: int                             # output rows in all (rows past it are clamped, their results dropped)
    out_hw: tuple[int, int]
    padded_hw: tuple[int, int]         # height, width of the padded activation buffer
    kernel_hw: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    unroll: int                        # the ``unroll_k`` knob

    @property
    def taps(self) -> int:
        return self.kernel_hw[0] * self.kernel_hw[1]

    @property
    def k_groups(self) -> int:
        return self.taps * self.kr

    @property
    def group_unroll(self) -> int:
        """Groups per reduction-loop iteration: the knob when it divides a tap's groups, else 1."""
        return self.unroll if self.kr % self.unroll == 0 else 1


def gemm_kernel(micro: DotKernel, geo: GemmGeometry, act: str, weights: str, groups: list[int] | None = None,
                packed: list[PackedWindow] | None = None) -> Emit:
    """The emit function of one register block at operands ``m0`` (first row) and ``panel``.

    ``groups`` (panel format) lists the reduction groups ``tap * kr + group`` of this panel that hold a
    nonzero weight: only those are emitted, unrolled, with constant offsets. ``packed`` (packed format)
    lists the panel's windows: each row loads a window of activations once, and every packed word is a
    constant shuffle of it and one dot product with constant weights (no weight buffer is read).
    """
    return partial(_emit_block, micro, geo, act, weights, groups, packed)


def _emit_block(micro: DotKernel, geo: GemmGeometry, act: str, weights: str, groups: list[int] | None,
                packed: list[PackedWindow] | None, em: Emitter, operands: dict[str, ir.Value]) -> None:
    block = _RegisterBlock(em, micro, geo, act, None if packed is not None else weights, operands)
    if packed is not None:
        for window in packed:
            block.window_step(window)
    elif groups is None:
        em.loop("tap", c64(0), c64(geo.taps), 1, block.tap)
    else:
        block.unrolled_groups(groups)
    block.store_tile()


class _RegisterBlock:
    """One MR x NR block being emitted: byte pointers, each row's pixel offset and the accumulators."""

    def __init__(self, em: Emitter, micro: DotKernel, geo: GemmGeometry, act: str, weights: str | None,
                 operands: dict[str, ir.Value]):
        self.em, self.micro, self.geo = em, micro, geo
        self.nv = geo.nr // micro.lanes
        self.icp = geo.kr * micro.k_group                 # channels of a padded activation pixel
        b = em.builder
        self.act_bytes = b.bitcast(em.buffers[act][0], I8.as_pointer())
        self.w_bytes = None if weights is None else b.bitcast(em.buffers[weights][0], I8.as_pointer())
        self.rows = self._row_offsets(operands["m0"])
        self.accs = Accumulators(em, micro, geo.mr, self.nv)
        self.accs.zero()
        self.panel_bytes = b.mul(operands["panel"], c64(geo.k_groups * geo.nr * micro.k_group * micro.weight_bytes))

    def _row_offsets(self, m0: ir.Value) -> list[ir.Value]:
        """Byte offset of each row's first pixel; rows past M repeat the last row (results discarded)."""
        b, geo = self.em.builder, self.geo
        (oh, ow), (ihp, iwp), (sy, sx) = geo.out_hw, geo.padded_hw, geo.stride
        rows = []
        for r in range(geo.mr):
            mrow = b.add(m0, c64(r))
            mrow = b.select(b.icmp_signed("<", mrow, c64(geo.m)), mrow, c64(geo.m - 1))
            img = b.sdiv(mrow, c64(oh * ow))
            rem = b.srem(mrow, c64(oh * ow))
            oy, ox = b.sdiv(rem, c64(ow)), b.srem(rem, c64(ow))
            pix = b.add(b.mul(b.add(b.mul(img, c64(ihp)), b.mul(oy, c64(sy))), c64(iwp)), b.mul(ox, c64(sx)))
            rows.append(b.mul(pix, c64(self.icp * self.micro.act_bytes)))
        return rows

    def tap(self, t: ir.Value) -> None:
        """Loop body over taps (dense format): the tap's groups in a loop, ``group_unroll`` per iteration."""
        b, geo, micro = self.em.builder, self.geo, self.micro
        g, elem, unroll = micro.k_group, micro.act_bytes, geo.group_unroll
        (dy, dx), iwp, kw = geo.dilation, geo.padded_hw[1], geo.kernel_hw[1]
        ty, tx = b.sdiv(t, c64(kw)), b.srem(t, c64(kw))
        tap = b.mul(b.add(b.mul(b.mul(ty, c64(dy)), c64(iwp)), b.mul(tx, c64(dx))), c64(self.icp * elem))

        def groups(gi: ir.Value) -> None:
            for u in range(unroll):
                gg = b.add(gi, c64(u)) if u else gi
                kk = b.add(b.mul(t, c64(geo.kr)), gg)
                self.step(b.mul(kk, c64(geo.nr * g * micro.weight_bytes)), b.add(tap, b.mul(gg, c64(g * elem))))
        self.em.loop("kg", c64(0), c64(geo.kr), unroll, groups)

    def _activation_offset(self, tap: int, channel: int) -> ir.Constant:
        """Byte offset, from a row's first pixel, of ``channel`` in a compile-time ``tap``."""
        geo = self.geo
        (dy, dx), iwp = geo.dilation, geo.padded_hw[1]
        ty, tx = divmod(tap, geo.kernel_hw[1])
        return c64(((ty * dy * iwp + tx * dx) * self.icp + channel) * self.micro.act_bytes)

    def unrolled_groups(self, groups: list[int]) -> None:
        """Panel format: the panel's nonzero groups only, at constant offsets."""
        geo, micro = self.geo, self.micro
        for kk in groups:
            t, gi = divmod(kk, geo.kr)
            self.step(c64(kk * geo.nr * micro.k_group * micro.weight_bytes),
                      self._activation_offset(t, gi * micro.k_group))

    def step(self, w_off: ir.Value, a_off: ir.Value) -> None:
        """One reduction group: nv weight vectors x mr activation groups into the accumulators."""
        b, micro = self.em.builder, self.micro
        wvty, group_ty = weight_vector_type(micro), group_scalar_type(micro)
        w_off = b.add(self.panel_bytes, w_off)
        wv = []
        for j in range(self.nv):
            p = b.gep(self.w_bytes, [b.add(w_off, c64(j * micro.lanes * micro.k_group * micro.weight_bytes))],
                      source_etype=I8)
            wv.append(b.load(b.bitcast(p, wvty.as_pointer()), typ=wvty, align=1))
        for r in range(self.geo.mr):
            p = b.gep(self.act_bytes, [b.add(self.rows[r], a_off)], source_etype=I8)
            a = b.load(b.bitcast(p, group_ty.as_pointer()), typ=group_ty, align=1)
            for j in range(self.nv):
                self.accs.add(r, j, a, wv[j], dot_activation_group)

    def window_step(self, window: PackedWindow) -> None:
        """Packed format: load the window once per row, then a constant shuffle and a dot product per word."""
        b, geo, micro = self.em.builder, self.geo, self.micro
        a_off = self._activation_offset(window.tap, window.channel0)
        wty = ir.VectorType(int_type(micro.act_type), window.width)
        element = int_type(micro.weight_type)
        for r in range(geo.mr):
            p = b.gep(self.act_bytes, [b.add(self.rows[r], a_off)], source_etype=I8)
            a = b.load(b.bitcast(p, wty.as_pointer()), typ=wty, align=1)
            for j, mask, vals in window.words:
                lanes_a = b.shuffle_vector(a, ir.Constant(wty, ir.Undefined), const_vector(mask, 32))
                self.accs.add(r, j, lanes_a, ir.Constant(ir.VectorType(element, len(vals)), list(vals)))

    def store_tile(self) -> None:
        """The accumulators into the ``tile`` buffer ``[MR][NR]``, where the fused epilogue reads them."""
        b, i32v = self.em.builder, accumulator_type(self.micro)
        tile, _ = self.em.buffers["tile"]
        for r in range(self.geo.mr):
            for j in range(self.nv):
                p = b.gep(tile, [c64(r * self.geo.nr + j * self.micro.lanes)], source_etype=I32)
                b.store(self.accs.load(r, j), b.bitcast(p, i32v.as_pointer()), align=4)

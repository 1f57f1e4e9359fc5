"""Depthwise convolution on the dot-product units: taps in the instruction's groups, channels in lanes.

A dot-product instruction sums ``g`` products per int32 lane (``vpdpbusd``: 4
u8 x s8; ``sdot``: 4 s8 x s8; ``vpmaddwd``: 2 i16 x i16). Depthwise has no
reduction over channels, but it has one over taps: the prologue stores, for
every output column ``ox`` and every group ``j`` of ``g`` horizontal taps, the
encoded activations of those taps interleaved per channel
(``act[n][y][ox][j][c][k]`` = input at column ``ox * sx + (j * g + k) * dx``),
and the weights are packed the same way (``[ky][j][c][k]``, zero beyond the
kernel's width). One instruction then does ``g`` taps of ``lanes`` channels:
a 3x3 kernel is 3 instructions per output pixel and channel block, where
int16 products took 9 multiplies, 18 widenings and 9 adds.

Exactness: the encoded activation is ``x + offset`` (``offset`` 128 for
``vpdpbusd``'s unsigned operand, 0 for ``sdot``), padding is the encoded zero
point, so the sum is ``sum((x + offset) * w)`` and the template subtracts
``(offset + zp) * sum(w)`` per channel — exactly ``sum((x - zp) * w)``; for
``vpmaddwd`` the prologue stores ``x - zp`` itself (padding 0) and nothing is
subtracted. No step saturates (``vpdpbusd``, not ``vpdpbusds``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from tosac.schedules.emit_llvm import Emitter
from tosac.schedules.microkernels.base import (I8, I32, Accumulators, DotKernel, Emit, accumulator_type,
                                               activation_vector_type, c64, dot, weight_vector_type)


@dataclass(frozen=True)
class DepthwiseGeometry:
    """What one block's code needs to know: the kernel, the packed layouts and the block size."""
    kernel_hw: tuple[int, int]
    dilation_y: int
    groups: int                     # G: groups of g horizontal taps
    channels: int                   # padded to a multiple of the vector lanes
    out_w: int
    pixels: int                     # output columns per block


def tap_groups(kw: int, micro: DotKernel) -> int:
    return -(-kw // micro.k_group)


def pack_depthwise_weights(weights: np.ndarray, micro: DotKernel, channels: int) -> np.ndarray:
    """[KH, KW, C] -> [KH, G, C_pad, g] (zeros beyond the kernel's width and the channels)."""
    kh, kw, c = weights.shape
    g, groups = micro.k_group, tap_groups(kw, micro)
    w = np.zeros((kh, groups * g, channels), dtype=np.int64)
    w[:, :kw, :c] = weights
    w = w.reshape(kh, groups, g, channels).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(w.astype(np.int16 if micro.weight_type == "i16" else np.int8))


def depthwise_block(micro: DotKernel, geo: DepthwiseGeometry, act: str, weights: str) -> Emit:
    """The emit function of one block: ``pixels`` output columns from operand ``ox0`` on input row operand
    ``row`` (``n * padded_h + oy * sy``), channel block operand ``cb``; raw sums go to ``tile[pixel][lane]``."""
    return partial(_emit_block, micro, geo, act, weights)


def _emit_block(micro: DotKernel, geo: DepthwiseGeometry, act: str, weights: str, em: Emitter,
                operands: dict) -> None:
    b = em.builder
    lanes, g = micro.lanes, micro.k_group
    kh, _ = geo.kernel_hw
    act_bytes = b.bitcast(em.buffers[act][0], I8.as_pointer())
    w_bytes = b.bitcast(em.buffers[weights][0], I8.as_pointer())
    a_type, w_type = activation_vector_type(micro), weight_vector_type(micro)
    block_elements = c64(lanes * g)
    channel_offset = b.mul(operands["cb"], block_elements)             # elements into a [C_pad][g] row
    accs = Accumulators(em, micro, geo.pixels, 1)
    accs.zero()
    columns = []
    for p in range(geo.pixels):                        # columns past the row repeat the last (results dropped)
        ox = b.add(operands["ox0"], c64(p))
        columns.append(b.select(b.icmp_signed("<", ox, c64(geo.out_w)), ox, c64(geo.out_w - 1)))
    group_elements = geo.channels * g
    for ky in range(kh):
        row = b.add(operands["row"], c64(ky * geo.dilation_y))
        for j in range(geo.groups):
            w_at = b.add(c64((ky * geo.groups + j) * group_elements), channel_offset)
            w = _load(em, w_bytes, b.mul(w_at, c64(micro.weight_bytes)), w_type)
            for p, ox in enumerate(columns):
                pixel = b.add(b.mul(row, c64(geo.out_w)), ox)
                a_at = b.add(b.mul(b.add(b.mul(pixel, c64(geo.groups)), c64(j)), c64(group_elements)),
                             channel_offset)
                a = _load(em, act_bytes, b.mul(a_at, c64(micro.act_bytes)), a_type)
                accs.add(p, 0, a, w, dot)
    tile, _ = em.buffers["tile"]
    i32v = accumulator_type(micro)
    for p in range(geo.pixels):
        at = b.gep(tile, [c64(p * lanes)], source_etype=I32)
        b.store(accs.load(p, 0), b.bitcast(at, i32v.as_pointer()), align=4)


def _load(em: Emitter, base, byte_offset, vector_type):
    b = em.builder
    return b.load(b.bitcast(b.gep(base, [byte_offset], source_etype=I8), vector_type.as_pointer()), typ=vector_type,
                  align=1)

"""Gathers and register transposes: the positions-in-lanes activation layout of the BSR family.

The prologue packs the activations into ``act[k_group][position][g]``: for each
tap and 32-bit word of input channels, ``lanes`` consecutive output positions'
words become one vector, encoded for the kind (``x + 128`` for ``vnni``,
``x - input_zp`` in int16 for the int16 kinds), with the zero point where the
window reads padding. ``transpose`` is the in-register butterfly both this
prologue and the BSR kernel's tile stores use.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import llvmlite.ir as ir

from tosac.schedules.emit_llvm import Emitter
from tosac.schedules.microkernels.base import (I1, I8, I16, I32, I64, PTR, DotKernel, Emit, accumulator_type,
                                               as_int32, c64, const_vector)

WORD_CHANNELS = 4                  # int8 channels in one 32-bit word: the unit the prologue moves
BYTE_SPLAT = 0x01010101            # a byte times this is the byte in all four of a word's bytes
SIGN_BITS = as_int32(0x80808080)   # XOR with it adds 128 to each byte of a word (the vnni encoding)


@dataclass(frozen=True)
class GatherGeometry:
    """What the prologue reads: an NHWC int8 input through a convolution's window, ``mp`` positions."""
    input: str                                   # the input buffer
    input_shape: tuple[int, int, int, int]       # N, H, W, C (C a multiple of WORD_CHANNELS)
    input_zp: int
    kernel_hw: tuple[int, int]
    out_hw: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]               # top, bottom, left, right
    m: int                                       # output positions
    mp: int                                      # positions rounded up to whole tiles (rows of ``act``)


def gather_kernel(micro: DotKernel, geo: GatherGeometry, act: str) -> Emit:
    """The emit function of the prologue: act[kg][m][g] = encode(x at position m, tap, channels of group kg).

    When a pixel has a multiple of ``lanes`` words, each position's row is loaded as whole vectors and
    transposed in registers (hardware gathers are slow on many cores, e.g. under the GDS microcode
    mitigation); otherwise one masked gather per word and ``lanes`` positions.
    """
    return partial(_emit_gather, micro, geo, act)


def _emit_gather(micro: DotKernel, geo: GatherGeometry, act: str, em: Emitter, operands: dict[str, ir.Value]) -> None:
    gather = _Gather(em, micro, geo, act)
    words = geo.input_shape[3] // WORD_CHANNELS
    body = gather.transposed_tile if words % micro.lanes == 0 else gather.masked_tile
    em.loop("m0", c64(0), c64(geo.mp), micro.lanes, body)


class _Gather:
    """One emission of the prologue: the buffers, the masked-gather intrinsic and the per-tile bodies."""

    def __init__(self, em: Emitter, micro: DotKernel, geo: GatherGeometry, act: str):
        self.em, self.micro, self.geo = em, micro, geo
        lanes = micro.lanes
        self.words = geo.input_shape[3] // WORD_CHANNELS
        zp_word = as_int32((geo.input_zp & 0xFF) * BYTE_SPLAT)
        self.i32v = accumulator_type(micro)
        self.zero_row = self.vec(zp_word)                  # a word of four zero points in every lane
        b = em.builder
        self.src, _ = em.buffers[geo.input]
        dst, _ = em.buffers[act]
        self.dst_bytes = b.bitcast(dst, PTR)
        self.src_int = em.splat(b.ptrtoint(self.src, I64), lanes)
        self.gather = em.intrinsic(f"llvm.masked.gather.v{lanes}i32.v{lanes}p0", self.i32v,
                                   [ir.VectorType(PTR, lanes), I32, ir.VectorType(I1, lanes), self.i32v])

    def vec(self, value: int) -> ir.Constant:
        return ir.Constant(self.i32v, [value] * self.micro.lanes)

    def masked_tile(self, m0: ir.Value) -> None:
        """``lanes`` positions from ``m0``: one masked gather per tap and word (padding reads the zero point).

        Position arithmetic is in i32 lanes (vectorised division by constants; 32-bit gather offsets).
        """
        b, geo, lanes, vec = self.em.builder, self.geo, self.micro.lanes, self.vec
        _, ih, iw, ic = geo.input_shape
        (kh, kw), (oh, ow), (sy, sx), (dy, dx) = geo.kernel_hw, geo.out_hw, geo.stride, geo.dilation
        top, bottom, left, right = geo.pad
        m = b.add(self.em.splat(b.trunc(m0, I32), lanes), const_vector(range(lanes), 32))
        valid_m = b.icmp_signed("<", m, vec(geo.m))
        img, rem = b.udiv(m, vec(oh * ow)), b.urem(m, vec(oh * ow))
        oy, ox = b.udiv(rem, vec(ow)), b.urem(rem, vec(ow))
        for ty in range(kh):
            for tx in range(kw):
                iy = b.add(b.mul(oy, vec(sy)), vec(ty * dy - top))
                ix = b.add(b.mul(ox, vec(sx)), vec(tx * dx - left))
                inside = valid_m
                for v, limit, padded in ((iy, ih, top or bottom), (ix, iw, left or right)):
                    if padded:                         # without padding on this axis: always inside
                        inside = b.and_(inside, b.icmp_unsigned("<", v, vec(limit)))   # also v >= 0
                pixel = b.add(b.mul(b.add(b.mul(img, vec(ih)), iy), vec(iw)), ix)
                base = b.mul(b.select(inside, pixel, vec(0)), vec(ic))
                word = partial(self._gather_word, base, inside, ty * kw + tx, m0)
                self.em.loop("wi", c64(0), c64(self.words), 1, word)

    def _gather_word(self, base: ir.Value, inside: ir.Value, tap: int, m0: ir.Value, wi: ir.Value) -> None:
        b, lanes = self.em.builder, self.micro.lanes
        offset = b.add(base, self.em.splat(b.trunc(b.mul(wi, c64(WORD_CHANNELS)), I32), lanes))
        addr = b.add(self.src_int, b.sext(offset, ir.VectorType(I64, lanes)))
        ptrs = b.inttoptr(addr, ir.VectorType(PTR, lanes))
        word = b.call(self.gather, [ptrs, ir.Constant(I32, 1), inside, self.zero_row])
        self._store_groups(word, b.add(c64(tap * self.words), wi), m0)

    def transposed_tile(self, m0: ir.Value) -> None:
        """``lanes`` positions from ``m0``: whole rows of ``lanes`` words per position, transposed in registers."""
        b, geo = self.em.builder, self.geo
        _, ih, iw, _ = geo.input_shape
        (kh, kw), (oh, ow), (sy, sx), (dy, dx) = geo.kernel_hw, geo.out_hw, geo.stride, geo.dilation
        top, _, left, _ = geo.pad
        src_bytes = b.bitcast(self.src, PTR)
        positions = []
        for lane in range(self.micro.lanes):
            m = b.add(m0, c64(lane))
            m = b.select(b.icmp_signed("<", m, c64(geo.m)), m, c64(geo.m - 1))      # rows past M: discarded
            img, rem = b.udiv(m, c64(oh * ow)), b.urem(m, c64(oh * ow))
            positions.append((img, b.udiv(rem, c64(ow)), b.urem(rem, c64(ow))))
        for ty in range(kh):
            for tx in range(kw):
                rows = []
                for img, oy, ox in positions:
                    iy = b.add(b.mul(oy, c64(sy)), c64(ty * dy - top))
                    ix = b.add(b.mul(ox, c64(sx)), c64(tx * dx - left))
                    inside = ir.Constant(I1, 1)
                    for v, limit in ((iy, ih), (ix, iw)):
                        inside = b.and_(inside, b.icmp_unsigned("<", v, c64(limit)))   # also v >= 0
                    pixel = b.add(b.mul(b.add(b.mul(img, c64(ih)), iy), c64(iw)), ix)
                    rows.append((b.select(inside, pixel, c64(0)), inside))
                chunk = partial(self._transposed_chunk, src_bytes, rows, ty * kw + tx, m0)
                self.em.loop("wc", c64(0), c64(self.words // self.micro.lanes), 1, chunk)

    def _transposed_chunk(self, src_bytes: ir.Value, rows: list[tuple[ir.Value, ir.Value]], tap: int, m0: ir.Value,
                          wc: ir.Value) -> None:
        b, lanes, ic = self.em.builder, self.micro.lanes, self.geo.input_shape[3]
        loaded = []
        for pixel, inside in rows:
            offset = b.add(b.mul(pixel, c64(ic)), b.mul(wc, c64(WORD_CHANNELS * lanes)))
            ptr = b.bitcast(b.gep(src_bytes, [offset], source_etype=I8), self.i32v.as_pointer())
            loaded.append(b.select(inside, b.load(ptr, typ=self.i32v, align=1), self.zero_row))
        for word, labels in transpose(b, loaded):
            w = labels[0][0]
            index = b.add(c64(tap * self.words), b.add(b.mul(wc, c64(lanes)), c64(w)))
            self._store_groups(word, index, m0)

    def _store_groups(self, word: ir.Value, word_index: ir.Value, m0: ir.Value) -> None:
        """One word per lane, encoded, into its ``WORD_CHANNELS / g`` groups' rows of ``act``."""
        b, g = self.em.builder, self.micro.k_group
        group0 = b.mul(word_index, c64(WORD_CHANNELS // g))
        for s, encoded in enumerate(encode_word(b, self.micro, word, self.geo.input_zp)):
            group = b.add(group0, c64(s))
            offset = b.mul(b.add(b.mul(group, c64(self.geo.mp)), m0), c64(g * self.micro.act_bytes))
            p = b.gep(self.dst_bytes, [offset], source_etype=I8)
            b.store(encoded, b.bitcast(p, encoded.type.as_pointer()), align=1)


def encode_word(b: ir.IRBuilder, micro: DotKernel, word: ir.Value, zp: int) -> list[ir.Value]:
    """One gathered word (4 channels) per lane -> the 4/g group vectors the micro-kernel reads."""
    lanes = micro.lanes
    if micro.act_type == "i8":
        return [b.xor(word, ir.Constant(word.type, [SIGN_BITS] * lanes)) if micro.encode_offset() else word]
    g = micro.k_group
    bytes_ = b.bitcast(word, ir.VectorType(I8, WORD_CHANNELS * lanes))
    out = []
    for s in range(WORD_CHANNELS // g):
        picked = b.shuffle_vector(bytes_, ir.Constant(bytes_.type, ir.Undefined),
                                  const_vector([lane * WORD_CHANNELS + s * g + j for lane in range(lanes)
                                                for j in range(g)], 32))
        wide = b.sext(picked, ir.VectorType(I16, lanes * g))
        out.append(b.sub(wide, ir.Constant(wide.type, [zp] * (lanes * g))))
    return out


def transpose(b: ir.IRBuilder, rows: list[ir.Value]) -> list[tuple[ir.Value, list[tuple[int, int]]]]:
    """``C`` vectors (channels) of ``L`` lanes (positions), C a power of two <= L -> ``L`` vectors of C channels.

    A butterfly of two-input shuffles (log2 C stages, each interleaving chunks of 1, 2, 4... elements of
    the low or high halves), fed in bit-reversed channel order so every aligned chunk of C elements ends
    up as channels 0..C-1 of one position. Returns (vector, [(position, channel)...]) per position.
    """
    count, lanes = len(rows), rows[0].type.count
    bits = count.bit_length() - 1
    order = [int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(count)]
    vectors = [(rows[c], [(p, c) for p in range(lanes)]) for c in order]
    chunk = 1
    while chunk < count:
        staged = []
        for j in range(count // 2):
            (a, la), (bv, lb) = vectors[j], vectors[j + count // 2]
            for half in (0, 1):
                picks: list[int] = []
                for k in range(half * lanes // 2, (half + 1) * lanes // 2, chunk):
                    picks += list(range(k, k + chunk)) + list(range(lanes + k, lanes + k + chunk))
                labels = [(la + lb)[i] for i in picks]
                staged.append((b.shuffle_vector(a, bv, const_vector(picks, 32)), labels))
        vectors = staged
        chunk *= 2
    out = []
    for vector, labels in vectors:
        for k in range(0, lanes, count):
            part = labels[k:k + count]
            assert [c for _, c in part] == list(range(count)) and len({p for p, _ in part}) == 1
            piece = vector if count == lanes else b.shuffle_vector(
                vector, ir.Constant(vector.type, ir.Undefined), const_vector(range(k, k + count), 32))
            out.append((piece, part))
    return out

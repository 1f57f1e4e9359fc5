"""The BSR family: positions in vector lanes, weights broadcast (as in XNNPACK's sparse inference).

The activations are in the gather prologue's layout ``act[k_group][position][g]``
(see ``gather``), so one step is one dot-product instruction of the dense
kinds on a contiguous vector of ``lanes`` positions and a splat of one group of
``g`` weights. Weights are BSR with blocks of ``bn`` output channels x ``bk``
groups (a stored block may hold zeros): ``bsr_kernel`` reads row pointers,
column indices and values from memory; ``unrolled_kernel`` is
weight-specialised code, indices and weights baked into the instruction
stream, zero groups inside a block skipped too. The ``bn x mv`` accumulators
are transposed in registers into the ``[positions][N]`` tile.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import llvmlite.ir as ir
import numpy as np

from tosac.schedules.emit_llvm import Emitter
from tosac.schedules.microkernels.base import (I1, I8, I16, I32, I64, PTR, Accumulators, DotKernel, Emit, Kind,
                                               activation_vector_type, as_int32, c64, const_vector,
                                               dot_weight_group, group_scalar_type, int_type)
from tosac.schedules.microkernels.gather import transpose


# ----------------------------------------------------------------------------- the format

@dataclass(frozen=True)
class BlockSparse:
    """BSR weights: block ``b`` covers output channels ``row*bn ...`` and reduction groups ``col[b]*bk ...``."""
    row_ptr: np.ndarray          # int32 [N/bn + 1]
    col: np.ndarray              # int32 [blocks]
    values: np.ndarray           # [blocks, bn, bk, g] in ``value_type``
    bn: int
    bk: int

    @property
    def blocks(self) -> int:
        return int(self.col.size)

    def index_bytes(self) -> int:
        return 4 * (self.row_ptr.size + self.col.size)


def value_type(micro: DotKernel) -> str:
    """Element type of BSR weights: the activations' (a weight splat is bitcast to the activation vector)."""
    return micro.act_type


def group_matrix(weights: np.ndarray, g: int) -> np.ndarray:
    """[KH, KW, IC, N] -> [N, K/g, g]: output channel, reduction group, element (IC % g == 0)."""
    kh, kw, ic, n = weights.shape
    return np.ascontiguousarray(weights.reshape(kh * kw * ic // g, g, n).transpose(2, 0, 1))


def to_bsr(weights: np.ndarray, micro: DotKernel, bn: int, bk: int) -> BlockSparse:
    groups = group_matrix(weights, micro.k_group)
    n, kg, g = groups.shape
    nb, kb = -(-n // bn), -(-kg // bk)
    padded = np.zeros((nb * bn, kb * bk, g), dtype=np.int64)
    padded[:n, :kg] = groups
    blocks = padded.reshape(nb, bn, kb, bk, g).transpose(0, 2, 1, 3, 4)      # [nb, kb, bn, bk, g]
    nonzero = blocks.reshape(nb, kb, -1).any(axis=2)
    rows, cols = np.nonzero(nonzero)
    row_ptr = np.zeros(nb + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=nb), out=row_ptr[1:])
    etype = np.int16 if value_type(micro) == "i16" else np.int8
    return BlockSparse(row_ptr, cols.astype(np.int32), blocks[rows, cols].astype(etype), bn, bk)


# ----------------------------------------------------------------------------- the kernels

@dataclass(frozen=True)
class BsrGeometry:
    """A tile of ``mv`` vectors of ``lanes`` positions x all ``n`` output channels, ``k_groups`` deep."""
    mv: int                      # position vectors per tile
    mp: int                      # positions rounded up to whole tiles (rows of the activation buffer)
    n: int
    k_groups: int


@dataclass(frozen=True)
class BsrBuffers:
    """Buffer names: packed activations, BSR row pointers, column indices and values."""
    act: str
    rows: str
    cols: str
    vals: str


def bsr_kernel(micro: DotKernel, bsr: BlockSparse, geo: BsrGeometry, buffers: BsrBuffers) -> Emit:
    """The emit function of one position tile at operand ``m0``, reading the BSR arrays at run time."""
    return partial(_emit_bsr, micro, bsr, geo, buffers)


def unrolled_kernel(micro: DotKernel, bsr: BlockSparse, geo: BsrGeometry, buffers: BsrBuffers) -> Emit:
    """Weight-specialised code: for each output block, the nonzero groups' loads and dot products, unrolled."""
    return partial(_emit_unrolled, micro, bsr, geo, buffers)


def _emit_bsr(micro: DotKernel, bsr: BlockSparse, geo: BsrGeometry, buffers: BsrBuffers, em: Emitter,
              operands: dict[str, ir.Value]) -> None:
    b = em.builder
    bn, bk, g = bsr.bn, bsr.bk, micro.k_group
    row_blocks = bsr.row_ptr.size - 1
    wty = group_scalar_type(micro)
    w_bytes = int_type(value_type(micro)).width // 8
    m0 = operands["m0"]
    rows, _ = em.buffers[buffers.rows]
    cols, _ = em.buffers[buffers.cols]
    vals, _ = em.buffers[buffers.vals]
    tile, _ = em.buffers["tile"]
    accs = Accumulators(em, micro, bn, geo.mv)

    def row_body(nb: ir.Value) -> None:
        accs.zero()
        start = b.sext(b.load(b.gep(rows, [nb], source_etype=I32), typ=I32), I64)
        stop = b.sext(b.load(b.gep(rows, [b.add(nb, c64(1))], source_etype=I32), typ=I32), I64)

        def block_body(blk: ir.Value) -> None:
            col = b.sext(b.load(b.gep(cols, [blk], source_etype=I32), typ=I32), I64)
            for j in range(bk):
                group = b.add(b.mul(col, c64(bk)), c64(j))
                if geo.k_groups % bk:            # a partial last block: its groups past K have zero weights
                    group = b.select(b.icmp_signed("<", group, c64(geo.k_groups)), group, c64(geo.k_groups - 1))
                a = _load_activations(em, micro, buffers.act, group, m0, geo)
                for i in range(bn):
                    index = b.add(b.mul(blk, c64(bn * bk)), c64(i * bk + j))
                    p = b.gep(b.bitcast(vals, PTR), [b.mul(index, c64(g * w_bytes))], source_etype=I8)
                    w = b.load(b.bitcast(p, wty.as_pointer()), typ=wty, align=1)
                    for r in range(geo.mv):
                        accs.add(i, r, a[r], w, dot_weight_group)
        em.loop("blk", start, stop, 1, block_body)
        channel0 = b.mul(nb, c64(bn))
        if geo.n % bn == 0:
            scatter(accs, tile, geo, channel0, bn)
        else:
            last = b.icmp_signed("==", nb, c64(row_blocks - 1))
            with b.if_else(last) as (then, otherwise):
                with then:
                    scatter(accs, tile, geo, channel0, geo.n % bn)
                with otherwise:
                    scatter(accs, tile, geo, channel0, bn)

    em.loop("nb", c64(0), c64(row_blocks), 1, row_body)


def _emit_unrolled(micro: DotKernel, bsr: BlockSparse, geo: BsrGeometry, buffers: BsrBuffers, em: Emitter,
                   operands: dict[str, ir.Value]) -> None:
    bn, bk = bsr.bn, bsr.bk
    m0 = operands["m0"]
    tile, _ = em.buffers["tile"]
    accs = Accumulators(em, micro, bn, geo.mv)
    for nb in range(bsr.row_ptr.size - 1):
        accs.zero()
        for blk in range(int(bsr.row_ptr[nb]), int(bsr.row_ptr[nb + 1])):
            for j in range(bk):
                group = int(bsr.col[blk]) * bk + j
                users = [i for i in range(bn) if bsr.values[blk, i, j].any()]
                if not users or group >= geo.k_groups:
                    continue
                a = _load_activations(em, micro, buffers.act, c64(group), m0, geo)
                for i in users:
                    for r in range(geo.mv):
                        accs.add(i, r, a[r], weight_word(bsr.values[blk, i, j], micro), dot_weight_group)
        scatter(accs, tile, geo, c64(nb * bn), min(bn, geo.n - nb * bn))


def weight_word(group: np.ndarray, micro: DotKernel) -> ir.Constant:
    """One group of g weights as the scalar the micro-kernel splats (little-endian packing)."""
    if micro.kind is Kind.PORTABLE:
        return ir.Constant(I16, int(group[0]))
    bits = int_type(value_type(micro)).width
    value = 0
    for j, w in enumerate(group):
        value |= (int(w) & ((1 << bits) - 1)) << (j * bits)
    return ir.Constant(I32, as_int32(value))


def _load_activations(em: Emitter, micro: DotKernel, act: str, group: ir.Value, m0: ir.Value,
                      geo: BsrGeometry) -> list[ir.Value]:
    """The ``mv`` activation vectors of reduction group ``group`` for the tile's positions."""
    b = em.builder
    base, _ = em.buffers[act]
    vty = activation_vector_type(micro)
    out = []
    for r in range(geo.mv):
        index = b.add(b.mul(group, c64(geo.mp)), b.add(m0, c64(r * micro.lanes)))
        p = b.gep(b.bitcast(base, PTR), [b.mul(index, c64(micro.k_group * micro.act_bytes))], source_etype=I8)
        out.append(b.load(b.bitcast(p, vty.as_pointer()), typ=vty, align=1))
    return out


def scatter(accs: Accumulators, tile: ir.Value, geo: BsrGeometry, channel0: ir.Value, count: int) -> None:
    """tile[(r*lanes + lane) * n + channel0 + i] = acc[i][r] for the block's ``count`` channels.

    A power-of-two ``count`` is transposed in registers (one short vector store per position); other
    counts use a masked scatter per channel.
    """
    em, lanes, n = accs.em, accs.micro.lanes, geo.n
    b = em.builder
    if count > 1 and count & (count - 1) == 0:
        group = min(count, lanes)
        tile_bytes = b.bitcast(tile, PTR)
        for r in range(geo.mv):
            for c0 in range(0, count, group):
                vectors = [accs.load(c0 + i, r) for i in range(group)]
                for values, labels in transpose(b, vectors):
                    position, channel = labels[0]
                    index = b.add(c64((r * lanes + position) * n + c0 + channel), channel0)
                    p = b.gep(tile_bytes, [b.mul(index, c64(4))], source_etype=I8)
                    b.store(values, b.bitcast(p, values.type.as_pointer()), align=4)
        return
    fn = em.intrinsic(f"llvm.masked.scatter.v{lanes}i32.v{lanes}p0", ir.VoidType(),
                      [accs.type, ir.VectorType(PTR, lanes), I32, ir.VectorType(I1, lanes)])
    base = em.splat(b.ptrtoint(tile, I64), lanes)
    ones = ir.Constant(ir.VectorType(I1, lanes), [1] * lanes)
    for i in range(count):
        column = b.mul(b.add(channel0, c64(i)), c64(4))
        for r in range(geo.mv):
            offsets = const_vector([(r * lanes + lane) * n * 4 for lane in range(lanes)], 64)
            addr = b.add(b.add(base, offsets), em.splat(column, lanes))
            b.call(fn, [accs.load(i, r), b.inttoptr(addr, ir.VectorType(PTR, lanes)), ir.Constant(I32, 4), ones])

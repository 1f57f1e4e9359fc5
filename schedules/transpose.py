"""The transpose template: tiles of 16 x 16 elements moved through registers, contiguous on both sides.

Run as a map, a TRANSPOSE whose output's innermost axis is not the input's
reads every element of an output vector at a stride: one load per element,
a gather at ~1-2 GB/s. Here the two axes that trade contiguity — the input's
innermost axis B and the input axis A that is innermost in the output — are
cut into 16 x 16 tiles: sixteen contiguous vector loads along B (one per row
of A), the tile transposed in registers, sixteen contiguous stores along A
(one per column of B). Tiles at the end of an axis start earlier so that
they stay whole: overlapping tiles write the same values twice. The other
axes are plain loops. Only data moves, so every config gives the same bits.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import llvmlite.ir as ir

from tosac.schedules import loopnest as ln
from tosac.schedules.generic import Schedule, TensorArg
from tosac.schedules.space import Config, ConfigSpace

TILE = 16


@dataclass
class TransposeCompute:
    name: str
    input: TensorArg
    output: TensorArg
    perms: tuple[int, ...]


def tiled_transpose_applies(shape: tuple[int, ...], perms: tuple[int, ...]) -> bool:
    """The innermost axis changes, and both axes that trade places hold at least a whole tile."""
    rank = len(perms)
    return rank >= 2 and perms[-1] != rank - 1 and shape[perms[-1]] >= TILE and shape[rank - 1] >= TILE


def transpose_space(c: TransposeCompute) -> ConfigSpace:
    space = ConfigSpace("transpose")
    space.add("threads", (1, 2, 4), 1, "threads over the tiles of the output's innermost axis")
    return space


def _strides(shape: tuple[int, ...]) -> list[int]:
    strides, step = [], 1
    for extent in reversed(shape):
        strides.append(step)
        step *= extent
    return strides[::-1]


def transpose_schedule(c: TransposeCompute, config: Config) -> Schedule:
    threads = int(config["threads"])
    perms, rank = c.perms, len(c.perms)
    in_strides, out_strides = _strides(c.input.shape), _strides(c.output.shape)
    axis_a, axis_b = perms[-1], rank - 1                 # A: innermost in the output; B: innermost in the input
    b_out = perms.index(axis_b)                          # where B sits in the output
    extent_a, extent_b = c.input.shape[axis_a], c.input.shape[axis_b]
    ta, tb = ln.Var("ta"), ln.Var("tb")
    a0 = ln.smin(ta * TILE, ln.Const(extent_a - TILE))
    b0 = ln.smin(tb * TILE, ln.Const(extent_b - TILE))
    outer = [d for d in range(rank) if d not in (rank - 1, b_out) and c.output.shape[d] > 1]
    src: ln.Expr = a0 * in_strides[axis_a] + b0
    dst: ln.Expr = b0 * out_strides[b_out] + a0
    for d in outer:
        src = src + ln.Var(f"d{d}") * in_strides[perms[d]]
        dst = dst + ln.Var(f"d{d}") * out_strides[d]
    emit = partial(_emit_tile, c.input.name, c.output.name, in_strides[axis_a], out_strides[b_out])
    body: tuple[ln.Stmt, ...] = (ln.MicroKernel(f"transpose{TILE}", emit, {"src": src, "dst": dst},
                                                {"mr": TILE, "nr": TILE}),)
    body = (ln.For("tb", -(-extent_b // TILE), body),)
    a_tiles = -(-extent_a // TILE)
    if threads > 1 and a_tiles > 1:                      # the tiles of A outermost, split over threads
        body = ln.loops([(f"d{d}", c.output.shape[d]) for d in outer], body)
        body = (ln.For("ta", a_tiles, body, ln.LoopKind.PARALLEL),)
    else:
        threads = 1
        body = ln.loops([(f"d{d}", c.output.shape[d]) for d in outer] + [("ta", a_tiles)], body)
    kernel = ln.Kernel(c.name, (c.input.param(), c.output.param()), body)
    return Schedule(kernel, threads)


def _emit_tile(source: str, dest: str, row_stride: int, column_stride: int, em, operands: dict) -> None:
    """Load 16 rows of 16 elements, transpose them in registers, store 16 columns."""
    b = em.builder
    src_base, element = em.buffers[source]
    dst_base, _ = em.buffers[dest]
    vector = ir.VectorType(element, TILE)
    i64 = ir.IntType(64)

    def at(base, start, step, k):
        p = b.gep(base, [b.add(start, ir.Constant(i64, k * step))], source_etype=element)
        return b.bitcast(p, vector.as_pointer())

    rows = [b.load(at(src_base, operands["src"], row_stride, r), typ=vector, align=1) for r in range(TILE)]
    for column, value in enumerate(transpose_registers(b, rows)):
        b.store(value, at(dst_base, operands["dst"], column_stride, column), align=1)


def transpose_registers(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """The transpose of a square matrix held as one vector per row: at each scale ``j`` (8, 4, 2, 1) rows
    ``i`` and ``i + j`` swap their off-diagonal ``j``-blocks, the recursive block transpose in
    ``log2(n)`` rounds of two-input shuffles."""
    n = len(rows)
    rows = list(rows)
    j = n // 2
    while j:
        for i in range(n):
            if i & j:
                continue
            low = [lane if not lane & j else n + lane - j for lane in range(n)]
            high = [lane + j if not lane & j else n + lane for lane in range(n)]
            first, second = rows[i], rows[i + j]
            rows[i] = b.shuffle_vector(first, second, ir.Constant(ir.VectorType(ir.IntType(32), n), low))
            rows[i + j] = b.shuffle_vector(first, second, ir.Constant(ir.VectorType(ir.IntType(32), n), high))
        j //= 2
    return rows

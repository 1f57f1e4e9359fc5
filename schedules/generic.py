"""The generic templates: element-wise maps (with broadcasting and data movement) and reductions.

A compute definition says *what* each output element is; the template says
*how* to loop: which dimensions are collapsed, how many vector lanes the
innermost loop gets, and how many threads split the outermost loop. Every
config gives the same bits, because the element function is the only
arithmetic and loops only change the order of independent elements.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from tosac.schedules import loopnest as ln
from tosac.schedules.space import Config, ConfigSpace


@dataclass(frozen=True)
class TensorArg:
    """A buffer as templates see it: name, storage scalar type, shape."""
    name: str
    type: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def param(self) -> ln.Param:
        return ln.Param(self.name, self.type, max(self.size, 1))


@dataclass
class Schedule:
    """A template's result: loop nests and how the runtime runs them.

    ``prologue`` (e.g. activation packing) runs first (split over ``threads`` too when it has a parallel
    loop); ``scratch``
    buffers are workspace the runtime provides from the arena.
    """
    kernel: ln.Kernel
    threads: int = 1
    prologue: ln.Kernel | None = None
    scratch: list[ln.Param] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)    # packed at schedule time

    def kernels(self) -> list[tuple[ln.Kernel, int]]:
        prologue = [(self.prologue, self.threads if self.prologue.parallel_extent else 1)] if self.prologue else []
        return prologue + [(self.kernel, self.threads)]


class ElementContext:
    """What an element function may use: the output index and loads of inputs."""

    def __init__(self, output: TensorArg, index: list[ln.Expr], flat: ln.Expr | None):
        self.output = output
        self.index = index
        self._flat = flat

    def load(self, arg: TensorArg) -> ln.Expr:
        """``arg`` at the output position, broadcasting size-1 dimensions (TOSA rule)."""
        if arg.size == 1:
            return ln.Load(arg.name, ln.Const(0), arg.type)
        if self._flat is not None:
            return ln.Load(arg.name, self._flat, arg.type)
        if arg.size == self.output.size and arg.shape != self.output.shape:
            # The same elements in another shape (RESHAPE): the output's row-major position.
            return ln.Load(arg.name, ln.row_major(self.index, self.output.shape), arg.type)
        indices = [ln.Const(0) if dim == 1 else i for i, dim in zip(self.index, arg.shape)]
        return ln.Load(arg.name, ln.row_major(indices, arg.shape), arg.type)

    def load_at(self, arg: TensorArg, indices: Sequence[ln.Expr]) -> ln.Expr:
        return ln.Load(arg.name, ln.row_major(indices, arg.shape), arg.type)


@dataclass
class MapCompute:
    """``output[i] = element(ctx)`` for every output index ``i``.

    ``positional`` is False when the element function reads inputs only at the
    output position (ctx.load) and never uses ctx.index: the template may then
    collapse all dimensions into one loop.
    """
    name: str
    output: TensorArg
    inputs: list[TensorArg]
    element: Callable[[ElementContext], ln.Expr]
    positional: bool = True


def _lanes_default(vector_bits: int) -> int:
    return max(4, vector_bits // 32)


def map_space(compute: MapCompute, vector_bits: int) -> ConfigSpace:
    space = ConfigSpace("map")
    inner = compute.output.size if not compute.positional else (compute.output.shape or (1,))[-1]
    lanes = min(_lanes_default(vector_bits), max(1, 1 << (max(inner, 1).bit_length() - 1)))
    space.add("lanes", (1, 4, 8, 16, 32, 64), lanes, "vector lanes of the innermost loop")
    space.add("threads", (1, 2, 4), 1, "threads over the outermost loop")
    return space


def map_schedule(compute: MapCompute, config: Config) -> Schedule:
    out = compute.output
    lanes, threads = int(config["lanes"]), int(config["threads"])
    if not compute.positional:
        flat = ln.Var("i")
        ctx = ElementContext(out, [], flat)
        body: tuple[ln.Stmt, ...] = (ln.Store(out.name, flat, compute.element(ctx)),)
        nest = _inner_loop("i", out.size, body, lanes)
        if threads > 1 and out.size >= 2 * lanes:
            nest = _blocked_parallel("i", out.size, body, lanes)
    else:
        shape = out.shape or (1,)
        names = [f"d{k}" for k in range(len(shape))]
        # Threads split the first dimension with extent > 1 (but not the innermost): leading 1s get no loop.
        split = next((k for k, extent in enumerate(shape[:-1]) if extent > 1), None) if threads > 1 else None
        first = split if split is not None else 0
        index = [ln.Const(0) if k < first else ln.Var(n) for k, n in enumerate(names)] if out.shape else []
        ctx = ElementContext(out, index, None)
        body = (ln.Store(out.name, ln.row_major(index, out.shape) if out.shape else ln.Const(0),
                         compute.element(ctx)),)
        nest = _inner_loop(names[-1], shape[-1], body, lanes)
        for name, extent in reversed(list(zip(names[first:-1], shape[first:-1]))):
            nest = (ln.For(name, extent, nest),)
        if split is not None:
            nest = (ln.For(names[split], shape[split], nest[0].body, ln.LoopKind.PARALLEL),)
        else:
            threads = 1
    params = tuple(a.param() for a in [*compute.inputs, out])
    return Schedule(ln.Kernel(compute.name, ln.unique_params(params), nest), threads)


def _inner_loop(var: str, extent: int, body: tuple[ln.Stmt, ...], lanes: int) -> tuple[ln.Stmt, ...]:
    kind = ln.LoopKind.VECTORIZE if lanes > 1 else ln.LoopKind.SERIAL
    return (ln.For(var, extent, body, kind, lanes),)


def _blocked_parallel(var: str, extent: int, body: tuple[ln.Stmt, ...], lanes: int) -> tuple[ln.Stmt, ...]:
    """Split a flat loop into parallel blocks of whole vectors: i = b * block + j."""
    block = max(lanes, -(-extent // 64) // lanes * lanes)
    blocks = -(-extent // block)
    b, j = ln.Var(f"{var}_blk"), ln.Var(f"{var}_in")
    i = b * block + j
    inner = tuple(_substitute_store(s, var, i) for s in body)
    guarded = (ln.If(ln.binary("slt", i, ln.Const(extent)), inner),)
    if extent % block == 0:
        inner_loop = (ln.For(j.name, block, inner, ln.LoopKind.VECTORIZE if lanes > 1 else ln.LoopKind.SERIAL, lanes),)
    else:
        inner_loop = (ln.For(j.name, block, guarded),)
    return (ln.For(b.name, blocks, inner_loop, ln.LoopKind.PARALLEL),)


def _substitute_store(stmt: ln.Store, var: str, value: ln.Expr) -> ln.Store:
    return ln.Store(stmt.buffer, substitute(stmt.index, var, value), substitute(stmt.value, var, value))


def substitute(e: ln.Expr, var: str, value: ln.Expr) -> ln.Expr:
    """``e`` with loop variable ``var`` replaced by ``value`` (iterative: fused chains make deep trees)."""
    def visit(x: ln.Expr, kids: list[ln.Expr]) -> ln.Expr:
        if isinstance(x, ln.Var):
            return value if x.name == var else x
        return ln.with_children(x, kids)
    return ln.post_order(e, visit)


# ----------------------------------------------------------------------------- reductions

@dataclass
class ReduceCompute:
    """Reduce ``input`` along ``axis`` with accumulators (e.g. ARGMAX keeps best value and index).

    ``combine(accs, value, k)`` returns the new accumulators *in store order*
    (an accumulator may read earlier ones only before they are overwritten).
    """
    name: str
    output: TensorArg
    input: TensorArg
    axis: int
    acc_types: list[str]
    init: list[ln.Expr]
    combine: Callable[[list[ln.Expr], ln.Expr, ln.Expr], list[ln.Expr]]
    finalize: Callable[[list[ln.Expr]], ln.Expr]


def reduce_space(compute: ReduceCompute, vector_bits: int) -> ConfigSpace:
    space = ConfigSpace("reduce")
    inner = int(np.prod(compute.input.shape[compute.axis + 1:], dtype=np.int64))
    space.add("lanes", (1, 4, 8, 16), 1 if inner < 4 else min(_lanes_default(vector_bits), 16),
              "vector lanes over the dimensions after the axis")
    space.add("unroll", (1, 2, 4), 1, "copies of the reduction loop body per iteration")
    return space


def reduce_schedule(compute: ReduceCompute, config: Config) -> Schedule:
    shape, axis = compute.input.shape, compute.axis
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    k_extent = shape[axis]
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    lanes, unroll = int(config["lanes"]), int(config["unroll"])
    o, k, i = ln.Var("o"), ln.Var("k"), ln.Var("i")
    accs = [f"acc{n}" for n in range(len(compute.acc_types))]
    acc_loads = [ln.Load(a, i, t) for a, t in zip(accs, compute.acc_types)]
    value = ln.Load(compute.input.name, (o * k_extent + k) * inner + i, compute.input.type)
    init = tuple(ln.Store(a, i, v) for a, v in zip(accs, compute.init))
    update = tuple(ln.Store(a, i, v) for a, v in zip(accs, compute.combine(acc_loads, value, k)))
    final = (ln.Store(compute.output.name, o * inner + i, compute.finalize(acc_loads)),)
    body = (*_inner_loop("i", inner, init, lanes), ln.For("k", k_extent, _inner_loop("i", inner, update, lanes),
                                                               ln.LoopKind.UNROLL, unroll),
            *_inner_loop("i", inner, final, lanes))
    nest = (ln.For("o", outer, body),)
    local = {a: (t, max(inner, 1)) for a, t in zip(accs, compute.acc_types)}
    params = (compute.input.param(), compute.output.param())
    return Schedule(ln.Kernel(compute.name, params, nest, local))

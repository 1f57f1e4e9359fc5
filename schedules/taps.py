"""The tap-reduction template: convolutions, depthwise, transpose conv, MATMUL and pooling.

All of them compute, for every output position and channel, an accumulator
over a set of taps (kernel offsets and input channels), guarded by a bounds
condition, then an epilogue (bias, RESCALE, CLAMP, residual ADD...) applied
while the accumulator is still in registers or the L1-resident row buffer.
The channel loop is innermost and vectorized; the taps either loop (with the
accumulator row in a stack buffer) or, when there are few of them, are
unrolled into one expression so the accumulator lives in vector registers.

Loads inside ``update`` must use indices that are in bounds for every tap
(clamped): in the unrolled form a false condition selects the initial value
instead of branching around the load.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tosac.schedules import loopnest as ln
from tosac.schedules.generic import Schedule, TensorArg
from tosac.schedules.space import Config, ConfigSpace

Vars = list[ln.Expr]
MAX_UNROLLED_TAPS = 64


@dataclass
class TapCompute:
    """``out[pos, c] = finalize(fold(update, init, taps where condition), pos, c)``.

    ``outer`` are the extents of the output positions (all dimensions but the
    last), ``channels`` the last. ``condition(pos, taps)`` gives an i1 or None;
    ``update(acc, pos, taps, c)`` the new accumulator; ``finalize(acc, pos, c)``
    the stored value.
    """
    name: str
    output: TensorArg
    inputs: list[TensorArg]
    outer: list[int]
    channels: int
    taps: list[int]
    acc_type: str
    init: ln.Expr
    condition: Callable[[Vars, Vars], ln.Expr | None]
    update: Callable[[ln.Expr, Vars, Vars, ln.Expr], ln.Expr]
    finalize: Callable[[ln.Expr, Vars, ln.Expr], ln.Expr]
    tap_condition_depth: int | None = None    # condition uses only the first N taps (hoisted above the rest)
    mac_count: int = 0                         # multiply-accumulates (for GOPS and the cost model)


def tap_space(compute: TapCompute, vector_bits: int) -> ConfigSpace:
    space = ConfigSpace("taps")
    lanes = max(4, vector_bits // 32)
    while lanes > 4 and lanes > compute.channels:
        lanes //= 2
    space.add("lanes", (1, 4, 8, 16, 32, 64), lanes, "vector lanes over output channels")
    n_taps = int(np.prod(compute.taps, dtype=np.int64))
    unroll = (0, 1) if n_taps <= MAX_UNROLLED_TAPS else (0,)
    space.add("unroll_taps", unroll, unroll[-1], "taps unrolled into registers (1) or looped over a row buffer (0)")
    space.add("threads", (1, 2, 4), 1, "threads over the first output dimension with extent > 1")
    return space


def tap_schedule(compute: TapCompute, config: Config) -> Schedule:
    lanes, threads = int(config["lanes"]), int(config["threads"])
    pos_names = [f"p{k}" for k in range(len(compute.outer))]
    pos = [ln.Var(n) for n in pos_names]
    c = ln.Var("c")
    tap_vars = [ln.Var(f"t{k}") for k in range(len(compute.taps))]
    out_index = ln.row_major([*pos, c], [*compute.outer, compute.channels])
    kind = ln.LoopKind.VECTORIZE if lanes > 1 else ln.LoopKind.SERIAL
    locals_: dict[str, tuple[str, int]] = {}
    if int(config["unroll_taps"]):
        acc: ln.Expr = compute.init
        for combo in np.ndindex(*compute.taps):
            taps = [ln.Const(int(t)) for t in combo]
            cond = compute.condition(pos, taps)
            new = compute.update(acc, pos, taps, c)
            acc = new if cond is None else ln.select(cond, new, acc)
        body: tuple[ln.Stmt, ...] = (ln.For("c", compute.channels,
                                            (ln.Store(compute.output.name, out_index, compute.finalize(acc, pos, c)),),
                                            kind, lanes),)
    else:
        row = ln.Load("acc", c, compute.acc_type)
        locals_["acc"] = (compute.acc_type, compute.channels)
        init = ln.For("c", compute.channels, (ln.Store("acc", c, compute.init),), kind, lanes)
        update = (ln.For("c", compute.channels, (ln.Store("acc", c, compute.update(row, pos, tap_vars, c)),),
                         kind, lanes),)
        n_taps = len(compute.taps)
        depth = n_taps if compute.tap_condition_depth is None else compute.tap_condition_depth
        nest: tuple[ln.Stmt, ...] = update
        for k in reversed(range(depth, n_taps)):
            nest = (ln.For(tap_vars[k].name, compute.taps[k], nest),)
        cond = compute.condition(pos, tap_vars)
        if cond is not None:
            nest = (ln.If(cond, nest),)
        for k in reversed(range(depth)):
            nest = (ln.For(tap_vars[k].name, compute.taps[k], nest),)
        final = ln.For("c", compute.channels, (ln.Store(compute.output.name, out_index,
                                                        compute.finalize(row, pos, c)),), kind, lanes)
        body = (init, *nest, final)
    for k in reversed(range(len(compute.outer))):
        body = (ln.For(pos_names[k], compute.outer[k], body),)
    par = next((k for k, e in enumerate(compute.outer) if e > 1), None)
    if threads > 1 and par == 0:
        body = (ln.For(pos_names[0], compute.outer[0], body[0].body, ln.LoopKind.PARALLEL),)
    else:
        threads = 1
    params = ln.unique_params([a.param() for a in [*compute.inputs, compute.output]])
    return Schedule(ln.Kernel(compute.name, params, body, locals_), threads)


def in_bounds(index: ln.Expr, size: int) -> ln.Expr:
    """0 <= index < size as one unsigned compare."""
    return ln.binary("ult", index, ln.Const(size))


def all_of(conds: Sequence[ln.Expr | None]) -> ln.Expr | None:
    out: ln.Expr | None = None
    for cond in conds:
        if cond is not None:
            out = cond if out is None else ln.binary("and", out, cond)
    return out

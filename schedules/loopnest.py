"""The loop-nest IR: what a schedule template produces and the emitter consumes.

A kernel is a function over flat buffers. Its body is a tree of statements
(loops with a kind — serial, vectorized, unrolled or parallel — stores,
stack-local buffers, conditionals and micro-kernel calls) whose values are
small typed expression trees (constants, loop variables, loads, arithmetic,
casts, selects, intrinsics). Index arithmetic is plain ``i64`` expressions,
built with Python operators (``i * 64 + j``).

Scalar types are LLVM-like strings: ``i1 i8 i16 i32 i64 f16 f32 f64``.
Integer arithmetic wraps (two's complement, no ``nsw``); signedness lives in
the operation (``sdiv``/``udiv``, ``ashr``/``lshr``, ``sext``/``zext``), as in
LLVM. Nothing here knows about graphs or TOSA.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
import math
from typing import Any, Callable, Sequence

INDEX = "i64"

_COMPARES = {"eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge",
             "foeq", "fone", "folt", "fole", "fogt", "foge", "funo", "ford", "fune"}
BINARY_OPS = {"add", "sub", "mul", "sdiv", "srem", "udiv", "urem", "shl", "ashr", "lshr", "and", "or", "xor",
              "smin", "smax", "umin", "umax", "fadd", "fsub", "fmul", "fdiv", "fmin", "fmax"} | _COMPARES
CAST_OPS = {"sext", "zext", "trunc", "sitofp", "uitofp", "fptosi", "fpext", "fptrunc", "bitcast"}


def bits_of(type_: str) -> int:
    return int(type_[1:])


def is_float(type_: str) -> bool:
    return type_.startswith("f")


class Expr:
    """Base of expression nodes. Python operators build ``i64``-style integer arithmetic."""
    type: str

    def _bin(self, op: str, other: "Expr | int", swap: bool = False) -> "Expr":
        other = other if isinstance(other, Expr) else Const(other, self.type)
        return binary(op, other, self) if swap else binary(op, self, other)

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, swap=True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, swap=True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, swap=True)


@dataclass(frozen=True, eq=False)
class Const(Expr):
    value: int | float
    type: str = INDEX


@dataclass(frozen=True, eq=False)
class Var(Expr):
    """A loop variable (always ``i64``)."""
    name: str
    type: str = INDEX


@dataclass(frozen=True, eq=False)
class Load(Expr):
    buffer: str
    index: Expr
    type: str


@dataclass(frozen=True, eq=False)
class TableLoad(Load):
    """``buffer[index]`` from a table of 256 bytes with ``0 <= index < 256`` (int8 TABLE): vector lanes look it
    up in registers where the target can (AVX-512 VBMI ``vpermi2b``), not with one load per lane."""


@dataclass(frozen=True, eq=False)
class Binary(Expr):
    op: str
    a: Expr
    b: Expr
    type: str


@dataclass(frozen=True, eq=False)
class Cast(Expr):
    op: str
    value: Expr
    type: str


@dataclass(frozen=True, eq=False)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr
    type: str


@dataclass(frozen=True, eq=False)
class Intrinsic(Expr):
    """An LLVM intrinsic by its generic name (``ctlz``, ``abs``, ``rint``...), overloaded on ``type``."""
    name: str
    args: tuple[Expr, ...]
    type: str


def binary(op: str, a: Expr, b: Expr) -> Expr:
    """``a op b`` with light constant folding of index arithmetic."""
    assert op in BINARY_OPS, op
    assert a.type == b.type, (op, a.type, b.type)
    if isinstance(a, Const) and isinstance(b, Const) and a.type == INDEX and op in ("add", "sub", "mul"):
        return Const({"add": a.value + b.value, "sub": a.value - b.value, "mul": a.value * b.value}[op])
    if op == "add" and isinstance(b, Const) and b.value == 0 or op == "mul" and isinstance(b, Const) and b.value == 1:
        return a
    if op == "add" and isinstance(a, Const) and a.value == 0 or op == "mul" and isinstance(a, Const) and a.value == 1:
        return b
    if op == "mul" and (isinstance(a, Const) and a.value == 0 or isinstance(b, Const) and b.value == 0):
        return Const(0, a.type)
    if op == "sub" and isinstance(b, Const) and b.value == 0:
        return a
    return Binary(op, a, b, "i1" if op in _COMPARES else a.type)


def cast(value: Expr, type_: str, signed: bool = True) -> Expr:
    """Convert ``value`` to ``type_`` (sign- or zero-extending, truncating, int<->float)."""
    src = value.type
    if src == type_:
        return value
    if isinstance(value, Const) and not is_float(src) and not is_float(type_):
        v = int(value.value)
        if bits_of(type_) < bits_of(src) or not signed:
            v &= (1 << bits_of(src if bits_of(type_) >= bits_of(src) else type_)) - 1
            if signed and v >= 1 << (bits_of(type_) - 1) and bits_of(type_) > 1:
                v -= 1 << bits_of(type_)
        return Const(v, type_)
    if is_float(src) and is_float(type_):
        return Cast("fpext" if bits_of(type_) > bits_of(src) else "fptrunc", value, type_)
    if is_float(type_):
        return Cast("sitofp" if signed else "uitofp", value, type_)
    if is_float(src):
        return Cast("fptosi", value, type_)
    if bits_of(type_) < bits_of(src):
        return Cast("trunc", value, type_)
    return Cast("sext" if signed and src != "i1" else "zext", value, type_)


def select(cond: Expr, a: Expr, b: Expr) -> Expr:
    assert cond.type == "i1" and a.type == b.type, (cond.type, a.type, b.type)
    return Select(cond, a, b, a.type)


def smin(a: Expr, b: Expr) -> Expr:
    return binary("smin", a, b)


def smax(a: Expr, b: Expr) -> Expr:
    return binary("smax", a, b)


def clamp_index(index: Expr, size: int) -> Expr:
    """``index`` clamped into ``[0, size)``: loads guarded by a select must still be in bounds."""
    return smin(smax(index, Const(0)), Const(max(size - 1, 0)))


# ----------------------------------------------------------------------------- statements

class LoopKind(enum.Enum):
    SERIAL = "serial"
    VECTORIZE = "vectorize"      # factor = lanes; the body must be stores only
    UNROLL = "unroll"            # factor = copies of the body per iteration
    PARALLEL = "parallel"        # outermost only: the runtime splits [0, extent) over threads


class Stmt:
    pass


@dataclass(frozen=True, eq=False)
class For(Stmt):
    var: str
    extent: int
    body: tuple[Stmt, ...]
    kind: LoopKind = LoopKind.SERIAL
    factor: int = 1


@dataclass(frozen=True, eq=False)
class Store(Stmt):
    buffer: str
    index: Expr
    value: Expr


@dataclass(frozen=True, eq=False)
class InterleavedStore(Store):
    """``buffer[index + k] = values[k]`` for each k. In a vector loop whose ``index`` advances by
    ``len(values)`` per lane this is one contiguous store of the values interleaved lane by lane (activations
    packed in groups of taps for dot-product instructions), not a store per lane."""
    rest: tuple[Expr, ...] = ()

    @property
    def values(self) -> tuple[Expr, ...]:
        return (self.value, *self.rest)


@dataclass(frozen=True, eq=False)
class If(Stmt):
    cond: Expr
    then: tuple[Stmt, ...]


@dataclass(frozen=True, eq=False)
class MicroKernel(Stmt):
    """A call of a target micro-kernel (the ``tensorize`` idea).

    ``emit(emitter, operands)`` writes LLVM IR at the emitter's insertion point;
    ``operands`` maps names to expressions evaluated first (buffer offsets...).
    ``features`` describes it for the cost model.
    """
    name: str
    emit: Callable[[Any, dict[str, Any]], None]
    operands: dict[str, Expr]
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Param:
    """A kernel argument: a flat buffer of ``size`` elements of ``type``."""
    name: str
    type: str
    size: int


@dataclass(frozen=True, eq=False)
class Kernel:
    """One function: ``void name(ptr buffers[], i64 begin, i64 end)``.

    ``params`` are the buffers in argument order; ``locals`` are stack buffers
    (name -> (type, size)); ``parallel_extent`` is the extent of the outermost
    PARALLEL loop (0 when the kernel is serial).
    """
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    locals: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def parallel_extent(self) -> int:
        for stmt in self.body:
            if isinstance(stmt, For) and stmt.kind is LoopKind.PARALLEL:
                return stmt.extent
        return 0


def vector_factor(extent: int, most: int = 16) -> int:
    """Lanes for a vectorized loop of ``extent`` iterations: the largest power of two up to ``most`` that
    fits, so a short loop (8 channels) is one vector, not a scalar remainder."""
    factor = 1
    while factor * 2 <= min(extent, most):
        factor *= 2
    return factor


def loops(vars_extents: Sequence[tuple[str, int]], body: Sequence[Stmt]) -> tuple[Stmt, ...]:
    """A perfect serial nest, outermost first."""
    inner: tuple[Stmt, ...] = tuple(body)
    for var, extent in reversed(list(vars_extents)):
        inner = (For(var, extent, inner),)
    return inner


def row_major(indices: Sequence[Expr], shape: Sequence[int]) -> Expr:
    """The flat offset of ``indices`` in a dense row-major array of ``shape``."""
    offset: Expr = Const(0)
    for index, dim in zip(indices, shape):
        offset = offset * dim + index
    return offset


def unravel(flat: Expr, shape: Sequence[int]) -> list[Expr]:
    """The indices of row-major offset ``flat`` in ``shape`` (the inverse of ``row_major``; size-1 dims are 0)."""
    out: list[Expr] = []
    rest = flat
    for k, dim in enumerate(shape):
        inner = math.prod(shape[k + 1:])
        q = rest if inner == 1 else binary("sdiv", rest, Const(inner))
        out.append(Const(0) if dim == 1 else q)
        rest = rest if inner == 1 else binary("srem", rest, Const(inner))
    return out


def unique_params(params: Sequence[Param]) -> tuple[Param, ...]:
    """``params`` without repeats by name, first occurrence kept (a buffer may be read in two roles)."""
    seen: dict[str, Param] = {}
    for p in params:
        seen.setdefault(p.name, p)
    return tuple(seen.values())


# ----------------------------------------------------------------------------- analysis
#
# Expressions can be thousands of nodes deep (a 300-op fused element-wise chain, a 64x64 depthwise kernel), so
# every walk here is iterative: Python's recursion limit must not decide which valid graphs compile.

def children(expr: Expr) -> tuple[Expr, ...]:
    """The operands of ``expr``, in evaluation order (none for constants and loop variables)."""
    if isinstance(expr, Binary):
        return (expr.a, expr.b)
    if isinstance(expr, Load):
        return (expr.index,)
    if isinstance(expr, Cast):
        return (expr.value,)
    if isinstance(expr, Select):
        return (expr.cond, expr.a, expr.b)
    if isinstance(expr, Intrinsic):
        return expr.args
    return ()


def with_children(expr: Expr, kids: Sequence[Expr]) -> Expr:
    """A new node like ``expr`` with operands ``kids`` (no folding); leaves are returned as they are."""
    if isinstance(expr, Binary):
        return Binary(expr.op, kids[0], kids[1], expr.type)
    if isinstance(expr, Load):
        return Load(expr.buffer, kids[0], expr.type)
    if isinstance(expr, Cast):
        return Cast(expr.op, kids[0], expr.type)
    if isinstance(expr, Select):
        return Select(kids[0], kids[1], kids[2], expr.type)
    if isinstance(expr, Intrinsic):
        return Intrinsic(expr.name, tuple(kids), expr.type)
    return expr


def post_order(root: Expr, visit: Callable[[Expr, list[Any]], Any],
               kids: Callable[[Expr], Sequence[Expr]] = children) -> Any:
    """``visit(node, [results of kids(node)])`` bottom-up, each shared node once, without recursion."""
    done: dict[int, Any] = {}
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in done:
            stack.pop()
            continue
        operands = kids(node)
        pending = [k for k in operands if id(k) not in done]
        if pending:
            stack.extend(reversed(pending))
            continue
        stack.pop()
        done[id(node)] = visit(node, [done[id(k)] for k in operands])
    return done[id(root)]


def linear_coefficient(expr: Expr, var: str, reads: dict[Expr, bool] | None = None) -> int | None:
    """The constant ``c`` with ``expr = c * var + (terms free of var)``, or None if not affine in var.

    ``reads`` is a cache for :func:`reads_var` with the same ``var``, shared by the caller across the
    expressions of one kernel (a gather index deep in a fused chain would otherwise be walked once per load).
    """
    coefficient: dict[int, int | None] = {}
    stack: list[tuple[Expr, bool]] = [(expr, False)]
    while stack:
        e, operands_done = stack.pop()
        if not operands_done and id(e) in coefficient:
            continue
        if isinstance(e, Var):
            coefficient[id(e)] = 1 if e.name == var else 0
        elif isinstance(e, Const):
            coefficient[id(e)] = 0
        elif not (isinstance(e, Binary) and e.type == INDEX and e.op in ("add", "sub", "mul")):
            coefficient[id(e)] = None if reads_var(e, var, reads) else 0
        elif not operands_done:
            stack += ((e, True), (e.b, False), (e.a, False))
        else:
            coefficient[id(e)] = _combine(e, coefficient[id(e.a)], coefficient[id(e.b)])
    return coefficient[id(expr)]


def _combine(e: Binary, ca: int | None, cb: int | None) -> int | None:
    """The coefficient of ``e = a op b`` (add, sub or mul) from its operands'."""
    if ca is None or cb is None:
        return None
    if e.op == "add":
        return ca + cb
    if e.op == "sub":
        return ca - cb
    if cb == 0 and isinstance(e.b, Const):
        return ca * int(e.b.value)
    if ca == 0 and isinstance(e.a, Const):
        return cb * int(e.a.value)
    return 0 if ca == 0 and cb == 0 else None


def reads_var(expr: Expr, var: str, cache: dict[Expr, bool] | None = None) -> bool:
    """Whether ``expr`` reads loop variable ``var``; ``cache`` (node -> answer, for this ``var``) persists. It is
    keyed by the nodes themselves, not their ids: it keeps them alive, so a node built later cannot reuse the
    id of a freed one and inherit its answer."""
    cache = {} if cache is None else cache
    stack = [expr]
    while stack:
        node = stack[-1]
        if node in cache:
            stack.pop()
            continue
        operands = children(node)
        pending = [k for k in operands if k not in cache]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        cache[node] = node.name == var if isinstance(node, Var) else any(cache[k] for k in operands)
    return cache[expr]


def free_vars(expr: Expr) -> set[str]:
    """The loop variables ``expr`` reads."""
    out: set[str] = set()
    seen: set[int] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, Var):
            out.add(e.name)
        stack.extend(children(e))
    return out

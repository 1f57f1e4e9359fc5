"""The one emitter: loop-nest IR -> LLVM IR through ``llvmlite.ir``.

Every kernel becomes ``void name(ptr buffers[], i64 begin, i64 end)``.
Vectorized loops are emitted as explicit LLVM vectors (contiguous loads and
stores where the index advances by one element per lane, per-lane gathers
otherwise) followed by a scalar remainder loop, so the vector width is exactly
the config's and not left to LLVM's heuristics. Integer arithmetic never
carries ``nsw``/``nuw``: TOSA defines wrap-around where it defines overflow.
Division by zero and out-of-range shift amounts are undefined in LLVM, so the
templates guard them before they reach here.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Generator, Iterable

import llvmlite.ir as ir

from tosac.schedules import loopnest as ln

PTR = ir.PointerType()
I64 = ir.IntType(64)

_ICMP = {"eq": "==", "ne": "!=", "slt": "<", "sle": "<=", "sgt": ">", "sge": ">=",
         "ult": "<", "ule": "<=", "ugt": ">", "uge": ">="}
_FCMP = {"foeq": "==", "fone": "!=", "folt": "<", "fole": "<=", "fogt": ">", "foge": ">=",
         "funo": "uno", "ford": "ord", "fune": "!="}
_LIBM = {"erf"}
_MINMAX = {"smin": "llvm.smin", "smax": "llvm.smax", "umin": "llvm.umin", "umax": "llvm.umax",
           "fmin": "llvm.minnum", "fmax": "llvm.maxnum"}


def _scalar(ty: ir.Type) -> ir.Type:
    return ty.element if isinstance(ty, ir.VectorType) else ty


def llvm_type(type_: str) -> ir.Type:
    if type_ == "f32":
        return ir.FloatType()
    if type_ == "f64":
        return ir.DoubleType()
    if type_ == "f16":
        return ir.HalfType()
    return ir.IntType(ln.bits_of(type_))


# Vector constants are built once and shared: llvmlite formats a constant once per object, and building and
# formatting a fresh <64 x i8> undef per splat was a fifth of the emitter's time. Constants have no parent,
# so one object can be an operand anywhere; the text is the same.
@functools.lru_cache(maxsize=None)
def undefined(ty: ir.Type) -> ir.Constant:
    """The ``undef`` constant of ``ty`` (one shared object)."""
    return ir.Constant(ty, ir.Undefined)


@functools.lru_cache(maxsize=None)
def _zero_mask(lanes: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)


@functools.lru_cache(maxsize=None)
def _ramp(lanes: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))


_MISSING = object()


@dataclass(frozen=True)
class _Scalar:
    """A request to evaluate ``index`` as a scalar (outside the vector lanes, memo of its own)."""
    index: ln.Expr


def _type_suffix(ty: ir.Type) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_type_suffix(ty.element)}"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    return {ir.FloatType: "f32", ir.DoubleType: "f64", ir.HalfType: "f16"}[type(ty)]


class Emitter:
    """Emits kernels into one ``ir.Module``; micro-kernels use its helpers."""

    def __init__(self, module: ir.Module, features: Iterable[str] = ()):
        self.module = module
        self.features = frozenset(features)             # the target's LLVM features (instruction choices)
        self.builder: ir.IRBuilder | None = None
        self.buffers: dict[str, tuple[ir.Value, ir.Type]] = {}
        self.env: dict[str, ir.Value] = {}
        self.vector: tuple[str, int] | None = None      # (loop variable, lanes) inside a vector body
        self._memo: dict[ln.Expr, ir.Value] = {}          # per statement, keyed by node (kept alive: no id reuse)
        self._reads: dict[str, dict[ln.Expr, bool]] = {}    # loop variable -> node -> reads it (per kernel)

    # ------------------------------------------------------------------ helpers for micro-kernels
    def intrinsic(self, name: str, ret: ir.Type, arg_types: Iterable[ir.Type]) -> ir.Function:
        """Declare (once) and return an intrinsic or external function."""
        existing = self.module.globals.get(name)
        if existing is not None:
            return existing
        return ir.Function(self.module, ir.FunctionType(ret, list(arg_types)), name=name)

    def entry_alloca(self, ty: ir.Type, size: int | None = None) -> ir.Value:
        """A stack slot allocated once in the entry block (promotable to registers by LLVM)."""
        b = self.builder
        current = b.block
        b.position_at_start(b.function.entry_basic_block)
        slot = b.alloca(ty, size=size)
        b.position_at_end(current)
        return slot

    def element_pointer(self, buffer: str, index: ir.Value) -> ir.Value:
        base, ety = self.buffers[buffer]
        return self.builder.gep(base, [index], source_etype=ety)

    def expr(self, e: ln.Expr) -> ir.Value:
        """Evaluate an expression at the insertion point (memoised per statement)."""
        return self._evaluate(e)

    def splat(self, value: ir.Value, lanes: int) -> ir.Value:
        b = self.builder
        undef = undefined(ir.VectorType(value.type, lanes))
        one = b.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
        return b.shuffle_vector(one, undef, _zero_mask(lanes))

    # ------------------------------------------------------------------ kernels
    def emit_kernel(self, kernel: ln.Kernel, linkage: str = "") -> ir.Function:
        """Emit ``kernel``; ``linkage="internal"`` hides it when a model entry point calls it."""
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR, I64, I64]), name=kernel.name)
        if linkage:
            fn.linkage = linkage
        fn.attributes.add("nounwind")
        args, begin, end = fn.args
        self.builder = ir.IRBuilder(fn.append_basic_block("entry"))
        b = self.builder
        self.buffers, self.env, self.vector = {}, {"__begin": begin, "__end": end}, None
        self._reads = {}
        for i, param in enumerate(kernel.params):
            slot = b.gep(args, [ir.Constant(I64, i)], source_etype=PTR)
            self.buffers[param.name] = (b.load(slot, typ=PTR, name=param.name), llvm_type(param.type))
        for name, (type_, size) in kernel.locals.items():
            ety = llvm_type(type_)
            self.buffers[name] = (self.entry_alloca(ety, size), ety)
        self.statements(kernel.body, outermost=True)
        self.builder.ret_void()
        return fn

    def statements(self, stmts: Iterable[ln.Stmt], outermost: bool = False) -> None:
        for stmt in stmts:
            self._memo = {}
            if isinstance(stmt, ln.For):
                self._for(stmt, outermost)
            elif isinstance(stmt, ln.Store):
                self._store(stmt)
            elif isinstance(stmt, ln.If):
                with self.builder.if_then(self.expr(stmt.cond)):
                    self.statements(stmt.then)
            elif isinstance(stmt, ln.MicroKernel):
                stmt.emit(self, {k: self.expr(v) for k, v in stmt.operands.items()})
            else:
                raise TypeError(f"unknown statement {stmt!r}")
            self._memo = {}

    def loop(self, var: str, start: ir.Value, stop: ir.Value, step: int, body) -> None:
        """for (var = start; var < stop; var += step) body(var_value): the one loop shape micro-kernels emit."""
        b = self.builder
        pre = b.block
        header = b.append_basic_block(f"{var}.head")
        inner = b.append_basic_block(f"{var}.body")
        exit_ = b.append_basic_block(f"{var}.exit")
        b.branch(header)
        b.position_at_end(header)
        phi = b.phi(I64, name=var)
        phi.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", phi, stop), inner, exit_)
        b.position_at_end(inner)
        saved = self.env.get(var)
        self.env[var] = phi
        body(phi)
        nxt = b.add(phi, ir.Constant(I64, step), name=f"{var}.next")
        phi.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(exit_)
        if saved is not None:
            self.env[var] = saved

    def _for(self, loop: ln.For, outermost: bool) -> None:
        kind, factor = loop.kind, max(1, loop.factor)
        start, stop = ir.Constant(I64, 0), ir.Constant(I64, loop.extent)
        if kind is ln.LoopKind.PARALLEL:
            if not outermost:
                raise ValueError(f"parallel loop {loop.var} must be outermost")
            b = self.builder
            start = self.env["__begin"]
            end = self.env["__end"]
            stop = b.select(b.icmp_signed("<", end, stop), end, stop)
            kind, factor = ln.LoopKind.SERIAL, 1
        if kind is ln.LoopKind.SERIAL or factor == 1 or loop.extent < factor:
            self.loop(loop.var, start, stop, 1, lambda _: self.statements(loop.body))
            return
        main = loop.extent - loop.extent % factor
        if kind is ln.LoopKind.UNROLL:
            def unrolled(base):
                for k in range(factor):
                    self.env[loop.var] = self.builder.add(base, ir.Constant(I64, k)) if k else base
                    self.statements(loop.body)
            self.loop(loop.var, start, ir.Constant(I64, main), factor, unrolled)
        else:
            if any(not isinstance(s, ln.Store) for s in loop.body):
                raise ValueError(f"vectorized loop {loop.var} may contain only stores")
            outer_vector = self.vector

            def vector_body(_):
                self.vector = (loop.var, factor)
                self.statements(loop.body)
                self.vector = outer_vector
            self.loop(loop.var, start, ir.Constant(I64, main), factor, vector_body)
        if main < loop.extent:
            self.loop(loop.var, ir.Constant(I64, main), stop, 1, lambda _: self.statements(loop.body))

    # ------------------------------------------------------------------ stores and loads
    def _scalar_index(self, index: ln.Expr) -> ir.Value:
        return self._evaluate(_Scalar(index))

    def _stride(self, index: ln.Expr, var: str) -> int | None:
        """Elements ``index`` advances per step of vector variable ``var`` (None: not affine, a gather)."""
        return ln.linear_coefficient(index, var, self._reads.setdefault(var, {}))

    def _store(self, st: ln.Store) -> None:
        if isinstance(st, ln.InterleavedStore):
            self._interleaved_store(st)
            return
        b = self.builder
        value = self.expr(st.value)
        _, ety = self.buffers[st.buffer]
        if self.vector is None:
            b.store(value, self.element_pointer(st.buffer, self.expr(st.index)))
            return
        var, lanes = self.vector
        if not isinstance(value.type, ir.VectorType):
            value = self.splat(value, lanes)
        stride = self._stride(st.index, var)
        if stride == 1:
            ptr = self.element_pointer(st.buffer, self._scalar_index(st.index))
            b.store(value, b.bitcast(ptr, value.type.as_pointer()), align=1)
            return
        indices = self.expr(st.index)
        if not isinstance(indices.type, ir.VectorType):
            indices = self.splat(indices, lanes)
        for lane in range(lanes):
            at = ir.Constant(ir.IntType(32), lane)
            b.store(b.extract_element(value, at), self.element_pointer(st.buffer, b.extract_element(indices, at)))

    def _interleaved_store(self, st: ln.InterleavedStore) -> None:
        b, count = self.builder, len(st.values)
        lanes = self.vector[1] if self.vector is not None else None
        if lanes is None or self._stride(st.index, self.vector[0]) != count or count & (count - 1):
            for k, v in enumerate(st.values):   # scalar code, or not one group per lane: a store per value
                self._store(ln.Store(st.buffer, st.index + ln.Const(k), v))
            return
        values = [self.expr(v) for v in st.values]
        values = [v if isinstance(v.type, ir.VectorType) else self.splat(v, lanes) for v in values]
        while len(values) > 1:                        # concatenate pairwise: [v0 | v1 | ... ]
            width = values[0].type.count
            mask = ir.Constant(ir.VectorType(ir.IntType(32), 2 * width), list(range(2 * width)))
            values = [b.shuffle_vector(values[i], values[i + 1], mask) for i in range(0, len(values), 2)]
        order = [k * lanes + lane for lane in range(lanes) for k in range(count)]
        grouped = b.shuffle_vector(values[0], undefined(values[0].type),
                                   ir.Constant(ir.VectorType(ir.IntType(32), lanes * count), order))
        ptr = self.element_pointer(st.buffer, self._scalar_index(st.index))
        b.store(grouped, b.bitcast(ptr, grouped.type.as_pointer()), align=1)

    # ------------------------------------------------------------------ expressions
    def _broadcast(self, *values: ir.Value) -> list[ir.Value]:
        lanes = next((v.type.count for v in values if isinstance(v.type, ir.VectorType)), None)
        if lanes is None:
            return list(values)
        return [v if isinstance(v.type, ir.VectorType) else self.splat(v, lanes) for v in values]

    # Expression trees can be thousands of nodes deep (a fused chain of hundreds of ops), so evaluation is not
    # recursive: each node's steps are a generator that yields the operands it needs, in the order the old
    # recursive evaluator visited them, and ``_evaluate`` runs those generators on an explicit stack. The
    # instructions come out in the same order, so the IR text is the same.
    def _evaluate(self, root: "ln.Expr | _Scalar") -> ir.Value:
        stack: list[tuple[Generator, ln.Expr | None, tuple | None]] = []
        value = self._need(root, stack)
        while stack:
            steps, key, saved = stack[-1]
            try:
                request = steps.send(value)
            except StopIteration as done:
                stack.pop()
                value = done.value
                if saved is not None:
                    self.vector, self._memo = saved
                if key is not None:
                    self._memo[key] = value
                continue
            value = self._need(request, stack)
        return value

    def _need(self, request: "ln.Expr | _Scalar", stack: list) -> ir.Value | None:
        """The value of ``request`` if known now (memoised, or a leaf); else push the frame that computes it."""
        if isinstance(request, _Scalar):            # an index evaluated outside the vector body, memo of its own
            stack.append((self._steps(request.index), None, (self.vector, self._memo)))
            self.vector, self._memo = None, {}
            return None
        key = request
        value = self._memo.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if isinstance(request, (ln.Const, ln.Var)):
            value = self._memo[key] = self._leaf(request)
            return value
        stack.append((self._steps(request), key, None))
        return None

    def _leaf(self, e: "ln.Const | ln.Var") -> ir.Value:
        if isinstance(e, ln.Const):
            return ir.Constant(llvm_type(e.type), e.value)
        value = self.env[e.name]
        if self.vector and self.vector[0] == e.name:
            lanes = self.vector[1]
            return self.builder.add(self.splat(value, lanes), _ramp(lanes))
        return value

    def _steps(self, e: ln.Expr) -> Generator:
        """The instructions of one node; ``yield x`` gives the value of operand ``x``."""
        b = self.builder
        if isinstance(e, (ln.Const, ln.Var)):
            return self._leaf(e)
        if isinstance(e, ln.Load):
            return (yield from self._load(e))
        if isinstance(e, ln.Binary):
            a = yield e.a
            x, y = self._broadcast(a, (yield e.b))
            return self._binary(e.op, x, y)
        if isinstance(e, ln.Cast):
            value = yield e.value
            ty = llvm_type(e.type)
            if isinstance(value.type, ir.VectorType):
                ty = ir.VectorType(ty, value.type.count)
            if e.op == "fptrunc" and e.type == "f16" and _scalar(value.type) == ir.DoubleType():
                return self._double_to_half(value, ty)
            return getattr(b, e.op)(value, ty)
        if isinstance(e, ln.Select):
            cond = yield e.cond
            a = yield e.a
            c, x, y = self._broadcast(cond, a, (yield e.b))
            if not isinstance(cond.type, ir.VectorType):
                c = cond            # one condition for every lane: a scalar select of vectors, not a lane mask
            return b.select(c, x, y)
        if isinstance(e, ln.Intrinsic):
            values = []
            for arg in e.args:
                values.append((yield arg))
            return self._call_intrinsic(e.name, self._broadcast(*values))
        raise TypeError(f"unknown expression {type(e).__name__}")

    def _load(self, e: ln.Load) -> Generator:
        b = self.builder
        _, ety = self.buffers[e.buffer]
        if self.vector is None:
            return b.load(self.element_pointer(e.buffer, (yield e.index)), typ=ety)
        var, lanes = self.vector
        stride = self._stride(e.index, var)
        if stride == 0:
            return b.load(self.element_pointer(e.buffer, (yield _Scalar(e.index))), typ=ety)
        if isinstance(e, ln.TableLoad) and "avx512vbmi" in self.features and lanes <= 64:
            return self._table_lookup(e.buffer, (yield e.index), lanes)
        if stride == 1:
            ptr = self.element_pointer(e.buffer, (yield _Scalar(e.index)))
            vty = ir.VectorType(ety, lanes)
            return b.load(b.bitcast(ptr, vty.as_pointer()), typ=vty, align=1)
        indices = yield e.index
        out = undefined(ir.VectorType(ety, lanes))
        for lane in range(lanes):
            at = ir.Constant(ir.IntType(32), lane)
            value = b.load(self.element_pointer(e.buffer, b.extract_element(indices, at)), typ=ety)
            out = b.insert_element(out, value, at)
        return out

    def _table_lookup(self, buffer: str, indices: ir.Value, lanes: int) -> ir.Value:
        """``lanes`` bytes of a 256-byte table at ``indices`` (0..255): two ``vpermi2b`` pick from its halves
        (index bits 0-6 choose among 128 bytes), bit 7 selects the half. Up to 64 lanes at once."""
        b = self.builder
        byte, wide = ir.IntType(8), ir.VectorType(ir.IntType(8), 64)
        base = self.element_pointer(buffer, ir.Constant(I64, 0))
        quarters = [b.load(b.gep(base, [ir.Constant(I64, 64 * q)], source_etype=byte), typ=wide, align=1)
                    for q in range(4)]
        index = b.trunc(indices, ir.VectorType(byte, lanes))
        if lanes < 64:
            index = b.shuffle_vector(index, undefined(index.type),
                                     ir.Constant(ir.VectorType(ir.IntType(32), 64), [k % lanes for k in range(64)]))
        permute = self.intrinsic("llvm.x86.avx512.vpermi2var.qi.512", wide, [wide] * 3)
        low = b.call(permute, [quarters[0], index, quarters[1]])
        high = b.call(permute, [quarters[2], index, quarters[3]])
        picked = b.select(b.icmp_signed("<", index, ir.Constant(wide, None)), high, low)
        if lanes == 64:
            return picked
        return b.shuffle_vector(picked, undefined(wide), ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                                     list(range(lanes))))

    def _double_to_half(self, value: ir.Value, half: ir.Type) -> ir.Value:
        """f64 -> f16 correctly rounded without the ``__truncdfhf2`` library call (which the JIT cannot resolve
        reliably: calling it crashed): round to float32 *to odd* (truncate toward zero, then set the last bit
        if inexact), then float32 -> f16 to nearest. float32's 13 extra bits make the two roundings one."""
        b = self.builder
        lanes = value.type.count if isinstance(value.type, ir.VectorType) else None
        f32 = ir.VectorType(ir.FloatType(), lanes) if lanes else ir.FloatType()
        i32 = ir.VectorType(ir.IntType(32), lanes) if lanes else ir.IntType(32)
        nearest = b.fptrunc(value, f32)
        back = b.fpext(nearest, value.type)
        inexact = b.fcmp_ordered("!=", back, value)                   # false for NaN: kept as is
        zero = ir.Constant(value.type, None)
        away = b.select(b.fcmp_ordered(">", value, zero), b.fcmp_ordered(">", back, value),
                        b.fcmp_ordered("<", back, value))             # rounded away from zero
        bits = b.bitcast(nearest, i32)
        toward_zero = b.sub(bits, b.zext(away, i32))                  # one ulp less in magnitude
        one = ir.Constant(i32, 1) if not lanes else ir.Constant(i32, [1] * lanes)
        odd = b.select(inexact, b.or_(toward_zero, one), bits)
        return b.fptrunc(b.bitcast(odd, f32), half)

    def _call_intrinsic(self, name: str, args: list[ir.Value]) -> ir.Value:
        ty = args[0].type
        if name in _LIBM:                    # no LLVM intrinsic: call the C library, lane by lane
            fn = self.intrinsic(name, ir.DoubleType(), [ir.DoubleType()])
            if not isinstance(ty, ir.VectorType):
                return self.builder.call(fn, args)
            out = undefined(ty)
            for lane in range(ty.count):
                at = ir.Constant(ir.IntType(32), lane)
                out = self.builder.insert_element(out, self.builder.call(fn, [self.builder.extract_element(args[0], at)]), at)
            return out
        extra: list[ir.Value] = []
        if name in ("ctlz", "abs"):
            extra = [ir.Constant(ir.IntType(1), 0)]          # defined for 0 / INT_MIN (wraps)
        fn = self.intrinsic(f"llvm.{name}.{_type_suffix(ty)}", ty, [a.type for a in args + extra])
        return self.builder.call(fn, args + extra)

    def _binary(self, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
        b = self.builder
        if op in _ICMP:
            return (b.icmp_signed if op[0] in "sen" else b.icmp_unsigned)(_ICMP[op], x, y)
        if op in ("funo", "fune"):
            return b.fcmp_unordered(_FCMP[op], x, y)
        if op in _FCMP:
            return b.fcmp_ordered(_FCMP[op], x, y)
        if op in _MINMAX:
            fn = self.intrinsic(f"{_MINMAX[op]}.{_type_suffix(x.type)}", x.type, [x.type, y.type])
            return b.call(fn, [x, y])
        method = {"add": b.add, "sub": b.sub, "mul": b.mul, "sdiv": b.sdiv, "srem": b.srem, "udiv": b.udiv,
                  "urem": b.urem, "shl": b.shl, "ashr": b.ashr, "lshr": b.lshr, "and": b.and_, "or": b.or_,
                  "xor": b.xor, "fadd": b.fadd, "fsub": b.fsub, "fmul": b.fmul, "fdiv": b.fdiv}[op]
        return method(x, y)

"""The deployable entry point: ``int model_run(const void *inputs[], void *outputs[], void *arena)``.

It calls the graph's kernels in order, each with its buffer table built from
the caller's input and output pointers, the arena (offsets of the static
memory plan) and the constants, which become read-only globals (``.rodata``).
Kernels get internal linkage, so several models link into one program; the
only global symbol is the entry point. Nothing is called but the kernels and
``memcpy`` (for outputs that are inputs or constants), so the object needs no
Python and no libc beyond ``memcpy``/``memset``. It returns 0, or 1 when a WHILE_LOOP exceeds the iteration guard.

A program with multi-threaded kernels also exports ``model_run_parallel(inputs,
outputs, arena, parallel_for, ctx)``: each such kernel's loop is handed to the
caller's ``parallel_for(ctx, kernel, buffers, extent, tasks)``, which must run
``kernel(buffers, begin, end)`` over a partition of ``[0, extent)`` and return
when all of it is done (tosac's own pool, ``tosac.runtime.thread_pool``, or
any other); ``model_run`` runs every kernel on the calling thread. The JIT
entry takes the same two arguments after its constants table.
"""
from __future__ import annotations

from dataclasses import replace

import llvmlite.ir as ir
import numpy as np

from tosac.errors import UnsupportedError

from tosac.ir.reference.control_flow import MAX_ITERATIONS
from tosac.runtime.executable import ControlStep, HostStep, KernelStep, Program
from tosac.runtime.jit import REPEAT_SUFFIX
from tosac.runtime.memory_plan import MemoryPlan

PTR = ir.PointerType()
I64 = ir.IntType(64)
ENTRY = "model_run"
PARALLEL_SUFFIX = "_parallel"        # model_run_parallel: model_run's arguments, then parallel_for and its context
HOST_ENTRY = "tosac_host_run"        # the JIT's entry: constants table, parallel_for, context


def _align(n: int, to: int = 64) -> int:
    return -(-n // to) * to


def add_constants(module: ir.Module, constants: dict[str, np.ndarray], prefix: str) -> dict[str, ir.GlobalVariable]:
    """One private, 64-byte aligned, read-only global per constant buffer."""
    out = {}
    for index, (name, data) in enumerate(sorted(constants.items())):
        raw = np.ascontiguousarray(data).tobytes() or b"\0"
        ty = ir.ArrayType(ir.IntType(8), len(raw))
        gv = ir.GlobalVariable(module, ty, name=f"{prefix}_const_{index}")
        gv.initializer = ir.Constant(ty, bytearray(raw))
        gv.global_constant = True
        gv.linkage = "private"
        gv.align = 64
        out[name] = gv
    return out


def has_threaded_steps(program: Program) -> bool:
    """Whether a kernel of ``program`` (control-flow bodies included) splits its loop over threads."""
    return any(s.threaded if isinstance(s, KernelStep) else
               isinstance(s, ControlStep) and any(has_threaded_steps(body) for body in s.bodies.values())
               for s in program.steps)


# void parallel_for(void *ctx, void (*kernel)(void *buffers[], int64 begin, int64 end), void *buffers[],
#                   int64 extent, int64 tasks)
PARALLEL_FOR_TYPE = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I64, I64])


def add_entry_point(module: ir.Module, program: Program, name: str = ENTRY, linkage: str = "",
                    constants_table: bool = False, threaded: bool | None = None) -> MemoryPlan:
    """Define ``name(inputs, outputs, arena)`` running ``program``; return the plan with the full arena size.

    When ``threaded`` (default: the JIT entry, or a program with threaded kernels) the function takes
    ``parallel_for`` and its context last (a null ``parallel_for`` runs every kernel on the caller's thread);
    a public ``name`` is then ``name_parallel``, and ``name`` without them calls it with nulls.

    Control-flow bodies become internal entry points of their own; they share one
    arena region after the program's own buffers (bodies never run at the same
    time), followed by WHILE_LOOP's temporaries. With ``constants_table`` (the host
    JIT) constants are not copied into the module: the function takes a fourth
    argument, a table of pointers to them in ``sorted(program.constants)`` order.
    """
    if threaded is None:
        threaded = constants_table or has_threaded_steps(program)
    globals_ = {} if constants_table else add_constants(module, program.constants, name)
    table_names = sorted(program.constants) if constants_table else []
    plan = program.memory_plan
    region = _align(plan.arena_bytes)
    bodies: dict[tuple[int, str], tuple[ir.Function, int]] = {}
    extra = 0
    for index, step in enumerate(program.steps):
        if isinstance(step, HostStep):
            raise UnsupportedError(f"{step.label} runs from Python and cannot go into a standalone entry point")
        if isinstance(step, ControlStep):
            need = 0
            for body_name, body in step.bodies.items():
                body_entry = f"{name}_s{index}_{len(bodies)}"
                sub_plan = add_entry_point(module, body, body_entry, "internal", threaded=threaded)
                bodies[(index, body_name)] = (module.globals[body_entry], sub_plan.arena_bytes)
                need = max(need, sub_plan.arena_bytes)
            temps = sum(_align(program.buffers[o].nbytes) for o in step.outputs) + 64 if step.op == "WHILE_LOOP" else 0
            extra = max(extra, _align(need) + temps)
    params = [PTR] * (4 if constants_table else 3) + ([PARALLEL_FOR_TYPE.as_pointer(), PTR] if threaded else [])
    public_wrapper = threaded and not constants_table and not linkage
    fn = ir.Function(module, ir.FunctionType(ir.IntType(32), params),
                     name=name + PARALLEL_SUFFIX if public_wrapper else name)
    if linkage:
        fn.linkage = linkage
    inputs, outputs, arena = fn.args[:3]
    threading_args = list(fn.args[-2:]) if threaded else []
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    offsets = plan.offsets

    def slot(table: ir.Value, index: int) -> ir.Value:
        return b.load(b.gep(table, [ir.Constant(I64, index)], source_etype=PTR), typ=PTR)

    def at(offset: int) -> ir.Value:
        return b.gep(arena, [ir.Constant(I64, offset)], source_etype=ir.IntType(8))

    def pointer(buffer: str) -> ir.Value:
        # Constants and inputs are read where they live even when they are also outputs
        # (those are copied at the end); only kernels' results go straight to outputs[].
        if buffer in globals_:
            return globals_[buffer]
        if buffer in table_names:
            return slot(fn.args[3], table_names.index(buffer))
        if buffer in program.inputs:
            return slot(inputs, program.inputs.index(buffer))
        if buffer in program.outputs:
            return slot(outputs, program.outputs.index(buffer))
        if buffer in offsets:
            return at(offsets[buffer])
        raise UnsupportedError(f"buffer '{buffer}' has no home in the entry point")

    def table(pointers: list[ir.Value]) -> ir.Value:
        t = b.alloca(PTR, size=max(len(pointers), 1))
        for i, p in enumerate(pointers):
            b.store(p, b.gep(t, [ir.Constant(I64, i)], source_etype=PTR))
        return t

    memcpy = module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])

    def copy(dst: ir.Value, src: ir.Value, nbytes: int) -> None:
        b.call(memcpy, [dst, src, ir.Constant(I64, nbytes), ir.Constant(ir.IntType(1), 0)])

    def call_body(body: ir.Function, args: list[ir.Value]) -> None:
        b.call(body, args + threading_args)

    kernels = {f.name: f for f in module.functions}
    zero = ir.Constant(I64, 0)
    for index, step in enumerate(program.steps):
        if isinstance(step, KernelStep):
            args = table([pointer(n) for n in step.buffers])
            kernel, extent = kernels[step.function], ir.Constant(I64, step.parallel_extent)
            if not threaded or not step.threaded:
                b.call(kernel, [args, zero, extent])
                continue
            parallel_for, context = threading_args
            with b.if_else(b.icmp_unsigned("==", parallel_for, ir.Constant(parallel_for.type, None))) as (
                    alone, split):
                with alone:
                    b.call(kernel, [args, zero, extent])
                with split:
                    b.call(parallel_for, [context, kernel, args, extent, ir.Constant(I64, step.threads)])
        elif step.op == "COND_IF":
            flag = b.load(pointer(step.inputs[0]), typ=ir.IntType(8))
            ins, outs = table([pointer(n) for n in step.inputs[1:]]), table([pointer(n) for n in step.outputs])
            then_fn = bodies[(index, step.attrs["then_graph"])][0]
            else_fn = bodies[(index, step.attrs["else_graph"])][0]
            with b.if_else(b.icmp_unsigned("!=", flag, ir.Constant(ir.IntType(8), 0))) as (then, other):
                with then:
                    call_body(then_fn, [ins, outs, at(region)])
                with other:
                    call_body(else_fn, [ins, outs, at(region)])
        else:
            _while_loop(b, step, bodies, index, pointer, table, copy, at, region, program, call_body)
    for index, out in enumerate(program.outputs):         # outputs no kernel writes: constants and inputs
        if out in program.outputs[:index] and out not in program.inputs and out not in globals_ \
                and out not in table_names:
            # An output listed again: kernels wrote its first slot only (pointer() picks that one).
            copy(slot(outputs, index), slot(outputs, program.outputs.index(out)), program.buffers[out].nbytes)
        elif out in globals_ or out in table_names:
            copy(slot(outputs, index), pointer(out), program.buffers[out].nbytes)
        elif out in program.inputs:
            copy(slot(outputs, index), slot(inputs, program.inputs.index(out)), program.buffers[out].nbytes)
    b.ret(ir.Constant(ir.IntType(32), 0))
    if public_wrapper:
        _single_threaded_entry(module, fn, name)
    return replace(plan, arena_bytes=region + extra if extra else plan.arena_bytes)


def _single_threaded_entry(module: ir.Module, parallel: ir.Function, name: str) -> None:
    """``name(inputs, outputs, arena)``: ``parallel`` with a null ``parallel_for`` (every kernel on this thread)."""
    fn = ir.Function(module, ir.FunctionType(ir.IntType(32), [PTR] * 3), name=name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    none = [ir.Constant(parallel.function_type.args[3], None), ir.Constant(PTR, None)]
    b.ret(b.call(parallel, list(fn.args) + none))


def _while_loop(b: ir.IRBuilder, step: ControlStep, bodies, index: int, pointer, table, copy, at, region: int,
                program: Program, call_body) -> None:
    """outputs = inputs; while cond(outputs): temps = body(outputs); outputs = temps (at most MAX_ITERATIONS)."""
    cond_fn, cond_arena = bodies[(index, step.attrs["cond_graph"])]
    body_fn, body_arena = bodies[(index, step.attrs["body_graph"])]
    sizes = [program.buffers[o].nbytes for o in step.outputs]
    temps_at = _align(max(cond_arena, body_arena))
    temps, offset = [], region + temps_at
    for size in sizes:
        temps.append(at(offset))
        offset += _align(size)
    flag = at(offset)
    for src, dst, size in zip(step.inputs, step.outputs, sizes):
        copy(pointer(dst), pointer(src), size)
    carried = table([pointer(o) for o in step.outputs])
    flag_table, temp_table = table([flag]), table(temps)
    counter = b.alloca(I64)
    b.store(ir.Constant(I64, 0), counter)
    fn = b.function
    head, body, done = (fn.append_basic_block(f"while{index}.{n}") for n in ("head", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    call_body(cond_fn, [carried, flag_table, at(region)])
    go = b.icmp_unsigned("!=", b.load(flag, typ=ir.IntType(8)), ir.Constant(ir.IntType(8), 0))
    b.cbranch(go, body, done)
    b.position_at_end(body)
    n = b.add(b.load(counter, typ=I64), ir.Constant(I64, 1))
    b.store(n, counter)
    with b.if_then(b.icmp_signed(">", n, ir.Constant(I64, MAX_ITERATIONS))):
        b.ret(ir.Constant(ir.IntType(32), 1))                  # did not terminate: an error, not a hang
    call_body(body_fn, [carried, temp_table, at(region)])
    for temp, dst, size in zip(temps, step.outputs, sizes):
        copy(pointer(dst), temp, size)
    b.branch(head)
    b.position_at_end(done)


def add_repeat_loop(module: ir.Module, entry: str) -> None:
    """Define ``<entry>_repeat(<entry's arguments>, n)``: ``n`` runs in a native loop, stopping at the first
    nonzero status. Timing through it leaves out the ~0.6 us a foreign call from Python costs per run."""
    fn = module.globals[entry]
    fn.attributes.add("noinline")               # each run is a real call: nothing is hoisted across runs
    params = list(fn.function_type.args)
    loop = ir.Function(module, ir.FunctionType(ir.IntType(32), params + [I64]), name=entry + REPEAT_SUFFIX)
    *args, count = loop.args
    b = ir.IRBuilder(loop.append_basic_block("entry"))
    head, body, done = (loop.append_basic_block(n) for n in ("head", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64)
    status = b.phi(ir.IntType(32))
    i.add_incoming(ir.Constant(I64, 0), loop.entry_basic_block)
    status.add_incoming(ir.Constant(ir.IntType(32), 0), loop.entry_basic_block)
    more = b.and_(b.icmp_signed("<", i, count), b.icmp_signed("==", status, ir.Constant(ir.IntType(32), 0)))
    b.cbranch(more, body, done)
    b.position_at_end(body)
    result = b.call(fn, args)
    i.add_incoming(b.add(i, ir.Constant(I64, 1)), body)
    status.add_incoming(result, body)
    b.branch(head)
    b.position_at_end(done)
    b.ret(status)


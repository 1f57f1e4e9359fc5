"""The deployable entry point: ``int model_run(const void *inputs[], void *outputs[], void *arena)``.

It calls the graph's kernels in order, each with its buffer table built from
the caller's input and output pointers, the arena (offsets of the static
memory plan) and the constants, which become read-only globals (``.rodata``).
Kernels get internal linkage, so several models link into one program; the
only global symbol is the entry point. Nothing is called but the kernels and
``memcpy`` (for outputs that are inputs or constants), so the object needs no
Python and no libc beyond ``memcpy``/``memset``. It returns 0.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from tosac.errors import UnsupportedError
from tosac.runtime.executable import HostStep, Program

PTR = ir.PointerType()
I64 = ir.IntType(64)
ENTRY = "model_run"


def add_constants(module: ir.Module, constants: dict[str, np.ndarray]) -> dict[str, ir.GlobalVariable]:
    """One private, 64-byte aligned, read-only global per constant buffer."""
    out = {}
    for index, (name, data) in enumerate(sorted(constants.items())):
        raw = np.ascontiguousarray(data).tobytes() or b"\0"
        ty = ir.ArrayType(ir.IntType(8), len(raw))
        gv = ir.GlobalVariable(module, ty, name=f"tosac_const_{index}")
        gv.initializer = ir.Constant(ty, bytearray(raw))
        gv.global_constant = True
        gv.linkage = "private"
        gv.align = 64
        out[name] = gv
    return out


def add_entry_point(module: ir.Module, program: Program, name: str = ENTRY) -> ir.Function:
    """Define ``name(inputs, outputs, arena)`` running ``program``'s kernels in order."""
    if any(isinstance(step, HostStep) for step in program.steps):
        raise UnsupportedError("COND_IF / WHILE_LOOP cannot be compiled into a standalone entry point yet; "
                               "run such graphs on the host target")
    globals_ = add_constants(module, program.constants)
    fn = ir.Function(module, ir.FunctionType(ir.IntType(32), [PTR, PTR, PTR]), name=name)
    inputs, outputs, arena = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    offsets = program.memory_plan.offsets

    def slot(table: ir.Value, index: int) -> ir.Value:
        return b.load(b.gep(table, [ir.Constant(I64, index)], source_etype=PTR), typ=PTR)

    def pointer(buffer: str) -> ir.Value:
        if buffer in program.outputs:
            return slot(outputs, program.outputs.index(buffer))
        if buffer in program.inputs:
            return slot(inputs, program.inputs.index(buffer))
        if buffer in globals_:
            return globals_[buffer]
        if buffer in offsets:
            return b.gep(arena, [ir.Constant(I64, offsets[buffer])], source_etype=ir.IntType(8))
        raise UnsupportedError(f"buffer '{buffer}' has no home in the entry point")

    kernels = {f.name: f for f in module.functions}
    for step in program.steps:
        table = b.alloca(PTR, size=max(len(step.buffers), 1))
        for i, buffer in enumerate(step.buffers):
            b.store(pointer(buffer), b.gep(table, [ir.Constant(I64, i)], source_etype=PTR))
        b.call(kernels[step.function], [table, ir.Constant(I64, 0), ir.Constant(I64, step.parallel_extent)])
    memcpy = module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
    for index, out in enumerate(program.outputs):
        if out in program.inputs or out in globals_:
            nbytes = program.buffers[out].nbytes
            b.call(memcpy, [slot(outputs, index), pointer(out), ir.Constant(I64, nbytes), ir.Constant(ir.IntType(1), 0)])
    b.ret(ir.Constant(ir.IntType(32), 0))
    return fn

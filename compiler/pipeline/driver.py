"""``tosac.compile``: graph -> passes -> fused kernels -> schedules -> LLVM -> executable.

Each pass is followed by the verifier. Each fused op group gets a kernel from
its template with the config the caller gives (by kernel name) or the
template's default. For the host JIT the kernels go into several small LLVM
modules compiled in parallel while the rest are emitted (``host_modules``),
loaded together; a standalone or cross-compiled program is one module, one
object file. Objects are cached by content hash. A program's memory plan is
checked against the memory budget before its code is compiled or any arena
allocated.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import llvmlite.ir as ir
import numpy as np

from tosac.errors import UnpredictableError, UnsupportedError
from tosac.ir.graph import Block, Graph
from tosac.ir.reference.control_flow import MAX_ITERATIONS
from tosac.ir.reference.interpreter import coerce_input
from tosac.lower.kernels import KernelBuilder
from tosac.passes.fusion import CONTROL_FLOW, OpGroup, group_ops
from tosac.pipeline.entry_point import add_entry_point
from tosac.pipeline.host_modules import HostModules
from tosac.pipeline.optimise import kernel_name, optimise_graph
from tosac.pipeline.tuned_configs import tuned_configs
from tosac.pipeline.tuning_log import TuningLog
from tosac.runtime.executable import BufferSpec, ControlStep, Executable, HostStep, KernelStep, Program, kernel_steps
from tosac.runtime.jit import LoadedObject
from tosac.runtime.memory_plan import MemoryPlan, check_budget, liveness, plan_memory
from tosac.runtime.memory_plan import memory_limit as resolve_memory_limit
from tosac.runtime.objects import compile_object
from tosac.runtime.thread_pool import MAX_THREADS, usable_cpus
from tosac.schedules.emit_llvm import Emitter
from tosac.schedules.space import Config
from tosac.targets import Target, get_target


@dataclass
class KernelInfo:
    """What the compiler chose for one kernel (for reports and the tuner)."""
    name: str
    pattern: str
    template: str
    config: Config
    mac_count: int


def compile(graph: Graph, target: str | Target = "host", config: Mapping[str, Config] | None = None,
            standalone: bool = False, tuning_log: str | Path | TuningLog | bool | None = None,
            memory_limit: int | str | None = None, threads: int | str | None = None) -> Executable:
    """Compile ``graph`` for ``target``.

    Configs per kernel come from ``config`` (kernel name -> knob values), else
    the best valid record of ``tuning_log`` (default: the shipped log of the
    target's class in ``tuning_logs/``, if any; ``False`` disables it), else
    the template's default. Objects for ARM targets always export the
    deployable entry point ``model_run``; ``standalone=True`` adds it to host
    objects too (for ``tosac compile --header``).

    What a run needs (arena, constants, outputs) must fit ``memory_limit``
    (bytes or a size such as ``"4G"``; default ``$TOSAC_MEMORY_LIMIT``, else half
    the physical memory; ``"none"``: no limit), else ``MemoryLimitError``.

    ``threads`` (a number, or ``"auto"``: the CPUs this process may use) splits
    every kernel whose template has a parallel loop into that many chunks, run
    by the native thread pool; a kernel whose ``config`` names ``threads``
    keeps its own. Default: the configs' choice (one thread unless tuned).
    A deployable object then exports ``model_run_parallel`` as well.
    """
    target = get_target(target)
    threads = resolve_threads(threads)
    budget = _Budget(*resolve_memory_limit(memory_limit))
    started = time.perf_counter()
    optimised = optimise_graph(graph)
    configs = _Configs(tuned_configs(optimised, target, tuning_log), threads,
                       {name for name, c in (config or {}).items() if "threads" in c})
    configs.update(config or {})
    program = _compile_block(optimised, optimised.main, target, configs, standalone=standalone, budget=budget)
    program.info["compile_seconds"] = time.perf_counter() - started
    # Scale and zero point per input/output name, when the model carries them (an imported quantized model).
    program.info["io_quantization"] = dict(graph.metadata.get("io_quantization", {}))
    return _load(program, target)


def resolve_threads(threads: int | str | None) -> int | None:
    """``threads`` as a number of threads: ``"auto"`` is the CPUs this process may run on; None stays None."""
    if threads is None:
        return None
    if threads == "auto":
        return usable_cpus()
    text = str(threads).strip()
    if isinstance(threads, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_THREADS:
        raise UnsupportedError(f"threads must be a whole number from 1 to {MAX_THREADS}, or 'auto'; not {threads!r}")
    return int(text)


class _Configs(dict):
    """Config per kernel name, and the thread count ``compile(threads=)`` gives every kernel that can use it
    (except those in ``pinned``, whose caller's config names its own)."""

    def __init__(self, configs: dict[str, Config], threads: int | None, pinned: set[str]):
        super().__init__(configs)
        self.threads, self.pinned = threads, pinned

    def choose(self, kb: KernelBuilder) -> Config:
        chosen = kb.space.resolve(self.get(kb.name))
        if self.threads is not None and "threads" in chosen and kb.name not in self.pinned:
            threads = worthwhile_threads(kb, self.threads)
            kb.space.admit("threads", threads)
            chosen["threads"] = threads
        return chosen


# Work one more thread must get to pay for waking it, waiting for it and the cache misses on what the other thread
# wrote (about a microsecond per kernel in a model run): multiply-accumulates for kernels that have them, else
# output elements. Measured on MobileNetV2 (a quarter of these made two threads slower than one), EfficientNet-B0
# and KWS.
MACS_PER_THREAD = 250_000
ELEMENTS_PER_THREAD = 16_384


def worthwhile_threads(kb: KernelBuilder, threads: int) -> int:
    """At most ``threads``, and no more than the kernel's work keeps busy: small kernels stay on one thread."""
    macs = kb.mac_count
    work = macs // MACS_PER_THREAD if macs else int(np.prod(kb.output.shape, dtype=np.int64)) // ELEMENTS_PER_THREAD
    return max(1, min(threads, work))


@dataclass(frozen=True)
class _Budget:
    """The memory limit every top-level program (and host control-flow body) is checked against."""
    limit: int | None
    source: str

    def check(self, program: Program, plan: MemoryPlan) -> None:
        sizes = {n: b.nbytes for n, b in program.buffers.items()}
        check_budget(plan, sizes, list(program.constants), program.outputs, self.limit, self.source)


def _load(program: Program, target: Target) -> Executable:
    """An executable; its kernels are loaded into this process when the target can run here."""
    if not target.is_host:
        return Executable(program, None, cross_target=target)
    return Executable(program, LoadedObject(program.parts or program.object_code,
                                            [s.function for s in kernel_steps(program)],
                                            program.info.get("host_entry")))


def _compile_block(graph: Graph, block: Block, target: Target, configs: dict[str, Config],
                   module: ir.Module | None = None, prefix: str = "", standalone: bool = False,
                   budget: _Budget = _Budget(None, "")) -> Program:
    """The program of one block; a sub-block of a cross target goes into its parent's ``module``."""
    top = module is None
    parts = HostModules(target) if top and target.is_host and not standalone else None
    try:
        return _compile_into(graph, block, target, configs, module, prefix, standalone, parts, budget)
    except BaseException:
        if parts is not None:
            parts.cancel()
        raise


def _compile_into(graph: Graph, block: Block, target: Target, configs: dict[str, Config], module: ir.Module | None,
                  prefix: str, standalone: bool, parts: HostModules | None, budget: _Budget) -> Program:
    """``_compile_block``'s work: kernels go to ``parts`` (the host JIT) or into one ``module``."""
    top = module is None
    if module is None:
        module = ir.Module(name="tosac")
        module.triple = target.triple
    emitter = Emitter(module, target.features)
    steps, buffers, constants, infos = [], {}, {}, []
    for name in block.tensors:
        ttype = block.type_of(name)
        buffers[name] = BufferSpec(name, ttype.dtype.storage, ttype.shape)
        if block.constant(name) is not None:
            constants[name] = np.array(block.constant(name), order="C")
    scratch_names: set[str] = set()
    for index, group in enumerate(group_ops(block)):
        if group.anchor.name in CONTROL_FLOW:
            if target.is_host and not standalone:
                steps.append(_control_step(graph, group, target, configs, budget))
            else:
                steps.append(_standalone_control_step(graph, group, target, configs, module, f"{prefix}c{index}_"))
            continue
        kb = KernelBuilder(block, group, prefix + kernel_name(index, group), target)
        chosen = configs.choose(kb)
        schedule = kb.schedule(chosen)
        packed = {**kb.constants, **schedule.constants}
        constants.update(packed)
        for cname, data in packed.items():
            buffers[cname] = BufferSpec(cname, data.dtype, data.shape)
        for param in schedule.scratch:
            buffers[param.name] = BufferSpec(param.name, np.dtype(_numpy_type(param.type)), (param.size,))
            scratch_names.add(param.name)
        for kernel, threads in schedule.kernels():
            if parts is not None:
                parts.emit(kernel)
            else:
                emitter.emit_kernel(kernel, "" if target.is_host else "internal")
            steps.append(KernelStep(kernel.name, [p.name for p in kernel.params], threads, kernel.parallel_extent,
                                    group.pattern, kb.name))
        infos.append(KernelInfo(kb.name, kb.pattern, kb.space.template, chosen, kb.op_count(chosen)))
    external = set(block.inputs) | set(block.outputs) | set(constants)
    step_io = [(list(s.buffers if isinstance(s, KernelStep) else s.reads),
                [] if isinstance(s, KernelStep) else list(s.writes)) for s in steps]
    _mark_writes(steps, step_io, block)
    sizes = {n: b.nbytes for n, b in buffers.items()}
    plan = plan_memory(liveness(step_io, sizes, external))
    program = Program(b"", steps, buffers, constants, list(block.inputs), list(block.outputs), plan,
                      lambda n, v: coerce_input(n, v, block.type_of(n)),
                      {"target": target.name, "kernels": infos, "scratch": sorted(scratch_names)})
    if not top:
        return program
    budget.check(program, plan)                             # before any code is compiled or memory allocated
    if parts is not None:
        if _kernel_steps_in(steps):
            parts.finish(program, entry=all(isinstance(s, KernelStep) for s in steps))
        return program
    program.memory_plan = add_entry_point(module, program)   # a standalone object: model_run + .rodata
    budget.check(program, program.memory_plan)               # with the control-flow bodies' arena
    program.object_code = compile_object(str(module), target)
    return program


def _standalone_control_step(graph: Graph, group: OpGroup, target: Target, configs: dict[str, Config],
                             module: ir.Module, prefix: str) -> ControlStep:
    """COND_IF / WHILE_LOOP for a standalone object: the bodies are compiled into the same module."""
    op = group.anchor
    names = [op.attrs["then_graph"], op.attrs["else_graph"]] if op.name == "COND_IF" else [
        op.attrs["cond_graph"], op.attrs["body_graph"]]
    bodies = {}
    for k, name in enumerate(names):
        sub = Graph({name: graph.blocks[name], **{b: v for b, v in graph.blocks.items() if b != name}})
        bodies[name] = _compile_block(sub, sub.blocks[name], target, configs, module, f"{prefix}b{k}_")
    return ControlStep(op.name, list(op.inputs), list(op.outputs), bodies, dict(op.attrs))


def _kernel_steps_in(steps) -> bool:
    return any(isinstance(s, KernelStep) for s in steps)


def _mark_writes(steps, step_io, block: Block) -> None:
    """A kernel writes its last buffer(s): the group output and its scratch; everything else it reads."""
    written: set[str] = set(block.inputs)
    for (reads, writes), step in zip(step_io, steps):
        if isinstance(step, KernelStep):
            fresh = [n for n in step.buffers if n not in written and block.constant(n) is None]
            writes.extend(fresh)
            reads[:] = [n for n in step.buffers if n not in fresh]
        written.update(writes)


def _numpy_type(type_: str) -> str:
    return {"i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64", "f32": "float32", "f16": "float16",
            "f64": "float64"}[type_]


def _control_step(graph: Graph, group: OpGroup, target: Target, configs: dict[str, Config],
                  budget: _Budget) -> HostStep:
    """COND_IF / WHILE_LOOP: each body is compiled; Python picks the branch or iterates."""
    op = group.anchor
    if not target.is_host:
        raise UnsupportedError(f"{op.name} is compiled for the host only in this version")
    attrs = op.attrs
    bodies = [attrs["then_graph"], attrs["else_graph"]] if op.name == "COND_IF" else [
        attrs["cond_graph"], attrs["body_graph"]]
    compiled = {}
    for name in bodies:
        sub = Graph({name: graph.blocks[name], **{k: v for k, v in graph.blocks.items() if k != name}})
        compiled[name] = _load(_compile_block(sub, sub.blocks[name], target, configs, budget=budget), target)

    def run_body(name: str, values: list[np.ndarray]) -> list[np.ndarray]:
        exe = compiled[name]
        out = exe.run(dict(zip(exe.input_names, values)))
        return [out[n] for n in exe.output_names]

    def run(arrays: dict[str, np.ndarray]) -> None:
        if op.name == "COND_IF":
            taken = bool(np.asarray(arrays[op.inputs[0]]).reshape(-1)[0])
            results = run_body(attrs["then_graph"] if taken else attrs["else_graph"],
                               [arrays[n] for n in op.inputs[1:]])
        else:
            results = [arrays[n] for n in op.inputs]
            for _ in range(MAX_ITERATIONS):
                (cond,) = run_body(attrs["cond_graph"], results)
                if not bool(np.asarray(cond).reshape(-1)[0]):
                    break
                results = run_body(attrs["body_graph"], results)
            else:
                raise UnpredictableError(f"{op.name}: did not terminate within {MAX_ITERATIONS} iterations")
        for name, value in zip(op.outputs, results):
            np.copyto(arrays[name], value.reshape(arrays[name].shape))
    return HostStep(run, list(op.inputs), list(op.outputs), op.name)

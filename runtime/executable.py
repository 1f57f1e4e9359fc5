"""A compiled graph, ready to run: kernels in order, buffers, the arena.

The executable owns constants (weights packed at compile time), arenas for
the intermediate tensors (offsets from the static memory plan) and the loaded
object code. ``run`` checks inputs, binds buffers and makes one native call
that runs every kernel, the threaded ones split over the process's native
thread pool (``thread_pool``). Outputs are fresh arrays owned by the caller.

Calls from several threads at once are safe: each call borrows an arena (with
its pointer tables) from the executable's free list and returns it, so
concurrent calls never share intermediate memory and run in parallel. Arenas
are allocated on first use, one per call running at the same moment, and kept.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from tosac.errors import InterpreterError, UnsupportedError
from tosac.runtime.cross import CrossRun, run_batch
from tosac.runtime.jit import LoadedObject
from tosac.runtime.memory_plan import MemoryLimitError, MemoryPlan, human_bytes
from tosac.runtime.thread_pool import ThreadPool, repeat_kernel, shared_pool
from tosac.targets import Target



@dataclass
class BufferSpec:
    name: str
    dtype: np.dtype          # numpy storage dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize if self.shape else self.dtype.itemsize


@dataclass
class KernelStep:
    """One kernel call: function name, its buffers in argument order, and the number of chunks (``threads``) its
    parallel loop of ``parallel_extent`` iterations is split into."""
    function: str
    buffers: list[str]
    threads: int = 1
    parallel_extent: int = 0
    label: str = ""
    kernel: str = ""          # the fused op group (kernel) this call belongs to: one or two calls per group

    @property
    def threaded(self) -> bool:
        """Whether the call is split over threads (its loop has more than one chunk to give)."""
        return self.threads > 1 and self.parallel_extent > 1


@dataclass
class HostStep:
    """A step run by Python (control flow): reads and writes buffers by name."""
    run: Callable[[dict[str, np.ndarray]], None]
    reads: list[str]
    writes: list[str]
    label: str = ""


@dataclass
class ControlStep:
    """COND_IF / WHILE_LOOP compiled into a standalone entry point: the bodies are programs of their own.

    ``bodies`` maps block names to programs (then/else, or cond/body) whose
    kernels live in the same module; the entry point calls them.
    """
    op: str
    inputs: list[str]
    outputs: list[str]
    bodies: dict[str, "Program"]
    attrs: dict[str, Any]

    @property
    def reads(self) -> list[str]:
        return list(self.inputs)

    @property
    def writes(self) -> list[str]:
        return list(self.outputs)


Step = KernelStep | HostStep | ControlStep


@dataclass
class Program:
    """Everything an executable needs, independent of how it is loaded."""
    object_code: bytes
    steps: list[Step]
    buffers: dict[str, BufferSpec]
    constants: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]
    memory_plan: MemoryPlan
    coerce: Callable[[str, Any], np.ndarray]           # input checking (from the IR types)
    info: dict[str, Any] = field(default_factory=dict)
    # A host program compiled in parts: the object files the JIT loads together; ``object_code`` stays empty
    # until ``Executable.object_code`` asks ``link`` for them as one object file.
    parts: list[bytes] = field(default_factory=list)
    link: Callable[[], bytes] | None = None


class _Arena:
    """One call's private memory: an aligned arena, the views of the buffers in it and the pointer tables.

    A call writes its inputs' and outputs' addresses into the tables and its
    intermediates into the arena, so two calls running at once need two of these.
    """

    def __init__(self, program: Program, constants: dict[str, np.ndarray]):
        self.memory = _allocate((max(program.memory_plan.arena_bytes, 1) + 64,), np.dtype(np.uint8), "the arena",
                                zero=True)
        self.base = self.memory[(-self.memory.ctypes.data) % 64:]
        # Constants, arena views and scratch never move: their pointers are written once per step.
        self.static = dict(constants)
        for name, spec in program.buffers.items():
            if name not in self.static and name in program.memory_plan.offsets:
                offset = program.memory_plan.offsets[name]
                self.static[name] = self.base[offset:offset + spec.nbytes].view(spec.dtype).reshape(spec.shape)
        dynamic = set(program.inputs) | set(program.outputs)
        self.bound: list[tuple[Any, ctypes.c_void_p, list[tuple[int, str]]] | None] = []
        for step in program.steps:
            if isinstance(step, HostStep):
                self.bound.append(None)
                continue
            pointers = (ctypes.c_void_p * max(len(step.buffers), 1))()
            slots = []
            for i, name in enumerate(step.buffers):
                if name in self.static and name not in dynamic:
                    pointers[i] = self.static[name].ctypes.data
                else:
                    slots.append((i, name))
            self.bound.append((pointers, ctypes.cast(pointers, ctypes.c_void_p), slots))
        # The entry point's tables: inputs[], outputs[] (filled per call), the arena, constants[] (fixed).
        table = (ctypes.c_void_p * max(len(constants), 1))(*[constants[n].ctypes.data for n in sorted(constants)])
        self.ins = (ctypes.c_void_p * max(len(program.inputs), 1))()
        self.outs = (ctypes.c_void_p * max(len(program.outputs), 1))()
        self.entry_args = (ctypes.cast(self.ins, ctypes.c_void_p), ctypes.cast(self.outs, ctypes.c_void_p),
                           ctypes.c_void_p(self.base.ctypes.data), ctypes.cast(table, ctypes.c_void_p))
        self._table = table                      # kept alive: entry_args points into it


class Executable:
    """Run a compiled graph in this process: ``exe.run({"x": array})`` or ``exe(x=array)``.

    Thread-safe: calls from several threads run at the same time, each in an
    arena of its own (allocated lazily, one per concurrent call, then reused);
    none is allocated before the first run.
    """

    def __init__(self, program: Program, loaded: LoadedObject | None, cross_target: Target | None = None):
        self.program = program
        self.cross_target = cross_target      # runs under qemu through the static runner
        self._loaded = loaded                 # keeps the JIT engine (and so the code) alive
        self._functions = loaded.functions if loaded is not None else None
        self._lock = threading.Lock()         # guards the creation of the constants
        self._free: list[_Arena] = []         # arenas no call is using
        self._constants: dict[str, np.ndarray] | None = None
        self._threading: tuple[int, tuple] | None = None      # (pid, the entry point's threading arguments)

    @property
    def threads(self) -> int:
        """The most threads a kernel of this program splits its loop over (1: single-threaded)."""
        return max([s.threads for s in kernel_steps(self.program) if s.threaded] + [1])

    def _pool(self) -> ThreadPool | None:
        return shared_pool(self.threads)

    def _threading_args(self) -> tuple[int | None, Any]:
        """The entry point's last two arguments: the pool's parallel_for and the pool (nulls: one thread).
        Kept per process (a forked child gets pools of its own), so a run costs no lookup."""
        pid = os.getpid()
        if self._threading is None or self._threading[0] != pid:
            pool = self._pool()
            self._threading = (pid, (pool.parallel_for_address, pool.handle) if pool is not None else (None, None))
        return self._threading[1]

    @property
    def memory_plan(self) -> MemoryPlan:
        return self.program.memory_plan

    @property
    def object_code(self) -> bytes:
        """The program's object file (a program compiled in parts is linked into one on first use)."""
        p = self.program
        if not p.object_code and p.link is not None:
            p.object_code = p.link()
        return p.object_code

    @property
    def input_names(self) -> list[str]:
        return list(self.program.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.program.outputs)

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        return self.run(inputs)

    def _acquire(self) -> _Arena:
        """An arena no other call is using (list.pop and list.append are atomic: the free list needs no lock)."""
        try:
            return self._free.pop()
        except IndexError:
            pass
        if self._constants is None:
            with self._lock:
                if self._constants is None:
                    # Kernels read constants through raw pointers: they must be C-contiguous whatever the graph holds.
                    self._constants = {n: np.require(a, requirements="C") for n, a in self.program.constants.items()}
        return _Arena(self.program, self._constants)

    def _checked_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        p = self.program
        if len(inputs) != len(p.inputs) or any(n not in inputs for n in p.inputs):
            missing = [n for n in p.inputs if n not in inputs]
            unknown = [n for n in inputs if n not in p.inputs]
            raise InterpreterError(f"graph inputs are {p.inputs}; missing {missing}, unknown {unknown}")
        return {name: _contiguous(p.coerce(name, inputs[name])) for name in p.inputs}

    def cross_run(self, inputs: Mapping[str, Any]) -> CrossRun:
        """This executable and ``inputs`` as one entry of a batch for ``tosac.runtime.cross.run_batch``."""
        p = self.program
        arrays = self._checked_inputs(inputs)
        specs = [(p.buffers[n].dtype, p.buffers[n].shape) for n in p.outputs]
        return CrossRun(p.object_code, p.memory_plan.arena_bytes, [arrays[n] for n in p.inputs], specs)

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Outputs by name for ``inputs`` by name (checked: names, shapes, dtypes, value ranges)."""
        p = self.program
        if self.cross_target is not None:
            (outputs,) = run_batch(self.cross_target, [self.cross_run(inputs)])
            return dict(zip(p.outputs, outputs))
        if self._functions is None:
            raise UnsupportedError(f"this executable was compiled for {p.info.get('target')}, "
                                   "which cannot run in this process")
        checked = self._checked_inputs(inputs)
        arena = self._acquire()
        try:
            if self._loaded is not None and self._loaded.entry is not None:
                results, args = self._entry_arguments(arena, checked)
                _check_status(self._loaded.entry(*args))   # one native call runs every kernel
                return results
            return self._run_steps(arena, checked)
        finally:
            self._free.append(arena)

    def _run_steps(self, arena: _Arena, checked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Kernels called one by one from Python (a program with control flow run by Python)."""
        p = self.program
        arrays = self._bind(arena, checked)
        self._call_steps(arena, arrays)
        fresh = set(p.outputs) - set(p.inputs) - set(arena.static)
        return {n: arrays[n] if n in fresh else np.array(arrays[n], copy=True) for n in p.outputs}

    def _bind(self, arena: _Arena, checked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every buffer by name for one call: the arena's, the inputs and fresh outputs."""
        arrays = dict(arena.static)
        arrays.update(checked)
        for name in self.program.outputs:
            if name not in arrays:
                spec = self.program.buffers[name]
                arrays[name] = _allocate(spec.shape, spec.dtype, f"output '{name}'")
        return arrays

    def _call_steps(self, arena: _Arena, arrays: dict[str, np.ndarray]) -> None:
        """Every step in order, one Python call each, on ``arrays`` (bound into the arena's pointer tables)."""
        for step, bound in zip(self.program.steps, arena.bound):
            if bound is None:
                step.run(arrays)
                continue
            pointers, address, slots = bound
            for i, name in slots:
                pointers[i] = arrays[name].ctypes.data
            self._call(step, address)

    def time_kernels(self, inputs: Mapping[str, Any], seconds: float = 0.02) -> list[float | None]:
        """Seconds per call of every step (None for a step Python runs), each timed alone in native code.

        The steps first run once in order, so each kernel is then repeated on the
        buffers of a real run (threaded kernels on the pool, as in ``run``),
        about ``seconds`` per measurement, median of three.
        """
        if self._functions is None:
            raise UnsupportedError(f"kernels compiled for {self.program.info.get('target')} cannot be timed "
                                   "in this process")
        checked = self._checked_inputs(inputs)
        arena = self._acquire()
        try:
            arrays = self._bind(arena, checked)      # kept until the timing ends: kernels write into its outputs
            self._call_steps(arena, arrays)
            return [None if bound is None else self._time_step(step, bound[1], seconds)
                    for step, bound in zip(self.program.steps, arena.bound)]
        finally:
            self._free.append(arena)

    def _time_step(self, step: KernelStep, address: ctypes.c_void_p, seconds: float) -> float:
        pool = self._pool() if step.threaded else None
        kernel = self._loaded.addresses[step.function]

        def measure(runs: int) -> float:
            start = time.perf_counter()
            repeat_kernel(pool, kernel, address, step.parallel_extent, step.threads if step.threaded else 1, runs)
            return (time.perf_counter() - start) / runs

        once = max(measure(1), 1e-7)
        runs = int(min(max(seconds / once, 1), 1_000_000))
        return float(np.median([measure(runs) for _ in range(3)]))

    def _entry_arguments(self, arena: _Arena, checked: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], tuple]:
        p = self.program
        for i, name in enumerate(p.inputs):
            arena.ins[i] = checked[name].ctypes.data
        results = {}
        for j, name in enumerate(p.outputs):
            spec = p.buffers[name]
            results[name] = _allocate(spec.shape, spec.dtype, f"output '{name}'")
            arena.outs[j] = results[name].ctypes.data
        return results, arena.entry_args + self._threading_args()

    def time_runs(self, inputs: Mapping[str, Any], number: int) -> float:
        """Seconds per run of ``number`` back-to-back runs on the same inputs.

        Inputs are checked and buffers bound once and the runs loop in native code,
        so what is timed is the compiled program alone — not the ~10 us of Python
        bookkeeping ``run`` does, nor a foreign call per run: kernel timings of a
        microsecond stay meaningful.
        """
        checked = self._checked_inputs(inputs)
        if self._functions is None or self._loaded is None or self._loaded.entry is None:
            start = time.perf_counter()
            for _ in range(number):
                self.run(inputs)
            return (time.perf_counter() - start) / number
        arena = self._acquire()
        try:
            outputs, args = self._entry_arguments(arena, checked)   # kept alive: the native code writes into them
            start = time.perf_counter()
            _check_status(self._loaded.repeat(*args, number))
            seconds = (time.perf_counter() - start) / number
            del outputs
            return seconds
        finally:
            self._free.append(arena)

    def _call(self, step: KernelStep, address: ctypes.c_void_p) -> None:
        fn = self._functions[step.function]
        pool = self._pool() if step.threaded else None
        if pool is None:
            fn(address, 0, step.parallel_extent)
        else:
            pool.parallel_for(self._loaded.addresses[step.function], address, step.parallel_extent, step.threads)


def kernel_steps(program: Program) -> list[KernelStep]:
    return [s for s in program.steps if isinstance(s, KernelStep)]


def _allocate(shape: tuple[int, ...], dtype: np.dtype, what: str, zero: bool = False) -> np.ndarray:
    """A new array; out of memory is a MemoryLimitError naming the buffer, not numpy's MemoryError."""
    try:
        return np.zeros(shape, dtype=dtype) if zero else np.empty(shape, dtype=dtype)
    except MemoryError:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raise MemoryLimitError(f"cannot allocate {human_bytes(nbytes)} ({nbytes} bytes) for {what} "
                               f"{list(shape)} {dtype}: out of memory") from None


def _contiguous(array: np.ndarray) -> np.ndarray:
    return array if array.flags.c_contiguous and array.ndim else np.array(array, order="C", ndmin=0)


def _check_status(status: int) -> None:
    if status != 0:
        raise InterpreterError(f"compiled program returned status {status}")

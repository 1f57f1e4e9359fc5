"""A compiled graph, ready to run: kernels in order, buffers, the arena.

The executable owns constants (weights packed at compile time), one arena for
every intermediate tensor (offsets from the static memory plan) and the loaded
object code. ``run`` checks inputs, binds buffers, and calls each kernel —
splitting a kernel's parallel loop over threads when its schedule asks for it.
Outputs are fresh arrays owned by the caller.
"""
from __future__ import annotations

import ctypes
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from tosac.errors import InterpreterError, UnsupportedError
from tosac.runtime.cross import CrossRun, run_batch
from tosac.runtime.jit import LoadedObject
from tosac.runtime.memory_plan import MemoryPlan
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
    """One kernel call: function name, its buffers in argument order, and threading."""
    function: str
    buffers: list[str]
    threads: int = 1
    parallel_extent: int = 0
    label: str = ""


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


class Executable:
    """Run a compiled graph in this process: ``exe.run({"x": array})`` or ``exe(x=array)``."""

    def __init__(self, program: Program, loaded: LoadedObject | None, cross_target: Target | None = None):
        self.program = program
        self.cross_target = cross_target      # runs under qemu through the static runner
        self._loaded = loaded                 # keeps the JIT engine (and so the code) alive
        self._functions = loaded.functions if loaded is not None else None
        self._arena = np.zeros(max(program.memory_plan.arena_bytes, 1) + 64, dtype=np.uint8)
        base = (-self._arena.ctypes.data) % 64
        self._arena_base = self._arena[base:]
        self._pool: ThreadPoolExecutor | None = None

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

    def _arena_view(self, spec: BufferSpec) -> np.ndarray:
        offset = self.program.memory_plan.offsets[spec.name]
        raw = self._arena_base[offset:offset + spec.nbytes]
        return raw.view(spec.dtype).reshape(spec.shape)

    def _bind_static(self) -> None:
        """Constants, arena views and scratch never move: their pointers are written once per step."""
        p = self.program
        # Kernels read constants through raw pointers: they must be C-contiguous whatever the graph holds.
        self._static: dict[str, np.ndarray] = {n: np.require(a, requirements="C") for n, a in p.constants.items()}
        for name, spec in p.buffers.items():
            if name not in self._static and name in p.memory_plan.offsets:
                self._static[name] = self._arena_view(spec)
        dynamic = set(p.inputs) | set(p.outputs)
        self._bound = []
        for step in p.steps:
            if isinstance(step, HostStep):
                self._bound.append(None)
                continue
            pointers = (ctypes.c_void_p * max(len(step.buffers), 1))()
            slots = []
            for i, name in enumerate(step.buffers):
                if name in self._static and name not in dynamic:
                    pointers[i] = self._static[name].ctypes.data
                else:
                    slots.append((i, name))
            self._bound.append((pointers, ctypes.cast(pointers, ctypes.c_void_p), slots))

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
        if not hasattr(self, "_bound"):
            self._bind_static()
        if self._loaded is not None and self._loaded.entry is not None:
            return self._run_entry(checked)
        arrays = dict(self._static)
        arrays.update(checked)
        for name in p.outputs:
            if name not in arrays:
                spec = p.buffers[name]
                arrays[name] = np.empty(spec.shape, dtype=spec.dtype)
        for step, bound in zip(p.steps, self._bound):
            if bound is None:
                step.run(arrays)
                continue
            pointers, address, slots = bound
            for i, name in slots:
                pointers[i] = arrays[name].ctypes.data
            self._call(step, address)
        fresh = set(p.outputs) - set(p.inputs) - set(self._static)
        return {n: arrays[n] if n in fresh else np.array(arrays[n], copy=True) for n in p.outputs}

    def _run_entry(self, checked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One native call runs every kernel (no Python between kernels)."""
        results, args = self._entry_arguments(checked)
        _check_status(self._loaded.entry(*args))
        return results

    def _entry_arguments(self, checked: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], tuple]:
        p = self.program
        if not hasattr(self, "_entry_tables"):
            constants = sorted(p.constants)
            table = (ctypes.c_void_p * max(len(constants), 1))(*[self._static[n].ctypes.data for n in constants])
            ins = (ctypes.c_void_p * max(len(p.inputs), 1))()
            outs = (ctypes.c_void_p * max(len(p.outputs), 1))()
            address = lambda array: ctypes.cast(array, ctypes.c_void_p)  # noqa: E731
            self._entry_tables = (ins, outs, (address(ins), address(outs), ctypes.c_void_p(self._arena_base.ctypes.data),
                                              address(table)))
        ins, outs, args = self._entry_tables
        for i, name in enumerate(p.inputs):
            ins[i] = checked[name].ctypes.data
        results = {}
        for j, name in enumerate(p.outputs):
            spec = p.buffers[name]
            results[name] = np.empty(spec.shape, dtype=spec.dtype)
            outs[j] = results[name].ctypes.data
        return results, args

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
        if not hasattr(self, "_bound"):
            self._bind_static()
        outputs, args = self._entry_arguments(checked)          # kept alive: the native code writes into them
        start = time.perf_counter()
        _check_status(self._loaded.repeat(*args, number))
        seconds = (time.perf_counter() - start) / number
        del outputs
        return seconds

    def _call(self, step: KernelStep, address: ctypes.c_void_p) -> None:
        fn = self._functions[step.function]
        if step.threads <= 1 or step.parallel_extent <= 1:
            fn(address, 0, step.parallel_extent)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(2, step.threads))
        chunk = -(-step.parallel_extent // step.threads)
        ranges = [(b, min(b + chunk, step.parallel_extent)) for b in range(0, step.parallel_extent, chunk)]
        for future in [self._pool.submit(fn, address, b, e) for b, e in ranges]:
            future.result()

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)


def _contiguous(array: np.ndarray) -> np.ndarray:
    return array if array.flags.c_contiguous and array.ndim else np.array(array, order="C", ndmin=0)


def _check_status(status: int) -> None:
    if status != 0:
        raise InterpreterError(f"compiled program returned status {status}")

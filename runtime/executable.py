"""A compiled graph, ready to run: kernels in order, buffers, the arena.

The executable owns constants (weights packed at compile time), one arena for
every intermediate tensor (offsets from the static memory plan) and the loaded
object code. ``run`` checks inputs, binds buffers, and calls each kernel —
splitting a kernel's parallel loop over threads when its schedule asks for it.
Outputs are fresh arrays owned by the caller.
"""
from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from tosac.errors import InterpreterError, UnsupportedError
from tosac.memory_plan import MemoryPlan
from tosac.runtime.jit import LoadedObject


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


Step = KernelStep | HostStep


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


class Executable:
    """Run a compiled graph in this process: ``exe.run({"x": array})`` or ``exe(x=array)``."""

    def __init__(self, program: Program, loaded: "LoadedObject | None"):
        self.program = program
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
        return self.program.object_code

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

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Outputs by name for ``inputs`` by name (checked: names, shapes, dtypes, value ranges)."""
        if self._functions is None:
            raise UnsupportedError(f"this executable was compiled for {self.program.info.get('target')}, "
                                   "which cannot run in this process")
        p = self.program
        missing = [n for n in p.inputs if n not in inputs]
        unknown = [n for n in inputs if n not in p.inputs]
        if missing or unknown:
            raise InterpreterError(f"graph inputs are {p.inputs}; missing {missing}, unknown {unknown}")
        arrays: dict[str, np.ndarray] = {n: np.array(p.coerce(n, inputs[n]), order="C") for n in p.inputs}
        arrays.update(p.constants)
        for name, spec in p.buffers.items():
            if name in arrays:
                continue
            if name in p.memory_plan.offsets:
                arrays[name] = self._arena_view(spec)
            else:
                arrays[name] = np.empty(spec.shape, dtype=spec.dtype)
        for step in p.steps:
            if isinstance(step, HostStep):
                step.run(arrays)
            else:
                self._call(step, arrays)
        return {n: np.array(arrays[n], copy=True) if n in p.inputs or n in p.constants or
                n in p.memory_plan.offsets else arrays[n] for n in p.outputs}

    def _call(self, step: KernelStep, arrays: dict[str, np.ndarray]) -> None:
        pointers = (ctypes.c_void_p * max(len(step.buffers), 1))(*[arrays[n].ctypes.data for n in step.buffers])
        fn = self._functions[step.function]
        address = ctypes.cast(pointers, ctypes.c_void_p)
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

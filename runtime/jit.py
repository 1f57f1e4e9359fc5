"""Load object code into this process and call its kernels through ctypes.

Kernels are ``void kernel(void *buffers[], int64 begin, int64 end)``: a
kernel with a parallel loop runs ``[begin, end)`` of its outermost loop, so
the native thread pool (``thread_pool``) can give each thread a range.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Sequence

import llvmlite.binding as llvm

from tosac.errors import CodegenError

KERNEL_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
# tosac_host_run(inputs[], outputs[], arena, constants[], parallel_for, pool)
ENTRY_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_void_p] * 6)
REPEAT_SUFFIX = "_repeat"            # <entry>_repeat(<entry's arguments>, n): n back-to-back runs (timing)
REPEAT_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_void_p] * 6, ctypes.c_int64)
_LOCK = threading.Lock()


def _engine(object_code: bytes | Sequence[bytes]) -> llvm.ExecutionEngine:
    """An MCJIT engine holding ``object_code`` (one object file, or several that call each other), finalised."""
    with _LOCK:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), codemodel="jitdefault")
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        for data in [object_code] if isinstance(object_code, bytes) else object_code:
            engine.add_object_file(llvm.ObjectFileRef.from_data(data))
        engine.finalize_object()
        return engine


def _address(engine: llvm.ExecutionEngine, name: str) -> int:
    address = engine.get_function_address(name)
    if not address:
        raise CodegenError(f"function '{name}' missing from the compiled object")
    return address


def load_functions(object_code: bytes, signatures: dict[str, type]) -> dict[str, ctypes._CFuncPtr]:
    """Load ``object_code`` for the rest of the process and return its functions by name, typed by ``signatures``."""
    engine = _engine(object_code)
    _KEPT.append(engine)
    return {name: signature(_address(engine, name)) for name, signature in signatures.items()}


_KEPT: list[llvm.ExecutionEngine] = []


class LoadedObject:
    """An object file loaded by MCJIT; keeps the engine alive while functions are in use."""

    def __init__(self, object_code: bytes | Sequence[bytes], names: list[str], entry: str | None = None):
        """Load ``object_code`` (one object file, or several that call each other) and look up ``names``."""
        self.functions: dict[str, ctypes._CFuncPtr] = {}
        self.addresses: dict[str, int] = {}
        self.entry = None                  # (inputs[], outputs[], arena, constants[], parallel_for, pool) -> status
        self.repeat = None                 # the same arguments and a run count: native back-to-back runs (timing)
        if not names:
            return
        self._engine = _engine(object_code)
        for name in names:
            self.addresses[name] = _address(self._engine, name)
            self.functions[name] = KERNEL_SIGNATURE(self.addresses[name])
        if entry:
            self.entry = ENTRY_SIGNATURE(_address(self._engine, entry))
            self.repeat = REPEAT_SIGNATURE(_address(self._engine, entry + REPEAT_SUFFIX))

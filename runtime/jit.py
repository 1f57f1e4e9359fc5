"""Load object code into this process and call its kernels through ctypes.

ctypes releases the GIL around foreign calls, so a kernel's parallel loop can
be split over a thread pool from Python: each thread runs the same function on
its own ``[begin, end)`` range of the outermost loop.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Sequence

import llvmlite.binding as llvm

from tosac.errors import CodegenError

KERNEL_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
ENTRY_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
REPEAT_SUFFIX = "_repeat"            # <entry>_repeat(<entry's arguments>, n): n back-to-back runs (timing)
REPEAT_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_int64)
_LOCK = threading.Lock()


class LoadedObject:
    """An object file loaded by MCJIT; keeps the engine alive while functions are in use."""

    def __init__(self, object_code: bytes | Sequence[bytes], names: list[str], entry: str | None = None):
        """Load ``object_code`` (one object file, or several that call each other) and look up ``names``."""
        self.functions: dict[str, ctypes._CFuncPtr] = {}
        self.entry = None                  # (inputs[], outputs[], arena, constants[]) -> status, when compiled
        self.repeat = None                 # the same arguments and a run count: native back-to-back runs (timing)
        if not names:
            return
        with _LOCK:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            target = llvm.Target.from_default_triple()
            tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), codemodel="jitdefault")
            backing = llvm.parse_assembly("")
            self._engine = llvm.create_mcjit_compiler(backing, tm)
            for data in [object_code] if isinstance(object_code, bytes) else object_code:
                self._engine.add_object_file(llvm.ObjectFileRef.from_data(data))
            self._engine.finalize_object()
            for name in names:
                address = self._engine.get_function_address(name)
                if not address:
                    raise CodegenError(f"kernel '{name}' missing from the compiled object")
                self.functions[name] = KERNEL_SIGNATURE(address)
            if entry:
                self.entry = ENTRY_SIGNATURE(self._engine.get_function_address(entry))
                self.repeat = REPEAT_SIGNATURE(self._engine.get_function_address(entry + REPEAT_SUFFIX))

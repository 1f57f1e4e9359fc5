"""LLVM IR text -> verified, optimised object code for a target, cached by content hash.

The cache key is the hash of the IR text and the target (triple, CPU,
features, LLVM version), so compiling the same kernel twice costs a
dictionary lookup — the autotuner compiles thousands of candidates and often
revisits one. Objects are also kept on disk (``$TOSAC_CACHE_DIR`` or
``~/.cache/tosac/objects``) so separate processes share them; a damaged cache
file is simply rebuilt.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import llvmlite.binding as llvm

from tosac.errors import CodegenError
from tosac.targets import Target

_MEMORY: dict[str, bytes] = {}
_MAX_MEMORY_ENTRIES = 4096


def cache_dir() -> Path:
    root = os.environ.get("TOSAC_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "tosac") / "objects"


def cache_key(ir_text: str, target: Target, opt: int) -> str:
    h = hashlib.sha256()
    for part in (ir_text, target.triple, target.cpu, target.feature_string(), str(llvm.llvm_version_info), str(opt)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def parse_and_verify(ir_text: str) -> llvm.ModuleRef:
    """Parse emitted IR through LLVM's own parser and verifier (a failure is a tosac bug)."""
    try:
        module = llvm.parse_assembly(ir_text)
        module.verify()
    except RuntimeError as exc:
        raise CodegenError(f"emitted LLVM IR does not verify: {exc}") from exc
    return module


def optimise(module: llvm.ModuleRef, target: Target, opt: int = 3) -> None:
    tm = target.target_machine(opt)
    module.triple = target.triple
    module.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=opt)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)
    pb.close()


def compile_object(ir_text: str, target: Target, opt: int = 3) -> bytes:
    """Object file bytes for ``ir_text`` on ``target`` (ELF, position independent)."""
    key = cache_key(ir_text, target, opt)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / key[:2] / f"{key}.o"
    data = _read_cached(path)
    if data is None:
        module = parse_and_verify(ir_text)
        optimise(module, target, opt)
        data = target.target_machine(opt).emit_object(module)
        _write_cached(path, data)
    if len(_MEMORY) >= _MAX_MEMORY_ENTRIES:
        _MEMORY.clear()
    _MEMORY[key] = data
    return data


def optimised_assembly(ir_text: str, target: Target, opt: int = 3) -> str:
    """The target assembly (for inspection: which instructions a kernel really uses)."""
    module = parse_and_verify(ir_text)
    optimise(module, target, opt)
    return target.target_machine(opt).emit_assembly(module)


def _read_cached(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(b"\x7fELF") else None


def _write_cached(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")     # unique per writer, threads included
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)          # atomic: readers never see half a file
    except OSError:
        pass                           # a read-only home is not an error; only the cache is lost

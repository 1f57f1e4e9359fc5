"""LLVM IR text -> verified, optimised object code for a target, cached by content hash.

The cache key is the hash of the IR text and the target (triple, CPU,
features, LLVM version), so compiling the same kernel twice costs a
dictionary lookup — the autotuner compiles thousands of candidates and often
revisits one. Objects are also kept on disk (``$TOSAC_CACHE_DIR`` or
``~/.cache/tosac/objects``) so separate processes share them. Each cache file
holds a SHA-256 digest of its cache key and object next to the object (one
file, written to a temporary name and renamed, so a reader never sees half of
one); a file whose digest is missing or wrong (truncated, bit-flipped, another
object) is never loaded or copied: it is a warning naming the file, and the
object is rebuilt and the file replaced.

``ObjectBatch`` compiles several independent modules (a big model's kernels in
parts) at once: this process and helper processes (``tosac.runtime.workers``)
each take the biggest module still waiting, while the caller is still
emitting the next ones.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import llvmlite.binding as llvm

from tosac.errors import CodegenError
from tosac.runtime import workers
from tosac.targets import Target

_MEMORY: dict[str, bytes] = {}
_RECORDERS: list[dict[str, bytes]] = []          # open recorded() blocks
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


def compile_uncached(ir_text: str, target: Target, opt: int = 3, bitcode: bool = False) -> bytes:
    """Parse, verify, optimise and emit ``ir_text``: the work the cache saves (also what a worker runs).

    ``bitcode``: the optimised module as LLVM bitcode instead of object code (for ``linked_object``).
    """
    module = parse_and_verify(ir_text)
    optimise(module, target, opt)
    return module.as_bitcode() if bitcode else target.target_machine(opt).emit_object(module)


def compile_object(ir_text: str, target: Target, opt: int = 3) -> bytes:
    """Object file bytes for ``ir_text`` on ``target`` (ELF, position independent)."""
    key = cache_key(ir_text, target, opt)
    data = _cached(key)
    if data is None:
        data = compile_uncached(ir_text, target, opt)
        _remember(key, data)
    return data


def linked_object(ir_texts: Sequence[str], target: Target, opt: int = 3) -> bytes:
    """One object file for several modules that call each other, with the code each module's own object has.

    Each module is optimised on its own (in parallel, like ``ObjectBatch``), then LLVM links the optimised
    modules and emits one object: nothing is inlined across modules, as when the objects are loaded together.
    """
    key = cache_key("\0; linked with\0".join(ir_texts), target, opt)
    data = _cached(key)
    if data is None:
        batch = ObjectBatch(target, opt, bitcode=True)
        for text in ir_texts:
            batch.submit(text)
        modules = [llvm.parse_bitcode(code) for code in batch.results()]
        for other in modules[1:]:
            modules[0].link_in(other)
        data = target.target_machine(opt).emit_object(modules[0])
        _remember(key, data)
    return data


class ObjectBatch:
    """Object code for independent modules submitted one by one, compiled here and in worker processes at once.

    ``submit`` returns at once; cached modules cost a lookup. Once two modules
    wait, helper processes (up to ``workers.jobs() - 1``) start taking them, so
    they compile while the caller emits the next; ``results`` compiles what is
    left in this process alongside them. Each takes the biggest module waiting,
    so the last to finish is a small one. The objects are the same bytes
    whichever process made them.
    """

    def __init__(self, target: Target, opt: int = 3, bitcode: bool = False):
        self.target, self.opt, self.bitcode = target, opt, bitcode     # bitcode: optimised modules, not cached
        self._texts: list[str] = []
        self._keys: list[str] = []
        self._results: list[bytes | None] = []
        self._errors: dict[int, BaseException] = {}
        self._waiting: list[int] = []
        self._running = 0
        self._closed = False
        self._feeders: list[threading.Thread] = []
        self._changed = threading.Condition()

    def submit(self, ir_text: str) -> None:
        key = cache_key(ir_text, self.target, self.opt)
        cached = None if self.bitcode else _cached(key)
        with self._changed:
            index = len(self._texts)
            self._texts.append(ir_text)
            self._keys.append(key)
            self._results.append(cached)
            if cached is None:
                self._waiting.append(index)
                self._changed.notify_all()
            start = len(self._waiting) >= 2 and len(self._feeders) < workers.jobs() - 1
        if start:
            feeder = threading.Thread(target=self._feed, name="tosac-compile-feeder", daemon=True)
            self._feeders.append(feeder)
            feeder.start()

    def results(self) -> list[bytes]:
        """The object of every submitted module, in submission order (raises the first module's error)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        while (index := self._take(helper=False)) is not None:
            self._compile_here(index)
        for feeder in self._feeders:
            feeder.join()
        if self._errors:
            raise self._errors[min(self._errors)]
        return list(self._results)

    def cancel(self) -> None:
        """Drop what has not started (the caller failed); helpers finish their module and return."""
        with self._changed:
            self._closed = True
            self._waiting.clear()
            self._changed.notify_all()

    def _take(self, helper: bool) -> int | None:
        """The biggest waiting module (marked running), or None when there is nothing (more) to take.

        A helper waits for modules until the batch is closed; this process, once it is, waits only
        while a helper still runs one (a helper whose worker dies hands its module back).
        """
        with self._changed:
            while not self._waiting and (not self._closed if helper else self._running):
                self._changed.wait()
            if not self._waiting:
                return None
            index = max(self._waiting, key=lambda i: len(self._texts[i]))
            self._waiting.remove(index)
            self._running += 1
            return index

    def _finish(self, index: int, data: bytes | None, error: BaseException | None = None) -> None:
        if data is not None and not self.bitcode:
            _remember(self._keys[index], data)
        with self._changed:
            self._results[index] = data
            if error is not None:
                self._errors[index] = error
            self._running -= 1
            self._changed.notify_all()

    def _compile_here(self, index: int) -> None:
        try:
            data = compile_uncached(self._texts[index], self.target, self.opt, self.bitcode)
        except Exception as exc:               # noqa: BLE001 - raised by results(), after the others finish
            self._finish(index, None, exc)
        else:
            self._finish(index, data)

    def _feed(self) -> None:
        """A helper thread: hands modules to one worker process until the batch is done."""
        pool = workers.pool()
        worker = pool.acquire()
        if worker is None:
            return
        try:
            if not worker.wait_ready():
                return
            while (index := self._take(helper=True)) is not None:
                try:
                    data = worker.compile(self._texts[index], self.target, self.opt, self.bitcode)
                except EOFError:                # the worker died: this process compiles the module instead
                    with self._changed:
                        self._waiting.append(index)
                        self._running -= 1
                        self._changed.notify_all()
                    return
                except Exception as exc:       # noqa: BLE001 - the module's own error, raised by results()
                    self._finish(index, None, exc)
                else:
                    self._finish(index, data)
        finally:
            pool.release(worker)


def clear_memory_cache() -> None:
    """Forget the objects kept in this process (the disk cache stays): the next compile reads or rebuilds them."""
    _MEMORY.clear()


@contextlib.contextmanager
def recorded() -> Iterator[dict[str, bytes]]:
    """Every object this process looks up or builds inside the block, by cache key.

    What another machine needs to load the same program without running LLVM: a tuning cluster builds a
    candidate on one node and measures it on another, which :func:`preload` s these objects first.
    """
    objects: dict[str, bytes] = {}
    _RECORDERS.append(objects)
    try:
        yield objects
    finally:
        _RECORDERS.remove(objects)


def preload(objects: dict[str, bytes]) -> None:
    """Keep objects built elsewhere (:func:`recorded`) in this process's memory cache."""
    for key, data in objects.items():
        _keep(key, data)


def _cached(key: str) -> bytes | None:
    data = _MEMORY.get(key)
    if data is None:
        data = _read_cached(cache_dir() / key[:2] / f"{key}.o", key)
        if data is not None:
            _keep(key, data)
    if data is not None:
        _record(key, data)
    return data


def _remember(key: str, data: bytes) -> None:
    _write_cached(cache_dir() / key[:2] / f"{key}.o", key, data)
    _keep(key, data)
    _record(key, data)


def _keep(key: str, data: bytes) -> None:
    if len(_MEMORY) >= _MAX_MEMORY_ENTRIES:
        _MEMORY.clear()
    _MEMORY[key] = data


def _record(key: str, data: bytes) -> None:
    for objects in _RECORDERS:
        objects[key] = data


def optimised_assembly(ir_text: str, target: Target, opt: int = 3) -> str:
    """The target assembly (for inspection: which instructions a kernel really uses)."""
    module = parse_and_verify(ir_text)
    optimise(module, target, opt)
    return target.target_machine(opt).emit_assembly(module)


# A cache file: this header line, the hex SHA-256 of key + NUL + object and a newline, then the object.
_HEADER = b"tosac-object-cache 1\n"
_DIGEST_LEN = 64


class CacheWarning(UserWarning):
    """A cached object file is damaged or is not the object of its key: it is rebuilt, never loaded."""


def _digest(key: str, data: bytes) -> bytes:
    return hashlib.sha256(key.encode() + b"\0" + data).hexdigest().encode()


def _pack(key: str, data: bytes) -> bytes:
    return _HEADER + _digest(key, data) + b"\n" + data


def _unpack(key: str, blob: bytes) -> tuple[bytes | None, str]:
    """The object in a cache file's bytes, or None and what is wrong with them."""
    start = len(_HEADER) + _DIGEST_LEN + 1
    if not blob.startswith(_HEADER) or len(blob) < start or blob[start - 1:start] != b"\n":
        return None, "it has no digest (damaged, or written by an older tosac)"
    data = blob[start:]
    if blob[len(_HEADER):start - 1] != _digest(key, data):
        return None, "its digest does not match its contents (damaged, or another object)"
    if not data.startswith(b"\x7fELF"):
        return None, "it holds no ELF object"
    return data, ""


def _read_cached(path: Path, key: str) -> bytes | None:
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        warnings.warn(f"tosac object cache: cannot read {path} ({e.strerror or e}); rebuilding the object",
                      CacheWarning, stacklevel=4)
        return None
    data, problem = _unpack(key, blob)
    if data is None:
        warnings.warn(f"tosac object cache: ignoring {path}: {problem}; rebuilding the object and replacing "
                      f"the file", CacheWarning, stacklevel=4)
    return data


def _write_cached(path: Path, key: str, data: bytes) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")     # unique per writer, threads included
        with os.fdopen(fd, "wb") as f:
            f.write(_pack(key, data))
        os.replace(tmp, path)          # atomic: readers see the old file or the whole new one, digest included
    except OSError:
        if tmp is not None:            # a full disk: leave no partial temporary file behind
            try:
                os.unlink(tmp)
            except OSError:
                pass                   # a read-only home is not an error; only the cache is lost

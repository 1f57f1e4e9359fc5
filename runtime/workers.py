"""Helper processes that turn LLVM IR into object code, so a big model compiles on every core.

llvmlite serialises every call into LLVM behind one process-wide lock, so
threads cannot optimise two modules at once; separate processes can. A worker
is a fresh interpreter (``python -m tosac.runtime.object_worker``: no fork of a
process that may hold locks in other threads, no re-import of the caller's
``__main__``) that answers requests on its stdin/stdout until its stdin
closes. Workers start on first use and serve every later compile of the
process; a process forked from the owner (the tuner's measurement children)
never talks to the owner's workers. ``$TOSAC_COMPILE_JOBS`` caps the number of
processes compiling at once, this one included (default: the usable cores;
1 turns workers off).
"""
from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import threading
from typing import Any, BinaryIO, Callable

from tosac.errors import CodegenError, TosacError

_HEADER = struct.Struct("<Q")
READY = b"tosac-worker-ready"
WORKER_MODULE = "tosac.runtime.object_worker"      # its __main__ serves compile_uncached


def jobs() -> int:
    """How many processes may compile at once (this one included)."""
    value = os.environ.get("TOSAC_COMPILE_JOBS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            message = f"$TOSAC_COMPILE_JOBS is '{value}': expected a number of processes (1: no workers)"
            raise TosacError(message) from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                    # not Linux
        return max(1, os.cpu_count() or 1)


def send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """The next message, or ``EOFError`` when the other side has gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the other end of the pipe closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end of the pipe closed mid-message")
    return pickle.loads(data)


class Worker:
    """One helper process; ``compile`` is called by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ, TOSAC_COMPILE_JOBS="1",
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p))   # the same tosac as this process
        self.process = subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env, close_fds=True)
        self.alive = True
        self.ready = False

    def wait_ready(self) -> bool:
        """Block until the process has loaded LLVM; False if it could not start."""
        if not self.ready and self.alive:
            try:
                self.ready = receive(self.process.stdout) == READY
            except (EOFError, OSError, pickle.UnpicklingError):
                self.ready = False
            self.alive = self.ready
        return self.ready

    def compile(self, ir_text: str, target: Any, opt: int, bitcode: bool = False) -> bytes:
        """Object code (or optimised bitcode) for ``ir_text``; raises what compiling raised there, or
        ``EOFError`` if the worker died."""
        try:
            send(self.process.stdin, (ir_text, target, opt, bitcode))
            status, payload = receive(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.alive = False
            raise EOFError(f"compile worker {self.process.pid} stopped") from exc
        if status == "ok":
            return payload
        raise payload

    def close(self) -> None:
        self.alive = False
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


class Pool:
    """This process's workers (started on demand); forked children get a pool of their own."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.workers: list[Worker] = []
        self.idle: list[Worker] = []
        self.failed = False

    def acquire(self) -> Worker | None:
        """An idle live worker, starting one if the cap allows; None when there is none to have."""
        with self.lock:
            while self.idle:
                worker = self.idle.pop()
                if worker.alive:
                    return worker
            self.workers = [w for w in self.workers if w.alive]
            if self.failed or len(self.workers) >= jobs() - 1:
                return None
            try:
                worker = Worker()
            except OSError:
                self.failed = True
                return None
            self.workers.append(worker)
            return worker

    def release(self, worker: Worker) -> None:
        with self.lock:
            if worker.alive:
                self.idle.append(worker)
            elif not worker.ready:
                self.failed = True              # could not even start: do not try again in this process

    def close(self) -> None:
        with self.lock:
            workers, self.workers, self.idle = self.workers, [], []
        for worker in workers:
            worker.close()


_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> Pool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.owner != os.getpid():
            _POOL = Pool()                      # a fork's inherited pipes belong to the parent
        return _POOL


@atexit.register
def _close_pool() -> None:
    if _POOL is not None and _POOL.owner == os.getpid():
        _POOL.close()


def serve(handler: Callable[..., bytes]) -> None:
    """A worker's loop on stdin/stdout: each request's arguments -> ("ok", handler(*request)) or ("error", exc)."""
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr                  # nothing but replies may reach the pipe
    send(replies, READY)
    while True:
        try:
            request = receive(sys.stdin.buffer)
        except EOFError:
            return
        try:
            reply = ("ok", handler(*request))
        except Exception as exc:            # noqa: BLE001 - sent back and raised in the caller
            reply = ("error", exc)
        try:
            send(replies, reply)
        except (pickle.PicklingError, TypeError, AttributeError):
            send(replies, ("error", CodegenError(f"compile worker: {reply[1]!r}")))

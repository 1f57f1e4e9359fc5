"""onnx's C++ passes (shape inference, the version converter) run in a forked child process.

onnx is built with bounds-checked containers: a malformed model (a Conv whose weights or input have a rank
its pads do not match, a corrupted opset number) makes them abort() the whole process instead of raising.
Python-side checks catch the known cases first (reader.check_attributes); this is the safety net for the rest,
so hostile input is a FrontendError, never a dead process. A fork shares the model with the child for free and
costs a few milliseconds; only the result's bytes come back through a pipe.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import warnings
from typing import Callable

from tosac.errors import FrontendError

_OK, _RAISED = b"o", b"e"


def run_isolated(work: Callable[[], bytes], what: str) -> bytes:
    """``work()`` in a forked child: its bytes; its exception as a FrontendError; its death by a signal as a
    FrontendError naming the signal. Runs in-process where there is no fork (the net is Linux's)."""
    if not hasattr(os, "fork"):
        return work()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():           # Python 3.12+ warns about fork() in a threaded process; the
        warnings.simplefilter("ignore", DeprecationWarning)   # child runs only onnx's C++ and exits
        pid = os.fork()
    if pid == 0:                                                   # pragma: no cover (the child)
        os.close(read_end)
        faulthandler.disable()      # the parent reports the signal; no stack dump of the child on stderr
        try:
            message = _OK + work()
        except BaseException as exc:   # noqa: BLE001 -- everything goes back to the parent as text
            message = _RAISED + f"{type(exc).__name__}: {exc}".encode(errors="replace")
        try:
            with os.fdopen(write_end, "wb") as out:
                out.write(message)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise FrontendError(f"{what} died with {name} inside onnx's C++ code: the model is malformed "
                            "(run onnx.checker.check_model on it for details)")
    if message[:1] == _OK:
        return message[1:]
    if message[:1] == _RAISED:
        raise FrontendError(f"{what} failed: {message[1:].decode(errors='replace')}")
    raise FrontendError(f"{what} ended without a result (exit status {os.waitstatus_to_exitcode(status)})")

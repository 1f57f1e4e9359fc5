"""Checking the CLI's file arguments before any work starts.

Tuning, pruning and the conformance suites run for minutes before they write
their reports: an output path that cannot be written (a directory, a missing
folder) must be refused at once, in one line, not as a traceback at the end.
The writes themselves still go through ``tosac.ir.atomic_io``, which turns any
later failure into a ``TosacError`` too.
"""
from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from tosac.errors import TosacError
from tosac.ir.atomic_io import atomic_path


def check_output_file(path: str | os.PathLike[str] | None, what: str) -> None:
    """Refuse an output file path that is a directory or lies in a folder that does not exist."""
    if path is None:
        return
    text = os.fspath(path)
    if os.path.isdir(text):
        raise TosacError(f"{what} '{text}' is a directory; give a file name")
    folder = os.path.dirname(os.path.realpath(text))
    if not os.path.isdir(folder):
        raise TosacError(f"{what} '{text}': the folder '{os.path.dirname(text) or '.'}' does not exist")


def check_output_dir(path: str | os.PathLike[str] | None, what: str) -> Path | None:
    """Create the output folder ``path`` if needed; refuse a path that is a file or cannot be created."""
    if path is None:
        return None
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        kind = "is not a folder" if folder.exists() else f"cannot be created: {e.strerror or e}"
        raise TosacError(f"{what} '{os.fspath(path)}' {kind}") from None
    return folder


def check_input_file(path: str | os.PathLike[str], what: str) -> None:
    """Refuse an input that is missing or not a regular file (a FIFO would block, a device never ends)."""
    text = os.fspath(path)
    try:
        mode = os.stat(text).st_mode
    except OSError as e:
        raise TosacError(f"{what} '{text}' cannot be read: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        raise TosacError(f"{what} '{text}' is not a regular file")


def check_log(path: str | os.PathLike[str], what: str) -> None:
    """A log that is appended to and resumed: an existing regular file, or a new file that can be created.

    Probed by opening it for appending (nothing is written); a file created by the probe is removed again.
    """
    text = os.fspath(path)
    existed = os.path.lexists(text)
    if existed:
        check_input_file(text, what)
    else:
        check_output_file(text, what)
    try:
        fd = os.open(text, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o666)
    except OSError as e:
        raise TosacError(f"{what} '{text}' cannot be written: {e.strerror or e}") from None
    os.close(fd)
    if not existed:
        os.unlink(text)


@contextlib.contextmanager
def atomic_report(path: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """A temporary path for a report writer that takes a path; it replaces ``path`` when the block succeeds.

    Any ``OSError`` (of the writer or the rename) is a ``TosacError`` naming ``what``; ``path`` is then unchanged.
    """
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OSError as e:
        raise TosacError(f"{what}: cannot write '{os.fspath(path)}': {e.strerror or e} "
                         f"(nothing was changed there)") from None

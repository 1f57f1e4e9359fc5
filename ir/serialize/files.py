"""Reading a model file safely: only a regular file, and never more than it holds.

A FIFO would block ``open`` forever and ``/dev/zero`` (or a link to it) would
be read until memory runs out, so a model must be a regular file, checked on
the open descriptor (no race with a swap after a ``stat``), and at most
``MAX_MODEL_BYTES`` are read: a TOSA flatbuffer cannot address more (32-bit
offsets), and a JSON model that size is far past any real network.
"""
from __future__ import annotations

import os
import stat

from tosac.errors import SerializationError

MAX_MODEL_BYTES = 2**31 - 1


def check_regular_file(path: str | os.PathLike[str]) -> None:
    """Refuse (``SerializationError``) an existing model path that is not a regular file (links are followed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return                                   # missing: the reader says so in its own words
    if not stat.S_ISREG(mode):
        raise SerializationError(f"{os.fspath(path)}: not a regular file ({_kind(mode)}); "
                                 f"a model must be a .tosa, .json or .onnx file")


def read_model_bytes(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` (default ``MAX_MODEL_BYTES``)."""
    limit = MAX_MODEL_BYTES if limit is None else limit
    source = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise SerializationError(f"{source}: cannot read: {e.strerror or e}") from None
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SerializationError(f"{source}: not a regular file ({_kind(st.st_mode)}); "
                                     f"a model must be a .tosa, .json or .onnx file")
        if st.st_size > limit:
            raise SerializationError(f"{source}: {st.st_size} bytes is more than a model may have "
                                     f"({limit} bytes)")
        try:
            return f.read(st.st_size)            # bounded by the size checked above, even if it grows
        except OSError as e:
            raise SerializationError(f"{source}: cannot read: {e.strerror or e}") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"

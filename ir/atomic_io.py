"""Writing a user's output file all or nothing, and never over the file being read.

A write that fails midway (a full disk, a quota, an interrupted process) must
leave the old file as it was, not a truncated one: the data goes to a
temporary file in the same folder, is flushed to disk, and then replaces the
target in one ``os.replace``. Here in the IR layer (which imports only
errors) so that serialisation, the pipeline and the CLI share it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from tosac.errors import TosacError


def _real_target(path: str | os.PathLike[str]) -> Path:
    """The file a plain ``open(path, "wb")`` would write: a symbolic link is followed, not replaced."""
    return Path(os.path.realpath(os.fspath(path)))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path next to ``path``; when the block ends without an exception it replaces ``path``.

    For tools that write a file themselves (``ar``). On any exception the
    temporary file is removed and ``path`` is unchanged. A special file
    (``/dev/null``, a FIFO) cannot be replaced: the finished file is copied into it.
    """
    target = _real_target(path)
    try:
        mode: int | None = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    special = mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)
    folder = Path(tempfile.gettempdir()) if special else target.parent
    tmp = folder / f".{target.name[:200]}.{secrets.token_hex(4)}.tmp"      # within NAME_MAX
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(errno.ENOENT, "nothing was written to the temporary file", str(tmp))
        if special:
            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return
        if mode is not None:
            os.chmod(tmp, stat.S_IMODE(mode))          # an existing file keeps its permissions
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` all or nothing (raises ``OSError``; the old file is then unchanged)."""
    with atomic_path(path) as tmp:
        # O_EXCL: never write through a file or link someone else put there; 0o666 lets the umask decide
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_output(path: str | os.PathLike[str], data: bytes, what: str) -> None:
    """``atomic_write`` for a user-named output: a failure is a ``TosacError`` naming ``what`` and the file."""
    try:
        atomic_write(path, data)
    except OSError as e:
        raise TosacError(f"{what}: cannot write '{os.fspath(path)}': {e.strerror or e} "
                         f"(nothing was changed there)") from None


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file (links and hard links included), existing or not."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return _real_target(a) == _real_target(b)


def check_outputs(inputs: Mapping[str, str | os.PathLike[str] | None],
                  outputs: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """Refuse (``TosacError``) an output that is an input file or another output: writing it would destroy it.

    ``inputs`` and ``outputs`` map what the file is (e.g. ``"--output"``) to its path, or None when absent.
    """
    seen: list[tuple[str, str | os.PathLike[str]]] = [(k, v) for k, v in inputs.items()
                                                        if v is not None and os.path.isfile(v)]
    for what, path in outputs.items():
        if path is None:
            continue
        for other, other_path in seen:
            if same_file(path, other_path):
                kind = "the input model" if other in inputs else f"also the {other} file"
                raise TosacError(f"{what} '{os.fspath(path)}' is {kind} '{os.fspath(other_path)}': "
                                 f"refusing to overwrite it; choose another output path")
        seen.append((what, path))


def _sync_folder(folder: Path) -> None:
    """Best effort: make the rename itself durable (not every file system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Output files are written all or nothing, and never over the model being compiled.

A full disk is simulated two ways: the write itself raising ENOSPC midway
(in process), and a file size limit (RLIMIT_FSIZE) on a fresh process, which
makes the kernel refuse any write past the limit whatever code does it — the
same truncation a full disk gives.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tosac.app.examples import example_int8_net
from tosac.errors import SerializationError, TosacError
from tosac.ir import atomic_io
from tosac.ir.serialize import load, save

OLD = bytes(range(256)) * 4096                 # 1 MB that must survive a failed write


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("atomic") / "net.tosa"
    save(example_int8_net(), path)
    return path


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


class _FullDisk:
    """A file object whose write stores half the data, then fails as a full disk does."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)


def _full_disk_open(*args, **kwargs):
    return _FullDisk(open(*args, **kwargs))


def test_a_write_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "existing.o"
    target.write_bytes(OLD)
    monkeypatch.setattr(atomic_io, "open", _full_disk_open, raising=False)
    with pytest.raises(OSError) as info:
        atomic_io.atomic_write(target, b"\x7fELF" + bytes(4096))
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == OLD and _leftovers(tmp_path, {"existing.o"}) == []
    with pytest.raises(TosacError, match=r"--output: cannot write '.*existing\.o': No space left"):
        atomic_io.write_output(target, b"\x7fELF" + bytes(4096), "--output")
    assert target.read_bytes() == OLD and _leftovers(tmp_path, {"existing.o"}) == []


def test_save_failing_midway_leaves_the_old_model(tmp_path, monkeypatch):
    target = tmp_path / "existing.tosa"
    target.write_bytes(OLD)
    monkeypatch.setattr(atomic_io, "open", _full_disk_open, raising=False)
    with pytest.raises(SerializationError, match="existing.tosa: cannot write: No space left"):
        save(example_int8_net(), target)
    assert target.read_bytes() == OLD and _leftovers(tmp_path, {"existing.tosa"}) == []


def _limited(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)        # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _run(argv: list[str], tmp_path: Path, limit: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOSAC_CACHE_DIR": str(tmp_path / "cache"), "TOSAC_COMPILE_JOBS": "1"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(limit) if limit else None)


def _tosac(*args: str) -> list[str]:
    return [sys.executable, "-m", "tosac.app.cli", *args]


def test_save_on_a_full_disk_leaves_the_old_model(tmp_path):
    target = tmp_path / "out" / "existing.tosa"
    target.parent.mkdir()
    target.write_bytes(OLD)
    code = ("import sys\nfrom tosac.app.examples import example_int8_net\nfrom tosac.ir.serialize import save\n"
            "from tosac.errors import SerializationError\n"
            "try:\n    save(example_int8_net(), sys.argv[1])\n"
            "except SerializationError as e:\n    print(e, file=sys.stderr); sys.exit(3)\n")
    proc = _run([sys.executable, "-c", code, str(target)], tmp_path, limit=1024)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert target.read_bytes() == OLD and _leftovers(target.parent, {"existing.tosa"}) == []


@pytest.mark.parametrize("option,name", [("-o", "existing.o"), ("--header", "existing.h"),
                                         ("--static-lib", "existing.a")])
def test_compile_on_a_full_disk_leaves_the_old_output(model_file, tmp_path, option, name):
    target = tmp_path / "out" / name
    target.parent.mkdir()
    target.write_bytes(OLD)
    proc = _run(_tosac("compile", str(model_file), option, str(target)), tmp_path, limit=512)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("tosac: error:") and str(target) in proc.stderr
    assert target.read_bytes() == OLD and _leftovers(target.parent, {name}) == []


def test_compile_replaces_an_existing_output_keeping_its_permissions(model_file, tmp_path):
    target = tmp_path / "existing.o"
    target.write_bytes(OLD)
    target.chmod(0o640)
    link = tmp_path / "link.o"
    link.symlink_to(target)
    proc = _run(_tosac("compile", str(model_file), "-o", str(link)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert link.is_symlink() and target.read_bytes().startswith(b"\x7fELF")      # written through the link
    assert target.stat().st_mode & 0o777 == 0o640
    assert _leftovers(tmp_path, {"existing.o", "link.o", "cache"}) == []


@pytest.mark.parametrize("option", ["-o", "--header", "--static-lib"])
def test_compile_refuses_to_overwrite_its_input_model(model_file, tmp_path, option):
    victim = tmp_path / "victim.tosa"
    victim.write_bytes(model_file.read_bytes())
    (tmp_path / "hard.tosa").hardlink_to(victim)
    (tmp_path / "soft.tosa").symlink_to(victim)
    for output in (victim, tmp_path / "hard.tosa", tmp_path / "soft.tosa", tmp_path / "." / "victim.tosa"):
        proc = _run(_tosac("compile", str(victim), option, str(output)), tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.startswith("tosac: error:") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "input model" in proc.stderr and str(output) in proc.stderr
        assert victim.read_bytes() == model_file.read_bytes()
    load(victim)


def test_compile_refuses_two_outputs_on_one_file(model_file, tmp_path):
    proc = _run(_tosac("compile", str(model_file), "-o", str(tmp_path / "a.o"), "--header", str(tmp_path / "a.o")),
                tmp_path)
    assert proc.returncode == 2 and "--header" in proc.stderr and "--output" in proc.stderr, proc.stderr
    assert not (tmp_path / "a.o").exists()


def test_an_output_in_a_missing_folder_is_one_clear_error(model_file, tmp_path):
    target = tmp_path / "no-such-folder" / "out.o"
    proc = _run(_tosac("compile", str(model_file), "-o", str(target)), tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"tosac: error: --output '{target}': the folder '{target.parent}' does not exist")
    assert proc.stderr.count("\n") == 1


def test_output_to_a_special_file_still_works(model_file, tmp_path):
    proc = _run(_tosac("compile", str(model_file), "-o", os.devnull), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]

"""A damaged object-cache file is never loaded or copied: it is a warning, a rebuild and a replaced file.

Each run happens in a fresh process, so loading a corrupt object (which kills
the process: SIGSEGV, SIGILL, an LLVM abort) shows as a failed test, not as a
crashed test session. Results are compared bit for bit with the reference
interpreter; ``tosac compile -o`` output with the object of a clean cache.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from tosac.app.examples import example_int8_net
from tosac.ir.reference.interpreter import run
from tosac.ir.serialize import save

_RUN = """
import sys, numpy as np, tosac
from tosac.ir.serialize import load
graph = load(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], tosac.compile(graph, "host").run({"x": x})[graph.outputs[0]])
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(model file, input file, the reference interpreter's output)."""
    folder = tmp_path_factory.mktemp("hostile-cache")
    graph = example_int8_net()
    save(graph, folder / "net.tosa")
    x = np.random.default_rng(16).integers(-128, 128, (1, 16, 16, 8), dtype=np.int8)
    np.save(folder / "x.npy", x)
    return folder / "net.tosa", folder / "x.npy", run(graph, {"x": x})[graph.outputs[0]]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "TOSAC_CACHE_DIR": str(cache), "TOSAC_COMPILE_JOBS": "1"}


def _run_model(model, cache: Path, out: Path) -> subprocess.CompletedProcess:
    path, x, expected = model
    proc = subprocess.run([sys.executable, "-c", _RUN, str(path), str(x), str(out)], env=_env(cache),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    got = np.load(out)
    assert got.dtype == expected.dtype and np.array_equal(got, expected), "not bit-exact with the reference"
    return proc


def _cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "objects").rglob("*.o"))


def _truncate(blob: bytes, other: bytes) -> bytes:
    return blob[:len(blob) // 3]


def _flip(blob: bytes, other: bytes) -> bytes:
    out = bytearray(blob)
    for i in range(len(out) // 2, len(out), 97):      # bits in the object's code and data, header untouched
        out[i] ^= 0x10
    return bytes(out)


def _zero(blob: bytes, other: bytes) -> bytes:
    return bytes(len(blob))


def _other_entry(blob: bytes, other: bytes) -> bytes:
    return other                                     # a complete, valid cache file of another object


def _other_raw_object(blob: bytes, other: bytes) -> bytes:
    return other[other.index(b"\x7fELF"):]           # another valid ELF object, as older tosac stored them


@pytest.fixture(scope="module")
def other_entry(tmp_path_factory):
    """The cache file of a different program's object (a valid entry, for another key)."""
    cache = tmp_path_factory.mktemp("other-cache")
    code = ("import tosac\nfrom tosac.ir import DType\nfrom tosac.ir.builder import GraphBuilder\n"
            "g = GraphBuilder(); x = g.input('x', DType.INT8, (1, 16, 16, 8))\n"
            "g.output(g.clamp(x, min_val=-3, max_val=7)); tosac.compile(g.build(), 'host')\n")
    subprocess.run([sys.executable, "-c", code], env=_env(cache), check=True, timeout=300)
    files = _cache_files(cache)
    assert files
    return max(files, key=lambda f: f.stat().st_size).read_bytes()


@pytest.mark.parametrize("damage", [_truncate, _flip, _zero, _other_entry, _other_raw_object],
                         ids=["truncated", "bit-flipped", "zero-filled", "other-entry", "other-raw-object"])
def test_a_damaged_cache_entry_is_rebuilt_not_run(model, other_entry, tmp_path, damage):
    cache = tmp_path / "cache"
    _run_model(model, cache, tmp_path / "first.npy")                    # fills the cache
    files = _cache_files(cache)
    assert files
    good = {f: f.read_bytes() for f in files}
    for f, blob in good.items():
        f.write_bytes(damage(blob, other_entry))
    proc = _run_model(model, cache, tmp_path / "second.npy")            # bit-exact: nothing damaged was run
    for f in files:
        assert str(f) in proc.stderr and "CacheWarning" in proc.stderr, proc.stderr[-3000:]
        assert f.read_bytes() == good[f], f"{f} was not replaced by the rebuilt object"
    proc = _run_model(model, cache, tmp_path / "third.npy")             # the rebuilt entries are trusted again
    assert "CacheWarning" not in proc.stderr, proc.stderr[-3000:]
    assert not list((cache / "objects").rglob("*.tmp")), "temporary files left in the cache"


def _compile_o(model, cache: Path, out: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tosac.app.cli", "compile", str(model[0]), "--target", "aarch64",
                           "-o", str(out)], env=_env(cache), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.parametrize("damage", [_truncate, _flip, _other_raw_object], ids=["truncated", "bit-flipped",
                                                                               "other-raw-object"])
def test_compile_output_never_copies_a_damaged_cache_entry(model, other_entry, tmp_path, damage):
    cache = tmp_path / "cache"
    _compile_o(model, cache, tmp_path / "clean.o")
    clean = (tmp_path / "clean.o").read_bytes()
    assert clean.startswith(b"\x7fELF")
    files = _cache_files(cache)
    assert files
    for f in files:
        f.write_bytes(damage(f.read_bytes(), other_entry))
    proc = _compile_o(model, cache, tmp_path / "out.o")
    assert all(str(f) in proc.stderr for f in files), proc.stderr[-3000:]
    assert (tmp_path / "out.o").read_bytes() == clean, "tosac compile -o wrote another object than a clean build"


def test_concurrent_writers_and_readers_of_one_cache_never_see_a_partial_entry(tmp_path, monkeypatch):
    from tosac.runtime import objects
    from tosac.targets import get_target

    monkeypatch.setenv("TOSAC_CACHE_DIR", str(tmp_path / "cache"))
    target = get_target("host")
    text = "define i32 @f(i32 %x) {\n  %y = mul i32 %x, 7\n  ret i32 %y\n}\n"
    data = objects.compile_uncached(text, target)
    key = objects.cache_key(text, target, 3)
    path = objects.cache_dir() / key[:2] / f"{key}.o"
    seen: list[bytes | None] = []
    errors: list[BaseException] = []

    def write() -> None:
        for _ in range(200):
            objects._write_cached(path, key, data)

    def read() -> None:
        try:
            for _ in range(400):
                seen.append(objects._read_cached(path, key))
        except BaseException as e:             # noqa: BLE001 - reported below
            errors.append(e)

    with warnings.catch_warnings(record=True) as caught:      # a reader that saw half a file would warn
        warnings.simplefilter("always")
        threads = [threading.Thread(target=write) for _ in range(3)] + [threading.Thread(target=read)
                                                                       for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and not caught, [str(w.message) for w in caught]
    assert all(s is None or s == data for s in seen) and data in seen
    assert not list(path.parent.glob("*.tmp"))


def test_a_failed_cache_write_leaves_no_file(tmp_path, monkeypatch):
    from tosac.runtime import objects

    path = tmp_path / "ab" / "abcd.o"
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:100])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: Full(real_fdopen(fd, mode, *a, **k)))
    objects._write_cached(path, "abcd", b"\x7fELF" + bytes(1000))
    assert list(path.parent.iterdir()) == []

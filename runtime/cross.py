"""Run AArch64 / ARMv7 object code on an x86 host: cross gcc links, qemu-user runs.

Each compiled model is a standalone object exporting ``model_run``. For a
batch of runs, every distinct object gets its entry renamed
(``objcopy --redefine-sym``), a generated table lists them, and the shipped C
runner (``runtime/c/runner.c``) is linked statically with all of them — one
binary, one emulated process for the whole batch, because starting qemu and
linking cost far more than running a small graph. Linked runners are cached
by content hash, each with the SHA-256 of its bytes beside it: a damaged
cached runner is rebuilt, never run.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tosac.errors import CodegenError, ToolchainMissingError
from tosac.runtime.objects import CacheWarning
from tosac.targets import Target

RUNNER_SOURCE = Path(__file__).parent / "c" / "runner.c"
RUN_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class CrossToolchain:
    prefix: str            # cross binutils/gcc prefix
    qemu: str
    qemu_cpu: str          # a CPU with the features the target asks for
    packages: tuple[str, ...]

    @property
    def gcc(self) -> str:
        return f"{self.prefix}gcc"

    @property
    def objcopy(self) -> str:
        return f"{self.prefix}objcopy"

    def check(self) -> None:
        """Raise ToolchainMissingError naming the Debian packages when a tool is absent."""
        missing = [tool for tool in (self.gcc, self.objcopy, self.qemu) if shutil.which(tool) is None]
        if missing:
            raise ToolchainMissingError(
                f"missing {', '.join(missing)}: install the Debian packages {' '.join(self.packages)} "
                f"(apt-get install {' '.join(self.packages)}; `make test` does this when run as root)")


def toolchain(target: Target) -> CrossToolchain:
    if target.arch == "aarch64":
        cpu = "max" if "dotprod" in target.features else "cortex-a53"
        return CrossToolchain("aarch64-linux-gnu-", "qemu-aarch64", cpu, ("gcc-aarch64-linux-gnu", "qemu-user"))
    if target.arch.startswith("arm"):
        return CrossToolchain("arm-linux-gnueabihf-", "qemu-arm", "cortex-a7", ("gcc-arm-linux-gnueabihf", "qemu-user"))
    raise CodegenError(f"target {target.name} runs in this process, not under qemu")


def available(target: Target) -> bool:
    try:
        toolchain(target).check()
    except ToolchainMissingError:
        return False
    return True


@dataclass
class CrossRun:
    """One run: a model object, its arena size, input arrays and the output buffers to expect."""
    object_code: bytes
    arena_bytes: int
    inputs: list[np.ndarray]
    output_specs: list[tuple[np.dtype, tuple[int, ...]]]


def _cache_root() -> Path:
    root = os.environ.get("TOSAC_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "tosac") / "runners"


def _run_tool(args: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise CodegenError(f"{what} failed ({' '.join(args[:2])} ...): {proc.stderr.strip()[-2000:]}")


def _runner_object(target: Target, tools: CrossToolchain) -> Path:
    """runner.c compiled once per target and runner version (linking is then all that is left per batch)."""
    digest = hashlib.sha256(RUNNER_SOURCE.read_bytes() + tools.gcc.encode()).hexdigest()[:16]
    obj = _cache_root() / f"runner-main-{target.arch}-{digest}.o"
    if not _trusted(obj):
        obj.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="tosac-runner-") as tmp:
            built = Path(tmp) / "runner.o"
            _run_tool([tools.gcc, "-O2", "-c", "-o", str(built), str(RUNNER_SOURCE)], "compiling the runner")
            _publish(built, obj)
    return obj


def build_runner(target: Target, objects: Sequence[bytes]) -> Path:
    """A static runner binary with ``objects`` linked in as models 0..n-1 (cached)."""
    tools = toolchain(target)
    tools.check()
    h = hashlib.sha256(RUNNER_SOURCE.read_bytes() + target.name.encode())
    for obj in objects:
        h.update(hashlib.sha256(obj).digest())
    binary = _cache_root() / f"runner-{target.name}-{h.hexdigest()[:24]}"
    if _trusted(binary):
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tosac-link-") as tmp:
        work = Path(tmp)
        names = []
        for i, obj in enumerate(objects):
            raw, renamed = work / f"m{i}.raw.o", work / f"m{i}.o"
            raw.write_bytes(obj)
            _run_tool([tools.objcopy, f"--redefine-sym=model_run=tosac_m{i}_run",
                       f"--redefine-sym=model_run_parallel=tosac_m{i}_run_parallel", str(raw), str(renamed)],
                      "renaming a model entry point")
            names.append(f"tosac_m{i}_run")
        decls = "".join(f"extern int {n}(const void *[], void *[], void *);\n" for n in names)
        table = ("typedef int (*tosac_model_fn)(const void *[], void *[], void *);\n" + decls +
                 f"const tosac_model_fn tosac_models[] = {{{', '.join(names) or '0'}}};\n"
                 f"const int tosac_model_count = {len(names)};\n")
        (work / "table.c").write_text(table)
        out = work / "runner"
        _run_tool([tools.gcc, "-static", "-O2", "-o", str(out), str(_runner_object(target, tools)),
                   str(work / "table.c"), *[str(work / f"m{i}.o") for i in range(len(objects))], "-lm"],
                  "linking the runner")
        _publish(out, binary)
    return binary


def _digest_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _trusted(path: Path) -> bool:
    """Whether a cached runner file exists and matches the SHA-256 written next to it when it was built: a
    truncated or altered binary is rebuilt (with a CacheWarning), never executed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as exc:
        problem = f"it cannot be read ({exc.strerror or exc})"
    else:
        try:
            expected = _digest_file(path).read_text().strip()
        except (OSError, UnicodeDecodeError):
            expected = ""
        if hashlib.sha256(data).hexdigest() == expected:
            return True
        problem = "its digest is missing or does not match its contents (damaged, or written by an older tosac)"
    warnings.warn(f"tosac runner cache: ignoring {path}: {problem}; rebuilding it", CacheWarning, stacklevel=3)
    return False


def _publish(built: Path, dest: Path) -> None:
    """Copy ``built`` to ``dest`` through a temporary name unique per writer (threads share a pid), then its
    digest beside it: a reader sees either nothing, an untrusted file it rebuilds, or the whole pair."""
    data = built.read_bytes()
    for path, content, mode in ((dest, data, 0o755), (_digest_file(dest), hashlib.sha256(data).hexdigest().encode(),
                                                       0o644)):
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)


def run_batch(target: Target, runs: Sequence[CrossRun]) -> list[list[np.ndarray]]:
    """Outputs of every run, all in one emulated process."""
    if not runs:
        return []
    distinct: dict[bytes, int] = {}
    for r in runs:
        distinct.setdefault(r.object_code, len(distinct))
    runner = build_runner(target, list(distinct))
    tools = toolchain(target)
    with tempfile.TemporaryDirectory(prefix="tosac-run-") as tmp:
        work = Path(tmp)
        lines = []
        for k, r in enumerate(runs):
            fields = [str(distinct[r.object_code]), str(max(r.arena_bytes, 1)), str(len(r.inputs))]
            for i, arr in enumerate(r.inputs):
                path = work / f"r{k}_in{i}.bin"
                data = np.ascontiguousarray(arr).tobytes()
                path.write_bytes(data)
                fields += [str(path), str(len(data))]
            fields.append(str(len(r.output_specs)))
            for j, (dtype, shape) in enumerate(r.output_specs):
                fields += [str(work / f"r{k}_out{j}.bin"), str(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)]
            lines.append(" ".join(fields))
        job = work / "job.txt"
        job.write_text("\n".join(lines) + "\n")
        try:
            proc = subprocess.run([tools.qemu, "-cpu", tools.qemu_cpu, str(runner), str(job)], capture_output=True,
                                  text=True, timeout=RUN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise CodegenError(f"{target.name} runner did not finish within {RUN_TIMEOUT_SECONDS} s") from None
        if proc.returncode != 0:
            raise CodegenError(f"{target.name} runner failed (status {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        results = []
        for k, r in enumerate(runs):
            outs = []
            for j, (dtype, shape) in enumerate(r.output_specs):
                outs.append(np.fromfile(work / f"r{k}_out{j}.bin", dtype=dtype).reshape(shape))
            results.append(outs)
    return results

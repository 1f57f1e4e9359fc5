"""A big host program compiles in several LLVM modules, on worker processes too, into the same code."""
from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest

import tosac
from tosac.errors import CodegenError, TosacError
from tosac.ir import DType
from tosac.ir.builder import GraphBuilder
from tosac.ir.reference.interpreter import run
from tosac.pipeline import host_modules
from tosac.runtime import objects, workers
from tosac.runtime.executable import Executable, KernelStep
from tosac.runtime.jit import LoadedObject
from tosac.targets import get_target

# Axis orders for a chain of transposes over (1, 4, 6, 8): each (shape, order) pair is a different kernel.
ORDERS = [(0, 2, 1, 3), (0, 1, 3, 2), (0, 3, 2, 1), (0, 2, 3, 1), (0, 3, 1, 2)] * 3


def _chain(orders=ORDERS, seed: int = 3):
    """A 3x3 convolution with its rescale and clamp, then transposes (cheap to compile, one kernel each)."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 4, 6, 8))
    y = g.conv2d(x, g.const(rng.integers(-128, 128, (8, 3, 3, 8)).astype(np.int8)), pad=(1, 1, 1, 1), input_zp=3)
    y = g.clamp(g.rescale(y, DType.INT8, multiplier=1 << 30, shift=41, output_zp=-2), min_val=-100, max_val=120)
    for order in orders:
        y = g.transpose(y, perms=list(order))
    g.output(y)
    return g.build(), {"x": rng.integers(-128, 128, (1, 4, 6, 8)).astype(np.int8)}


def _functions(exe) -> list[str]:
    return [s.function for s in exe.program.steps if isinstance(s, KernelStep)]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TOSAC_CACHE_DIR", str(tmp_path / "cache"))
    objects.clear_memory_cache()
    yield tmp_path / "cache"
    objects.clear_memory_cache()


def _compile(graph, jobs: int, monkeypatch) -> tosac.runtime.executable.Executable:
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", str(jobs))
    objects.clear_memory_cache()
    return tosac.compile(graph, "host")


def test_big_program_is_compiled_in_parts_and_stays_bit_exact(fresh_cache, monkeypatch):
    graph, inputs = _chain()
    exe = _compile(graph, 2, monkeypatch)
    functions = _functions(exe)
    assert len(functions) > host_modules.SMALL_PROGRAM
    # kernel modules of at most KERNELS_PER_MODULE kernels each, and the entry point's module
    assert len(exe.program.parts) >= -(-len(set(functions)) // host_modules.KERNELS_PER_MODULE) + 1
    assert exe.program.info["host_entry"] and exe._loaded.entry is not None
    want = run(graph, inputs)[graph.outputs[0]]
    np.testing.assert_array_equal(exe.run(inputs)[graph.outputs[0]], want)
    # the one object file a user can take away links the parts: ELF, defining the entry point
    single = exe.object_code
    assert single.startswith(b"\x7fELF") and b"tosac_host_run" in single and single not in exe.program.parts
    alone = Executable(exe.program, LoadedObject(single, sorted(set(functions)), exe.program.info["host_entry"]))
    np.testing.assert_array_equal(alone.run(inputs)[graph.outputs[0]], want)


def test_workers_make_the_same_objects_as_this_process(fresh_cache, monkeypatch):
    graph, inputs = _chain()
    alone = _compile(graph, 1, monkeypatch)
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", "2")
    worker = workers.pool().acquire()                 # started and idle: ready when the compile needs it
    assert worker is not None and worker.wait_ready()
    workers.pool().release(worker)
    made_here = []
    real = objects.compile_uncached
    monkeypatch.setattr(objects, "compile_uncached", lambda *a: made_here.append(1) or real(*a))
    monkeypatch.setenv("TOSAC_CACHE_DIR", str(fresh_cache.parent / "other-cache"))     # nothing cached
    together = _compile(graph, 2, monkeypatch)
    assert len(made_here) < len(together.program.parts), "no module was compiled by a worker"
    assert together.program.parts == alone.program.parts
    np.testing.assert_array_equal(together.run(inputs)[graph.outputs[0]], alone.run(inputs)[graph.outputs[0]])


def test_parts_are_cached_by_content(fresh_cache, monkeypatch):
    graph, inputs = _chain()
    first = _compile(graph, 2, monkeypatch)
    single = first.object_code
    monkeypatch.setattr(objects, "parse_and_verify", lambda text: pytest.fail("recompiled a cached module"))
    monkeypatch.setattr(workers, "jobs", lambda: pytest.fail("started compiling with nothing to compile"))
    second = _compile(graph, 2, monkeypatch)          # from the disk cache: the memory cache was cleared
    assert second.program.parts == first.program.parts and second.object_code == single
    np.testing.assert_array_equal(second.run(inputs)[graph.outputs[0]], first.run(inputs)[graph.outputs[0]])


def test_identical_kernels_are_compiled_once(fresh_cache, monkeypatch):
    graph, inputs = _chain([(0, 2, 1, 3), (0, 2, 1, 3)] * 8)       # back and forth between two shapes
    exe = _compile(graph, 2, monkeypatch)
    functions = _functions(exe)
    transposes = functions[-16:]
    assert len(set(transposes)) == 2 and transposes[:2] * 8 == transposes
    # compiled once: no object defines or calls any of the other fourteen transpose kernels
    symbols = {m.decode() for m in re.findall(rb"tosac_k\d+_transpose", b"\0".join(exe.program.parts))}
    assert symbols == set(transposes)
    np.testing.assert_array_equal(exe.run(inputs)[graph.outputs[0]], run(graph, inputs)[graph.outputs[0]])


def test_small_program_is_one_module_with_its_entry_point(fresh_cache, monkeypatch):
    graph, inputs = _chain(ORDERS[:2])
    exe = _compile(graph, 2, monkeypatch)
    assert exe.program.parts == [] and exe.object_code.startswith(b"\x7fELF")
    np.testing.assert_array_equal(exe.run(inputs)[graph.outputs[0]], run(graph, inputs)[graph.outputs[0]])


_BAD = "define void @f() {\n  ret i32 0\n}\n"


def _good(n: int) -> str:
    return f"define i32 @f{n}(i32 %x) {{\n  %y = add i32 %x, {n}\n  ret i32 %y\n}}\n"


def test_a_module_that_does_not_verify_is_a_codegen_error_from_a_worker(fresh_cache, monkeypatch):
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", "2")
    worker = workers.pool().acquire()
    assert worker is not None and worker.wait_ready()
    try:
        assert worker.compile(_good(1), get_target("host"), 3).startswith(b"\x7fELF")
        with pytest.raises(CodegenError, match="does not verify"):
            worker.compile(_BAD, get_target("host"), 3)
        assert worker.alive                       # the worker survives a bad module
    finally:
        workers.pool().release(worker)


def test_a_batch_raises_the_first_bad_module_after_the_others(fresh_cache, monkeypatch):
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", "2")
    batch = objects.ObjectBatch(get_target("host"))
    for text in [_good(1), _good(2), _BAD + "; padding to be taken first\n" * 20, _good(3)]:
        batch.submit(text)
    with pytest.raises(CodegenError, match="does not verify"):
        batch.results()


def test_a_killed_worker_reports_it(fresh_cache, monkeypatch):
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", "2")
    worker = workers.Worker()
    assert worker.wait_ready()
    worker.process.kill()
    worker.process.wait()
    with pytest.raises(EOFError):
        worker.compile(_good(1), get_target("host"), 3)
    assert not worker.alive


class _DyingWorker:
    """Takes one module and dies, as a worker killed mid-compile."""

    def __init__(self):
        self.alive, self.calls = True, 0

    def wait_ready(self):
        return True

    def compile(self, *args):
        self.calls += 1
        self.alive = False
        raise EOFError("killed")


def test_a_dead_workers_module_is_compiled_here(fresh_cache, monkeypatch):
    dying = _DyingWorker()

    class Pool:
        def acquire(self):
            return dying

        def release(self, worker):
            pass
    monkeypatch.setattr(workers, "pool", Pool)
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", "2")
    batch = objects.ObjectBatch(get_target("host"))
    texts = [_good(n) for n in range(4)]
    for text in texts:
        batch.submit(text)
    for _ in range(1000):                         # until the helper has taken a module (and lost it)
        if dying.calls:
            break
        time.sleep(0.01)
    assert dying.calls == 1
    assert batch.results() == [objects.compile_uncached(t, get_target("host")) for t in texts]


def test_a_forked_process_gets_its_own_pool(monkeypatch):
    parent = workers.pool()
    monkeypatch.setattr(workers, "_POOL", parent)            # restored afterwards
    monkeypatch.setattr(os, "getpid", lambda: parent.owner + 1)
    assert workers.pool() is not parent


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), ("0", 1), (" 2 ", 2)])
def test_compile_jobs_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", value)
    assert workers.jobs() == expected


def test_compile_jobs_that_are_not_a_number_are_refused(monkeypatch):
    monkeypatch.setenv("TOSAC_COMPILE_JOBS", "many")
    with pytest.raises(TosacError, match="TOSAC_COMPILE_JOBS is 'many'"):
        workers.jobs()

"""The native thread pool (issue 18 item 2): whole models run multi-core in one native call, bit for bit.

``parallel_for`` must cover ``[0, extent)`` exactly once whatever the pool
size and chunk count; threaded networks must equal the reference interpreter;
a forked child must not wait for its parent's worker threads; a deployable
object must take a C user's own pool through ``model_run_parallel``.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import subprocess
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tosac
from tosac.app.cli import main
from tosac.errors import UnsupportedError
from tosac.ir.reference.interpreter import run
from tosac.ir.serialize import save
from tosac.runtime.jit import KERNEL_SIGNATURE
from tosac.runtime.thread_pool import ThreadPool, shared_pool


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.integers(0, 300), st.integers(1, 12))
def test_parallel_for_runs_every_index_exactly_once(threads, extent, tasks):
    ranges, lock = [], threading.Lock()

    @KERNEL_SIGNATURE
    def kernel(buffers, begin, end):
        with lock:
            ranges.append((begin, end, threading.get_native_id()))

    pool = shared_pool(threads)
    pool.parallel_for(ctypes.cast(kernel, ctypes.c_void_p).value, 0, extent, tasks)
    covered = sorted((b, e) for b, e, _ in ranges)
    assert [i for b, e in covered for i in range(b, e)] == list(range(extent))
    assert len(covered) <= max(tasks, 1)
    assert len({t for *_, t in ranges}) <= pool.threads


def test_a_pool_of_its_own_runs_then_joins_its_workers():
    """ThreadPool.close() stops and joins the workers (a hang here is the stop path broken)."""
    ranges, lock = [], threading.Lock()

    @KERNEL_SIGNATURE
    def kernel(buffers, begin, end):
        with lock:
            ranges.append((begin, end))

    pool = ThreadPool(3)
    pool.parallel_for(ctypes.cast(kernel, ctypes.c_void_p).value, 0, 30, 3)
    closer = threading.Thread(target=pool.close, daemon=True)
    closer.start()
    closer.join(20)
    assert not closer.is_alive(), "closing the pool did not return"
    assert sorted(ranges) == [(0, 10), (10, 20), (20, 30)] and not pool.handle


@pytest.mark.parametrize("name", ["kws", "ic"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_networks_are_bit_exact(name, threads):
    graph = tosac.models.load(name)
    exe = tosac.compile(graph, "host", threads=threads)
    split = [s.threads for s in exe.program.steps if getattr(s, "threads", 1) > 1]
    assert split and max(split) <= threads      # small kernels stay on one thread (worthwhile_threads)
    assert exe.program.info.get("host_entry"), "a threaded program still runs as one native call"
    for inputs in tosac.models.sample_inputs(name, graph, count=2, seed=18):
        expected = run(graph, inputs)
        got = exe.run(inputs)
        for out, want in expected.items():
            np.testing.assert_array_equal(got[out], want)


def test_threads_auto_and_bad_values():
    graph = tosac.models.load("kws")
    assert tosac.compile(graph, "host", threads="auto").threads >= 1
    for bad in (0, -1, 1000, "two", 2.5, True):
        with pytest.raises(UnsupportedError, match="threads must be"):
            tosac.compile(graph, "host", threads=bad)


def test_a_config_that_names_threads_keeps_them():
    graph = tosac.models.load("kws")
    exe = tosac.compile(graph, "host", threads=2)
    first = next(k for k in exe.program.info["kernels"] if k.config.get("threads") == 2)
    pinned = tosac.compile(graph, "host", config={first.name: {"threads": 1}}, threads=2)
    chosen = {k.name: k.config.get("threads") for k in pinned.program.info["kernels"]}
    assert chosen[first.name] == 1 and 2 in chosen.values()


def _child_runs(exe, inputs, expected, queue) -> None:
    got = exe.run(inputs)
    queue.put(all(np.array_equal(got[n], expected[n]) for n in expected))


def test_a_forked_child_runs_threaded_models_with_pools_of_its_own():
    graph = tosac.models.load("kws")
    (inputs,) = tosac.models.sample_inputs("kws", graph, count=1, seed=3)
    expected = run(graph, inputs)
    exe = tosac.compile(graph, "host", threads=2)
    exe.run(inputs)                                          # the parent's pool exists and its workers wait
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_runs, args=(exe, inputs, expected, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in the thread pool")
    assert child.exitcode == 0 and queue.get(timeout=5) is True


def test_cli_run_with_threads_is_bit_exact(tmp_path, capsys):
    graph = tosac.models.load("kws")
    save(graph, tmp_path / "kws.tosa")
    assert main(["run", str(tmp_path / "kws.tosa"), "--random-inputs", "--check", "--threads", "2"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "kws.tosa"), "--random-inputs", "--threads", "lots"]) == 2


POOL_IN_C = r'''
#include <pthread.h>
/* A user's pool in its simplest form: one pthread per chunk, joined before returning. */
struct chunk { tosac_kernel_fn kernel; void *const *buffers; int64_t begin, end; };
static void *run_chunk(void *arg) {
    struct chunk *c = arg;
    c->kernel(c->buffers, c->begin, c->end);
    return 0;
}
static int calls;
static void parallel_for(void *ctx, tosac_kernel_fn kernel, void *const *buffers, int64_t extent, int64_t tasks) {
    pthread_t ids[16];
    struct chunk chunks[16];
    int64_t n = tasks < 16 ? tasks : 16, size = (extent + n - 1) / n, used = 0;
    for (int64_t b = 0; b < extent; b += size, used++) {
        chunks[used] = (struct chunk){kernel, buffers, b, b + size < extent ? b + size : extent};
        pthread_create(&ids[used], 0, run_chunk, &chunks[used]);
    }
    for (int64_t i = 0; i < used; i++) pthread_join(ids[i], 0);
    ++*(int *)ctx;
}
'''


def test_deployable_object_takes_the_callers_thread_pool(tmp_path, require_cross, c_model_main):
    """`tosac compile --threads 2 --header`: model_run_parallel with a pthread pool in C, on AArch64 (qemu)."""
    require_cross("aarch64")
    graph = tosac.models.load("kws")
    save(graph, tmp_path / "kws.tosa")
    assert main(["compile", str(tmp_path / "kws.tosa"), "--target", "aarch64", "--threads", "2",
                 "--header", str(tmp_path / "model.h"), "--static-lib", str(tmp_path / "libmodel.a")]) == 0
    header = (tmp_path / "model.h").read_text()
    assert "model_run_parallel" in header and "tosac_parallel_for_fn" in header
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-O2", "-pthread", "-o", str(tmp_path / "app"), "-x", "c",
                    "-", "-L", str(tmp_path), "-lmodel"], text=True,
                   input=c_model_main("model_run_parallel(inputs, outputs, arena, parallel_for, &calls)", POOL_IN_C,
                                      "if (calls == 0) return 5;"), check=True, cwd=tmp_path)
    (inputs,) = tosac.models.sample_inputs("kws", graph, count=1, seed=7)
    (x,) = inputs.values()
    x.tofile(tmp_path / "x.bin")
    subprocess.run(["qemu-aarch64", str(tmp_path / "app"), str(tmp_path / "x.bin"), str(tmp_path / "y.bin")],
                   check=True)
    want = run(graph, inputs)[graph.outputs[0]]
    np.testing.assert_array_equal(np.fromfile(tmp_path / "y.bin", dtype=want.dtype).reshape(want.shape), want)

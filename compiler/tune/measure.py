"""Measuring candidate configs: correctness first, then time.

``Runner`` is the seam: ``LocalRunner`` measures on this machine; another
runner (a remote ARM board, a cluster) implements the same ``measure``.

LocalRunner's policy:
- Build: candidates compile in a pool of ``jobs`` processes; object code lands
  in tosac's content-addressed cache, so measuring reloads it for free.
- Isolation: each candidate is measured alone in a forked child (children and
  build workers die with the job, even when it is killed with SIGKILL). A crash is a
  ``RUNTIME_ERROR`` trial, a child still running after ``timeout`` seconds is
  killed and recorded as ``TIMEOUT``; the job goes on either way.
- Correctness: the child first compares every output with the reference
  interpreter's on seeded inputs; any difference is ``WRONG_ANSWER`` and no
  time is recorded.
- Noise: ``warmup`` untimed runs, then samples until both ``min_repeats``
  samples and ``min_seconds`` of run time are reached; a sample averages
  enough back-to-back native runs (``Executable.time_runs``: inputs checked
  and bound once) to last ``sample_seconds``, so timer resolution and Python
  call overhead stop mattering for microsecond kernels. The median sample is
  the cost (``tuning_log.median``: the upper median of an even count).
  Candidates are timed one at a time, never while another candidate runs.
  ``flush_cache`` overwrites a 64 MiB buffer before each timed run (a
  cold-cache measurement, for kernels that run after others in a model).
"""
from __future__ import annotations

import abc
import ctypes
import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tosac.errors import TuningError, UnpredictableError
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run
from tosac.pipeline.driver import compile as compile_graph
from tosac.pipeline.tasks import Task
from tosac.pipeline.tuning_log import ErrorCode, Measured
from tosac.schedules.space import Config


@dataclass
class MeasureResult(Measured):
    config: Config
    costs: list[float] = field(default_factory=list)     # seconds per run
    error: str = ErrorCode.NO_ERROR
    message: str = ""


class Runner(abc.ABC):
    """Measures configs of a task; ``parallelism`` says how many candidates a batch should hold."""
    parallelism: int = 1

    @abc.abstractmethod
    def measure(self, task: Task, configs: list[Config],
                on_result: Callable[[MeasureResult], None] | None = None) -> list[MeasureResult]:
        """Results in the order of ``configs``; ``on_result`` is called as soon as each one is known
        (the job logs it at once, so a killed job loses no finished trial)."""


@dataclass
class MeasurePolicy:
    warmup: int = 2
    min_repeats: int = 5
    min_seconds: float = 0.05
    sample_seconds: float = 1e-3        # a sample averages enough runs to last this long (small kernels)
    flush_cache: bool = False


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Make a forked child (measuring child or build worker) die when the tuner dies, even by ``kill -9``:
    on Linux the kernel sends it SIGKILL (``prctl(PR_SET_PDEATHSIG)``); if the parent is already gone when
    this runs, the child exits at once. Otherwise it would outlive the job, blocked writing its result."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):       # no prctl (another libc): the getppid check below still runs
            pass
    if os.getppid() != parent:
        os._exit(1)


def _build(task: Task, config: Config) -> str:
    """Compile one candidate (warming the object cache); an error message or ''."""
    try:
        compile_graph(task.graph, task.target, {task.builder().name: config})
    except Exception as e:  # any failure of a candidate is data, not the end of the job
        return f"{type(e).__name__}: {e}"
    return ""


def _measure_child(conn, task: Task, config: Config, inputs: dict, expected: dict, policy: MeasurePolicy) -> None:
    try:
        exe = compile_graph(task.graph, task.target, {task.builder().name: config})
        got = exe.run(inputs)
        for name, want in expected.items():
            if got[name].dtype != want.dtype or not np.array_equal(got[name], want):
                conn.send((ErrorCode.WRONG_ANSWER, f"output '{name}' differs from the reference interpreter", []))
                return
        flush = np.zeros(64 << 20, np.uint8) if policy.flush_cache else None
        once = exe.time_runs(inputs, max(policy.warmup, 1))
        number = 1 if flush is not None else max(1, int(policy.sample_seconds / max(once, 1e-9)))
        costs: list[float] = []
        while len(costs) < policy.min_repeats or sum(costs) * number < policy.min_seconds:
            if flush is not None:
                flush += 1
            costs.append(exe.time_runs(inputs, number))
        conn.send((ErrorCode.NO_ERROR, "", costs))
    except Exception as e:
        conn.send((ErrorCode.RUNTIME_ERROR, f"{type(e).__name__}: {e}", []))


def _child_main(parent: int, conn, *args) -> None:
    """The measuring child: bound to its parent's life first, then :func:`_measure_child`."""
    _die_with_parent(parent)
    _measure_child(conn, *args)


class LocalRunner(Runner):
    """Build in a process pool, measure each candidate alone in a forked child (see the module docstring)."""

    def __init__(self, jobs: int = 2, timeout: float = 20.0, policy: MeasurePolicy | None = None, seed: int = 0):
        self.parallelism = max(1, jobs)
        self.timeout = timeout
        self.policy = policy or MeasurePolicy()
        self.seed = seed
        self._reference: dict[str, tuple[dict, dict]] = {}

    def _inputs_and_expected(self, task: Task) -> tuple[dict, dict]:
        if task.key not in self._reference:
            # Inputs whose reference result is defined: full range first, then narrower wide-integer ranges.
            for attempt, narrow_bits in enumerate((0, 0, 24, 16, 12, 8)):
                inputs = random_inputs(task.graph.input_types(), self.seed + attempt, narrow_bits)
                try:
                    self._reference[task.key] = (inputs, run(task.graph, inputs))
                    break
                except UnpredictableError:
                    continue
            else:
                raise TuningError(f"task {task.pattern}: no seeded inputs give a defined reference result")
        return self._reference[task.key]

    def measure(self, task: Task, configs: list[Config],
                on_result: Callable[[MeasureResult], None] | None = None) -> list[MeasureResult]:
        inputs, expected = self._inputs_and_expected(task)
        ctx = mp.get_context("fork")
        if self.parallelism > 1 and len(configs) > 1:
            with ProcessPoolExecutor(max_workers=self.parallelism, mp_context=ctx, initializer=_die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                build_errors = list(pool.map(_build, [task] * len(configs), configs))
        else:
            build_errors = [_build(task, c) for c in configs]
        results = []
        for config, error in zip(configs, build_errors):
            if error:
                result = MeasureResult(config, error=ErrorCode.COMPILE_ERROR, message=error)
            else:
                result = self._measure_one(ctx, task, config, inputs, expected)
            results.append(result)
            if on_result:
                on_result(result)
        return results

    def _measure_one(self, ctx, task: Task, config: Config, inputs: dict, expected: dict) -> MeasureResult:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_main,
                           args=(os.getpid(), child, task, config, inputs, expected, self.policy))
        proc.start()
        child.close()
        try:
            if parent.poll(self.timeout):
                error, message, costs = parent.recv()
                return MeasureResult(config, costs, error, message)
            return MeasureResult(config, error=ErrorCode.TIMEOUT, message=f"no result within {self.timeout} s")
        except EOFError:
            proc.join()
            return MeasureResult(config, error=ErrorCode.RUNTIME_ERROR,
                                 message=f"the measuring process died (exit code {proc.exitcode})")
        finally:
            if proc.is_alive():
                proc.kill()
            proc.join()
            parent.close()


class FakeRunner(Runner):
    """A runner with a known cost surface: for fast, hardware-free tests of search and model."""

    def __init__(self, cost: Callable[[Config], float], parallelism: int = 2, noise: float = 0.0, seed: int = 0,
                 failing: Callable[[Config], str | None] | None = None):
        self.cost, self.parallelism, self.noise = cost, parallelism, noise
        self.failing = failing
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def measure(self, task: Task, configs: list[Config],
                on_result: Callable[[MeasureResult], None] | None = None) -> list[MeasureResult]:
        out = []
        for config in configs:
            self.calls += 1
            error = self.failing(config) if self.failing else None
            if error:
                result = MeasureResult(config, error=error, message="fake failure")
            else:
                base = self.cost(config)
                result = MeasureResult(config, [base * (1 + self.noise * self.rng.standard_normal()) for _ in range(3)])
            out.append(result)
            if on_result:
                on_result(result)
        return out

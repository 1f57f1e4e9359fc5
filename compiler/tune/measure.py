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
import platform
import signal
import socket
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tosac.errors import NoMeasuringMachineError, TuningError, UnpredictableError
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run
from tosac.pipeline.driver import compile as compile_graph
from tosac.pipeline.tasks import Task, runnable_classes, target_class
from tosac.pipeline.tuning_log import ErrorCode, Measured, median
from tosac.runtime import objects
from tosac.schedules.space import Config
from tosac.targets import Target


@dataclass
class MeasureResult(Measured):
    config: Config
    costs: list[float] = field(default_factory=list)     # seconds per run
    error: str = ErrorCode.NO_ERROR
    message: str = ""
    worker: dict = field(default_factory=dict)           # where it was measured: host name, CPU (see worker_info)


class Runner(abc.ABC):
    """Measures configs of a task; ``parallelism`` says how many candidates a batch should hold."""
    parallelism: int = 1

    def check_target(self, target: Target) -> None:
        """Raise ``NoMeasuringMachineError`` unless this runner can time ``target``'s code natively."""

    def describe(self) -> str:
        """Where measurements run, for progress lines."""
        return "measuring here"

    @abc.abstractmethod
    def measure(self, task: Task, configs: list[Config],
                on_result: Callable[[MeasureResult], None] | None = None) -> list[MeasureResult]:
        """Results in the order of ``configs``; ``on_result`` is called as soon as each one is known
        (the job logs it at once, so a killed job loses no finished trial)."""

    def compare(self, task: Task, configs: list[Config], rounds: int) -> list[MeasureResult]:
        """``configs`` measured against each other on one machine, interleaved: ``rounds`` rounds, each timing
        every config once (in a rotated order); a result's ``costs`` are its per-round times."""
        return self.measure(task, configs)


@dataclass
class MeasurePolicy:
    warmup: int = 2
    min_repeats: int = 5
    min_seconds: float = 0.05
    sample_seconds: float = 1e-3        # a sample averages enough runs to last this long (small kernels)
    flush_cache: bool = False


def worker_info() -> dict:
    """The machine a measurement was taken on, for its log record: host name and CPU."""
    import llvmlite.binding as llvm

    cpu = llvm.get_host_cpu_name()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
        cpu = f"{model} ({cpu})" if model else cpu
    except OSError:
        pass
    return {"host": socket.gethostname(), "cpu": cpu}


def check_runs_here(target: Target) -> None:
    """Refuse to time ``target`` on this machine unless it runs the target's code natively."""
    klass = target_class(target)
    if klass not in runnable_classes():
        raise NoMeasuringMachineError(
            f"cannot tune for target '{target.name}' (class {klass}) on this machine ({platform.machine()}, "
            f"classes {', '.join(runnable_classes())}): its code would run under an emulator, and emulator "
            f"times are not measurements. Attach a machine of that class: on it run 'tosac worker --connect "
            f"HEAD:6379' (after 'tosac worker --head' here), then tune with --cluster auto")


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


def build(task: Task, config: Config) -> tuple[str, dict[str, bytes]]:
    """Compile one candidate: (an error message or '', the object code it consists of, by cache key)."""
    try:
        with objects.recorded() as code:
            compile_graph(task.graph, task.target, {task.builder().name: config})
    except Exception as e:  # any failure of a candidate is data, not the end of the job
        return f"{type(e).__name__}: {e}", {}
    return "", code


def _build_error(task: Task, config: Config) -> str:
    return build(task, config)[0]


def _checked(task: Task, config: Config, inputs: dict, expected: dict):
    """The candidate's executable, or the reason it may not be timed (its outputs differ from the reference)."""
    exe = compile_graph(task.graph, task.target, {task.builder().name: config})
    got = exe.run(inputs)
    for name, want in expected.items():
        if got[name].dtype != want.dtype or not np.array_equal(got[name], want):
            return None, f"output '{name}' differs from the reference interpreter"
    return exe, ""


def _runs_per_sample(exe, inputs: dict, policy: MeasurePolicy) -> int:
    once = exe.time_runs(inputs, max(policy.warmup, 1))
    return 1 if policy.flush_cache else max(1, int(policy.sample_seconds / max(once, 1e-9)))


def _measure_child(conn, task: Task, config: Config, inputs: dict, expected: dict, policy: MeasurePolicy) -> None:
    try:
        exe, wrong = _checked(task, config, inputs, expected)
        if exe is None:
            conn.send((ErrorCode.WRONG_ANSWER, wrong, []))
            return
        flush = np.zeros(64 << 20, np.uint8) if policy.flush_cache else None
        number = _runs_per_sample(exe, inputs, policy)
        costs: list[float] = []
        while len(costs) < policy.min_repeats or sum(costs) * number < policy.min_seconds:
            if flush is not None:
                flush += 1
            costs.append(exe.time_runs(inputs, number))
        conn.send((ErrorCode.NO_ERROR, "", costs))
    except Exception as e:
        conn.send((ErrorCode.RUNTIME_ERROR, f"{type(e).__name__}: {e}", []))


def _compare_child(conn, task: Task, configs: list[Config], inputs: dict, expected: dict, policy: MeasurePolicy,
                   rounds: int) -> None:
    """Every config timed once per round, in an order rotated and reversed from round to round, so that
    drift of the machine (another tenant, the clock) falls on all of them alike."""
    try:
        outcome = []                          # per config: (error, message, executable, runs per sample)
        for config in configs:
            try:
                exe, wrong = _checked(task, config, inputs, expected)
                outcome.append((ErrorCode.WRONG_ANSWER, wrong, None, 0) if exe is None
                               else (ErrorCode.NO_ERROR, "", exe, _runs_per_sample(exe, inputs, policy)))
            except Exception as e:
                outcome.append((ErrorCode.RUNTIME_ERROR, f"{type(e).__name__}: {e}", None, 0))
        costs: list[list[float]] = [[] for _ in configs]
        for r in range(rounds):
            order = [(i + r) % len(configs) for i in range(len(configs))]
            for i in (order if r % 2 == 0 else order[::-1]):
                _, _, exe, number = outcome[i]
                if exe is not None:
                    costs[i].append(median(exe.time_runs(inputs, number) for _ in range(policy.min_repeats)))
        conn.send([(error, message, c) for (error, message, _, _), c in zip(outcome, costs)])
    except Exception as e:
        conn.send([(ErrorCode.RUNTIME_ERROR, f"{type(e).__name__}: {e}", [])] * len(configs))


def _child_main(parent: int, conn, work, *args) -> None:
    """The measuring child: bound to its parent's life first, then ``work``."""
    _die_with_parent(parent)
    work(conn, *args)


def _in_child(work, args: tuple, timeout: float):
    """``work(conn, *args)`` in a forked child: what it sent, or a (error, message) when it hung or died."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(os.getpid(), child, work, *args))
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            return parent.recv()
        return ErrorCode.TIMEOUT, f"no result within {timeout:g} s"
    except EOFError:
        proc.join()
        return ErrorCode.RUNTIME_ERROR, f"the measuring process died (exit code {proc.exitcode})"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()


def measure_here(task: Task, config: Config, inputs: dict, expected: dict, policy: MeasurePolicy,
                 timeout: float) -> MeasureResult:
    """One candidate checked and timed alone in a forked child of this process (see the module docstring)."""
    error, message, *costs = _in_child(_measure_child, (task, config, inputs, expected, policy), timeout)
    return MeasureResult(config, costs[0] if costs else [], error, message, worker_info())


def compare_here(task: Task, configs: list[Config], inputs: dict, expected: dict, policy: MeasurePolicy,
                 rounds: int, timeout: float) -> list[MeasureResult]:
    """``configs`` timed against each other in interleaved rounds, in one forked child of this process."""
    got = _in_child(_compare_child, (task, configs, inputs, expected, policy, rounds), timeout * len(configs))
    here = worker_info()
    if isinstance(got, tuple):                      # the child hung or died: no config has a time
        return [MeasureResult(c, [], *got, worker=here) for c in configs]
    return [MeasureResult(c, costs, error, message, here) for c, (error, message, costs) in zip(configs, got)]


def reference_data(task: Task, seed: int) -> tuple[dict, dict]:
    """Seeded inputs of ``task`` whose reference result is defined, and that result: what a candidate must give
    (full range first, then narrower wide-integer ranges)."""
    for attempt, narrow_bits in enumerate((0, 0, 24, 16, 12, 8)):
        inputs = random_inputs(task.graph.input_types(), seed + attempt, narrow_bits)
        try:
            return inputs, run(task.graph, inputs)
        except UnpredictableError:
            continue
    raise TuningError(f"task {task.pattern}: no seeded inputs give a defined reference result")


class LocalRunner(Runner):
    """Build in a process pool, measure each candidate alone in a forked child (see the module docstring)."""

    def __init__(self, jobs: int = 2, timeout: float = 20.0, policy: MeasurePolicy | None = None, seed: int = 0):
        self.parallelism = max(1, jobs)
        self.timeout = timeout
        self.policy = policy or MeasurePolicy()
        self.seed = seed
        self._reference: dict[str, tuple[dict, dict]] = {}

    def check_target(self, target: Target) -> None:
        check_runs_here(target)

    def _inputs_and_expected(self, task: Task) -> tuple[dict, dict]:
        if task.key not in self._reference:
            self._reference[task.key] = reference_data(task, self.seed)
        return self._reference[task.key]

    def measure(self, task: Task, configs: list[Config],
                on_result: Callable[[MeasureResult], None] | None = None) -> list[MeasureResult]:
        inputs, expected = self._inputs_and_expected(task)
        if self.parallelism > 1 and len(configs) > 1:
            with ProcessPoolExecutor(max_workers=self.parallelism, mp_context=mp.get_context("fork"),
                                     initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
                build_errors = list(pool.map(_build_error, [task] * len(configs), configs))
        else:
            build_errors = [_build_error(task, c) for c in configs]
        results = []
        for config, error in zip(configs, build_errors):
            if error:
                result = MeasureResult(config, error=ErrorCode.COMPILE_ERROR, message=error, worker=worker_info())
            else:
                result = measure_here(task, config, inputs, expected, self.policy, self.timeout)
            results.append(result)
            if on_result:
                on_result(result)
        return results

    def compare(self, task: Task, configs: list[Config], rounds: int) -> list[MeasureResult]:
        inputs, expected = self._inputs_and_expected(task)
        return compare_here(task, configs, inputs, expected, self.policy, rounds, self.timeout)


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

"""Tuning on a Ray cluster: candidates compile on any node; each is timed on a worker of the task's target class.

Every machine that joins (``tosac worker``) advertises, as Ray custom
resources, the target classes it runs natively (``tosac/x86_64/avx512vnni/512``,
from its own host detection), one unit per core it lends. A measurement asks
for one unit of its task's class and one CPU, so a task is only ever timed on
a CPU of its class, at most one measurement runs per core, and a build (one
CPU, any node: LLVM cross-compiles) never shares a core with a timing. The
built object code travels with the candidate, so the measuring node does not
run LLVM again. On the worker the candidate is checked and timed exactly as
``LocalRunner`` does it, in a forked child (``measure_here``).

Records: the driver appends each result to the one log the moment it arrives
(same append + fsync discipline), with the worker's host name and CPU. A
worker lost mid-batch: Ray runs its tasks again on another worker of the
class (``retries``); a trial that still has no result is recorded as
``WORKER_LOST`` — never lost, never recorded twice — and when no worker of
the class is left the job stops with ``NoMeasuringMachineError``, its log
complete, ready to resume. A killed driver: the log holds every finished
trial and the same command resumes (a ``local:N`` cluster dies with it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable

from tosac.errors import NoMeasuringMachineError, TosacError
from tosac.pipeline.tasks import Task, runnable_classes, target_class
from tosac.pipeline.tuning_log import ErrorCode
from tosac.runtime import objects
from tosac.schedules.space import Config
from tosac.targets import Target
from tosac.tune.measure import (MeasurePolicy, MeasureResult, Runner, build, compare_here, measure_here,
                                reference_data, worker_info)

RESOURCE_PREFIX = "tosac/"
#: How long the driver waits, once no worker of a task's class is left, before it gives up (a worker may be
#: restarting or joining).
LOST_GRACE_SECONDS = 30.0


def class_resource(klass: str) -> str:
    """The Ray custom resource a worker of target class ``klass`` advertises."""
    return RESOURCE_PREFIX + klass


def worker_resources(cores: int, classes: list[str] | None = None) -> dict[str, float]:
    """What a worker lending ``cores`` cores advertises: ``cores`` units of each class it runs natively."""
    return {class_resource(k): float(cores) for k in (classes or runnable_classes())}


def _ray():
    try:
        import ray
    except ImportError:
        raise TosacError("tuning on a cluster needs Ray: pip install 'tosac[cluster]'") from None
    return ray


def connect(cluster: str) -> None:
    """Join the cluster named by ``cluster`` as its driver (once per process).

    ``local:N``: start a private Ray instance on this machine with N worker slots advertising this host's
    classes (it dies with this process). ``auto``: the running cluster this machine belongs to (``tosac worker
    --head`` or ``--connect``; or ``$RAY_ADDRESS``). ``ray://HOST:PORT``: a remote cluster through Ray Client.
    """
    ray = _ray()
    if ray.is_initialized():
        return
    quiet = dict(logging_level="ERROR", log_to_driver=False, configure_logging=True)
    if cluster.startswith("local:"):
        try:
            n = int(cluster[len("local:"):])
            if n < 1:
                raise ValueError
        except ValueError:
            raise TosacError(f"--cluster '{cluster}': expected local:N with N >= 1 worker slots") from None
        try:                           # address "local": a new instance, even where a cluster runs
            ray.init(address="local", num_cpus=n, resources=worker_resources(n), include_dashboard=False,
                     object_store_memory=128 << 20, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise TosacError(f"--cluster {cluster}: cannot start a local Ray instance ({str(exc)[:300]})") from None
    elif cluster == "auto" or cluster.startswith("ray://"):
        try:
            ray.init(address=cluster, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise TosacError(f"--cluster {cluster}: cannot connect to a Ray cluster ({str(exc)[:300]}); start one "
                             "with 'tosac worker --head' or give ray://HOST:PORT") from None
    else:
        raise TosacError(f"--cluster '{cluster}': expected auto, ray://HOST:PORT or local:N")


def _measure_task(data, config: Config, built: tuple[str, dict], policy: MeasurePolicy,
                  timeout: float) -> MeasureResult:
    """On a worker of the task's class: the candidate built elsewhere, checked and timed here."""
    task, inputs, expected = data
    error, code = built
    if error:
        return MeasureResult(config, error=ErrorCode.COMPILE_ERROR, message=error, worker=_where())
    objects.preload(code)
    result = measure_here(task, config, inputs, expected, policy, timeout)
    result.worker = _where()
    return result


def _compare_task(data, configs: list[Config], policy: MeasurePolicy, rounds: int,
                  timeout: float) -> list[MeasureResult]:
    task, inputs, expected = data
    results = compare_here(task, configs, inputs, expected, policy, rounds, timeout)
    for r in results:
        r.worker = _where()
    return results


def _where() -> dict:
    """``worker_info`` plus the Ray node, so records say which worker of a host measured them."""
    import ray

    return {**worker_info(), "node": ray.get_runtime_context().get_node_id()[:16]}


class RayRunner(Runner):
    """Builds on any node of a Ray cluster, measures on workers of the task's class (see the module docstring)."""

    def __init__(self, cluster: str = "auto", timeout: float = 20.0, policy: MeasurePolicy | None = None,
                 seed: int = 0, retries: int = 2):
        connect(cluster)
        self.ray = _ray()
        self.cluster, self.timeout, self.seed, self.retries = cluster, timeout, seed, retries
        self.policy = policy or MeasurePolicy()
        self._data: dict[str, object] = {}              # task key -> object ref of (task, inputs, expected)
        self._workers = 0
        remote = self.ray.remote
        self._build = remote(build).options(num_cpus=1, max_retries=retries)
        self._measure = remote(_measure_task)
        self._compare = remote(_compare_task)

    def _slots(self, target: Target) -> float:
        return self.ray.cluster_resources().get(class_resource(target_class(target)), 0.0)

    def check_target(self, target: Target) -> None:
        klass = target_class(target)
        slots = self._slots(target)
        if slots < 1:
            raise NoMeasuringMachineError(
                f"no worker of the cluster ({self.cluster}) runs target '{target.name}' (class {klass}) natively, "
                f"and emulator times are not measurements. Attach one: on a machine of that class, with tosac "
                f"installed, run 'tosac worker --connect {self._address()}'" + (
                    "; a local:N cluster has only this machine: start a shared one with 'tosac worker --head' "
                    "and tune with --cluster auto" if self.cluster.startswith("local:") else ""))
        self.parallelism = int(slots)
        self._workers = sum(1 for node in self.ray.nodes()
                            if node.get("Alive") and node.get("Resources", {}).get(class_resource(klass)))

    def describe(self) -> str:
        return f"{self._workers} worker{'s' if self._workers != 1 else ''}, {self.parallelism} measuring"

    def _address(self) -> str:
        try:
            return self.ray.get_runtime_context().gcs_address
        except Exception:
            return "HEAD:6379"

    def _task_data(self, task: Task):
        if task.key not in self._data:
            self._data[task.key] = self.ray.put((task, *reference_data(task, self.seed)))
        return self._data[task.key]

    def _on_class(self, target: Target) -> dict:
        return dict(num_cpus=1, resources={class_resource(target_class(target)): 1}, max_retries=self.retries)

    def measure(self, task: Task, configs: list[Config],
                on_result: Callable[[MeasureResult], None] | None = None) -> list[MeasureResult]:
        data = self._task_data(task)
        placement = self._on_class(task.target)
        pending = {self._measure.options(**placement).remote(data, config, self._build.remote(task, config),
                                                             self.policy, self.timeout): i
                   for i, config in enumerate(configs)}
        results: list[MeasureResult | None] = [None] * len(configs)
        for ref, result in self._as_completed(pending, task.target):
            i = pending[ref]
            if not isinstance(result, MeasureResult):
                result = MeasureResult(configs[i], error=ErrorCode.WORKER_LOST, message=result)
            results[i] = result
            if on_result:
                on_result(result)
        return results

    def compare(self, task: Task, configs: list[Config], rounds: int) -> list[MeasureResult]:
        ref = self._compare.options(**self._on_class(task.target)).remote(
            self._task_data(task), configs, self.policy, rounds, self.timeout)
        for _, result in self._as_completed({ref: 0}, task.target):
            if isinstance(result, list):
                return result
            return [MeasureResult(c, error=ErrorCode.WORKER_LOST, message=result) for c in configs]
        return []

    def _as_completed(self, pending: dict, target: Target):
        """(ref, its value — or why it has none) as each finishes; stops the job when no worker of the
        target's class has been left for ``LOST_GRACE_SECONDS``."""
        waiting, lost_since = list(pending), None
        while waiting:
            ready, waiting = self.ray.wait(waiting, num_returns=1, timeout=2.0)
            for ref in ready:
                try:
                    yield ref, self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:
                    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    yield ref, f"the worker was lost ({type(exc).__name__}: {first_line[:200]})"
            if ready or self._slots(target) >= 1:
                lost_since = None
            elif lost_since is None:
                lost_since = time.monotonic()
            elif time.monotonic() - lost_since > LOST_GRACE_SECONDS:
                for ref in waiting:
                    self.ray.cancel(ref, force=True)
                raise NoMeasuringMachineError(
                    f"no worker of class {target_class(target)} is left in the cluster; every finished trial is "
                    f"in the log: attach a worker ('tosac worker --connect {self._address()}') and run the same "
                    "command again to resume")


def start_worker(connect_to: str | None, head: bool, port: int, cores: int | None, block: bool = True) -> int:
    """``ray start`` for this machine, advertising the target classes it runs natively (``tosac worker``)."""
    _ray()
    cores = cores or len(os.sched_getaffinity(0))
    resources = worker_resources(cores)
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", f"--num-cpus={cores}",
               f"--resources={json.dumps(resources)}"]
    if head:
        command += ["--head", f"--port={port}", "--include-dashboard=false"]
    elif connect_to:
        command += [f"--address={connect_to}"]
    else:
        raise TosacError("tosac worker: give --connect HOST:PORT (join a cluster) or --head (start one)")
    if block:
        command.append("--block")
    print(f"advertising {', '.join(resources)} ({cores} measuring slot{'s' if cores != 1 else ''})", flush=True)
    return subprocess.call(command)

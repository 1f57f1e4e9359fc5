"""Tuning on a Ray cluster: a local cluster of worker nodes on this machine (small object stores).

Each test adds the worker nodes it needs, advertising the target classes it
chooses, and removes them after; the driver (this process) stays connected to
one head node that runs nothing. Skipped where Ray is not installed (the
'cluster' extra), a failure under CI.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tosac
from tosac.errors import NoMeasuringMachineError
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run
from tosac.pipeline.tasks import target_class
from tosac.targets import get_target
from tosac.tune import ErrorCode, TuningLog, tune
from tosac.tune.cluster import RayRunner, worker_resources

STORE = 80 << 20          # bytes of object store per node: candidates are small


def _matmul(n: int = 64):
    g = GraphBuilder()
    a = g.input("a", DType.INT8, (1, 16, 64))
    g.output(g.matmul(a, g.const(np.random.default_rng(0).integers(-128, 128, (1, 64, n)).astype(np.int8)), a_zp=3))
    return g.build()


@pytest.fixture(scope="module")
def cluster(require_module):
    ray = require_module("ray", extra="cluster")
    from ray.cluster_utils import Cluster

    head = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": STORE,
        # a lost node is noticed within about a second, not Ray's default of tens of seconds
        "_system_config": {"health_check_period_ms": 300, "health_check_failure_threshold": 3}})
    ray.init(address=head.address, logging_level="ERROR", log_to_driver=False)
    yield head
    ray.shutdown()
    head.shutdown()


class _Workers:
    """Worker nodes of the test cluster, each with one core and the classes given; removed on exit."""

    def __init__(self, cluster, *classes: list[str]):
        self.cluster = cluster
        self.nodes = [cluster.add_node(num_cpus=1, resources=worker_resources(1, list(c)), object_store_memory=STORE)
                      for c in classes]
        cluster.wait_for_nodes()

    def ids(self) -> list[str]:
        return [n.node_id[:16] for n in self.nodes]

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, *exc) -> None:
        for node in self.nodes:
            if node in self.cluster.worker_nodes:
                self.cluster.remove_node(node, allow_graceful=True)


def _host_class() -> str:
    return target_class(get_target("host"))


def test_two_workers_tune_and_compile_uses_the_log(cluster, tmp_path):
    log = tmp_path / "ray.jsonl"
    graph = _matmul()
    with _Workers(cluster, [_host_class()], [_host_class()]) as workers:
        reports = tune(graph, "host", trials=8, log=log, tuner="random", seed=3, runner=RayRunner("auto"))
    records = TuningLog(log).records
    search = [r for r in records if r.tuner != "confirm"]
    assert len(search) == 8 and all(r.valid for r in records), [(r.error, r.error_message) for r in records]
    assert {r.worker["node"] for r in search} == set(workers.ids())           # both workers measured
    assert all(r.worker["host"] and r.worker["cpu"] for r in records)
    confirm = [r for r in records if r.tuner == "confirm"]
    assert len({r.worker["node"] for r in confirm}) == 1 and len({r.group for r in confirm}) == 1
    assert reports[0].best_config is not None
    exe = tosac.compile(graph, "host", tuning_log=log)
    inputs = random_inputs(graph.input_types(), 0)
    assert all(np.array_equal(exe.run(inputs)[k], v) for k, v in run(graph, inputs).items())


def test_a_task_is_measured_only_on_a_worker_of_its_class(cluster, tmp_path):
    other = target_class(get_target("x86_64"))
    if _host_class() == other or not get_target("host").arch == "x86_64":
        pytest.skip(f"needs an x86-64 host of a class other than {other} (this one: {_host_class()})")
    log = tmp_path / "classes.jsonl"
    with _Workers(cluster, [_host_class()], [other]) as workers:
        runner = RayRunner("auto")
        tune(_matmul(), "host", trials=4, log=log, tuner="random", seed=1, runner=runner)
        tune(_matmul(), "x86_64", trials=4, log=log, tuner="random", seed=1, runner=runner)
    by_class: dict[str, set[str]] = {}
    for r in TuningLog(log).records:
        by_class.setdefault(r.target["class"], set()).add(r.worker["node"])
    host_node, other_node = workers.ids()
    assert by_class == {_host_class(): {host_node}, other: {other_node}}


def test_losing_a_worker_mid_job_loses_and_repeats_no_trial(cluster, tmp_path):
    log = tmp_path / "lost.jsonl"
    trials = 16
    with _Workers(cluster, [_host_class()], [_host_class()]) as workers:
        runner = RayRunner("auto")
        job = threading.Thread(target=tune, args=(_matmul(), "host"),
                               kwargs=dict(trials=trials, log=log, tuner="random", seed=2, runner=runner))
        job.start()
        deadline = time.time() + 120
        while time.time() < deadline and (not log.exists() or log.read_text().count("\n") < 3):
            time.sleep(0.05)
        before = log.read_text().count("\n")
        cluster.remove_node(workers.nodes[0], allow_graceful=False)             # a crash, mid-batch
        job.join(timeout=300)
        assert not job.is_alive()
    records = TuningLog(log).records
    search = [r for r in records if r.tuner != "confirm"]
    print(f"records before the worker was lost: {before}; after the job: {len(records)} "
          f"({len(search)} search trials, {sum(r.error == ErrorCode.WORKER_LOST for r in search)} lost)")
    assert before < trials
    assert len(search) == trials                                            # none lost
    assert len({json.dumps(r.config, sort_keys=True) for r in search}) == trials   # none twice
    assert all(r.valid or r.error == ErrorCode.WORKER_LOST for r in records)
    survivor = workers.ids()[1]
    assert all(r.worker.get("node") == survivor for r in records[before + 2:] if r.worker)
    assert any(r.tuner == "confirm" and r.valid for r in records)


def test_a_target_without_a_worker_is_refused(cluster, tmp_path):
    with pytest.raises(NoMeasuringMachineError, match=r"aarch64/none/128.*tosac worker --connect"):
        tune(_matmul(), "aarch64", trials=2, log=tmp_path / "arm.jsonl", runner=RayRunner("auto"))
    assert not (tmp_path / "arm.jsonl").exists()


def test_cli_refuses_an_arm_target_on_a_local_cluster(cluster, tmp_path):
    done = subprocess.run([sys.executable, "-m", "tosac.app.cli", "tune", "ad", "--target", "aarch64", "--trials",
                           "2", "--cluster", "local:1", "--log", str(tmp_path / "a.jsonl")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "class aarch64/none/128" in done.stderr and "emulator" in done.stderr
    assert "Traceback" not in done.stderr

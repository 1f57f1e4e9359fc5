"""Hostile tuning logs and tuning jobs: malformed records, configs outside the template's knob space and
impossible costs are skipped with one warning naming the log and line (never a traceback, never the winner);
a `tosac tune` killed with SIGKILL leaves no measuring child behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import tosac
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.pipeline.tuning_log import Record, TuningLog, target_info
from tosac.tune import FakeRunner, extract_tasks, tune_task


def _matmul():
    g = GraphBuilder()
    a = g.input("a", DType.INT8, (1, 16, 64))
    w = np.random.default_rng(0).integers(-128, 128, (1, 64, 64)).astype(np.int8)
    g.output(g.matmul(a, g.const(w), a_zp=3))
    return g.build()


@pytest.fixture(scope="module")
def task():
    (task,) = extract_tasks(_matmul(), "host")
    return task


def _good(task, config: dict, cost: float) -> dict:
    return json.loads(json.dumps(Record(task.key, task.pattern, config, [cost], target=target_info(task.target),
                                        tuner="confirm").__dict__))


def _write(path: Path, lines: list) -> None:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


def _read(path: Path) -> tuple[TuningLog, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = TuningLog(path)
    return log, [str(w.message) for w in caught]


def test_malformed_records_are_skipped_with_one_warning_each(tmp_path, task):
    good = _good(task, task.space.default, 1e-3)
    bad = [{**good, "costs": "abc"}, {**good, "costs": 5}, {**good, "costs": [None]}, {**good, "config": [1, 2]},
           {**good, "config": "mr=6"}, {**good, "target": None}, "[" * 100_000 + "]" * 100_000,
           {**good, "task": 7}, {**good, "config": {"mr": 6.0}}, {**good, "config": {"mr": True}},
           {**good, "seed": "x"}]
    path = tmp_path / "bad.jsonl"
    _write(path, [good] + bad + [good])
    log, messages = _read(path)
    assert len(log.records) == 2
    for number in range(2, 2 + len(bad)):
        assert sum(f"{path}:{number}:" in m for m in messages) == 1, (number, messages)
    assert log.best(task.key).config == task.space.default


@pytest.mark.parametrize("costs", ["[0]", "[-1]", "[NaN]", "[Infinity]", "[-Infinity]", "[1e-3, 0]"])
def test_impossible_costs_never_win(tmp_path, task, costs):
    real = _good(task, task.space.default, 1e-3)
    liar = json.dumps({**real, "config": {**task.space.default, "threads": 2}, "costs": "COSTS"}).replace(
        '"COSTS"', costs)
    path = tmp_path / "liar.jsonl"
    _write(path, [real, liar])
    log, messages = _read(path)
    assert any(f"{path}:2:" in m for m in messages), messages
    assert log.best(task.key).config == task.space.default


@pytest.mark.parametrize("config", [{"mr": 0}, {"no_such_knob": 1}, {"mr": "6"}, {"threads": 1000000}],
                         ids=["mr-0", "unknown-knob", "string-value", "threads-1e6"])
def test_configs_outside_the_knob_space_are_skipped_by_compile(tmp_path, task, config):
    """The faster record has an invalid config: compile warns (naming log and line) and uses the valid one."""
    good = {**task.space.default, "threads": 2}
    path = tmp_path / "configs.jsonl"
    _write(path, [_good(task, good, 1e-3), _good(task, {**task.space.default, **config}, 1e-6)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exe = tosac.compile(_matmul(), "host", tuning_log=path)
    messages = [str(w.message) for w in caught]
    assert sum(f"{path}:2:" in m for m in messages) == 1, messages
    (kernel,) = exe.program.info["kernels"]
    assert kernel.config == good


def test_threads_1e6_as_a_float_is_skipped(tmp_path, task):
    path = tmp_path / "float.jsonl"
    _write(path, [_good(task, task.space.default, 1e-3),
                  json.dumps(_good(task, {"threads": 7}, 1e-6)).replace('"threads": 7', '"threads": 1e6')])
    log, messages = _read(path)
    assert len(log.records) == 1 and any(f"{path}:2:" in m for m in messages)


def test_tune_report_and_resume_survive_a_hostile_log(tmp_path, task, capsys):
    from tosac.app.cli import main

    good = _good(task, task.space.default, 1e-3)
    path = tmp_path / "hostile.jsonl"
    _write(path, [good, {**good, "costs": "abc"}, {**good, "target": None}, {**good, "costs": [0]},
                  _good(task, {"mr": 0}, 1e-9), "[" * 100_000, {**good, "config": "x"}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["tune", "report", str(path)]) == 0
        assert task.pattern[:20] in capsys.readouterr().out
        report = tune_task(task, 4, TuningLog(path), "random", 0, FakeRunner(lambda c: 1.0 + c["mr"]),
                           finalists=0)
    assert report.best_config is not None and report.best_config.get("mr") != 0


# ---------------------------------------------------------------------------------------------- kill -9
_JOB = """
import sys, time, numpy as np
import tosac.tune.measure as measure
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.tune import tune

def slow_child(conn, *args):            # a measurement that takes long: the job is killed during it
    print("measuring", flush=True)
    time.sleep(60)
    conn.send(("NO_ERROR", "", [1.0]))

measure._measure_child = slow_child
g = GraphBuilder()
a = g.input("a", DType.INT8, (1, 8, 16))
g.output(g.matmul(a, g.const(np.ones((1, 16, 16), np.int8)), a_zp=0))
tune(g.build(), "host", trials=2, log=sys.argv[1], tuner="random", seed=1, jobs=1, timeout=120)
"""


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``, or that ``pid`` started and that were reparented (by session)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, ppid, session = fields[0], int(fields[1]), int(fields[3])
        if state != "Z" and (ppid == pid or session == pid) and int(entry) != pid:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_minus_nine_of_a_tune_job_leaves_no_measuring_child(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(_JOB)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "log.jsonl")], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)       # its own session: children are findable
    try:
        assert proc.stdout.readline().strip() == "measuring"
        assert _children(proc.pid), "the measuring child should be running"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while _children(proc.pid) and time.time() < deadline:
            time.sleep(0.05)
        left = _children(proc.pid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes {left} of the killed tune job are still alive"
    finally:
        if proc.poll() is None:
            proc.kill()

"""The autotuner: search quality on a known surface, reproducibility, logs, resume, real measurement."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import tosac
from tosac.errors import TuningError
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.tune import (ErrorCode, FakeRunner, LocalRunner, MeasurePolicy, TuningLog, extract_tasks, tune,
                        tune_task)
from tosac.pipeline.tuning_log import Record, best_of, read_records
from tosac.tune.measure import MeasureResult


def _matmul(m: int = 16, k: int = 64, n: int = 64):
    g = GraphBuilder()
    a = g.input("a", DType.INT8, (1, m, k))
    w = np.random.default_rng(0).integers(-128, 128, (1, k, n)).astype(np.int8)
    g.output(g.matmul(a, g.const(w), a_zp=3))
    return g.build()


def _synthetic_cost(config) -> float:
    """Optimum far from the default: avx2, mr 3, 8 vectors, mn order, unroll 4, 2 threads (cost 1.0)."""
    return (1 + 0.15 * (config["mr"] - 3) ** 2 + 0.1 * (config["nr_vectors"] - 8) ** 2
            + {"vnni": 2, "avx2": 0, "portable": 5}[config["kind"]] + (0.5 if config["order"] == "nm" else 0)
            + 0.3 * abs(config["unroll_k"] - 4) + (0 if config["threads"] == 2 else 1.0))


@pytest.fixture(scope="module")
def dense_task():
    (task,) = extract_tasks(_matmul(64, 256, 256), "x86_64-avx512vnni")
    return task


def test_extract_tasks_dedupes_and_weights():
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 8, 8, 8))
    rng = np.random.default_rng(1)
    for _ in range(3):                                    # three identical conv layers, different weights
        x = g.clamp(g.rescale(g.conv2d(x, g.const(rng.integers(-128, 128, (8, 3, 3, 8)).astype(np.int8)),
                                       pad=(1, 1, 1, 1), input_zp=1), DType.INT8, multiplier=1 << 30, shift=40),
                    min_val=-128, max_val=127)
    g.output(g.reduce_max(x, axis=1))
    tasks = extract_tasks(g.build(), "host")
    assert [(t.pattern, t.weight) for t in tasks] == [("CONV2D+RESCALE+CLAMP", 3), ("REDUCE_MAX", 1)]
    assert len(tasks[0].kernel_names) == 3 and tasks[0].space.size > 100


def test_xgb_search_beats_random_on_a_known_surface(dense_task, tmp_path):
    optimum = min(_synthetic_cost(c) for c in dense_task.space)
    final = {}
    for tuner in ("xgb", "random"):
        final[tuner] = []
        for seed in range(3):
            report = tune_task(dense_task, 64, TuningLog(tmp_path / f"{tuner}{seed}.jsonl"), tuner, seed,
                               FakeRunner(_synthetic_cost))
            final[tuner].append(report.history[-1] / optimum)
    assert max(final["xgb"]) <= 1.25, final
    assert np.mean(final["xgb"]) < np.mean(final["random"]), final


def test_same_seed_same_proposals(dense_task, tmp_path):
    def proposals(path):
        tune_task(dense_task, 16, TuningLog(path), "xgb", 5, FakeRunner(_synthetic_cost))
        return [r.config for r in TuningLog(path).records]
    assert proposals(tmp_path / "a.jsonl") == proposals(tmp_path / "b.jsonl")
    other = tmp_path / "c.jsonl"
    tune_task(dense_task, 16, TuningLog(other), "xgb", 6, FakeRunner(_synthetic_cost))
    assert [r.config for r in TuningLog(other).records] != proposals(tmp_path / "d.jsonl")


def test_resume_measures_nothing_twice(dense_task, tmp_path):
    path = tmp_path / "log.jsonl"
    first = FakeRunner(_synthetic_cost)
    tune_task(dense_task, 10, TuningLog(path), "random", 0, first, finalists=0)
    second = FakeRunner(_synthetic_cost)
    report = tune_task(dense_task, 25, TuningLog(path), "random", 0, second, finalists=0)
    records = TuningLog(path).records
    assert len(records) == 25 and second.calls == 15 and report.trials == 25
    assert len({json.dumps(r.config, sort_keys=True) for r in records}) == 25


def test_finalists_and_default_are_measured_again(dense_task, tmp_path):
    path = tmp_path / "confirm.jsonl"
    report = tune_task(dense_task, 12, TuningLog(path), "random", 0, FakeRunner(_synthetic_cost), finalists=3)
    confirmed = [r for r in TuningLog(path).records if r.tuner == "confirm"]
    keys = {json.dumps(r.config, sort_keys=True) for r in confirmed}
    assert len(confirmed) == 4 and json.dumps(dense_task.space.default, sort_keys=True) in keys
    assert json.dumps(report.best_config, sort_keys=True) in keys


def test_failed_trials_are_logged_and_skipped(dense_task, tmp_path):
    runner = FakeRunner(_synthetic_cost, failing=lambda c: ErrorCode.WRONG_ANSWER if c["kind"] == "portable" else None)
    report = tune_task(dense_task, 20, TuningLog(tmp_path / "f.jsonl"), "random", 1, runner)
    records = TuningLog(tmp_path / "f.jsonl").records
    assert any(r.error == ErrorCode.WRONG_ANSWER and not r.costs for r in records)
    assert report.best_config["kind"] != "portable"


def test_corrupt_and_truncated_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "log.jsonl"
    log = TuningLog(path)
    for i in range(3):
        log.append(Record("t", "MATMUL", {"mr": i}, [1e-3 * (i + 1)]))
    with open(path, "a") as f:
        f.write('{"schema": 1, "task": "t", "pattern": "MAT')         # cut by a kill -9
    with pytest.warns(UserWarning, match="corrupt"):
        reloaded = TuningLog(path)
    assert [r.config for r in reloaded.records] == [{"mr": 0}, {"mr": 1}, {"mr": 2}]
    reloaded.append(Record("t", "MATMUL", {"mr": 9}, [5e-4]))               # appending after a cut line
    with pytest.warns(UserWarning):
        assert TuningLog(path).best("t").config == {"mr": 9}
    with open(path, "a") as f:
        f.write("not json at all\n[1, 2]\n")
    with pytest.warns(UserWarning):
        assert len(TuningLog(path).records) == 4


def test_one_median_policy_upper_median_of_an_even_count():
    for costs, want in [([4.0, 1.0, 3.0, 2.0], 3.0), ([5.0, 1.0, 3.0], 3.0), ([2.0], 2.0), ([], float("inf"))]:
        assert Record("t", "X", {}, costs).median == want
        assert MeasureResult({}, costs).median == want


def test_best_of_prefers_the_confirmed_remeasurement(tmp_path):
    log = TuningLog(tmp_path / "best.jsonl")
    log.append(Record("t", "X", {"c": "lucky"}, [1.0], tuner="xgb"))        # fastest search record, once
    log.append(Record("t", "X", {"c": "steady"}, [2.0], tuner="xgb"))
    log.append(Record("t", "X", {"c": "lucky"}, [3.0], tuner="confirm"))
    log.append(Record("t", "X", {"c": "steady"}, [2.5], tuner="confirm"))
    log.append(Record("t", "X", {"c": "broken"}, [], ErrorCode.TIMEOUT, tuner="confirm"))
    assert best_of(log.records).config == {"c": "steady"}
    assert log.best("t").config == TuningLog(log.path).best("t").config == {"c": "steady"}
    # without a valid confirmation all valid records count; a config measured thrice counts with its median
    search = [Record("t", "X", {"c": "a"}, [c]) for c in (1.0, 4.0, 5.0)] + [Record("t", "X", {"c": "b"}, [3.0])]
    assert best_of(search).config == {"c": "b"}
    assert best_of([Record("t", "X", {}, [], ErrorCode.TIMEOUT, tuner="confirm")]) is None


def test_a_challenger_replaces_the_default_only_beyond_the_spread(tmp_path):
    default = {"c": "default"}

    def confirmation(group: str, when: float, **costs: list[float]) -> list[Record]:
        return [Record("t", "X", {"c": name}, c, tuner="confirm", group=group, timestamp=when)
                for name, c in costs.items()]

    # 'close' has the lower median, but its rounds overlap the default's: the default stays
    close = confirmation("g1", 1.0, default=[1.00, 1.02, 0.97, 1.05, 0.99], close=[0.96, 1.01, 0.95, 0.98, 1.03])
    assert best_of(close, default).config == default
    assert best_of(close).config == {"c": "close"}                 # without a default: plain lowest median
    # 'fast' wins in every round by more than either spread; 'faster' too, and has the lowest median
    clear = confirmation("g2", 2.0, default=[1.00, 1.02, 0.97, 1.05, 0.99], fast=[0.80, 0.82, 0.79, 0.81, 0.85],
                         faster=[0.70, 0.71, 0.90, 0.72, 0.69])
    assert best_of(clear, default).config == {"c": "faster"}
    # the latest confirmation decides, whatever older ones said (whatever the order of the records)
    assert best_of(clear + close, default).config == best_of(close + clear, default).config == {"c": "faster"}
    later = confirmation("g3", 3.0, default=[1.0, 0.97, 1.03], close=[0.99, 0.96, 1.01])
    assert best_of(later + clear, default).config == default


def test_compare_times_every_config_in_every_round(dense_task):
    configs = [dense_task.space.default, {**dense_task.space.default, "mr": 2}]
    results = LocalRunner(policy=MeasurePolicy(min_repeats=2, sample_seconds=1e-4)).compare(dense_task, configs, 4)
    assert [r.config for r in results] == configs
    assert all(r.valid and len(r.costs) == 4 for r in results), [(r.error, r.message) for r in results]
    assert all(r.worker["host"] and r.worker["cpu"] for r in results)


def test_tuning_a_target_that_would_run_under_an_emulator_is_refused(tmp_path, capsys):
    from tosac.app.cli import main
    from tosac.errors import NoMeasuringMachineError

    with pytest.raises(NoMeasuringMachineError, match="emulator times are not measurements"):
        tune(_matmul(), "aarch64", trials=2, log=tmp_path / "arm.jsonl")
    assert not (tmp_path / "arm.jsonl").exists()
    assert main(["tune", "ad", "--target", "armv7", "--trials", "2", "--log", str(tmp_path / "a.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "armv7" in err and "tosac worker --connect" in err and "Traceback" not in err


def test_unknown_schema_is_refused(tmp_path):
    path = tmp_path / "future.jsonl"
    path.write_text(json.dumps({"schema": 99, "task": "t", "pattern": "X", "config": {}, "costs": []}) + "\n")
    with pytest.raises(TuningError, match="schema version 99"):
        TuningLog(path)


def test_real_tuning_end_to_end_and_compile_uses_the_best(tmp_path):
    graph = _matmul()
    log = tmp_path / "mm.jsonl"
    (report,) = tune(graph, "host", trials=6, log=log, seed=3, jobs=2)
    records = TuningLog(log).records
    search = [r for r in records if r.tuner != "confirm"]
    assert len(search) == 6 and all(r.valid for r in records), [r.error_message for r in records]
    assert all(r.target["class"] and r.seed and r.tosac_version for r in records)
    exe = tosac.compile(graph, "host", tuning_log=log)
    (kernel,) = exe.program.info["kernels"]
    assert kernel.config == report.best_config
    x = np.random.default_rng(0).integers(-128, 128, (1, 16, 64)).astype(np.int8)
    np.testing.assert_array_equal(exe.run({"a": x})[graph.outputs[0]], run(graph, {"a": x})[graph.outputs[0]])


def test_local_runner_classifies_failures(tmp_path, monkeypatch):
    (task,) = extract_tasks(_matmul(), "host")
    default = task.space.default
    (timed_out,) = LocalRunner(jobs=1, timeout=1e-4).measure(task, [default])
    assert timed_out.error == ErrorCode.TIMEOUT
    runner = LocalRunner(jobs=1, policy=MeasurePolicy(min_repeats=2, min_seconds=0))
    inputs, expected = runner._inputs_and_expected(task)
    wrong = {k: v + 1 for k, v in expected.items()}
    monkeypatch.setattr(runner, "_inputs_and_expected", lambda t: (inputs, wrong))
    (bad,) = runner.measure(task, [default])
    assert bad.error == ErrorCode.WRONG_ANSWER and not bad.costs
    import tosac.tune.measure as measure
    def crash(*args):
        import faulthandler
        faulthandler.disable()                             # a quiet crash: no traceback in the test output
        os.kill(os.getpid(), signal.SIGSEGV)
    monkeypatch.setattr(measure, "_measure_child", crash)
    (crashed,) = runner.measure(task, [default])
    assert crashed.error == ErrorCode.RUNTIME_ERROR


def test_compile_warns_once_about_untuned_kernels(tmp_path):
    log = tmp_path / "empty.jsonl"
    log.write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tosac.compile(_matmul(), "host", tuning_log=log)
    assert sum("no tuning record" in str(w.message) for w in caught) == 1


_KILL_SCRIPT = """
import sys, numpy as np
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.tune import tune
g = GraphBuilder()
a = g.input("a", DType.INT8, (1, 16, 64))
g.output(g.matmul(a, g.const(np.random.default_rng(0).integers(-128, 128, (1, 64, 64)).astype(np.int8)), a_zp=3))
runner = None
if len(sys.argv) > 3:
    from tosac.tune.cluster import RayRunner
    runner = RayRunner(sys.argv[3])
tune(g.build(), "host", trials=int(sys.argv[2]), log=sys.argv[1], tuner="random", seed=1, jobs=1, runner=runner)
"""


@pytest.mark.parametrize("cluster", [None, "local:2"], ids=["local-runner", "ray-runner"])
def test_kill_minus_nine_and_resume(tmp_path, cluster, require_module):
    if cluster:
        require_module("ray", extra="cluster")
    log = tmp_path / "killed.jsonl"
    script = tmp_path / "job.py"
    script.write_text(_KILL_SCRIPT)
    more = [cluster] if cluster else []
    proc = subprocess.Popen([sys.executable, str(script), str(log), "40", *more], start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not log.exists() or log.read_text().count("\n") < 3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)                  # the driver alone, mid-job
        proc.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                  # the line cut by the kill, if any
            before = list(read_records(log))
            assert len(before) >= 3
            subprocess.run([sys.executable, str(script), str(log), "12", *more], check=True, timeout=300)
            after = TuningLog(log).records
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)          # what the killed driver left behind (a Ray agent)
        except ProcessLookupError:
            pass
    assert [r.config for r in after[:len(before)]] == [r.config for r in before]
    search = [r for r in after if r.tuner != "confirm"]
    assert len(search) == max(12, len(before))
    assert len({json.dumps(r.config, sort_keys=True) for r in search}) == len(search)


def test_cli_tune_and_report(tmp_path, capsys):
    from tosac.app.cli import main
    from tosac.ir.serialize import save

    model = tmp_path / "mm.json"
    save(_matmul(), model)
    log = tmp_path / "cli.jsonl"
    assert main(["tune", str(model), "--trials", "3", "--log", str(log), "--quiet", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "MATMUL" in out
    assert main(["tune", "report", str(log), "--plot", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert main(["compile", str(model), "--tuning-log", str(log)]) == 0


def test_time_runs_loops_natively_and_scales_with_work():
    """The tuner's timer runs the compiled entry in a native loop: more work per run takes longer per run,
    and the runs leave the executable usable (the next ``run`` is still exact)."""
    timings = []
    for m in (4, 256):
        graph = _matmul(m, 64, 64)
        rng = np.random.default_rng(m)
        inputs = {n: rng.integers(-128, 128, size=graph.main.type_of(n).shape).astype(np.int8)
                  for n in graph.inputs}
        exe = tosac.compile(graph, "host")
        assert exe._loaded.repeat is not None, "host executables carry the native timing loop"
        timings.append(min(exe.time_runs(inputs, 200) for _ in range(5)))
        for name, want in run(graph, inputs).items():
            np.testing.assert_array_equal(exe.run(inputs)[name], want)
    assert 0 < timings[0] < timings[1]

"""tosac.prune.search: compiler-aware pruning search.

The chooser is checked against a brute force over every combination written
here; the search's selection logic runs with a fake runner whose costs follow
the pruned weights (fast, deterministic); one small real run measures with the
LocalRunner and the CLI reuses its log (so it measures nothing again).
"""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import tosac
from tosac.errors import PruneError
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.prune import prunable_layers
from tosac.prune.search import Candidate, LayerCandidates, choose, layer_task, search
from tosac.tune import FakeRunner, LocalRunner, TuningLog

PATTERNS = ("block1x4", "block4x4", "2:4", "unstructured")
DENSITIES = (0.5, 0.25)


def two_layer_graph(c: int = 32, hw: int = 4, seed: int = 0):
    """x[1,hw,hw,c] -> 1x1 CONV2D (2c) + RESCALE -> 1x1 CONV2D (c) + RESCALE."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", DType.INT8, (1, hw, hw, c))
    names = []
    for i, oc in enumerate((2 * c, c)):
        w = b.const(rng.integers(-128, 128, (oc, 1, 1, x.shape[-1])).astype(np.int8), name=f"w{i}")
        conv = b.conv2d(x, w, input_zp=3)
        names.append(conv.name)
        x = b.rescale(conv, DType.INT8, multiplier=1 << 30, shift=38, input_zp=0)
    b.output(x)
    return b.build(), names


class DensityRunner(FakeRunner):
    """Fake costs that follow the weights: a dense kernel takes 10 us, a sparse one 2 us + 12 us x the
    fraction of nonzero 4-channel groups (so only group-sparse patterns pay)."""

    def __init__(self):
        super().__init__(self._cost)

    def measure(self, task, configs, on_result=None):
        op = next(o for o in task.graph.main.ops if o.name == "CONV2D")
        w = np.asarray(task.graph.main.constant(op.inputs[1]))
        self._groups = float((w.reshape(w.shape[0], -1, 4) != 0).any(axis=2).mean())
        return super().measure(task, configs, on_result)

    def _cost(self, config) -> float:
        base = 10e-6 * (1.0 if config["kind"] == "vnni" else 1.1)
        return base * (0.2 + 1.2 * self._groups) if config.get("format", "dense") != "dense" else base


@pytest.fixture(scope="module")
def graph():
    return two_layer_graph()


# ----------------------------------------------------------------------------- the chooser

def _table(name: str, size: int, dense_s: float, cands: list[tuple[int, int, float]], zeros: int = 0):
    """cands: (weights removed, magnitude removed, seconds); all sparse."""
    dense = Candidate(name, "dense", None, 1.0, dense_s, False, 0, 0)
    out = LayerCandidates(name, "CONV2D", size, zeros, 10 ** 6, dense)
    for i, (removed, mag, sec) in enumerate(cands):
        c = Candidate(name, f"block1x{i + 1}", 0.5, 1 - removed / size, sec, True, removed, mag)
        c.eligible = sec <= dense_s
        out.candidates.append(c)
    return out


def _brute(tables, ok):
    best = None
    for combo in itertools.product(*[t.options for t in tables]):
        if ok(combo):
            mag = sum(c.magnitude_removed for c in combo)
            best = mag if best is None else min(best, mag)
    return best


def test_choose_is_optimal_against_brute_force():
    rng = np.random.default_rng(7)
    for trial in range(40):
        tables = []
        for li in range(rng.integers(1, 5)):
            size = int(rng.integers(50, 200))
            cands = []
            for _ in range(rng.integers(0, 5)):
                removed = int(rng.integers(1, size))
                cands.append((removed, int(removed * rng.uniform(0.5, 3)), float(rng.uniform(2, 12))))
            tables.append(_table(f"l{li}", size, 10.0, cands, zeros=int(rng.integers(0, 5))))
        size = sum(t.size for t in tables)
        zeros = sum(t.zeros for t in tables)
        goal = float(rng.uniform(0.05, 0.9))
        want = _brute(tables, lambda combo: zeros + sum(c.weights_removed for c in combo) >= goal * size - 1e-9)
        if want is None:
            with pytest.raises(PruneError, match="best reachable"):
                choose(tables, sparsity=goal)
        else:
            got = choose(tables, sparsity=goal)
            assert zeros + sum(c.weights_removed for c in got.values()) >= goal * size - 1e-9
            assert sum(c.magnitude_removed for c in got.values()) == want
            assert all(c.pattern == "dense" or c.eligible for c in got.values())
        rest = float(rng.uniform(0, 5))
        budget = rest + 10.0 * len(tables) * float(rng.uniform(0.3, 1.0))
        want = _brute(tables, lambda combo: rest + sum(c.seconds for c in combo) <= budget + 1e-9)
        if want is None:
            with pytest.raises(PruneError, match="fastest reachable"):
                choose(tables, latency_budget=budget, rest_seconds=rest)
        else:
            got = choose(tables, latency_budget=budget, rest_seconds=rest)
            assert rest + sum(c.seconds for c in got.values()) <= budget + 1e-9
            assert sum(c.magnitude_removed for c in got.values()) == want


def test_least_magnitude_beats_the_most_removing_choice():
    # Goal 50% of 200 weights = 100 removed. Pruning layer a hard (a2: 100 removed, |w| 90) reaches it
    # alone; a1 + b1 (60 + 40 removed, |w| 30 + 25 = 55) reaches it with less magnitude. b2 has the
    # least magnitude of all but is slower than dense: never eligible.
    a = _table("a", 100, 10.0, [(60, 30, 8.0), (100, 90, 4.0)])
    b = _table("b", 100, 10.0, [(40, 25, 9.0), (90, 5, 11.0)])
    got = choose([a, b], sparsity=0.5)
    assert (got["a"].weights_removed, got["b"].weights_removed) == (60, 40)
    assert sum(c.magnitude_removed for c in got.values()) == 55 < 90
    # a latency goal: 20 us dense -> budget 15 us; a2 alone (14 us, |w| 90) or a1 + b1 (17 us: too slow)
    got = choose([a, b], latency_budget=15.0)
    assert got["a"].magnitude_removed == 90 and got["b"].pattern == "dense"
    # no goal needed: everything stays dense
    assert all(c.pattern == "dense" for c in choose([a, b], latency_budget=25.0).values())


def test_unreachable_goal_names_the_best_reachable_value():
    a = _table("a", 100, 10.0, [(60, 30, 8.0), (90, 5, 11.0)])
    with pytest.raises(PruneError, match=r"best reachable is 60\.0%"):
        choose([a], sparsity=0.7)
    with pytest.raises(PruneError, match=r"fastest reachable model latency is 9\.0 us"):
        choose([_table("a", 100, 10e-6, [(60, 30, 8e-6)])], latency_budget=7e-6, rest_seconds=1e-6)


# ----------------------------------------------------------------------------- search with a fake runner

def _weights_sparsity(g, names) -> float:
    layers = {l.name: l for l in prunable_layers(g)}
    ws = [np.asarray(g.main.constant(layers[n].weight)) for n in names]
    return sum(int(np.count_nonzero(w == 0)) for w in ws) / sum(w.size for w in ws)


def test_layer_task_finds_the_layers_kernel(graph):
    g, names = graph
    for name in names:
        task = layer_task(g, name, "host")
        assert any(op.outputs[0] == name for op in task.graph.main.ops if op.name == "CONV2D")


def test_search_sparsity_goal_meets_it_with_eligible_choices(graph, tmp_path):
    g, names = graph
    log = tmp_path / "fake.jsonl"
    runner = DensityRunner()
    result = search(g, sparsity=0.6, patterns=PATTERNS, densities=DENSITIES, trials=4, log=log, runner=runner)
    assert result.sparsity >= 0.6
    assert result.sparsity == pytest.approx(_weights_sparsity(result.graph, names))
    assert [r.layer for r in result.rows] == names
    for name, c in result.chosen.items():
        assert c.pattern == "dense" or (c.eligible and c.sparse and c.seconds <= result.candidates[name].dense.seconds)
    assert not any(c.eligible for t in result.candidates.values() for c in t.candidates if c.pattern == "2:4")
    assert result.model_seconds_before > 0 and result.model_seconds_after > 0
    # the pruned graph compiled with the log equals the reference interpreter
    x = {"x": np.random.default_rng(5).integers(-128, 128, (1, 4, 4, 32)).astype(np.int8)}
    exe = tosac.compile(result.graph, "host", tuning_log=log)
    out = result.graph.outputs[0]
    np.testing.assert_array_equal(exe.run(x)[out], run(result.graph, x)[out])
    text = result.table()
    assert all(n in text for n in names) and "sparsity" in text and "bit-exact" in text
    doc = result.to_json()
    json.dumps(doc, allow_nan=False)
    assert doc["goal"] == "sparsity" and len(doc["layers"]) == 2 and set(doc["candidates"]) == set(names)
    # resumed from the log: nothing is measured twice, same choices
    again = DensityRunner()
    second = search(g, sparsity=0.6, patterns=PATTERNS, densities=DENSITIES, trials=4, log=log, runner=again)
    assert again.calls == 0
    assert [(r.pattern, r.density) for r in second.rows] == [(r.pattern, r.density) for r in result.rows]


def test_search_latency_budget_is_respected(graph, tmp_path):
    g, names = graph
    log = tmp_path / "fake.jsonl"
    result = search(g, latency_budget=15e-6, patterns=("block1x4", "block4x4"), densities=DENSITIES, trials=4,
                    log=log, runner=DensityRunner())
    assert result.goal == "latency" and result.rest_seconds is not None
    assert result.estimated_seconds <= 15e-6
    assert result.estimated_seconds == pytest.approx(result.rest_seconds + sum(c.seconds for c in result.chosen.values()))
    assert any(c.pattern != "dense" for c in result.chosen.values())
    with pytest.raises(PruneError, match="fastest reachable"):
        search(g, latency_budget=1e-9, patterns=("block1x4",), densities=DENSITIES, trials=4, log=log,
               runner=DensityRunner())


@pytest.mark.parametrize("kwargs,match", [
    (dict(), "exactly one goal"),
    (dict(sparsity=0.5, latency_budget=1e-3), "exactly one goal"),
    (dict(sparsity=1.5), "sparsity must be in"),
    (dict(latency_budget=-1.0), "positive"),
    (dict(sparsity="0.5"), "must be a number"),
    (dict(sparsity=0.5, densities=(0.0, 0.5)), "densities must be in"),
    (dict(sparsity=0.5, densities=("x",)), "densities must be numbers"),
    (dict(sparsity=0.5, patterns=("block0x4",)), "block dimensions"),
    (dict(sparsity=0.5, patterns=()), "patterns is empty"),
    (dict(sparsity=0.5, layers=["nope"]), "no prunable layer 'nope'"),
    (dict(sparsity=0.5, layers=[]), "layers is empty"),
    (dict(sparsity=0.5, trials=0), "trials must be"),
    (dict(sparsity=0.5, target="aarch64"), "does not run on this machine"),
])
def test_bad_arguments_raise_prune_error(graph, kwargs, match):
    g, _ = graph
    with pytest.raises(PruneError, match=match):
        search(g, runner=DensityRunner(), **kwargs)


def test_no_searchable_layer(tmp_path):
    g, _ = two_layer_graph(c=8)                 # 16x8 and 8x16 weights: below the default minimum size
    with pytest.raises(PruneError, match="no layer to search"):
        search(g, sparsity=0.5, runner=DensityRunner())


# ----------------------------------------------------------------------------- real measurements, CLI

REAL = dict(patterns=("block1x4",), densities=(0.25,), trials=2)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, graph):
    """Real measurements of one layer. Whether a sparse kernel beats the dense one after 2 trials depends on the
    machine, so the goal is a budget that always holds: the run checks measuring, logging, compiling with the
    log, the bit-exact check and the timing, not which choice wins (the fake-runner tests check that)."""
    g, names = graph
    log = tmp_path_factory.mktemp("real") / "real.jsonl"
    result = search(g, latency_budget=1.0, layers=[names[0]], log=log, runner=LocalRunner(jobs=1, timeout=20),
                    **REAL)
    return g, names, log, result


@pytest.mark.filterwarnings("ignore:no tuning record")
def test_real_run_with_local_runner(real_run):
    g, names, log, result = real_run
    assert [r.layer for r in result.rows] == [names[0]]
    records = TuningLog(log).records
    assert records and all(r.valid for r in records), [r.error_message for r in records if not r.valid]
    table = result.candidates[names[0]]
    assert len(table.candidates) == 1 and 0 < table.dense.seconds < 1e-3
    assert 0 < table.candidates[0].seconds < 1e-3 and table.candidates[0].density == pytest.approx(0.25, abs=0.01)
    assert {r.task for r in records} == {table.dense.task, table.candidates[0].task}      # a task per weight mask
    assert math.isfinite(result.model_seconds_before) and math.isfinite(result.model_seconds_after)
    assert result.estimated_seconds <= 1.0
    # the candidate's pruned graph, compiled with the log (its best config), equals the reference
    from tosac.prune import LayerChoice, prune
    candidate = prune(g, {names[0]: LayerChoice("block1x4", 0.75)}).graph
    x = {"x": np.random.default_rng(9).integers(-128, 128, (1, 4, 4, 32)).astype(np.int8)}
    out = candidate.outputs[0]
    np.testing.assert_array_equal(tosac.compile(candidate, "host", tuning_log=log).run(x)[out], run(candidate, x)[out])


def test_cli_prune(real_run, tmp_path, capsys):
    from tosac.app.cli import main
    from tosac.ir.serialize import load, save

    g, names, log, _ = real_run
    model = tmp_path / "tiny.json"
    save(g, model)
    n_records = len(TuningLog(log).records)
    out_graph, out_json = tmp_path / "pruned.tosa", tmp_path / "result.json"
    argv = ["prune", str(model), "--latency-budget", "1000", "--layers", names[0], "--patterns", "block1x4",
            "--densities", "0.25", "--trials", "2", "--log", str(log), "--out", str(out_graph),
            "--json", str(out_json), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert names[0] in text and "dense us" in text and "bit-exact" in text
    assert len(TuningLog(log).records) == n_records             # resumed: nothing measured again
    pruned = load(out_graph)
    x = {"x": np.random.default_rng(3).integers(-128, 128, (1, 4, 4, 32)).astype(np.int8)}
    assert json.loads(out_json.read_text())["goal"] == "latency"
    assert run(pruned, x)[pruned.outputs[0]].shape == (1, 4, 4, 32)


@pytest.mark.parametrize("extra,match", [
    ([], "exactly one goal"),
    (["--sparsity", "0.5", "--patterns", "blockAxB"], "unknown pruning pattern"),
    (["--sparsity", "0.5", "--densities", "a,b"], "comma-separated numbers"),
    (["--sparsity", "0.5", "--layers", "nope"], "no prunable layer"),
    (["--sparsity", "0.5", "--out", "x.txt"], "--out"),
])
def test_cli_bad_arguments(graph, tmp_path, capsys, extra, match):
    from tosac.app.cli import main
    from tosac.ir.serialize import save

    model = tmp_path / "tiny.json"
    save(graph[0], model)
    assert main(["prune", str(model), "--log", str(tmp_path / "l.jsonl"), *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_cli_both_goals_is_a_usage_error(graph, tmp_path, capsys):
    from tosac.app.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["prune", "whatever.json", "--sparsity", "0.5", "--latency-budget", "1"])
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err

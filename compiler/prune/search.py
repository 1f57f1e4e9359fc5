"""Compiler-aware pruning search: prune where the compiler turns zeros into speed, least magnitude first.

    from tosac.prune.search import search
    result = search(graph, "host", sparsity=0.8, log="model.prune.jsonl")      # or latency_budget=200e-6
    print(result.table()); result.graph                                          # pruned, ready to compile

Three steps:

1. **Candidate table.** For every searched layer and every (pattern, density)
   — N:M patterns have their fixed density — only that layer is pruned
   (``prune(graph, {layer: choice})``), its kernel's tuning task is extracted
   (:func:`layer_task`) and tuned briefly with :func:`tosac.tune.tune_task`
   (threads fixed to 1, early stopping). The task's config space holds the
   dense *and* the sparse schedules (``format`` knob), so the time is the best
   the compiler can do with those weights. The dense layer is tuned the same
   way (density 1.0). Every trial is a record of the ordinary tuning log, and
   tasks are keyed by the weights' nonzero mask, so a rerun with the same log
   measures nothing twice and the log compiles the pruned model afterwards.

2. **Selection** (:func:`choose`). A candidate is *eligible* only when the
   tuner picked a sparse schedule for it and it is at least as fast as the
   dense layer: pruning that buys no speed (including a candidate whose best
   config is a dense kernel, whose "gain" would be measurement noise) is not
   compiler-aware. One option per layer (an eligible candidate, or dense) is
   chosen so that the goal holds with the least total weight magnitude
   removed (``sum |w - zero_point|`` of the pruned int8 weights):

   * ``sparsity``: the fraction of zero weights over the searched layers
     reaches the goal;
   * ``latency_budget``: the chosen layers' tuned latencies plus the rest of
     the model (the dense model's measured latency minus the searched layers'
     dense latencies) fit in the budget.

   This is a multiple-choice knapsack. It is solved *exactly* by a dynamic
   programme over the Pareto frontier of (goal gained, magnitude removed):
   layers are added one at a time, every frontier point is extended by every
   option, and dominated points are dropped; the gain is capped at what the
   goal needs, so the frontier stays small (at most one point per distinct
   capped gain). A greedy on the marginal ratio (gain per magnitude) with a
   repair pass was not used: with one choice per layer it can miss the
   optimum (a layer's best ratio step may overshoot, and the repair cannot
   swap two layers' choices at once), while the table is small — tens of
   layers x tens of candidates — so exactness costs milliseconds. Ties are
   broken deterministically: less magnitude, then more gain, then the
   lexicographically smallest option indices (dense first, then candidates
   in pattern x density order).

3. **Apply and check.** ``prune(graph, choices)``; the pruned graph is
   compiled with the log and its outputs are compared with the reference
   interpreter on seeded random inputs (any difference raises); the dense
   and the pruned model are timed in this process, alternating, and the
   medians reported.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tosac.errors import PruneError, TuningError, UnpredictableError
from tosac.ir.graph import Graph
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run
from tosac.passes.fusion import group_ops
from tosac.pipeline.driver import compile as compile_graph
from tosac.pipeline.optimise import kernel_name, optimise_graph
from tosac.pipeline.tasks import extract_tasks
from tosac.pipeline.tuning_log import TuningLog
from tosac.prune.apply import LayerChoice, PrunableLayer, PruneResult, prunable_layers, prune
from tosac.prune.patterns import parse_pattern
from tosac.schedules.microkernels import WeightFormat
from tosac.targets import get_target
from tosac.tune.job import tune_task
from tosac.tune.measure import LocalRunner

__all__ = ["Candidate", "LayerCandidates", "LayerRow", "SearchResult", "DEFAULT_PATTERNS", "DEFAULT_DENSITIES",
           "MIN_WEIGHTS", "search", "choose", "layer_task", "searchable_layers"]

DEFAULT_PATTERNS = ("block4x1", "block1x4", "block4x4", "2:4", "unstructured")
DEFAULT_DENSITIES = (0.5, 0.3, 0.2, 0.1, 0.05)
#: layers with fewer weights are not searched by default (their kernels are too small for sparsity to pay)
MIN_WEIGHTS = 1024
#: the sparse template gathers whole 32-bit words of input channels
CHANNEL_MULTIPLE = 4


# --------------------------------------------------------------------------------------------- data

@dataclass
class Candidate:
    """One way to prune one layer (``pattern == "dense"``: not pruned), with its tuned latency."""
    layer: str
    pattern: str
    sparsity: float | None            # requested (None for N:M and for dense)
    density: float                    # nonzeros after pruning / size
    seconds: float                    # best tuned latency of the layer's kernel (inf when unmeasurable)
    sparse: bool                      # the best config is a sparse schedule (format != dense)
    weights_removed: int              # nonzeros before - nonzeros after
    magnitude_removed: int            # sum |w - zp| of the removed weights
    config: dict | None = None
    task: str = ""                    # tuning task key (the log's records for it)
    eligible: bool = False            # sparse and at least as fast as the dense layer

    @property
    def choice(self) -> LayerChoice | None:
        return None if self.pattern == "dense" else LayerChoice(self.pattern, self.sparsity)


@dataclass
class LayerCandidates:
    """The candidate table of one layer: its dense time and every measured pruning."""
    layer: str
    op: str
    size: int                         # weights
    zeros: int                        # weights equal to the zero point before pruning
    magnitude_total: int
    dense: Candidate
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def options(self) -> list[Candidate]:
        """What the selection may choose for this layer: dense first, then the eligible candidates."""
        return [self.dense] + [c for c in self.candidates if c.eligible]


@dataclass
class LayerRow:
    """One row of the result table (a searched layer and what was chosen for it)."""
    layer: str
    pattern: str
    density: float
    dense_us: float
    chosen_us: float
    speedup: float
    magnitude_removed_pct: float


@dataclass
class SearchResult:
    graph: Graph
    prune: PruneResult
    rows: list[LayerRow]
    candidates: dict[str, LayerCandidates]
    goal: str                         # "sparsity" or "latency"
    goal_value: float                 # the sparsity, or the budget in seconds
    sparsity: float                   # zeros / weights over the searched layers, after pruning
    estimated_seconds: float          # the selection's model latency estimate (rest + chosen layer latencies)
    rest_seconds: float | None        # model latency outside the searched layers (latency goal only)
    model_seconds_before: float
    model_seconds_after: float
    log: str | None = None
    chosen: dict[str, Candidate] = field(default_factory=dict)     # layer -> chosen option (dense or pruned)

    @property
    def report(self):
        """The prune report (one :class:`LayerReport` per pruned layer)."""
        return self.prune.report

    @property
    def speedup(self) -> float:
        return self.model_seconds_before / self.model_seconds_after if self.model_seconds_after else float("nan")

    def table(self) -> str:
        head = ["layer", "pattern", "density", "dense us", "chosen us", "speedup", "|w| removed"]
        rows = [[r.layer, r.pattern, f"{r.density:.3f}", f"{r.dense_us:.2f}", f"{r.chosen_us:.2f}",
                 f"{r.speedup:.2f}x", f"{r.magnitude_removed_pct:.1f}%"] for r in self.rows]
        dense = sum(r.dense_us for r in self.rows)
        chosen = sum(r.chosen_us for r in self.rows)
        total_mag = sum(t.magnitude_total for t in self.candidates.values())
        removed = sum(c.magnitude_removed for c in self.chosen.values())
        rows.append(["total", "", f"{1.0 - self.sparsity:.3f}", f"{dense:.2f}", f"{chosen:.2f}",
                     f"{dense / chosen:.2f}x" if chosen else "-",
                     f"{100.0 * removed / total_mag:.1f}%" if total_mag else "-"])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

        def line(cells):
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        goal = (f"sparsity >= {self.goal_value:.1%}" if self.goal == "sparsity"
                else f"latency <= {self.goal_value * 1e6:.1f} us")
        lines = [line(head), line(["-" * w for w in widths]), *map(line, rows), "",
                 f"goal: {goal}; reached: sparsity {self.sparsity:.1%} over {len(self.rows)} searched layer(s), "
                 f"estimated model latency {self.estimated_seconds * 1e6:.1f} us" if self.goal == "latency" else
                 f"goal: {goal}; reached: sparsity {self.sparsity:.1%} over {len(self.rows)} searched layer(s)",
                 f"model latency (measured, median): {self.model_seconds_before * 1e6:.1f} us dense -> "
                 f"{self.model_seconds_after * 1e6:.1f} us pruned ({self.speedup:.2f}x)",
                 "outputs: bit-exact against the reference interpreter"]
        return "\n".join(lines)

    def to_json(self) -> dict:
        out = {"goal": self.goal, "goal_value": self.goal_value, "sparsity": self.sparsity,
               "estimated_seconds": self.estimated_seconds, "rest_seconds": self.rest_seconds,
               "model_seconds_before": self.model_seconds_before, "model_seconds_after": self.model_seconds_after,
               "speedup": self.speedup, "log": self.log,
               "layers": [asdict(r) for r in self.rows],
               "candidates": {name: asdict(t) for name, t in self.candidates.items()},
               "prune": self.prune.to_json()}
        out = _plain(out)
        json.dumps(out, allow_nan=False)          # fail here, not in the caller
        return out


def _plain(value):
    """JSON-safe: numpy scalars to Python, inf/nan (an unmeasurable candidate) to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------- layers and tasks

def _input_channels(layer: PrunableLayer) -> int:
    return layer.reduction // max(layer.taps, 1)


def searchable_layers(graph: Graph, layers: Iterable[str] | None = None) -> list[PrunableLayer]:
    """The layers :func:`search` searches: ``layers`` (validated), or by default every prunable layer
    whose input channels are a multiple of 4, with at least :data:`MIN_WEIGHTS` weights and a weight no
    other layer shares."""
    prunable = prunable_layers(graph)
    by_name = {l.name: l for l in prunable}
    shared = {w for w in (l.weight for l in prunable) if sum(m.weight == w for m in prunable) > 1}
    if layers is None:
        return [l for l in prunable if _input_channels(l) % CHANNEL_MULTIPLE == 0
                and int(np.prod(l.shape)) >= MIN_WEIGHTS and l.weight not in shared]
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise PruneError(f"layers must be an iterable of layer names, got {layers!r}")
    names = list(layers)
    if not names:
        raise PruneError("layers is empty: name at least one layer to search")
    for name in names:
        if name not in by_name:
            known = ", ".join(list(by_name)[:8]) + (", ..." if len(by_name) > 8 else "")
            raise PruneError(f"no prunable layer '{name}' (a layer is named by its op's first output tensor); "
                             f"prunable layers: {known or 'none'}")
        if by_name[name].weight in shared:
            raise PruneError(f"layer '{name}': its weight '{by_name[name].weight}' is shared with another layer; "
                             f"the search prunes one layer at a time")
    if len(set(names)) != len(names):
        raise PruneError(f"layers names a layer twice: {names}")
    return [by_name[n] for n in names]


def layer_task(graph: Graph, layer: str, target="host"):
    """The tuning task (:class:`tosac.tune.Task`) of the kernel that computes ``layer`` in ``graph``.

    The kernel is found in the optimised graph as the fused op group holding the op whose first output is
    ``layer``; the task is the one whose ``kernel_names`` include that kernel's name (tasks are shared by
    identical kernels, so the task graph itself may hold another layer's op).
    """
    optimised = optimise_graph(graph)
    name = next((kernel_name(i, g) for i, g in enumerate(group_ops(optimised.main))
                 if any(op.outputs[:1] == [layer] for op in g.ops)), None)
    if name is not None:
        for task in extract_tasks(optimised, target, optimised=True):
            if name in task.kernel_names:
                return task
    raise PruneError(f"layer '{layer}': no kernel of the compiled graph computes it")


# --------------------------------------------------------------------------------------------- measuring

def _pattern_options(patterns: Sequence[str], densities: Sequence[float]) -> list[LayerChoice]:
    out: list[LayerChoice] = []
    for text in patterns:
        pattern = parse_pattern(text)
        if pattern.needs_sparsity:
            out += [LayerChoice(str(pattern), round(1.0 - d, 12)) for d in densities]
        else:
            out.append(LayerChoice(str(pattern)))
    unique = list(dict.fromkeys(out))
    return unique


def _tune(task, trials: int, log, seed: int, runner):
    return tune_task(task, trials, log, "xgb", seed, runner, early_stopping=max(4, trials // 2),
                     fixed={"threads": 1})


def _is_sparse(config: dict | None) -> bool:
    return bool(config) and WeightFormat.of(config) is not WeightFormat.DENSE


def _seconds(report) -> float:
    s = report.best_seconds
    return float(s) if s == s and s > 0 else math.inf


def _candidate_table(graph: Graph, layer: PrunableLayer, options: list[LayerChoice], target, trials: int,
                     log, seed: int, runner, say) -> LayerCandidates:
    weights = np.asarray(graph.main.constant(layer.weight)) if graph.main.constant(layer.weight) is not None \
        else None
    dense_task = layer_task(graph, layer.name, target)
    dense_report = _tune(dense_task, trials, log, seed, runner)
    dense_seconds = _seconds(dense_report)
    if not math.isfinite(dense_seconds):
        raise PruneError(f"layer '{layer.name}': its dense kernel could not be measured")
    size = int(np.prod(layer.shape))
    if weights is None:                       # a weight that only becomes constant by folding
        weights = np.asarray(optimise_graph(graph).main.constant(layer.weight))
    wide = weights.astype(np.int64) - layer.zero_point
    zeros = int(np.count_nonzero(wide == 0))
    dense = Candidate(layer.name, "dense", None, 1.0 - zeros / size if size else 1.0, dense_seconds,
                      _is_sparse(dense_report.best_config), 0, 0, dense_report.best_config, dense_task.key)
    table = LayerCandidates(layer.name, layer.op, size, zeros, int(np.abs(wide).sum()), dense)
    say(f"{layer.name}: dense {dense_seconds * 1e6:.2f} us")
    for choice in options:
        result = prune(graph, {layer.name: choice})
        rep = result.report[0]
        task = layer_task(result.graph, layer.name, target)
        try:
            tuned = _tune(task, trials, log, seed, runner)
            seconds, config = _seconds(tuned), tuned.best_config
        except TuningError as exc:
            seconds, config = math.inf, None
            say(f"{layer.name} {choice.pattern} {choice.sparsity}: not measurable ({exc})")
        cand = Candidate(layer.name, rep.pattern, choice.sparsity, rep.density, seconds, _is_sparse(config),
                         rep.nonzeros_before - rep.nonzeros_after, rep.magnitude_removed, config, task.key)
        cand.eligible = cand.sparse and cand.seconds <= dense_seconds
        table.candidates.append(cand)
        say(f"{layer.name}: {cand.pattern:<12} density {cand.density:.3f}  {seconds * 1e6:8.2f} us  "
            f"{'sparse' if cand.sparse else 'dense kernel'}{'  eligible' if cand.eligible else ''}")
    return table


# --------------------------------------------------------------------------------------------- selection

def _frontier(gains: list[list[float]], costs: list[list[float]], need: float):
    """Exact multiple-choice knapsack: one option per layer, gain >= need, least cost.

    Returns (option index per layer or None, best reachable gain). Gains are capped at ``need`` so
    the frontier holds at most one point per distinct capped gain.
    """
    points: list[tuple[float, float, tuple[int, ...]]] = [(0.0, 0.0, ())]      # (cost, gain, path)
    for layer_gains, layer_costs in zip(gains, costs):
        grown = [(c + dc, min(g + dg, need), path + (i,))
                 for c, g, path in points for i, (dg, dc) in enumerate(zip(layer_gains, layer_costs))]
        grown.sort(key=lambda p: (p[0], -p[1], p[2]))
        points, best = [], -math.inf
        for p in grown:
            if p[1] > best:
                points.append(p)
                best = p[1]
    best_gain = max(p[1] for p in points)
    for c, g, path in points:                 # sorted by cost: the first that reaches the goal
        if g >= need:
            return list(path), best_gain
    return None, best_gain


def choose(tables: Sequence[LayerCandidates], *, sparsity: float | None = None,
           latency_budget: float | None = None, rest_seconds: float = 0.0) -> dict[str, Candidate]:
    """One option per layer (its dense :class:`Candidate` or an eligible one) meeting the goal with the least
    total magnitude removed (see the module docstring). Raises :class:`PruneError` with the best reachable
    value when the goal cannot be met."""
    _check_goal(sparsity, latency_budget)
    options = [t.options for t in tables]
    costs = [[float(c.magnitude_removed) for c in opts] for opts in options]
    if sparsity is not None:
        size = sum(t.size for t in tables)
        zeros = sum(t.zeros for t in tables)
        need = float(max(0, math.ceil(sparsity * size - 1e-9) - zeros))
        gains = [[float(c.weights_removed) for c in opts] for opts in options]
        path, best = _frontier(gains, costs, need)
        if path is None:
            eligible = sum(len(o) - 1 for o in options)
            raise PruneError(f"sparsity {sparsity:.1%} is not reachable with pruning that makes the compiled model "
                             f"faster: the best reachable is {(zeros + best) / size:.1%} over {len(tables)} layer(s) "
                             f"({eligible} eligible candidate(s)); try lower densities, other patterns or a "
                             f"lower goal")
    else:
        dense_total = sum(t.dense.seconds for t in tables)
        need = dense_total + rest_seconds - latency_budget
        gains = [[t.dense.seconds - c.seconds for c in opts] for t, opts in zip(tables, options)]
        if need <= 0:
            path = [0] * len(tables)
        else:
            path, best = _frontier(gains, costs, need)
            if path is None:
                raise PruneError(f"latency budget {latency_budget * 1e6:.1f} us is not reachable: the fastest "
                                 f"reachable model latency is {(dense_total + rest_seconds - best) * 1e6:.1f} us "
                                 f"(dense {(dense_total + rest_seconds) * 1e6:.1f} us)")
    return {t.layer: opts[i] for t, opts, i in zip(tables, options, path)}


def _check_goal(sparsity, latency_budget) -> None:
    if (sparsity is None) == (latency_budget is None):
        raise PruneError("give exactly one goal: sparsity= (fraction of zero weights) or latency_budget= (seconds)")
    value, name = (sparsity, "sparsity") if sparsity is not None else (latency_budget, "latency_budget")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PruneError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise PruneError(f"{name} must be finite, got {value!r}")
    if sparsity is not None and not 0.0 < float(sparsity) < 1.0:
        raise PruneError(f"sparsity must be in (0, 1), got {sparsity!r}")
    if latency_budget is not None and float(latency_budget) <= 0:
        raise PruneError(f"latency_budget is in seconds and must be positive, got {latency_budget!r}")


# --------------------------------------------------------------------------------------------- model timing

def _model_inputs(graph: Graph, seed: int) -> tuple[dict, dict]:
    """Seeded random inputs whose reference result is defined, and that result."""
    for attempt in range(4):
        inputs = random_inputs(graph.input_types(), seed + attempt)
        try:
            return inputs, run(graph, inputs)
        except UnpredictableError:
            continue
    raise PruneError("no seeded random inputs give the model a defined reference result")


def _compile(graph: Graph, target, log):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # kernels outside the searched layers are untuned: fine
        return compile_graph(graph, target, tuning_log=log)


def _time_models(exes: list, inputs: dict, repeats: int = 21, sample_seconds: float = 2e-3) -> list[float]:
    """Median seconds per run of each executable; samples alternate between them (same process, same inputs)."""
    numbers = []
    for exe in exes:
        exe.time_runs(inputs, 3)                                       # warm up, bind buffers
        once = exe.time_runs(inputs, 3)
        numbers.append(max(1, int(sample_seconds / max(once, 1e-7))))
    samples: list[list[float]] = [[] for _ in exes]
    for _ in range(repeats):
        for i, exe in enumerate(exes):
            samples[i].append(exe.time_runs(inputs, numbers[i]))
    return [float(np.median(s)) for s in samples]


# --------------------------------------------------------------------------------------------- search

def search(graph: Graph, target="host", *, sparsity: float | None = None, latency_budget: float | None = None,
           patterns: Iterable[str] = DEFAULT_PATTERNS, densities: Iterable[float] = DEFAULT_DENSITIES,
           layers: Iterable[str] | None = None, trials: int = 16, log: str | Path | None = None, seed: int = 0,
           runner=None, progress: bool = False) -> SearchResult:
    """Prune ``graph`` for the compiler: per layer the pattern and density that reach the goal with the least
    weight magnitude removed, among prunings that make the layer's tuned kernel at least as fast.

    Exactly one goal: ``sparsity`` (fraction of zero weights over the searched layers) or ``latency_budget``
    (seconds for the whole model). ``log`` is a tuning log (resumed when it exists; a temporary one when
    None). ``runner`` measures candidates (default :class:`tosac.tune.LocalRunner`). See the module docstring.
    """
    _check_goal(sparsity, latency_budget)
    if not isinstance(graph, Graph):
        raise PruneError(f"search needs a tosac Graph, got {type(graph).__name__}")
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    patterns = list(patterns)
    if not patterns:
        raise PruneError("patterns is empty: give at least one pruning pattern")
    try:
        densities = [float(d) for d in densities]
    except (TypeError, ValueError):
        raise PruneError(f"densities must be numbers in (0, 1), got {densities!r}") from None
    if any(not (0.0 < d < 1.0) for d in densities):
        raise PruneError(f"densities must be in (0, 1) (the fraction of weights kept), got {densities}")
    if any(parse_pattern(p).needs_sparsity for p in patterns) and not densities:
        raise PruneError("densities is empty, but patterns other than N:M need densities")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise PruneError(f"trials must be a positive integer, got {trials!r}")
    target = get_target(target)
    if not target.is_host:
        raise PruneError(f"target '{target.name}' does not run on this machine; the search measures kernels, "
                         f"so it needs a target this machine runs (e.g. host)")
    options = _pattern_options(patterns, densities)
    chosen_layers = searchable_layers(graph, layers)
    if not chosen_layers:
        raise PruneError("no layer to search: none has input channels divisible by 4 and at least "
                         f"{MIN_WEIGHTS} weights; name layers explicitly with layers=")

    def say(text: str) -> None:
        if progress:
            print(f"[prune] {text}", file=sys.stderr, flush=True)

    tmp = None
    if log is None:
        tmp = tempfile.TemporaryDirectory(prefix="tosac-prune-")
        log_path = Path(tmp.name) / "search.jsonl"
    else:
        log_path = Path(log)
    try:
        tuning_log = TuningLog(log_path)
        runner = runner or LocalRunner(jobs=2, timeout=20.0, seed=seed)

        # 1. candidate tables
        tables = [_candidate_table(graph, layer, options, target, trials, tuning_log, seed, runner, say)
                  for layer in chosen_layers]

        # the dense model, compiled with the log (the searched layers' tuned dense configs)
        inputs, _ = _model_inputs(graph, seed)
        dense_exe = _compile(graph, target, tuning_log)
        rest = None
        if latency_budget is not None:
            (model_dense,) = _time_models([dense_exe], inputs)
            rest = max(0.0, model_dense - sum(t.dense.seconds for t in tables))
            say(f"dense model {model_dense * 1e6:.1f} us; outside the searched layers {rest * 1e6:.1f} us")

        # 2. selection
        picked = choose(tables, sparsity=sparsity, latency_budget=latency_budget, rest_seconds=rest or 0.0)

        # 3. apply, check, time
        choices = {name: c.choice for name, c in picked.items() if c.choice is not None}
        pruned = prune(graph, choices) if choices else PruneResult(graph, [], False)
        pruned_exe = _compile(pruned.graph, target, tuning_log)
        for k in range(2):
            check_inputs, expected = _model_inputs(pruned.graph, seed + 100 * (k + 1))
            got = pruned_exe.run(check_inputs)
            bad = [n for n, want in expected.items() if not np.array_equal(got[n], want)]
            if bad:
                raise PruneError(f"the compiled pruned graph differs from the reference interpreter in {bad}")
        before, after = _time_models([dense_exe, pruned_exe], inputs)
        say(f"model {before * 1e6:.1f} us -> {after * 1e6:.1f} us")

        rows = []
        for t in tables:
            c = picked[t.layer]
            rows.append(LayerRow(t.layer, c.pattern, c.density, t.dense.seconds * 1e6, c.seconds * 1e6,
                                 t.dense.seconds / c.seconds if c.seconds else float("nan"),
                                 100.0 * c.magnitude_removed / t.magnitude_total if t.magnitude_total else 0.0))
        size = sum(t.size for t in tables)
        zeros = sum(t.zeros + picked[t.layer].weights_removed for t in tables)
        estimated = (rest or 0.0) + sum(c.seconds for c in picked.values())
        return SearchResult(pruned.graph, pruned, rows, {t.layer: t for t in tables},
                            "sparsity" if sparsity is not None else "latency",
                            float(sparsity if sparsity is not None else latency_budget),
                            zeros / size if size else 0.0, estimated, rest, before, after,
                            None if tmp is not None else str(log_path), dict(picked))
    finally:
        if tmp is not None:
            tmp.cleanup()

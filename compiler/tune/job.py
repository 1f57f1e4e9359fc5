"""Tuning jobs: tasks -> batches of candidates -> measurements -> log records -> best configs.

The loop (per task): resume from the log's records for the task (nothing is
measured twice), measure the template's default config first (so every
report has a baseline) and its seed configs (starting points of other
families, such as the sparse schedules of a pruned layer), then ask the tuner
for batches sized to the runner's parallelism until the trial budget is spent, the space is exhausted, or
``early_stopping`` trials pass without a better time. Every result is
appended to the log the moment it is known.
"""
from __future__ import annotations

import hashlib
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tosac.errors import NoMeasuringMachineError, TuningError
from tosac.ir.graph import Graph
from tosac.pipeline.tasks import Task, extract_tasks, target_class
from tosac.pipeline.tuning_log import CONFIRM, ErrorCode, Record, TuningLog, best_of, config_key, target_info
from tosac.schedules.space import Config
from tosac.targets import Target, get_target
from tosac.tune.features import Featurizer
from tosac.tune.measure import LocalRunner, MeasureResult, Runner
from tosac.tune.search import TUNERS, XGBTuner


@dataclass
class TaskReport:
    task: Task
    default_seconds: float
    best_seconds: float
    best_config: Config | None
    trials: int                                   # measured trials for the task (including earlier runs)
    new_trials: int
    history: list[float] = field(default_factory=list)     # best-so-far seconds after each trial

    @property
    def speedup(self) -> float:
        return self.default_seconds / self.best_seconds if self.best_seconds and self.default_seconds else float("nan")

    @property
    def best_gops(self) -> float:
        macs = self.task.builder().op_count(self.best_config)        # nonzero MACs for a sparse schedule
        return 2 * macs / self.best_seconds / 1e9 if macs else float("nan")


def task_seed(seed: int, task: Task) -> int:
    """The seed of one task's search: derived from the job seed and the task key (recorded in the log)."""
    return int(hashlib.sha256(f"{seed}:{task.key}".encode()).hexdigest()[:8], 16)


def _result_of(record: Record) -> MeasureResult:
    return MeasureResult(record.config, list(record.costs), record.error, record.error_message)


class _Progress:
    """A tqdm bar when asked for (best-so-far GOPS, trials/s and ETA come with it)."""

    def __init__(self, enabled: bool, total: int, label: str, runner: Runner):
        self.bar, self.runner = None, runner
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=label, unit="trial", leave=True, dynamic_ncols=True)

    def update(self, best_gops: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"best {best_gops:.1f} GOPS, {self.runner.describe()}")
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def tune_task(task: Task, trials: int, log: TuningLog, tuner: str = "xgb", seed: int = 0,
              runner: Runner | None = None, early_stopping: int | None = None, progress: bool = False,
              transfer: tuple[np.ndarray, np.ndarray] | None = None, fixed: dict | None = None,
              finalists: int = 3, rounds: int = 7) -> TaskReport:
    """Tune one task up to ``trials`` measured trials in total (earlier records count).

    ``fixed`` pins knobs (``{"threads": 1}``). At the end the ``finalists`` best
    configs and the default are timed against each other in ``rounds``
    interleaved rounds on one machine (``Runner.compare``), so the choice rests
    neither on one lucky measurement nor on a faster worker; a finalist replaces
    the default only when it wins by more than the measured spread
    (``tuning_log.best_of``, the rule ``compile`` uses too).
    """
    if tuner not in TUNERS:
        raise TuningError(f"unknown tuner '{tuner}'; choose one of {sorted(TUNERS)}")
    runner = runner or LocalRunner()
    runner.check_target(task.target)
    builder = task.builder()
    space = builder.space.restrict({k: v for k, v in (fixed or {}).items() if k in builder.space.default})
    s = task_seed(seed, task)
    featurize = Featurizer(builder, space)
    search = XGBTuner(space, s, featurize) if tuner == "xgb" else TUNERS[tuner](space, s)
    if transfer is not None and isinstance(search, XGBTuner):
        search.model.warm_start(*transfer)
    klass = target_class(task.target)
    # Only records whose config is a point of the template's (unrestricted) space count: a hand-edited or
    # foreign record must neither steer the search nor become the best config (it is skipped with a warning).
    previous = [r for r in log.for_task(task.key, builder.space) if r.target.get("class") == klass]
    search.update([_result_of(r) for r in previous if r.error != ErrorCode.WORKER_LOST])   # those may be tried again
    history = _best_so_far([r.median if r.valid else float("inf") for r in previous])
    default = space.default
    done = len(previous)
    new = 0
    bar = _Progress(progress, max(trials - done, 0), task.pattern[:28], runner)

    def record(result: MeasureResult, phase: str = "", group: str = "") -> None:
        nonlocal done, new
        done, new = done + 1, new + 1
        log.append(Record(task.key, task.pattern, result.config, result.costs, result.error, result.message,
                          target_info(task.target), s, done, phase or search.name, worker=result.worker,
                          group=group))
        if phase:
            return
        history.append(min(history[-1] if history else float("inf"), result.median if result.valid else float("inf")))
        bar.update(2 * task.mac_count / history[-1] / 1e9 if history[-1] < float("inf") else 0.0)

    try:
        starts = [c for c in [default, *space.seeds] if config_key(c) not in search.measured][:max(trials - done, 0)]
        if starts:                     # the default, then the template's other starting points (e.g. sparse)
            search.update(runner.measure(task, starts, record))
        stale = 0
        while done < trials and not search.exhausted():
            batch = search.next_batch(min(trials - done, max(2, 2 * runner.parallelism)))
            if not batch:
                break
            before = history[-1] if history else float("inf")
            search.update(runner.measure(task, batch, record))
            stale = stale + len(batch) if history[-1] >= before else 0
            if early_stopping and stale >= early_stopping:
                break
        if new and finalists:
            ranked = sorted((r for r in log.for_task(task.key, builder.space)
                             if r.valid and r.target.get("class") == klass),
                            key=lambda r: r.median)
            confirm = list({config_key(r.config): r.config for r in ranked[:finalists * 3]}.values())[:finalists]
            confirm += [default] if config_key(default) not in map(config_key, confirm) else []
            group = uuid.uuid4().hex[:12]
            for result in runner.compare(task, confirm, rounds):
                record(result, CONFIRM, group)
    finally:
        bar.close()
    records = [r for r in log.for_task(task.key, builder.space) if r.target.get("class") == klass]
    best = best_of(records, default)  # the rule compile uses too (the confirmation decides)
    default_rec = best_of([r for r in records if config_key(r.config) == config_key(default)])
    return TaskReport(task, default_rec.median if default_rec else float("nan"),
                      best.median if best else float("nan"), best.config if best else None, done, new, history)


def _best_so_far(values: list[float]) -> list[float]:
    out, best = [], float("inf")
    for v in values:
        best = min(best, v)
        out.append(best)
    return out


def tune(graph: Graph, target: str | Target = "host", trials: int = 64, log: str | Path = "tuning.jsonl",
         tuner: str = "xgb", seed: int = 0, runner: Runner | None = None, jobs: int = 2, timeout: float = 20.0,
         early_stopping: int | None = None, progress: bool = False, fixed: dict | None = None) -> list[TaskReport]:
    """Tune every task of ``graph`` on ``target``; records go to ``log`` (resumed if it exists)."""
    target = get_target(target)
    tasks = extract_tasks(graph, target)
    tuning_log = TuningLog(log)
    runner = runner or LocalRunner(jobs=jobs, timeout=timeout, seed=seed)
    runner.check_target(target)                 # before any work: no machine to measure on ends the job
    reports: list[TaskReport] = []
    seen: dict[str, tuple[list, list]] = {}             # template -> features, relative throughput
    for task in tasks:
        template = task.space.template
        xs, ys = seen.get(template, ([], []))
        transfer = (np.array(xs), np.array(ys)) if xs else None
        try:
            report = tune_task(task, trials, tuning_log, tuner, seed, runner, early_stopping, progress, transfer,
                               fixed)
        except NoMeasuringMachineError:
            raise
        except TuningError as exc:               # one unmeasurable kernel keeps its default; the job goes on
            warnings.warn(f"not tuned, keeps its default config: {exc}", stacklevel=2)
            continue
        reports.append(report)
        _collect_transfer(task, tuning_log, *seen.setdefault(template, ([], [])))
    return reports


def _collect_transfer(task: Task, log: TuningLog, xs: list, ys: list) -> None:
    """Features and relative throughput of a finished task's trials, for warm-starting later tasks."""
    builder = task.builder()
    featurize = Featurizer(builder, builder.space)
    records = log.for_task(task.key, builder.space)
    best = min((r.median for r in records if r.valid), default=None)
    if best is None:
        return
    for r in records:
        try:
            xs.append(featurize(r.config))
        except Exception:
            continue
        ys.append(best / r.median if r.valid else 0.0)

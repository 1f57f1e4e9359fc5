"""Tuning logs: JSON lines, one record per measured trial, append-only.

Each record is written and flushed (and fsync'ed) on its own, so a job killed
at any moment — even ``kill -9`` — loses at most the line being written; on
reading, a truncated or corrupt line is skipped with a warning and the rest
is kept. Records carry a schema version; a record with an unknown version is
refused with a clear error rather than misread.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from tosac.errors import TosacError, TuningError
from tosac.pipeline.tasks import target_class
from tosac.schedules.space import ConfigSpace
from tosac.targets import Target
from tosac.version import __version__

SCHEMA_VERSION = 1
CONFIRM = "confirm"         # the tuner name of the job's closing re-measurement of its finalists and the default

T = TypeVar("T")


class ErrorCode:
    """Why a trial has no valid time (strings, so logs stay readable and stable)."""
    NO_ERROR = "NO_ERROR"
    COMPILE_ERROR = "COMPILE_ERROR"
    RUNTIME_ERROR = "RUNTIME_ERROR"          # the kernel crashed the measuring process
    TIMEOUT = "TIMEOUT"
    WRONG_ANSWER = "WRONG_ANSWER"            # output differs from the reference interpreter
    WORKER_LOST = "WORKER_LOST"              # the cluster lost the machine measuring it (the config is not to blame)


class Measured:
    """What a trial's ``costs`` and ``error`` mean; shared by a measurement and its log record."""
    costs: list[float]
    error: str

    @property
    def valid(self) -> bool:
        """A time was measured: no error, and costs that are times (positive, finite; a zero never wins)."""
        return self.error == ErrorCode.NO_ERROR and bool(self.costs) and all(0 < c < math.inf for c in self.costs)

    @property
    def median(self) -> float:
        return median(self.costs)


@dataclass
class Record(Measured):
    task: str
    pattern: str
    config: dict
    costs: list[float]                      # seconds per run
    error: str = ErrorCode.NO_ERROR
    error_message: str = ""
    target: dict = field(default_factory=dict)
    seed: int = 0
    trial: int = 0
    tuner: str = ""
    timestamp: float = field(default_factory=time.time)
    schema: int = SCHEMA_VERSION
    tosac_version: str = __version__
    worker: dict = field(default_factory=dict)     # the machine that measured it: host name, CPU
    group: str = ""                 # a confirmation: the records timed against each other in interleaved rounds


def median(costs: Iterable[float]) -> float:
    """The cost of repeated timings (seconds), for measurements and records alike; infinite when there are none.

    tosac's one median policy is :func:`upper_median`: of an even count the upper of the two middle values,
    not their mean, so that (1) a cost is always a time that was actually measured, (2) the same rule picks a
    representative record among a config's repeated records (records cannot be averaged), and (3) it errs on
    the slow side: a config does not win on half of a lucky run.
    """
    cost = upper_median(costs)
    return float("inf") if cost is None else cost


def upper_median(items: Iterable[T], key: Callable[[T], float] | None = None) -> T | None:
    """The middle item by ``key``; of an even count the upper of the two middle ones; None when empty."""
    ordered = sorted(items, key=key)
    return ordered[len(ordered) // 2] if ordered else None


def target_info(target: Target) -> dict:
    return {"name": target.name, "triple": target.triple, "cpu": target.cpu, "features": list(target.features),
            "class": target_class(target)}


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


class TuningLog:
    """Records of a log file (read once), plus appending new ones."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lines: dict[int, int] = {}              # id(record) -> its line in the file, for warnings
        self.records: list[Record] = []
        if self.path.exists():
            for number, record in read_numbered_records(self.path):
                self.lines[id(record)] = number
                self.records.append(record)
        self._refused: set[int] = set()              # id() of records already warned about

    def append(self, record: Record) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 4 significant digits suffice; the in-memory record keeps what a re-read gives (same best record)
        record = replace(record, costs=[float(f"{c:.4g}") for c in record.costs])
        line = json.dumps(asdict(record), sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as f:
            if f.tell() > 0 and not _ends_with_newline(self.path):
                f.write("\n")                       # a line cut by a kill stays a corrupt line of its own
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)

    def for_task(self, task_key: str, space: ConfigSpace | None = None) -> list[Record]:
        """The task's records; with ``space`` (the template's knob space) only those whose config is a point of
        it, the others skipped with one warning each naming the log and line."""
        return [r for r in self.records if r.task == task_key and (space is None or self._fits(r, space))]

    def best(self, task_key: str, target_class: str | None = None, space: ConfigSpace | None = None
             ) -> Record | None:
        """The best record of the task (on ``target_class``, when given; fitting ``space``, when given) by
        :func:`best_of`."""
        return best_of([r for r in self.for_task(task_key, space)
                        if target_class is None or r.target.get("class") == target_class],
                       space.default if space is not None else None)

    def where(self, record: Record) -> str:
        """``path:line`` of a record read from the file (the path alone for one appended since)."""
        line = self.lines.get(id(record))
        return f"{self.path}:{line}" if line else str(self.path)

    def _fits(self, record: Record, space: ConfigSpace) -> bool:
        try:
            space.resolve(record.config)      # unknown knobs, values outside a knob's list: what compile refuses
            return True
        except TosacError as exc:
            if id(record) not in self._refused:
                self._refused.add(id(record))
                warnings.warn(f"{self.where(record)}: skipping a tuning record whose config is not a point of "
                              f"the template's space ({exc})", stacklevel=3)
            return False


def best_of(records: list[Record], default: dict | None = None) -> Record | None:
    """The one rule for a task's best config; the job's report and ``compile`` (``TuningLog.best``) both use it.

    A tuning job ends with a confirmation: its finalists and the template's ``default`` timed against each
    other on one machine in interleaved rounds (records of tuner ``CONFIRM`` sharing a ``group``). The latest
    confirmation decides, as the fairest comparison (a search record may owe its place to one lucky
    measurement, or to a faster worker): a challenger replaces the default only when it wins by more than the
    measured spread, i.e. its slower quartile of rounds beats the default's faster quartile
    (:func:`beats`); of those that do, the lowest median wins. Without a grouped confirmation (older logs) the
    deciding records are the ungrouped confirmations, else all valid records, and the lowest cost wins; a
    config measured in several records counts with its :func:`upper_median` record. None when no record is
    valid.
    """
    valid = [r for r in records if r.valid]
    grouped = [r for r in valid if r.tuner == CONFIRM and r.group]
    if grouped:
        latest = max(grouped, key=lambda r: r.timestamp).group
        deciding = [r for r in grouped if r.group == latest]
        baseline = next((r for r in deciding if default is not None and config_key(r.config) == config_key(default)),
                        None)
        if baseline is not None:
            deciding = [r for r in deciding if r is baseline or beats(r, baseline)]
        return min(deciding, key=lambda r: r.median)
    deciding = [r for r in valid if r.tuner == CONFIRM] or valid
    by_config: dict[str, list[Record]] = {}
    for r in deciding:
        by_config.setdefault(config_key(r.config), []).append(r)
    medians = [upper_median(rs, key=lambda r: r.median) for rs in by_config.values()]
    return min(medians, key=lambda r: r.median, default=None)


def beats(challenger: Measured, baseline: Measured) -> bool:
    """``challenger`` is faster by more than the spread of the two: the upper quartile of its costs lies below
    the lower quartile of ``baseline``'s (costs of interleaved rounds)."""
    return quartile(challenger.costs, 3) < quartile(baseline.costs, 1)


def quartile(costs: list[float], which: int) -> float:
    """The ``which``-th quartile (1 or 3) of ``costs``, taken as a measured value (no interpolation):
    the lower one rounds down, the upper one rounds up, so a close call counts against the challenger."""
    ordered = sorted(costs)
    position = (len(ordered) - 1) * which / 4
    return ordered[math.floor(position) if which < 2 else math.ceil(position)]


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_records(path: Path) -> Iterable[Record]:
    """Records of ``path``; malformed lines and records are skipped with a warning, unknown schemas refused."""
    return (record for _, record in read_numbered_records(path))


def read_numbered_records(path: Path) -> Iterable[tuple[int, Record]]:
    """(line number, record) of ``path``: a corrupt line, or a record that breaks the schema (wrong types,
    costs that are not positive finite times), is skipped with one warning naming the file and line."""
    fields = set(Record.__dataclass_fields__)
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TuningError(f"tuning log '{path}' cannot be read ({exc.strerror or exc})") from None
    with f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, RecursionError) as e:    # RecursionError: deeply nested brackets
                warnings.warn(f"{path}:{number}: skipping a corrupt tuning record ({str(e)[:100]})", stacklevel=2)
                continue
            schema = data.get("schema")
            if schema != SCHEMA_VERSION:
                raise TuningError(f"{path}:{number}: tuning record schema version {repr(schema)[:40]} is not "
                                  f"supported by tosac {__version__} (it reads version {SCHEMA_VERSION}); "
                                  "re-tune, or use the tosac version that wrote the log")
            problem = _schema_problem(data)
            if problem:
                warnings.warn(f"{path}:{number}: skipping a malformed tuning record ({problem})", stacklevel=2)
                continue
            try:
                yield number, Record(**{k: v for k, v in data.items() if k in fields})
            except TypeError as e:
                warnings.warn(f"{path}:{number}: skipping an incomplete tuning record ({e})", stacklevel=2)


#: The type of each field of a record on disk (bool is excluded where an int is meant: JSON true is no number).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "task": (str,), "pattern": (str,), "config": (dict,), "costs": (list,), "error": (str,),
    "error_message": (str,), "target": (dict,), "seed": (int,), "trial": (int,), "tuner": (str,),
    "timestamp": (int, float), "tosac_version": (str,), "worker": (dict,), "group": (str,)}


def _schema_problem(data: dict) -> str | None:
    """What makes a decoded record unusable (None when it is fine)."""
    for name, types in _FIELD_TYPES.items():
        if name in data and (not isinstance(data[name], types) or isinstance(data[name], bool)):
            return f"'{name}' is {type(data[name]).__name__}, not {' or '.join(t.__name__ for t in types)}"
    for knob, value in data.get("config", {}).items():
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            return f"config knob '{knob}' = {repr(value)[:40]} is not an integer or a string"
    for cost in data.get("costs", []):
        if not isinstance(cost, (int, float)) or isinstance(cost, bool) or not 0 < cost < math.inf:
            return f"cost {repr(cost)[:40]} is not a positive, finite time in seconds"
    return None

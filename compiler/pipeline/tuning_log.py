"""Tuning logs: JSON lines, one record per measured trial, append-only.

Each record is written and flushed (and fsync'ed) on its own, so a job killed
at any moment — even ``kill -9`` — loses at most the line being written; on
reading, a truncated or corrupt line is skipped with a warning and the rest
is kept. Records carry a schema version; a record with an unknown version is
refused with a clear error rather than misread.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from tosac.errors import TuningError
from tosac.pipeline.tasks import target_class
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


class Measured:
    """What a trial's ``costs`` and ``error`` mean; shared by a measurement and its log record."""
    costs: list[float]
    error: str

    @property
    def valid(self) -> bool:
        return self.error == ErrorCode.NO_ERROR and bool(self.costs)

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
        self.records: list[Record] = list(read_records(self.path)) if self.path.exists() else []

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

    def for_task(self, task_key: str) -> list[Record]:
        return [r for r in self.records if r.task == task_key]

    def best(self, task_key: str, target_class: str | None = None) -> Record | None:
        """The best record of the task (on ``target_class``, when given) by :func:`best_of`."""
        return best_of([r for r in self.for_task(task_key)
                        if target_class is None or r.target.get("class") == target_class])


def best_of(records: list[Record]) -> Record | None:
    """The one rule for a task's best config; the job's report and ``compile`` (``TuningLog.best``) both use it.

    The deciding records are the valid confirmation re-measurements (tuner ``CONFIRM``) when there are any,
    else all valid records: the job ends by measuring its finalists and the default again, back to back, the
    fairest comparison, whereas the search's fastest record may owe its place to one lucky measurement (so a
    config found after the last confirmation counts only once a later job confirms it). Among the deciding
    records the config with the lowest cost wins; a config measured in several records counts with its
    :func:`upper_median` record. None when no record is valid.
    """
    valid = [r for r in records if r.valid]
    deciding = [r for r in valid if r.tuner == CONFIRM] or valid
    by_config: dict[str, list[Record]] = {}
    for r in deciding:
        by_config.setdefault(config_key(r.config), []).append(r)
    medians = [upper_median(rs, key=lambda r: r.median) for rs in by_config.values()]
    return min(medians, key=lambda r: r.median, default=None)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_records(path: Path) -> Iterable[Record]:
    """Records of ``path``; corrupt lines are skipped with a warning, unknown schemas refused."""
    fields = set(Record.__dataclass_fields__)
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                warnings.warn(f"{path}:{number}: skipping a corrupt tuning record ({e})", stacklevel=2)
                continue
            schema = data.get("schema")
            if schema != SCHEMA_VERSION:
                raise TuningError(f"{path}:{number}: tuning record schema version {schema!r} is not supported by "
                                  f"tosac {__version__} (it reads version {SCHEMA_VERSION}); "
                                  "re-tune, or use the tosac version that wrote the log")
            try:
                yield Record(**{k: v for k, v in data.items() if k in fields})
            except TypeError as e:
                warnings.warn(f"{path}:{number}: skipping an incomplete tuning record ({e})", stacklevel=2)

"""Which config each kernel compiles with: the best record of a tuning log.

``compile`` reads the log the caller names, or by default the log shipped for
the target's class (package data ``tosac.tuning_logs``, or the folder named by
``TOSAC_TUNING_LOGS``). The tuner writes the logs; this module only reads
them, so the driver does not depend on the tuner.
"""
from __future__ import annotations

import functools
import os
import warnings
from importlib import resources
from pathlib import Path

from tosac.ir.graph import Graph
from tosac.pipeline.tasks import extract_tasks, target_class
from tosac.pipeline.tuning_log import TuningLog
from tosac.schedules.space import Config
from tosac.targets import Target, get_target


def best_configs(graph: Graph, target: str | Target, log: TuningLog | str | Path,
                 optimised: bool = False) -> tuple[dict[str, Config], list[str]]:
    """Best valid config per kernel of ``graph`` from ``log``; and the kernels that have no record.

    Records whose config is not a point of the kernel's template space (an unknown knob, a value not in the
    knob's list) are skipped with a warning naming the log and line, so one bad record cannot abort a compile.
    """
    target = get_target(target)
    if not isinstance(log, TuningLog):
        log = TuningLog(log)
    klass = target_class(target)
    configs: dict[str, Config] = {}
    missing: list[str] = []
    for task in extract_tasks(graph, target, optimised):
        best = log.best(task.key, klass, task.space)
        for name in task.kernel_names:
            if best is None:
                missing.append(name)
            else:
                configs[name] = best.config
    return configs, missing


def tuned_configs(optimised: Graph, target: Target, tuning_log: str | Path | TuningLog | bool | None
                  ) -> dict[str, Config]:
    """Configs per kernel name for ``compile``: from ``tuning_log``, the shipped log (None, True) or none (False).

    A log the caller names warns about the kernels it has no record for; the shipped log does not (most
    graphs are not among the shipped models).
    """
    if tuning_log is False:
        return {}
    explicit = tuning_log is not None and tuning_log is not True
    log = tuning_log if explicit else default_log_for(target)
    if log is None:
        return {}
    if not explicit:
        log = shipped_log(log)
    configs, missing = best_configs(optimised, target, log, optimised=True)
    if explicit:
        warn_untuned(missing, str(getattr(log, "path", log)))
    return configs


@functools.lru_cache(maxsize=8)
def _parsed_log(path: str, mtime_ns: int, size: int) -> TuningLog:
    return TuningLog(path)


def shipped_log(path: Path) -> TuningLog:
    """A read-only log parsed once per process and file version (compile consults it on every call)."""
    stat = path.stat()
    return _parsed_log(str(path), stat.st_mtime_ns, stat.st_size)


def shipped_logs_folder() -> Path:
    """Where the shipped logs are: ``$TOSAC_TUNING_LOGS``, else the ``tosac.tuning_logs`` package data."""
    root = os.environ.get("TOSAC_TUNING_LOGS")
    return Path(root) if root else Path(str(resources.files("tosac.tuning_logs")))


def default_log_for(target: Target) -> Path | None:
    """The shipped log (``<class>.jsonl``) for ``target``'s class, when there is one."""
    path = shipped_logs_folder() / (target_class(target).replace("/", "_") + ".jsonl")
    return path if path.exists() else None


def warn_untuned(missing: list[str], log_name: str) -> None:
    if missing:
        warnings.warn(f"no tuning record in {log_name} for {len(missing)} kernel(s) "
                      f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}): using default configs",
                      stacklevel=4)

"""Reading tuning results: the end-of-job summary table and `tosac tune report LOG [--plot]`."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tosac.errors import TosacError
from tosac.pipeline.tuning_log import TuningLog
from tosac.tune.job import TaskReport, _best_so_far


def summary_table(reports: list[TaskReport]) -> str:
    lines = [f"{'kernel':<34} {'x':>2} {'trials':>6} {'default us':>11} {'tuned us':>9} {'speedup':>8} {'GOPS':>7}"]
    for r in reports:
        gops = f"{r.best_gops:.1f}" if r.task.mac_count else "-"
        lines.append(f"{r.task.pattern[:34]:<34} {r.task.weight:>2} {r.trials:>6} {r.default_seconds * 1e6:>11.1f} "
                     f"{r.best_seconds * 1e6:>9.1f} {r.speedup:>7.2f}x {gops:>7}")
    total_default = sum(r.default_seconds * r.task.weight for r in reports)
    total_best = sum(r.best_seconds * r.task.weight for r in reports)
    if total_best:
        lines.append(f"model (kernel time, weighted): {total_default * 1e6:.1f} us -> {total_best * 1e6:.1f} us "
                     f"({total_default / total_best:.2f}x)")
    return "\n".join(lines)


def print_report(path: Path, plot: Path | None) -> int:
    if not path.exists():
        raise TosacError(f"tuning log '{path}' does not exist")
    log = TuningLog(path)
    by_task = defaultdict(list)
    for record in log.records:
        by_task[(record.task, record.pattern, record.tuner, record.seed)].append(record)
    print(f"{'kernel':<34} {'tuner':<7} {'trials':>6} {'valid':>6} {'errors':<24} {'best us':>9}")
    curves = {}
    for (task, pattern, tuner, seed), records in by_task.items():
        records.sort(key=lambda r: r.trial)
        errors = defaultdict(int)
        for r in records:
            if not r.valid:
                errors[r.error] += 1
        best = min((r.median for r in records if r.valid), default=float("inf"))
        text = ", ".join(f"{k}:{v}" for k, v in errors.items()) or "-"
        print(f"{pattern[:34]:<34} {tuner:<7} {len(records):>6} {sum(r.valid for r in records):>6} {text:<24} "
              f"{best * 1e6:>9.1f}")
        curves[f"{pattern[:24]} {task[:6]} {tuner} s{seed}"] = _best_so_far(
            [r.median if r.valid else float("inf") for r in records])
    if plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise TosacError("--plot needs matplotlib: pip install 'tosac[plot]'") from None
        fig, ax = plt.subplots(figsize=(8, 5))
        for label, curve in curves.items():
            finite = [c * 1e6 if c < float("inf") else None for c in curve]
            ax.plot(range(1, len(curve) + 1), finite, label=label)
        ax.set_xlabel("trials")
        ax.set_ylabel("best time so far (us)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        print(f"wrote {plot}")
    return 0

"""Tuning benchmark: XGBoost-guided search against random search on five int8 layers.

    python benchmarks/tuning.py [--trials 64] [--seeds 3] [--only gemm,fc] [--json out.json] [--plot curves.png]

For every layer (those of benchmarks/kernels.py: GEMM 512^3, FC 1x1024x1024,
conv 3x3 56x56x64->64, pointwise 28x28x128->256, depthwise 3x3 56x56x128,
raw int8 -> int32 layers) and every seed, both tuners tune the layer's kernel
for ``--trials`` measured trials with the real LocalRunner (correctness
checked before timing), single-threaded (the ``threads`` knob pinned to 1, as
the ONNX Runtime peer runs). The job's finalists and the default are measured
again at the end of each run. Reported per layer:
- best-so-far GOPS after each trial (curves, optional PNG),
- trials each tuner needs to reach 95% of the best configuration either found
  (median over seeds; "-" if not reached),
- the tuned speedup over the template's default config,
- tuned GOPS against ONNX Runtime (MatMulInteger / ConvInteger, and
  QLinearConv where it applies) measured in the same run, and % of peak,
- measured trials per second and wall time per tuning run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tosac.tune import LocalRunner, TuningLog, extract_tasks, tune_task

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("kernels_bench", HERE / "kernels.py")
kernels = importlib.util.module_from_spec(_spec)
sys.modules["kernels_bench"] = kernels
_spec.loader.exec_module(kernels)


def _trials_to(history: list[float], target_seconds: float) -> int | None:
    for i, t in enumerate(history):
        if t <= target_seconds:
            return i + 1
    return None


def run_layer(layer, trials: int, seeds: int, jobs: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, layer.x_shape, dtype=np.int8)
    w = rng.integers(-128, 128, layer.w_shape, dtype=np.int8)
    graph = kernels.tosac_graph(layer, w)
    (task,) = extract_tasks(graph, "host")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tuner in ("xgb", "random"):
            for seed in range(seeds):
                started = time.monotonic()
                report = tune_task(task, trials, TuningLog(Path(tmp) / f"{tuner}{seed}.jsonl"), tuner, seed,
                                   LocalRunner(jobs=jobs, seed=seed), fixed={"threads": 1})
                wall = time.monotonic() - started
                runs[(tuner, seed)] = {"history": report.history, "default": report.default_seconds,
                                       "best": report.best_seconds, "config": report.best_config, "wall": wall,
                                       "trials_per_second": report.new_trials / wall}
    best = min(r["best"] for r in runs.values())
    macs = task.mac_count
    out = {"layer": layer.name, "macs": macs, "best_seconds": best, "runs": {}}
    for (tuner, seed), r in runs.items():
        r["trials_to_95"] = _trials_to(r["history"], best / 0.95)
        out["runs"][f"{tuner}:{seed}"] = r
    # ORT, measured now, against the best tuned config measured again in the same rounds.
    import tosac
    best_run = min(runs.values(), key=lambda r: r["best"])
    exe = tosac.compile(graph, "host", {task.builder().name: best_run["config"]})
    default_exe = tosac.compile(graph, "host")
    peers = {"tuned": lambda: exe.run({"x": x}), "default": lambda: default_exe.run({"x": x})}
    fn, why = kernels.ort_layer(layer, x, w, unsigned=True)
    if fn is not None:
        peers["ort"] = fn
    out["ort_note"] = why
    measured = kernels.time_interleaved(peers, 30)
    out["gops"] = {k: 2 * macs / v[0] / 1e9 for k, v in measured.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", help="comma-separated layer names")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--plot", help="write best-so-far curves here (PNG, needs matplotlib)")
    args = p.parse_args(argv)
    peak, how = kernels.peak_gops()
    print(f"peak: {peak:.0f} GOPS ({how})")
    results = []
    header = (f"{'layer':<10} {'xgb→95%':>8} {'rand→95%':>9} {'default':>8} {'tuned':>7} {'speedup':>8} "
              f"{'ORT':>7} {'tuned/ORT':>9} {'% peak':>7} {'trials/s':>9} {'s/run':>6}")
    print(header + "\n" + "-" * len(header))
    for layer in kernels.LAYERS:
        if args.only and layer.name not in args.only.split(","):
            continue
        r = run_layer(layer, args.trials, args.seeds, args.jobs)
        results.append(r)
        med = lambda xs: "-" if any(v is None for v in xs) else f"{int(np.median(xs))}"  # noqa: E731
        xgb = [r["runs"][f"xgb:{s}"]["trials_to_95"] for s in range(args.seeds)]
        rnd = [r["runs"][f"random:{s}"]["trials_to_95"] for s in range(args.seeds)]
        tps = np.median([v["trials_per_second"] for v in r["runs"].values()])
        wall = np.median([v["wall"] for v in r["runs"].values()])
        g = r["gops"]
        ort = g.get("ort")
        ort_text = f"{ort:.1f}" if ort else "n/a"
        ratio_text = f"{g['tuned'] / ort:.2f}x" if ort else "n/a"
        print(f"{layer.name:<10} {med(xgb):>8} {med(rnd):>9} {g['default']:>8.1f} {g['tuned']:>7.1f} "
              f"{g['tuned'] / g['default']:>7.2f}x {ort_text:>7} {ratio_text:>9} {100 * g['tuned'] / peak:>6.0f}% "
              f"{tps:>9.1f} {wall:>6.0f}")
    print("\nxgb/rand→95%: median trials to reach 95% of the best configuration either tuner found "
          "('-': not reached by some seed). GOPS re-measured in alternating rounds after tuning.")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_gops": peak, "layers": results}, indent=1, default=str))
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.5), squeeze=False)
        for ax, r in zip(axes[0], results):
            for key, run in r["runs"].items():
                gops = [2 * r["macs"] / t / 1e9 if t < float("inf") else 0 for t in run["history"]]
                ax.plot(range(1, len(gops) + 1), gops, color="C0" if key.startswith("xgb") else "C1",
                        alpha=0.8, label=key)
            ax.set_title(r["layer"])
            ax.set_xlabel("trials")
            ax.set_ylabel("best GOPS so far")
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

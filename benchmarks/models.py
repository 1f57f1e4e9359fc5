"""Every model of tosac.models vs ONNX Runtime, single thread, and how long tosac takes to compile each.

For each model and format (QDQ, QOperator): tosac's latency (host, shipped tuning log) and ONNX Runtime's on
the same file with the same inputs (ORT gets the real values of tosac's int8 inputs), one thread each, in
rounds that alternate between the two, medians; their ratio; tosac's cold compile (a fresh process and an
empty object cache, so LLVM compiles everything: wall seconds, and CPU seconds of that process and its
compile workers) and warm compile (the same process again, objects from the disk cache); and agreement with
ORT on seeded sample inputs, as max |difference| in output LSB. The header names the CPU, its int8
dot-product features and the load average: other processes skew wall-clock figures on a busy machine.
A model that cannot be built or imported is skipped with the reason.

    python benchmarks/models.py [--models kws,efficientnet_b0] [--formats qdq,qoperator] [--compile-only]
                                [--jobs N] [--seconds 2] [--inputs 4] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
              "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def cpu_description() -> dict:
    """The CPU's name and the int8 dot-product features that decide tosac's and ORT's kernels."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"cpu": name, "cores": len(os.sched_getaffinity(0)), "avx512_vnni": "avx512_vnni" in flags,
            "avx_vnni": "avx_vnni" in flags, "amx": bool({"amx_int8", "amx_tile"} & flags),
            "load_average": os.getloadavg()[0]}


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")       # utime + stime


def compile_child(name: str, fmt: str) -> None:
    """(Run in a fresh process with an empty $TOSAC_CACHE_DIR.) Print the cold and warm compile figures as JSON."""
    import tosac
    from tosac import models
    from tosac.runtime import objects

    graph = models.load(name, fmt)
    wall, cpu = time.perf_counter(), time.process_time()
    exe = tosac.compile(graph, "host")
    cold = time.perf_counter() - wall
    cold_cpu = time.process_time() - cpu
    try:
        from tosac.runtime import workers
        cold_cpu += sum(_process_cpu_seconds(w.process.pid) for w in workers.pool().workers)
    except (ImportError, OSError):
        pass                                    # a tosac without compile workers, or not Linux
    objects.clear_memory_cache()
    wall = time.perf_counter()
    tosac.compile(graph, "host")
    warm = time.perf_counter() - wall
    print(json.dumps({"cold_s": cold, "cold_cpu_s": cold_cpu, "warm_s": warm,
                      "kernels": len(exe.program.info["kernels"]),
                      "llvm_modules": len(getattr(exe.program, "parts", ()) or [exe.program.object_code])}))


def compile_times(name: str, fmt: str, jobs: int | None) -> dict:
    """Cold and warm compile of one model in a fresh process with an empty object cache."""
    with tempfile.TemporaryDirectory(prefix="tosac-bench-cache-") as cache:
        env = dict(os.environ, TOSAC_CACHE_DIR=cache)
        if jobs:
            env["TOSAC_COMPILE_JOBS"] = str(jobs)
        done = subprocess.run([sys.executable, __file__, "--compile-child", name, fmt], env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "compile failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_feed(graph, sess, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ORT's inputs for tosac's ``feed``: the real values of quantized inputs, other inputs in ORT's type."""
    quantization = graph.metadata.get("io_quantization", {})
    out = {}
    for spec in sess.get_inputs():
        value, q = feed[spec.name], quantization.get(spec.name)
        if q is not None:
            value = (value.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])
        out[spec.name] = value.astype(_ORT_TYPES.get(spec.type, value.dtype))
    return out


def agreement(graph, exe, sess, feeds: list[dict]) -> float:
    """Max |tosac - ORT| over the outputs: in output LSB where the output is quantized, else absolute."""
    quantization = graph.metadata.get("io_quantization", {})
    names = [o.name for o in sess.get_outputs()]
    worst = 0.0
    for feed in feeds:
        ours = exe.run(feed)
        theirs = dict(zip(names, sess.run(None, ort_feed(graph, sess, feed))))
        for out in graph.outputs:
            q = quantization.get(out)
            if q is not None:
                want = np.rint(theirs[out] / np.float32(q["scale"])).astype(np.int64) + q["zero_point"]
                diff = np.abs(ours[out].astype(np.int64) - want)
            else:
                diff = np.abs(ours[out].astype(np.float64) - theirs[out].astype(np.float64))
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def latencies(peers: dict, seconds: float, rounds: int = 5) -> dict[str, float]:
    """Median seconds per call of each peer; rounds alternate between the peers (same machine state for each)."""
    for fn in peers.values():
        fn()                                             # warm-up
    estimate = {k: _time(fn, 1) for k, fn in peers.items()}
    runs = {k: max(1, int(seconds / rounds / max(t, 1e-7))) for k, t in estimate.items()}
    samples: dict[str, list[float]] = {k: [] for k in peers}
    for _ in range(rounds):
        for key, fn in peers.items():
            samples[key].append(_time(fn, runs[key]))
    return {k: float(np.median(v)) for k, v in samples.items()}


def _time(fn, runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs


def bench(name: str, fmt: str, args: argparse.Namespace) -> dict:
    import tosac
    from tosac import models

    row = {"model": name, "format": fmt, **compile_times(name, fmt, args.jobs)}
    if args.compile_only:
        return row
    graph = models.load(name, fmt)
    exe = tosac.compile(graph, "host")
    sess = session(models.path(name, fmt))
    feeds = models.sample_inputs(name, graph, count=max(1, args.inputs))
    feed, real = feeds[0], ort_feed(graph, sess, feeds[0])
    times = latencies({"tosac": lambda: exe.run(feed), "ort": lambda: sess.run(None, real)}, args.seconds)
    row.update(tosac_ms=times["tosac"] * 1e3, ort_ms=times["ort"] * 1e3, speedup_vs_ort=times["ort"] / times["tosac"],
               max_diff_vs_ort=agreement(graph, exe, sess, feeds) if args.inputs else None)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated (default: every model of tosac.models)")
    parser.add_argument("--formats", default="qdq,qoperator")
    parser.add_argument("--compile-only", action="store_true", help="only the cold and warm compile figures")
    parser.add_argument("--jobs", type=int, help="compile processes ($TOSAC_COMPILE_JOBS; default: the cores)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing budget per peer and model")
    parser.add_argument("--inputs", type=int, default=4, help="seeded sample inputs for the agreement figure")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--compile-child", nargs=2, metavar=("MODEL", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compile_child:
        compile_child(*args.compile_child)
        return

    import tosac
    from tosac import models

    cpu = cpu_description()
    try:
        import onnxruntime as ort
        peer = f"onnxruntime {ort.__version__}"
    except ImportError:
        if not args.compile_only:
            parser.error("onnxruntime is needed for the latency comparison (pip install 'tosac[bench]'), "
                         "or use --compile-only")
        peer = "no onnxruntime"
    print(f"tosac {getattr(tosac, '__version__', '')} vs {peer}; one thread each, medians of alternating rounds")
    print(f"CPU: {cpu['cpu']}, {cpu['cores']} usable cores; AVX-512 VNNI: {'yes' if cpu['avx512_vnni'] else 'no'}, "
          f"AVX-VNNI: {'yes' if cpu['avx_vnni'] else 'no'}, AMX: {'yes' if cpu['amx'] else 'no'}; "
          f"load average {cpu['load_average']:.1f}")
    if not (cpu["avx512_vnni"] or cpu["avx_vnni"]):
        print("note: no VNNI on this CPU: ONNX Runtime's u8s8 int8 kernels (vpmaddubsw) saturate 16-bit pair sums, "
              "so its results can differ from tosac's (exact) by more than rounding")
    print("cold: fresh process, empty object cache (cpu: that process and its compile workers); "
          "warm: same process, objects from the disk cache")
    print(f"{'model':<20}{'format':<10}{'kernels':>8}{'tosac ms':>10}{'ORT ms':>9}{'ORT/tosac':>10}"
          f"{'cold s':>8}{'cold cpu s':>11}{'warm s':>8}{'max diff':>9}")
    rows = []
    for name in (args.models.split(",") if args.models else models.names()):
        for fmt in args.formats.split(","):
            try:
                row = bench(name, fmt, args)
            except Exception as exc:               # noqa: BLE001 - a model that does not import yet is skipped
                print(f"{name:<20}{fmt:<10}skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
                rows.append({"model": name, "format": fmt, "skipped": f"{type(exc).__name__}: {exc}"})
                continue
            rows.append(row)

            def cell(key: str, spec: str, width: int, unit: str = "") -> str:
                text = "-" if row.get(key) is None else f"{row[key]:{spec}}{unit}"
                return f"{text:>{width}}"
            print(f"{name:<20}{fmt:<10}{row['kernels']:>8}{cell('tosac_ms', '.2f', 10)}{cell('ort_ms', '.2f', 9)}"
                  f"{cell('speedup_vs_ort', '.2f', 10, 'x')}{cell('cold_s', '.2f', 8)}{cell('cold_cpu_s', '.2f', 11)}"
                  f"{cell('warm_s', '.2f', 8)}{cell('max_diff_vs_ort', 'g', 9)}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu, "peer": peer, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

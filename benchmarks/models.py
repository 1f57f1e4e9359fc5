"""Every model of tosac.models vs ONNX Runtime and LiteRT, single thread, and how long tosac takes to compile each.

For each model and format (QDQ, QOperator): tosac's latency (host, shipped tuning log) and ONNX Runtime's on
the same file with the same inputs (ORT gets the real values of tosac's int8 inputs), one thread each, in
rounds that alternate between the two, medians; their ratio; tosac's cold compile (a fresh process and an
empty object cache, so LLVM compiles everything: wall seconds, and CPU seconds of that process and its
compile workers) and warm compile (the same process again, objects from the disk cache); and agreement with
ORT on seeded sample inputs, as max |difference| in output LSB. The header names the CPU, its int8
dot-product features and the load average: other processes skew wall-clock figures on a busy machine.
A model that cannot be built or imported is skipped with the reason.

The ``tflite`` format (each network's QDQ model as an int8 TFLite file) is
timed against LiteRT with its default XNNPACK kernels (the fastest CPU path
users have for these files) and with its reference kernels (BUILTIN_REF, the
semantics tosac reproduces), one thread each, alternating; agreement is the
share of output elements equal to the reference kernels' (tosac's must be 1)
and how far XNNPACK's are from them.

    python benchmarks/models.py [--models kws,efficientnet_b0] [--formats qdq,qoperator,tflite] [--compile-only]
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


def session(path: Path, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Its workers spin after a run by default: in alternating rounds they would take a core from the next peer.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


def latencies(timers: dict, seconds: float, rounds: int = 5) -> dict[str, float]:
    """Median seconds per call of each peer, given as a timer ``runs -> seconds per run``; rounds alternate
    between the peers (same machine state for each)."""
    for timer in timers.values():
        timer(1)                                         # warm-up
    estimate = {k: timer(1) for k, timer in timers.items()}
    runs = {k: max(1, int(seconds / rounds / max(t, 1e-7))) for k, t in estimate.items()}
    samples: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(rounds):
        for key, timer in timers.items():
            samples[key].append(timer(runs[key]))
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
    times = latencies({"tosac": _timer(lambda: exe.run(feed)), "ort": _timer(lambda: sess.run(None, real))},
                      args.seconds)
    row.update(tosac_ms=times["tosac"] * 1e3, ort_ms=times["ort"] * 1e3, speedup_vs_ort=times["ort"] / times["tosac"],
               max_diff_vs_ort=agreement(graph, exe, sess, feeds) if args.inputs else None)
    return row


def litert_interpreter(path: Path, reference: bool, threads: int = 1):
    from ai_edge_litert import interpreter as litert

    resolver = litert.OpResolverType.BUILTIN_REF if reference else litert.OpResolverType.AUTO
    it = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=resolver, num_threads=threads)
    it.allocate_tensors()
    return it


def litert_run(it, feed: list[np.ndarray]) -> list[np.ndarray]:
    for d, x in zip(it.get_input_details(), feed):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def bench_tflite(name: str, args: argparse.Namespace) -> dict:
    """tosac vs LiteRT-XNNPACK vs LiteRT's reference kernels on the TFLite form, and their agreement."""
    import tosac
    from tosac import models

    row = {"model": name, "format": "tflite", **compile_times(name, "tflite", args.jobs)}
    if args.compile_only:
        return row
    path = models.path(name, "tflite")
    graph = models.load(name, "tflite")
    exe = tosac.compile(graph, "host")
    xnnpack, ref = litert_interpreter(path, False), litert_interpreter(path, True)
    feeds = models.sample_inputs(name, graph, count=max(1, args.inputs))
    equal = xnn_equal = total = xnn_worst = 0
    for feed in feeds:
        values = [feed[n] for n in graph.inputs]
        want, fast, ours = litert_run(ref, values), litert_run(xnnpack, values), exe.run(feed)
        for k, out in enumerate(graph.outputs):
            equal += int((ours[out] == want[k]).sum())
            xnn_equal += int((fast[k] == want[k]).sum())
            xnn_worst = max(xnn_worst, int(np.abs(fast[k].astype(np.int64) - want[k]).max()))
            total += want[k].size
    feed = feeds[0]
    values = [feed[n] for n in graph.inputs]
    litert_run(xnnpack, values)
    litert_run(ref, values)
    times = latencies({"tosac": _timer(lambda: exe.run(feed)), "xnnpack": _timer(xnnpack.invoke),
                       "reference": _timer(ref.invoke)}, args.seconds)
    row.update(tosac_ms=times["tosac"] * 1e3, xnnpack_ms=times["xnnpack"] * 1e3,
               reference_ms=times["reference"] * 1e3, speedup_vs_xnnpack=times["xnnpack"] / times["tosac"],
               speedup_vs_reference=times["reference"] / times["tosac"], exact_share=equal / total,
               xnnpack_equal_share=xnn_equal / total, xnnpack_max_lsb=xnn_worst)
    return row


def bench_threads(name: str, threads: list[int], seconds: float) -> list[dict]:
    """Per thread count: tosac on the ONNX (QDQ) and TFLite forms, ORT on the ONNX form, LiteRT-XNNPACK on the
    TFLite form, all with that many threads, in alternating rounds; and tosac's scaling over one thread.

    tosac is timed in its native loop (``time_runs``: what a C caller of the compiled model sees) and through
    ``Executable.run`` (plus input checks and output allocation in Python); the peers through their Python
    calls with inputs set once (``invoke``, ``session.run``)."""
    import tosac
    from tosac import models

    graph = models.load(name)
    (feed,) = models.sample_inputs(name, graph, count=1)
    has_tflite = "tflite" in models.MODELS[name].formats
    tgraph = models.load(name, "tflite") if has_tflite else None
    rows = []
    for t in threads:
        exe = tosac.compile(graph, "host", threads=t)
        sess = session(models.path(name), t)
        real = ort_feed(graph, sess, feed)
        peers = {"tosac": lambda runs: exe.time_runs(feed, runs),
                 "tosac_run": _timer(lambda: exe.run(feed)), "ort": _timer(lambda: sess.run(None, real))}
        if has_tflite:
            texe = tosac.compile(tgraph, "host", threads=t)
            xnnpack = litert_interpreter(models.path(name, "tflite"), False, t)
            (tfeed,) = models.sample_inputs(name, tgraph, count=1)
            litert_run(xnnpack, [tfeed[n] for n in tgraph.inputs])
            peers.update({"tosac_tflite": lambda runs: texe.time_runs(tfeed, runs), "xnnpack": _timer(xnnpack.invoke)})
        times = latencies(peers, seconds)
        rows.append({"model": name, "threads": t, **{f"{k}_ms": v * 1e3 for k, v in times.items()}})
    base = rows[0]["tosac_ms"] if threads[0] == 1 else None
    for row in rows:
        best_peer = min(row.get("ort_ms", np.inf), row.get("xnnpack_ms", np.inf))
        row["best_peer_over_tosac"] = best_peer / row["tosac_ms"]
        row["tosac_scaling"] = base / row["tosac_ms"] if base else None
    return rows


def _timer(fn):
    """``fn`` as a timer: seconds per call over ``runs`` back-to-back calls."""
    return lambda runs: _time(fn, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated (default: every model of tosac.models)")
    parser.add_argument("--formats", default="qdq,qoperator,tflite")
    parser.add_argument("--compile-only", action="store_true", help="only the cold and warm compile figures")
    parser.add_argument("--jobs", type=int, help="compile processes ($TOSAC_COMPILE_JOBS; default: the cores)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing budget per peer and model")
    parser.add_argument("--inputs", type=int, default=4, help="seeded sample inputs for the agreement figure")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--threads", metavar="N,N,...",
                        help="instead of the tables above: tosac, ORT and LiteRT-XNNPACK with each thread count "
                        "(e.g. 1,2; 'all' = the usable cores), and tosac's scaling")
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
    try:
        from ai_edge_litert import interpreter  # noqa: F401
        import importlib.metadata
        peer += f", ai-edge-litert {importlib.metadata.version('ai-edge-litert')}"
    except ImportError:
        if "tflite" in args.formats.split(",") and not args.compile_only:
            parser.error("ai-edge-litert is needed for the tflite comparison (pip install 'tosac[test]')")
    if args.threads:
        threads_table(args, cpu, peer)
        return
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
    formats = args.formats.split(",")
    onnx_formats = [f for f in formats if f != "tflite"]
    for name in (args.models.split(",") if args.models else models.names()):
        for fmt in onnx_formats:
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
    if "tflite" in formats:
        print(f"\nTFLite form vs LiteRT (XNNPACK: default kernels; ref: BUILTIN_REF, the semantics); exact: share "
              "of output elements equal to the reference kernels'")
        print(f"{'model':<20}{'kernels':>8}{'tosac ms':>10}{'XNN ms':>9}{'XNN/tosac':>10}{'ref ms':>9}"
              f"{'ref/tosac':>10}{'exact':>8}{'XNN=ref':>8}{'XNN LSB':>8}{'cold s':>8}")
        for name in (args.models.split(",") if args.models else models.names()):
            if "tflite" not in models.MODELS[name].formats:
                continue
            try:
                row = bench_tflite(name, args)
            except Exception as exc:               # noqa: BLE001 - a model that does not import yet is skipped
                print(f"{name:<20}skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
                rows.append({"model": name, "format": "tflite", "skipped": f"{type(exc).__name__}: {exc}"})
                continue
            rows.append(row)
            if args.compile_only:
                print(f"{name:<20}{row['kernels']:>8}{'':>64}{row['cold_s']:>8.2f}")
                continue
            print(f"{name:<20}{row['kernels']:>8}{row['tosac_ms']:>10.3f}{row['xnnpack_ms']:>9.3f}"
                  f"{row['speedup_vs_xnnpack']:>9.2f}x{row['reference_ms']:>9.2f}{row['speedup_vs_reference']:>9.1f}x"
                  f"{row['exact_share']:>8.4f}{row['xnnpack_equal_share']:>8.4f}{row['xnnpack_max_lsb']:>8}"
                  f"{row['cold_s']:>8.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu, "peer": peer, "rows": rows}, f, indent=1)


def threads_table(args: argparse.Namespace, cpu: dict, peer: str) -> None:
    from tosac import models

    counts = [len(os.sched_getaffinity(0)) if t == "all" else int(t) for t in args.threads.split(",")]
    print(f"tosac vs {peer}; medians of alternating rounds. CPU: {cpu['cpu']}, {cpu['cores']} usable cores, "
          f"AVX-512 VNNI {'yes' if cpu['avx512_vnni'] else 'no'}, AMX {'yes' if cpu['amx'] else 'no'}; "
          f"load average {cpu['load_average']:.1f}")
    print("tosac: ONNX (QDQ) form, native loop; run(): the same through Executable.run (Python checks and output "
          "allocation); tosac tfl: the TFLite form, native; ORT on the ONNX form and XNN (LiteRT-XNNPACK, TFLite "
          "form) through their Python calls; best/tosac: the faster peer's time over tosac's; scaling: tosac over "
          "its 1-thread time")
    print(f"{'model':<20}{'thr':>4}{'tosac ms':>10}{'run() ms':>10}{'tosac tfl':>10}{'ORT ms':>9}{'XNN ms':>9}"
          f"{'best/tosac':>11}{'scaling':>9}")
    rows = []
    for name in (args.models.split(",") if args.models else models.names()):
        try:
            found = bench_threads(name, counts, args.seconds)
        except Exception as exc:               # noqa: BLE001 - a model that does not import yet is skipped
            print(f"{name:<20}skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
            continue
        rows += found
        for row in found:
            def cell(key: str, width: int, spec: str = ".3f", unit: str = "") -> str:
                return f"{'-' if row.get(key) is None else format(row[key], spec) + unit:>{width}}"
            print(f"{name:<20}{row['threads']:>4}{cell('tosac_ms', 10)}{cell('tosac_run_ms', 10)}"
                  f"{cell('tosac_tflite_ms', 10)}"
                  f"{cell('ort_ms', 9)}{cell('xnnpack_ms', 9)}{cell('best_peer_over_tosac', 10, '.2f', 'x')} "
                  f"{cell('tosac_scaling', 8, '.2f', 'x')}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu, "peer": peer, "threads": rows}, f, indent=1)


if __name__ == "__main__":
    main()

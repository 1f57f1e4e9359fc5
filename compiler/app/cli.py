"""The `tosac` command line.

    tosac inspect MODEL                 print a graph: ops, shapes, dtypes
    tosac compile MODEL -o model.o      compile a graph for a target; print its kernels and memory plan
    tosac run MODEL --input x=x.npy     run a graph (compiled for the host, or on the reference interpreter)
    tosac demo [--model kws[.tflite]]   the whole product on a bundled MLPerf Tiny model
    tosac tune MODEL [--cluster auto]   tune a model's kernels (here, or on a Ray cluster of workers)
    tosac worker --connect HOST:PORT    lend this machine's cores to a tuning cluster
    tosac prune MODEL --sparsity 0.8    compiler-aware pruning (tuned sparse kernels decide the choices)
    tosac conformance tosa-cts ...      the official TOSA conformance tests
    tosac conformance onnx-node ...     ONNX's backend node tests for the ops the ONNX frontend claims

Errors the user can fix (a bad file, an invalid graph) print one clear line
and exit with status 2; nothing prints a traceback unless --debug is given.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from tosac.app.paths import atomic_report, check_input_file, check_log, check_output_dir, check_output_file
from tosac.conformance.execute import TARGETS
from tosac.errors import TosacError
from tosac.runtime.memory_plan import ENV_LIMIT, parse_bytes


MODEL_HELP = ("a model: .onnx, .tflite, .tosa or tosac .json file, or a bundled model name (kws, vww, ic, ad; "
              "kws.tflite for its TFLite form)")
MODEL_FORMATS = {".onnx": "ONNX", ".tflite": "TFLite flatbuffer", ".tosa": "TOSA flatbuffer",
                 ".json": "tosac JSON form"}


def _load(args: argparse.Namespace):
    """The graph named by ``args.model``: an ONNX file (through the frontend), a TOSA/JSON file, or a bundled model."""
    from tosac import models
    from tosac.ir.serialize import check_regular_file

    spec = args.model
    path = Path(spec)
    suffix = path.suffix.lower()
    if not os.path.lexists(spec) and spec in models.names():
        path, suffix = models.path(spec), ".onnx"       # its quantized ONNX form: --io and --input-shape apply
    elif not os.path.lexists(spec) and suffix == ".tflite" and path.stem in models.names():
        path = models.path(path.stem, "tflite")         # a bundled model's TFLite form: kws.tflite
    elif not os.path.lexists(spec) and not suffix:
        raise TosacError(f"unknown model '{spec}'; bundled models are: {', '.join(models.names())}, "
                         f"or give a path to a {'/'.join(MODEL_FORMATS)} file")
    elif suffix not in MODEL_FORMATS:
        formats = ", ".join(f"{ext} ({what})" for ext, what in MODEL_FORMATS.items())
        raise TosacError(f"{spec}: unknown model file extension '{suffix}'; tosac reads {formats}, "
                         f"or a bundled model name (see tosac models)")
    check_regular_file(path)                              # a FIFO would block, /dev/zero would never end
    if suffix == ".onnx":
        from tosac.frontends.onnx import load as load_onnx
        return load_onnx(path, io=args.io or "quantized", input_shapes=_parse_shapes(args.input_shape or []))
    for option, given in (("--input-shape", args.input_shape), ("--io", args.io)):
        if given:
            raise TosacError(f"{option} applies to ONNX models only; '{spec}' is a {MODEL_FORMATS[suffix]} "
                             f"file whose shapes and types are fixed")
    if suffix == ".tflite":
        from tosac.frontends.tflite import load as load_tflite
        return load_tflite(path)
    from tosac.ir.serialize import load
    return load(path)


def _parse_shapes(pairs: list[str]) -> dict[str, list[int]]:
    shapes = {}
    for pair in pairs:
        name, sep, dims = pair.partition("=")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            sep = ""
        if not sep:
            raise TosacError(f"--input-shape '{pair}': expected NAME=D0,D1,... (e.g. input=1,3,96,96)")
    return shapes


def _model_argument(p: argparse.ArgumentParser, help_text: str = MODEL_HELP) -> None:
    p.add_argument("model", help=help_text)
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                   help="ONNX: the value of an input's dynamic dimensions (repeatable)")
    p.add_argument("--io", choices=["quantized", "float"], default=None,
                   help="ONNX: keep quantized inputs/outputs as integers (default) or as the model's floats")


def cmd_inspect(args: argparse.Namespace) -> int:
    from tosac.ir.serialize import format_graph
    from tosac.ir.verifier import verify

    graph = _load(args)
    print(format_graph(graph))
    for name, q in graph.metadata.get("io_quantization", {}).items():
        print(f"quantized I/O: {name} {q['dtype']} real = {q['scale']:.6g} * (q - {q['zero_point']})")
    verify(graph)
    print("verified: OK")
    return 0


def _parse_inputs(pairs: list[str]) -> dict[str, np.ndarray]:
    inputs = {}
    for pair in pairs:
        name, sep, file = pair.partition("=")
        if not sep:
            raise TosacError(f"--input '{pair}': expected NAME=FILE.npy")
        try:
            inputs[name] = np.load(file)
        except (OSError, ValueError) as e:
            raise TosacError(f"--input {name}: cannot read '{file}' as a .npy array: {e}") from None
    return inputs


def _load_config(path: str | None) -> dict | None:
    if not path:
        return None
    import json
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise TosacError(f"--config: cannot read '{path}' as JSON: {e}") from None
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise TosacError(f"--config '{path}': expected {{kernel name: {{knob: value}}}}")
    return config


def cmd_compile(args: argparse.Namespace) -> int:
    from tosac.ir.atomic_io import check_outputs, write_output
    from tosac.pipeline.driver import compile as compile_graph

    check_outputs({"the model": args.model},
                  {"--output": args.output, "--header": args.header, "--static-lib": args.static_lib})
    for option in ("output", "header", "static_lib"):
        check_output_file(getattr(args, option), "--" + option.replace("_", "-"))
    graph = _load(args)
    standalone = bool(args.header or args.static_lib)
    exe = compile_graph(graph, args.target, _load_config(args.config), standalone=standalone,
                        tuning_log=args.tuning_log, threads=args.threads)
    info = exe.program.info
    kernels = info["kernels"]
    print(f"target {info['target']}: {len(kernels)} kernels, compiled in {info['compile_seconds'] * 1e3:.0f} ms "
          f"({info['compile_seconds'] * 1e3 / max(len(kernels), 1):.1f} ms per kernel)")
    for k in kernels:
        macs = f"{k.mac_count / 1e6:.2f} M MACs" if k.mac_count else ""
        print(f"  {k.name:<44} {k.template:<10} {macs:>14}  {k.config}")
    print(f"memory: {exe.memory_plan.describe()}")
    if args.output:
        write_output(args.output, exe.object_code, "--output")
        print(f"wrote {args.output} ({len(exe.object_code)} bytes of {info['target']} object code)")
    if args.header or args.static_lib:
        from tosac.pipeline.artefacts import header_text, write_static_lib
        from tosac.targets import get_target
        target = get_target(args.target)
        if args.header:
            write_output(args.header, header_text(graph, exe, target).encode(), "--header")
            entries = "model_run and model_run_parallel" if exe.threads > 1 else "model_run"
            print(f"wrote {args.header} (entry point {entries}, arena {exe.memory_plan.arena_bytes} bytes)")
        if args.static_lib:
            write_static_lib(exe.object_code, Path(args.static_lib), target)
            print(f"wrote {args.static_lib}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tosac.conformance.execute import run_graph_on_target

    out_dir = check_output_dir(args.output_dir, "--output-dir")
    graph = _load(args)
    inputs = _parse_inputs(args.input or [])
    if args.random_inputs:
        from tosac.ir.random_inputs import random_inputs
        missing = {name: ttype for name, ttype in graph.input_types().items() if name not in inputs}
        inputs.update(random_inputs(missing, args.seed))
    outputs = run_graph_on_target(graph, inputs, args.target, _load_config(args.config), threads=args.threads)
    if args.check and args.target != "reference":
        from tosac.ir.reference.interpreter import run
        expected = run(graph, inputs)
        differing = [n for n in outputs if not np.array_equal(outputs[n], expected[n])]
        if differing:
            print(f"MISMATCH against the reference interpreter in {differing}", file=sys.stderr)
            return 1
        print("bit-exact against the reference interpreter")
    for name, value in outputs.items():
        print(f"{name}: {value.dtype}{list(value.shape)}")
        print(np.array2string(value, threshold=64, edgeitems=4))
        if out_dir:
            _save_npy(out_dir, name, value)
    return 0


def _threads_argument(p: argparse.ArgumentParser, more: str = "") -> None:
    p.add_argument("--threads", metavar="N|auto", help="split every kernel with a parallel loop over N threads of the "
                   f"native pool ('auto': the CPUs this process may use; default: one, or the tuned choice){more}")


def _save_npy(folder: Path, name: str, value: np.ndarray) -> None:
    """``folder/NAME.npy``, written all or nothing; a name from the model never leaves ``folder``."""
    import io
    from tosac.ir.atomic_io import write_output

    safe = "".join("_" if c in "/\\\0" else c for c in name)
    buffer = io.BytesIO()
    np.save(buffer, value)
    write_output(folder / f"{safe}.npy", buffer.getvalue(), f"--output-dir (output '{name}')")


def cmd_profile(args: argparse.Namespace) -> int:
    from tosac.app.profile import plot_profile, profile_graph
    from tosac.ir.atomic_io import check_outputs, write_output
    from tosac.ir.random_inputs import random_inputs

    check_outputs({"the model": args.model}, {"--plot": args.plot, "--json": args.json})
    for option in ("plot", "json"):
        check_output_file(getattr(args, option), "--" + option)
    graph = _load(args)
    inputs = random_inputs(graph.input_types(), args.seed)
    report = profile_graph(graph, inputs, Path(args.model).name, args.target, args.threads, args.tuning_log,
                           seconds=args.seconds)
    print(report.table(args.top))
    if args.json:
        import json
        write_output(args.json, json.dumps(report.to_json(), indent=1).encode(), "--json")
        print(f"wrote {args.json}")
    if args.plot:
        plot_profile(report, args.plot, args.top or 20)
        print(f"wrote {args.plot}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tosac.app.demo import run_demo
    return run_demo(args.model, Path(args.out_dir), runs=args.runs)


def cmd_models(args: argparse.Namespace) -> int:
    from tosac import models

    print(f"{'name':<19} {'family':<13} {'files':<9} {'MACs':>9}  {'formats':<28} inputs")
    for r in models.list():
        inputs = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in r.input_shapes.items())
        print(f"{r.name:<19} {r.family:<13} {'shipped' if r.shipped else 'generated':<9} {r.macs / 1e6:8.1f}M  "
              f"{','.join(r.formats):<28} {inputs}")
        if args.ops:
            print(f"{'':<19} ops: {' '.join(r.op_types)}")
    return 0


def cmd_tosa_cts(args: argparse.Namespace) -> int:
    from tosac.conformance.tosa_cts import run_cts

    _check_report_outputs(args)
    started = time.monotonic()
    results = run_cts(target=args.target, ops_regex=args.ops, seed=args.seed, jobs=args.jobs,
                      full=not args.sample, per_op=args.per_op,
                      tests_dir=Path(args.tests) if args.tests else None,
                      keep=Path(args.keep) if args.keep else None, profile=args.profile)
    return _report(results, args, "tosa-cts" if args.profile == "int" else f"tosa-cts-{args.profile}", args.target,
                   {"sample": args.sample, "profile": args.profile},
                   f"time: {time.monotonic() - started:.0f} s")


def cmd_tune(args: argparse.Namespace) -> int:
    if args.model == "report":
        if not args.log_file:
            raise TosacError("usage: tosac tune report LOG [--plot curves.png]")
        from tosac.tune.report import print_report
        if os.path.lexists(args.log_file):
            check_input_file(args.log_file, "tuning log")
        check_output_file(args.plot, "--plot")
        return print_report(Path(args.log_file), Path(args.plot) if args.plot else None)
    from tosac.tune import tune
    from tosac.tune.report import summary_table

    log = args.log or (Path(args.model).stem + f".{args.target}.jsonl")
    check_log(log, "--log")
    graph = _load(args)
    fixed = {}
    for pair in args.fix or []:
        knob, sep, value = pair.partition("=")
        if not sep:
            raise TosacError(f"--fix '{pair}': expected KNOB=VALUE")
        fixed[knob] = int(value) if value.lstrip("-").isdigit() else value
    runner = None
    if args.cluster:
        from tosac.tune.cluster import RayRunner
        runner = RayRunner(args.cluster, timeout=args.timeout, seed=args.seed)
    reports = tune(graph, args.target, trials=args.trials, log=log, tuner=args.tuner, seed=args.seed,
                   runner=runner, jobs=args.jobs, timeout=args.timeout, early_stopping=args.early_stopping,
                   progress=not args.quiet, fixed=fixed)
    print(summary_table(reports))
    print(f"log: {log}  (use it with: tosac compile {args.model} --tuning-log {log})")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from tosac.tune.cluster import start_worker

    if args.cores is not None and args.cores < 1:
        raise TosacError(f"--cores {args.cores}: expected at least 1")
    return start_worker(args.connect, args.head, args.port, args.cores, block=not args.no_block)


def _csv(text: str | None, what: str, convert=str) -> list | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise TosacError(f"--{what}: expected a comma-separated list, got '{text}'")
    try:
        return [convert(t) for t in items]
    except ValueError:
        raise TosacError(f"--{what}: expected comma-separated numbers, got '{text}'") from None


def cmd_prune(args: argparse.Namespace) -> int:
    import json
    from tosac.ir.atomic_io import check_outputs, write_output
    from tosac.prune.search import DEFAULT_DENSITIES, DEFAULT_PATTERNS, search

    if (args.sparsity is None) == (args.latency_budget is None):
        raise TosacError("give exactly one goal: --sparsity FRACTION or --latency-budget MS")
    if args.out and Path(args.out).suffix.lower() not in (".tosa", ".json"):
        raise TosacError(f"--out '{args.out}': use a .tosa (TOSA flatbuffer) or .json file name")
    check_outputs({"the model": args.model}, {"--out": args.out, "--json": args.json})
    check_output_file(args.out, "--out")
    check_output_file(args.json, "--json")
    log = args.log or (Path(args.model).stem + f".prune.{args.target}.jsonl")
    check_log(log, "--log")
    graph = _load(args)
    result = search(graph, args.target, sparsity=args.sparsity,
                    latency_budget=None if args.latency_budget is None else args.latency_budget / 1e3,
                    patterns=_csv(args.patterns, "patterns") or DEFAULT_PATTERNS,
                    densities=_csv(args.densities, "densities", float) or DEFAULT_DENSITIES,
                    layers=_csv(args.layers, "layers"), trials=args.trials, log=log, seed=args.seed,
                    progress=not args.quiet)
    print(result.table())
    print(f"log: {log}  (compile the pruned model with: tosac compile {args.out or 'PRUNED'} --tuning-log {log})")
    if args.out:
        from tosac.ir.serialize import save
        save(result.graph, args.out)
        print(f"wrote {args.out}")
    if args.json:
        write_output(args.json, json.dumps(result.to_json(), indent=1).encode(), "--json")
        print(f"wrote {args.json}")
    return 0


def _report(results, args, suite: str, target: str, extra: dict | None = None, footer: str = "") -> int:
    """The summary table, then the JSON and JUnit reports asked for; 1 when a test failed."""
    from tosac.conformance import results as res

    print(res.format_table(results))
    if footer:
        print(footer)
    meta = {"suite": suite, "target": target, "seed": args.seed, "ops": args.ops,
            "examples": getattr(args, "examples", None), **(extra or {})}
    if args.json:
        with atomic_report(args.json, "--json") as tmp:
            res.write_json(results, tmp, meta)
    if args.junit:
        with atomic_report(args.junit, "--junit") as tmp:
            res.write_junit(results, tmp, f"{suite}.{target}")
    return 1 if res.counts(results)["failed"] else 0


def _check_report_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable --json/--junit paths before a suite runs for minutes."""
    from tosac.ir.atomic_io import check_outputs

    check_outputs({}, {"--json": args.json, "--junit": args.junit})
    check_output_file(args.json, "--json")
    check_output_file(args.junit, "--junit")


def cmd_builtin(args: argparse.Namespace) -> int:
    from tosac.conformance.builtin import run_cross

    _check_report_outputs(args)
    results, seconds = run_cross([args.target], args.ops, args.examples, args.seed)
    print(f"time on {args.target}: {seconds[args.target]:.0f} s (compile and run)")
    return _report(results, args, "builtin", args.target)


def cmd_cross(args: argparse.Namespace) -> int:
    from tosac.conformance.builtin import run_cross

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS or t == "reference"]
    if unknown:
        raise TosacError(f"--targets: unknown {unknown}; choose from {[t for t in TARGETS if t != 'reference']}")
    _check_report_outputs(args)
    results, seconds = run_cross(targets, args.ops, args.examples, args.seed)
    print("time per target: " + ", ".join(f"{t} {s:.0f} s" for t, s in seconds.items()))
    return _report(results, args, "cross", "+".join(targets))


def cmd_onnx_nodes(args: argparse.Namespace) -> int:
    from tosac.conformance.onnx_nodes import run_suite

    _check_report_outputs(args)
    results, seconds = run_suite(args.target, args.filter, quantized=args.quantized)
    print(f"time on {args.target}: {seconds:.0f} s (import, compile and run)")
    for r in results:
        if r.outcome == "skipped":
            print(f"  skipped {r.name}: {r.message[:150]}")
    args.seed, args.ops = None, args.filter
    return _report(results, args, "onnx-node", args.target)


def cmd_onnx_agreement(args: argparse.Namespace) -> int:
    import json

    from tosac.conformance.onnx_agreement import TIE_EPSILON, agreement_report, format_report
    from tosac.ir.atomic_io import write_output

    check_output_file(args.json, "--json")

    def model(spec: str | None, default_format: str):
        """A file, or a bundled model name (NAME or NAME:FORMAT) as a ModelProto."""
        from tosac import models
        name, _, fmt = (spec or "").partition(":")
        if spec is None or Path(spec).exists() or name not in models.names():
            return spec
        return models.onnx_model(name, fmt or default_format)

    def samples(spec: str):
        """A bundled model's own inputs (token ids within its vocabulary), else seeded random ones."""
        from tosac import models
        name = spec.partition(":")[0]
        if Path(spec).exists() or name not in models.names():
            return None
        return lambda graph, count, seed: models.sample_inputs(name, graph, count, seed)

    epsilon = TIE_EPSILON if args.tie_epsilon is None else args.tie_epsilon
    report = agreement_report(model(args.model, "qdq"), float_model=model(args.float_model, "float"),
                              inputs=args.inputs, seed=args.seed, target=args.target, node_inputs=args.node_inputs,
                              tie_epsilon=epsilon, labels=(args.model, args.float_model), samples=samples(args.model))
    print(format_report(report))
    worst = report.worst_node_lsb()
    gate = None
    if args.max_node_lsb is not None:
        gate = worst <= args.max_node_lsb
        print(f"\n--max-node-lsb {args.max_node_lsb}: worst node differs by {worst} LSB from ORT: "
              f"{'within' if gate else 'EXCEEDED'}")
    if args.json:
        data = {**report.to_json(), "max_node_lsb": args.max_node_lsb, "within_max_node_lsb": gate}
        write_output(args.json, json.dumps(data, indent=1).encode(), "--json")
        print(f"wrote {args.json}")
    return 1 if gate is False else 0


def _suite_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ops", metavar="REGEX", help="only operators (or fused:<pattern>) whose lower-case name matches")
    p.add_argument("--examples", type=int, default=10, help="hypothesis examples per operator (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn cases (default 0)")
    p.add_argument("--json", metavar="FILE", help="write results as JSON")
    p.add_argument("--junit", metavar="FILE", help="write results as JUnit XML")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tosac", description="A tensor compiler for quantized neural networks with exact TOSA "
        "integer semantics.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--memory-limit", metavar="SIZE",
                        help="refuse graphs whose run needs more memory than SIZE (e.g. 512M, 4G, or 'none'; "
                        "default $TOSAC_MEMORY_LIMIT, else half the physical memory)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="print a graph's ops, shapes and dtypes, and verify it",
                       description="Print a model (.tosa flatbuffer or tosac .json) block by block: inputs, "
                       "every op with operand and result types and attributes, outputs; then verify it "
                       "against the TOSA specification's ERROR_IF rules.")
    _model_argument(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("compile", help="compile a model for a target and write its object code",
                       description="Compile a model through the graph passes, fusion and the schedule templates "
                       "(default configs, or --config) to LLVM and object code for --target; print the kernels "
                       "with their templates and configs, the memory plan and the compile time.")
    _model_argument(p)
    p.add_argument("-o", "--output", help="write the object file here")
    p.add_argument("--target", default="host", help="host, x86_64, x86_64-avx2, x86_64-avx512vnni, aarch64, "
                   "aarch64-dotprod or armv7 (default host)")
    p.add_argument("--config", metavar="FILE.json", help="knob values per kernel name: {kernel: {knob: value}}")
    p.add_argument("--header", metavar="MODEL.h", help="write a C header for the object's entry point "
                   "int model_run(const void *inputs[], void *outputs[], void *arena)")
    p.add_argument("--static-lib", metavar="MODEL.a", help="also write the object as a static library")
    p.add_argument("--tuning-log", metavar="LOG.jsonl", help="use the best records of this tuning log")
    _threads_argument(p, "; the object then also exports model_run_parallel, which takes your thread pool")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("profile", help="time every kernel of a compiled model: share, GOPS, %% of peak, config",
                       description="Compile a model for --target (which must run on this machine) and time each "
                       "kernel alone in native code on the buffers of a real run (seeded random inputs), threaded "
                       "kernels on the thread pool; print per kernel its share of the time, microseconds, GOPS, "
                       "%% of the measured int8 peak of the cores it used, GB/s, template and config, and the "
                       "whole run's time.")
    _model_argument(p)
    p.add_argument("--target", default="host", help="a target that runs here (default host)")
    _threads_argument(p)
    p.add_argument("--tuning-log", metavar="LOG.jsonl", help="use the best records of this tuning log")
    p.add_argument("--top", type=int, default=25, help="list the N slowest kernels (0: all; default 25)")
    p.add_argument("--seconds", type=float, default=0.02, help="time per kernel measurement (default 0.02)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--plot", metavar="PROFILE.png", help="also draw the slowest kernels' times (needs matplotlib)")
    p.add_argument("--json", metavar="FILE", help="also write the profile as JSON")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("tune", help="tune a model's kernels (or: tosac tune report LOG)",
                       description="Search the config space of every kernel of MODEL with an XGBoost cost model "
                       "(or random / grid search), measuring each candidate in isolation after checking its "
                       "output against the reference interpreter; every trial is appended to --log, and an "
                       "interrupted job resumes from it. 'tosac tune report LOG [--plot curves.png]' summarises a "
                       "log and draws best-so-far curves.")
    _model_argument(p, MODEL_HELP + "; or 'report'")
    p.add_argument("log_file", nargs="?", help="with 'report': the log to summarise")
    p.add_argument("--target", default="host", help="target to tune for (default host)")
    p.add_argument("--trials", type=int, default=64, help="measured trials per kernel (default 64)")
    p.add_argument("--log", help="tuning log (JSON lines; default MODEL.TARGET.jsonl); resumed when it exists")
    p.add_argument("--tuner", default="xgb", choices=["xgb", "random", "grid"], help="search (default xgb)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (recorded in the log)")
    p.add_argument("--jobs", "-j", type=int, default=2, help="parallel builds (timing is always one at a time)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a candidate counts as hung")
    p.add_argument("--early-stopping", type=int, default=None, metavar="N",
                   help="stop a kernel after N trials without improvement")
    p.add_argument("--fix", action="append", metavar="KNOB=VALUE",
                   help="pin a knob in every kernel that has it, e.g. --fix threads=1 (repeatable)")
    p.add_argument("--cluster", metavar="auto|ray://HOST:PORT|local:N",
                   help="measure on a Ray cluster (needs tosac[cluster]): 'auto' = the cluster this machine "
                   "joined (tosac worker), ray://HOST:PORT = a remote one, local:N = N worker slots here. Each "
                   "candidate is timed on a worker whose CPU runs the target natively, one per core")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--plot", help="with 'report': write best-so-far curves to this PNG (needs matplotlib)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("worker", help="lend this machine's cores to a tuning cluster (Ray)",
                       description="Start Ray on this machine (ray start) advertising the target classes it runs "
                       "natively, from its own host detection (e.g. tosac/x86_64/avx512vnni/512 or "
                       "tosac/aarch64/sdot/128), one measuring slot per core. On the first machine: tosac worker "
                       "--head; on every other one (an AArch64 board included): tosac worker --connect HEAD:6379; "
                       "then, on any of them: tosac tune MODEL --target T --cluster auto.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--connect", metavar="HOST:PORT", help="join the cluster whose head listens there")
    where.add_argument("--head", action="store_true", help="start a new cluster with this machine as its head")
    p.add_argument("--port", type=int, default=6379, help="with --head: the port to listen on (default 6379)")
    p.add_argument("--cores", type=int, help="measuring slots to lend (default: the CPUs this process may use)")
    p.add_argument("--no-block", action="store_true", help="return once Ray runs in the background "
                   "(stop it with 'ray stop')")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("prune", help="compiler-aware pruning: prune where the tuned kernels get faster",
                       description="For each searched layer and each pattern x density, prune only that layer, "
                       "tune its kernel briefly (dense and sparse schedules) and record its latency and the weight "
                       "magnitude removed; then choose per layer the pruning (or none) that reaches the goal "
                       "(--sparsity or --latency-budget) with the least magnitude removed, among prunings at least "
                       "as fast as the dense layer. The pruned model is compiled with the log, checked bit for bit "
                       "against the reference interpreter and timed against the dense model. Measurements go to "
                       "--log (resumed when it exists).")
    _model_argument(p)
    p.add_argument("--target", default="host", help="target to measure on (must run here; default host)")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--sparsity", type=float, metavar="FRACTION",
                      help="goal: fraction of zero weights over the searched layers, e.g. 0.8")
    goal.add_argument("--latency-budget", type=float, metavar="MS", help="goal: model latency in milliseconds")
    p.add_argument("--patterns", metavar="P,P,...", help="pruning patterns (default block4x1,block1x4,block4x4,"
                   "2:4,unstructured)")
    p.add_argument("--densities", metavar="D,D,...", help="fractions of weights kept (default 0.5,0.3,0.2,0.1,0.05)")
    p.add_argument("--layers", metavar="NAME,...", help="layers to search (default: every prunable layer with "
                   "input channels divisible by 4 and at least 1024 weights)")
    p.add_argument("--trials", type=int, default=16, help="tuning trials per candidate (default 16)")
    p.add_argument("--log", help="tuning log (default MODEL.prune.TARGET.jsonl); resumed when it exists")
    p.add_argument("--seed", type=int, default=0, help="seed of the tuner and of the check inputs (default 0)")
    p.add_argument("--out", metavar="PRUNED.tosa", help="write the pruned graph (.tosa or .json)")
    p.add_argument("--json", metavar="FILE", help="write the result (choices, candidate table, latencies) as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("run", help="run a model (compiled for the host, or on the reference interpreter)",
                       description="Compile a model for --target and run it, or run it on the exact reference "
                       "interpreter (--target reference); print its outputs.")
    _model_argument(p)
    p.add_argument("--target", default="host", choices=list(TARGETS), help="where to run (default host)")
    p.add_argument("--config", metavar="FILE.json", help="knob values per kernel name (see tosac compile)")
    p.add_argument("--check", action="store_true", help="also run the reference interpreter and compare the bits")
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="an input array (repeatable)")
    p.add_argument("--random-inputs", action="store_true", help="fill missing inputs with seeded random values")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-inputs (default 0)")
    p.add_argument("--output-dir", help="also save each output as NAME.npy here")
    _threads_argument(p, " (host targets)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the whole product on a bundled MLPerf Tiny model",
                       description="Import a bundled model from its int8 ONNX form, compile it for the host with "
                       "the shipped tuning log, run it and check the bits against the reference interpreter, time "
                       "it against ONNX Runtime, check the official TOSA reference model agrees, compile it for "
                       "AArch64 and ARMv7 and check identical bits under qemu, and print a summary. With --model kws.tflite the "
                       "TFLite form is imported and LiteRT's reference kernels (bit for bit) and XNNPACK are the peers.")
    p.add_argument("--model", default="kws", help="bundled model: kws, vww, ic or ad (default kws); name.tflite "
                   "for its TFLite form, checked against LiteRT")
    p.add_argument("--runs", type=int, default=200, help="timed runs per latency figure (default 200)")
    p.add_argument("--out-dir", default="demo-out", help="where to write the imported model (default demo-out)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list the bundled models (shipped, or generated on first use and cached)",
                       description="List tosac.models: name, family, shipped or generated (on first use, into "
                       "$TOSAC_CACHE_DIR or ~/.cache/tosac; needs onnxruntime), MACs of the float network, formats "
                       "and inputs. Any name works wherever a model is expected (tosac run NAME ...).")
    p.add_argument("--ops", action="store_true", help="also list each float network's ONNX op types")
    p.set_defaults(func=cmd_models)

    conf = sub.add_parser("conformance", help="run conformance suites",
                          description="Conformance suites that prove tosac's results bit-exact.")
    csub = conf.add_subparsers(dest="suite", required=True, metavar="SUITE")
    p = csub.add_parser(
        "tosa-cts", help="the official TOSA conformance tests (needs the 'conformance' extra)",
        description="Generate the official TOSA 1.0.2 conformance tests using tosa-tools — the integer "
        "profile (with the int16, int4, doubleround, inexactround and controlflow extensions) or, with "
        "--profile fp, the floating-point profile (with controlflow) — run them with tosac as the system "
        "under test through the official runner, and check the results with the official compliance rules "
        "(EXACT for integers; ULP, ABS_ERROR and DOT_PRODUCT bounds for floats, from the reference model's "
        "precise run). Negative (ERROR_IF) tests pass only when "
        "the tosac verifier rejects the graph. Prints a per-operator table and 'N passed, N failed, N "
        "skipped'; exits 1 on any failure.")
    p.add_argument("--target", default="reference", choices=list(TARGETS),
                   help="where tosac runs the graphs (default: reference interpreter)")
    p.add_argument("--profile", default="int", choices=["int", "fp"],
                   help="int: tosa-pro-int and extensions (default); fp: tosa-pro-fp (fp32, fp16) with controlflow")
    p.add_argument("--ops", metavar="REGEX", help="only operators whose lower-case name matches REGEX")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the positive tests' data (the negative ERROR_IF tests stay the official ones: the "
                   "generator selects them with its default seed) and of the --sample choice (default: the "
                   "official data)")
    p.add_argument("--jobs", "-j", type=int, default=2, help="parallel jobs (default 2)")
    p.add_argument("--sample", action="store_true",
                   help="a fast seeded sample (small shapes, --per-op tests per operator) instead of the "
                   "full conformance suite")
    p.add_argument("--per-op", type=int, default=6, help="tests per operator with --sample (default 6)")
    p.add_argument("--tests", metavar="DIR", help="run already generated tests found under DIR instead of "
                   "generating (e.g. the output of tosa_verif_conformance_generator)")
    p.add_argument("--json", metavar="FILE", help="write per-test results as JSON")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    p.add_argument("--keep", metavar="DIR", help="keep generated tests, results and runner log in DIR")
    p.set_defaults(func=cmd_tosa_cts)

    p = csub.add_parser(
        "builtin", help="hypothesis-generated graphs for every operator and fused pattern, on one target",
        description="Draw graphs for every operator and the fused int8 patterns with hypothesis (seeded), compile "
        "them for --target, run them (ARM targets: all in one qemu process) and compare every output bit for "
        "bit with the reference interpreter. Prints a per-operator table and 'N passed, N failed, N skipped'; "
        "exits 1 on any failure.")
    p.add_argument("--target", default="host", choices=[t for t in TARGETS if t != "reference"])
    _suite_options(p)
    p.set_defaults(func=cmd_builtin)

    p = csub.add_parser(
        "cross", help="the builtin graphs on several targets: identical bits everywhere",
        description="Run the builtin suite's graphs on every target in --targets; a case passes only when every "
        "target's outputs equal the reference interpreter's, bit for bit (so all targets agree).")
    p.add_argument("--targets", default="host,aarch64,armv7", help="comma-separated (default host,aarch64,armv7)")
    _suite_options(p)
    p.set_defaults(func=cmd_cross)

    p = csub.add_parser(
        "onnx-node", help="ONNX's own backend node tests for the operators the ONNX frontend claims",
        description="Run every node test shipped in the onnx wheel whose operators the ONNX frontend legalises: "
        "import it, run it on --target and compare with the test's expected outputs (integers bit for bit, "
        "floats within rtol 1e-3). Variants the frontend rejects with a typed error are listed as skipped with "
        "the reason; tests with known-bad expected data (int8 QLinearMatMul, onnx #6169) are run and reported.")
    p.add_argument("--target", default="reference", choices=list(TARGETS), help="default: reference interpreter")
    p.add_argument("--filter", metavar="TEXT", help="only tests whose name contains TEXT")
    p.add_argument("--quantized", action="store_true",
                   help="instead: every test of a quantization op or with 8/4/2-bit integer tensors, claimed or not")
    p.add_argument("--json", metavar="FILE", help="write results as JSON")
    p.add_argument("--junit", metavar="FILE", help="write results as JUnit XML")
    p.set_defaults(func=cmd_onnx_nodes)

    p = csub.add_parser(
        "onnx-agreement", help="a quantized ONNX model against ONNX Runtime: per node, end to end, vs float",
        description="Compare a quantized ONNX model (QDQ or QOperator) imported by tosac with ONNX Runtime: per "
        "quantized layer, tosac's layer fed ORT's own integer inputs against ORT unoptimised and optimised "
        "(elements differing, max LSB, how many differing elements are near ties of the requantization); end to "
        "end over seeded inputs (top-1 agreement for classifiers next to ORT optimised vs unoptimised, max LSB "
        "and share equal per output); with --float, how often int8 top-1 matches the float model's. The report "
        "is information: exit 0 when it ran, 1 only when --max-node-lsb is exceeded, 2 on bad input.")
    p.add_argument("model", help="a quantized .onnx file, or a bundled model name (kws, or kws:qoperator)")
    p.add_argument("--float", dest="float_model", metavar="FLOAT_MODEL",
                   help="the float .onnx model it was quantized from (or a bundled name: its float network)")
    p.add_argument("--inputs", type=int, default=100, help="seeded inputs end to end (default 100)")
    p.add_argument("--node-inputs", type=int, default=5,
                   help="of those, how many feed the per-node comparison (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    p.add_argument("--target", default="reference", choices=list(TARGETS),
                   help="where tosac runs (default: reference interpreter)")
    p.add_argument("--tie-epsilon", type=float, metavar="LSB",
                   help="a differing element is a near tie when its real value is this close to a .5 boundary "
                   "(default 2^-8 LSB)")
    p.add_argument("--max-node-lsb", type=int, metavar="K",
                   help="exit 1 when some node differs from ORT (either mode) by more than K LSB")
    p.add_argument("--json", metavar="FILE", help="write the full report (every node) as JSON")
    p.set_defaults(func=cmd_onnx_agreement)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.memory_limit is not None:      # through the environment, so worker processes see it too
            parse_bytes(args.memory_limit, "--memory-limit")
            os.environ[ENV_LIMIT] = args.memory_limit
        status = args.func(args)
        sys.stdout.flush()                  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _stdout_closed()
    except TosacError as e:
        if args.debug:
            raise
        print(f"tosac: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tosac: interrupted", file=sys.stderr)
        return 130


def _stdout_closed() -> int:
    """The reader of our output went away (``tosac inspect vww | head -1``): stop quietly, as SIGPIPE would.

    What is still buffered goes to /dev/null so that flushing at exit cannot raise again; 128 + SIGPIPE is the
    status a shell reports for a process the signal ended.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())

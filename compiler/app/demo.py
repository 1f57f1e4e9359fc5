"""``tosac demo``: the whole product on one bundled model, in one command.

Import the model's int8 ONNX form (QDQ, quantized by ONNX Runtime) — or, for
``--model kws.tflite``, its int8 TFLite form — compile it for the host with the
shipped tuning log, run it and check the bits against the reference
interpreter, time it (and ONNX Runtime, or for TFLite LiteRT's reference kernels,
which must agree bit for bit, and its XNNPACK kernels, when installed), check
the official TOSA reference model agrees, compile for AArch64 and ARMv7 and
check identical bits under qemu, and print a summary table.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tosac import models
from tosac.app.paths import check_output_dir
from tosac.conformance import official_model
from tosac.errors import TosacError
from tosac.frontends.onnx import load as load_onnx
from tosac.frontends.tflite import load as load_tflite
from tosac.ir.random_inputs import random_inputs
from tosac.ir.reference.interpreter import run as reference
from tosac.ir.serialize import save
from tosac.pipeline.driver import compile as compile_graph
from tosac.runtime.cross import available
from tosac.targets import get_target

ARM_TARGETS = ("aarch64-dotprod", "armv7")


def _median_seconds(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_demo(model: str = "kws", out_dir: Path = Path("demo-out"), runs: int = 200) -> int:
    """Run the demo (``model``: a bundled name, or ``name.tflite`` for its TFLite form); returns 0 when every
    check agrees bit for bit."""
    tflite = model.endswith(".tflite")
    model = model.removesuffix(".tflite")
    info = models.MODELS.get(model)
    if info is None or (tflite and "tflite" not in info.formats):
        raise TosacError(f"--model: no bundled model '{model}{'.tflite' if tflite else ''}'; choose one of "
                         f"{', '.join(models.names())} (add .tflite for the TFLite form)")
    check_output_dir(out_dir, "--out-dir")
    rows: list[tuple[str, str]] = []
    ok = True

    source = models.path(model, "tflite" if tflite else "qdq")
    kind = "int8 TFLite, written from the QDQ model" if tflite else "QDQ int8, ONNX Runtime quantize_static"
    print(f"== {model}: {info.title}\n   {'TFLite' if tflite else 'ONNX'} ({kind}): {source}")
    start = time.perf_counter()
    graph = load_tflite(source) if tflite else load_onnx(source)
    ops = [op for op in graph.ops if op.name not in ("CONST", "CONST_SHAPE")]
    save(graph, out_dir / f"{model}.tosa")
    print(f"   imported in {time.perf_counter() - start:.2f} s: {len(ops)} TOSA ops; wrote {out_dir / model}.tosa")
    for name, q in graph.metadata["io_quantization"].items():
        print(f"   quantized I/O {name}: {q['dtype']}, real = {q['scale']:.6g} * (q - {q['zero_point']})")

    print("\n== compile for the host (shipped tuning log)")
    exe = compile_graph(graph, "host")
    program = exe.program.info
    macs = sum(k.mac_count for k in program["kernels"])
    for k in program["kernels"]:
        mac_text = f"{k.mac_count / 1e3:8.1f} k MACs" if k.mac_count else " " * 15
        print(f"   {k.pattern:<34} {k.template:<9} {mac_text}  {k.config}")
    print(f"   {len(program['kernels'])} kernels, compiled in {program['compile_seconds']:.2f} s; "
          f"memory: {exe.memory_plan.describe()}")

    inputs = random_inputs(graph.input_types(), seed=1)
    expected = reference(graph, inputs)
    got = exe.run(inputs)
    exact = all(np.array_equal(got[n], expected[n]) for n in graph.outputs)
    ok &= exact
    seconds = _median_seconds(lambda: exe.run(inputs), runs)
    print(f"\n== run: bit-exact against the reference interpreter: {'YES' if exact else 'NO'}")
    print(f"   latency {seconds * 1e6:.0f} us (median of {runs}), {macs / 1e6:.2f} M MACs, "
          f"{macs / seconds / 1e9:.2f} G MAC/s, one thread")
    rows += [("ops / MACs", f"{len(ops)} / {macs / 1e6:.2f} M"), ("host latency", f"{seconds * 1e6:.0f} us"),
             ("host vs reference interpreter", "bit-exact" if exact else "MISMATCH")]
    if tflite:
        peer_rows, same = _litert(source, graph, inputs, got, runs)
        rows += peer_rows
        ok &= same
    else:
        rows += _onnxruntime(source, graph, inputs, got, runs)
    rows += _official(graph, inputs, expected)
    for target in ARM_TARGETS:
        row, same = _arm(graph, target, inputs, expected)
        rows.append(row)
        ok &= same

    print("\n== summary")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"   {key:<{width}}  {value}")
    print(f"\n{'all checks agree bit for bit' if ok else 'SOME CHECKS FAILED'}")
    return 0 if ok else 1


def _onnxruntime(onnx_path: Path, graph, inputs, got, runs: int) -> list[tuple[str, str]]:
    try:
        import onnxruntime as ort
    except ImportError:
        print("\n== ONNX Runtime not installed (pip install onnxruntime) - comparison skipped")
        return [("ONNX Runtime", "not installed")]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    iq = graph.metadata["io_quantization"]
    feed = {n: ((v.astype(np.float32) - iq[n]["zero_point"]) * np.float32(iq[n]["scale"])).astype(np.float32)
            for n, v in inputs.items()}
    theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    worst, equal, total = 0, 0, 0
    for name in graph.outputs:
        q = np.rint(theirs[name] / np.float32(iq[name]["scale"])).astype(np.int64) + iq[name]["zero_point"]
        diff = np.abs(got[name].astype(np.int64) - q)
        worst, equal, total = max(worst, int(diff.max())), equal + int((diff == 0).sum()), total + diff.size
    seconds = _median_seconds(lambda: session.run(None, feed), runs)
    print(f"\n== ONNX Runtime {ort.__version__} (float requantization): max difference {worst} LSB, "
          f"{equal}/{total} outputs equal; latency {seconds * 1e6:.0f} us (one thread)")
    return [("ONNX Runtime latency", f"{seconds * 1e6:.0f} us"),
            ("agreement with ONNX Runtime", f"max {worst} LSB, {equal}/{total} equal")]


def _litert(path: Path, graph, inputs, got, runs: int) -> tuple[list[tuple[str, str]], bool]:
    """LiteRT's reference kernels (the law: bit for bit) and its default XNNPACK kernels (timed), one thread."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        print("\n== LiteRT not installed (pip install ai-edge-litert) - comparison skipped")
        return [("LiteRT", "not installed")], True
    rows, same = [], True
    for label, resolver in (("reference kernels", litert.OpResolverType.BUILTIN_REF),
                            ("XNNPACK", litert.OpResolverType.AUTO)):
        it = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=resolver, num_threads=1)
        it.allocate_tensors()
        for d, name in zip(it.get_input_details(), graph.inputs):
            it.set_tensor(d["index"], inputs[name])
        it.invoke()
        theirs = [it.get_tensor(d["index"]) for d in it.get_output_details()]
        equal = sum(int((got[n] == t).sum()) for n, t in zip(graph.outputs, theirs))
        total = sum(t.size for t in theirs)
        worst = max(int(np.abs(got[n].astype(np.int64) - t).max()) for n, t in zip(graph.outputs, theirs))
        seconds = _median_seconds(it.invoke, runs if resolver != litert.OpResolverType.BUILTIN_REF else 3)
        print(f"\n== LiteRT {label}: {equal}/{total} outputs equal (max difference {worst} LSB); latency "
              f"{seconds * 1e6:.0f} us (one thread)")
        rows += [(f"LiteRT {label} latency", f"{seconds * 1e6:.0f} us"),
                 (f"agreement with LiteRT {label}", f"{equal}/{total} equal, max {worst} LSB")]
        if resolver == litert.OpResolverType.BUILTIN_REF:
            same = equal == total
    return rows, same


def _official(graph, inputs, expected) -> list[tuple[str, str]]:
    if not official_model.available():
        print("\n== official TOSA reference model not installed (the 'conformance' extra) - skipped")
        return [("official TOSA reference model", "not installed")]
    status, official = official_model.run_official(graph, inputs)
    same = status == "TOSA_VALID" and all(np.array_equal(official[n], expected[n]) for n in graph.outputs)
    print(f"\n== official TOSA reference model: {status}, bit-exact with tosac: {'YES' if same else 'NO'}")
    return [("official TOSA reference model", "bit-exact" if same else f"MISMATCH ({status})")]


def _arm(graph, target: str, inputs, expected) -> tuple[tuple[str, str], bool]:
    exe = compile_graph(graph, target)
    if not available(get_target(target)):
        print(f"\n== {target}: {len(exe.object_code)} bytes of object code; install qemu-user and the cross gcc "
              "to run it")
        return (f"{target} under qemu", "not run (no qemu / cross gcc)"), True
    got = exe.run(inputs)
    same = all(np.array_equal(got[n], expected[n]) for n in graph.outputs)
    print(f"\n== {target} under qemu: {len(exe.object_code)} bytes of object code, "
          f"identical bits: {'YES' if same else 'NO'}")
    return (f"{target} under qemu", "identical bits" if same else "MISMATCH"), same

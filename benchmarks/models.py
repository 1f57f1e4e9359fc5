"""The four bundled MLPerf Tiny models: tosac vs ONNX Runtime int8, single thread, measured in one run.

For each model: TOSA ops, MACs, tosac latency (host, shipped tuning log) and
ONNX Runtime's latency on the same QDQ file (and its QOperator form), their
ratio, and agreement on seeded inputs, as max |difference| in quantized steps
(LSB) and the fraction of output elements exactly equal, with two peers: ORT,
and ONNX's reference evaluator (the QDQ model's float semantics per the spec).
Rounds alternate between the peers; medians are reported.

    python benchmarks/models.py [--models kws,vww] [--runs 200] [--inputs 50] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import onnx
import onnx.version_converter
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator

import tosac
from tosac import models
from tosac.ir.random_inputs import random_inputs


def median_us(fn, runs: int, rounds: int = 5) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(runs // rounds):
            fn()
        samples.append((time.perf_counter() - start) / (runs // rounds))
    return float(np.median(samples)) * 1e6


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def agreement(graph, exe, peer, draws: int, seed: int = 0) -> tuple[int, float]:
    """(max |tosac − peer| in LSB, fraction of output elements equal) over ``draws`` seeded int8 inputs.

    ``peer(real_inputs) -> real_outputs`` runs the float-interface ONNX model.
    """
    iq = graph.metadata["io_quantization"]
    name = graph.inputs[0]
    types = {name: graph.tensors[name].type}
    rng = np.random.default_rng(seed)
    worst, equal, total = 0, 0, 0
    for _ in range(draws):
        q = random_inputs(types, rng)[name]
        real = ((q.astype(np.float32) - iq[name]["zero_point"]) * np.float32(iq[name]["scale"])).astype(np.float32)
        ours = exe.run({name: q})
        theirs = peer({name: real})
        for out in graph.outputs:
            want = np.rint(theirs[out] / np.float32(iq[out]["scale"])).astype(np.int64) + iq[out]["zero_point"]
            diff = np.abs(ours[out].astype(np.int64) - want)
            worst, equal, total = max(worst, int(diff.max())), equal + int((diff == 0).sum()), total + diff.size
    return worst, equal / total


def onnx_reference(name: str):
    """ONNX's own reference evaluator: the QDQ model's float semantics exactly as the ONNX spec defines them."""
    model = onnx.version_converter.convert_version(models.onnx_model(name), 21)   # its DequantizeLinear needs >= 19
    evaluator = ReferenceEvaluator(model)
    names = [o.name for o in model.graph.output]
    return lambda feed: dict(zip(names, evaluator.run(None, feed)))


def ort_outputs(sess: ort.InferenceSession):
    names = [o.name for o in sess.get_outputs()]
    return lambda feed: dict(zip(names, sess.run(None, feed)))


def bench(name: str, runs: int, draws: int) -> dict:
    graph = models.load(name)
    exe = tosac.compile(graph, "host")
    kernels = exe.program.info["kernels"]
    macs = sum(k.mac_count for k in kernels)
    iq = graph.metadata["io_quantization"]
    x_name = graph.inputs[0]
    x = random_inputs({x_name: graph.tensors[x_name].type}, seed=1)[x_name]
    real = ((x.astype(np.float32) - iq[x_name]["zero_point"]) * np.float32(iq[x_name]["scale"])).astype(np.float32)
    qdq, qop = session(models.path(name, "qdq")), session(models.path(name, "qoperator"))
    peers = {"tosac": lambda: exe.run({x_name: x}), "ort_qdq": lambda: qdq.run(None, {x_name: real}),
             "ort_qoperator": lambda: qop.run(None, {x_name: real})}
    times: dict[str, list[float]] = {k: [] for k in peers}
    for _ in range(3):                                   # alternate the peers: same machine state for each
        for key, fn in peers.items():
            times[key].append(median_us(fn, runs))
    result = {k: float(np.median(v)) for k, v in times.items()}
    ort_worst, ort_exact = agreement(graph, exe, ort_outputs(qdq), draws)
    ref_worst, ref_exact = agreement(graph, exe, onnx_reference(name), draws)
    ops = sum(op.name not in ("CONST", "CONST_SHAPE") for op in graph.ops)
    return dict(model=name, ops=ops, kernels=len(kernels), macs=macs, **result,
                speedup_vs_ort=min(result["ort_qdq"], result["ort_qoperator"]) / result["tosac"],
                gmacs=macs / result["tosac"] / 1e3, ort_max_lsb=ort_worst, ort_exact=ort_exact,
                onnx_ref_max_lsb=ref_worst, onnx_ref_exact=ref_exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(models.names()))
    parser.add_argument("--runs", type=int, default=200, help="timed runs per measurement")
    parser.add_argument("--inputs", type=int, default=50, help="seeded inputs for the agreement figures")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    print(f"tosac {tosac.__version__ if hasattr(tosac, '__version__') else ''} vs onnxruntime {ort.__version__}, "
          "single thread, medians of alternating rounds")
    header = (f"{'model':<6}{'ops':>5}{'kernels':>8}{'MMACs':>8}{'tosac us':>10}{'ORT QDQ us':>12}{'ORT QOp us':>12}"
              f"{'speedup':>9}{'GMAC/s':>8}  {'vs ORT: max, exact':>19}  {'vs ONNX reference':>18}")
    print(header)
    rows = []
    for name in args.models.split(","):
        r = bench(name, args.runs, args.inputs)
        rows.append(r)
        print(f"{r['model']:<6}{r['ops']:>5}{r['kernels']:>8}{r['macs'] / 1e6:>8.2f}{r['tosac']:>10.0f}"
              f"{r['ort_qdq']:>12.0f}{r['ort_qoperator']:>12.0f}{r['speedup_vs_ort']:>8.2f}x{r['gmacs']:>8.1f}"
              f"  {r['ort_max_lsb']:>9} LSB {r['ort_exact']:>6.1%}  {r['onnx_ref_max_lsb']:>8} LSB {r['onnx_ref_exact']:>6.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

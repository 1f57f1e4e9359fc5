"""Agreement with ONNX Runtime over the model zoo: the issue-15 table, one row per network and format.

    python benchmarks/agreement.py [--models a,b] [--inputs 100] [--target host] [--json agreement.json]

Each row is ``tosac conformance onnx-agreement MODEL --float MODEL``: per node (fed ORT's own int8 inputs) the
max LSB and share of elements equal to ORT optimised; end to end top-1 agreement with ORT next to ORT's own
optimised-vs-unoptimised floor; and top-1 agreement with the float model, tosac int8 vs ORT int8.
"""
from __future__ import annotations

import argparse
import json
import time

from tosac import models
from tosac.conformance.onnx_agreement import agreement_report, summarise


def row(name: str, fmt: str, inputs: int, target: str) -> dict:
    start = time.perf_counter()
    report = agreement_report(models.path(name, fmt), models.onnx_model(name, "float"), inputs=inputs,
                              target=target, node_inputs=3, labels=(f"{name}:{fmt}", name),
                              samples=lambda graph, count, seed: models.sample_inputs(name, graph, count, seed))
    nodes, end = summarise(report.nodes)["vs_optimised"], report.end_to_end
    return {"model": name, "format": fmt, "seconds": round(time.perf_counter() - start, 1),
            "node_max_lsb": nodes["max_lsb"], "node_share_equal": 1 - nodes["differing"] / max(nodes["elements"], 1),
            "node_differing": nodes["differing"], "node_near_ties": nodes["near_ties"], "inputs": end.inputs,
            "top1_tosac_vs_ort": end.top1_tosac_vs_optimised, "top1_ort_floor": end.top1_optimised_vs_unoptimised,
            "top1_float_tosac": end.top1_float_tosac, "top1_float_ort": end.top1_float_ort_optimised,
            "outputs_max_diff_vs_ort": [o.tosac_vs_optimised.max_diff for o in end.outputs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(models.names()))
    parser.add_argument("--formats", default="qdq,qoperator")
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--target", default="host")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        for fmt in args.formats.split(","):
            rows.append(row(name, fmt, args.inputs, args.target))
            print(json.dumps(rows[-1]), flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

"""Sparse vs dense int8 kernels on the pointwise and fully-connected layers of the bundled models.

    python benchmarks/sparse.py [--models vww,kws,ad] [--sparsities 0.5,0.7,0.8,0.9,0.95]
                                [--patterns block16x4,block4x4,block1x4,2:4,1:4,unstructured] [--json out.json]
    python benchmarks/sparse.py --summarise a.json,b.json      # the summary of earlier runs

Each layer is the model's own weight tensor (first occurrence of each distinct
shape), pruned with ``tosac.prune.layer_mask``, in a one-layer graph (CONV2D
or fully connected + per-channel-free RESCALE to int8, as the models fuse
them). For every (layer, pattern, sparsity):

- dense: the register block that is best on the unpruned layer (a grid over
  the dense template's), re-timed next to each sparse measurement;
- sparse: the best of a grid over the sparse formats (panel-sparse and
  N:M-packed with windows of 8 and 16, three register blocks each;
  bsr/unrolled x block_n x m_vectors, block_k 1) — points the tuner chooses
  from;
- chosen: min(dense, sparse), what the tuner's per-kernel choice gives, so
  "chosen / dense" is never above 1 beyond noise.

Every candidate is checked bit for bit against the reference interpreter
before it is timed. Timing: ``Executable.time_runs`` (native back-to-back
runs), median of 7 samples of ~10 ms, one thread.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

import tosac
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run as reference
import tosac.models
from tosac.pipeline.optimise import kernel_builders, optimise_graph
from tosac.prune import layer_mask, prunable_layers
from tosac.targets import get_target

DENSE_GRID = [{"mr": mr, "nr_vectors": nv} for mr, nv in ((6, 4), (4, 4), (6, 2), (8, 2), (4, 2), (3, 4))]
SPARSE_GRID = ([{"format": "panel", "mr": mr, "nr_vectors": nv} for mr, nv in ((6, 2), (4, 4), (8, 1))]
               + [{"format": "packed", "window": w, "mr": mr, "nr_vectors": nv}
                  for w, (mr, nv) in itertools.product((8, 16), ((6, 2), (4, 4), (8, 1)))]
               + [{"format": f, "block_n": bn, "block_k": 1, "m_vectors": mv}
                  for f, bn, mv in itertools.product(("bsr", "unrolled"), (4, 8, 16), (1, 2))])
MIN_REDUCTION = 32         # shallower layers have too little multiply work for skipping zeros to pay


def model_layers(name: str) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
    """(layer, input shape NHWC, weight OHWI) of the model's pointwise layers (IC % 4 == 0, IC >= 32), one per shape."""
    graph = optimise_graph(tosac.models.load(name))
    block = graph.main
    seen, out = set(), []
    for layer in prunable_layers(graph):
        op = next(o for o in block.ops if o.outputs[0] == layer.name)
        weight = block.constant(op.inputs[1])
        shape = block.type_of(op.inputs[0]).shape
        if (op.name != "CONV2D" or weight.shape[1:3] != (1, 1) or weight.shape[3] % 4
                or weight.shape[3] < MIN_REDUCTION or tuple(op.attrs.get("stride", (1, 1))) != (1, 1)):
            continue
        key = (shape, weight.shape)
        if key not in seen:
            seen.add(key)
            out.append((f"{name}/{layer.name}", tuple(shape), weight))
    return out


def layer_graph(x_shape: tuple[int, ...], weight: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, x_shape)
    oc = weight.shape[0]
    y = g.conv2d(x, g.const(weight), g.const(rng.integers(-2000, 2000, size=oc).astype(np.int32)), input_zp=-5,
                 weight_zp=0)
    y = g.rescale(y, DType.INT8, multiplier=np.int32(1518500250), shift=np.int8(39), output_zp=3)
    g.output(y)
    return g.build(), {"x": rng.integers(-128, 128, size=x_shape).astype(np.int8)}


def best_time(graph, inputs, expected, target: str, grid: list[dict]) -> tuple[float, dict]:
    (kb,) = [b for b in kernel_builders(optimise_graph(graph), get_target(target)) if "CONV2D" in b.pattern]
    knobs = {k.name: k.values for k in kb.space.knobs}
    best = (float("inf"), {})
    for point in grid:
        if any(name not in knobs or value not in knobs[name] for name, value in point.items()):
            continue                                   # not offered for this layer (e.g. no zero groups)
        exe = tosac.compile(graph, target, {kb.name: point})
        got = exe.run(inputs)
        if not all(np.array_equal(got[n], expected[n]) for n in expected):
            raise SystemExit(f"BUG: {point} differs from the reference interpreter")
        number = max(1, int(0.01 / max(exe.time_runs(inputs, 3), 1e-9)))
        seconds = float(np.median([exe.time_runs(inputs, number) for _ in range(7)]))
        best = min(best, (seconds, point), key=lambda t: t[0])
    return best


def summarise(rows: list[dict], patterns: list[str], sparsities: list[float]) -> None:
    """Geomean speedups per pattern and sparsity. Every row of a layer runs the same dense code (only the
    weight values differ), so each is compared with the median of that layer's dense timings: one noisy
    dense sample does not make a row look fast or slow."""
    for kind, group in (("pointwise", [r for r in rows if r["input"][1] * r["input"][2] > 1]),
                        ("fully connected", [r for r in rows if r["input"][1] * r["input"][2] == 1])):
        if group:
            print(f"{kind} layers:")
            _summarise_group(group, patterns, sparsities)


def _summarise_group(rows: list[dict], patterns: list[str], sparsities: list[float]) -> None:
    dense = {layer: float(np.median([r["dense_us"] for r in rows if r["layer"] == layer]))
             for layer in {r["layer"] for r in rows}}
    for pattern in patterns:
        nm = ":" in pattern                        # N:M fixes its own sparsity: one summary line
        for target in sparsities[:1] if nm else sparsities:
            near = [r for r in rows if r["pattern"] == pattern and (nm or abs(r["sparsity"] - target) < 0.03)]
            if not near:
                continue
            label = f"{pattern:>12} @ {near[0]['sparsity'] if nm else target:.2f}"
            offered = [dense[r["layer"]] / r["sparse_us"] for r in near if np.isfinite(r["sparse_us"])]
            if not offered:
                print(f"{label}: no sparse schedule offered on any layer (dense kept)")
                continue
            chosen = [max(1.0, dense[r["layer"]] / r["sparse_us"]) for r in near]
            geomean = lambda v: float(np.exp(np.mean(np.log(v))))  # noqa: E731
            print(f"geomean speedup {label}: sparse/dense {geomean(offered):.2f}x over {len(offered)} layers "
                  f"(min {min(offered):.2f}x, max {max(offered):.2f}x), chosen/dense {geomean(chosen):.2f}x "
                  f"over {len(chosen)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="vww,kws")
    ap.add_argument("--sparsities", default="0.5,0.7,0.8,0.9,0.95")
    ap.add_argument("--patterns", default="block16x4,block4x4,block1x4,2:4,1:4,unstructured")
    ap.add_argument("--target", default="host")
    ap.add_argument("--json")
    ap.add_argument("--summarise", help="comma-separated JSON files of earlier runs: print their summary only")
    args = ap.parse_args(argv)
    sparsities = [float(s) for s in args.sparsities.split(",")]
    if args.summarise:
        rows = [r for path in args.summarise.split(",") for r in json.loads(Path(path).read_text())]
        summarise(rows, list(dict.fromkeys(r["pattern"] for r in rows)), sparsities)
        return 0
    rows = []
    print(f"{'layer':28} {'shape':>18} {'pattern':>12} {'sparsity':>8} {'dense us':>9} {'sparse us':>9} "
          f"{'sparse/dense':>12} {'chosen speedup':>14}  sparse config")
    for model in args.models.split(","):
        for index, (name, shape, weight) in enumerate(model_layers(model)):
            graph, inputs = layer_graph(shape, weight, seed=index)
            _, dense_config = best_time(graph, inputs, reference(graph, inputs), args.target, DENSE_GRID)
            for pattern in args.patterns.split(","):
                for sparsity in ([None] if ":" in pattern else sparsities):
                    pruned = np.where(layer_mask(weight, pattern, sparsity), weight, 0).astype(np.int8)
                    graph, inputs = layer_graph(shape, pruned, seed=index)
                    expected = reference(graph, inputs)
                    dense, _ = best_time(graph, inputs, expected, args.target, [dense_config])
                    sparse, config = best_time(graph, inputs, expected, args.target, SPARSE_GRID)
                    actual = 1 - np.count_nonzero(pruned) / pruned.size
                    chosen = min(dense, sparse)            # sparse is inf when the layer offers no sparse point
                    rows.append(dict(layer=name, input=list(shape), weight=list(weight.shape), pattern=pattern,
                                     sparsity=round(actual, 3), dense_us=dense * 1e6, sparse_us=sparse * 1e6,
                                     speedup=dense / sparse, chosen_speedup=dense / chosen, config=config))
                    print(f"{name:28} {str(shape[1:3]) + 'x' + str(weight.shape[3]) + '->' + str(weight.shape[0]):>18} "
                          f"{pattern:>12} {actual:8.2f} {dense * 1e6:9.1f} {sparse * 1e6:9.1f} "
                          f"{dense / sparse:11.2f}x {dense / chosen:13.2f}x  {config}", flush=True)
    summarise(rows, args.patterns.split(","), sparsities)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

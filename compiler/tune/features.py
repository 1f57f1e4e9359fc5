"""Cost-model features: read off the loop nest after a config is applied, plus the knobs.

Loop structure (depth, extents, total iterations, vector lanes, unroll,
threads), memory traffic per innermost iteration (loads, stores), the
micro-kernel's register block and its footprints (weight panel and
activation tile bytes against L1/L2 sizes), arithmetic intensity and the
integer MAC count. Knob values come last (log2 of numbers, an index for
names). Sparse schedules add density, block shape and density, nonzeros per
output row (mean, variance) and index bytes. Missing features are NaN, which
XGBoost handles natively.
"""
from __future__ import annotations

import math

import numpy as np

from tosac.pipeline.tuning_log import config_key
from tosac.schedules import loopnest as ln
from tosac.schedules.generic import Schedule
from tosac.schedules.space import Config, ConfigSpace

L1_BYTES, L2_BYTES = 32 << 10, 1 << 20

LOOP_FEATURES = ["depth", "loops", "log_iterations", "log_inner_extent", "lanes", "unroll", "threads", "loads",
                 "stores", "intrinsics", "mr", "nr", "log_k", "registers", "log_panel_bytes", "log_tile_bytes",
                 "panel_in_l1", "panel_in_l2", "intensity", "log_macs", "prologue",
                 # sparse schedules (NaN for dense ones): what decides whether skipping zeros pays
                 "density", "block_density", "block_n", "block_k", "nnz_row_mean", "nnz_row_var", "log_index_bytes"]
SPARSE_FEATURES = LOOP_FEATURES[-7:]


def _walk(stmts, depth: int, iterations: float, acc: dict) -> None:
    for s in stmts:
        if isinstance(s, ln.For):
            acc["loops"] += 1
            its = iterations * max(s.extent, 1)
            if s.kind is ln.LoopKind.VECTORIZE:
                acc["lanes"] = max(acc["lanes"], s.factor)
            if s.kind is ln.LoopKind.UNROLL:
                acc["unroll"] = max(acc["unroll"], s.factor)
            acc["depth"] = max(acc["depth"], depth + 1)
            if not any(isinstance(b, ln.For) for b in s.body):
                acc["iterations"] += its
                acc["inner_extent"] = max(acc["inner_extent"], s.extent)
            _walk(s.body, depth + 1, its, acc)
        elif isinstance(s, ln.If):
            _walk(s.then, depth, iterations, acc)
        elif isinstance(s, ln.Store):
            acc["stores"] += 1
            acc["loads"] += _count_loads(s.value) + _count_loads(s.index)
        elif isinstance(s, ln.MicroKernel):
            acc["intrinsics"] += 1
            acc.update({k: float(v) for k, v in s.features.items()})


def _count_loads(root) -> int:
    """Loads in an expression tree, walked with a stack (expressions can be thousands of nodes deep)."""
    count, stack = 0, [root]
    while stack:
        e = stack.pop()
        if isinstance(e, ln.Load):
            count += 1
            stack.append(e.index)
        elif isinstance(e, ln.Binary):
            stack += [e.a, e.b]
        elif isinstance(e, ln.Cast):
            stack.append(e.value)
        elif isinstance(e, ln.Select):
            stack += [e.cond, e.a, e.b]
        elif isinstance(e, ln.Intrinsic):
            stack += list(e.args)
    return count


def loop_features(schedule: Schedule, mac_count: int) -> list[float]:
    acc = {"loops": 0, "lanes": 1, "unroll": 1, "depth": 0, "iterations": 0.0, "inner_extent": 1, "stores": 0,
           "loads": 0, "intrinsics": 0}
    _walk(schedule.kernel.body, 0, 1.0, acc)
    mr, nr, k, lanes = acc.get("mr", np.nan), acc.get("nr", np.nan), acc.get("k", np.nan), acc.get("lanes", 1)
    panel = k * nr if not math.isnan(k) else np.nan
    log2 = lambda v: math.log2(v) if v and not math.isnan(v) and v > 0 else np.nan  # noqa: E731
    values = {
        "depth": acc["depth"], "loops": acc["loops"], "log_iterations": log2(acc["iterations"]),
        "log_inner_extent": log2(acc["inner_extent"]), "lanes": acc["lanes"], "unroll": acc["unroll"],
        "threads": schedule.threads, "loads": acc["loads"], "stores": acc["stores"], "intrinsics": acc["intrinsics"],
        "mr": mr, "nr": nr, "log_k": log2(k), "registers": mr * nr / lanes if not math.isnan(mr) else np.nan,
        "log_panel_bytes": log2(panel), "log_tile_bytes": log2(mr * k) if not math.isnan(mr) else np.nan,
        "panel_in_l1": float(panel <= L1_BYTES) if not math.isnan(panel) else np.nan,
        "panel_in_l2": float(panel <= L2_BYTES) if not math.isnan(panel) else np.nan,
        "intensity": mr * nr / (mr + nr) if not math.isnan(mr) else np.nan,
        "log_macs": log2(mac_count), "prologue": float(schedule.prologue is not None),
        **{name: acc.get(name, np.nan) for name in SPARSE_FEATURES},
    }
    return [float(values[name]) for name in LOOP_FEATURES]


def knob_features(space: ConfigSpace, config: Config) -> list[float]:
    out = []
    for knob in space.knobs:
        value = config[knob.name]
        if isinstance(value, str):
            out.append(float(knob.values.index(value)))
        else:
            out.append(math.log2(value) if value > 0 else -1.0)
    return out


class Featurizer:
    """Features of configs of one task, cached (building a loop nest is not free)."""

    def __init__(self, builder, space: ConfigSpace):
        self.builder, self.space = builder, space
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, config: Config) -> np.ndarray:
        key = config_key(config)
        if key not in self._cache:
            try:
                schedule = self.builder.schedule(config)
                loops = loop_features(schedule, self.builder.op_count(config))
            except Exception:                       # an unbuildable point: knobs only
                loops = [np.nan] * len(LOOP_FEATURES)
            self._cache[key] = np.array(loops + knob_features(self.space, config), dtype=np.float64)
        return self._cache[key]

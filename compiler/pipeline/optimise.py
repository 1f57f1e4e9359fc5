"""A graph's kernels: the graph passes, then fused op groups with stable names.

This is the part of ``compile`` that the tuner and the pruning search share:
they key tuning records and configs by the names given here, so it sits below
both the driver and the tuner.
"""
from __future__ import annotations

import re

from tosac.ir.graph import Block, Graph
from tosac.lower.kernels import KernelBuilder
from tosac.passes import fold_constants, remove_dead_code, run_passes
from tosac.passes.fusion import CONTROL_FLOW, OpGroup, group_ops
from tosac.passes.lut_fold import fold_lookup_tables
from tosac.passes.pad_fold import fold_padding
from tosac.targets import Target


def optimise_graph(graph: Graph) -> Graph:
    """The graph passes, each followed by the verifier (``run_passes`` verifies the input first)."""
    return run_passes(graph, [fold_constants, fold_padding, fold_lookup_tables, remove_dead_code])


def kernel_name(index: int, group: OpGroup) -> str:
    """The name of the ``index``-th op group's kernel: the key of ``compile``'s ``config`` argument."""
    return f"tosac_k{index}_" + re.sub(r"[^a-z0-9]+", "_", group.pattern.lower())[:48]


def kernel_builders(graph: Graph, target: Target, block: Block | None = None) -> list[KernelBuilder]:
    """The kernels of an optimised graph's block, in execution order (control flow excluded)."""
    block = block or graph.main
    return [KernelBuilder(block, g, kernel_name(i, g), target)
            for i, g in enumerate(group_ops(block)) if g.anchor.name not in CONTROL_FLOW]

"""Run a verified graph on a named target and return numpy outputs.

The one place conformance suites go through, so adding a target (host JIT,
AArch64 under qemu) makes every suite run on it.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tosac.errors import UnsupportedError
from tosac.ir.graph import Graph
from tosac.targets import NAMED_TARGETS, get_target

TARGETS = ("reference", "host", *NAMED_TARGETS)


def run_graph_on_target(graph: Graph, inputs: Mapping[str, np.ndarray], target: str,
                        config: Mapping | None = None, threads: int | str | None = None) -> dict[str, np.ndarray]:
    """Outputs of ``graph`` on ``target`` ("reference" = the numpy interpreter, else compiled code, its kernels
    split over ``threads``; ARM targets run under qemu)."""
    if target == "reference":
        from tosac.ir.reference.interpreter import run
        return run(graph, inputs, verify=False)
    if target not in TARGETS:
        raise UnsupportedError(f"conformance target '{target}' is not available; choose one of {list(TARGETS)}")
    from tosac.pipeline.driver import compile as compile_graph
    return compile_graph(graph, get_target(target), config, threads=threads).run(inputs)

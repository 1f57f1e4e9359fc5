"""Run a verified graph on a named target and return numpy outputs.

The one place conformance suites go through, so adding a target (host JIT,
AArch64 under qemu) makes every suite run on it.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tosac.errors import UnsupportedError
from tosac.ir.graph import Graph

TARGETS = ("reference",)


def run_graph_on_target(graph: Graph, inputs: Mapping[str, np.ndarray], target: str) -> dict[str, np.ndarray]:
    """Outputs of ``graph`` on ``target`` ("reference" = the numpy interpreter)."""
    if target == "reference":
        from tosac.ir.reference.interpreter import run
        return run(graph, inputs, verify=False)
    raise UnsupportedError(f"conformance target '{target}' is not available; choose one of {TARGETS}")

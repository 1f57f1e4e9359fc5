"""Graph-to-graph passes and the driver that runs them.

Every pass takes a verified graph and returns a new one, leaving its input
untouched, so a caller can always compare before and after. ``run_passes``
re-verifies after each pass: a pass that produces an invalid graph is a
compiler bug, and it must be caught where it happens, not downstream in
codegen with a confusing message.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

from tosac.errors import CodegenError, UnsupportedError, VerificationError
from tosac.ir.graph import Graph
from tosac.ir.verifier import verify
from tosac.passes.const_fold import fold_constants
from tosac.passes.dce import remove_dead_code

Pass = Callable[[Graph], Graph]

__all__ = ["Pass", "fold_constants", "remove_dead_code", "run_passes"]


def _pass_name(p: Pass) -> str:
    if isinstance(p, functools.partial):
        return _pass_name(p.func)
    return getattr(p, "__qualname__", None) or getattr(p, "__name__", None) or repr(p)


def run_passes(graph: Graph, passes: Sequence[Pass]) -> Graph:
    """Apply ``passes`` in order, verifying the graph after each one.

    The input graph is verified first and its errors propagate unchanged (a
    VerificationError is the user's to fix). An invalid graph *after* a pass
    raises CodegenError naming the pass: that is a bug in the pass.
    """
    verify(graph)
    for p in passes:
        name = _pass_name(p)
        result = p(graph)
        if not isinstance(result, Graph):
            raise CodegenError(f"pass '{name}' returned {type(result).__name__}, not a Graph (a bug in the pass)")
        try:
            verify(result)
        except (VerificationError, UnsupportedError) as e:
            raise CodegenError(f"pass '{name}' produced an invalid graph (a bug in the pass): {e}") from e
        graph = result
    return graph

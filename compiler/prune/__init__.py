"""Magnitude pruning of constant int8 weights with a structure (unstructured, blocks, N:M, channels).

    from tosac.prune import LayerChoice, prunable_layers, prune
    result = prune(graph, LayerChoice("block1x4", 0.5))        # every CONV2D / MATMUL with int8 const weights
    result = prune(graph, {"conv2d_27": LayerChoice("2:4")})  # per layer; the others stay dense
    print(result.table()); result.graph                        # a valid graph, only weight constants differ

Pruning sets weights to their zero point (the real value 0); the graph stays
an ordinary TOSA graph that the reference interpreter and the compiler run
unchanged. The structures match what a sparse int8 kernel can skip: blocks and
N:M groups tile the input channels of each kernel tap. Masks are computed in
:mod:`tosac.prune.patterns` (usable alone via :func:`layer_mask`); graphs are
rewritten in :mod:`tosac.prune.apply`.
"""
from __future__ import annotations

from tosac.errors import PruneError
from tosac.prune.apply import (
    LayerChoice,
    LayerReport,
    PrunableLayer,
    PruneResult,
    prunable_layers,
    prune,
)
from tosac.prune.patterns import Pattern, layer_mask, parse_pattern
from tosac.prune.search import Candidate, LayerCandidates, LayerRow, SearchResult, choose, layer_task, search

__all__ = ["LayerChoice", "LayerReport", "PrunableLayer", "PruneResult", "PruneError", "Pattern",
           "layer_mask", "parse_pattern", "prunable_layers", "prune",
           "Candidate", "LayerCandidates", "LayerRow", "SearchResult", "choose", "layer_task", "search"]

"""Dead code elimination: drop ops whose results nothing uses.

Every op is pure, so an op none of whose outputs reaches a block output is
wasted work (and, for constants, wasted flash). Constant folding leaves such
ops behind: the constants it folded away.
"""
from __future__ import annotations

import copy

from tosac.ir.graph import Block, Graph

__all__ = ["remove_dead_code"]


def remove_dead_code(graph: Graph) -> Graph:
    """A copy of ``graph`` without ops whose outputs are all unused.

    Each block is processed backwards from its outputs. Blocks are isolated
    (a block can only read its own inputs and tensors, which the verifier
    enforces), so a COND_IF / WHILE_LOOP body reads outer values only through
    the control-flow op's operands: a kept control-flow op keeps what feeds
    it, and its body blocks keep whatever produces their outputs. Block inputs
    and blocks themselves are never removed. Tensors no op or block signature
    refers to any more are dropped from ``block.tensors``.
    """
    result = copy.deepcopy(graph)
    for block in result.blocks.values():
        _sweep_block(block)
    return result


def _sweep_block(block: Block) -> None:
    live: set[str] = set(block.outputs)
    kept = []
    for op in reversed(block.ops):
        if any(name in live for name in op.outputs):
            kept.append(op)
            live.update(op.inputs)
    kept.reverse()
    block.ops = kept
    referenced = set(block.inputs) | set(block.outputs)
    for op in kept:
        referenced.update(op.inputs)
        referenced.update(op.outputs)
    block.tensors = {name: t for name, t in block.tensors.items() if name in referenced}

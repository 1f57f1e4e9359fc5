"""Constant folding: evaluate, at compile time, every op whose operands are all constants.

Folding uses the reference kernels, the same code that defines tosac's
semantics, so a folded graph computes bit for bit what the original did; the
targets then never need kernels for work that depends on no input.
"""
from __future__ import annotations

import copy

import numpy as np

from tosac.errors import InterpreterError, UnpredictableError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op
from tosac.ir.ops import SCHEMAS, OpCategory
from tosac.ir.reference.interpreter import with_defaults
from tosac.ir.reference.registry import KERNELS, OpCall

__all__ = ["fold_constants"]

# An op whose results would exceed this many bytes is left to run time: folding it would allocate them at compile
# time, before the memory budget (tosac.runtime.memory_plan) has looked at the graph.
FOLD_LIMIT_BYTES = 64 << 20


def fold_constants(graph: Graph) -> Graph:
    """A copy of ``graph`` where every op computable from constants alone is a CONST (or CONST_SHAPE).

    Every block is folded (control-flow bodies too), but COND_IF and
    WHILE_LOOP themselves are never evaluated. Ops are visited in order, so a
    folded result feeds later ops in the same pass. An op whose kernel raises
    UnpredictableError for these constants (a failed REQUIRE) is kept: its
    result is decided at run time, as in the original graph. The folded
    constants' producers are left in place; ``remove_dead_code`` drops them.
    """
    result = copy.deepcopy(graph)
    for block in result.blocks.values():
        _fold_block(block)
    return result


def _fold_block(block: Block) -> None:
    constants: set[str] = set()
    new_ops: list[Op] = []
    for index, op in enumerate(block.ops):
        if SCHEMAS[op.name].category is OpCategory.CONSTANT:
            if block.tensors[op.outputs[0]].data is not None:
                constants.add(op.outputs[0])
            new_ops.append(op)
            continue
        values = _evaluate(block, index, op) if _foldable(block, op, constants) else None
        if values is None:
            new_ops.append(op)
            continue
        for name, value in zip(op.outputs, values):
            tensor = block.tensors[name]
            tensor.data = value
            const_op = "CONST_SHAPE" if tensor.dtype is DType.SHAPE else "CONST"
            new_ops.append(Op(const_op, [], [name], {}, op.location))
            constants.add(name)
    block.ops = new_ops


def _foldable(block: Block, op: Op, constants: set[str]) -> bool:
    return (op.name in KERNELS and SCHEMAS[op.name].category is not OpCategory.CONTROL_FLOW
            and all(name in constants for name in op.inputs)
            and sum(_nbytes(block, name) for name in op.outputs) <= FOLD_LIMIT_BYTES)


def _nbytes(block: Block, name: str) -> int:
    ttype = block.type_of(name)
    return ttype.size * ttype.dtype.storage.itemsize


def _evaluate(block: Block, index: int, op: Op) -> list[np.ndarray] | None:
    """The op's outputs computed by its reference kernel, or None when they are unpredictable."""
    label = f"{block.name}:{op.label(index)}"
    call = OpCall(
        op=op, schema=SCHEMAS[op.name],
        args=[block.tensors[n].data for n in op.inputs],
        in_types=[block.type_of(n) for n in op.inputs],
        out_types=[block.type_of(n) for n in op.outputs],
        attrs=with_defaults(op.name, op.attrs), label=label,
        run_block=None,   # control flow is never folded
    )
    try:
        results = KERNELS[op.name](call)
    except UnpredictableError:
        return None
    values = []
    for name, value, ttype in zip(op.outputs, results, call.out_types):
        if value.shape != ttype.shape or value.dtype != ttype.dtype.storage:
            raise InterpreterError(
                f"{label}: kernel returned {value.dtype}{list(value.shape)} for '{name}', "
                f"declared {ttype} (a bug in the reference kernel)")
        # A kernel may return a view of its operand (RESHAPE, IDENTITY): own the data.
        values.append(np.array(value, copy=True))
    return values

"""Fold an element-wise region that reads one int8 tensor into one int8 TABLE.

An activation imported from a quantized model is often several element-wise
ops on one int8 tensor ``x``: swish is ``x * sigmoid(x)`` as TABLE, RESCALE,
RESCALE, MUL, RESCALE; hard-swish and GELU are similar chains. With per-tensor
parameters every op computes each element from that element of ``x`` alone,
so the region's int8 result is a function of 256 possible values. The pass
evaluates the region with the reference kernels (the law) on all 256 values
and replaces it by ``TABLE(x, that table)`` — exact by construction, one pass
over the activation instead of several (with 32-bit intermediates), and a
TABLE fuses into the convolution before it.

A region: ops whose data operands are ``x``, values computed in the region or
constants of one element, whose parameter operands are constants (of one
element, except TABLE's table), that leave exactly one int8 tensor of ``x``'s
shape for the rest of the graph. Only regions of two or more ops are folded
(a single op stays as it is).
"""
from __future__ import annotations

import copy
import heapq

import numpy as np

from tosac.errors import UnpredictableError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType
from tosac.ir.ops import SCHEMAS, OpCategory
from tosac.ir.reference.interpreter import with_defaults
from tosac.ir.reference.registry import KERNELS, OpCall

__all__ = ["fold_lookup_tables"]

_INT8_VALUES = np.arange(-128, 128, dtype=np.int8)


def fold_lookup_tables(graph: Graph) -> Graph:
    """A copy of ``graph`` with every foldable element-wise region on an int8 tensor as one TABLE."""
    result = copy.deepcopy(graph)
    for block in result.blocks.values():
        _fold_block(block)
    return result


def _fold_block(block: Block) -> None:
    consumers: dict[str, list[int]] = {}
    for index, op in enumerate(block.ops):
        for name in op.inputs:
            consumers.setdefault(name, []).append(index)
    folded: set[int] = set()
    replacements: dict[int, list[Op]] = {}            # op index -> the ops that take its place
    candidates = list(block.inputs) + [out for op in block.ops for out in op.outputs]
    for source in candidates:
        if block.type_of(source).dtype is not DType.INT8 or block.constant(source) is not None:
            continue
        region = _region(block, source, consumers, folded)
        if region is None:
            continue
        members, sink = region
        table = _evaluate(block, source, members, sink)
        if table is None:
            continue
        name = _fresh(block, f"{sink}_lut")
        block.tensors[name] = Tensor(name, TensorType(DType.INT8, (256,)), table)
        where = block.ops[members[-1]].location
        replacements[members[-1]] = [Op("CONST", [], [name], {}, where), Op("TABLE", [source, name], [sink], {}, where)]
        folded.update(members)
    if replacements:
        block.ops = [new for index, op in enumerate(block.ops)
                     for new in (replacements.get(index, []) if index in folded else [op])]


def _region(block: Block, source: str, consumers: dict[str, list[int]],
            folded: set[int]) -> tuple[list[int], str] | None:
    """The op indices of the region on ``source`` and its one int8 result, or None when there is none to fold."""
    values, members = {source}, []
    waiting = sorted(set(consumers.get(source, [])))       # readers of the region's values, in block order
    while waiting:
        index = heapq.heappop(waiting)
        op = block.ops[index]
        if index in folded or index in members or not _pointwise(block, op, values):
            continue
        members.append(index)
        values.update(op.outputs)
        for name in op.outputs:
            for reader in consumers.get(name, []):
                heapq.heappush(waiting, reader)
    member_set = set(members)
    escaping = [name for name in values - {source}
                if name in block.outputs or any(c not in member_set for c in consumers.get(name, []))]
    if len(escaping) != 1:
        return None
    (sink,) = escaping
    # Only the ops the result depends on; everything else they compute must stay inside.
    needed, wanted = [], {sink}
    for index in reversed(members):
        op = block.ops[index]
        if wanted & set(op.outputs):
            needed.append(index)
            wanted.update(op.inputs)
    needed.reverse()
    kept = set(needed)
    if any(c not in kept for index in needed for out in block.ops[index].outputs if out != sink
           for c in consumers.get(out, [])) or len(needed) < 2:
        return None
    sink_type = block.type_of(sink)
    if sink_type.dtype is not DType.INT8 or sink_type.shape != block.type_of(source).shape:
        return None
    return needed, sink


def _pointwise(block: Block, op: Op, values: set[str]) -> bool:
    """Whether ``op`` computes each element from the same element of ``values`` (and constants) alone."""
    schema = SCHEMAS[op.name]
    if schema.category is not OpCategory.ELEMENTWISE or op.name not in KERNELS or len(op.outputs) != 1:
        return False
    data = schema.data_inputs(op.inputs)
    params = op.inputs[len(data):]
    if not any(name in values for name in data):
        return False
    for name in data:
        if name not in values and not _scalar_constant(block, name):
            return False
    if op.name == "TABLE":
        return all(block.constant(name) is not None for name in params)
    return all(_scalar_constant(block, name) for name in params)


def _scalar_constant(block: Block, name: str) -> bool:
    data = block.constant(name)
    return data is not None and np.asarray(data).size == 1


def _evaluate(block: Block, source: str, members: list[int], sink: str) -> np.ndarray | None:
    """The region's result for each of the 256 int8 values of ``source`` (reference kernels), as a TABLE."""
    rank = block.type_of(source).rank
    shape = (1,) * (rank - 1) + (256,) if rank else (256,)
    arrays = {source: _INT8_VALUES.reshape(shape)}

    def typed(name: str) -> TensorType:
        t = block.type_of(name)
        return TensorType(t.dtype, shape) if name in arrays else t

    for index in members:
        op = block.ops[index]
        args = [arrays[n] if n in arrays else block.constant(n) for n in op.inputs]
        out_types = [TensorType(block.type_of(n).dtype, shape) for n in op.outputs]
        call = OpCall(op=op, schema=SCHEMAS[op.name], args=args, in_types=[typed(n) for n in op.inputs],
                      out_types=out_types, attrs=with_defaults(op.name, op.attrs),
                      label=f"{block.name}:{op.label(index)}", run_block=None)
        try:
            (result,) = KERNELS[op.name](call)
        except UnpredictableError:         # a REQUIRE that fails for some value: leave it to run time
            return None
        arrays[op.outputs[0]] = np.asarray(result).reshape(shape)
    return np.ascontiguousarray(arrays[sink].reshape(256).astype(np.int8))


def _fresh(block: Block, name: str) -> str:
    candidate, k = name, 0
    while candidate in block.tensors:
        k += 1
        candidate = f"{name}{k}"
    return candidate

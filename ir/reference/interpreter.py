"""Run a graph on the reference kernels: the exact semantics of tosac.

Every compiled kernel, on every target, is compared bit for bit with what this
interpreter returns. The graph is verified first, so kernels only ever see
valid graphs; a REQUIRE failure for particular input values raises
:class:`~tosac.errors.UnpredictableError`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tosac.errors import InterpreterError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, TensorType
from tosac.ir.ops import SCHEMAS, OpCategory, ops_in
# Importing the kernel modules registers them in KERNELS.
from tosac.ir.reference import control_flow, conversion, data_ops, elementwise, tensor_ops  # noqa: F401
from tosac.ir.reference.registry import KERNELS, OpCall
from tosac.ir.verifier import verify as verify_graph

_CONST_OPS = ops_in(OpCategory.CONSTANT)


def coerce_input(name: str, value: object, ttype: TensorType) -> np.ndarray:
    """Check a user-supplied input against its declared type and return it in storage dtype.

    Integer inputs may come in any integer numpy dtype as long as every value
    fits the declared type; nothing is silently wrapped or rounded.
    """
    arr = np.asarray(value)
    if arr.dtype == ttype.dtype.storage and arr.dtype.kind in "iu" and ttype.dtype.bits == 8 * arr.dtype.itemsize:
        if tuple(arr.shape) == ttype.shape:
            return arr                                   # every value of the storage type is valid
    if tuple(arr.shape) != ttype.shape:
        raise InterpreterError(f"input '{name}': shape {tuple(arr.shape)} given, {ttype} expected")
    dt = ttype.dtype
    if dt is DType.BOOL:
        if arr.dtype != np.bool_:
            raise InterpreterError(f"input '{name}': dtype {arr.dtype} given, bool expected")
        return arr
    if dt in (DType.UINT8, DType.UINT16) and arr.dtype == np.dtype(f"int{dt.bits}"):
        # TOSA stores unsigned data in signed containers of the same width: same bits.
        return arr.view(dt.storage)
    if dt.is_int or dt is DType.SHAPE:
        if arr.dtype.kind not in "iu":
            raise InterpreterError(f"input '{name}': dtype {arr.dtype} given, integer {dt.name} expected")
        if arr.size and (int(arr.min()) < dt.min or int(arr.max()) > dt.max):
            raise InterpreterError(f"input '{name}': values outside the {dt.name} range [{dt.min}, {dt.max}]")
        return arr.astype(dt.storage)
    if arr.dtype.kind != "f":
        raise InterpreterError(f"input '{name}': dtype {arr.dtype} given, float {dt.name} expected")
    return arr.astype(dt.storage)


def with_defaults(op_name: str, attrs: dict) -> dict:
    filled = {k: spec.default for k, spec in SCHEMAS[op_name].attrs.items()}
    filled.update(attrs)
    return filled


def run_block(graph: Graph, block: Block, args: list[np.ndarray]) -> list[np.ndarray]:
    """Execute ``block`` with its inputs bound to ``args`` (already coerced)."""
    values: dict[str, np.ndarray] = dict(zip(block.inputs, args))
    for index, op in enumerate(block.ops):
        if op.name in _CONST_OPS:
            values[op.outputs[0]] = block.tensors[op.outputs[0]].data
            continue
        kernel = KERNELS.get(op.name)
        label = f"{block.name}:{op.label(index)}"
        if kernel is None:
            raise InterpreterError(f"{label}: no reference semantics registered for {op.name}")
        call = OpCall(
            op=op, schema=SCHEMAS[op.name],
            args=[values[n] for n in op.inputs],
            in_types=[block.type_of(n) for n in op.inputs],
            out_types=[block.type_of(n) for n in op.outputs],
            attrs=with_defaults(op.name, op.attrs), label=label,
            run_block=lambda name, a: run_block(graph, graph.blocks[name], a),
        )
        try:
            results = kernel(call)
        except MemoryError:
            raise InterpreterError(f"{label}: out of memory computing {', '.join(op.outputs)} "
                                   f"({', '.join(map(str, call.out_types))})") from None
        for name, result, ttype in zip(op.outputs, results, call.out_types):
            if result.shape != ttype.shape or result.dtype != ttype.dtype.storage:
                raise InterpreterError(
                    f"{label}: kernel returned {result.dtype}{list(result.shape)} for '{name}', "
                    f"declared {ttype} (a bug in the reference kernel)")
            values[name] = result
    return [values[n] for n in block.outputs]


def run(graph: Graph, inputs: Mapping[str, object], verify: bool = True) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs`` (name → array) and return its outputs by name."""
    if verify:
        verify_graph(graph)
    block = graph.main
    missing = [n for n in block.inputs if n not in inputs]
    unknown = [n for n in inputs if n not in block.inputs]
    if missing or unknown:
        raise InterpreterError(f"graph inputs are {block.inputs}; missing {missing}, unknown {unknown}")
    args = [coerce_input(n, inputs[n], block.type_of(n)) for n in block.inputs]
    return dict(zip(block.outputs, run_block(graph, block, args)))

"""Fusion: partition a block's ops into kernels.

A kernel is an *anchor* (any op) followed by a chain of element-wise ops that
consume its result: CONV2D -> RESCALE -> CLAMP -> ADD(residual) becomes one
kernel whose int32 accumulator is requantized before it is ever stored.
Element-wise ops also chain after each other. An op joins the kernel that
produces one of its data inputs when that value has no other reader, is not a
block output, and has the op's output shape (so the epilogue is per element);
an element-wise-only kernel producing another of its inputs under the same
conditions (the RESCALE of a residual branch) joins too.

A kernel runs at the position of its last op: its other inputs (a residual
branch) are computed by then, and its inner values are read by no one else.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tosac.ir.graph import Block, Op
from tosac.ir.ops import OpCategory, ops_in, schema

CONST_OPS = ops_in(OpCategory.CONSTANT)
CONTROL_FLOW = ops_in(OpCategory.CONTROL_FLOW)
# Categories of the anchors whose template applies an epilogue per output element.
_EPILOGUE_ANCHORS = (OpCategory.ELEMENTWISE, OpCategory.TENSOR, OpCategory.DATA_MOVEMENT)


@dataclass
class OpGroup:
    ops: list[Op]
    position: int                      # index of the last op in the block
    outputs: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> Op:
        return self.ops[0]

    @property
    def epilogue(self) -> list[Op]:
        return self.ops[1:]

    @property
    def pattern(self) -> str:
        """The op names joined with '+', e.g. ``CONV2D+RESCALE+CLAMP`` (kernel keys, reports)."""
        return "+".join(op.name for op in self.ops)

    def external_inputs(self) -> list[str]:
        inner = {name for op in self.ops for name in op.outputs}
        names: list[str] = []
        for op in self.ops:
            for name in op.inputs:
                if name not in inner and name not in names:
                    names.append(name)
        return names


def _accepts(group: OpGroup) -> bool:
    return schema(group.anchor.name).category in _EPILOGUE_ANCHORS


def _element_wise_siblings(block: Block, op: Op, target: OpGroup, producer: dict[str, OpGroup],
                           uses: Counter) -> list[OpGroup]:
    """The kernels of ``op``'s other data inputs that are element-wise only and read by ``op`` alone, at its
    shape: the residual branch's RESCALE of an ADD. Joined to ``target`` they run in its epilogue, so their
    (often 32-bit) result is never stored and read back."""
    out_shape = block.type_of(op.outputs[0]).shape
    found: list[OpGroup] = []
    for name in schema(op.name).data_inputs(op.inputs):
        g = producer.get(name)
        if (g is not None and g is not target and g not in found and g.outputs == [name] and uses[name] == 1
                and all(schema(o.name).category is OpCategory.ELEMENTWISE for o in g.ops)
                and block.type_of(name).shape == out_shape):
            found.append(g)
    return found


def group_ops(block: Block) -> list[OpGroup]:
    """Kernels of ``block`` in execution order."""
    uses = Counter(name for op in block.ops for name in op.inputs)
    uses.update(block.outputs)
    producer: dict[str, OpGroup] = {}
    groups: list[OpGroup] = []
    for index, op in enumerate(block.ops):
        if op.name in CONST_OPS:
            continue
        target = None
        op_schema = schema(op.name)
        if op_schema.category is OpCategory.ELEMENTWISE and len(op.outputs) == 1:
            for name in op_schema.data_inputs(op.inputs):
                g = producer.get(name)
                if (g is not None and g.outputs == [name] and uses[name] == 1 and _accepts(g)
                        and block.type_of(name).shape == block.type_of(op.outputs[0]).shape):
                    target = g
                    break
        if target is None:
            target = OpGroup([op], index, list(op.outputs))
            groups.append(target)
        else:
            for sibling in _element_wise_siblings(block, op, target, producer, uses):
                target.ops.extend(sibling.ops)          # computed in the epilogue, before the op that reads it
                groups.remove(sibling)
                for name in sibling.outputs:
                    producer[name] = target
            target.ops.append(op)
            target.position = index
            target.outputs = list(op.outputs)
        for name in op.outputs:
            producer[name] = target
    groups.sort(key=lambda g: g.position)
    return groups

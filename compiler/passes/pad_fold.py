"""Fold a PAD (and a trailing-edge SLICE after it) into the convolution that reads it.

TFLite files pad explicitly where a framework's padding is neither SAME nor
VALID (PyTorch's symmetric padding on a stride-2 convolution: PAD, then a VALID
CONV_2D), and the TFLite frontend slices off trailing rows a VALID window never
reads. Run as they are, the PAD and the SLICE are two extra passes over the
activation. When the PAD fills with the convolution's input zero point — a
padded tap then contributes ``(zp − zp)·w = 0``, exactly as the convolution's
own padding does — the PAD is the convolution's padding:

    rows the convolution reads, in PAD coordinates: [−pad_before, S + pad_after)
    (S: the size after the optional SLICE, which starts at 0)

so on the PAD's input (H rows, PAD adds ``b`` before) it reads rows
``[−pad_before − b, S − b + pad_after)``: new padding ``pad_before + b`` and
``S − b − min(H, S − b) + pad_after``, and a SLICE of the input to
``min(H, S − b)`` rows where the old SLICE cut real rows. The output shape, and
so TOSA's stride divisibility, is unchanged. Only spatial axes may be padded
or sliced, and the PAD (and SLICE) must feed nothing else.
"""
from __future__ import annotations

import copy

import numpy as np

from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType

__all__ = ["fold_padding"]

_CONVOLUTIONS = ("CONV2D", "DEPTHWISE_CONV2D")


def fold_padding(graph: Graph) -> Graph:
    """A copy of ``graph`` with zero-point PADs (and SLICEs of their trailing rows) folded into convolutions."""
    result = copy.deepcopy(graph)
    for block in result.blocks.values():
        _fold_block(block)
    return result


def _const(block: Block, name: str) -> np.ndarray | None:
    data = block.tensors[name].data
    return None if data is None else np.asarray(data).reshape(-1)


def _fold_block(block: Block) -> None:
    producers = {out: op for op in block.ops for out in op.outputs}
    uses: dict[str, int] = {}
    for op in block.ops:
        for name in op.inputs:
            uses[name] = uses.get(name, 0) + 1
    for name in block.outputs:
        uses[name] = uses.get(name, 0) + 1
    added: list[tuple[Op, Op]] = []                    # (slice to insert, before this convolution)
    for op in block.ops:
        if op.name not in _CONVOLUTIONS:
            continue
        chain = _pad_chain(block, producers, uses, op.inputs[0])
        if chain is None:
            continue
        pad_op, size = chain
        source = pad_op.inputs[0]
        padding = _const(block, pad_op.inputs[1])
        fill, zp = _const(block, pad_op.inputs[2]), _const(block, op.inputs[3])
        if padding is None or fill is None or zp is None or fill.size != 1 or zp.size != 1 or fill[0] != zp[0]:
            continue
        shape = block.type_of(source).shape
        pads, visible = list(op.attrs["pad"]), list(shape)
        for axis in (1, 2):
            before = int(padding[2 * axis])
            rows = min(shape[axis], size[axis] - before)
            if rows <= 0:
                break
            visible[axis] = rows
            k = 2 * (axis - 1)
            pads[k], pads[k + 1] = pads[k] + before, pads[k + 1] + size[axis] - before - rows
        else:
            if visible != list(shape):
                source = _add_slice(block, source, visible, added, op)
            op.inputs[0] = source
            op.attrs["pad"] = tuple(pads)
    for slice_op, before in added:
        block.ops.insert(block.ops.index(before), slice_op)


def _pad_chain(block: Block, producers: dict[str, Op], uses: dict[str, int],
               name: str) -> tuple[Op, list[int]] | None:
    """The PAD behind a convolution input (through at most one SLICE from the origin), and the size the
    convolution sees; None if there is none or it pads N/C, is read elsewhere, or is not constant."""
    size = list(block.type_of(name).shape)
    op = producers.get(name)
    if op is not None and op.name == "SLICE" and uses.get(name) == 1:
        start = _const(block, op.inputs[1])
        if start is None or np.any(start != 0):
            return None
        name, op = op.inputs[0], producers.get(op.inputs[0])
    if op is None or op.name != "PAD" or uses.get(name) != 1 or len(size) != 4:
        return None
    padding = _const(block, op.inputs[1])
    padded = block.type_of(name).shape
    if padding is None or np.any(padding[[0, 1, 6, 7]] != 0) or size[0] != padded[0] or size[3] != padded[3]:
        return None
    return op, size


def _add_slice(block: Block, source: str, visible: list[int], added: list, conv: Op) -> str:
    """A SLICE of ``source``'s first ``visible`` rows/columns, inserted before ``conv``."""
    base = f"{source}_window"
    name, i = base, 1
    while name in block.tensors:
        i += 1
        name = f"{base}{i}"
    start, size = f"{name}_start", f"{name}_size"
    for tensor, values in ((start, [0, 0, 0, 0]), (size, visible)):
        block.tensors[tensor] = Tensor(tensor, TensorType(DType.SHAPE, (4,)), np.asarray(values, np.int64))
        added.append((Op("CONST_SHAPE", [], [tensor]), conv))
    block.tensors[name] = Tensor(name, TensorType(block.type_of(source).dtype, tuple(visible)))
    added.append((Op("SLICE", [source, start, size], [name]), conv))
    return name

"""Graphs: tensors, operators and blocks (TOSA basic blocks / regions).

A :class:`Graph` holds one or more :class:`Block` objects; the first is the
entry point (``main``), the others are the bodies of COND_IF / WHILE_LOOP.
Tensors are named; an op reads and writes tensors by name, as in TOSA files.
Constant data lives on the tensor written by a CONST / CONST_SHAPE op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from tosac.ir.dtypes import DType


@dataclass(frozen=True)
class TensorType:
    """Element type and static shape (a tuple; rank 0 is ``()``)."""
    dtype: DType
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def __str__(self) -> str:
        return f"{self.dtype.short}[{','.join(map(str, self.shape))}]"


@dataclass
class Tensor:
    """A named value. ``data`` is set for constants (written by CONST/CONST_SHAPE)."""
    name: str
    type: TensorType
    data: np.ndarray | None = None

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape


@dataclass
class Op:
    """One operator application: ``outputs = name(inputs, **attrs)``."""
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    location: str | None = None   # free text, e.g. the source framework node

    def label(self, index: int | None = None) -> str:
        """How errors refer to this op: ``CONV2D#3 (-> conv_out)``."""
        where = f"#{index}" if index is not None else ""
        return f"{self.name}{where} (-> {', '.join(self.outputs)})"


@dataclass
class Block:
    """A basic block: named inputs and outputs, tensors, ops in execution order."""
    name: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)

    def type_of(self, name: str) -> TensorType:
        return self.tensors[name].type

    def producer(self, name: str) -> Op | None:
        for op in self.ops:
            if name in op.outputs:
                return op
        return None

    def constant(self, name: str) -> np.ndarray | None:
        """The value of tensor ``name`` when a CONST/CONST_SHAPE op defines it."""
        t = self.tensors.get(name)
        return None if t is None else t.data


@dataclass
class Graph:
    """A whole model: blocks by name, the first being the entry block."""
    blocks: dict[str, Block] = field(default_factory=dict)
    version: tuple[int, int, int] = (1, 0, 0)
    #: Free-form facts about the model that the IR does not carry (e.g. the ONNX frontend's I/O quantization).
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def main(self) -> Block:
        return next(iter(self.blocks.values()))

    # Convenience views of the entry block, which is what most users touch.
    @property
    def inputs(self) -> list[str]:
        return self.main.inputs

    @property
    def outputs(self) -> list[str]:
        return self.main.outputs

    @property
    def ops(self) -> list[Op]:
        return self.main.ops

    @property
    def tensors(self) -> dict[str, Tensor]:
        return self.main.tensors

    def input_types(self) -> dict[str, TensorType]:
        return {n: self.main.type_of(n) for n in self.main.inputs}

    def output_types(self) -> dict[str, TensorType]:
        return {n: self.main.type_of(n) for n in self.main.outputs}

    def all_ops(self) -> Iterator[tuple[Block, int, Op]]:
        for block in self.blocks.values():
            for i, op in enumerate(block.ops):
                yield block, i, op

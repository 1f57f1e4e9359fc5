"""How reference kernels are registered and what they receive.

A kernel is a plain function ``fn(call: OpCall) -> list[np.ndarray]``. It gets
the operand arrays in the spec's order, their types, the declared output types
and the attributes with defaults filled in. It returns one array per output,
in the output's numpy storage dtype and shape. A kernel raises
``UnpredictableError`` when a REQUIRE condition of the spec fails for these
values; ERROR_IF conditions are the verifier's job and are checked before any
kernel runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tosac.ir.graph import Op, TensorType
from tosac.ir.ops import SCHEMAS, OpSchema


@dataclass
class OpCall:
    op: Op
    schema: OpSchema
    args: list[np.ndarray]
    in_types: list[TensorType]
    out_types: list[TensorType]
    attrs: dict[str, Any]
    label: str
    run_block: Callable[[str, list[np.ndarray]], list[np.ndarray]] | None = None

    def arg(self, operand: str) -> np.ndarray:
        """The array passed for the operand named ``operand`` in the spec."""
        return self.args[self.schema.operands.index(operand)]

    def type(self, operand: str) -> TensorType:
        return self.in_types[self.schema.operands.index(operand)]

    def scalar(self, operand: str) -> int:
        """A one-element operand (zero point, shift) as a Python int."""
        return int(np.asarray(self.arg(operand)).reshape(-1)[0])

    @property
    def out(self) -> TensorType:
        return self.out_types[0]


Kernel = Callable[[OpCall], list[np.ndarray]]
KERNELS: dict[str, Kernel] = {}


def kernel(*names: str) -> Callable[[Kernel], Kernel]:
    """Register ``fn`` as the reference semantics of the ops ``names``."""
    def register(fn: Kernel) -> Kernel:
        for name in names:
            assert name in SCHEMAS, f"kernel for unknown op {name}"
            KERNELS[name] = fn
        return fn
    return register

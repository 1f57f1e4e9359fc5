"""COND_IF and WHILE_LOOP (the tosa-ext-controlflow extension)."""
from __future__ import annotations

import numpy as np

from tosac.errors import UnpredictableError
from tosac.ir.reference.registry import OpCall, kernel

MAX_ITERATIONS = 1_000_000   # a guard, not spec behaviour: a non-terminating loop has no result


@kernel("COND_IF")
def cond_if(call: OpCall) -> list[np.ndarray]:
    taken = bool(np.asarray(call.args[0]).reshape(-1)[0])
    branch = call.attrs["then_graph"] if taken else call.attrs["else_graph"]
    return call.run_block(branch, list(call.args[1:]))


@kernel("WHILE_LOOP")
def while_loop(call: OpCall) -> list[np.ndarray]:
    values = list(call.args)
    for _ in range(MAX_ITERATIONS):
        (cond,) = call.run_block(call.attrs["cond_graph"], values)
        if not bool(np.asarray(cond).reshape(-1)[0]):
            return values
        values = call.run_block(call.attrs["body_graph"], values)
    raise UnpredictableError(f"{call.label}: WHILE_LOOP did not terminate within {MAX_ITERATIONS} iterations")

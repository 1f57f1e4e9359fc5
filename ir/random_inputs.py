"""Seeded random inputs for a graph: the one definition the tuner, the pruning search, the CLI, the demo,
the ONNX agreement check and the benchmarks share.

Integers are drawn uniformly over their type's full range (both ends included), booleans from {False, True},
floats from a standard normal; each array has the dtype's numpy storage type. The same seed gives the same
arrays.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tosac.ir.graph import TensorType


def random_inputs(input_types: Mapping[str, TensorType], seed: int | np.random.Generator,
                  narrow_bits: int = 0) -> dict[str, np.ndarray]:
    """One seeded random array per input of ``input_types`` (e.g. ``graph.input_types()``), in its order.

    ``seed`` may also be a ``numpy.random.Generator``, to draw several input sets from one stream.
    ``narrow_bits`` > 0 draws integers of 32 bits and more from [-2^narrow_bits, 2^narrow_bits - 1] instead,
    for kernels whose results are undefined (overflow) on most full-range inputs, such as int32 sums.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, ttype in input_types.items():
        dt = ttype.dtype
        if dt.is_int:
            lo, hi = dt.min, dt.max
            if narrow_bits and dt.bits >= 32:
                lo, hi = -(1 << narrow_bits), (1 << narrow_bits) - 1
            out[name] = rng.integers(lo, hi, size=ttype.shape, endpoint=True).astype(dt.storage)
        elif dt.kind == "bool":
            out[name] = rng.integers(0, 2, size=ttype.shape).astype(bool)
        else:
            out[name] = rng.standard_normal(ttype.shape).astype(dt.storage)
    return out

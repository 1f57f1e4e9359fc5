"""Built-in example models, so a fresh checkout can show the whole product.

``example_int8_net`` is a small int8 network in the TFLite quantized style:
conv2d → per-channel RESCALE (DOUBLE_ROUND, as TFLite) → CLAMP (ReLU6),
depthwise conv2d, average pooling, a fully-connected layer as MATMUL, a
residual-free classifier head with an int8 TABLE (a sigmoid lookup). Weights
are seeded random: the numbers, not the accuracy, are what the tests show.
The bundled real models are in :mod:`tosac.models`.
"""
from __future__ import annotations

import numpy as np

from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.graph import Graph
from tosac.ir.ops import RoundingMode


def _sigmoid_table(in_scale: float, out_scale: float, out_zp: int) -> np.ndarray:
    """An int8 TABLE for sigmoid (constant data, so float is fine at build time)."""
    x = np.arange(-128, 128) * in_scale
    y = np.round(1.0 / (1.0 + np.exp(-x)) / out_scale) + out_zp
    return np.clip(y, -128, 127).astype(np.int8)


def example_int8_net(seed: int = 0) -> Graph:
    """The built-in int8 example: input x int8[1,16,16,8] → output int8[1,1,10]."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 16, 16, 8))
    w1 = g.const(rng.integers(-127, 128, (16, 3, 3, 8), dtype=np.int8))
    b1 = rng.integers(-2000, 2000, (16,)).astype(np.int32)
    acc = g.conv2d(x, w1, b1, pad=(1, 1, 1, 1), input_zp=-5)
    y = g.rescale(acc, DType.INT8, multiplier=rng.integers(1 << 29, 1 << 30, 16).tolist(),
                  shift=[40] * 16, input_zp=0, output_zp=-128, rounding_mode=RoundingMode.DOUBLE_ROUND)
    y = g.clamp(y, min_val=-128, max_val=40)
    w2 = g.const(rng.integers(-127, 128, (3, 3, 16, 1), dtype=np.int8))
    acc = g.depthwise_conv2d(y, w2, pad=(1, 0, 1, 0), stride=(2, 2), input_zp=-128)
    y = g.rescale(acc, DType.INT8, multiplier=[1 << 30], shift=[38], output_zp=3)
    y = g.avg_pool2d(y, kernel=(2, 2), stride=(2, 2), input_zp=3, output_zp=3)      # [1,4,4,16]
    y = g.reshape(y, (1, 1, 256))
    w3 = g.const(rng.integers(-127, 128, (1, 256, 10), dtype=np.int8))
    acc = g.matmul(y, w3, a_zp=3, b_zp=0)
    y = g.rescale(acc, DType.INT8, multiplier=[1 << 30], shift=[41], output_zp=0)
    y = g.table(y, _sigmoid_table(0.05, 1 / 256, -128))
    g.output(y)
    return g.build()

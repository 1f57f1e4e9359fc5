"""The TFLite frontend: int8 ``.tflite`` flatbuffers → tosac graphs, bit for bit the TFLite reference kernels.

    graph = tosac.frontends.tflite.load("model.tflite")
    exe = tosac.compile(graph, "host")

Graph inputs and outputs are int8. A float model input read only by a QUANTIZE
becomes that QUANTIZE's int8 output, and a float output made by DEQUANTIZE is
the int8 tensor it dequantizes; ``graph.metadata["io_quantization"]`` gives
each int8 input's and output's scale and zero point (the C header states them). Malformed files are :class:`~tosac.errors.FrontendError`,
operators or options outside the supported set :class:`~tosac.errors.UnsupportedError`.
"""
from __future__ import annotations

import os

# Importing the legalisation modules fills HANDLERS.
from tosac.frontends.tflite import (activations, elementwise, matmul, reduce, resize, shape_ops,  # noqa: F401
                                    slicing, softmax, spatial)
from tosac.frontends.tflite.converter import HANDLERS, convert
from tosac.frontends.tflite.reader import read_model
from tosac.ir.graph import Graph

__all__ = ["load", "supported_ops"]


def load(model: str | os.PathLike | bytes | bytearray | memoryview) -> Graph:
    """Import subgraph 0 of a TFLite model (path or bytes) as a verified tosac graph."""
    return convert(read_model(model))


def supported_ops() -> list[str]:
    """The TFLite builtin operators the frontend legalises."""
    return sorted(HANDLERS)

"""The ONNX frontend: quantized (QDQ and QOperator) and float ONNX models → tosac graphs.

    graph = tosac.frontends.onnx.load("model.onnx")
    exe = tosac.compile(graph, "host")

With ``io="quantized"`` (the default) a float model input that is read only by
QuantizeLinear becomes an integer input, and an output produced by
DequantizeLinear stays integer: the compiled model is integer end to end, as
deployed int8 models are. ``graph.metadata["io_quantization"]`` gives each
such tensor's scale and zero point. ``io="float"`` keeps the model's float
inputs and outputs (quantizing with a float multiply by 1/scale).
See :mod:`.fixed_point` for the rounding choice.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import onnx

from tosac.errors import FrontendError
# Importing the legalisation modules fills HANDLERS and PATTERNS.
from tosac.frontends.onnx import dynamic, floating, normalization, qoperator, quantized, shape_ops  # noqa: F401
from tosac.frontends.onnx import resize  # noqa: F401
from tosac.frontends.onnx.converter import HANDLERS, convert
from tosac.frontends.onnx.reader import infer_shapes, initializers, read_model
from tosac.ir.graph import Graph

__all__ = ["load", "supported_ops"]


def load(model: str | os.PathLike | onnx.ModelProto, *, io: str = "quantized",
         input_shapes: Mapping[str, Sequence[int]] | None = None,
         constants: Mapping[str, np.ndarray] | None = None) -> Graph:
    """Import an ONNX model (a path or a ModelProto) as a verified tosac graph.

    ``input_shapes`` fixes dynamic input dimensions. ``constants`` gives values
    for graph inputs that the model needs as constants (scales, zero points,
    shapes): where an op needs a constant, the value is used, and an input used
    only that way leaves the graph's inputs. Inputs read as data stay inputs.
    """
    if io not in ("quantized", "float"):
        raise FrontendError(f"io must be 'quantized' or 'float', got '{io}'")
    proto = read_model(model)
    bound = {k: np.asarray(v) for k, v in (constants or {}).items()}
    names = {v.name for v in proto.graph.input}
    unknown = sorted(set(bound) - names)
    if unknown:
        raise FrontendError(f"constants names no model input: {unknown}")
    proto = infer_shapes(proto, input_shapes, bound)
    return convert(proto, initializers(proto), io, bound)


def supported_ops() -> list[str]:
    """The ONNX operators the frontend legalises (``domain::op`` for non-default domains)."""
    return sorted(f"{d}::{op}" if d else op for d, op in HANDLERS)


"""Multiply-accumulates of an ONNX model's Conv, Gemm and MatMul nodes, counted from shapes.

Conv: every output element takes ``C_in / group × kernel area`` MACs. Gemm:
``M × N × K``. MatMul (numpy semantics, batched and broadcast): every output
element takes ``K`` MACs. Other ops (element-wise, pooling, softmax) are not
counted, as MLPerf and model zoos count MACs.
"""
from __future__ import annotations

import math

import onnx

from tosac.errors import TosacError
from tosac.models.shapes import infer

COUNTED = ("Conv", "Gemm", "MatMul")


def count_macs(model: onnx.ModelProto) -> int:
    """Total MACs of one inference of ``model`` (shapes must be static)."""
    shapes = infer(model)

    def dims(name: str, node: onnx.NodeProto) -> tuple[int, ...]:
        found = shapes.get(name, (0, None))[1]
        if found is None or not all(isinstance(d, int) and d > 0 for d in found):
            raise TosacError(f"count_macs: {node.op_type} node '{node.name}': the shape of '{name}' is not static "
                             f"({found})")
        return found

    total = 0
    for node in model.graph.node:
        if node.op_type not in COUNTED:
            continue
        out = dims(node.output[0], node)
        if node.op_type == "Conv":
            weight = dims(node.input[1], node)
            total += math.prod(out) * math.prod(weight[1:])
        elif node.op_type == "Gemm":
            a = dims(node.input[0], node)
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            total += math.prod(out) * (a[0] if trans_a else a[1])
        else:
            total += math.prod(out) * dims(node.input[0], node)[-1]
    return total

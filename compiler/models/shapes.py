"""Every tensor's element type and shape in an ONNX model, from ONNX shape inference.

Inference runs on a copy without the bytes of large float weights (their dims
and type are all it needs), so a 100 MB network is inferred in milliseconds;
small constants keep their values because shape arithmetic (Pad's pads,
Resize's scales, Reshape's shape through ``data_prop``) reads them.
"""
from __future__ import annotations

import onnx

LARGE = 4096   # bytes: float initializers above this size are never read by shape inference


Dims = tuple[int | str | None, ...]


def infer(model: onnx.ModelProto) -> dict[str, tuple[int, Dims | None]]:
    """Tensor name -> (ONNX element type, dims); a dim is an int, a symbolic name or None (unknown);
    dims are None when even the rank is unknown."""
    light = onnx.ModelProto()
    light.CopyFrom(model)
    for init in light.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and len(init.raw_data) > LARGE:
            init.ClearField("raw_data")
    light.graph.ClearField("value_info")
    typed = onnx.shape_inference.infer_shapes(light, data_prop=True)
    found: dict[str, tuple[int, Dims | None]] = {}
    for value in [*typed.graph.input, *typed.graph.value_info, *typed.graph.output]:
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim) \
            if tensor.HasField("shape") else None
        found[value.name] = (tensor.elem_type, dims)
    for init in model.graph.initializer:
        found[init.name] = (init.data_type, tuple(init.dims))
    return found

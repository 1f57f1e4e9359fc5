"""Reading an ONNX model safely: the file, its external data, its opsets and its static shapes.

Everything a user can get wrong here (a truncated file, external data that
points outside the model's folder, an old opset, a dynamic dimension without a
value) raises :class:`FrontendError` naming the file, tensor or node.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx
import onnx.version_converter
from onnx import numpy_helper, shape_inference

from tosac.errors import FrontendError

MIN_OPSET = 13
#: metadata_props key (and graph.metadata key) recording the opset a model was upgraded from.
UPGRADED_FROM = "tosac.upgraded_from_opset"


class OpsetUpgradeWarning(UserWarning):
    """An old-opset model was upgraded on import; its numbers are ONNX's converter's responsibility too."""


def read_model(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """Parse a model file (or take a ModelProto) and load its external data from the model's folder only."""
    if isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        base = None
    else:
        path = Path(model)
        if not path.is_file():
            raise FrontendError(f"{path}: no such ONNX file")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf raises DecodeError and friends
            raise FrontendError(f"{path}: not a valid ONNX file ({type(exc).__name__}: {exc})") from None
        base = path.resolve().parent
    if not proto.graph.node and not proto.graph.output:
        raise FrontendError(f"{_where(model)}: the ONNX file holds no graph (empty or truncated file?)")
    _load_external_data(proto, base, _where(model))
    opset = _default_opset(proto, _where(model))
    return _upgraded(proto, opset, _where(model)) if opset < MIN_OPSET else proto


def _where(model: object) -> str:
    return "<ModelProto>" if isinstance(model, onnx.ModelProto) else str(model)


def _load_external_data(proto: onnx.ModelProto, base: Path | None, where: str) -> None:
    """Read external tensor data, refusing any location that escapes the model's folder."""
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if base is None:
            raise FrontendError(f"{where}: tensor '{tensor.name}' keeps its data in external file '{location}'; "
                                "load the model from its path so the file can be found")
        target = (base / location).resolve()
        if not location or os.path.isabs(location) or base not in target.parents:
            raise FrontendError(f"{where}: tensor '{tensor.name}': external data location '{location}' "
                                "is outside the model's folder; refusing to read it")
        if not target.is_file():
            raise FrontendError(f"{where}: tensor '{tensor.name}': external data file '{location}' is missing")
        offset, length = int(info.get("offset", 0)), info.get("length")
        with open(target, "rb") as f:
            f.seek(offset)
            data = f.read(int(length)) if length is not None else f.read()
        if length is not None and len(data) != int(length):
            raise FrontendError(f"{where}: tensor '{tensor.name}': external data file '{location}' is truncated")
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _all_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)


def _default_opset(proto: onnx.ModelProto, where: str) -> int:
    versions = {o.domain: o.version for o in proto.opset_import}
    default = versions.get("", versions.get("ai.onnx"))
    if default is None:
        raise FrontendError(f"{where}: the model imports no default ONNX opset")
    return default


def _upgraded(proto: onnx.ModelProto, opset: int, where: str) -> onnx.ModelProto:
    """An opset 7-12 model converted to opset 13 by ONNX's own version converter (the ONNX Model Zoo's int8
    models are opset 12), with a warning and a ``tosac.upgraded_from_opset`` metadata entry saying so."""
    try:
        upgraded = onnx.version_converter.convert_version(proto, MIN_OPSET)
    except Exception as exc:   # the converter raises RuntimeError/ConvertError with its own message
        raise FrontendError(f"{where}: opset {opset} is older than {MIN_OPSET} and onnx.version_converter cannot "
                            f"upgrade it ({type(exc).__name__}: {exc})") from None
    warnings.warn(f"{where}: opset {opset} upgraded to opset {MIN_OPSET} with onnx.version_converter",
                  OpsetUpgradeWarning, stacklevel=3)
    upgraded.metadata_props.add(key=UPGRADED_FROM, value=str(opset))
    return upgraded


def infer_shapes(proto: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None,
                 bound: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """Fix the inputs' dimensions (from ``input_shapes`` where dynamic) and run ONNX shape inference."""
    input_shapes = dict(input_shapes or {})
    initializers = {t.name for t in proto.graph.initializer}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        given = input_shapes.pop(value.name, None)
        if value.name in bound:
            given = np.asarray(bound[value.name]).shape
        if given is not None:
            if len(given) != len(dims) and len(dims):
                raise FrontendError(f"input '{value.name}': shape {list(given)} has rank {len(given)}, "
                                    f"the model declares rank {len(dims)}")
            del dims[:]
            for d in given:
                dims.add().dim_value = int(d)
            continue
        for i, d in enumerate(dims):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                label = d.dim_param or "?"
                raise FrontendError(f"input '{value.name}': dimension {i} is dynamic ('{label}'); give its value "
                                    f"with input_shapes={{'{value.name}': [...]}} (CLI: --input-shape)")
    if input_shapes:
        raise FrontendError(f"input_shapes names no model input: {sorted(input_shapes)}")
    try:
        return shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError/ValidationError with the node in the text
        raise FrontendError(f"ONNX shape inference failed: {exc}") from None


def initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The model's initializers as numpy arrays."""
    out = {}
    for t in proto.graph.initializer:
        try:
            out[t.name] = tensor_data(t)
        except Exception as exc:
            raise FrontendError(f"initializer '{t.name}' cannot be decoded: {exc}") from None
    return out


def tensor_data(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor's values; 4- and 2-bit integers (opset 21 weights) widened to int8/uint8, value for value, so
    the int8 kernels compute with them exactly."""
    data = numpy_helper.to_array(tensor)
    if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.INT2):
        return data.astype(np.int8)
    if tensor.data_type in (onnx.TensorProto.UINT4, onnx.TensorProto.UINT2):
        return data.astype(np.uint8)
    return data

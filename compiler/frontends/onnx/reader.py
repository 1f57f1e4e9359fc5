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
from tosac.frontends.onnx.isolated import run_isolated

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
    if not proto.graph.output:
        raise FrontendError(f"{_where(model)}: the graph declares no outputs")
    # Before anything of onnx's C++ (shape inference, the version converter) sees the nodes: some attribute
    # values (strides=[0, 0]) kill the process there with SIGFPE instead of raising.
    check_attributes(proto.graph, _where(model))
    _load_external_data(proto, base, _where(model))
    opset = _default_opset(proto, _where(model))
    return _upgraded(proto, opset, _where(model)) if opset < MIN_OPSET else proto


def _where(model: object) -> str:
    return "<ModelProto>" if isinstance(model, onnx.ModelProto) else str(model)


def _load_external_data(proto: onnx.ModelProto, base: Path | None, where: str) -> None:
    """Read external tensor data, refusing any location that escapes the model's folder and any offset or
    length that does not fit the file (checked before reading, so a lying length allocates nothing)."""
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        what = f"{where}: tensor '{tensor.name}'"
        if base is None:
            raise FrontendError(f"{what} keeps its data in external file '{location[:200]}'; "
                                "load the model from its path so the file can be found")
        target = _external_file(base, location, what)
        offset = _external_int(info, "offset", 0, what)
        length = _external_int(info, "length", None, what)
        try:
            with open(target, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if offset > size:
                    raise FrontendError(f"{what}: external data offset {offset} is beyond the end of "
                                        f"'{location}' ({size} bytes)")
                if length is None:
                    length = size - offset
                if offset + length > size:
                    raise FrontendError(f"{what}: external data (offset {offset}, length {length}) ends at byte "
                                        f"{offset + length}, past the end of '{location}' ({size} bytes): "
                                        "the file is truncated or the length is wrong")
                f.seek(offset)
                data = f.read(length)
        except OSError as exc:
            raise FrontendError(f"{what}: cannot read external data file '{location}' ({exc.strerror or exc})"
                                ) from None
        if len(data) != length:
            raise FrontendError(f"{what}: external data file '{location}' is truncated")
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _external_file(base: Path, location: str, what: str) -> Path:
    """The external data file of ``location``, inside ``base`` (no ../, absolute path or escaping symlink)."""
    shown = location if len(location) <= 200 else location[:200] + f"... ({len(location)} characters)"
    if "\0" in location:
        raise FrontendError(f"{what}: external data location {shown!r} contains a NUL byte")
    if len(location) > 4096 or any(len(part) > 255 for part in location.split("/")):
        raise FrontendError(f"{what}: external data location {shown!r} is too long for a file name")
    try:
        target = (base / location).resolve()
    except (OSError, RuntimeError, ValueError) as exc:      # RuntimeError: a symlink loop (Python < 3.13)
        raise FrontendError(f"{what}: external data location {shown!r} cannot be resolved ({exc})") from None
    if not location or os.path.isabs(location) or base not in target.parents:
        raise FrontendError(f"{what}: external data location '{shown}' "
                            "is outside the model's folder; refusing to read it")
    if not target.is_file():
        raise FrontendError(f"{what}: external data file '{shown}' is missing")
    return target


def _external_int(info: Mapping[str, str], key: str, default: int | None, what: str) -> int | None:
    """A non-negative integer entry (offset, length) of a tensor's external_data."""
    text = info.get(key)
    if text is None:
        return default
    if not text.strip().isdigit() or not text.strip().isascii():
        raise FrontendError(f"{what}: external data {key} {text[:40]!r} is not a non-negative integer")
    return int(text)


#: Ops whose spatial attributes onnx's shape inference divides by or sizes buffers with (any domain: the
#: com.microsoft ones are checked too, as tosac reads them).
_SPATIAL_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "DeformConv", "MaxPool",
                          "AveragePool", "LpPool", "MaxUnpool", "Col2Im", "NhwcConv", "FusedConv", "NhwcMaxPool",
                          "QLinearAveragePool", "QLinearConvTranspose"})
_POSITIVE = ("strides", "dilations", "kernel_shape")       # each value >= 1
_NON_NEGATIVE = ("pads", "output_padding")
_INT_LIMIT = 2 ** 31 - 1         # larger values overflow onnx's int64 size arithmetic (products of two)
#: Graph attributes an op cannot be inferred without (onnx dereferences them unchecked: SIGSEGV).
_REQUIRED_GRAPHS = {"Scan": ("body",), "Loop": ("body",), "If": ("then_branch", "else_branch")}


def check_attributes(graph: onnx.GraphProto, where: str) -> None:
    """Refuse attribute values that crash onnx's C++ shape inference or version converter (SIGFPE on a zero
    stride, overflow on a huge block size, SIGSEGV on a Scan without body), in ``graph`` and its subgraphs,
    with a FrontendError naming the node, attribute and value."""
    for node in graph.node:
        label = f"{where}: node '{node.name or (node.output[0] if node.output else '?')}' ({node.op_type})"
        attrs = {a.name: a for a in node.attribute}
        for name in _REQUIRED_GRAPHS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ():
            if name not in attrs or attrs[name].type != onnx.AttributeProto.GRAPH:
                raise FrontendError(f"{label}: the required graph attribute '{name}' is missing")
        if node.op_type in _SPATIAL_OPS:
            _check_spatial(attrs, label)
        if node.op_type in ("DepthToSpace", "SpaceToDepth") and "blocksize" in attrs:
            _in_range(_ints(attrs["blocksize"], label), attrs["blocksize"], 1, label)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                check_attributes(attr.g, where)
            for sub in attr.graphs:
                check_attributes(sub, where)


def _check_spatial(attrs: Mapping[str, onnx.AttributeProto], label: str) -> None:
    values = {name: _ints(attrs[name], label) for name in (*_POSITIVE, *_NON_NEGATIVE, "output_shape", "group")
              if name in attrs}
    for name in _POSITIVE + ("output_shape", "group"):
        if name in values:
            _in_range(values[name], attrs[name], 1, label)
    for name in _NON_NEGATIVE:
        if name in values:
            _in_range(values[name], attrs[name], 0, label)
    rank = len(values["kernel_shape"]) if "kernel_shape" in values else None
    for name in ("strides", "dilations", "output_padding"):
        if name in values and rank is not None and len(values[name]) != rank:
            raise FrontendError(f"{label}: attribute {name} = {values[name]} has {len(values[name])} values; "
                                f"kernel_shape {values['kernel_shape']} has {rank}")
    pads = values.get("pads")
    if pads is not None and (len(pads) % 2 or (rank is not None and len(pads) != 2 * rank)):
        raise FrontendError(f"{label}: attribute pads = {pads} has {len(pads)} values; it needs two per spatial "
                            f"dimension{f' ({2 * rank})' if rank is not None else ''}")


def _ints(attr: onnx.AttributeProto, label: str) -> list[int]:
    if attr.type == onnx.AttributeProto.INTS:
        return list(attr.ints)
    if attr.type == onnx.AttributeProto.INT:
        return [attr.i]
    raise FrontendError(f"{label}: attribute {attr.name} must be integers, not "
                        f"{onnx.AttributeProto.AttributeType.Name(attr.type)}")


def _in_range(values: list[int], attr: onnx.AttributeProto, low: int, label: str) -> None:
    bad = [v for v in values if not low <= v <= _INT_LIMIT]
    if bad:
        shown = values if len(values) <= 8 else f"{values[:8]}... ({len(values)} values)"
        shown = values[0] if attr.type == onnx.AttributeProto.INT else shown
        raise FrontendError(f"{label}: attribute {attr.name} = {shown}: {bad[0]} is out of range (every value must be "
                            f"{'>= 1' if low else '>= 0'} and < 2^31)")


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
        upgraded = onnx.load_from_string(run_isolated(
            lambda: onnx.version_converter.convert_version(proto, MIN_OPSET).SerializeToString(),
            "onnx.version_converter"))
    except FrontendError as exc:
        raise FrontendError(f"{where}: opset {opset} is older than {MIN_OPSET} and onnx.version_converter cannot "
                            f"upgrade it ({exc})") from None
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
    inferred = run_isolated(lambda: shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
                            .SerializeToString(), "ONNX shape inference")
    return onnx.load_from_string(inferred)


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

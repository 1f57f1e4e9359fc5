"""Example models: the four MLPerf Tiny networks (shipped) and a zoo of common families (generated on first use).

    tosac.models.names()              -> ["kws", "vww", "ic", "ad", "mobilenet_v2", ..., "bert_tiny"]
    tosac.models.list()               # one ModelRecord each: title, family, inputs, op types, MACs
    graph = tosac.models.load("kws")  # the int8 model, imported from its QDQ ONNX form
    proto = tosac.models.onnx_model("resnet18", "qoperator")
    tosac.models.path("resnet50", "tflite")   # the same network as an int8 TFLite file (NHWC)

Every network is a float ONNX model built in code with seeded weights and
quantized to int8 by ONNX Runtime's ``quantize_static`` (QDQ and QOperator,
per-channel weights) with seeded calibration data. The four MLPerf Tiny models
(:mod:`.networks`) ship their quantized files in ``data/``: no download and no
ONNX Runtime is needed to use them; ``python -m tosac.models.build`` rebuilds
them (byte for byte with the same ORT version). The zoo (:mod:`.vision`,
:mod:`.transformer`: MobileNetV2/V3, EfficientNet-B0, ResNet-18/50,
YOLOv3-tiny, a tiny BERT), written as PyTorch's exporter writes them, is too
large to ship: its files are generated on first use (needs onnxruntime) and
cached (:mod:`.zoo`, :mod:`.cache`). The ``tflite`` format is each network's QDQ
model written as an int8 TFLite flatbuffer (:mod:`.tflite_export`): shipped
for the four MLPerf Tiny models, generated and cached for the zoo.
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx as onnx_lib

from tosac.errors import TosacError
from tosac.ir.graph import Graph
from tosac.models.catalog import MODELS, ModelInfo, Shape

DATA = Path(__file__).parent / "data"
FORMATS = ("qdq", "qoperator", "float", "dynamic", "tflite")
KINDS = ("all", "shipped", "generated")

__all__ = ["DATA", "FORMATS", "MODELS", "ModelInfo", "ModelRecord", "names", "list", "path", "onnx_model", "load",
           "sample_inputs"]


@dataclass(frozen=True)
class ModelRecord:
    """What ``tosac.models.list()`` tells about a model; ``op_types`` and ``macs`` are of its float network."""
    name: str
    title: str
    family: str
    shipped: bool                      # False: generated on first use and cached
    input_shapes: dict[str, Shape]
    formats: tuple[str, ...]
    op_types: tuple[str, ...]          # sorted ONNX op types
    macs: int                          # multiply-accumulates of Conv, Gemm and MatMul


def names(kind: str = "all") -> builtins.list[str]:
    """Model names: ``all``, or only the ``shipped`` (MLPerf Tiny) or ``generated`` (zoo) ones."""
    if kind not in KINDS:
        raise TosacError(f"names(kind='{kind}'): choose one of {', '.join(KINDS)}")
    return [name for name, info in MODELS.items()
            if kind == "all" or info.shipped == (kind == "shipped")]


def _check(name: str, fmt: str) -> ModelInfo:
    if name not in MODELS:
        raise TosacError(f"no bundled model '{name}'; bundled models are {', '.join(MODELS)}")
    if fmt not in FORMATS:
        raise TosacError(f"unknown model format '{fmt}'; choose one of {', '.join(FORMATS)}")
    info = MODELS[name]
    if fmt not in info.formats:
        raise TosacError(f"model '{name}' has no '{fmt}' form; its formats are {', '.join(info.formats)}")
    return info


def path(name: str, fmt: str = "qdq") -> Path:
    """The ONNX (or, for ``tflite``, TFLite) file of a model in ``fmt``: shipped in the package, or generated
    into the cache if needed."""
    info = _check(name, fmt)
    if not info.shipped:
        from tosac.models.zoo import cached
        return cached(name, fmt)[0]
    if fmt == "float":
        raise TosacError("the float models are built in code, not shipped: use onnx_model(name, 'float')")
    file = DATA / (f"{name}.tflite" if fmt == "tflite" else f"{name}.{fmt}.onnx")
    if not file.is_file():
        raise TosacError(f"{file} is missing from the installation; rebuild it with "
                         "'python -m tosac.models.build' (needs onnxruntime)")
    return file


def onnx_model(name: str, fmt: str = "qdq") -> onnx_lib.ModelProto:
    """The model as an ONNX ModelProto (``float``: the unquantized network)."""
    if fmt == "tflite":
        raise TosacError("the tflite form is not an ONNX model: use path(name, 'tflite') or load(name, 'tflite')")
    info = _check(name, fmt)
    if not info.shipped:
        from tosac.models.zoo import load_cached
        return load_cached(name, fmt)
    if fmt == "float":
        from tosac.models.networks import ARCHITECTURES
        return ARCHITECTURES[name](0)
    return onnx_lib.load(str(path(name, fmt)))


def load(name: str, fmt: str = "qdq") -> Graph:
    """The model as a tosac graph (through the ONNX or TFLite frontend; quantized models have int8 I/O)."""
    from tosac.frontends.onnx import load as load_onnx

    info = _check(name, fmt)
    if fmt == "tflite":
        from tosac.frontends.tflite import load as load_tflite
        return load_tflite(path(name, fmt))
    return load_onnx(onnx_model(name, fmt) if info.shipped and fmt == "float" else path(name, fmt))


def sample_inputs(name: str, graph: Graph, count: int = 4, seed: int = 0) -> builtins.list[dict[str, np.ndarray]]:
    """Seeded inputs for ``graph`` (model ``name`` loaded by :func:`load`) as the model expects them: image-like
    data, or token ids within the vocabulary and 0/1 attention masks — quantized with the input's scale and zero
    point where the graph's input is integer. Uniform random integers would be meaningless token ids. Images
    are NCHW, or NHWC where the graph's input is (the ``tflite`` form)."""
    info = _check(name, "float")
    if info.shipped:
        from tosac.models.networks import calibration_data
        samples = [{"input": x} for x in calibration_data(name, info.input_shape, count, seed)]
    else:
        from tosac.models.zoo import RECIPES
        samples = RECIPES[name].samples(count, seed)
    quantization = graph.metadata.get("io_quantization", {})
    types = graph.input_types()
    feeds = []
    for sample in samples:
        feed = {}
        for input_name, data in sample.items():
            if input_name not in types and len(types) == 1:              # the TFLite file names its input itself
                input_name = next(iter(types))
            dtype = types[input_name].dtype
            if data.ndim == 4 and tuple(types[input_name].shape) == data.transpose(0, 2, 3, 1).shape != data.shape:
                data = data.transpose(0, 2, 3, 1)
            q = quantization.get(input_name)
            if q is not None:
                info_range = np.iinfo(dtype.storage)
                data = np.clip(np.rint(data / np.float32(q["scale"])) + q["zero_point"], info_range.min,
                               info_range.max)
            feed[input_name] = np.asarray(data).astype(dtype.storage)
        feeds.append(feed)
    return feeds


_records: dict[str, ModelRecord] = {}


def record(name: str) -> ModelRecord:
    """One model's :class:`ModelRecord` (computed from its graph, never generating or quantizing anything)."""
    info = _check(name, "float")
    if name not in _records:
        from tosac.models.macs import count_macs
        if info.shipped:
            from tosac.models.networks import ARCHITECTURES
            graph = ARCHITECTURES[name](0)
        else:
            from tosac.models.zoo import skeleton
            graph = skeleton(name)
        _records[name] = ModelRecord(name, info.title, info.family, info.shipped, info.input_shapes, info.formats,
                                     tuple(sorted({node.op_type for node in graph.graph.node})), count_macs(graph))
    return _records[name]


def list() -> builtins.list[ModelRecord]:  # noqa: A001 - ``tosac.models.list()`` as users spell it
    """A :class:`ModelRecord` for every model, shipped and generated."""
    return [record(name) for name in MODELS]

"""Built-in example models: the four MLPerf Tiny benchmark networks, built in code with seeded weights.

    tosac.models.names()              -> ["kws", "vww", "ic", "ad"]
    graph = tosac.models.load("kws")  # the int8 model, imported from its QDQ ONNX form
    proto = tosac.models.onnx_model("kws", "qoperator")

Each network (:mod:`.architectures`) is a float ONNX model with seeded random
weights, quantized to int8 by ONNX Runtime's ``quantize_static`` with seeded
calibration data (:mod:`.build`). The quantized files ship in ``data/`` so
no download and no ONNX Runtime is needed to use them; ``python -m
tosac.models.build`` rebuilds them (byte for byte with the same ORT version).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx as onnx_lib

from tosac.errors import TosacError
from tosac.ir.graph import Graph

DATA = Path(__file__).parent / "data"
FORMATS = ("qdq", "qoperator", "float")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    title: str
    input_shape: tuple[int, ...]


MODELS = {
    "kws": ModelInfo("kws", "keyword spotting DS-CNN (MLPerf Tiny)", (1, 1, 49, 10)),
    "vww": ModelInfo("vww", "visual wake words MobileNetV1 0.25 (MLPerf Tiny)", (1, 3, 96, 96)),
    "ic": ModelInfo("ic", "image classification ResNet-8 (MLPerf Tiny)", (1, 3, 32, 32)),
    "ad": ModelInfo("ad", "anomaly detection FC autoencoder (MLPerf Tiny)", (1, 640)),
}


def names() -> list[str]:
    return [*MODELS]


def path(name: str, fmt: str = "qdq") -> Path:
    """The shipped ONNX file of a bundled model in ``fmt`` (qdq or qoperator)."""
    _check(name, fmt)
    if fmt == "float":
        raise TosacError("the float models are built in code, not shipped: use onnx_model(name, 'float')")
    file = DATA / f"{name}.{fmt}.onnx"
    if not file.is_file():
        raise TosacError(f"{file} is missing from the installation; rebuild it with "
                         "'python -m tosac.models.generate' (needs onnxruntime)")
    return file


def _check(name: str, fmt: str) -> None:
    if name not in MODELS:
        raise TosacError(f"no bundled model '{name}'; bundled models are {', '.join(MODELS)}")
    if fmt not in FORMATS:
        raise TosacError(f"unknown model format '{fmt}'; choose one of {', '.join(FORMATS)}")


def onnx_model(name: str, fmt: str = "qdq") -> onnx_lib.ModelProto:
    """The bundled model as an ONNX ModelProto (``float``: the unquantized network, built in code)."""
    _check(name, fmt)
    if fmt == "float":
        from tosac.models.networks import ARCHITECTURES
        return ARCHITECTURES[name](0)
    return onnx_lib.load(str(path(name, fmt)))


def load(name: str, fmt: str = "qdq") -> Graph:
    """The bundled model as a tosac graph (through the ONNX frontend; quantized models have int8 I/O)."""
    from tosac.frontends.onnx import load as load_onnx

    return load_onnx(onnx_model(name, fmt) if fmt == "float" else path(name, fmt))



# ``tosac.models.list()`` as users spell it; this module must not call the builtin list() itself.
list = names  # noqa: A001

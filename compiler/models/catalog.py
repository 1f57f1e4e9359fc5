"""What each model is: name, title, family, inputs, formats, and whether its files ship or are generated.

Cheap to import (no builder runs): ``tosac.models.names()`` and the CLI read it.
"""
from __future__ import annotations

from dataclasses import dataclass

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """A model of ``tosac.models``; ``input_shape`` is its first input's (all but ``bert_tiny`` have one)."""
    name: str
    title: str
    input_shape: Shape
    family: str = ""
    shipped: bool = True
    inputs: tuple[tuple[str, Shape, str], ...] = ()       # (name, shape, numpy dtype) of every input
    formats: tuple[str, ...] = ("qdq", "qoperator", "float", "tflite")

    @property
    def input_shapes(self) -> dict[str, Shape]:
        return {name: shape for name, shape, _ in self.inputs} or {"input": self.input_shape}


def _image(name: str, title: str, family: str, size: int, shipped: bool = False, channels: int = 3) -> ModelInfo:
    shape = (1, channels, size, size)
    return ModelInfo(name, title, shape, family, shipped, (("input", shape, "float32"),))


MODELS: dict[str, ModelInfo] = {
    "kws": ModelInfo("kws", "keyword spotting DS-CNN (MLPerf Tiny)", (1, 1, 49, 10), "ds-cnn", True,
                     (("input", (1, 1, 49, 10), "float32"),)),
    "vww": _image("vww", "visual wake words MobileNetV1 0.25 (MLPerf Tiny)", "mobilenet_v1", 96, shipped=True),
    "ic": _image("ic", "image classification ResNet-8 (MLPerf Tiny)", "resnet", 32, shipped=True),
    "ad": ModelInfo("ad", "anomaly detection FC autoencoder (MLPerf Tiny)", (1, 640), "autoencoder", True,
                    (("input", (1, 640), "float32"),)),
    "mobilenet_v2": _image("mobilenet_v2", "MobileNetV2 0.35, 96x96, 1000 classes (torchvision export)",
                           "mobilenet_v2", 96),
    "mobilenet_v3_small": _image("mobilenet_v3_small", "MobileNetV3-Small, 96x96, 1000 classes (torchvision export)",
                                 "mobilenet_v3", 96),
    "efficientnet_b0": _image("efficientnet_b0", "EfficientNet-B0, 128x128, 1000 classes (torchvision export)",
                              "efficientnet", 128),
    "resnet18": _image("resnet18", "ResNet-18, 128x128, 1000 classes (torchvision export)", "resnet", 128),
    "resnet50": _image("resnet50", "ResNet-50, 128x128, 1000 classes (torchvision export)", "resnet", 128),
    "yolo_tiny": _image("yolo_tiny", "YOLOv3-tiny detector, 192x192, 80 classes, two heads", "yolo", 192),
    "bert_tiny": ModelInfo("bert_tiny", "BERT encoder, 2 layers, hidden 128, 4 heads, 32 tokens, 2 classes "
                           "(Hugging Face export)", (1, 32), "bert", False,
                           (("input_ids", (1, 32), "int64"), ("attention_mask", (1, 32), "int64")),
                           ("qdq", "qoperator", "float", "dynamic")),
}

"""The four MLPerf Tiny v1.0 benchmark networks as float ONNX models with seeded weights.

Architectures follow the reference Keras models of mlcommons/tiny
(``benchmark/training``); batch normalisation is folded into the conv/dense
biases, as a deployed model has it. Weights are He-normal from a seeded
generator: the numbers, not the accuracy, are what the examples are for.
Layout is ONNX's NCHW; TF "same" padding with stride 2 becomes the explicit
asymmetric pads TF computes (more padding at the end).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class NetBuilder:
    """Appends ONNX nodes and seeded initializers; every layer gets a readable name."""

    def __init__(self, name: str, input_shape: tuple[int, ...], seed: int):
        self.name, self.rng = name, np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))
        self.shapes = {"input": tuple(input_shape)}

    def _weight(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        data = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        self.inits.append(numpy_helper.from_array(data, name))
        return name

    def _bias(self, name: str, size: int) -> str:
        self.inits.append(numpy_helper.from_array(self.rng.normal(0.0, 0.05, size).astype(np.float32), name))
        return name

    def _node(self, op: str, inputs: list[str], name: str, shape: tuple[int, ...], **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        self.shapes[name] = shape
        return name

    def conv(self, x: str, name: str, channels: int, kernel: tuple[int, int], stride: int = 1,
             depthwise: bool = False, relu: bool = True) -> str:
        """Conv2D (or depthwise) with TF 'same' padding, bias, optional ReLU."""
        n, c, h, w = self.shapes[x]
        kh, kw = kernel
        pads = []
        for size, k in ((h, kh), (w, kw)):
            out = -(-size // stride)
            pads.append(max(0, (out - 1) * stride + k - size))
        begin, end = [p // 2 for p in pads], [p - p // 2 for p in pads]
        oh, ow = -(-h // stride), -(-w // stride)
        out_channels = c if depthwise else channels
        shape = (out_channels, 1, kh, kw) if depthwise else (channels, c, kh, kw)
        wname = self._weight(f"{name}.weight", shape, kh * kw * (1 if depthwise else c))
        y = self._node("Conv", [x, wname, self._bias(f"{name}.bias", out_channels)], name, (n, out_channels, oh, ow),
                       kernel_shape=[kh, kw], strides=[stride, stride], pads=begin + end,
                       group=c if depthwise else 1)
        return self.relu(y) if relu else y

    def relu(self, x: str) -> str:
        return self._node("Relu", [x], f"{x}.relu", self.shapes[x])

    def add(self, a: str, b: str, name: str) -> str:
        return self._node("Add", [a, b], name, self.shapes[a])

    def global_average_pool(self, x: str) -> str:
        n, c, _, _ = self.shapes[x]
        y = self._node("GlobalAveragePool", [x], "pool", (n, c, 1, 1))
        return self._node("Flatten", [y], "flatten", (n, c))

    def dense(self, x: str, name: str, units: int, relu: bool = False) -> str:
        n, k = self.shapes[x]
        y = self._node("Gemm", [x, self._weight(f"{name}.weight", (units, k), k), self._bias(f"{name}.bias", units)],
                       name, (n, units), transB=1)
        return self.relu(y) if relu else y

    def softmax(self, x: str) -> str:
        return self._node("Softmax", [x], "softmax", self.shapes[x], axis=-1)

    def model(self, output: str) -> onnx.ModelProto:
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, list(self.shapes[output]))
        graph = helper.make_graph(self.nodes, self.name, [self.input], [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tosac.models")
        onnx.checker.check_model(model, full_check=True)
        return model


def kws_dscnn(seed: int = 0) -> onnx.ModelProto:
    """Keyword spotting DS-CNN (small): 49×10 MFCC input, 12 classes."""
    b = NetBuilder("kws_dscnn", (1, 1, 49, 10), seed)
    x = b.conv("input", "conv1", 64, (10, 4), stride=2)
    for i in range(1, 5):
        x = b.conv(x, f"dw{i}", 64, (3, 3), depthwise=True)
        x = b.conv(x, f"pw{i}", 64, (1, 1))
    return b.model(b.softmax(b.dense(b.global_average_pool(x), "fc", 12)))


def vww_mobilenet(seed: int = 0) -> onnx.ModelProto:
    """Visual wake words MobileNetV1 α=0.25 at 96×96×3, 2 classes."""
    b = NetBuilder("vww_mobilenet_v1_025", (1, 3, 96, 96), seed)
    x = b.conv("input", "conv1", 8, (3, 3), stride=2)
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for i, (channels, stride) in enumerate(blocks, start=1):
        x = b.conv(x, f"dw{i}", 0, (3, 3), stride=stride, depthwise=True)
        x = b.conv(x, f"pw{i}", channels, (1, 1))
    return b.model(b.softmax(b.dense(b.global_average_pool(x), "fc", 2)))


def ic_resnet8(seed: int = 0) -> onnx.ModelProto:
    """Image classification ResNet-8 for CIFAR-10: 32×32×3 input, 10 classes."""
    b = NetBuilder("ic_resnet8", (1, 3, 32, 32), seed)
    x = b.conv("input", "conv1", 16, (3, 3))
    for stage, (channels, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        y = b.conv(x, f"stage{stage}.conv1", channels, (3, 3), stride=stride)
        y = b.conv(y, f"stage{stage}.conv2", channels, (3, 3), relu=False)
        if stride != 1:
            x = b.conv(x, f"stage{stage}.shortcut", channels, (1, 1), stride=stride, relu=False)
        x = b.relu(b.add(x, y, f"stage{stage}.add"))
    return b.model(b.softmax(b.dense(b.global_average_pool(x), "fc", 10)))


def ad_autoencoder(seed: int = 0) -> onnx.ModelProto:
    """Anomaly detection FC autoencoder: 640 inputs (5 frames × 128 mel bins), bottleneck 8."""
    b = NetBuilder("ad_autoencoder", (1, 640), seed)
    x = "input"
    for i, units in enumerate([128, 128, 128, 128, 8, 128, 128, 128, 128], start=1):
        x = b.dense(x, f"dense{i}", units, relu=True)
    return b.model(b.dense(x, "output", 640))


ARCHITECTURES: dict[str, Callable[[int], onnx.ModelProto]] = {
    "kws": kws_dscnn, "vww": vww_mobilenet, "ic": ic_resnet8, "ad": ad_autoencoder,
}


def calibration_data(name: str, shape: tuple[int, ...], count: int, seed: int) -> list[np.ndarray]:
    """Seeded calibration inputs with a plausible distribution: images in [0, 1], MFCC / mel features ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    if name in ("vww", "ic"):
        return [rng.uniform(0.0, 1.0, shape).astype(np.float32) for _ in range(count)]
    return [rng.normal(0.0, 1.0, shape).clip(-3, 3).astype(np.float32) for _ in range(count)]

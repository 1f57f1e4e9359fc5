"""An ONNX graph builder that writes the node patterns PyTorch's exporter (opset 17) writes.

The model zoo (:mod:`.vision`, :mod:`.transformer`) is built with it so that
tosac meets the same ONNX as in users' files: scoped node names
(``/layer1/layer1.0/conv1/Conv``), Conv without bias followed by
BatchNormalization (folded later, as ``torch.onnx.export`` folds it in eval
mode), ReLU6 as ``Clip`` with min/max inputs, SiLU as ``x * Sigmoid(x)``,
``nn.Upsample`` as ``Resize`` with a scales input, ``view()`` through
Shape/Gather/Unsqueeze/Concat.

Shapes are tracked as the graph grows (every layer needs its input's channels).
With ``seed=None`` the model is a skeleton: the real graph and shapes, but
weights are zero and large ones carry no data at all (dims and type only,
enough for shape inference), for op types and MAC counts in milliseconds.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SKELETON_DATA_LIMIT = 1024     # elements: a skeleton's larger weights carry no data
Shape = tuple[int, ...]


class OnnxNet:
    """Appends nodes with torch-style names, tracks every tensor's shape and dtype."""

    def __init__(self, name: str, seed: int | None):
        self.name = name
        self.rng = None if seed is None else np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.shapes: dict[str, Shape] = {}
        self.dtypes: dict[str, int] = {}
        self._used: dict[str, int] = {}

    # ------------------------------------------------------------------ tensors
    def input(self, name: str, shape: Shape, dtype: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))
        self.shapes[name], self.dtypes[name] = tuple(shape), dtype
        return name

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))   # keeps 0-d scalars
        self.shapes[name] = tuple(array.shape)
        self.dtypes[name] = helper.np_dtype_to_tensor_dtype(array.dtype)
        return name

    def _skeleton_weight(self, name: str, shape: Shape) -> str:
        if math.prod(shape) <= SKELETON_DATA_LIMIT:
            return self.initializer(name, np.zeros(shape, np.float32))
        self.inits.append(_dims_only(name, shape))
        self.shapes[name], self.dtypes[name] = tuple(shape), TensorProto.FLOAT
        return name

    def normal(self, name: str, shape: Shape, std: float, mean: float = 0.0) -> str:
        """A seeded N(mean, std) float32 initializer."""
        if self.rng is None:
            return self._skeleton_weight(name, shape)
        return self.initializer(name, self.rng.normal(mean, std, shape).astype(np.float32))

    def uniform(self, name: str, shape: Shape, low: float, high: float) -> str:
        if self.rng is None:
            return self._skeleton_weight(name, shape)
        return self.initializer(name, self.rng.uniform(low, high, shape).astype(np.float32))

    def scalar(self, name: str, value: float) -> str:
        """A float32 0-d initializer (Clip bounds, Div/Add constants)."""
        if name not in self.shapes:
            self.initializer(name, np.array(value, np.float32))
        return name

    def _unique(self, scope: str, op: str) -> str:
        base = f"{scope}/{op}"
        count = self._used.get(base, 0)
        self._used[base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    def node(self, op: str, inputs: Sequence[str], scope: str, shape: Shape,
             dtype: int = TensorProto.FLOAT, **attrs) -> str:
        """One node ``{scope}/{op}`` whose output ``{scope}/{op}_output_0`` has ``shape``."""
        name = self._unique(scope, op)
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        self.shapes[out], self.dtypes[out] = tuple(shape), dtype
        return out

    def constant(self, scope: str, array: np.ndarray) -> str:
        """A ``Constant`` node, as torch writes the small constants of shape arithmetic."""
        name = self._unique(scope, "Constant")
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node("Constant", [], [out], name=name,
                                           value=numpy_helper.from_array(np.asarray(array))))
        self.shapes[out] = tuple(np.asarray(array).shape)
        self.dtypes[out] = helper.np_dtype_to_tensor_dtype(np.asarray(array).dtype)
        return out

    # ------------------------------------------------------------------ layers
    def conv(self, x: str, scope: str, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
             bias: bool = False, pad: int | None = None) -> str:
        """``nn.Conv2d`` (He-normal weights); padding ``kernel // 2`` unless given."""
        n, c, h, w = self.shapes[x]
        pad = kernel // 2 if pad is None else pad
        oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
        fan_in = c // groups * kernel * kernel
        inputs = [x, self.normal(f"{scope[1:].replace('/', '.')}.weight", (out_channels, c // groups, kernel, kernel),
                                 math.sqrt(2.0 / fan_in))]
        if bias:
            inputs.append(self.normal(f"{scope[1:].replace('/', '.')}.bias", (out_channels,), 0.05))
        return self.node("Conv", inputs, scope, (n, out_channels, oh, ow), dilations=[1, 1], group=groups,
                         kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride, stride])

    def batchnorm(self, x: str, scope: str) -> str:
        """``nn.BatchNorm2d`` with seeded affine parameters; mean/var are set later from data
        (:func:`tosac.models.batchnorm.calibrate`)."""
        c = self.shapes[x][1]
        prefix = scope[1:].replace("/", ".")
        gamma = self.uniform(f"{prefix}.weight", (c,), 0.6, 1.4)
        beta = self.normal(f"{prefix}.bias", (c,), 0.2)
        mean = self.initializer(f"{prefix}.running_mean", np.zeros(c, np.float32))
        var = self.initializer(f"{prefix}.running_var", np.ones(c, np.float32))
        return self.node("BatchNormalization", [x, gamma, beta, mean, var], scope, self.shapes[x],
                         epsilon=1e-5, momentum=0.9)

    def conv_bn(self, x: str, scope: str, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
                act: str | None = None, pad: int | None = None) -> str:
        """Conv (no bias) + BatchNormalization + activation, as ``Conv2dNormActivation``."""
        y = self.conv(x, f"{scope}/conv", out_channels, kernel, stride, groups, pad=pad)
        y = self.batchnorm(y, f"{scope}/bn")
        return self.activation(y, scope, act)

    def activation(self, x: str, scope: str, act: str | None) -> str:
        if act is None:
            return x
        return {"relu": self.relu, "relu6": self.relu6, "hswish": self.hardswish, "hsigmoid": self.hardsigmoid,
                "silu": self.silu, "leaky": self.leaky_relu}[act](x, scope)

    def relu(self, x: str, scope: str) -> str:
        return self.node("Relu", [x], f"{scope}/relu", self.shapes[x])

    def relu6(self, x: str, scope: str) -> str:
        """``nn.ReLU6`` as torch exports it: Clip with min and max inputs."""
        return self.node("Clip", [x, self.scalar("clip.min", 0.0), self.scalar("clip.max", 6.0)],
                         f"{scope}/relu6", self.shapes[x])

    def hardswish(self, x: str, scope: str) -> str:
        return self.node("HardSwish", [x], f"{scope}/hardswish", self.shapes[x])

    def hardsigmoid(self, x: str, scope: str) -> str:
        return self.node("HardSigmoid", [x], f"{scope}/hardsigmoid", self.shapes[x], alpha=1.0 / 6.0, beta=0.5)

    def silu(self, x: str, scope: str) -> str:
        """``nn.SiLU`` as torch exports it at opset 17: ``x * Sigmoid(x)``."""
        return self.mul(x, self.sigmoid(x, f"{scope}/silu"), f"{scope}/silu")

    def leaky_relu(self, x: str, scope: str) -> str:
        return self.node("LeakyRelu", [x], f"{scope}/leaky", self.shapes[x], alpha=0.1)

    def sigmoid(self, x: str, scope: str) -> str:
        return self.node("Sigmoid", [x], scope, self.shapes[x])

    def add(self, a: str, b: str, scope: str) -> str:
        return self.node("Add", [a, b], scope, _broadcast(self.shapes[a], self.shapes[b]))

    def mul(self, a: str, b: str, scope: str) -> str:
        return self.node("Mul", [a, b], scope, _broadcast(self.shapes[a], self.shapes[b]))

    def max_pool(self, x: str, scope: str, kernel: int, stride: int, pad: int = 0) -> str:
        n, c, h, w = self.shapes[x]
        oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
        return self.node("MaxPool", [x], scope, (n, c, oh, ow), ceil_mode=0, dilations=[1, 1],
                         kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride, stride])

    def zero_pad(self, x: str, scope: str, right_bottom: int) -> str:
        """``nn.ZeroPad2d((0, p, 0, p))`` as torch exports it: Pad with a pads input (constant mode)."""
        n, c, h, w = self.shapes[x]
        pads = self.initializer(f"{scope[1:].replace('/', '.')}.pads",
                                np.array([0, 0, 0, 0, 0, 0, right_bottom, right_bottom], np.int64))
        return self.node("Pad", [x, pads], scope, (n, c, h + right_bottom, w + right_bottom), mode="constant")

    def global_average_pool(self, x: str, scope: str) -> str:
        n, c, _, _ = self.shapes[x]
        return self.node("GlobalAveragePool", [x], scope, (n, c, 1, 1))

    def reduce_mean(self, x: str, scope: str, axes: Sequence[int], keepdims: bool = True) -> str:
        shape = self.shapes[x]
        axes = [a % len(shape) for a in axes]
        out = tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)
        return self.node("ReduceMean", [x], scope, out, axes=list(axes), keepdims=int(keepdims))

    def flatten(self, x: str, scope: str) -> str:
        shape = self.shapes[x]
        return self.node("Flatten", [x], scope, (shape[0], math.prod(shape[1:])), axis=1)

    def linear(self, x: str, scope: str, units: int) -> str:
        """``nn.Linear`` on a 2-D input: Gemm with transB (torch's export); LeCun-normal weights, zero bias."""
        n, k = self.shapes[x]
        prefix = scope[1:].replace("/", ".")
        weight = self.normal(f"{prefix}.weight", (units, k), math.sqrt(1.0 / k))
        bias = self.initializer(f"{prefix}.bias", np.zeros(units, np.float32))
        return self.node("Gemm", [x, weight, bias], scope, (n, units), alpha=1.0, beta=1.0, transB=1)

    def resize_nearest(self, x: str, scope: str, factor: int) -> str:
        """``nn.Upsample(scale_factor, mode='nearest')`` as torch exports it at opset 17."""
        n, c, h, w = self.shapes[x]
        scales = self.initializer(f"{scope[1:].replace('/', '.')}.scales",
                                  np.array([1.0, 1.0, factor, factor], np.float32))
        return self.node("Resize", [x, "", scales], scope, (n, c, h * factor, w * factor),
                         coordinate_transformation_mode="asymmetric", cubic_coeff_a=-0.75, mode="nearest",
                         nearest_mode="floor")

    def concat(self, xs: Sequence[str], scope: str, axis: int) -> str:
        shape = list(self.shapes[xs[0]])
        shape[axis] = sum(self.shapes[x][axis] for x in xs)
        return self.node("Concat", xs, scope, tuple(shape), axis=axis)

    # ------------------------------------------------------------------ model
    def model(self, outputs: Sequence[str], output_names: Sequence[str] | None = None) -> onnx.ModelProto:
        """The finished model; outputs renamed (``output`` ...) as exporters name them from ``output_names``."""
        names = list(output_names or [])
        renamed = dict(zip(outputs, names))
        for node in self.nodes:
            node.output[:] = [renamed.get(o, o) for o in node.output]
            node.input[:] = [renamed.get(i, i) for i in node.input]
        graph_outputs = []
        for out in outputs:
            name = renamed.get(out, out)
            graph_outputs.append(helper.make_tensor_value_info(name, self.dtypes[out], list(self.shapes[out])))
        graph = helper.make_graph(self.nodes, self.name, self.inputs, graph_outputs, self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tosac.models",
                                 ir_version=8)


def _dims_only(name: str, shape: Shape) -> onnx.TensorProto:
    """A float initializer with dims and no data (a skeleton's weight; not runnable)."""
    tensor = onnx.TensorProto(name=name, data_type=TensorProto.FLOAT)
    tensor.dims.extend(shape)
    return tensor


def has_data(tensor: onnx.TensorProto) -> bool:
    """False for a skeleton's data-less weight."""
    return math.prod(tensor.dims) == 0 or bool(tensor.raw_data or tensor.float_data or tensor.int64_data
                                                or tensor.int32_data or tensor.double_data)


def _broadcast(a: Shape, b: Shape) -> Shape:
    return tuple(np.broadcast_shapes(a, b))


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: the nearest multiple of ``divisor``, never 10 % below ``value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new

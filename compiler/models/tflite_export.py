"""A bundled network's int8 QDQ ONNX model written as an int8 ``.tflite`` file: the same network for LiteRT.

The QDQ model (ONNX Runtime's ``quantize_static``) already holds everything an
int8 TFLite model needs: per-tensor activation scales and zero points,
symmetric per-channel int8 weights and int32 biases with scale
``s_in · s_w``. This module maps each float op between its DequantizeLinear
inputs and QuantizeLinear output to the TFLite builtin with those parameters,
in NHWC (weights transposed to OHWI / 1HWC), so tosac, ONNX Runtime and LiteRT
run one network. The arithmetic then is TFLite's (integer requantization)
rather than ONNX's (float), so the two files' outputs differ by rounding;
each file is exact for its own runtime.

Mapping choices, where TFLite has no one-to-one op:

* ONNX explicit padding that is neither SAME nor VALID: a PAD (with the input's
  zero point, the quantized 0.0; ``-128`` before MAX_POOL_2D) and a VALID op.
* Relu/Clip fused by ONNX Runtime into the output's quantization range: TFLite
  clamps to the same int8 range, so no activation is needed.
* LOGISTIC and SOFTMAX outputs take TFLite's required quantization (scale
  1/256, zero point −128) instead of the calibrated one.
* HardSigmoid ``clip(αx + β, 0, 1)`` with α = 1/6, β = 1/2 (MobileNetV3's):
  ADD of the constant 3 with a fused RELU6, then MUL by the constant 1/6, as
  TensorFlow's converter writes ``relu6(x + 3) / 6``.

Only static 4-D NCHW image networks and 2-D MLPs are handled (every bundled
model but the transformer); anything else is a :class:`TosacError` naming the node.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tosac.errors import TosacError
from tosac.frontends.tflite.writer import SAME, VALID, ModelWriter

NCHW_TO_NHWC = (0, 2, 3, 1)
AXIS_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}
_RELU6 = 3                          # tflite.ActivationFunctionType


class _Exporter:
    def __init__(self, model: onnx.ModelProto, description: str):
        model = onnx.shape_inference.infer_shapes(model)
        self.g = model.graph
        self.description = description
        self.inits = {i.name: numpy_helper.to_array(i) for i in self.g.initializer}
        self.shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
                       for v in list(self.g.value_info) + list(self.g.input) + list(self.g.output)}
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.w = ModelWriter()
        self.tensors: dict[str, int] = {}              # quantized ONNX tensor name -> TFLite tensor

    # ------------------------------------------------------------ tensors
    def _qparams(self, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        scale = self.inits[node.input[1]].astype(np.float32)
        zp = self.inits[node.input[2]].astype(np.int64) if len(node.input) > 2 else np.zeros_like(scale, np.int64)
        return scale, zp

    def _layout(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[i] for i in NCHW_TO_NHWC) if len(shape) == 4 else shape

    def act(self, float_name: str, node: onnx.NodeProto) -> int:
        """The TFLite tensor behind a DequantizeLinear output an op reads."""
        dq = self.producer.get(float_name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in self.tensors:
            raise TosacError(f"node '{node.name}' ({node.op_type}): input '{float_name}' is not a dequantized "
                             "activation")
        return self.tensors[dq.input[0]]

    def out(self, node: onnx.NodeProto, scale: float | None = None, zp: int | None = None) -> int:
        """A new int8 TFLite tensor for the op's output, with the quantization of the QuantizeLinear after it."""
        q = [c for c in self.consumers.get(node.output[0], []) if c.op_type == "QuantizeLinear"]
        if len(q) != 1:
            raise TosacError(f"node '{node.name}' ({node.op_type}): its output is not quantized once")
        s, z = self._qparams(q[0])
        if scale is not None:
            s, z = np.float32(scale), np.int64(zp)
        idx = self.w.tensor(self._layout(self.shapes[node.output[0]]), "INT8", scale=s, zp=z,
                            name=q[0].output[0])
        self.tensors[q[0].output[0]] = idx
        return idx

    def scale_of(self, idx: int) -> float:
        return float(self.w.tensors[idx]["scale"][0])

    def zp_of(self, idx: int) -> int:
        return int(self.w.tensors[idx]["zp"][0])

    def weights(self, float_name: str, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        """An int8 constant behind a DequantizeLinear: values and per-channel (or per-tensor) scales."""
        dq = self.producer.get(float_name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in self.inits:
            raise TosacError(f"node '{node.name}' ({node.op_type}): '{float_name}' is not a quantized constant")
        scale, zp = self._qparams(dq)
        if np.any(zp != 0):
            raise TosacError(f"node '{node.name}': weights with non-zero zero points")
        return self.inits[dq.input[0]], scale

    def const(self, value: float, like: str) -> int:
        """A scalar int8 constant holding ``value`` exactly (q = 127 or −127, scale |value|/127)."""
        s = np.float32(abs(value) / 127)
        return self.w.tensor((1,), "INT8", scale=s, zp=0, data=np.array([127 if value > 0 else -127], np.int8),
                             name=like)

    def int32(self, values, name: str) -> int:
        v = np.asarray(values, np.int32)
        return self.w.tensor(v.shape, "INT32", data=v, name=name)

    # ------------------------------------------------------------ padding
    def padding(self, node: onnx.NodeProto, x: int, k: tuple[int, int], strides: tuple[int, int],
                dil: tuple[int, int], fill: int) -> tuple[int, int]:
        """SAME or VALID for ONNX ``pads``; other paddings become a PAD op before (returns (code, input))."""
        pads = list(_attr(node, "pads", [0, 0, 0, 0]))
        if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID") or _attr(node, "ceil_mode", 0):
            raise TosacError(f"node '{node.name}' ({node.op_type}): auto_pad / ceil_mode are not exported")
        if not any(pads):
            return VALID, x
        shape = self.w.tensors[x]["shape"]
        same = []
        for i in range(2):
            size = shape[1 + i]
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - size, 0)
            same += [total // 2, total - total // 2]
        if [pads[0], pads[2], pads[1], pads[3]] == same:
            return SAME, x
        padded = [shape[0], shape[1] + pads[0] + pads[2], shape[2] + pads[1] + pads[3], shape[3]]
        t = self.w.tensors[x]
        y = self.w.tensor(padded, "INT8", scale=t["scale"], zp=t["zp"], name=f"{node.name}_pad")
        p = self.int32([[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], f"{node.name}_paddings")
        if fill == int(t["zp"][0]):
            self.w.op("PAD", [x, p], [y], "PadOptions")
        else:
            self.w.op("PADV2", [x, p, self.w.tensor((1,), "INT8", scale=t["scale"], zp=t["zp"],
                                                     data=np.array([fill], np.int8))], [y], "PadV2Options")
        return VALID, y

    # ------------------------------------------------------------ operators
    def conv(self, n: onnx.NodeProto) -> None:
        x = self.act(n.input[0], n)
        w, ws = self.weights(n.input[1], n)
        cin = self.w.tensors[x]["shape"][3]
        group = _attr(n, "group", 1)
        k, strides, dil = tuple(w.shape[2:]), tuple(_attr(n, "strides", [1, 1])), tuple(_attr(n, "dilations", [1, 1]))
        s_x = np.float32(self.scale_of(x))
        code, x = self.padding(n, x, k, strides, dil, self.zp_of(x))
        bias = self.inits[self.producer[n.input[2]].input[0]].astype(np.int32) if len(n.input) > 2 else \
            np.zeros(w.shape[0], np.int32)
        y = self.out(n)
        common = dict(Padding=code, StrideH=strides[0], StrideW=strides[1], DilationHFactor=dil[0],
                      DilationWFactor=dil[1], FusedActivationFunction=0)
        depthwise = group > 1 and group == cin and w.shape[1] == 1
        if group != 1 and not depthwise:
            raise TosacError(f"node '{n.name}': grouped convolution (group {group}) is not exported")
        f = self.w.tensor((1, *k, w.shape[0]) if depthwise else (w.shape[0], *k, w.shape[1]), "INT8",
                          scale=ws, zp=np.zeros(ws.size, np.int64), qdim=3 if depthwise else 0,
                          data=w.transpose(1, 2, 3, 0) if depthwise else w.transpose(0, 2, 3, 1),
                          name=n.input[1])
        b = self.w.tensor((w.shape[0],), "INT32", scale=s_x * ws, zp=np.zeros(ws.size, np.int64), data=bias,
                          name=f"{n.name}_bias")
        if depthwise:
            self.w.op("DEPTHWISE_CONV_2D", [x, f, b], [y], "DepthwiseConv2DOptions",
                      DepthMultiplier=w.shape[0] // cin, **common)
        else:
            self.w.op("CONV_2D", [x, f, b], [y], "Conv2DOptions", **common)

    def gemm(self, n: onnx.NodeProto) -> None:
        if _attr(n, "alpha", 1.0) != 1.0 or _attr(n, "beta", 1.0) != 1.0 or _attr(n, "transA", 0):
            raise TosacError(f"node '{n.name}': Gemm with alpha/beta/transA is not exported")
        x = self.act(n.input[0], n)
        w, ws = self.weights(n.input[1], n)
        if not _attr(n, "transB", 0):
            w = w.T
        bias = self.inits[self.producer[n.input[2]].input[0]].astype(np.int32) if len(n.input) > 2 else \
            np.zeros(w.shape[0], np.int32)
        y = self.out(n)
        f = self.w.tensor(w.shape, "INT8", scale=ws, zp=np.zeros(ws.size, np.int64), data=np.ascontiguousarray(w),
                          name=n.input[1])
        b = self.w.tensor((w.shape[0],), "INT32", scale=np.float32(self.scale_of(x)) * ws,
                          zp=np.zeros(ws.size, np.int64), data=bias, name=f"{n.name}_bias")
        self.w.op("FULLY_CONNECTED", [x, f, b], [y], "FullyConnectedOptions", FusedActivationFunction=0,
                  KeepNumDims=False)

    def binary(self, n: onnx.NodeProto) -> None:
        a, b = self.act(n.input[0], n), self.act(n.input[1], n)
        name = {"Add": "ADD", "Mul": "MUL"}[n.op_type]
        self.w.op(name, [a, b], [self.out(n)], f"{name.title()}Options", FusedActivationFunction=0)

    def unary(self, n: onnx.NodeProto) -> None:
        x = self.act(n.input[0], n)
        if n.op_type in ("Sigmoid", "Softmax"):
            if n.op_type == "Softmax" and _attr(n, "axis", -1) not in (-1, len(self.shapes[n.input[0]]) - 1):
                raise TosacError(f"node '{n.name}': Softmax over an axis other than the last")
            y = self.out(n, 1.0 / 256, -128)
        else:
            y = self.out(n)
        if n.op_type == "Softmax":
            self.w.op("SOFTMAX", [x], [y], "SoftmaxOptions", Beta=1.0)
        elif n.op_type == "LeakyRelu":
            self.w.op("LEAKY_RELU", [x], [y], "LeakyReluOptions", Alpha=_attr(n, "alpha", 0.01))
        else:
            self.w.op({"Sigmoid": "LOGISTIC", "HardSwish": "HARD_SWISH", "Relu": "RELU"}[n.op_type], [x], [y])

    def hard_sigmoid(self, n: onnx.NodeProto) -> None:
        if not (np.isclose(_attr(n, "alpha", 0.2), 1 / 6) and np.isclose(_attr(n, "beta", 0.5), 0.5)):
            raise TosacError(f"node '{n.name}': HardSigmoid other than relu6(x + 3) / 6")
        x = self.act(n.input[0], n)
        shape = self.w.tensors[x]["shape"]
        r = self.w.tensor(shape, "INT8", scale=np.float32(6 / 255), zp=-128, name=f"{n.name}_relu6")
        self.w.op("ADD", [x, self.const(3.0, f"{n.name}_three")], [r], "AddOptions", FusedActivationFunction=_RELU6)
        self.w.op("MUL", [r, self.const(1 / 6, f"{n.name}_sixth")], [self.out(n)], "MulOptions",
                  FusedActivationFunction=0)

    def mean(self, n: onnx.NodeProto) -> None:
        x = self.act(n.input[0], n)
        rank = len(self.w.tensors[x]["shape"])
        if n.op_type == "GlobalAveragePool":
            axes = [1, 2]
        else:
            raw = _attr(n, "axes", None)
            raw = list(self.inits[n.input[1]]) if raw is None and len(n.input) > 1 else raw
            if raw is None or not _attr(n, "keepdims", 1):
                raise TosacError(f"node '{n.name}': ReduceMean without axes or keepdims is not exported")
            axes = sorted(AXIS_TO_NHWC[int(a) % rank] if rank == 4 else int(a) % rank for a in raw)
        self.w.op("MEAN", [x, self.int32(axes, f"{n.name}_axes")], [self.out(n)], "ReducerOptions", KeepDims=True)

    def max_pool(self, n: onnx.NodeProto) -> None:
        x = self.act(n.input[0], n)
        k, strides = tuple(_attr(n, "kernel_shape", None)), tuple(_attr(n, "strides", [1, 1]))
        if tuple(_attr(n, "dilations", [1, 1])) != (1, 1):
            raise TosacError(f"node '{n.name}': dilated MaxPool is not exported")
        code, x = self.padding(n, x, k, strides, (1, 1), -128)
        self.w.op("MAX_POOL_2D", [x], [self.out(n)], "Pool2DOptions", Padding=code, StrideH=strides[0],
                  StrideW=strides[1], FilterHeight=k[0], FilterWidth=k[1], FusedActivationFunction=0)

    def flatten(self, n: onnx.NodeProto) -> None:
        x = self.act(n.input[0], n)
        shape = self.shapes[n.input[0]]
        if _attr(n, "axis", 1) != 1 or (len(shape) == 4 and shape[2] * shape[3] != 1):
            raise TosacError(f"node '{n.name}': only Flatten of [N, C, 1, 1] is exported (no layout change)")
        out_shape = self.shapes[n.output[0]]
        self.w.op("RESHAPE", [x, self.int32(out_shape, f"{n.name}_shape")], [self.out(n)], "ReshapeOptions",
                  NewShape=list(out_shape))

    def pad(self, n: onnx.NodeProto) -> None:
        x = self.act(n.input[0], n)
        pads = self.inits[n.input[1]].reshape(2, -1).T
        value = float(self.inits[n.input[2]]) if len(n.input) > 2 and n.input[2] else 0.0
        if _attr(n, "mode", b"constant") != b"constant" or value != 0.0 or len(pads) != 4:
            raise TosacError(f"node '{n.name}': only constant zero Pad of 4-D tensors is exported")
        y = self.out(n)
        if (self.scale_of(y), self.zp_of(y)) != (self.scale_of(x), self.zp_of(x)):
            raise TosacError(f"node '{n.name}': Pad changes the quantization")
        self.w.op("PAD", [x, self.int32(pads[list(NCHW_TO_NHWC)], f"{n.name}_paddings")], [y], "PadOptions")

    def resize(self, n: onnx.NodeProto) -> None:
        x = self.act(n.input[0], n)
        if _attr(n, "mode", b"nearest") != b"nearest" or \
                _attr(n, "coordinate_transformation_mode", b"half_pixel") != b"asymmetric" or \
                _attr(n, "nearest_mode", b"round_prefer_floor") != b"floor":
            raise TosacError(f"node '{n.name}': only asymmetric floor nearest Resize is exported")
        out_shape = self._layout(self.shapes[n.output[0]])
        self.w.op("RESIZE_NEAREST_NEIGHBOR", [x, self.int32(out_shape[1:3], f"{n.name}_size")], [self.out(n)],
                  "ResizeNearestNeighborOptions", AlignCorners=False, HalfPixelCenters=False)

    def concat(self, n: onnx.NodeProto) -> None:
        """TFLite's int8 CONCATENATION needs every input quantized as the output: QUANTIZE the others."""
        y = self.out(n)
        q = self.w.tensors[y]
        xs = []
        for name in n.input:
            x = self.act(name, n)
            if (self.scale_of(x), self.zp_of(x)) != (self.scale_of(y), self.zp_of(y)):
                r = self.w.tensor(self.w.tensors[x]["shape"], "INT8", scale=q["scale"], zp=q["zp"],
                                  name=f"{name}_requantized")
                self.w.op("QUANTIZE", [x], [r])
                x = r
            xs.append(x)
        rank = len(self.w.tensors[xs[0]]["shape"])
        axis = _attr(n, "axis", 1) % rank
        self.w.op("CONCATENATION", xs, [y], "ConcatenationOptions",
                  Axis=AXIS_TO_NHWC[axis] if rank == 4 else axis, FusedActivationFunction=0)

    # ------------------------------------------------------------ the model
    def export(self) -> bytes:
        inputs = []
        for v in self.g.input:
            if v.name in self.inits:
                continue
            q = [c for c in self.consumers.get(v.name, []) if c.op_type == "QuantizeLinear"]
            if len(q) != 1:
                raise TosacError(f"graph input '{v.name}' is not quantized once")
            s, z = self._qparams(q[0])
            idx = self.w.tensor(self._layout(self.shapes[v.name]), "INT8", scale=s, zp=z, name=v.name)
            self.tensors[q[0].output[0]] = idx
            inputs.append(idx)
        handlers = {"Conv": self.conv, "Gemm": self.gemm, "Add": self.binary, "Mul": self.binary,
                    "Sigmoid": self.unary, "Softmax": self.unary, "HardSwish": self.unary, "Relu": self.unary,
                    "LeakyRelu": self.unary, "HardSigmoid": self.hard_sigmoid, "GlobalAveragePool": self.mean,
                    "ReduceMean": self.mean, "MaxPool": self.max_pool, "Flatten": self.flatten, "Pad": self.pad,
                    "Resize": self.resize, "Concat": self.concat}
        for n in self.g.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue
            if n.op_type not in handlers:
                raise TosacError(f"node '{n.name}': {n.op_type} has no TFLite export")
            handlers[n.op_type](n)
        outputs = [self.act(v.name, self.producer[v.name]) for v in self.g.output]
        return self.w.build(inputs, outputs, description=self.description)


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def export_tflite(model: onnx.ModelProto, description: str = "tosac model") -> bytes:
    """The int8 TFLite flatbuffer of a QDQ ONNX model (see the module docstring for what is supported)."""
    return _Exporter(model, description).export()

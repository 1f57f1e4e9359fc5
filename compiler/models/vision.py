"""Image networks of the model zoo, as ``torch.onnx.export`` (opset 17) writes torchvision / ultralytics models.

Each builder returns the float network *before* batch-norm calibration: Conv
(no bias) + BatchNormalization everywhere torch has them, seeded weights.
:mod:`.zoo` sets the BN statistics from data and folds them into the convs.
Architectures follow torchvision (MobileNetV2/V3, EfficientNet-B0, ResNet) and
YOLOv3-tiny (darknet / ultralytics ``yolov3-tiny.yaml``); input sizes are
small (96 to 192 pixels) so that generation takes seconds.
"""
from __future__ import annotations

import onnx

from tosac.models.layers import OnnxNet, make_divisible


def _classifier(b: OnnxNet, x: str, classes: int, hidden: int | None = None) -> onnx.ModelProto:
    """GlobalAveragePool -> Flatten -> [Linear -> Hardswish] -> Linear, as torchvision's heads export."""
    x = b.flatten(b.global_average_pool(x, "/avgpool/GlobalAveragePool"), "/Flatten")
    if hidden:
        x = b.hardswish(b.linear(x, "/classifier/classifier.0/Gemm", hidden), "/classifier/classifier.1")
    return b.model([b.linear(x, "/classifier/fc/Gemm", classes)], ["output"])


def mobilenet_v2(seed: int | None, width: float = 0.35, size: int = 96, classes: int = 1000) -> onnx.ModelProto:
    """MobileNetV2 (torchvision) at width 0.35: inverted residuals, ReLU6 as Clip(0, 6)."""
    b = OnnxNet("mobilenet_v2_035", seed)
    x = b.input("input", (1, 3, size, size))
    channels = make_divisible(32 * width)
    x = b.conv_bn(x, "/features/features.0", channels, 3, stride=2, act="relu6")
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    index = 1
    for expand, c, repeats, first_stride in settings:
        out = make_divisible(c * width)
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            scope = f"/features/features.{index}"
            hidden = round(channels * expand)
            y = x
            if expand != 1:
                y = b.conv_bn(y, f"{scope}/expand", hidden, 1, act="relu6")
            y = b.conv_bn(y, f"{scope}/dw", hidden, 3, stride=stride, groups=hidden, act="relu6")
            y = b.conv_bn(y, f"{scope}/project", out, 1)
            x = b.add(x, y, f"{scope}/Add") if stride == 1 and channels == out else y
            channels, index = out, index + 1
    x = b.conv_bn(x, f"/features/features.{index}", 1280, 1, act="relu6")
    return _classifier(b, x, classes)


def _squeeze_excite(b: OnnxNet, x: str, scope: str, squeeze: int, act: str, gate: str, reduce_mean: bool) -> str:
    """Squeeze-excite: pool -> Conv 1x1 -> act -> Conv 1x1 -> gate -> Mul with the input."""
    channels = b.shapes[x][1]
    if reduce_mean:                                       # Keras / tf2onnx: ReduceMean over H, W
        s = b.reduce_mean(x, f"{scope}/ReduceMean", axes=[2, 3], keepdims=True)
    else:                                                 # torch: adaptive_avg_pool2d(x, 1)
        s = b.global_average_pool(x, f"{scope}/avgpool/GlobalAveragePool")
    s = b.activation(b.conv(s, f"{scope}/fc1", squeeze, 1, bias=True), f"{scope}/fc1", act)
    s = b.conv(s, f"{scope}/fc2", channels, 1, bias=True)
    s = b.sigmoid(s, f"{scope}/Sigmoid") if gate == "sigmoid" else b.hardsigmoid(s, f"{scope}/fc2")
    return b.mul(s, x, f"{scope}/Mul")


def mobilenet_v3_small(seed: int | None, size: int = 96, classes: int = 1000) -> onnx.ModelProto:
    """MobileNetV3-Small (torchvision): HardSwish, HardSigmoid, squeeze-excite with GlobalAveragePool."""
    b = OnnxNet("mobilenet_v3_small", seed)
    x = b.input("input", (1, 3, size, size))
    x = b.conv_bn(x, "/features/features.0", 16, 3, stride=2, act="hswish")
    channels = 16
    # kernel, expanded, out, squeeze-excite, activation, stride
    settings = [(3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
                (5, 96, 40, True, "hswish", 2), (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
                (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1), (5, 288, 96, True, "hswish", 2),
                (5, 576, 96, True, "hswish", 1), (5, 576, 96, True, "hswish", 1)]
    for index, (kernel, expanded, out, se, act, stride) in enumerate(settings, start=1):
        scope = f"/features/features.{index}/block"
        y = x
        if expanded != channels:
            y = b.conv_bn(y, f"{scope}/expand", expanded, 1, act=act)
        y = b.conv_bn(y, f"{scope}/dw", expanded, kernel, stride=stride, groups=expanded, act=act)
        if se:
            y = _squeeze_excite(b, y, f"{scope}/se", make_divisible(expanded // 4), "relu", "hsigmoid", False)
        y = b.conv_bn(y, f"{scope}/project", out, 1)
        x = b.add(y, x, f"/features/features.{index}/Add") if stride == 1 and channels == out else y
        channels = out
    x = b.conv_bn(x, f"/features/features.{len(settings) + 1}", 6 * channels, 1, act="hswish")
    return _classifier(b, x, classes, hidden=1024)


def efficientnet_b0(seed: int | None, size: int = 128, classes: int = 1000) -> onnx.ModelProto:
    """EfficientNet-B0 (torchvision): 16 MBConv blocks, SiLU as x*Sigmoid(x), squeeze-excite with ReduceMean."""
    b = OnnxNet("efficientnet_b0", seed)
    x = b.input("input", (1, 3, size, size))
    x = b.conv_bn(x, "/features/features.0", 32, 3, stride=2, act="silu")
    channels = 32
    # expand ratio, kernel, stride, out channels, repeats
    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    for stage, (expand, kernel, first_stride, out, repeats) in enumerate(stages, start=1):
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            scope = f"/features/features.{stage}/features.{stage}.{r}/block"
            expanded = channels * expand
            y = x
            if expanded != channels:
                y = b.conv_bn(y, f"{scope}/expand", expanded, 1, act="silu")
            y = b.conv_bn(y, f"{scope}/dw", expanded, kernel, stride=stride, groups=expanded, act="silu")
            y = _squeeze_excite(b, y, f"{scope}/se", max(1, channels // 4), "silu", "sigmoid", True)
            y = b.conv_bn(y, f"{scope}/project", out, 1)
            x = b.add(y, x, f"/features/features.{stage}/features.{stage}.{r}/Add") \
                if stride == 1 and channels == out else y
            channels = out
    x = b.conv_bn(x, "/features/features.8", 1280, 1, act="silu")
    return _classifier(b, x, classes)


def _resnet(name: str, seed: int | None, blocks: list[int], bottleneck: bool, size: int,
            classes: int) -> onnx.ModelProto:
    b = OnnxNet(name, seed)
    x = b.input("input", (1, 3, size, size))
    x = b.conv_bn(x, "/stem", 64, 7, stride=2, act="relu", pad=3)
    x = b.max_pool(x, "/maxpool/MaxPool", 3, 2, pad=1)
    channels, expansion = 64, 4 if bottleneck else 1
    for stage, count in enumerate(blocks):
        width = 64 * 2 ** stage
        for i in range(count):
            scope = f"/layer{stage + 1}/layer{stage + 1}.{i}"
            stride = 2 if stage > 0 and i == 0 else 1
            out = width * expansion
            if bottleneck:
                y = b.conv_bn(x, f"{scope}/conv1", width, 1, act="relu")
                y = b.conv_bn(y, f"{scope}/conv2", width, 3, stride=stride, act="relu")
                y = b.conv_bn(y, f"{scope}/conv3", out, 1)
            else:
                y = b.conv_bn(x, f"{scope}/conv1", width, 3, stride=stride, act="relu")
                y = b.conv_bn(y, f"{scope}/conv2", width, 3)
            if stride != 1 or channels != out:
                x = b.conv_bn(x, f"{scope}/downsample", out, 1, stride=stride)
            x = b.relu(b.add(y, x, f"{scope}/Add"), scope)
            channels = out
    return _classifier(b, x, classes)


def resnet18(seed: int | None, size: int = 128, classes: int = 1000) -> onnx.ModelProto:
    """ResNet-18 (torchvision): basic blocks, 1x1 projection shortcuts."""
    return _resnet("resnet18", seed, [2, 2, 2, 2], False, size, classes)


def resnet50(seed: int | None, size: int = 128, classes: int = 1000) -> onnx.ModelProto:
    """ResNet-50 (torchvision v1.5: stride on the 3x3): bottleneck blocks."""
    return _resnet("resnet50", seed, [3, 4, 6, 3], True, size, classes)


def yolo_tiny(seed: int | None, size: int = 192, classes: int = 80) -> onnx.ModelProto:
    """YOLOv3-tiny: Conv+BN+LeakyReLU(0.1), MaxPool, two heads at strides 32 and 16; the stride-32 feature
    upsampled 2x (Resize nearest, asymmetric, floor) and concatenated with the stride-16 route."""
    b = OnnxNet("yolov3_tiny", seed)
    x = b.input("input", (1, 3, size, size))
    route = ""
    for i, c in enumerate([16, 32, 64, 128, 256, 512]):
        x = b.conv_bn(x, f"/model.{2 * i}", c, 3, act="leaky")
        if c == 256:
            route = x                                     # the stride-16 feature the second head reads
        if c == 512:                                      # darknet's size-2 stride-1 maxpool keeps the size
            x = b.max_pool(b.zero_pad(x, f"/model.{2 * i + 1}/Pad", 1), f"/model.{2 * i + 2}/MaxPool", 2, 1)
        else:
            x = b.max_pool(x, f"/model.{2 * i + 1}/MaxPool", 2, 2)
    x = b.conv_bn(x, "/model.13", 1024, 3, act="leaky")
    p5 = b.conv_bn(x, "/model.14", 256, 1, act="leaky")
    large = b.conv_bn(p5, "/model.15", 512, 3, act="leaky")
    y = b.conv_bn(p5, "/model.16", 128, 1, act="leaky")
    y = b.concat([b.resize_nearest(y, "/model.17/Resize", 2), route], "/model.18/Concat", axis=1)
    medium = b.conv_bn(y, "/model.19", 256, 3, act="leaky")
    anchors = 3 * (5 + classes)
    heads = [b.sigmoid(b.conv(f, f"/model.20/m.{i}", anchors, 1, bias=True), f"/model.20/m.{i}/Sigmoid")
             for i, f in enumerate([large, medium])]
    return b.model(heads, ["output0", "output1"])

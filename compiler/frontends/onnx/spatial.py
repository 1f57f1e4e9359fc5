"""Convolution and pooling geometry: ONNX attributes → TOSA ``pad``/``stride``/``dilation``.

ONNX floors the output size; TOSA requires the padded extent to divide
exactly by the stride. Rows or columns that ONNX would never read are trimmed
from the end padding (or, if there is not enough, sliced off the input).
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from tosac.errors import UnsupportedError


@dataclass(frozen=True)
class Window:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]     # TOSA order: top, bottom, left, right
    crop: tuple[int, int]              # input rows/columns to drop at the end before the op


def window(node: onnx.NodeProto, attr, in_hw: tuple[int, int], kernel: tuple[int, int] | None = None,
           ceil_mode_ok: bool = False) -> Window:
    """The 2-D window of a Conv/Pool node on an input of spatial size ``in_hw``.

    ``ceil_mode_ok``: the op ignores padded elements (MaxPool), so ONNX's ceil_mode is extra end padding.
    """
    kernel = tuple(kernel or attr(node, "kernel_shape"))
    if len(kernel) != 2:
        raise UnsupportedError(f"only 2-D windows are supported, got kernel_shape {list(kernel)}")
    stride = tuple(attr(node, "strides", [1, 1]))
    dilation = tuple(attr(node, "dilations", [1, 1]))
    ceil_mode = bool(attr(node, "ceil_mode", 0))
    if ceil_mode and not ceil_mode_ok:
        raise UnsupportedError("ceil_mode=1 is not supported for this op")
    auto_pad = attr(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        pads = list(attr(node, "pads", [0, 0, 0, 0]))
        begin, end = pads[:2], pads[2:]
    elif auto_pad == "VALID":
        begin, end = [0, 0], [0, 0]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(2):
            out = -(-in_hw[i] // stride[i])
            total = max(0, (out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i])
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
    else:
        raise UnsupportedError(f"auto_pad '{auto_pad}' is not supported")
    if min(begin + end) < 0:
        raise UnsupportedError(f"negative pads {begin + end} are not supported")
    if ceil_mode:
        for i in range(2):
            span = (kernel[i] - 1) * dilation[i] + 1
            out = -(-(in_hw[i] + begin[i] + end[i] - span) // stride[i]) + 1
            if (out - 1) * stride[i] >= in_hw[i] + begin[i]:      # ONNX: no window may start in the end padding
                out -= 1
            end[i] = max(end[i], (out - 1) * stride[i] + span - in_hw[i] - begin[i])
    crop = []
    for i in range(2):
        extent = in_hw[i] - 1 + begin[i] + end[i] - (kernel[i] - 1) * dilation[i]
        if extent < 0:
            raise UnsupportedError(f"the window ({kernel[i]} with dilation {dilation[i]}) is larger than the "
                                   f"padded input ({in_hw[i]} + pads)")
        extra = extent % stride[i]
        trim = min(extra, end[i])
        end[i] -= trim
        crop.append(extra - trim)
    return Window(kernel, stride, dilation, (begin[0], end[0], begin[1], end[1]), tuple(crop))

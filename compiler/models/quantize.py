"""ONNX Runtime's quantizers as the models use them: ``quantize_static`` (QDQ or QOperator, int8 activations and
per-channel int8 weights, MinMax calibration on given samples) and ``quantize_dynamic`` (int8 weights,
DynamicQuantizeLinear + MatMulInteger at run time). Needs onnxruntime."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx

from tosac.errors import TosacError

STATIC_FORMATS = ("qdq", "qoperator")


def quantize_static(model: onnx.ModelProto, samples: Iterable[dict[str, np.ndarray]], fmt: str) -> onnx.ModelProto:
    """``model`` quantized to int8 by ONNX Runtime in the QDQ or QOperator format, calibrated on ``samples``."""
    if fmt not in STATIC_FORMATS:
        raise TosacError(f"quantize_static: unknown format '{fmt}'; choose one of {', '.join(STATIC_FORMATS)}")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static as ort_quantize_static)

    feeds = iter(samples)

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    logging.getLogger().setLevel(logging.ERROR)       # ORT's advice to pre-process and to prefer QDQ
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "quantized.onnx"
        onnx.save(model, src)
        ort_quantize_static(str(src), str(dst), Reader(),
                            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(str(dst))


def quantize_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with int8 per-channel weights for its MatMul/Gemm and activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic as ort_quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "quantized.onnx"
        onnx.save(model, src)
        ort_quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
        return onnx.load(str(dst))

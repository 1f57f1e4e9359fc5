"""RESHAPE, SQUEEZE, CONCATENATION and PAD: int8 data movement (TFLite copies the raw int8 values)."""
from __future__ import annotations

import numpy as np
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, UnsupportedError
from tosac.frontends.tflite.converter import Converter, handles, nargs, opt
from tosac.frontends.tflite.reader import OpDef


@handles("RESHAPE", "SQUEEZE")
def reshape(cv: Converter, op: OpDef) -> None:
    """The output tensor's static shape is the target (the shape input / options only repeat it)."""
    if not op.inputs or len(op.outputs) != 1:
        raise FrontendError(f"{cv.where(op)}: {len(op.inputs)} inputs and {len(op.outputs)} outputs")
    x = cv.value(op.inputs[0], op)
    out = cv.out_int8(op)
    shape = cv.t(out).shape
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise FrontendError(f"{cv.where(op)}: cannot reshape {list(x.shape)} to {list(shape)}")
    cv.define(op, cv.g.reshape(x, list(shape)) if tuple(shape) != tuple(x.shape) else cv.g.identity(x))


@handles("CONCATENATION")
def concatenation(cv: Converter, op: OpDef) -> None:
    o = opt(op, cv, "ConcatenationOptions")
    if not op.inputs or len(op.outputs) != 1:
        raise FrontendError(f"{cv.where(op)}: {len(op.inputs)} inputs and {len(op.outputs)} outputs")
    if o.FusedActivationFunction() != 0:
        raise UnsupportedError(f"{cv.where(op)}: option fused_activation_function {o.FusedActivationFunction()}")
    out = cv.out_int8(op)
    q = cv.quant(out, op)
    if any(cv.quant(i, op) != q for i in op.inputs):
        raise UnsupportedError(f"{cv.where(op)}: inputs quantized differently from the output (requantizing "
                               "CONCATENATION is not supported)")
    vals = [cv.value(i, op) for i in op.inputs]
    rank = len(vals[0].shape)
    axis = o.Axis()
    if not -rank <= axis < rank:
        raise FrontendError(f"{cv.where(op)}: option axis {axis} is out of range for rank {rank}")
    cv.define(op, cv.g.concat(*vals, axis=axis % rank))


@handles("PAD")
def pad(cv: Converter, op: OpDef) -> None:
    """PAD fills with the output zero point (the quantized 0.0)."""
    nargs(op, cv, 2)
    x = cv.value(op.inputs[0], op)
    out = cv.out_int8(op)
    if cv.quant(op.inputs[0], op) != cv.quant(out, op):
        raise UnsupportedError(f"{cv.where(op)}: input and output quantization differ")
    if cv.t(op.inputs[1]).type not in (TensorType.INT32, TensorType.INT64):
        raise UnsupportedError(f"{cv.where(op)}: paddings must be int32 or int64")
    p = cv.const_array(op.inputs[1], op)
    if p.shape != (len(x.shape), 2) or np.any(p < 0):
        raise FrontendError(f"{cv.where(op)}: paddings {p.tolist()} do not fit rank {len(x.shape)}")
    _, zp = cv.quant(out, op)
    cv.define(op, cv.g.pad(x, [int(v) for v in p.reshape(-1)], pad_const=zp))

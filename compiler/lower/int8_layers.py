"""When CONV2D / MATMUL / DEPTHWISE_CONV2D take the specialised int8 templates instead of the generic tap loop.

Conditions: int8 activations and int8 *constant* weights, an int32
accumulator, a constant input zero point and a zero weight zero point (the
usual symmetric-weight quantisation of TFLite and ONNX Runtime); MATMUL with
batch 1. Everything else — int16 activations, runtime weights, nonzero weight
zero points — takes the generic template, which is exact for all of them.
"""
from __future__ import annotations

import numpy as np

from tosac.ir.dtypes import DType
from tosac.lower.ops import OpLowering, attrs_of
from tosac.schedules import loopnest as ln
from tosac.schedules.dense import DenseCompute
from tosac.schedules.depthwise import DepthwiseCompute
from tosac.schedules.generic import ElementContext, TensorArg


def _const_scalar(lw: OpLowering, index: int) -> int | None:
    data = lw.operands.const(index)
    return None if data is None else int(np.asarray(data).reshape(-1)[0])


def _eligible(lw: OpLowering, weight_index: int, zp_indices: tuple[int, int]) -> tuple[np.ndarray, int] | None:
    weights = lw.operands.const(weight_index)
    x_zp, w_zp = (_const_scalar(lw, i) for i in zp_indices)
    if (lw.dtype(0) is not DType.INT8 or lw.dtype(weight_index) is not DType.INT8 or weights is None
            or lw.out_type.dtype is not DType.INT32 or x_zp is None or w_zp != 0):
        return None
    return weights, x_zp


def _finalize(lw: OpLowering, bias_index: int | None, fold_bias: bool = True):
    """(finalize, extra epilogue inputs, constant bias): a runtime bias is added per output; with
    ``fold_bias`` a constant one is returned instead, for the dense template's per-channel correction."""
    bias = lw.arg(bias_index) if bias_index is not None else None
    constant = lw.operands.const(bias_index) if bias_index is not None and fold_bias else None
    if constant is not None:
        bias = None
        constant = np.broadcast_to(np.asarray(constant, dtype=np.int64).reshape(-1), (lw.out_type.shape[-1],))

    def finalize(acc: ln.Expr, position: list[ln.Expr], channel: ln.Expr) -> ln.Expr:
        if bias is not None:
            acc = acc + ln.cast(ln.Load(bias.name, channel if bias.size > 1 else ln.Const(0), bias.type), "i32")
        return lw.epilogue(acc, ElementContext(lw.output, [*position, channel], None))
    return finalize, ([bias] if bias is not None else []), constant


def try_dense_conv(lw: OpLowering) -> DenseCompute | None:
    found = _eligible(lw, 1, (3, 4))
    if found is None:
        return None
    weights, x_zp = found
    a = attrs_of(lw.op)
    finalize, extra, bias = _finalize(lw, 2)
    _, oh, ow, _ = lw.out_type.shape
    return DenseCompute(lw.name, lw.arg(0), lw.output, np.moveaxis(weights, 0, -1), x_zp, tuple(a["stride"]),
                        tuple(a["dilation"]), tuple(a["pad"]), (oh, ow), finalize, [*extra, *lw.epilogue_inputs],
                        bias)


def try_dense_matmul(lw: OpLowering) -> DenseCompute | None:
    found = _eligible(lw, 1, (2, 3))
    if found is None or lw.arg(0).shape[0] != 1:
        return None
    weights, x_zp = found                       # [1, C, W]
    _, h, c = lw.arg(0).shape
    a = lw.arg(0)
    as_image = TensorArg(a.name, a.type, (1, h, 1, c))
    finalize, extra, _ = _finalize(lw, None)
    return DenseCompute(lw.name, as_image, lw.output, weights[0][None, None], x_zp, (1, 1), (1, 1), (0, 0, 0, 0),
                        (h, 1), finalize, [*extra, *lw.epilogue_inputs])


def try_depthwise(lw: OpLowering) -> DepthwiseCompute | None:
    """int8 depthwise with channel multiplier 1 and constant weights: the int16-product template."""
    found = _eligible(lw, 1, (3, 4))
    if found is None or found[0].shape[3] != 1:
        return None
    weights, x_zp = found
    a = attrs_of(lw.op)
    finalize, extra, _ = _finalize(lw, 2, fold_bias=False)
    return DepthwiseCompute(lw.name, lw.arg(0), lw.output, weights[:, :, :, 0], x_zp, tuple(a["stride"]),
                            tuple(a["dilation"]), tuple(a["pad"]), finalize, [*extra, *lw.epilogue_inputs])

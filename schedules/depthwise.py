"""The depthwise int8 template: padded int16 activations, taps unrolled, products in int16.

Depthwise convolution reduces over only KH x KW taps per channel, so dot-product
instructions do not help; what matters is doing little per multiply. A
prologue stores ``x - input_zp`` as int16 with the padding already applied
(zeros), so the inner loop has no bounds checks. With int8 weights and a zero
weight zero point, ``|x - zp| <= 255`` and ``|w| <= 128`` make every product fit
int16 exactly (``255 * 128 = 32640``), so products are computed 32 lanes at a
time in int16 and only then widened and summed in int32 — the same bits as the
spec's int32 accumulation, in fewer instructions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tosac.schedules import loopnest as ln
from tosac.schedules.dense import pack_activations
from tosac.schedules.generic import Schedule, TensorArg
from tosac.schedules.space import Config, ConfigSpace


@dataclass
class DepthwiseCompute:
    name: str
    input: TensorArg                       # NHWC int8
    output: TensorArg
    weights: np.ndarray                    # int8 [KH, KW, C]
    input_zp: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]
    finalize: Callable[[ln.Expr, list[ln.Expr], ln.Expr], ln.Expr]
    epilogue_inputs: list[TensorArg] = field(default_factory=list)

    @property
    def mac_count(self) -> int:
        kh, kw, _ = self.weights.shape
        return int(np.prod(self.output.shape, dtype=np.int64)) * kh * kw


def depthwise_space(c: DepthwiseCompute, vector_bits: int) -> ConfigSpace:
    space = ConfigSpace("depthwise")
    channels = c.weights.shape[2]
    lanes = max(8, vector_bits // 32)
    while lanes > 8 and lanes > channels:
        lanes //= 2
    space.add("lanes", (8, 16, 32, 64), lanes, "channels per vector (int16 products)")
    space.add("threads", (1, 2, 4), 1, "threads over output rows")
    return space


def depthwise_schedule(c: DepthwiseCompute, config: Config) -> Schedule:
    lanes, threads = int(config["lanes"]), int(config["threads"])
    kh, kw, channels = c.weights.shape
    batch, ih, iw, _ = c.input.shape
    top, bottom, left, right = c.pad
    ihp, iwp = ih + top + bottom, iw + left + right
    _, oh, ow, _ = c.output.shape
    act = ln.Param(f"{c.name}.act", "i16", batch * ihp * iwp * channels)
    wname = f"{c.name}.w16"
    prologue = pack_activations(f"{c.name}_pack", c.input, c.pad, c.input_zp, "i16", 0, act, (ihp, iwp, channels))
    parallel = threads > 1 and batch == 1 and oh > 1
    n = ln.Const(0) if parallel else ln.Var("n")
    y, x, ch = (ln.Var(v) for v in ("oy", "ox", "c"))
    acc: ln.Expr = ln.Const(0, "i32")
    sy, sx = c.stride
    dy, dx = c.dilation
    for ky in range(kh):
        for kx in range(kw):
            a = ln.Load(act.name, ln.row_major([n, y * sy + ky * dy, x * sx + kx * dx, ch], [batch, ihp, iwp, channels]),
                        "i16")
            w = ln.Load(wname, ln.row_major([ln.Const(ky), ln.Const(kx), ch], [kh, kw, channels]), "i16")
            acc = acc + ln.cast(ln.binary("mul", a, w), "i32")
    out_index = ln.row_major([n, y, x, ch], c.output.shape)
    row = ln.For("ox", ow, (ln.For("c", channels, (ln.Store(c.output.name, out_index, c.finalize(acc, [n, y, x], ch)),),
                                   ln.LoopKind.VECTORIZE, lanes),))
    if parallel:
        body: tuple[ln.Stmt, ...] = (ln.For("oy", oh, (row,), ln.LoopKind.PARALLEL),)
    else:
        threads = 1
        body = (ln.For("n", batch, (ln.For("oy", oh, (row,)),)),)
    params = ln.unique_params([c.input.param(), act, ln.Param(wname, "i16", c.weights.size),
                      *[a.param() for a in c.epilogue_inputs], c.output.param()])
    constants = {wname: c.weights.astype(np.int16)}
    return Schedule(ln.Kernel(c.name, params, body), threads, prologue, [act], constants)

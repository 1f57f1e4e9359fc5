"""TFLite data movement against LiteRT's reference kernels (BUILTIN_REF), bit for bit.

EXPAND_DIMS, TRANSPOSE, PACK, UNPACK, SPLIT, SPLIT_V, SLICE, STRIDED_SLICE,
CONCATENATION, PAD, PADV2, GATHER, RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR:
each generator writes one drawn instance (rank, shape, int8 or int16 quantization,
options, negative axes) into a model; ``check`` compares LiteRT with the reference
interpreter and the compiled host code. Expected output shapes come from numpy's
own indexing (``np.expand_dims``, ``np.take``, basic slicing), not from tosac.
One model holding instances of every generator runs on AArch64 and ARMv7 under
qemu-user. Malformed options are FrontendError / UnsupportedError naming the operator.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tflite_writer import ARM_EXAMPLES, EXAMPLES, ModelWriter, check, model, run_litert, scales  # noqa: E402

from tosac.errors import FrontendError, UnsupportedError  # noqa: E402
from tosac.frontends import tflite as tfl  # noqa: E402
from tosac.ir.reference import interpreter  # noqa: E402


# ---------------------------------------------------------------- drawing helpers
def quant(draw) -> dict:
    """int8 with any zero point, or int16 with zero point 0."""
    if draw(st.integers(0, 3)) == 0:
        return dict(ttype="INT16", scale=scales(draw), zp=0)
    return dict(ttype="INT8", scale=scales(draw), zp=draw(st.integers(-128, 127)))


def act(w: ModelWriter, shape, q: dict) -> int:
    return w.tensor(list(shape), q["ttype"], scale=q["scale"], zp=q["zp"])


def ints(w: ModelWriter, values, dtype=np.int32) -> int:
    arr = np.asarray(values, dtype)
    return w.tensor(arr.shape, {np.int16: "INT16", np.int32: "INT32", np.int64: "INT64"}[np.dtype(dtype).type],
                    data=arr)


def shapes(draw, lo=1, hi=4, dmax=4) -> list[int]:
    return draw(st.lists(st.integers(1, dmax), min_size=lo, max_size=hi))


def index_type(draw):
    return draw(st.sampled_from([np.int32, np.int64]))


def maybe_negative(draw, axis: int, rank: int) -> int:
    return axis - rank if draw(st.booleans()) else axis


# ---------------------------------------------------------------- generators: (draw, writer) -> (inputs, outputs)
def expand_dims(draw, w: ModelWriter):
    shape, q = shapes(draw), quant(draw)
    axis = maybe_negative(draw, draw(st.integers(0, len(shape))), len(shape) + 1)
    x, y = act(w, shape, q), act(w, np.expand_dims(np.zeros(shape), axis).shape, q)
    w.op("EXPAND_DIMS", [x, ints(w, [axis], index_type(draw))], [y], "ExpandDimsOptions")
    return [x], [y]


def transpose(draw, w: ModelWriter):
    shape, q = shapes(draw, 1, 5), quant(draw)
    perm = draw(st.permutations(range(len(shape))))
    perm = [maybe_negative(draw, p, len(shape)) for p in perm]
    x, y = act(w, shape, q), act(w, np.transpose(np.zeros(shape), perm).shape, q)
    w.op("TRANSPOSE", [x, ints(w, perm)], [y], "TransposeOptions")
    return [x], [y]


def concatenation(draw, w: ModelWriter):
    shape, q = shapes(draw), quant(draw)
    axis = draw(st.integers(0, len(shape) - 1))
    parts = [act(w, shape[:axis] + [draw(st.integers(1, 3))] + shape[axis + 1:], q)
             for _ in range(draw(st.integers(1, 3)))]
    total = sum(w.tensors[p]["shape"][axis] for p in parts)
    y = act(w, shape[:axis] + [total] + shape[axis + 1:], q)
    w.op("CONCATENATION", parts, [y], "ConcatenationOptions", Axis=maybe_negative(draw, axis, len(shape)),
         FusedActivationFunction=0)
    return parts, [y]


def pack(draw, w: ModelWriter):
    shape, q = shapes(draw, 1, 3), quant(draw)
    n = draw(st.integers(1, 3))
    axis = draw(st.integers(0, len(shape)))
    xs = [act(w, shape, q) for _ in range(n)]
    y = act(w, np.stack([np.zeros(shape)] * n, axis).shape, q)
    w.op("PACK", xs, [y], "PackOptions", ValuesCount=n, Axis=maybe_negative(draw, axis, len(shape) + 1))
    return xs, [y]


def unpack(draw, w: ModelWriter):
    shape, q = shapes(draw, 1, 4), quant(draw)
    axis = draw(st.integers(0, len(shape) - 1))
    x = act(w, shape, q)
    ys = [act(w, shape[:axis] + shape[axis + 1:], q) for _ in range(shape[axis])]
    w.op("UNPACK", [x], ys, "UnpackOptions", Num=shape[axis], Axis=maybe_negative(draw, axis, len(shape)))
    return [x], ys


def split(draw, w: ModelWriter):
    shape, q = shapes(draw), quant(draw)
    axis = draw(st.integers(0, len(shape) - 1))
    num = draw(st.integers(1, 3))
    shape[axis] *= num
    x = act(w, shape, q)
    ys = [act(w, shape[:axis] + [shape[axis] // num] + shape[axis + 1:], q) for _ in range(num)]
    w.op("SPLIT", [ints(w, [maybe_negative(draw, axis, len(shape))]), x], ys, "SplitOptions", NumSplits=num)
    return [x], ys


def split_v(draw, w: ModelWriter):
    shape, q = shapes(draw), quant(draw)
    axis = draw(st.integers(0, len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shape[axis] = sum(sizes)
    written = list(sizes)
    if draw(st.booleans()):
        written[draw(st.integers(0, len(sizes) - 1))] = -1
    x = act(w, shape, q)
    ys = [act(w, shape[:axis] + [s] + shape[axis + 1:], q) for s in sizes]
    w.op("SPLIT_V", [x, ints(w, written, index_type(draw)), ints(w, [maybe_negative(draw, axis, len(shape))])], ys,
         "SplitVOptions", NumSplits=len(sizes))
    return [x], ys


def slice_(draw, w: ModelWriter):
    shape, q = shapes(draw, 1, 5), quant(draw)
    begin = [draw(st.integers(0, d - 1)) for d in shape]
    size = [draw(st.sampled_from([-1, draw(st.integers(1, d - b))])) for d, b in zip(shape, begin)]
    out = [d - b if s == -1 else s for d, b, s in zip(shape, begin, size)]
    x, y = act(w, shape, q), act(w, out, q)
    it = index_type(draw)
    w.op("SLICE", [x, ints(w, begin, it), ints(w, size, it)], [y], "SliceOptions")
    return [x], [y]


def strided_slice(draw, w: ModelWriter):
    """Drawn begin/end/strides (negative too) and masks; the output shape is numpy's basic indexing with the
    equivalent index tuple (Ellipsis, np.newaxis, an integer for a shrunk axis, slices)."""
    shape, q = shapes(draw, 1, 4, 5), quant(draw)
    offset = draw(st.integers(0, 4)) == 0
    kinds = ["slice"] * len(shape) if offset else \
        draw(st.lists(st.sampled_from(["slice", "slice", "new", "shrink", "ellipsis"]), min_size=1,
                      max_size=len(shape) + 1))
    while kinds.count("ellipsis") > 1:
        kinds.remove("ellipsis")
    # TFLite's ellipsis covers at least one axis (numpy's may cover none): leave it one; at most 6 axes in all.
    while sum(k in ("slice", "shrink") for k in kinds) > len(shape) - ("ellipsis" in kinds):
        kinds.remove(next(k for k in kinds if k in ("slice", "shrink")))
    while len(shape) + kinds.count("new") > 6:
        kinds.remove("new")
    consuming = [i for i, k in enumerate(kinds) if k in ("slice", "shrink")]
    cut = kinds.index("ellipsis") if "ellipsis" in kinds else len(kinds)
    before = [i for i in consuming if i < cut]
    axis_of = {i: j for j, i in enumerate(before)}
    axis_of.update({i: len(shape) - len(consuming) + j for j, i in enumerate(consuming) if i > cut})
    begin, end, strides, index = [], [], [], []
    masks = dict(BeginMask=0, EndMask=0, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=0)
    for i, kind in enumerate(kinds):
        bit = 1 << i
        b, e, s, ix = 0, 1, 1, None
        if kind == "ellipsis":
            masks["EllipsisMask"] |= bit
            ix = Ellipsis
        elif kind == "new":
            masks["NewAxisMask"] |= bit
            ix = np.newaxis
        elif kind == "shrink":
            n = shape[axis_of[i]]
            b = draw(st.integers(-n, n - 1))
            e, ix = b + 1, b
            masks["ShrinkAxisMask"] |= bit
        elif offset:
            n = shape[axis_of[i]]
            b = draw(st.integers(0, n - 1))
            e, s = draw(st.integers(1, n - b)), draw(st.integers(1, 3))
            ix = slice(b, b + e, s)
        else:
            n = shape[axis_of[i]]
            s = draw(st.sampled_from([1, 1, 2, 3, -1, -1, -2]))
            b, e = draw(st.integers(-n - 2, n + 2)), draw(st.integers(-n - 2, n + 2))
            bm, em = draw(st.integers(0, 3)) == 0, draw(st.integers(0, 3)) == 0
            masks["BeginMask"] |= bit * bm
            masks["EndMask"] |= bit * em
            ix = slice(None if bm else b, None if em else e, s)
        begin.append(b), end.append(e), strides.append(s), index.append(ix)
    out_shape = np.zeros(shape)[tuple(index)].shape
    x = act(w, shape, q)
    if 0 in out_shape:                         # an empty result (refused): slice the whole tensor instead
        begin, end, strides, out_shape = [0], [0], [1], shape
        masks = dict(BeginMask=1, EndMask=1, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=0)
    y = act(w, out_shape, q)
    w.op("STRIDED_SLICE", [x, ints(w, begin), ints(w, end), ints(w, strides)], [y], "StridedSliceOptions",
         Offset=offset, **masks)
    return [x], [y]


def pad(draw, w: ModelWriter, op: str):
    shape, q = shapes(draw, 1, 5), quant(draw)
    p = [[draw(st.integers(0, 2)), draw(st.integers(0, 2))] for _ in shape]
    x, y = act(w, shape, q), act(w, [d + a + b for d, (a, b) in zip(shape, p)], q)
    ins = [x, ints(w, p, index_type(draw))]
    graph_ins = [x]
    if op == "PADV2":
        lo, hi = (-128, 127) if q["ttype"] == "INT8" else (-32768, 32767)
        if draw(st.booleans()):
            c = w.tensor([], q["ttype"], scale=q["scale"], zp=q["zp"],
                         data=np.asarray(draw(st.integers(lo, hi)), np.int8 if q["ttype"] == "INT8" else np.int16))
        else:
            c = act(w, draw(st.sampled_from([[], [1]])), q)
            graph_ins.append(c)
        ins.append(c)
    w.op(op, ins, [y], "PadOptions" if op == "PAD" else "PadV2Options")
    return graph_ins, [y]


def gather(draw, w: ModelWriter):
    """GATHER over any axis with batch_dims; params a run-time tensor or an int8 constant table."""
    shape, q = shapes(draw, 1, 4), quant(draw)
    axis = draw(st.integers(0, len(shape) - 1))
    bd = draw(st.integers(0, axis))
    k = shape[axis]
    idx_shape = shape[:bd] + shapes(draw, 0, 2, 3)
    idx = np.asarray(draw(st.lists(st.integers(0, k - 1), min_size=int(np.prod(idx_shape)),
                                   max_size=int(np.prod(idx_shape))))).reshape(idx_shape)
    # The output shape: numpy's take for one batch position, the batch axes in front.
    out_shape = shape[:bd] + list(np.take(np.zeros(shape[bd:]), idx[(0,) * bd], axis=axis - bd).shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    constant = q["ttype"] == "INT8" and draw(st.booleans())
    if constant:
        x = w.tensor(shape, "INT8", scale=q["scale"], zp=q["zp"], data=rng.integers(-128, 128, shape).astype(np.int8))
    else:
        x = act(w, shape, q)
    y = act(w, out_shape, q)
    it = draw(st.sampled_from([np.int16, np.int32, np.int64]))
    w.op("GATHER", [x, ints(w, idx, it)], [y], "GatherOptions", Axis=maybe_negative(draw, axis, len(shape)),
         BatchDims=bd - len(idx_shape) if bd < len(idx_shape) and draw(st.booleans()) else bd)
    return ([] if constant else [x]), [y]


def resize(draw, w: ModelWriter, op: str):
    n, h, wd, c = draw(st.integers(1, 2)), draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 3))
    oh, ow = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    mode = draw(st.sampled_from(["plain", "align", "half"]))
    q = quant(draw)
    x, y = act(w, (n, h, wd, c), q), act(w, (n, oh, ow, c), q)
    options = "ResizeBilinearOptions" if op == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    w.op(op, [x, ints(w, [oh, ow])], [y], options, AlignCorners=mode == "align", HalfPixelCenters=mode == "half")
    return [x], [y]


GENERATORS = [(expand_dims,), (transpose,), (concatenation,), (pack,), (unpack,), (split,), (split_v,), (slice_,),
              (strided_slice,), (pad, "PAD"), (pad, "PADV2"), (gather,), (resize, "RESIZE_NEAREST_NEIGHBOR"),
              (resize, "RESIZE_BILINEAR")]


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g[-1] if isinstance(g[-1], str) else g[0].__name__)
@EXAMPLES
@given(data=st.data())
def test_operator(litert, gen, data):
    check(litert, model(gen[0], data.draw, *gen[1:]))


SWEEP_SIZES = [1, 2, 3, 4, 5, 7, 13]
SWEEP_OUT = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 17, 29, 40]


@pytest.mark.parametrize("op", ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_resize_sizes_sweep(litert, op, dtype):
    """Input sizes 1..13 to output sizes 1..40 in each mode (one axis each way per model), on full-range values
    and on small ones that make the bilinear 2^19 rounding ties common: imported graph == LiteRT, every element."""
    tt = "INT8" if dtype == np.int8 else "INT16"
    lo, hi = (-128, 127) if dtype == np.int8 else (-32768, 32767)
    options = "ResizeBilinearOptions" if op == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    rng = np.random.default_rng(5)
    for align, half in ((False, False), (True, False), (False, True)):
        for h in SWEEP_SIZES:
            for oh in SWEEP_OUT:
                w = ModelWriter()
                x = w.tensor([1, h, oh, 2], tt, scale=0.1, zp=0)         # rows h -> oh, columns oh -> h
                y = w.tensor([1, oh, h, 2], tt, scale=0.1, zp=0)
                w.op(op, [x, ints(w, [oh, h])], [y], options, AlignCorners=align, HalfPixelCenters=half)
                data = w.build([x], [y])
                big, small = max(h, oh), min(h, oh)        # TFLite's 10-bit step of the downscaled axis
                step = (1024 * (big - 1) + (small - 1) // 2) // (small - 1) if align and small > 1 else \
                    (1024 * big + small // 2) // small
                if op == "RESIZE_BILINEAR" and small > 1 and step >= 16 * 1024:    # TOSA RESIZE: below 1/16
                    with pytest.raises(UnsupportedError, match="level limits"):
                        tfl.load(data)
                    continue
                graph = tfl.load(data)
                v = np.stack([rng.integers(lo, hi, (h, oh), endpoint=True), rng.integers(-3, 4, (h, oh))], -1)
                v = v.astype(dtype).reshape(1, h, oh, 2)
                got = list(interpreter.run(graph, {graph.main.inputs[0]: v}).values())[0]
                want = run_litert(litert, data, [v])[0]
                np.testing.assert_array_equal(got, want, err_msg=f"{h} -> {oh}, align {align}, half {half}")


# ---------------------------------------------------------------- AArch64 and ARMv7 under qemu-user
@pytest.fixture(params=["aarch64", "armv7"])
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


@ARM_EXAMPLES
@given(data=st.data())
def test_every_generator_on_arm(litert, arm, data):
    """LiteRT == reference == host == ARM code for 2 drawn instances of every generator in one model."""
    w = ModelWriter()
    ins, outs = [], []
    for gen, *args in GENERATORS:
        for _ in range(2):
            i, o = gen(data.draw, w, *args)
            ins += i
            outs += o
    check(litert, w.build(ins, outs), targets=("host", arm))


# ---------------------------------------------------------------- malformed or unsupported variants
def _one_op(op: str, options: str | None, build, **fields):
    """A model with one ``op``: ``build(w) -> (inputs, graph inputs, outputs)``."""
    w = ModelWriter()
    ins, graph_ins, outs = build(w)
    w.op(op, ins, outs, options, **fields)
    return w.build(graph_ins, outs)


Q8 = dict(ttype="INT8", scale=0.1, zp=2)


def _unary(shape, out_shape, *consts, q_out=Q8, x_first=True):
    def build(w):
        x = act(w, shape, Q8)
        extra = [ints(w, c) if not isinstance(c, int) else c for c in consts]
        return ([x] + extra if x_first else extra + [x]), [x], [act(w, out_shape, q_out)]
    return build


def _runtime_ints(w: ModelWriter, shape):
    """An int32 tensor nothing writes and no buffer holds: not a constant."""
    return w.tensor(shape, "INT32")


BAD = [
    ("EXPAND_DIMS", "ExpandDimsOptions", _unary([2, 3], [2, 3, 1], [4]), {}, FrontendError, "axis 4 is out of range"),
    ("TRANSPOSE", "TransposeOptions", _unary([2, 3], [3, 2], [0, 0]), {}, FrontendError, "not a permutation"),
    ("TRANSPOSE", "TransposeOptions", _unary([2, 3], [3, 2], [2, 0]), {}, FrontendError, "out of range"),
    ("TRANSPOSE", None, lambda w: ([x := act(w, [2, 3], Q8), _runtime_ints(w, [2])], [x], [act(w, [3, 2], Q8)]),
     {}, UnsupportedError, "must be a constant"),
    ("CONCATENATION", "ConcatenationOptions", _unary([2, 3], [2, 3]), dict(Axis=2, FusedActivationFunction=0),
     FrontendError, "axis 2 is out of range"),
    ("CONCATENATION", "ConcatenationOptions", _unary([2, 3], [2, 3], q_out=dict(Q8, scale=0.2)),
     dict(Axis=0, FusedActivationFunction=0), UnsupportedError, "does not requantize"),
    ("CONCATENATION", "ConcatenationOptions", _unary([2, 3], [2, 3]), dict(Axis=0, FusedActivationFunction=1),
     UnsupportedError, "fused_activation_function"),
    ("PACK", "PackOptions", _unary([2, 3], [1, 2, 3]), dict(ValuesCount=1, Axis=3), FrontendError, "axis 3"),
    ("PACK", "PackOptions", _unary([2, 3], [2, 2, 3]), dict(ValuesCount=2, Axis=0), FrontendError, "values_count"),
    ("UNPACK", "UnpackOptions", lambda w: ([x := act(w, [2, 3], Q8)], [x], [act(w, [3], Q8)]),
     dict(Num=1, Axis=0), FrontendError, "option num 1"),
    ("SPLIT", "SplitOptions", _unary([2, 3], [2, 1], [1], x_first=False), dict(NumSplits=1), FrontendError,
     "has shape \\[2, 1\\] but the operator computes \\[2, 3\\]"),
    ("SPLIT", "SplitOptions", lambda w: ([ints(w, [1]), x := act(w, [2, 3], Q8)], [x],
                                         [act(w, [2, 1], Q8), act(w, [2, 1], Q8)]),
     dict(NumSplits=2), FrontendError, "does not split into 2"),
    ("SPLIT_V", "SplitVOptions", lambda w: ([x := act(w, [2, 5], Q8), ints(w, [2, 2]), ints(w, [1])], [x],
                                           [act(w, [2, 2], Q8), act(w, [2, 2], Q8)]),
     dict(NumSplits=2), FrontendError, "do not add up"),
    ("SPLIT_V", "SplitVOptions", lambda w: ([x := act(w, [2, 5], Q8), ints(w, [-1, -1]), ints(w, [-3])], [x],
                                           [act(w, [2, 2], Q8), act(w, [2, 3], Q8)]),
     dict(NumSplits=2), FrontendError, "axis -3 is out of range"),
    ("SLICE", "SliceOptions", _unary([4, 3], [3, 3], [2, 0], [3, -1]), {}, FrontendError, "beyond axis 0"),
    ("SLICE", "SliceOptions", _unary([4, 3], [1, 3], [-1, 0], [1, 3]), {}, FrontendError, "beyond axis 0"),
    ("STRIDED_SLICE", "StridedSliceOptions", _unary([4, 3], [4, 3], [0, 0], [4, 3], [1, 0]),
     dict(BeginMask=0, EndMask=0, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=0, Offset=False), FrontendError,
     "stride 1 is 0"),
    ("STRIDED_SLICE", "StridedSliceOptions", _unary([4, 3], [3], [0, 5], [0, 6], [1, 1]),
     dict(BeginMask=0, EndMask=0, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=1 | 2, Offset=False),
     UnsupportedError, "empty"),
    ("STRIDED_SLICE", "StridedSliceOptions", _unary([4, 3], [4], [0, 1], [4, 2], [1, -1]),
     dict(BeginMask=0, EndMask=0, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=2, Offset=False),
     UnsupportedError, "empty"),
    ("STRIDED_SLICE", "StridedSliceOptions",
     lambda w: ([x := act(w, [4, 3], Q8), _runtime_ints(w, [2]), ints(w, [4, 3]), ints(w, [1, 1])], [x],
                [act(w, [4, 3], Q8)]),
     dict(BeginMask=0, EndMask=0, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=0, Offset=False),
     UnsupportedError, "begin input must be a constant"),
    ("GATHER", "GatherOptions", _unary([4, 3], [2, 3], [1, 4]), dict(Axis=0, BatchDims=0), FrontendError,
     "outside \\[0, 4\\)"),
    ("GATHER", "GatherOptions", _unary([4, 3], [2, 3], [-1, 0]), dict(Axis=0, BatchDims=0), FrontendError,
     "outside"),
    ("GATHER", "GatherOptions", _unary([4, 3], [4, 3], [[0], [1], [2], [0]]), dict(Axis=0, BatchDims=1),
     FrontendError, "batch_dims"),
    ("GATHER", "GatherOptions", _unary([4, 3], [4, 2], [0, 1]), dict(Axis=-3, BatchDims=0), FrontendError,
     "axis -3"),
    ("GATHER", "GatherOptions",
     lambda w: ([x := act(w, [4, 3], Q8), _runtime_ints(w, [2])], [x], [act(w, [2, 3], Q8)]),
     dict(Axis=0, BatchDims=0), UnsupportedError, "indices input must be a constant"),
    ("PADV2", "PadV2Options",
     lambda w: ([x := act(w, [2, 3], Q8), ints(w, [[0, 1], [1, 0]]),
                 w.tensor([], "INT8", scale=0.2, zp=2, data=np.asarray(5, np.int8))], [x], [act(w, [3, 4], Q8)]),
     {}, UnsupportedError, "does not requantize"),
    ("PAD", "PadOptions", _unary([2, 3], [3, 4], [[0, 1], [1, 0], [0, 0]]), {}, FrontendError, "do not fit rank 2"),
    ("RESIZE_BILINEAR", "ResizeBilinearOptions", _unary([1, 2, 2, 1], [1, 4, 4, 1], [4, 4]),
     dict(AlignCorners=True, HalfPixelCenters=True), FrontendError, "both set"),
    ("RESIZE_BILINEAR", "ResizeBilinearOptions", _unary([1, 40, 2, 1], [1, 2, 2, 1], [2, 2]),
     dict(AlignCorners=False, HalfPixelCenters=False), UnsupportedError, "beyond the level limits"),
    ("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions",
     lambda w: ([x := act(w, [1, 2, 2, 1], Q8), _runtime_ints(w, [2])], [x], [act(w, [1, 4, 4, 1], Q8)]),
     dict(AlignCorners=False, HalfPixelCenters=False), UnsupportedError, "size input must be a constant"),
    ("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions", _unary([2, 2, 1], [4, 4, 1], [4, 4]),
     dict(AlignCorners=False, HalfPixelCenters=False), FrontendError, "rank 4"),
    ("EXPAND_DIMS", "ExpandDimsOptions",
     lambda w: ([x := act(w, [2], dict(ttype="INT16", scale=0.1, zp=3)), ints(w, [0])], [x],
                [act(w, [1, 2], dict(ttype="INT16", scale=0.1, zp=3))]), {}, UnsupportedError, "zero point 3"),
]


@pytest.mark.parametrize("op, options, build, fields, error, message", BAD,
                         ids=[f"{case[0]}-{k}" for k, case in enumerate(BAD)])
def test_malformed_or_unsupported_is_a_typed_error_naming_the_operator(op, options, build, fields, error, message):
    with pytest.raises(error, match=f"operator 0 \\({op}\\).*({message})"):
        tfl.load(_one_op(op, options, build, **fields))

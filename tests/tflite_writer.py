"""What the TFLite tests share: hypothesis settings, the comparison with LiteRT's reference kernels, and
the models they write with :class:`~tosac.frontends.tflite.writer.ModelWriter`.

Tests write the models they check, so shapes, quantization and options can be
drawn by hypothesis; nothing here needs TensorFlow.
"""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import tosac
from tosac.frontends import tflite as tfl
from tosac.frontends.tflite.writer import SAME, VALID, ModelWriter  # noqa: F401 - re-exported to the tests
from tosac.ir.reference import interpreter

# TOSAC_TFLITE_EXAMPLES raises the hypothesis examples per operator for a longer soak.
_SOAK = os.environ.get("TOSAC_TFLITE_EXAMPLES")
EXAMPLES = settings(max_examples=int(_SOAK or "25"), deadline=None, derandomize=_SOAK is None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Cross-target tests put several drawn instances of every generator into one model: one cross compile and
# qemu run per example, so 2 examples by default (TOSAC_TFLITE_EXAMPLES=N: N // 5).
ARM_EXAMPLES = settings(EXAMPLES, max_examples=max(1, int(_SOAK) // 5) if _SOAK else 2,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                               HealthCheck.function_scoped_fixture])


def scales(draw, lo=1e-3, hi=0.3, n=None):
    """A float32 scale (or ``n`` of them) drawn from [lo, hi]."""
    f = st.floats(float(np.float32(lo)), float(np.float32(hi)), allow_nan=False, width=32)
    return draw(f) if n is None else np.asarray(draw(st.lists(f, min_size=n, max_size=n)), np.float32)


def random_inputs(graph, rng: np.random.Generator) -> list[np.ndarray]:
    """Uniform values over each graph input's whole integer range."""
    out = []
    for n in graph.main.inputs:
        t = graph.main.type_of(n)
        out.append(rng.integers(t.dtype.min, t.dtype.max, t.shape, endpoint=True).astype(t.dtype.storage))
    return out


def check(litert, model: bytes, seeds: tuple[int, ...] = (0,), targets: tuple[str, ...] = ("host",)) -> None:
    """LiteRT BUILTIN_REF == reference interpreter == compiled code for each target, every element."""
    graph = tfl.load(model)
    compiled = {t: tosac.compile(graph, t) for t in targets}
    for seed in seeds:
        inputs = random_inputs(graph, np.random.default_rng(seed))
        expected = run_litert(litert, model, inputs)
        feed = dict(zip(graph.main.inputs, inputs))
        ref = interpreter.run(graph, feed)
        got = {t: exe.run(feed) for t, exe in compiled.items()}
        for k, name in enumerate(graph.main.outputs):
            assert ref[name].shape == expected[k].shape
            bad = np.flatnonzero(ref[name].astype(np.int64) != expected[k])
            assert bad.size == 0, f"output {k}: reference interpreter differs from LiteRT at {bad.size} elements: " \
                                  f"{ref[name].reshape(-1)[bad[:8]]} vs {expected[k].reshape(-1)[bad[:8]]}"
            for t in targets:
                np.testing.assert_array_equal(got[t][name], expected[k], err_msg=f"{t} code differs from LiteRT")


def model(gen, draw, *args) -> bytes:
    """A model holding one instance of generator ``gen(draw, writer, *args) -> (inputs, outputs)``."""
    w = ModelWriter()
    ins, outs = gen(draw, w, *args)
    return w.build(ins, outs)


def run_litert(litert_interpreter, model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the TFLite interpreter with the reference kernels (BUILTIN_REF), one thread."""
    I = litert_interpreter
    it = I.Interpreter(model_content=model, experimental_op_resolver_type=I.OpResolverType.BUILTIN_REF,
                       num_threads=1)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def ds_cnn_model() -> bytes:
    """conv → depthwise/pointwise blocks with ReLU → average pool → FC → (int8 logits)."""
    rng = np.random.default_rng(7)
    w = ModelWriter()

    def act_t(shape, s, z):
        return w.tensor(shape, "INT8", scale=s, zp=z)

    def weights(shape, qdim, n):
        s = rng.uniform(0.002, 0.02, n).astype(np.float32)
        return w.tensor(shape, "INT8", scale=s, zp=np.zeros(n, np.int64), qdim=qdim,
                        data=rng.integers(-127, 128, shape).astype(np.int8)), s

    def bias(n, s):
        return w.tensor((n,), "INT32", scale=s, zp=np.zeros(np.size(s), np.int64),
                        data=rng.integers(-2000, 2000, n).astype(np.int32))

    x = act_t((1, 49, 10, 1), 0.08, -10)
    f, s = weights((16, 10, 4, 1), 0, 16)
    h = act_t((1, 25, 5, 16), 0.05, -128)
    w.op("CONV_2D", [x, f, bias(16, 0.08 * s)], [h], "Conv2DOptions", Padding=SAME, StrideH=2, StrideW=2,
         DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=1)
    cur, cur_s = h, 0.05
    for block in range(2):
        f, s = weights((1, 3, 3, 16), 3, 16)
        d = act_t((1, 25, 5, 16), 0.04, -128)
        w.op("DEPTHWISE_CONV_2D", [cur, f, bias(16, cur_s * s)], [d], "DepthwiseConv2DOptions", Padding=SAME,
             StrideH=1, StrideW=1, DepthMultiplier=1, DilationHFactor=1, DilationWFactor=1,
             FusedActivationFunction=3)
        f, s = weights((16, 1, 1, 16), 0, 16)
        p = act_t((1, 25, 5, 16), 0.06, -128)
        w.op("CONV_2D", [d, f, bias(16, 0.04 * s)], [p], "Conv2DOptions", Padding=VALID, StrideH=1, StrideW=1,
             DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=1)
        cur, cur_s = p, 0.06
    pooled = act_t((1, 1, 1, 16), 0.06, -128)
    w.op("AVERAGE_POOL_2D", [cur], [pooled], "Pool2DOptions", Padding=VALID, StrideH=1, StrideW=1,
         FilterHeight=25, FilterWidth=5, FusedActivationFunction=0)
    flat = act_t((1, 16), 0.06, -128)
    shape_t = w.tensor((2,), "INT32", data=np.asarray([1, 16], np.int32))
    w.op("RESHAPE", [pooled, shape_t], [flat], "ReshapeOptions", NewShape=[1, 16])
    f = w.tensor((12, 16), "INT8", scale=0.01, zp=0, data=rng.integers(-127, 128, (12, 16)).astype(np.int8))
    logits = act_t((1, 12), 0.1, 4)
    w.op("FULLY_CONNECTED", [flat, f, bias(12, np.float32(0.06 * 0.01))], [logits], "FullyConnectedOptions",
         FusedActivationFunction=0, KeepNumDims=False)
    return w.build([x], [logits])


class CalibratedWriter:
    """Writes an int8 network op by op while a float forward pass of the same network (on a batch of samples)
    picks each activation's scale and zero point from its range, so no layer saturates or collapses."""

    def __init__(self, seed: int):
        self.w = ModelWriter()
        self.rng = np.random.default_rng(seed)
        self.float: dict[int, np.ndarray] = {}          # tensor -> its float values over the calibration batch

    def act(self, values: np.ndarray, scale: float | None = None, zp: int | None = None) -> int:
        """An int8 tensor for ``values`` (batch first; the model's shape has batch 1)."""
        if scale is None:
            lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
            scale = max(hi - lo, 1e-6) / 255
            zp = int(np.clip(round(-128 - lo / scale), -128, 127))
        idx = self.w.tensor((1,) + values.shape[1:], "INT8", scale=np.float32(scale), zp=zp)
        self.float[idx] = values
        return idx

    def q(self, idx: int) -> tuple[float, int]:
        t = self.w.tensors[idx]
        return float(t["scale"][0]), int(t["zp"][0])

    def int32(self, values, name: str | None = None) -> int:
        v = np.asarray(values, np.int32)
        return self.w.tensor(v.shape, "INT32", data=v, name=name)

    def fully_connected(self, x: int, units: int, std: float = 0.3) -> int:
        f = self.float[x]
        wf = self.rng.normal(0, std / np.sqrt(f.shape[-1]), (units, f.shape[-1])).astype(np.float32)
        s_w = (np.abs(wf).max(axis=1) / 127).astype(np.float32)
        wq = np.clip(np.rint(wf / s_w[:, None]), -127, 127).astype(np.int8)
        bias = self.rng.normal(0, 0.1, units).astype(np.float32)
        s_x = np.float32(self.q(x)[0])
        bq = np.rint(bias / (s_x * s_w)).astype(np.int32)
        y = self.act(f @ (wq * s_w[:, None]).T + bq * (s_x * s_w))
        wt = self.w.tensor(wq.shape, "INT8", scale=s_w, zp=np.zeros(units, np.int64), data=wq)
        bt = self.w.tensor((units,), "INT32", scale=s_x * s_w, zp=np.zeros(units, np.int64), data=bq)
        self.w.op("FULLY_CONNECTED", [x, wt, bt], [y], "FullyConnectedOptions", FusedActivationFunction=0,
                  KeepNumDims=True)
        return y

    def unary(self, op: str, x: int, fn, **options) -> int:
        y = self.act(fn(self.float[x]))
        self.w.op(op, [x], [y], f"{op.title().replace('_', '')}Options" if options else None, **options)
        return y

    def binary(self, op: str, a: int, b: int, fn, options: str | None = None, **fields) -> int:
        y = self.act(fn(self.float[a], self.float[b]))
        self.w.op(op, [a, b], [y], options, **fields)
        return y

    def const(self, value: float) -> int:
        idx = self.w.tensor((1,), "INT8", scale=np.float32(abs(value) / 127), zp=0,
                            data=np.array([127 if value > 0 else -127], np.int8))
        self.float[idx] = np.full((1, 1), value, np.float32)
        return idx

    def mean_last(self, x: int) -> int:
        y = self.act(self.float[x].mean(axis=-1, keepdims=True))
        self.w.op("MEAN", [x, self.int32([-1])], [y], "ReducerOptions", KeepDims=True)
        return y

    def reshape(self, x: int, shape: tuple[int, ...]) -> int:
        f = self.float[x]
        y = self.act(f.reshape((f.shape[0],) + shape[1:]), *self.q(x))
        self.w.op("RESHAPE", [x, self.int32(shape)], [y], "ReshapeOptions", NewShape=list(shape))
        return y

    def transpose(self, x: int, perm: tuple[int, ...]) -> int:
        y = self.act(self.float[x].transpose(perm), *self.q(x))
        self.w.op("TRANSPOSE", [x, self.int32(perm)], [y])
        return y


def encoder_model(seq: int = 8, hidden: int = 32, heads: int = 2, ffn: int = 64, layers: int = 2) -> bytes:
    """A transformer encoder as TensorFlow's converter writes one in int8: layer norms decomposed into MEAN,
    SQUARED_DIFFERENCE, RSQRT, SUB and MUL; attention as FULLY_CONNECTED, RESHAPE/TRANSPOSE into heads,
    BATCH_MATMUL, SOFTMAX, BATCH_MATMUL; a GELU feed-forward; residual ADDs."""
    c = CalibratedWriter(seed=13)
    x = c.act(c.rng.normal(0, 1, (32, seq, hidden)).astype(np.float32))
    inp, dh = x, hidden // heads

    def layer_norm(x: int) -> int:
        mean = c.mean_last(x)
        centred = c.binary("SUB", x, mean, np.subtract, "SubOptions", FusedActivationFunction=0)
        sq = c.binary("SQUARED_DIFFERENCE", x, mean, lambda a, b: (a - b) ** 2)
        var = c.mean_last(sq)
        inv = c.unary("RSQRT", c.binary("ADD", var, c.const(1e-3), np.add, "AddOptions", FusedActivationFunction=0),
                      lambda v: 1 / np.sqrt(v))
        return c.binary("MUL", centred, inv, np.multiply, "MulOptions", FusedActivationFunction=0)

    def heads_of(t: int) -> int:                         # [1, seq, hidden] -> [1, heads, seq, dh]
        return c.transpose(c.reshape(t, (1, seq, heads, dh)), (0, 2, 1, 3))

    for _ in range(layers):
        q, k, v = (heads_of(c.fully_connected(x, hidden)) for _ in range(3))
        scores = c.binary("BATCH_MATMUL", q, k, lambda a, b: a @ b.swapaxes(-1, -2), "BatchMatMulOptions",
                          AdjX=False, AdjY=True)
        logits = c.float[scores] / np.sqrt(dh)             # SOFTMAX's beta applies the 1/sqrt(dh)
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs = c.act(e / e.sum(-1, keepdims=True), 1.0 / 256, -128)
        c.w.op("SOFTMAX", [scores], [probs], "SoftmaxOptions", Beta=float(1.0 / np.sqrt(dh)))
        ctx = c.binary("BATCH_MATMUL", probs, v, np.matmul, "BatchMatMulOptions", AdjX=False, AdjY=False)
        merged = c.reshape(c.transpose(ctx, (0, 2, 1, 3)), (1, seq, hidden))
        attn = c.fully_connected(merged, hidden)
        x = layer_norm(c.binary("ADD", x, attn, np.add, "AddOptions", FusedActivationFunction=0))
        h = c.unary("GELU", c.fully_connected(x, ffn),
                    lambda v: 0.5 * v * (1 + np.tanh(0.7978845608 * (v + 0.044715 * v ** 3))), Approximate=True)
        x = layer_norm(c.binary("ADD", x, c.fully_connected(h, hidden), np.add, "AddOptions",
                                FusedActivationFunction=0))
    return c.w.build([inp], [x])

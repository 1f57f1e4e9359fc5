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
# Cross-target tests put several drawn instances into one model: one cross compile per example.
ARM_EXAMPLES = settings(EXAMPLES, max_examples=max(1, int(_SOAK or "25") // 5),
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

"""int8 kernel benchmark: tosac (default schedules) against numpy and ONNX Runtime, one thread (or --threads N).

    python benchmarks/kernels.py [--repeats 30] [--only gemm,conv3x3] [--threads 1] [--json out.json]

Every layer is the raw integer op (int8 x int8 -> int32, input zero point 3,
weight zero point 0, constant weights), so all peers compute the same numbers;
each result is checked bit for bit against the reference interpreter before
any time is taken. ONNX Runtime runs in two forms: its best int8 path
(activations as uint8 with zero point 131 = the same values shifted by 128,
``MatMulInteger`` / ``ConvInteger``) and the all-int8 (s8s8) path.

Timing: peers are measured in alternating rounds (one untimed warm-up run, then
5 timed runs each), until each has ``--repeats`` runs and 0.2 s in total; the
median is reported, spread = (p90 - p10) / median. GOPS = 2 x MACs / time.

Peak: the core's int8 multiply-accumulate rate measured by a loop of 24
independent ``vpdpbusd zmm`` (AVX-512 VNNI, 64 MACs each) or, without VNNI,
``vpmaddwd ymm`` (AVX2, 16 MACs each) chains compiled through llvmlite and
run for ~0.2 s: the rate the hardware sustains on this machine, not a data
sheet figure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tosac
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run as reference
from tosac.runtime.peak import int8_peak

ZP = 3
BLOCK = 5                      # timed runs per peer per round
OUT_SHIFT = {"matmul": 12, "conv": 12, "depthwise": 8}     # output scale 2^-k keeps int8 outputs in range


@dataclass
class Layer:
    name: str
    kind: str                      # matmul | conv | depthwise
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]       # matmul [K, N]; conv [OC, KH, KW, IC]; depthwise [KH, KW, C]
    pad: int = 0

    def macs(self, out_shape) -> int:
        reduce = {"matmul": self.w_shape[0], "conv": int(np.prod(self.w_shape[1:])),
                  "depthwise": self.w_shape[0] * self.w_shape[1]}[self.kind]
        return int(np.prod(out_shape)) * reduce


THREADS = 1                   # tosac's pool and ORT's intra-op threads (--threads)
LAYERS = [Layer("gemm", "matmul", (1, 512, 512), (512, 512)),
          Layer("fc", "matmul", (1, 1, 1024), (1024, 1024)),
          Layer("conv3x3", "conv", (1, 56, 56, 64), (64, 3, 3, 64), pad=1),
          Layer("pointwise", "conv", (1, 28, 28, 128), (256, 1, 1, 128)),
          Layer("depthwise", "depthwise", (1, 56, 56, 128), (3, 3, 128), pad=1)]


def tosac_graph(layer: Layer, w: np.ndarray, requantize: bool = False):
    """The raw int32 layer, or (``requantize``) the fused layer + RESCALE to int8 by 2^-OUT_SHIFT."""
    g = GraphBuilder()
    x = g.input("x", DType.INT8, layer.x_shape)
    p = (layer.pad,) * 4
    if layer.kind == "matmul":
        y = g.matmul(x, g.const(w[None]), a_zp=ZP)
    elif layer.kind == "conv":
        y = g.conv2d(x, g.const(w), pad=p, input_zp=ZP)
    else:
        y = g.depthwise_conv2d(x, g.const(w[..., None]), pad=p, input_zp=ZP)
    if requantize:
        y = g.rescale(y, DType.INT8, multiplier=1 << 30, shift=30 + OUT_SHIFT[layer.kind], output_zp=0)
    g.output(y)
    return g.build()


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median time and spread of each function, measured in alternating rounds.

    Rounds alternate the peers so that a noisy neighbour on a shared machine
    slows all of them alike and the ratios stay meaningful; within a round each
    peer runs once untimed (to warm its caches after the other peers) and then
    ``BLOCK`` times timed.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    rounds = 0
    while rounds * BLOCK < repeats or min(sum(t) for t in times.values()) < 0.2:
        for key, fn in fns.items():
            fn()
            for _ in range(BLOCK):
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        rounds += 1
    out = {}
    for key, values in times.items():
        t = np.array(values)
        med = float(np.median(t))
        out[key] = (med, float((np.percentile(t, 90) - np.percentile(t, 10)) / med))
    return out


def numpy_layer(layer: Layer, x: np.ndarray, w: np.ndarray) -> Callable[[], np.ndarray]:
    xs = x.astype(np.int32) - ZP
    if layer.kind == "matmul":
        w32 = w.astype(np.int32)
        return lambda: (x.astype(np.int32) - ZP) @ w32
    p = layer.pad
    if layer.kind == "conv":
        oc, kh, kw, ic = w.shape
        wm = w.reshape(oc, -1).T.astype(np.int32)

        def conv() -> np.ndarray:
            xp = np.pad(x.astype(np.int32) - ZP, ((0, 0), (p, p), (p, p), (0, 0)))
            n, hp, wp, _ = xp.shape
            oh, ow = hp - kh + 1, wp - kw + 1
            cols = np.concatenate([xp[:, i:i + oh, j:j + ow, :] for i in range(kh) for j in range(kw)], axis=-1)
            return (cols.reshape(-1, kh * kw * ic) @ wm).reshape(n, oh, ow, oc)
        return conv
    kh, kw, c = w.shape
    w32 = w.astype(np.int32)

    def depthwise() -> np.ndarray:
        xp = np.pad(xs, ((0, 0), (p, p), (p, p), (0, 0)))
        oh, ow = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
        return sum(xp[:, i:i + oh, j:j + ow, :] * w32[i, j] for i in range(kh) for j in range(kw))
    return depthwise


def ort_layer(layer: Layer, x: np.ndarray, w: np.ndarray, unsigned: bool):
    """An ORT session for the layer, or the reason it cannot run."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        return None, f"onnxruntime not installed ({e}); pip install 'tosac[bench]'"
    xt = TensorProto.UINT8 if unsigned else TensorProto.INT8
    feed_x = (x.astype(np.int16) + 128).astype(np.uint8) if unsigned else x
    zp = np.array(ZP + 128 if unsigned else ZP, dtype=np.uint8 if unsigned else np.int8)
    inits = [numpy_helper.from_array(zp, "x_zp")]
    if layer.kind == "matmul":
        inits.append(numpy_helper.from_array(w, "w"))
        node = helper.make_node("MatMulInteger", ["x", "w", "x_zp"], ["y"])
        x_in = feed_x
    else:
        if layer.kind == "conv":
            weights, group = w.transpose(0, 3, 1, 2), 1                         # OIHW
        else:
            weights, group = w.transpose(2, 0, 1)[:, None], w.shape[2]          # [C, 1, KH, KW]
        inits.append(numpy_helper.from_array(np.ascontiguousarray(weights), "w"))
        p = layer.pad
        node = helper.make_node("ConvInteger", ["x", "w", "x_zp"], ["y"], pads=[p, p, p, p], group=group)
        x_in = np.ascontiguousarray(feed_x.transpose(0, 3, 1, 2))               # NCHW
    graph = helper.make_graph([node], layer.name, [helper.make_tensor_value_info("x", xt, list(x_in.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")   # spinning workers slow the next peer
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        session.run(None, {"x": x_in})
    except Exception as e:  # ORT lacks some int8 kernels (e.g. s8 ConvInteger)
        return None, f"n/a ({type(e).__name__}: {str(e).splitlines()[0][:80]})"

    def call() -> np.ndarray:
        y = session.run(None, {"x": x_in})[0]
        return y if layer.kind == "matmul" else y.transpose(0, 2, 3, 1)
    return call, None


def ort_qlinear_conv(layer: Layer, x: np.ndarray, w: np.ndarray):
    """ONNX Runtime's requantizing QLinearConv (u8 activations, s8 weights, u8 output), or why not."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        return None, f"onnxruntime not installed ({e})"
    if layer.kind == "matmul":
        return None, "n/a (MatMulInteger is ORT's int8 GEMM)"
    weights, group = (w.transpose(0, 3, 1, 2), 1) if layer.kind == "conv" else (w.transpose(2, 0, 1)[:, None],
                                                                                 w.shape[2])
    scale = np.float32(1.0)
    y_scale = np.float32(2.0 ** OUT_SHIFT[layer.kind])
    inits = [numpy_helper.from_array(scale, "one"), numpy_helper.from_array(np.uint8(ZP + 128), "x_zp"),
             numpy_helper.from_array(np.ascontiguousarray(weights), "w"), numpy_helper.from_array(np.int8(0), "w_zp"),
             numpy_helper.from_array(y_scale, "y_scale"), numpy_helper.from_array(np.uint8(128), "y_zp")]
    p = layer.pad
    node = helper.make_node("QLinearConv", ["x", "one", "x_zp", "w", "one", "w_zp", "y_scale", "y_zp"], ["y"],
                            pads=[p, p, p, p], group=group)
    x_in = np.ascontiguousarray((x.astype(np.int16) + 128).astype(np.uint8).transpose(0, 3, 1, 2))
    graph = helper.make_graph([node], layer.name, [helper.make_tensor_value_info("x", TensorProto.UINT8,
                                                                                  list(x_in.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")   # spinning workers slow the next peer
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def call() -> np.ndarray:
        y = session.run(None, {"x": x_in})[0].transpose(0, 2, 3, 1)
        return (y.astype(np.int16) - 128).astype(np.int8)
    return call, None


def peak_gops() -> tuple[float, str]:
    """The core's int8 MAC rate from independent dot-product chains (``tosac.runtime.peak``)."""
    peak = int8_peak(cached=False)
    return peak.gops, peak.method


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--only", help="comma-separated layer names")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for tosac and ORT (%% peak: of that many cores)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    global THREADS
    THREADS = args.threads
    peak, how = peak_gops()
    print(f"peak int8 rate of one core: {peak:.0f} GOPS ({how}; measured again at the end); {THREADS} thread(s)\n")
    rng = np.random.default_rng(0)
    rows = []
    header = f"{'layer':<10} {'tosac':>8} {'tosac+rq':>9} {'numpy':>7} {'ORT u8s8':>9} {'ORT qlin':>9} " \
             f"{'ORT s8s8':>9} {'tosac/ORT':>9} {'% peak':>7} {'compile ms':>10}"
    print(header + "\n" + "-" * len(header))
    for layer in LAYERS:
        if args.only and layer.name not in args.only.split(","):
            continue
        x = rng.integers(-128, 128, layer.x_shape, dtype=np.int8)
        w = rng.integers(-128, 128, layer.w_shape, dtype=np.int8)
        graph = tosac_graph(layer, w)
        expected = reference(graph, {"x": x})[graph.outputs[0]]
        start = time.perf_counter()
        exe = tosac.compile(graph, "host", threads=THREADS)
        compile_ms = (time.perf_counter() - start) * 1e3
        if not np.array_equal(exe.run({"x": x})[graph.outputs[0]], expected):
            print(f"MISMATCH: tosac {layer.name} differs from the reference interpreter")
            return 1
        macs = layer.macs(expected.shape)
        row = {"layer": layer.name, "macs": macs, "compile_ms": compile_ms}
        rq_graph = tosac_graph(layer, w, requantize=True)
        rq_exe = tosac.compile(rq_graph, "host", threads=THREADS)
        rq_expected = reference(rq_graph, {"x": x})[rq_graph.outputs[0]]
        if not np.array_equal(rq_exe.run({"x": x})[rq_graph.outputs[0]], rq_expected):
            print(f"MISMATCH: tosac requantized {layer.name} differs from the reference interpreter")
            return 1
        np_fn = numpy_layer(layer, x, w)
        if not np.array_equal(np.asarray(np_fn()).reshape(expected.shape), expected):
            print(f"MISMATCH: numpy {layer.name}")
            return 1
        peers = {"tosac": lambda: exe.run({"x": x}), "tosac_rq": lambda: rq_exe.run({"x": x})}
        for key, unsigned in (("ort_u8s8", True), ("ort_s8s8", False)):
            fn, why = ort_layer(layer, x, w, unsigned)
            if fn is not None and not np.array_equal(np.asarray(fn()).reshape(expected.shape), expected):
                fn, why = None, "n/a (result differs from the reference)"
            row[key + "_note"] = why
            if fn is not None:
                peers[key] = fn
        fn, row["ort_qlinear_note"] = ort_qlinear_conv(layer, x, w)
        if fn is not None:
            # ORT requantizes in float: ties may round differently (by 1 LSB) from the exact integer rule.
            row["ort_qlinear_max_diff"] = int(np.abs(fn().astype(np.int16) - rq_expected.astype(np.int16)).max())
            peers["ort_qlinear"] = fn
        measured = time_interleaved(peers, args.repeats)
        row["numpy"] = time_interleaved({"numpy": np_fn}, max(3, args.repeats // 10))["numpy"][0]
        for key, (median, spread) in measured.items():
            row[key], row[key + "_spread"] = median, spread
        rows.append(row)
        kinds = ("tosac", "tosac_rq", "numpy", "ort_u8s8", "ort_s8s8", "ort_qlinear")
        gops = {k: (2 * macs / row[k] / 1e9 if row.get(k) else None) for k in kinds}
        row["gops"] = gops
        fmt = lambda v: f"{v:.1f}" if v else "n/a"  # noqa: E731
        # The same computation on both sides: raw int32 vs the int32 ORT op, requantized vs QLinearConv.
        pairs = [(gops["tosac"], gops["ort_u8s8"]), (gops["tosac_rq"], gops["ort_qlinear"])]
        ratio = min((a / b for a, b in pairs if a and b), default=None)
        row["ratio_vs_ort_best"] = ratio
        print(f"{layer.name:<10} {fmt(gops['tosac']):>8} {fmt(gops['tosac_rq']):>9} {fmt(gops['numpy']):>7} "
              f"{fmt(gops['ort_u8s8']):>9} {fmt(gops['ort_qlinear']):>9} {fmt(gops['ort_s8s8']):>9} "
              f"{(f'{ratio:.2f}x' if ratio else 'n/a'):>9} {100 * gops['tosac'] / (peak * THREADS):>6.0f}% "
              f"{compile_ms:>10.0f}")
        for key in ("ort_u8s8", "ort_s8s8", "ort_qlinear"):
            if row[key + "_note"]:
                print(f"    {key}: {row[key + '_note']}")
        if "ort_qlinear_max_diff" in row:
            print(f"    QLinearConv vs exact requantization: max |difference| {row['ort_qlinear_max_diff']} LSB")
    peak_after, _ = peak_gops()
    print(f"\npeak measured again: {peak_after:.0f} GOPS (the % peak column used {peak:.0f})")
    print(f"GOPS = 2 x int8 MACs / median time; {THREADS} thread(s); tosac with default configs (untuned).\n"
          "tosac = int8 layer -> int32; tosac+rq = the same layer fused with RESCALE to int8. ORT u8s8 = "
          "MatMulInteger/ConvInteger on uint8 activations; ORT qlin = QLinearConv (requantized, compare with "
          "tosac+rq); ORT s8s8 = the all-int8 path. tosac/ORT = the lower of the like-for-like ratios.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gops": peak, "peak_method": how, "threads": THREADS, "layers": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Built-in example models, so a fresh checkout can show the whole product.

``example_int8_net`` is a small int8 network in the TFLite quantized style:
conv2d → per-channel RESCALE (DOUBLE_ROUND, as TFLite) → CLAMP (ReLU6),
depthwise conv2d, average pooling, a fully-connected layer as MATMUL, a
residual-free classifier head with an int8 TABLE (a sigmoid lookup). Weights
are seeded random: the numbers, not the accuracy, are what the demo shows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.graph import Graph
from tosac.ir.ops import RoundingMode


def _sigmoid_table(in_scale: float, out_scale: float, out_zp: int) -> np.ndarray:
    """An int8 TABLE for sigmoid (constant data, so float is fine at build time)."""
    x = np.arange(-128, 128) * in_scale
    y = np.round(1.0 / (1.0 + np.exp(-x)) / out_scale) + out_zp
    return np.clip(y, -128, 127).astype(np.int8)


def example_int8_net(seed: int = 0) -> Graph:
    """The built-in int8 example: input x int8[1,16,16,8] → output int8[1,1,10]."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 16, 16, 8))
    w1 = g.const(rng.integers(-127, 128, (16, 3, 3, 8), dtype=np.int8))
    b1 = rng.integers(-2000, 2000, (16,)).astype(np.int32)
    acc = g.conv2d(x, w1, b1, pad=(1, 1, 1, 1), input_zp=-5)
    y = g.rescale(acc, DType.INT8, multiplier=rng.integers(1 << 29, 1 << 30, 16).tolist(),
                  shift=[40] * 16, input_zp=0, output_zp=-128, rounding_mode=RoundingMode.DOUBLE_ROUND)
    y = g.clamp(y, min_val=-128, max_val=40)
    w2 = g.const(rng.integers(-127, 128, (3, 3, 16, 1), dtype=np.int8))
    acc = g.depthwise_conv2d(y, w2, pad=(1, 0, 1, 0), stride=(2, 2), input_zp=-128)
    y = g.rescale(acc, DType.INT8, multiplier=[1 << 30], shift=[38], output_zp=3)
    y = g.avg_pool2d(y, kernel=(2, 2), stride=(2, 2), input_zp=3, output_zp=3)      # [1,4,4,16]
    y = g.reshape(y, (1, 1, 256))
    w3 = g.const(rng.integers(-127, 128, (1, 256, 10), dtype=np.int8))
    acc = g.matmul(y, w3, a_zp=3, b_zp=0)
    y = g.rescale(acc, DType.INT8, multiplier=[1 << 30], shift=[41], output_zp=0)
    y = g.table(y, _sigmoid_table(0.05, 1 / 256, -128))
    g.output(y)
    return g.build()


def demo(out_dir: Path) -> int:
    """Build the example, write and re-read it, run it, compare with the official model."""
    from tosac.conformance import official_model
    from tosac.ir.reference.interpreter import run
    from tosac.ir.serialize import format_graph, load, save

    out_dir.mkdir(parents=True, exist_ok=True)
    graph = example_int8_net()
    tosa_path, json_path = out_dir / "example_int8.tosa", out_dir / "example_int8.json"
    save(graph, tosa_path)
    save(graph, json_path)
    print(f"wrote {tosa_path} and {json_path}\n")
    print(format_graph(load(tosa_path)))

    x = np.random.default_rng(1).integers(-128, 128, (1, 16, 16, 8), dtype=np.int8)
    np.save(out_dir / "x.npy", x)
    from_tosa = run(load(tosa_path), {"x": x})
    from_json = run(load(json_path), {"x": x})
    ours = run(graph, {"x": x})
    name = graph.outputs[0]
    assert all(np.array_equal(ours[name], r[name]) for r in (from_tosa, from_json)), "round trip changed bits"
    print(f"\nreference interpreter: {name} = {ours[name].reshape(-1).tolist()}")
    compiled_ok = _demo_compiled(graph, x, ours[name])
    if official_model.available():
        status, official = official_model.run_official(graph, {"x": x})
        same = status == "TOSA_VALID" and np.array_equal(official[name], ours[name])
        values = official.get(name, np.array([])).reshape(-1).tolist()
        print(f"official TOSA reference model: {status}, {name} = {values}")
        print("bit-exact agreement with the official reference model: " + ("YES" if same else "NO"))
        return 0 if same and compiled_ok else 1
    print("(install the 'conformance' extra to compare with the official TOSA reference model)")
    return 0 if compiled_ok else 1


def _demo_compiled(graph, x: np.ndarray, expected: np.ndarray) -> bool:
    """Compile for the host (and to ARM objects), run, time, and compare with the interpreter."""
    import time

    import tosac

    exe = tosac.compile(graph, "host")
    info = exe.program.info
    print(f"\ncompiled for the host ({info['compile_seconds'] * 1e3:.0f} ms): "
          f"{len(info['kernels'])} fused kernels, {exe.memory_plan.describe()}")
    for k in info["kernels"]:
        print(f"  {k.pattern:<28} {k.template:<10} {k.config}")
    name = graph.outputs[0]
    got = exe.run({"x": x})[name]
    times = []
    for _ in range(50):
        start = time.perf_counter()
        exe.run({"x": x})
        times.append(time.perf_counter() - start)
    same = np.array_equal(got, expected)
    print(f"compiled host code: {name} = {got.reshape(-1).tolist()} "
          f"(median {np.median(times) * 1e6:.0f} us per run)")
    print("bit-exact agreement of compiled code with the reference interpreter: " + ("YES" if same else "NO"))
    from tosac.runtime.cross import available
    from tosac.targets import get_target

    for target in ("aarch64-dotprod", "armv7"):
        arm = tosac.compile(graph, target)
        if not available(get_target(target)):
            print(f"{target}: {len(arm.object_code)} bytes of object code (install qemu-user and the cross gcc "
                  "to run it)")
            continue
        arm_same = np.array_equal(arm.run({"x": x})[name], expected)
        print(f"{target} under qemu: bit-exact with the reference interpreter: {'YES' if arm_same else 'NO'}")
        same = same and arm_same
    return same

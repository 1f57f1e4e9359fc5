"""One Executable called from several threads at once gives every caller its own, exact result (issue 16 item 5).

Each concurrent call used to share the one arena (and the pointer tables of
inputs and outputs): two threads overwrote each other's intermediates and a
few results in hundreds were wrong. Every result here is compared bit for bit
with the reference interpreter.
"""
from __future__ import annotations

import threading

import numpy as np

import tosac
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.pipeline.optimise import kernel_builders, optimise_graph
from tosac.targets import get_target


def _hammer(exe, inputs: list[dict], expected: list[dict], threads: int, calls: int) -> list[str]:
    """Run ``exe`` from ``threads`` threads, ``calls`` times each, cycling through ``inputs``; the mismatches."""
    wrong: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(k: int) -> None:
        try:
            start.wait()
            for r in range(calls):
                j = (k * 7 + r) % len(inputs)
                got = exe.run(inputs[j])
                for name, want in expected[j].items():
                    if got[name].dtype != want.dtype or not np.array_equal(got[name], want):
                        wrong.append(f"thread {k} call {r} input {j} output {name}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    return wrong


def test_bundled_model_from_four_threads_is_bit_exact():
    graph = tosac.models.load("kws")
    inputs = tosac.models.sample_inputs("kws", graph, count=6, seed=16)
    expected = [run(graph, x) for x in inputs]
    exe = tosac.compile(graph, "host")
    assert _hammer(exe, inputs, expected, threads=4, calls=150) == []


def _threaded_configs(graph, **knobs) -> dict:
    """Every kernel's default config with ``knobs`` overridden where its space has them."""
    out = {}
    for kb in kernel_builders(optimise_graph(graph), get_target("host")):
        config = dict(kb.space.resolve(None))
        config.update({k: v for k, v in knobs.items() if k in config})
        out[kb.name] = config
    return out


def test_kernels_split_over_the_worker_pool_from_three_threads():
    """A ``threads`` knob > 1: kernels run from Python, their loops split over the executable's thread pool."""
    rng = np.random.default_rng(5)
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 12, 12, 16))
    y = g.conv2d(x, g.const(rng.integers(-128, 128, (16, 3, 3, 16)).astype(np.int8)), pad=(1, 1, 1, 1), input_zp=3)
    y = g.clamp(g.rescale(y, DType.INT8, multiplier=1 << 30, shift=40, output_zp=-2), min_val=-100, max_val=120)
    y = g.transpose(y, perms=[0, 2, 1, 3])
    bias = g.const(np.arange(16, dtype=np.int32).reshape(1, 1, 1, 16))
    g.output(g.add(g.rescale(y, DType.INT32, multiplier=1 << 30, shift=30), bias))
    graph = g.build()
    exe = tosac.compile(graph, "host", _threaded_configs(graph, threads=2), tuning_log=False)
    assert any(getattr(s, "threads", 1) > 1 for s in exe.program.steps)
    inputs = [{"x": rng.integers(-128, 128, (1, 12, 12, 16)).astype(np.int8)} for _ in range(5)]
    expected = [run(graph, i) for i in inputs]
    assert _hammer(exe, inputs, expected, threads=3, calls=120) == []


def test_control_flow_from_three_threads():
    """COND_IF and WHILE_LOOP run their compiled bodies from Python: nested executables, shared too."""
    g = GraphBuilder()
    c, x = g.input("c", DType.BOOL, (1,)), g.input("x", DType.INT32, (64,))
    then_b, else_b = g.block("then"), g.block("else")
    tx = then_b.input("tx", DType.INT32, (64,))
    then_b.output(then_b.add(tx, tx))
    ex = else_b.input("ex", DType.INT32, (64,))
    else_b.output(else_b.sub(ex, else_b.const(np.full(64, 3, np.int32))))
    (picked,) = g.op("COND_IF", [c, x], then_graph="then", else_graph="else")
    n = g.input("n", DType.INT32, (1,))
    cond, body = g.block("cond"), g.block("body")
    cn, _ = cond.input("cn", DType.INT32, (1,)), cond.input("cacc", DType.INT32, (64,))
    cond.output(cond.greater(cn, cond.const(np.zeros(1, np.int32))))
    bn, bacc = body.input("bn", DType.INT32, (1,)), body.input("bacc", DType.INT32, (64,))
    body.output(body.sub(bn, body.const(np.ones(1, np.int32))), body.add(bacc, bacc))
    _, looped = g.op("WHILE_LOOP", [n, picked], cond_graph="cond", body_graph="body")
    g.output(looped)
    graph = g.build()
    rng = np.random.default_rng(9)
    inputs = [{"c": np.array([k % 2 == 0]), "x": rng.integers(-1000, 1000, 64).astype(np.int32),
               "n": np.array([k % 4], np.int32)} for k in range(8)]
    expected = [run(graph, i) for i in inputs]
    exe = tosac.compile(graph, "host")
    assert _hammer(exe, inputs, expected, threads=3, calls=100) == []

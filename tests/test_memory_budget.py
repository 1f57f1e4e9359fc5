"""A graph needing more memory than the budget is refused at compile time, before anything is allocated (issue 16
item 14).

An arena of gigabytes used to be allocated at compile time, and an ONNX Pad to
1.8e9 elements compiled, then died at run time in numpy's allocator. Now the
memory plan (arena, constants, outputs) is checked against
``TOSAC_MEMORY_LIMIT`` / ``memory_limit=`` (default: half the physical memory)
and the arena is allocated at the first run.
"""
from __future__ import annotations

import os
import time
import tracemalloc

import numpy as np
import pytest
from onnx import TensorProto, helper

import tosac
from tosac.errors import TosacError
from tosac.frontends.onnx import load as load_onnx
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.runtime.memory_plan import ENV_LIMIT, MemoryLimitError, memory_limit, parse_bytes

MIB = 1 << 20


def _wide_graph(side: int = 1024):
    """x int8 (1, side, side, 16) -> int32 rescale -> transpose + rescale to int8: an int32 intermediate."""
    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, side, side, 16))
    wide = g.rescale(x, DType.INT32, multiplier=1 << 30, shift=30, input_zp=0)
    moved = g.transpose(wide, perms=[0, 2, 1, 3])
    g.output(g.rescale(moved, DType.INT8, multiplier=1 << 30, shift=30))
    return g.build(), wide.name, moved.name


@pytest.fixture(autouse=True)
def _no_limit_from_outside(monkeypatch):
    monkeypatch.delenv("TOSAC_MEMORY_LIMIT", raising=False)


def test_plan_over_the_env_limit_is_refused_before_allocating(monkeypatch):
    graph, wide, _ = _wide_graph()                          # a 64 MiB intermediate, a 16 MiB output
    monkeypatch.setenv("TOSAC_MEMORY_LIMIT", "70M")
    tracemalloc.start()
    try:
        with pytest.raises(MemoryLimitError) as caught:
            tosac.compile(graph, "host", tuning_log=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "memory limit is 70.0 MiB" in message and "$TOSAC_MEMORY_LIMIT" in message
    assert f"Largest buffers: '{wide}' (intermediate, 64.0 MiB)" in message
    assert "needs 80.0 MiB" in message                      # arena 64 MiB + output 16 MiB
    assert peak < 32 * MIB, f"compile allocated {peak} bytes before refusing"


def test_memory_limit_argument_wins_over_the_env(monkeypatch):
    graph, _, _ = _wide_graph()
    monkeypatch.setenv("TOSAC_MEMORY_LIMIT", "1G")
    with pytest.raises(MemoryLimitError, match=r"memory limit is 50.0 MiB \(52428800 bytes\) \(memory_limit=\)"):
        tosac.compile(graph, "host", tuning_log=False, memory_limit=50 * MIB)
    with pytest.raises(MemoryLimitError, match="50.0 MiB"):
        tosac.compile(graph, "host", tuning_log=False, memory_limit="50M")


def test_no_arena_is_allocated_before_the_first_run(monkeypatch):
    graph, _, _ = _wide_graph()
    monkeypatch.setenv("TOSAC_MEMORY_LIMIT", "1K")           # the argument wins: no limit
    tracemalloc.start()
    try:
        exe = tosac.compile(graph, "host", tuning_log=False, memory_limit="none")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exe.memory_plan.arena_bytes >= 64 * MIB
    assert peak < 32 * MIB, f"compile allocated {peak} bytes: the arena is allocated at the first run"


def test_small_graph_under_the_limit_runs_bit_exact(monkeypatch):
    graph, _, _ = _wide_graph(side=8)
    monkeypatch.setenv("TOSAC_MEMORY_LIMIT", "64K")
    x = np.random.default_rng(1).integers(-128, 128, (1, 8, 8, 16)).astype(np.int8)
    got = tosac.compile(graph, "host", tuning_log=False).run({"x": x})
    for name, want in run(graph, {"x": x}).items():
        np.testing.assert_array_equal(got[name], want)


def _huge_pad(elements: int = 1_800_000_000):
    """ONNX: a (1, 4) float input padded to (1, elements) — 6.7 GiB of output from 16 bytes of input."""
    pads = helper.make_tensor("pads", TensorProto.INT64, (4,), [0, 0, 0, elements - 4])
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant")
    graph = helper.make_graph([node], "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, elements))], [pads])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_huge_onnx_pad_is_a_typed_error_at_compile(monkeypatch):
    graph = load_onnx(_huge_pad())
    monkeypatch.setenv("TOSAC_MEMORY_LIMIT", "4G")
    started = time.perf_counter()
    with pytest.raises(MemoryLimitError, match=r"needs 6\.7 GiB \(7200000\d\d\d bytes\).*4\.0 GiB.*"
                                               r"Largest buffers: 'y' \(output, 6\.7 GiB\)"):
        tosac.compile(graph, "host", tuning_log=False)
    assert time.perf_counter() - started < 60


def test_default_limit_is_half_the_physical_memory():
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit, source = memory_limit()
    assert limit == physical // 2 and "half the physical memory" in source


@pytest.mark.parametrize("text, expected", [("512M", 512 * MIB), ("4G", 4 << 30), ("1.5GiB", 3 << 29),
                                            ("1000000", 1000000), ("64kb", 64 << 10), (" 2 T ", 2 << 40),
                                            ("none", None), ("Unlimited", None)])
def test_sizes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("value", ["lots", "0", "-5", "4X", "1e9", "", "G", "12 MB extra"])
def test_malformed_env_value_is_a_tosac_error_naming_it(monkeypatch, value):
    graph, _, _ = _wide_graph(side=8)
    monkeypatch.setenv("TOSAC_MEMORY_LIMIT", value)
    if not value.strip():
        tosac.compile(graph, "host", tuning_log=False)         # empty: unset
        return
    with pytest.raises(TosacError, match=rf"TOSAC_MEMORY_LIMIT is '{value}'"):
        tosac.compile(graph, "host", tuning_log=False)


@pytest.mark.parametrize("value", [0, -1, "lots", 1.5, True])
def test_malformed_argument_is_a_tosac_error(value):
    graph, _, _ = _wide_graph(side=8)
    with pytest.raises(TosacError, match="memory_limit="):
        tosac.compile(graph, "host", tuning_log=False, memory_limit=value)


def test_reference_interpreter_out_of_memory_is_a_typed_error(monkeypatch):
    """numpy's MemoryError inside a reference kernel becomes an InterpreterError naming the op and its output."""
    from tosac.errors import InterpreterError
    from tosac.ir.reference import interpreter

    graph, wide, _ = _wide_graph(side=4)

    def exhausted(call):
        raise MemoryError("simulated")

    monkeypatch.setitem(interpreter.KERNELS, "TRANSPOSE", exhausted)
    x = np.zeros((1, 4, 4, 16), np.int8)
    with pytest.raises(InterpreterError, match="out of memory computing"):
        run(graph, {"x": x})


def test_cli_memory_limit_flag_refuses_with_one_line(tmp_path, capsys, monkeypatch):
    from tosac.app.cli import main
    from tosac.ir.serialize import save

    graph, _, _ = _wide_graph()
    save(graph, tmp_path / "wide.tosa")
    monkeypatch.setattr(os, "environ", dict(os.environ))      # the flag sets the variable for worker processes
    assert main(["--memory-limit", "70M", "compile", str(tmp_path / "wide.tosa"), "-o", str(tmp_path / "w.o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tosac: error: this graph needs 80.0 MiB") and err.count("\n") == 1, err
    assert "memory limit is 70.0 MiB" in err and not (tmp_path / "w.o").exists()
    assert os.environ[ENV_LIMIT] == "70M"
    assert main(["--memory-limit", "lots", "inspect", str(tmp_path / "wide.tosa")]) == 2
    assert "tosac: error: --memory-limit is 'lots': expected a positive size" in capsys.readouterr().err

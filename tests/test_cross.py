"""AArch64 and ARMv7 code under qemu-user: same bits as the host and the reference interpreter.

These tests need Debian's cross gcc and qemu-user: on a machine without them
they skip with the reason; under CI (CI=true) they fail instead.
"""
from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest

import tosac
from tosac.app.cli import main
from tosac.conformance.builtin import run_cross
from tosac.errors import ToolchainMissingError
from tosac.app.examples import example_int8_net
from tosac.ir.builder import GraphBuilder
from tosac.ir.dtypes import DType
from tosac.ir.reference.interpreter import run
from tosac.ir.serialize import save
from tosac.runtime import cross
from tosac.targets import get_target

ARM = ["aarch64", "aarch64-dotprod", "armv7"]


@pytest.fixture(params=ARM)
def arm(request, require_cross):
    require_cross(request.param)
    return request.param


def _edge_graph():
    """Outputs that no kernel writes (a constant, an input) next to a computed one."""
    g = GraphBuilder()
    x = g.input("x", DType.INT32, (3, 4))
    c = g.const(np.arange(12, dtype=np.int32).reshape(3, 4))
    g.output(g.add(x, c), c, x)
    return g.build()


def test_example_net_matches_host_and_reference(arm):
    graph = example_int8_net()
    x = np.random.default_rng(5).integers(-128, 128, (1, 16, 16, 8), dtype=np.int8)
    expected = run(graph, {"x": x})
    host = tosac.compile(graph, "host").run({"x": x})
    got = tosac.compile(graph, arm).run({"x": x})
    for name in graph.outputs:
        np.testing.assert_array_equal(got[name], expected[name])
        np.testing.assert_array_equal(got[name], host[name])
        assert got[name].dtype == expected[name].dtype


def test_outputs_that_are_constants_or_inputs(arm):
    graph = _edge_graph()
    x = np.full((3, 4), 7, np.int32)
    got = tosac.compile(graph, arm).run({"x": x})
    for name, want in run(graph, {"x": x}).items():
        np.testing.assert_array_equal(got[name], want)


def test_builtin_suite_across_targets(require_cross):
    """Every operator and fused pattern, drawn by hypothesis, on host, AArch64 and ARMv7 in one go."""
    for target in ARM:
        require_cross(target)
    results, seconds = run_cross(["host", *ARM], examples=3, seed_value=7)
    failed = [r for r in results if r.outcome == "failed"]
    assert not failed, "\n".join(f"{r.name}: {r.message}" for r in failed[:10])
    skipped = [r for r in results if r.outcome == "skipped"]
    assert all("unpredictable" in r.message for r in skipped), [r.message for r in skipped]
    assert len(results) - len(skipped) >= 2 * len({r.op for r in results})


def test_deployable_object_links_into_a_plain_c_program(tmp_path, require_cross, c_model_main):
    """model.o + model.h from `tosac compile`, a C main, the cross gcc, qemu: the host's bits."""
    require_cross("aarch64")
    graph = example_int8_net()
    model = tmp_path / "model.tosa"
    save(graph, model)
    assert main(["compile", str(model), "--target", "aarch64", "-o", str(tmp_path / "model.o"),
                 "--header", str(tmp_path / "model.h"), "--static-lib", str(tmp_path / "libmodel.a")]) == 0
    undefined = subprocess.run(["aarch64-linux-gnu-nm", "-u", str(tmp_path / "model.o")], capture_output=True,
                               text=True, check=True).stdout.split()
    assert set(undefined) <= {"U", "memcpy", "memset"}, undefined
    (tmp_path / "main.c").write_text(c_model_main("model_run(inputs, outputs, arena)"))
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-O2", "-o", str(tmp_path / "app"), str(tmp_path / "main.c"),
                    "-L", str(tmp_path), "-lmodel"], check=True, cwd=tmp_path)
    x = np.random.default_rng(9).integers(-128, 128, (1, 16, 16, 8), dtype=np.int8)
    x.tofile(tmp_path / "x.bin")
    subprocess.run(["qemu-aarch64", "-cpu", "cortex-a53", str(tmp_path / "app"), str(tmp_path / "x.bin"),
                    str(tmp_path / "y.bin")], check=True)
    name = graph.outputs[0]
    host = tosac.compile(graph, "host").run({"x": x})[name]
    np.testing.assert_array_equal(np.fromfile(tmp_path / "y.bin", dtype=np.int8).reshape(host.shape), host)


def test_missing_toolchain_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(ToolchainMissingError, match="gcc-aarch64-linux-gnu"):
        cross.toolchain(get_target("aarch64")).check()
    exe = tosac.compile(_edge_graph(), "armv7")
    with pytest.raises(ToolchainMissingError, match="gcc-arm-linux-gnueabihf"):
        exe.run({"x": np.zeros((3, 4), np.int32)})


def test_runner_failure_is_a_typed_error(arm):
    """A WHILE_LOOP that never ends returns an error from model_run instead of hanging."""
    g = GraphBuilder()
    n = g.input("n", DType.INT32, ())
    cond, body = g.block("cond"), g.block("body")
    ci = cond.input("i", DType.INT32, ())
    cond.output(cond.greater_equal(ci, cond.const(np.array(0, np.int32))))
    bi = body.input("i", DType.INT32, ())
    body.output(body.add(bi, body.const(np.array(0, np.int32))))
    (out,) = g.op("WHILE_LOOP", [n], out_dtypes=[DType.INT32], cond_graph="cond", body_graph="body")
    g.output(out)
    exe = tosac.compile(g.build(), arm)
    with pytest.raises(tosac.CodegenError, match="model returned an error"):
        exe.run({"n": np.array(1, np.int32)})


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-digest"])
def test_a_damaged_cached_runner_is_rebuilt_not_run(tmp_path, monkeypatch, require_cross, damage):
    """A cached runner binary (or runner object) whose bytes no longer match its digest is never executed: a
    CacheWarning, a rebuild, and the reference's bits."""
    from tosac.runtime.objects import CacheWarning

    require_cross("aarch64")
    monkeypatch.setenv("TOSAC_CACHE_DIR", str(tmp_path))
    graph = _edge_graph()
    x = np.full((3, 4), -5, np.int32)
    expected = run(graph, {"x": x})
    tosac.compile(graph, "aarch64").run({"x": x})
    cached = sorted(p for p in (tmp_path / "runners").iterdir() if not p.name.endswith(".sha256"))
    assert len(cached) == 2                                 # the runner object and the linked runner
    for path in cached:
        data = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(data[: len(data) // 3])
        elif damage == "flip":
            path.write_bytes(data[:200] + bytes([data[200] ^ 0x40]) + data[201:])
        else:
            path.with_name(path.name + ".sha256").unlink()
    with pytest.warns(CacheWarning, match="rebuilding it") as caught:
        got = tosac.compile(graph, "aarch64").run({"x": x})
    assert {str(w.message).split(":")[1].strip().split(" ")[1] for w in caught} >= {str(p) for p in cached}
    for name, want in expected.items():
        np.testing.assert_array_equal(got[name], want)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)        # rebuilt files are trusted again
        tosac.compile(graph, "aarch64").run({"x": x})

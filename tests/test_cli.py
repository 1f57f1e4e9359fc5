"""The `tosac` command line: help texts, inspect, run, and clear errors on bad input."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tosac.app.cli import main
from tosac.app.examples import example_int8_net
from tosac.ir.reference.interpreter import run
from tosac.ir.serialize import save


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "net.tosa"
    save(example_int8_net(), path)
    return path


@pytest.mark.parametrize("argv", [["--help"], ["inspect", "--help"], ["run", "--help"], ["compile", "--help"], ["demo", "--help"],
                                  ["conformance", "--help"], ["conformance", "tosa-cts", "--help"]])
def test_help_texts(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: tosac" in text and len(text.splitlines()) > 4


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "tosac.app.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "conformance" in proc.stdout


def test_inspect_lists_ops_shapes_and_dtypes(model_file, capsys):
    assert main(["inspect", str(model_file)]) == 0
    out = capsys.readouterr().out
    for needle in ("CONV2D", "RESCALE", "DEPTHWISE_CONV2D", "AVG_POOL2D", "MATMUL", "TABLE", "i8[1,16,16,8]"):
        assert needle in out, needle
    assert "verified: OK" in out


@pytest.mark.parametrize("target", ["host", "reference"])
def test_run_writes_outputs_equal_to_the_interpreter(model_file, tmp_path, capsys, target):
    x = np.random.default_rng(3).integers(-128, 128, (1, 16, 16, 8), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(model_file), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path),
                 "--target", target]) == 0
    graph = example_int8_net()
    expected = run(graph, {"x": x})[graph.outputs[0]]
    got = np.load(tmp_path / f"{graph.outputs[0]}.npy")
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_run_check_compares_with_the_reference(model_file, capsys):
    assert main(["run", str(model_file), "--random-inputs", "--check"]) == 0
    assert "bit-exact against the reference interpreter" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["host", "aarch64", "armv7"])
def test_compile_writes_an_object_and_reports_kernels(model_file, tmp_path, capsys, target):
    out = tmp_path / "model.o"
    assert main(["compile", str(model_file), "--target", target, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes().startswith(b"\x7fELF")
    assert "tosac_k0_conv2d_rescale_clamp" in text and "memory: arena" in text and "ms per kernel" in text


def test_compile_rejects_a_bad_config_file(model_file, tmp_path, capsys):
    bad = tmp_path / "c.json"
    bad.write_text("[1, 2]")
    assert main(["compile", str(model_file), "--config", str(bad)]) == 2
    assert "--config" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not a model", b"\x00" * 64])
def test_malformed_file_is_one_clear_error(tmp_path, capsys, content):
    bad = tmp_path / "bad.tosa"
    bad.write_bytes(content)
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tosac: error:") and "Traceback" not in err


def test_missing_file_and_wrong_input_are_clear_errors(model_file, tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.tosa")]) == 2
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.int8))
    assert main(["run", str(model_file), "--input", f"x={tmp_path / 'x.npy'}"]) == 2
    err = capsys.readouterr().err
    assert "nope.tosa" in err and "shape (2, 2)" in err


# ----------------------------------------------------------------------------- ONNX files and bundled models

def test_onnx_file_inspect_compile_and_run(tmp_path, capsys):
    from tosac import models

    onnx_file = models.path("kws", "qoperator")
    assert main(["inspect", str(onnx_file)]) == 0
    out = capsys.readouterr().out
    assert "DEPTHWISE_CONV2D" in out and "quantized I/O: input int8" in out and "verified: OK" in out
    assert main(["compile", str(onnx_file), "-o", str(tmp_path / "kws.o")]) == 0
    assert (tmp_path / "kws.o").stat().st_size > 10_000
    graph = models.load("kws", "qoperator")
    x = np.random.default_rng(0).integers(-128, 128, (1, 1, 49, 10), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(onnx_file), "--input", f"input={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path),
                 "--check"]) == 0
    assert "bit-exact against the reference interpreter" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "softmax.npy"), run(graph, {"input": x})["softmax"])


def test_bundled_model_name_and_onnx_errors(tmp_path, capsys):
    assert main(["run", "ad", "--random-inputs", "--check"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert main(["compile", str(bad)]) == 2
    assert "broken.onnx" in capsys.readouterr().err
    assert main(["inspect", str(bad), "--input-shape", "x=1,a"]) == 2
    assert "--input-shape" in capsys.readouterr().err


def test_onnx_node_suite_command(capsys):
    assert main(["conformance", "onnx-node", "--target", "host", "--filter", "qlinear"]) == 0
    out = capsys.readouterr().out
    assert "QLinearConv" in out and "0 failed" in out

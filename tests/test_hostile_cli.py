"""Hostile input to the command line (issue 16, items 13 and 16): bad paths are one line on stderr and exit 2.

Output paths that cannot be written (a directory, a missing folder, a file where a folder belongs), model
paths that are not regular files (a FIFO would block, /dev/zero never ends), a closed stdout pipe, options
that do not apply, unknown names and extensions. Anything that could hang runs in a child process with a
timeout.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tosac.app.cli import _save_npy, main
from tosac.app.examples import example_int8_net
from tosac.errors import SerializationError
from tosac.ir.serialize import files, load, read_tosa, save


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "net.tosa"
    save(example_int8_net(), path)
    return path


def one_line_error(argv: list[str], capsys) -> str:
    """Run ``tosac argv`` in this process; it must exit 2 with exactly one line on stderr. Returns the line."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tosac: error: "), err
    return lines[0]


def child(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tosac.app.cli", *argv], capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tosac: error: "), proc.stderr
    return lines[0]


# Item 13: output paths -------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["-o", "--header", "--static-lib"])
def test_compile_output_is_a_directory(model_file, tmp_path, capsys, option):
    line = one_line_error(["compile", str(model_file), option, str(tmp_path)], capsys)
    assert "is a directory" in line and str(tmp_path) in line


@pytest.mark.parametrize("option", ["-o", "--header", "--static-lib"])
def test_compile_output_in_a_missing_folder(model_file, tmp_path, capsys, option):
    line = one_line_error(["compile", str(model_file), option, str(tmp_path / "missing" / "model.x")], capsys)
    assert "does not exist" in line
    assert not (tmp_path / "missing").exists()


def test_run_output_dir_is_a_file(model_file, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    line = one_line_error(["run", str(model_file), "--random-inputs", "--target", "reference",
                           "--output-dir", str(tmp_path / "file")], capsys)
    assert "--output-dir" in line and "is not a folder" in line
    assert (tmp_path / "file").read_text() == "not a folder"


def test_run_output_names_stay_in_the_output_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    _save_npy(folder, "../escaped", np.arange(3))
    assert not (tmp_path / "escaped.npy").exists()
    assert np.array_equal(np.load(folder / ".._escaped.npy"), np.arange(3))


def test_tune_log_is_a_directory(model_file, tmp_path, capsys):
    line = one_line_error(["tune", str(model_file), "--log", str(tmp_path), "--trials", "1", "--quiet"], capsys)
    assert "--log" in line and "not a regular file" in line


def test_tune_log_cannot_be_written(model_file, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    line = one_line_error(["tune", str(model_file), "--log", str(tmp_path / "file" / "log.jsonl"), "--trials", "1",
                           "--quiet"], capsys)
    assert "--log" in line


def test_tune_log_in_an_unwritable_place(model_file, capsys):
    line = one_line_error(["tune", str(model_file), "--log", "/proc/tosac-no-such.jsonl", "--trials", "1",
                           "--quiet"], capsys)
    assert "cannot be written" in line


def test_tune_report_on_a_directory(tmp_path, capsys):
    line = one_line_error(["tune", "report", str(tmp_path)], capsys)
    assert str(tmp_path) in line


def test_tune_report_on_a_fifo(tmp_path):
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    line = assert_one_line_exit_2(child(["tune", "report", str(fifo)], timeout=60))
    assert "not a regular file" in line


def test_prune_json_is_a_directory_before_any_work(model_file, tmp_path, capsys):
    line = one_line_error(["prune", str(model_file), "--sparsity", "0.5", "--json", str(tmp_path),
                           "--log", str(tmp_path / "l.jsonl")], capsys)
    assert "--json" in line and "is a directory" in line
    assert not (tmp_path / "l.jsonl").exists()


@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_suite_reports_are_checked_before_the_suite_runs(tmp_path, capsys, option):
    line = one_line_error(["conformance", "builtin", "--ops", "^add$", option, str(tmp_path)], capsys)
    assert option in line and "is a directory" in line


def test_onnx_agreement_json_is_a_directory(tmp_path, capsys):
    line = one_line_error(["conformance", "onnx-agreement", "kws", "--json", str(tmp_path)], capsys)
    assert "--json" in line


def test_suite_report_is_written_atomically(tmp_path, capsys, monkeypatch):
    """--json/--junit go through a temporary file and a rename: a failing writer leaves the old report."""
    from tosac.conformance import results as res

    report = tmp_path / "r.json"
    report.write_text("old")

    def failing(results, path, meta):
        Path(path).write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(res, "write_json", failing)
    monkeypatch.setattr("tosac.conformance.builtin.run_cross", lambda *a: ([], {"host": 0.0}))
    line = one_line_error(["conformance", "builtin", "--json", str(report)], capsys)
    assert "No space left" in line
    assert report.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_closed_stdout_pipe_exits_quietly(model_file):
    """tosac inspect MODEL | head -1: the reader goes away; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "tosac.app.cli", "inspect", str(model_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                       # before the child writes anything: every write hits EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 141), err
    assert err == "", err


def test_head_of_inspect_through_a_shell(model_file):
    proc = subprocess.run(f"'{sys.executable}' -m tosac.app.cli inspect '{model_file}' | head -1",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("TOSA ") and proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


# Item 13: model paths that are not regular files -----------------------------------------------------------

@pytest.mark.parametrize("suffix", [".tosa", ".json", ".onnx"])
def test_fifo_model_is_refused_not_waited_for(tmp_path, suffix):
    fifo = tmp_path / f"model{suffix}"
    os.mkfifo(fifo)
    line = assert_one_line_exit_2(child(["inspect", str(fifo)], timeout=60))
    assert str(fifo) in line and "not a regular file" in line


@pytest.mark.parametrize("suffix", [".tosa", ".json", ".onnx"])
def test_dev_zero_model_is_refused(tmp_path, suffix):
    link = tmp_path / f"zero{suffix}"
    link.symlink_to("/dev/zero")
    line = assert_one_line_exit_2(child(["inspect", str(link)], timeout=60))
    assert str(link) in line


def test_fifo_is_refused_by_the_library_readers(tmp_path):
    for suffix in (".tosa", ".json"):
        fifo = tmp_path / f"m{suffix}"
        os.mkfifo(fifo)
        with pytest.raises(SerializationError, match="not a regular file"):
            load(fifo)                        # O_NONBLOCK open, then fstat: never blocks


def test_reads_are_bounded(model_file, monkeypatch):
    monkeypatch.setattr(files, "MAX_MODEL_BYTES", 100)
    with pytest.raises(SerializationError, match="more than a model may have"):
        read_tosa(model_file)


def test_directory_model_is_refused(tmp_path, capsys):
    (tmp_path / "d.tosa").mkdir()
    line = one_line_error(["inspect", str(tmp_path / "d.tosa")], capsys)
    assert "not a regular file" in line


# Item 16: options, names and extensions --------------------------------------------------------------------

@pytest.mark.parametrize("option", [["--input-shape", "x=1,16,16,8"], ["--io", "float"]])
def test_onnx_options_on_a_tosa_model_are_refused(model_file, capsys, option):
    line = one_line_error(["inspect", str(model_file), *option], capsys)
    assert f"{option[0]} applies to ONNX models only" in line


def test_unknown_bundled_name(capsys):
    line = one_line_error(["run", "resnet152x"], capsys)
    assert "unknown model 'resnet152x'; bundled models are: kws, vww, ic, ad" in line
    assert ".tosa" in line and ".json" in line and ".onnx" in line
    assert "extension" not in line


@pytest.mark.parametrize("exists", [False, True])
def test_unknown_extension_lists_every_format(tmp_path, capsys, exists):
    path = tmp_path / "x.pt"
    if exists:
        path.write_bytes(b"PK\x03\x04")
    line = one_line_error(["run", str(path)], capsys)
    assert "unknown model file extension '.pt'" in line
    assert all(ext in line for ext in (".onnx", ".tflite", ".tosa", ".json")), line


def test_tosa_cts_seed_seeds_only_the_positive_tests(tmp_path, monkeypatch):
    """The generator selects ERROR_IF tests by their default-seed names: a seeded run generates them unseeded."""
    from tosac.conformance import tosa_cts

    calls: list[list[str]] = []

    def fake_run(cmd, cwd, what, tools):
        calls.append(cmd)
        out = Path(cmd[cmd.index("--output-directory") + 1]) / "operators" / "add" / f"add_{len(calls)}"
        out.mkdir(parents=True)
        (out / "desc.json").write_text("{}")

    monkeypatch.setenv("TOSAC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tosa_cts, "_run", fake_run)
    monkeypatch.setattr("importlib.metadata.version", lambda name: "0")
    tools = tosa_cts.Tools(tmp_path, tmp_path / "lib.so")
    dirs = tosa_cts.generate_full(tools, ["add"], 3, 1)
    assert len(calls) == 2 and len(dirs) == 2
    positive, negative = calls
    assert positive[positive.index("--test-type") + 1] == "positive"
    assert positive[positive.index("--seed") + 1] == "3"
    assert negative[negative.index("--test-type") + 1] == "negative" and "--seed" not in negative

    calls.clear()
    tosa_cts.generate_full(tools, ["add"], None, 1)
    assert len(calls) == 1 and "--seed" not in calls[0]


@pytest.mark.slow
def test_tosa_cts_with_a_seed_runs_negative_tests(require_tosa_tools, tmp_path, monkeypatch):
    from tosac.conformance.tosa_cts import run_cts

    monkeypatch.setenv("TOSAC_CACHE_DIR", str(tmp_path))
    results = run_cts(ops_regex="^add$", seed=3, per_op=4, jobs=1)
    assert any(r.negative for r in results) and any(not r.negative for r in results)
    assert all(r.outcome == "passed" for r in results), [(r.name, r.message) for r in results]

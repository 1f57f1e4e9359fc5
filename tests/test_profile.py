"""`tosac profile` (issue 18 item 4): per-kernel time, GOPS and % of peak that add up to the model run."""
from __future__ import annotations

import json

import pytest

import tosac
from tosac.app.cli import main
from tosac.app.profile import profile_graph
from tosac.errors import UnsupportedError
from tosac.ir.random_inputs import random_inputs


def test_profile_accounts_for_every_kernel_of_a_run():
    graph = tosac.models.load("kws")
    report = profile_graph(graph, random_inputs(graph.input_types(), 0), "kws", threads=2, seconds=0.005)
    compiled = tosac.compile(graph, "host", threads=2).program.info["kernels"]
    assert {k.kernel for k in report.kernels} <= {k.name for k in compiled}
    assert len(report.kernels) >= len([k for k in compiled if k.mac_count]) > 0
    assert abs(sum(k.share for k in report.kernels) - 1) < 1e-9
    # Kernels timed alone and the whole run are separate measurements of the same work.
    assert 0.2 < report.kernel_seconds / report.run_seconds < 5
    convs = [k for k in report.kernels if k.macs]
    assert all(k.gops == pytest.approx(2 * k.macs / k.seconds / 1e9) for k in convs)
    assert any(k.threads == 2 for k in convs)
    text = report.table(top=5)
    assert "GOPS" in text and "in the other" in text and "by template" in text


def test_cli_profile_writes_json_and_a_plot(tmp_path, capsys):
    assert main(["profile", "kws", "--threads", "2", "--seconds", "0.002", "--top", "4",
                 "--json", str(tmp_path / "p.json"), "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "profile of kws" in out and "%peak" in out
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["threads"] == 2 and data["kernels"] and all(k["seconds"] > 0 for k in data["kernels"])
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_refuses_a_target_that_does_not_run_here(capsys):
    with pytest.raises(UnsupportedError, match="never under an emulator"):
        profile_graph(tosac.models.load("kws"), {}, target="aarch64")
    assert main(["profile", "kws", "--target", "armv7"]) == 2
    assert "does not run on this machine" in capsys.readouterr().err

"""The wheel built from the committed HEAD works once installed, away from the source tree.

The editable install the other tests use hides packaging mistakes: a module, a model file or a tuning log
missing from the wheel is still found in the checkout. Here the wheel of a clean clone is installed into a
fresh venv and used from a directory outside the repository. The heavy dependencies are not downloaded
again: a ``.pth`` line makes the project venv's site-packages visible; a plain path line does not run the
editable-install ``.pth`` files there, so the source tree stays invisible (the first test checks that).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folder -> folder in the wheel ([tool.setuptools.package-dir] of pyproject.toml).
PACKAGE_DIRS = {"compiler": "tosac", "ir": "tosac/ir", "schedules": "tosac/schedules", "runtime": "tosac/runtime",
                "tuning_logs": "tosac/tuning_logs"}


@dataclass(frozen=True)
class Installed:
    checkout: Path
    wheel: Path
    python: Path
    site_packages: Path
    outside: Path   # a working directory outside the repository


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, require_module) -> Installed:
    """The wheel of a clean clone of HEAD, installed with --no-deps into a fresh venv."""
    require_module("setuptools", extra="test")   # the build backend, run without build isolation
    require_module("wheel", extra="test")
    root = tmp_path_factory.mktemp("wheel")
    checkout = root / "checkout"
    _run(["git", "clone", "--quiet", str(REPO), str(checkout)], root)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "-w", str(root / "dist"), str(checkout)], root)
    wheel = next((root / "dist").glob("tosac-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], root)
    python = root / "venv" / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)], root)
    site_packages = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              root).strip())
    (site_packages / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = root / "elsewhere"
    outside.mkdir()
    return Installed(checkout, wheel, python, site_packages, outside)


def _in_venv(installed: Installed, code: str) -> dict:
    """Run ``code`` with the fresh venv's python outside the repository; it prints one JSON object last."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TOSAC_TUNING_LOGS")}
    out = _run([str(installed.python), "-c", code], installed.outside, env)
    return json.loads(out.strip().splitlines()[-1])


def _shipped_logs() -> dict[str, tuple[str, list[str]]]:
    """file name -> (target class, target names) of the tuning logs committed in tuning_logs/."""
    logs = {}
    for path in sorted((REPO / "tuning_logs").glob("*.jsonl")):
        targets = [json.loads(line)["target"] for line in path.read_text().splitlines() if line.strip()]
        classes = {t["class"] for t in targets}
        assert len(classes) == 1, f"{path.name} holds records of several target classes: {classes}"
        names = sorted({t["name"] for t in targets if t["name"] != "host"})   # 'host' is another class elsewhere
        logs[path.name] = (classes.pop(), names)
    assert logs, "no shipped tuning logs in tuning_logs/"
    return logs


def test_tosac_imports_from_the_venv_not_the_source_tree(installed: Installed) -> None:
    got = _in_venv(installed, "import json, sys, tosac, tosac.pipeline.driver as d; "
                              "print(json.dumps([tosac.__file__, d.__file__, tosac.__version__, "
                              "[m for m in sys.modules if m.startswith('__editable__')]]))")
    for path in got[:2]:
        assert Path(path).is_relative_to(installed.site_packages), f"{path} is not from the installed wheel"
        assert not Path(path).is_relative_to(REPO)
    assert got[2] == "0.1.0"
    assert not got[3], f"the project venv's editable install was loaded: {got[3]}"


def test_shipped_tuning_logs_are_found_in_the_installed_package(installed: Installed) -> None:
    for file_name, (klass, names) in _shipped_logs().items():
        assert names, f"{file_name} names no target but 'host'"
        got = _in_venv(installed, f"""
import json
from tosac.pipeline.tasks import target_class
from tosac.pipeline.tuned_configs import default_log_for
from tosac.targets import get_target
targets = [get_target(name) for name in {names!r}]
print(json.dumps([[target_class(t), str(default_log_for(t))] for t in targets]))
""")
        for (got_class, path), name in zip(got, names):
            assert got_class == klass, f"{name} is of class {got_class}, its records say {klass}"
            assert Path(path) == installed.site_packages / "tosac" / "tuning_logs" / file_name, name


_COMPILE = """
import json, tosac
from tosac.pipeline.tuned_configs import best_configs, default_log_for
from tosac.targets import get_target
target = get_target({name!r})
graph = tosac.models.load("kws")
best, _ = best_configs(graph, target, default_log_for(target))
tuned = tosac.compile(graph, target).program.info["kernels"]
default = tosac.compile(graph, target, tuning_log=False).program.info["kernels"]
print(json.dumps({{"best": best, "tuned": {{k.name: k.config for k in tuned}},
                  "default": {{k.name: k.config for k in default}}}}))
"""


def test_compile_uses_the_shipped_logs(installed: Installed) -> None:
    """For each shipped log, kws compiled for a target of its class takes the best records' configs.

    Compiling for a target the machine cannot run gives object code only, which is enough here.
    """
    for file_name, (_, names) in _shipped_logs().items():
        got = _in_venv(installed, _COMPILE.format(name=names[0]))
        assert got["best"], f"{file_name} has no record for any kernel of kws"
        tuned = [k for k, config in got["best"].items() if got["tuned"][k] == config]
        assert tuned, f"{names[0]}: no kernel compiled with its best record of {file_name}"
        assert any(got["default"][k] != got["tuned"][k] for k in tuned), \
            f"{names[0]}: the records of {file_name} equal the default configs, so this test proves nothing"


def test_wheel_holds_the_models_and_the_runner_source(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for model in sorted((REPO / "compiler" / "models" / "data").glob("*.onnx")):
        assert f"tosac/models/data/{model.name}" in names
    assert "tosac/runtime/c/runner.c" in names
    got = _in_venv(installed, "import json, tosac.models as m, tosac.runtime.cross as c; "
                              "print(json.dumps([str(m.path('kws')), str(c.RUNNER_SOURCE)]))")
    for path in map(Path, got):
        assert path.is_file() and path.is_relative_to(installed.site_packages), path


def test_wheel_holds_every_committed_module(installed: Installed) -> None:
    """A new subpackage must be added to ``packages`` in pyproject.toml, or it is silently left out."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    committed = _run(["git", "ls-files", "*.py"], installed.checkout).split()
    expected = {f"{PACKAGE_DIRS[path.split('/')[0]]}/{path.split('/', 1)[1]}"
                for path in committed if path.split("/")[0] in PACKAGE_DIRS}
    assert expected, "no committed module found under the package folders"
    assert not expected - names, f"committed modules missing from the wheel: {sorted(expected - names)}"

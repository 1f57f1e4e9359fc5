"""The official TOSA conformance tests, generated and checked by `tosa-tools`.

Generation and result checking are the official tools'; tosac is only the
system under test (see ``tosa_sut``). Two profiles (``PROFILES``):

* ``int``: ``tosa-pro-int`` with the int16, int4, doubleround, inexactround
  and controlflow extensions (3,657 tests), checked EXACT.
* ``fp``: ``tosa-pro-fp`` with the controlflow extension (fp32 and fp16
  tests, plus the integer and bool tests the profile shares), checked by the
  official compliance modes (ULP, ABS_ERROR, DOT_PRODUCT with bounds from the
  reference model's precise FP64 run, ...), never by a tolerance of ours.

Two sizes: ``full``, the whole generated suite of a profile, and ``sample``,
a seeded choice of ``per_op`` tests per operator from it — every operator,
positive and negative, in about a minute once the suite is generated (what
``make test`` runs).

The generated suites are cached (``$TOSAC_CACHE_DIR`` or ``~/.cache/tosac``):
generating the integer suite takes about 3 minutes on 2 cores, the float
suite takes longer (it is bigger).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tosac.conformance.results import CaseResult
from tosac.errors import ToolchainMissingError, TosacError

TOSA_VERSION = "1.0.2"
SUT_MODULE = "tosac.conformance.tosa_sut"

# Operators of the integer profile and its extensions in TOSA 1.0.2 (REDUCE_PRODUCT
# is float-only there), by the generator's (lower-case) names.
INT_OPERATORS = (
    "argmax avg_pool2d conv2d conv3d depthwise_conv2d matmul max_pool2d transpose_conv2d clamp add "
    "arithmetic_right_shift bitwise_and bitwise_or bitwise_xor intdiv logical_and logical_left_shift "
    "logical_right_shift logical_or logical_xor maximum minimum mul sub table abs bitwise_not clz "
    "logical_not negate select equal greater greater_equal reduce_all reduce_any reduce_max reduce_min "
    "reduce_sum concat pad reshape reverse slice tile transpose gather scatter resize cast "
    "rescale const identity cond_if while_loop"
).split()

# Operators the float profile generates tests for in TOSA 1.0.2 (with tosa-ext-controlflow). The
# integer and bool ops among them (intdiv, logical_*, reduce_all/any) come from the tests the two
# profiles share.
FP_OPERATORS = (
    "argmax avg_pool2d conv2d conv3d depthwise_conv2d matmul max_pool2d transpose_conv2d clamp erf sigmoid "
    "tanh add intdiv logical_and logical_left_shift logical_right_shift logical_or logical_xor maximum "
    "minimum mul pow sub abs ceil cos exp floor log logical_not negate reciprocal rsqrt sin select equal "
    "greater greater_equal reduce_all reduce_any reduce_max reduce_min reduce_product reduce_sum concat pad "
    "reshape reverse slice tile transpose gather scatter resize cast const identity cond_if while_loop"
).split()


@dataclass(frozen=True)
class Profile:
    """One official suite: what the generator and the runner are told, and the operators it covers."""
    key: str                        # the CLI's name for it
    name: str                       # the TOSA profile
    extensions: tuple[str, ...]
    operators: tuple[str, ...]

    def tool_args(self) -> list[str]:
        return ["--profile", self.name, "--extension", *self.extensions]


PROFILES = {
    "int": Profile("int", "tosa-pro-int", ("tosa-ext-int16", "tosa-ext-int4", "tosa-ext-doubleround",
                                           "tosa-ext-inexactround", "tosa-ext-controlflow"), tuple(INT_OPERATORS)),
    "fp": Profile("fp", "tosa-pro-fp", ("tosa-ext-controlflow",), tuple(FP_OPERATORS)),
}
# The integer suite's names, kept for callers that predate the float profile.
PROFILE = PROFILES["int"].name
EXTENSIONS = PROFILES["int"].extensions


def get_profile(key: str) -> Profile:
    try:
        return PROFILES[key]
    except KeyError:
        raise TosacError(f"unknown conformance profile '{key}'; choose one of {sorted(PROFILES)}") from None


@dataclass(frozen=True)
class Tools:
    """Where the tosa-tools executables and the generate library are."""
    bin_dir: Path
    generate_lib: Path

    def exe(self, name: str) -> str:
        return str(self.bin_dir / name)


def find_tools() -> Tools:
    """Locate tosa-tools in the running Python environment, or say how to install it."""
    try:
        import tosa_reference_model  # noqa: F401  (from tosa-tools)
    except ImportError:
        raise ToolchainMissingError(
            "the official TOSA tools are not installed: pip install 'tosac[conformance]' "
            "(PyPI package tosa-tools==2026.8.0)") from None
    lib = Path(tosa_reference_model.__file__).parent / "libtosa_reference_generate_lib.so"
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "tosa_verif_run_tests").exists() or not lib.exists():
        raise ToolchainMissingError(f"tosa-tools looks incomplete (no tosa_verif_run_tests in {bin_dir} "
                                    f"or no {lib.name}); reinstall the 'conformance' extra")
    return Tools(bin_dir, lib)


def select_operators(ops_regex: str | None, profile: Profile = PROFILES["int"]) -> list[str]:
    ops = [op for op in profile.operators if not ops_regex or re.search(ops_regex, op)]
    if not ops:
        raise TosacError(f"--ops '{ops_regex}' matches no operator of the {profile.key} profile; operators are: "
                         f"{' '.join(profile.operators)}")
    return ops


def _tool_env(tools: Tools) -> dict[str, str]:
    """The tosa-tools scripts call each other through PATH: put their folder first."""
    return dict(os.environ, PATH=os.pathsep.join([str(tools.bin_dir), os.environ.get("PATH", "")]),
                PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def _run(cmd: list[str], cwd: Path, what: str, tools: Tools) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_tool_env(tools))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise TosacError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd[:3])} ...\n{tail}")


def test_dirs_under(root: Path) -> list[Path]:
    """Every directory holding a desc.json below ``root``."""
    return sorted(p.parent for p in root.rglob("desc.json"))


def cache_root() -> Path:
    """Where generated suites are kept between runs (generation takes minutes)."""
    base = os.environ.get("TOSAC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tosac")
    return Path(base) / "tosa-cts"


def generate_full(tools: Tools, ops: list[str], seed: int | None, jobs: int,
                  profile: Profile = PROFILES["int"]) -> list[Path]:
    """The official conformance suite of ``profile`` for ``ops``, cached.

    ``seed`` None keeps the generator's own default data (the official suite).
    Another seed applies to the positive tests only: the generator selects its
    negative (ERROR_IF) tests by name from a list made with the default seed,
    and fails for every operator that has them when given another one; so the
    negative tests are the official ones, generated in a second run.
    The suite is generated into a temporary directory and renamed into the
    cache only when complete, so an interrupted generation never leaves a
    partial suite behind.
    """
    from importlib.metadata import version

    key = hashlib.sha256(" ".join([*profile.tool_args(), *sorted(ops)]).encode()).hexdigest()[:12]
    seed_tag = "default" if seed is None else f"{seed}-negdefault"
    suite = cache_root() / f"tosa-tools-{version('tosa-tools')}_v{TOSA_VERSION}_{profile.key}_seed{seed_tag}_{key}"
    if not (suite / "COMPLETE").exists():
        suite.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="generating-", dir=suite.parent))
        try:
            runs = [("both", None)] if seed is None else [("positive", seed), ("negative", None)]
            for test_type, run_seed in runs:
                cmd = [tools.exe("tosa_verif_conformance_generator"), *profile.tool_args(),
                       "--tosa-version", TOSA_VERSION, "--output-type", "binary",
                       "--generate-lib-path", str(tools.generate_lib),
                       "--build-directory", str(tmp / f"build-{test_type}"),
                       "--output-directory", str(tmp / "suite" / ("" if test_type == "both" else test_type)),
                       "-j", str(jobs),
                       "--test-type", test_type, "--operators", *ops]
                if run_seed is not None:
                    cmd += ["--seed", str(run_seed)]
                _run(cmd, tmp, "tosa_verif_conformance_generator", tools)
                shutil.rmtree(tmp / f"build-{test_type}", ignore_errors=True)
            (tmp / "suite").mkdir(exist_ok=True)
            (tmp / "suite" / "COMPLETE").write_text("generated by tosac\n")
            shutil.rmtree(suite, ignore_errors=True)
            (tmp / "suite").rename(suite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return test_dirs_under(suite)


def sample_tests(dirs: list[Path], seed: int, per_op: int) -> list[Path]:
    """A seeded choice of ``per_op`` tests per operator, half of them negative where possible."""
    rng = random.Random(seed)
    by_op: dict[str, list[Path]] = {}
    for d in dirs:
        by_op.setdefault(_op_of(d), []).append(d)
    chosen: list[Path] = []
    for op in sorted(by_op):
        neg = [d for d in by_op[op] if "_ERRORIF_" in d.name]
        pos = [d for d in by_op[op] if "_ERRORIF_" not in d.name]
        n_pos = min(len(pos), per_op - min(len(neg), per_op // 2))
        chosen += rng.sample(pos, n_pos) + rng.sample(neg, min(len(neg), per_op - n_pos))
    return sorted(chosen)


def copy_tests(dirs: list[Path], dest: Path) -> list[Path]:
    """Copy test directories: the runner writes result files into them."""
    copies = []
    for i, d in enumerate(dirs):
        target = dest / f"{i:05d}_{d.name}"
        shutil.copytree(d, target)
        copies.append(target)
    return copies


def run_tests(tools: Tools, dirs: list[Path], target: str, jobs: int, work: Path,
              profile: Profile = PROFILES["int"]) -> list[CaseResult]:
    """Run ``dirs`` through ``tosa_verif_run_tests`` with tosac as system under test."""
    test_list = work / "tests.txt"
    test_list.write_text("\n".join(str(d) for d in dirs) + "\n")
    xunit = work / "runner-result.xml"
    cmd = [tools.exe("tosa_verif_run_tests"), "--test-list", str(test_list), "--sut-module", SUT_MODULE,
           "--sut-module-args", f"{SUT_MODULE}:target={target}", "--xunit-file", str(xunit),
           "-j", str(jobs), *profile.tool_args()]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=_tool_env(tools))
    (work / "runner.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not xunit.exists():
        raise TosacError(f"tosa_verif_run_tests failed (exit {proc.returncode}); log in {work / 'runner.log'}:\n"
                         f"{(proc.stderr or proc.stdout)[-2000:]}")
    return parse_xunit(xunit, dirs)


def _op_of(test_dir: Path) -> str:
    try:
        return json.loads((test_dir / "desc.json").read_text())["test_details"]["operator"]
    except (OSError, KeyError, ValueError):
        return test_dir.name.split("_")[1].upper()


def parse_xunit(xunit: Path, dirs: list[Path]) -> list[CaseResult]:
    """Our SUT's results from the runner's xunit file, one per test directory."""
    by_name = {d.name: d for d in dirs}
    results = []
    for suite in ET.parse(xunit).getroot().iter("testsuite"):
        if suite.get("name") != SUT_MODULE:
            continue
        for case in suite.iter("testcase"):
            name = case.get("name", "")
            key = Path(name).name
            test_dir = by_name.get(key)
            failure = case.find("failure")
            skipped = case.find("skipped")
            if skipped is not None:
                outcome, message = "skipped", skipped.get("message") or (skipped.text or "")
            elif failure is not None:
                outcome, message = "failed", (failure.get("message") or "") + (failure.text or "")
            else:
                outcome, message = "passed", ""
            results.append(CaseResult(
                name=key.split("_", 1)[1] if re.match(r"^\d{5}_", key) else key,
                op=_op_of(test_dir) if test_dir else "?",
                negative="_ERRORIF_" in key, outcome=outcome, message=message.strip()[:2000]))
    return results


def run_cts(*, target: str = "reference", ops_regex: str | None = None, seed: int | None = None, jobs: int = 2,
            full: bool = False, per_op: int = 6, tests_dir: Path | None = None,
            keep: Path | None = None, profile: str = "int") -> list[CaseResult]:
    """Generate (or reuse ``tests_dir``), run and check the official tests of ``profile``; per-test results."""
    prof = get_profile(profile)
    tools = find_tools()
    ops = select_operators(ops_regex, prof)
    work = Path(tempfile.mkdtemp(prefix="tosac-cts-")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        if tests_dir is not None:
            dirs = [d for d in test_dirs_under(tests_dir) if _op_of(d).lower() in ops]
        else:
            dirs = generate_full(tools, ops, seed, jobs, prof)
        if not full:
            dirs = sample_tests(dirs, seed or 0, per_op)
        if not dirs:
            raise TosacError("no conformance tests were generated or found")
        copies = copy_tests(dirs, work / "run")
        return run_tests(tools, copies, target, jobs, work, prof)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)

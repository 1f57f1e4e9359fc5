"""The built-in conformance suite: hypothesis-generated graphs for every operator and fused pattern,
compiled for a target and compared bit for bit with the reference interpreter.

Cases are drawn once, from a seed, by hypothesis (``builtin_cases``). On the
host every case runs in process; on an ARM target all cases are linked into
one runner and run in one qemu process. ``run_cross`` runs the same cases on
several targets and also requires identical bits across them.
"""
from __future__ import annotations

import re
import time
from typing import Sequence

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings

from tosac.conformance.builtin_cases import OPS, Case, strategy
from tosac.conformance.results import CaseResult
from tosac.errors import TosacError, UnpredictableError, UnsupportedError
from tosac.ir.reference.interpreter import run as reference
from tosac.pipeline.driver import compile as compile_graph
from tosac.runtime.cross import run_batch
from tosac.targets import get_target


def select_ops(ops_regex: str | None) -> list[str]:
    ops = [op for op in OPS if not ops_regex or re.search(ops_regex, op.lower())]
    if not ops:
        raise TosacError(f"--ops '{ops_regex}' matches no operator; operators are: {' '.join(o.lower() for o in OPS)}")
    return ops


def generate(ops: Sequence[str], examples: int, seed_value: int) -> list[tuple[str, Case]]:
    """``examples`` cases per op drawn by hypothesis from ``seed_value`` (same seed, same cases)."""
    out: list[tuple[str, Case]] = []
    for op in ops:
        drawn: list[Case] = []

        @seed(seed_value)
        @settings(max_examples=examples, database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy(op))
        def collect(case: Case) -> None:
            drawn.append(case)

        collect()
        out.extend((f"{op.lower()}_{i}", case) for i, case in enumerate(drawn))
    return out


def _expected(case: Case) -> dict[str, np.ndarray] | None:
    try:
        return reference(case.graph, case.inputs)
    except UnpredictableError:
        return None


def _compare(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str:
    """Empty when identical (values, shape, dtype); else what differs."""
    for name, want in expected.items():
        have = got[name]
        if have.dtype != want.dtype or have.shape != want.shape:
            return f"{name}: got {have.dtype}{list(have.shape)}, expected {want.dtype}{list(want.shape)}"
        if not np.array_equal(have, want):
            bad = int(np.sum(have != want))
            return f"{name}: {bad} of {want.size} elements differ"
    return ""


def run_on_target(cases: Sequence[tuple[str, Case]], target: str) -> dict[str, dict[str, np.ndarray] | str]:
    """Outputs of each case on ``target`` (or the error text), batching ARM runs into one process."""
    tgt = get_target(target)
    results: dict[str, dict[str, np.ndarray] | str] = {}
    pending = []
    for name, case in cases:
        try:
            exe = compile_graph(case.graph, tgt)
            if tgt.is_host:
                results[name] = exe.run(case.inputs)
            else:
                pending.append((name, exe, exe.cross_run(case.inputs)))
        except UnsupportedError as e:
            results[name] = f"unsupported: {e}"
        except TosacError as e:
            results[name] = f"error: {type(e).__name__}: {e}"
    if pending:
        outputs = run_batch(tgt, [p[2] for p in pending])
        for (name, exe, _), outs in zip(pending, outputs):
            results[name] = dict(zip(exe.output_names, outs))
    return results


def run_cross(targets: Sequence[str], ops_regex: str | None = None, examples: int = 10, seed_value: int = 0
              ) -> tuple[list[CaseResult], dict[str, float]]:
    """Every case on every target: each must equal the reference, hence all are identical.

    Returns the results and the seconds spent per target (compile + run).
    """
    cases = generate(select_ops(ops_regex), examples, seed_value)
    expected = {name: _expected(case) for name, case in cases}
    runnable = [(name, case) for name, case in cases if expected[name] is not None]
    per_target, seconds = {}, {}
    for target in targets:
        started = time.monotonic()
        per_target[target] = run_on_target(runnable, target)
        seconds[target] = time.monotonic() - started
    results = []
    for name, case in cases:
        op = case.op
        if expected[name] is None:
            results.append(CaseResult(name, op, False, "skipped", "reference result unpredictable (REQUIRE failed)"))
            continue
        problems = []
        unsupported = []
        for target in targets:
            got = per_target[target][name]
            if isinstance(got, str):
                (unsupported if got.startswith("unsupported") else problems).append(f"{target}: {got}")
            else:
                diff = _compare(got, expected[name])
                if diff:
                    problems.append(f"{target}: {diff}")
        if problems:
            results.append(CaseResult(name, op, False, "failed", "; ".join(problems)))
        elif unsupported:
            results.append(CaseResult(name, op, False, "skipped", "; ".join(unsupported)))
        else:
            results.append(CaseResult(name, op, False, "passed"))
    return results, seconds

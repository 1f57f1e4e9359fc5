"""The official TOSA conformance tests on the reference interpreter and on compiled code.

The default run covers a seeded sample of every integer-profile operator
(positive and ERROR_IF tests, small shapes) on the reference interpreter, the
host, AArch64 and ARMv7 (under qemu). The whole suite runs per target with
``TOSAC_FULL_CTS=1`` (or ``make test-full``): every test must pass.
"""
from __future__ import annotations

import os

import pytest

from tosac.conformance.results import format_table, summary_line
from tosac.conformance.tosa_cts import INT_OPERATORS, run_cts


@pytest.fixture(scope="module", params=["reference", "host", "aarch64", "armv7"])
def sample_results(request, require_tosa_tools, require_cross):
    if request.param in ("aarch64", "armv7"):
        require_cross(request.param)
    return run_cts(target=request.param, seed=None, full=False, per_op=4, jobs=2)


def test_sample_covers_every_operator(sample_results):
    covered = {r.op.lower() for r in sample_results}
    missing = set(INT_OPERATORS) - covered
    assert not missing, f"no sampled conformance test for {sorted(missing)}"


def test_sample_all_pass(sample_results):
    failed = [r for r in sample_results if r.outcome != "passed"]
    assert not failed, format_table(sample_results)
    assert summary_line(sample_results).startswith(f"{len(sample_results)} passed")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TOSAC_FULL_CTS"), reason="the full suite runs with TOSAC_FULL_CTS=1")
@pytest.mark.parametrize("target", ["reference", "host", "x86_64", "aarch64", "armv7"])
def test_full_suite(require_tosa_tools, require_cross, target):
    if target in ("aarch64", "armv7"):
        require_cross(target)
    results = run_cts(target=target, full=True, jobs=2)
    failed = [r for r in results if r.outcome != "passed"]
    assert not failed, format_table(results)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TOSAC_FULL_CTS"), reason="the full suite runs with TOSAC_FULL_CTS=1")
@pytest.mark.parametrize("target", ["reference", "host"])
def test_full_float_suite(require_tosa_tools, target):
    """tosa-pro-fp: fp32 and fp16 tests checked by the official compliance modes (ULP, ABS_ERROR, DOT_PRODUCT)."""
    results = run_cts(target=target, full=True, jobs=2, profile="fp")
    failed = [r for r in results if r.outcome != "passed"]
    assert not failed, format_table(results)


def test_unknown_profile_is_a_typed_error():
    from tosac.conformance.tosa_cts import get_profile
    from tosac.errors import TosacError

    with pytest.raises(TosacError, match="unknown conformance profile 'bf16'"):
        get_profile("bf16")

"""Shared pytest setup.

Tests that need an optional tool (tosa-tools, later qemu and the cross gcc)
call ``require(...)``: on a user's machine without the tool they skip with the
reason; under CI (CI=true) a missing tool is a failure, never a silent skip.
"""
from __future__ import annotations

import os

import pytest


def require_tool(available: bool, what: str, how: str) -> None:
    if available:
        return
    message = f"{what} is not installed ({how})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def require_tosa_tools() -> None:
    from tosac.conformance.official_model import available

    require_tool(available(), "tosa-tools (the official TOSA reference model)", "pip install 'tosac[conformance]'")


@pytest.fixture(scope="session")
def require_cross():
    """``require_cross("aarch64")``: the cross gcc and qemu for that target, or skip (fail under CI)."""
    def check(target_name: str) -> None:
        from tosac.runtime.cross import available, toolchain
        from tosac.targets import get_target

        target = get_target(target_name)
        tools = toolchain(target)
        require_tool(available(target), f"{tools.gcc} / {tools.qemu}", f"apt-get install {' '.join(tools.packages)}")
    return check

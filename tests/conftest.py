"""Shared pytest setup.

Tests that need an optional tool (tosa-tools, qemu and the cross gcc, a Python
module of the `test` or `conformance` extra) call ``require_tool(...)`` or one of
the fixtures below: on a user's machine without the tool they skip with the
reason; under CI (CI=true) a missing tool is a failure, never a silent skip.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Callable

import pytest

# The extras CI installs (make test): the only ones whose modules `require_module` may ask for.
CI_EXTRAS = ("test", "conformance", "cluster")


def require_tool(available: bool, what: str, how: str) -> None:
    if available:
        return
    message = f"{what} is not installed ({how})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def require_module() -> Callable[[str, str], ModuleType]:
    """``require_module("onnxruntime", extra="test")``: the imported module, or skip (fail under CI).

    Only for modules of the extras CI installs (``CI_EXTRAS``), so that a missing one is a CI failure.
    """
    def check(name: str, extra: str) -> ModuleType:
        assert extra in CI_EXTRAS, f"require_module is for the extras CI installs {CI_EXTRAS}, not {extra!r}"
        try:
            return importlib.import_module(name)
        except ImportError as e:
            require_tool(False, f"the Python module {name} ({e})", f"pip install 'tosac[{extra}]'")
            raise
    return check


@pytest.fixture(scope="module")
def litert(require_module) -> ModuleType:
    """LiteRT's interpreter module (``ai-edge-litert``, the test extra): the law for TFLite models."""
    return require_module("ai_edge_litert.interpreter", extra="test")


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


_C_MODEL_MAIN = r"""
#include <stdio.h>
#include "model.h"
{prelude}
static unsigned char arena[MODEL_ARENA_BYTES] __attribute__((aligned(64)));
int main(int argc, char **argv) {{
    static signed char x[MODEL_INPUT_0_BYTES], y[MODEL_OUTPUT_0_BYTES];
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(x, 1, sizeof x, f) != sizeof x) return 3;
    fclose(f);
    const void *inputs[MODEL_NUM_INPUTS] = {{x}};
    void *outputs[MODEL_NUM_OUTPUTS] = {{y}};
    if ({call} != 0) return 4;
    {after}
    f = fopen(argv[2], "wb");
    fwrite(y, 1, sizeof y, f);
    fclose(f);
    return 0;
}}
"""


@pytest.fixture
def c_model_main() -> Callable[..., str]:
    """``c_model_main(call, prelude="", after="")``: a C program for a one-input, one-output int8 model whose
    ``model.h`` tosac wrote: it reads argv[1] into the input, evaluates ``call`` (over ``inputs``, ``outputs``,
    ``arena``; nonzero is a failure), runs ``after`` and writes the output to argv[2]."""
    def source(call: str, prelude: str = "", after: str = "") -> str:
        return _C_MODEL_MAIN.format(call=call, prelude=prelude, after=after)
    return source

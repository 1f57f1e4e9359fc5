"""tosac: a tensor compiler for quantized neural networks with exact TOSA integer semantics.

Importing ``tosac`` (or ``tosac.ir``) loads only the error types: ``tosac.compile``
and the subpackages (``tosac.tune``, ``tosac.models``, ...) load on first use, so
the IR and the reference interpreter never pull in llvmlite or the compiler.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tosac.errors import (
    CodegenError,
    FrontendError,
    InterpreterError,
    PruneError,
    SerializationError,
    TosacError,
    ToolchainMissingError,
    TuningError,
    UnpredictableError,
    UnsupportedError,
    VerificationError,
)
from tosac.version import __version__

if TYPE_CHECKING:
    from tosac.pipeline.driver import compile

# Subpackages reachable as attributes after a bare ``import tosac`` (``tosac.models.load("kws")``).
_SUBPACKAGES = {"app", "conformance", "frontends", "ir", "lower", "models", "passes", "pipeline", "prune",
                "runtime", "schedules", "tune", "tuning_logs"}

__all__ = [
    "TosacError", "VerificationError", "UnsupportedError", "SerializationError",
    "InterpreterError", "UnpredictableError", "FrontendError", "CodegenError",
    "ToolchainMissingError", "TuningError", "PruneError", "__version__", "compile",
]


def __getattr__(name: str) -> Any:
    """``tosac.compile`` and the subpackages, imported on first use."""
    if name == "compile":
        from tosac.pipeline.driver import compile
        return compile
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tosac.{name}")
    raise AttributeError(f"module 'tosac' has no attribute {name!r}")

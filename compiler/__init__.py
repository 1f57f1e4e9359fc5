"""tosac: a tensor compiler for quantized neural networks with exact TOSA integer semantics."""
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

__version__ = "0.1.0"

__all__ = [
    "TosacError", "VerificationError", "UnsupportedError", "SerializationError",
    "InterpreterError", "UnpredictableError", "FrontendError", "CodegenError",
    "ToolchainMissingError", "TuningError", "PruneError", "__version__",
]
from tosac.driver import compile  # noqa: E402

__all__.append("compile")

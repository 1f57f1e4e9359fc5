"""The one error hierarchy of tosac.

Every failure a user can cause (a bad file, an invalid graph, an unsupported
op, a missing toolchain) raises a subclass of :class:`TosacError` whose message
says what was wrong, where, and what to do about it.
"""
from __future__ import annotations


class TosacError(Exception):
    """Root of every error tosac raises on purpose."""


class VerificationError(TosacError):
    """A graph breaks a rule of the TOSA specification (an ERROR_IF condition).

    ``op`` names the operator (e.g. ``"CONV2D#3"``), ``operand`` the operand or
    attribute involved, ``rule`` the violated condition.
    """

    def __init__(self, op: str, operand: str | None, rule: str):
        self.op, self.operand, self.rule = op, operand, rule
        where = f"{op}" + (f", operand '{operand}'" if operand else "")
        super().__init__(f"{where}: {rule}")


class UnsupportedError(TosacError):
    """An op, dtype or feature that tosac does not (yet) implement."""


class SerializationError(TosacError):
    """A model file (TOSA flatbuffer, JSON) is malformed or cannot be written."""


class InterpreterError(TosacError):
    """The reference interpreter cannot run a graph (e.g. missing input)."""


class UnpredictableError(TosacError):
    """A REQUIRE condition of the spec failed: the result is unpredictable.

    Not a graph error: the graph is valid, but these input values have no
    defined result (e.g. int32 ADD overflow).
    """


class FrontendError(TosacError):
    """A model from another framework (ONNX) cannot be imported."""


class CodegenError(TosacError):
    """Lowering or LLVM code generation failed."""


class ToolchainMissingError(TosacError):
    """A cross compiler or qemu binary is missing; the message names the package."""


class TuningError(TosacError):
    """A tuning job or tuning log problem (e.g. unknown log schema version)."""


class NoMeasuringMachineError(TuningError):
    """No machine can time a target's code natively (no matching host or cluster worker, or all were lost):
    the whole job stops, since emulator times are not measurements."""


class PruneError(TosacError):
    """A pruning request cannot be carried out (bad pattern or sparsity, unknown or unprunable layer)."""

"""The operator set: operand order, result names and attributes of every op.

This table follows the TOSA 1.0 specification (``tosa.xml``): operand names and
order are the spec's, attribute names are the spec's. Operands marked in
``shape_operands`` are SHAPE-typed values produced by CONST_SHAPE. A variadic
operand is written with a leading ``*`` and must be last.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from tosac.ir.dtypes import DType


class NanMode(enum.Enum):
    """How MAXIMUM, MINIMUM, CLAMP, ARGMAX, REDUCE_MAX/MIN treat NaN (float only)."""
    PROPAGATE = 1
    IGNORE = 2


class RoundingMode(enum.Enum):
    """RESCALE rounding: SINGLE_ROUND is the base profile; DOUBLE_ROUND is what
    TFLite/CMSIS-NN use (``tosa-ext-doubleround``); INEXACT_ROUND may be either."""
    SINGLE_ROUND = 1
    INEXACT_ROUND = 2
    DOUBLE_ROUND = 3


class ResizeMode(enum.Enum):
    NEAREST = 1
    BILINEAR = 2


class AttrKind(enum.Enum):
    INT = "int"
    BOOL = "bool"
    INTS = "ints"          # tuple of int32
    DTYPE = "dtype"
    NAN_MODE = "nan_mode"
    ROUNDING_MODE = "rounding_mode"
    RESIZE_MODE = "resize_mode"
    SCALAR = "scalar"      # a value of the input's element type (CLAMP bounds)
    STRING = "string"      # a subgraph name (control flow)


@dataclass(frozen=True)
class AttrSpec:
    kind: AttrKind
    default: Any = None     # None: required


@dataclass(frozen=True)
class OpSchema:
    name: str
    operands: tuple[str, ...]
    results: tuple[str, ...] = ("output",)
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    shape_operands: frozenset[str] = frozenset()

    @property
    def variadic(self) -> bool:
        return bool(self.operands) and self.operands[-1].startswith("*")

    def attr(self, name: str) -> AttrSpec:
        return self.attrs[name]


_I = AttrSpec(AttrKind.INT)
_B = AttrSpec(AttrKind.BOOL, False)
_INTS = AttrSpec(AttrKind.INTS)
_ACC = AttrSpec(AttrKind.DTYPE)
_NAN = AttrSpec(AttrKind.NAN_MODE, NanMode.PROPAGATE)
_CONV = {"pad": _INTS, "stride": _INTS, "dilation": _INTS, "acc_type": _ACC, "local_bound": _B}
_CONV_OPERANDS = ("input", "weight", "bias", "input_zp", "weight_zp")

SCHEMAS: dict[str, OpSchema] = {}


def _op(name: str, operands: tuple[str, ...], results: tuple[str, ...] = ("output",),
        shape_operands: tuple[str, ...] = (), **attrs: AttrSpec) -> None:
    SCHEMAS[name] = OpSchema(name, operands, results, dict(attrs), frozenset(shape_operands))


# tensor operators
_op("ARGMAX", ("input",), axis=_I, nan_mode=_NAN)
_op("AVG_POOL2D", ("input", "input_zp", "output_zp"), kernel=_INTS, stride=_INTS, pad=_INTS, acc_type=_ACC)
_op("CONV2D", _CONV_OPERANDS, **_CONV)
_op("CONV3D", _CONV_OPERANDS, **_CONV)
_op("DEPTHWISE_CONV2D", _CONV_OPERANDS, **_CONV)
_op("MATMUL", ("A", "B", "A_zp", "B_zp"))
_op("MAX_POOL2D", ("input",), kernel=_INTS, stride=_INTS, pad=_INTS, nan_mode=_NAN)
_op("TRANSPOSE_CONV2D", _CONV_OPERANDS, out_pad=_INTS, stride=_INTS, acc_type=_ACC, local_bound=_B)
# activation
_op("CLAMP", ("input",), min_val=AttrSpec(AttrKind.SCALAR), max_val=AttrSpec(AttrKind.SCALAR), nan_mode=_NAN)
for _name in ("ERF", "SIGMOID", "TANH"):
    _op(_name, ("input",))
# elementwise binary
for _name in ("ADD", "SUB", "BITWISE_AND", "BITWISE_OR", "BITWISE_XOR", "INTDIV", "LOGICAL_AND",
              "LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT", "LOGICAL_OR", "LOGICAL_XOR", "POW"):
    _op(_name, ("input1", "input2"))
_op("ARITHMETIC_RIGHT_SHIFT", ("input1", "input2"), round=_B)
_op("MAXIMUM", ("input1", "input2"), nan_mode=_NAN)
_op("MINIMUM", ("input1", "input2"), nan_mode=_NAN)
_op("MUL", ("input1", "input2", "shift"))
_op("TABLE", ("input1", "table"))
# elementwise unary
for _name in ("ABS", "BITWISE_NOT", "CEIL", "CLZ", "COS", "EXP", "FLOOR", "LOG", "LOGICAL_NOT",
              "RECIPROCAL", "RSQRT", "SIN"):
    _op(_name, ("input1",))
_op("NEGATE", ("input1", "input1_zp", "output_zp"))
# ternary, comparison
_op("SELECT", ("input1", "input2", "input3"))
for _name in ("EQUAL", "GREATER", "GREATER_EQUAL"):
    _op(_name, ("input1", "input2"))
# reduction
for _name in ("REDUCE_ALL", "REDUCE_ANY", "REDUCE_PRODUCT", "REDUCE_SUM"):
    _op(_name, ("input",), axis=_I)
_op("REDUCE_MAX", ("input",), axis=_I, nan_mode=_NAN)
_op("REDUCE_MIN", ("input",), axis=_I, nan_mode=_NAN)
# data layout
_op("CONCAT", ("*input1",), axis=_I)
_op("PAD", ("input1", "padding", "pad_const"), shape_operands=("padding",))
_op("RESHAPE", ("input1", "shape"), shape_operands=("shape",))
_op("REVERSE", ("input1",), axis=_I)
_op("SLICE", ("input1", "start", "size"), shape_operands=("start", "size"))
_op("TILE", ("input1", "multiples"), shape_operands=("multiples",))
_op("TRANSPOSE", ("input1",), perms=_INTS)
# scatter/gather
_op("GATHER", ("values", "indices"))
_op("SCATTER", ("values_in", "indices", "input"), results=("values_out",))
# image
_op("RESIZE", ("input", "scale", "offset", "border"), shape_operands=("scale", "offset", "border"),
    mode=AttrSpec(AttrKind.RESIZE_MODE))
# type conversion
_op("CAST", ("input",))
_op("RESCALE", ("input", "multiplier", "shift", "input_zp", "output_zp"),
    scale32=_B, rounding_mode=AttrSpec(AttrKind.ROUNDING_MODE, RoundingMode.SINGLE_ROUND),
    per_channel=_B, input_unsigned=_B, output_unsigned=_B)
# data nodes
_op("CONST", ())
_op("CONST_SHAPE", ())
_op("IDENTITY", ("input1",))
# control flow (tosa-ext-controlflow)
_op("COND_IF", ("condition", "*input_list"), results=("*output_list",),
    then_graph=AttrSpec(AttrKind.STRING), else_graph=AttrSpec(AttrKind.STRING))
_op("WHILE_LOOP", ("*input_list",), results=("*output_list",),
    cond_graph=AttrSpec(AttrKind.STRING), body_graph=AttrSpec(AttrKind.STRING))

FLOAT_ONLY_OPS = frozenset({"ERF", "SIGMOID", "TANH", "POW", "CEIL", "COS", "EXP", "FLOOR", "LOG",
                            "RECIPROCAL", "RSQRT", "SIN"})


def schema(name: str) -> OpSchema:
    """The schema of op ``name``; raises UnsupportedError for unknown ops."""
    from tosac.errors import UnsupportedError

    try:
        return SCHEMAS[name]
    except KeyError:
        raise UnsupportedError(f"unknown operator '{name}'; tosac knows {len(SCHEMAS)} TOSA operators "
                               f"(see tosac.ir.ops.SCHEMAS)") from None


def default_acc_type(input_dtype: DType) -> DType:
    """The accumulator the spec pairs with an input type (int8→int32, int16→int48)."""
    return {DType.INT8: DType.INT32, DType.INT4: DType.INT32, DType.INT16: DType.INT48,
            DType.FP16: DType.FP16, DType.BF16: DType.FP32, DType.FP32: DType.FP32}[input_dtype]

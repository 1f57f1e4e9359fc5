"""The operator set: operand order, result names and attributes of every op.

This table follows the TOSA 1.0 specification (``tosa.xml``): operand names and
order are the spec's, attribute names are the spec's. Operands marked in
``shape_operands`` are SHAPE-typed values produced by CONST_SHAPE. A variadic
operand is written with a leading ``*`` and must be last.

Each op also carries what the compiler needs to know about it in general: its
category (element-wise, data movement, reduction, ...), how many leading
operands are data rather than parameters, and whether it is float-only. Passes,
lowering, the verifier and the interpreter read these fields; none keeps its
own list of op names for them.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from tosac.errors import UnsupportedError
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


class OpCategory(enum.Enum):
    """What kind of computation an op is; fusion, folding, lowering and the interpreter dispatch on it."""
    TENSOR = "tensor"                  # convolutions, matmul, pooling: windows or dot products per output
    ELEMENTWISE = "elementwise"        # each output element from the data elements at the same position
    REDUCTION = "reduction"            # REDUCE_* and ARGMAX: one axis reduced to size 1 (or dropped)
    DATA_MOVEMENT = "data_movement"    # layout, gather and resize: each output element read from input
    SCATTER = "scatter"                # writes input rows at positions read at run time
    CONSTANT = "constant"              # CONST, CONST_SHAPE: values held by the graph
    CONTROL_FLOW = "control_flow"      # COND_IF, WHILE_LOOP: run other blocks


@dataclass(frozen=True)
class OpSchema:
    name: str
    category: OpCategory
    operands: tuple[str, ...]
    results: tuple[str, ...] = ("output",)
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    shape_operands: frozenset[str] = frozenset()
    # How many leading operands are data; the rest are parameters (zero points, shifts, tables, shapes).
    # None for a variadic op: all of its operands are data.
    data_operands: int | None = None
    float_only: bool = False           # defined for floating-point types only (float profile)

    @property
    def variadic(self) -> bool:
        return bool(self.operands) and self.operands[-1].startswith("*")

    def attr(self, name: str) -> AttrSpec:
        return self.attrs[name]

    def data_inputs(self, inputs: list[str]) -> list[str]:
        """The data operands among an op's ``inputs`` (element-wise fusion chains through these only)."""
        return list(inputs) if self.data_operands is None else list(inputs[:self.data_operands])


_I = AttrSpec(AttrKind.INT)
_B = AttrSpec(AttrKind.BOOL, False)
_INTS = AttrSpec(AttrKind.INTS)
_ACC = AttrSpec(AttrKind.DTYPE)
_NAN = AttrSpec(AttrKind.NAN_MODE, NanMode.PROPAGATE)
_CONV = {"pad": _INTS, "stride": _INTS, "dilation": _INTS, "acc_type": _ACC, "local_bound": _B}
_CONV_OPERANDS = ("input", "weight", "bias", "input_zp", "weight_zp")

SCHEMAS: dict[str, OpSchema] = {}


def _op(name: str, category: OpCategory, operands: tuple[str, ...], results: tuple[str, ...] = ("output",),
        shape_operands: tuple[str, ...] = (), data: int | None = None, float_only: bool = False,
        **attrs: AttrSpec) -> None:
    """Register op ``name``; ``data`` defaults to every operand (none for a variadic op)."""
    if data is None and not (operands and operands[-1].startswith("*")):
        data = len(operands)
    SCHEMAS[name] = OpSchema(name, category, operands, results, dict(attrs), frozenset(shape_operands), data,
                             float_only)


def ops_in(category: OpCategory) -> frozenset[str]:
    """The names of the ops of ``category``."""
    return frozenset(name for name, s in SCHEMAS.items() if s.category is category)


_TEN, _EW, _RED = OpCategory.TENSOR, OpCategory.ELEMENTWISE, OpCategory.REDUCTION
_MOVE = OpCategory.DATA_MOVEMENT


# tensor operators
_op("ARGMAX", _RED, ("input",), axis=_I, nan_mode=_NAN)
_op("AVG_POOL2D", _TEN, ("input", "input_zp", "output_zp"), data=1, kernel=_INTS, stride=_INTS, pad=_INTS,
    acc_type=_ACC)
_op("CONV2D", _TEN, _CONV_OPERANDS, data=3, **_CONV)
_op("CONV3D", _TEN, _CONV_OPERANDS, data=3, **_CONV)
_op("DEPTHWISE_CONV2D", _TEN, _CONV_OPERANDS, data=3, **_CONV)
_op("MATMUL", _TEN, ("A", "B", "A_zp", "B_zp"), data=2)
_op("MAX_POOL2D", _TEN, ("input",), kernel=_INTS, stride=_INTS, pad=_INTS, nan_mode=_NAN)
_op("TRANSPOSE_CONV2D", _TEN, _CONV_OPERANDS, data=3, out_pad=_INTS, stride=_INTS, acc_type=_ACC, local_bound=_B)
# activation
_op("CLAMP", _EW, ("input",), min_val=AttrSpec(AttrKind.SCALAR), max_val=AttrSpec(AttrKind.SCALAR), nan_mode=_NAN)
for _name in ("ERF", "SIGMOID", "TANH"):
    _op(_name, _EW, ("input",), float_only=True)
# elementwise binary
for _name in ("ADD", "SUB", "BITWISE_AND", "BITWISE_OR", "BITWISE_XOR", "INTDIV", "LOGICAL_AND",
              "LOGICAL_LEFT_SHIFT", "LOGICAL_RIGHT_SHIFT", "LOGICAL_OR", "LOGICAL_XOR"):
    _op(_name, _EW, ("input1", "input2"))
_op("POW", _EW, ("input1", "input2"), float_only=True)
_op("ARITHMETIC_RIGHT_SHIFT", _EW, ("input1", "input2"), round=_B)
_op("MAXIMUM", _EW, ("input1", "input2"), nan_mode=_NAN)
_op("MINIMUM", _EW, ("input1", "input2"), nan_mode=_NAN)
_op("MUL", _EW, ("input1", "input2", "shift"), data=2)
_op("TABLE", _EW, ("input1", "table"), data=1)
# elementwise unary
for _name in ("ABS", "BITWISE_NOT", "CLZ", "LOGICAL_NOT"):
    _op(_name, _EW, ("input1",))
for _name in ("CEIL", "COS", "EXP", "FLOOR", "LOG", "RECIPROCAL", "RSQRT", "SIN"):
    _op(_name, _EW, ("input1",), float_only=True)
_op("NEGATE", _EW, ("input1", "input1_zp", "output_zp"), data=1)
# ternary, comparison
_op("SELECT", _EW, ("input1", "input2", "input3"))
for _name in ("EQUAL", "GREATER", "GREATER_EQUAL"):
    _op(_name, _EW, ("input1", "input2"))
# reduction
for _name in ("REDUCE_ALL", "REDUCE_ANY", "REDUCE_SUM"):
    _op(_name, _RED, ("input",), axis=_I)
_op("REDUCE_PRODUCT", _RED, ("input",), axis=_I, float_only=True)
_op("REDUCE_MAX", _RED, ("input",), axis=_I, nan_mode=_NAN)
_op("REDUCE_MIN", _RED, ("input",), axis=_I, nan_mode=_NAN)
# data layout
_op("CONCAT", _MOVE, ("*input1",), axis=_I)
_op("PAD", _MOVE, ("input1", "padding", "pad_const"), shape_operands=("padding",), data=1)
_op("RESHAPE", _MOVE, ("input1", "shape"), shape_operands=("shape",), data=1)
_op("REVERSE", _MOVE, ("input1",), axis=_I)
_op("SLICE", _MOVE, ("input1", "start", "size"), shape_operands=("start", "size"), data=1)
_op("TILE", _MOVE, ("input1", "multiples"), shape_operands=("multiples",), data=1)
_op("TRANSPOSE", _MOVE, ("input1",), perms=_INTS)
# scatter/gather
_op("GATHER", _MOVE, ("values", "indices"))
_op("SCATTER", OpCategory.SCATTER, ("values_in", "indices", "input"), results=("values_out",))
# image
_op("RESIZE", _MOVE, ("input", "scale", "offset", "border"), shape_operands=("scale", "offset", "border"), data=1,
    mode=AttrSpec(AttrKind.RESIZE_MODE))
# type conversion
_op("CAST", _EW, ("input",))
_op("RESCALE", _EW, ("input", "multiplier", "shift", "input_zp", "output_zp"), data=1,
    scale32=_B, rounding_mode=AttrSpec(AttrKind.ROUNDING_MODE, RoundingMode.SINGLE_ROUND),
    per_channel=_B, input_unsigned=_B, output_unsigned=_B)
# data nodes
_op("CONST", OpCategory.CONSTANT, ())
_op("CONST_SHAPE", OpCategory.CONSTANT, ())
_op("IDENTITY", _MOVE, ("input1",))
# control flow (tosa-ext-controlflow)
_op("COND_IF", OpCategory.CONTROL_FLOW, ("condition", "*input_list"), results=("*output_list",),
    then_graph=AttrSpec(AttrKind.STRING), else_graph=AttrSpec(AttrKind.STRING))
_op("WHILE_LOOP", OpCategory.CONTROL_FLOW, ("*input_list",), results=("*output_list",),
    cond_graph=AttrSpec(AttrKind.STRING), body_graph=AttrSpec(AttrKind.STRING))

#: The float-only element-wise ops (ERF, SIGMOID, ..., POW): plain float math, one shared kernel each side.
FLOAT_MATH_OPS = frozenset(name for name, s in SCHEMAS.items() if s.float_only and s.category is _EW)


def schema(name: str) -> OpSchema:
    """The schema of op ``name``; raises UnsupportedError for unknown ops."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise UnsupportedError(f"unknown operator '{name}'; tosac knows {len(SCHEMAS)} TOSA operators "
                               f"(see tosac.ir.ops.SCHEMAS)") from None


def default_acc_type(input_dtype: DType) -> DType:
    """The accumulator the spec pairs with an input type (int8→int32, int16→int48)."""
    return {DType.INT8: DType.INT32, DType.INT4: DType.INT32, DType.INT16: DType.INT48,
            DType.FP16: DType.FP16, DType.BF16: DType.FP32, DType.FP32: DType.FP32}[input_dtype]

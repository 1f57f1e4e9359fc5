"""Which element types each op accepts (TOSA 1.0 ``tosa.xml`` type-support tables).

Covers the integer profile with the int16 and int4 extensions and the float
profile with bf16. A combination outside these tables is a VerificationError.
"""
from __future__ import annotations

from tosac.errors import VerificationError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Op
from tosac.ir.ops import SCHEMAS

B, I4, I8, I16, I32, I48 = DType.BOOL, DType.INT4, DType.INT8, DType.INT16, DType.INT32, DType.INT48
U8, U16, F16, BF16, F32 = DType.UINT8, DType.UINT16, DType.FP16, DType.BF16, DType.FP32
FLOATS = (F16, BF16, F32)

# (input, weight, acc_type, output) of the convolutions
CONV_TYPES = {(I8, I8, I32, I32), (I8, I4, I32, I32), (I16, I8, I48, I48), (F16, F16, F16, F16),
              (F16, F16, F32, F16), (BF16, BF16, F32, BF16), (F32, F32, F32, F32)}
MATMUL_TYPES = {(I8, I32), (I16, I48), (F16, F16), (F16, F32), (BF16, F32), (F32, F32)}
RESCALE_IN = {I8, I16, I32, I48, U8, U16}
RESCALE_OUT = {I8, I16, I32, U8, U16}
RESIZE_TYPES = {(I8, I32, "BILINEAR"), (I8, I8, "NEAREST"), (I16, I48, "BILINEAR"), (I16, I16, "NEAREST"),
                (F16, F16, None), (BF16, BF16, None), (F32, F32, None)}

# Ops whose operands and result share one element type, and the types allowed.
SAME_TYPE: dict[str, tuple[DType, ...]] = {
    "CLAMP": (I8, I16, *FLOATS), "MAX_POOL2D": (I8, I16, *FLOATS), "AVG_POOL2D": (I8, I16, *FLOATS),
    "ADD": (I32, *FLOATS), "SUB": (I32, *FLOATS), "INTDIV": (I32,), "MAXIMUM": (I32, *FLOATS),
    "MINIMUM": (I32, *FLOATS), "ARITHMETIC_RIGHT_SHIFT": (I8, I16, I32), "BITWISE_AND": (I8, I16, I32),
    "BITWISE_OR": (I8, I16, I32), "BITWISE_XOR": (I8, I16, I32), "BITWISE_NOT": (I8, I16, I32),
    "LOGICAL_LEFT_SHIFT": (I8, I16, I32), "LOGICAL_RIGHT_SHIFT": (I8, I16, I32),
    "LOGICAL_AND": (B,), "LOGICAL_OR": (B,), "LOGICAL_XOR": (B,), "LOGICAL_NOT": (B,),
    "ABS": (I32, *FLOATS), "CLZ": (I32,), "NEGATE": (I8, I16, I32, *FLOATS),
    "REDUCE_ALL": (B,), "REDUCE_ANY": (B,), "REDUCE_MAX": (I8, I16, I32, *FLOATS),
    "REDUCE_MIN": (I8, I16, I32, *FLOATS), "REDUCE_SUM": (I32, *FLOATS), "REDUCE_PRODUCT": FLOATS,
    "POW": FLOATS, "ERF": FLOATS, "SIGMOID": FLOATS, "TANH": FLOATS, "CEIL": FLOATS, "COS": FLOATS,
    "EXP": FLOATS, "FLOOR": FLOATS, "LOG": FLOATS, "RECIPROCAL": FLOATS, "RSQRT": FLOATS, "SIN": FLOATS,
}
DATA_TYPES = (B, I4, I8, I16, I32, I48, *FLOATS)   # data layout ops move any of these
for _name in ("CONCAT", "PAD", "RESHAPE", "REVERSE", "SLICE", "TILE", "TRANSPOSE", "IDENTITY"):
    SAME_TYPE[_name] = DATA_TYPES
CAST_TYPES = {(a, b) for a in (B, I8, I16, I32) for b in (B, I8, I16, I32) if a != b} \
    | {(a, f) for a in (I8, I16, I32) for f in FLOATS} | {(f, a) for a in (I8, I16, I32) for f in FLOATS} \
    | {(a, b) for a in FLOATS for b in FLOATS if a != b}


def _fail(label: str, operand: str, rule: str) -> VerificationError:
    return VerificationError(label, operand, rule)


def check_types(op: Op, block: Block, label: str) -> None:
    """Raise VerificationError if ``op``'s element types are not a supported combination."""
    ins = [block.type_of(n).dtype for n in op.inputs]
    outs = [block.type_of(n).dtype for n in op.outputs]
    name = op.name

    def first_operands_same(count: int, allowed: tuple[DType, ...], out_too: bool = True) -> None:
        group = ins[:count] + (outs[:1] if out_too else [])
        if group[0] not in allowed:
            raise _fail(label, "input", f"{name} does not support {group[0].name} (supported: "
                        f"{', '.join(t.name for t in allowed)})")
        if any(t != group[0] for t in group):
            raise _fail(label, "input", f"{name} operands and result must share one type, got "
                        f"{[t.name for t in group]}")

    if name in ("CONV2D", "CONV3D", "DEPTHWISE_CONV2D", "TRANSPOSE_CONV2D"):
        combo = (ins[0], ins[1], op.attrs.get("acc_type"), outs[0])
        if combo not in CONV_TYPES:
            raise _fail(label, "input", f"{name} does not support input/weight/acc/output types "
                        f"{[getattr(t, 'name', t) for t in combo]}")
        if ins[2] != outs[0] or ins[3] != ins[0] or ins[4] != ins[1]:
            raise _fail(label, "bias", "bias must have the output type and zero points their operand's type")
    elif name == "MATMUL":
        if ins[0] != ins[1] or (ins[0], outs[0]) not in MATMUL_TYPES or ins[2] != ins[0] or ins[3] != ins[1]:
            raise _fail(label, "A", f"MATMUL does not support A/B/output types {[t.name for t in ins[:2] + outs]}")
    elif name in ("AVG_POOL2D", "MAX_POOL2D", "CLAMP", "NEGATE"):
        first_operands_same(1, SAME_TYPE[name])
        if name in ("AVG_POOL2D", "NEGATE") and (ins[1] != ins[0] or ins[2] != ins[0]):
            raise _fail(label, "input_zp", "zero points must have the input type")
    elif name == "ARGMAX":
        if ins[0] not in (I8, I16, *FLOATS) or outs[0] is not I32:
            raise _fail(label, "input", f"ARGMAX takes int8/int16/float input and returns INT32, got "
                        f"{ins[0].name}->{outs[0].name}")
    elif name == "MUL":
        if ins[0] != ins[1] or ins[0] not in (I8, I16, I32, *FLOATS) or \
                outs[0] != (I32 if ins[0] in (I8, I16, I32) else ins[0]):
            raise _fail(label, "input1", f"MUL does not support {[t.name for t in ins[:2] + outs]}")
    elif name == "TABLE":
        if (ins[0], ins[1], outs[0]) not in ((I8, I8, I8), (I16, I16, I32)):
            raise _fail(label, "input1", f"TABLE supports int8->int8 and int16->int32, got "
                        f"{[t.name for t in ins[:2] + outs]}")
    elif name == "SELECT":
        if ins[0] is not B:
            raise _fail(label, "input1", "SELECT's condition must be bool")
        if not (ins[1] == ins[2] == outs[0]) or ins[1] not in (B, I8, I16, I32, *FLOATS):
            raise _fail(label, "input2", f"SELECT values and result must share a type, got "
                        f"{[t.name for t in ins[1:] + outs]}")
    elif name in ("EQUAL", "GREATER", "GREATER_EQUAL"):
        if ins[0] != ins[1] or ins[0] not in (I32, *FLOATS) or outs[0] is not B:
            raise _fail(label, "input1", f"{name} compares two int32/float tensors into bool, got "
                        f"{[t.name for t in ins + outs]}")
    elif name in ("GATHER", "SCATTER"):
        values = ins[0]
        if values not in (I8, I16, I32, *FLOATS) or outs[0] != values or (name == "SCATTER" and ins[2] != values):
            raise _fail(label, "values", f"{name} does not support {[t.name for t in ins + outs]}")
    elif name == "RESIZE":
        mode = op.attrs.get("mode")
        key = (ins[0], outs[0], mode.name if mode is not None and ins[0].is_int else None)
        if key not in RESIZE_TYPES:
            raise _fail(label, "input", f"RESIZE does not support {ins[0].name}->{outs[0].name} in mode {mode}")
    elif name == "CAST":
        if (ins[0], outs[0]) not in CAST_TYPES:
            raise _fail(label, "input", f"CAST from {ins[0].name} to {outs[0].name} is not supported")
    elif name == "RESCALE":
        if ins[0] not in RESCALE_IN or outs[0] not in RESCALE_OUT:
            raise _fail(label, "input", f"RESCALE does not support {ins[0].name}->{outs[0].name}")
    elif name in ("PAD",):
        first_operands_same(1, SAME_TYPE[name])
        if ins[2] != ins[0]:
            raise _fail(label, "pad_const", "pad_const must have the input type")
    elif name in ("RESHAPE", "SLICE", "TILE"):
        first_operands_same(1, SAME_TYPE[name])
    elif name == "CONCAT":
        first_operands_same(len(ins), SAME_TYPE[name])
    elif name in SAME_TYPE:
        first_operands_same(SCHEMAS[name].data_operands, SAME_TYPE[name])

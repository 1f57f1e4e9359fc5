"""The verifier: nothing invalid reaches the interpreter or codegen.

``verify(graph)`` checks graph structure, operand counts, attributes, the
supported type combinations of the TOSA 1.0 integer and float profiles (with
the int16, int4, bf16 and doubleround extensions), every op's declared output
type against shape inference, and the ERROR_IF conditions of the
specification's pseudo-code. The first violation raises a VerificationError
naming the block, the op, the operand or attribute, and the rule.
"""
from __future__ import annotations

import numpy as np

from tosac.errors import UnsupportedError, VerificationError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op
from tosac.ir.ops import SCHEMAS, AttrKind, OpCategory, ResizeMode, RoundingMode
from tosac.ir.shape_inference import infer_types
from tosac.ir.type_support import check_types

# Level 8K of the specification (tosa.xml <levels>).
MAX_RANK = 6
MAX_KERNEL = 8192
MAX_STRIDE = 8192
MAX_SCALE = 256
MAX_LOG2_SIZE = 31
MAX_NESTING = 6
MAX_TENSOR_LIST_SIZE = 64
_ATTR_TYPES = {AttrKind.INT: int, AttrKind.BOOL: bool, AttrKind.INTS: tuple, AttrKind.DTYPE: DType,
               AttrKind.STRING: str, AttrKind.SCALAR: (int, float)}


def verify(graph: Graph) -> None:
    """Raise VerificationError (or UnsupportedError) on the first rule ``graph`` breaks."""
    if not graph.blocks:
        raise VerificationError("graph", None, "the graph has no blocks")
    for block in graph.blocks.values():     # before any op: control flow reads other blocks' signatures
        _check_signature(block)
    for block in graph.blocks.values():
        _verify_block(graph, block)
    _check_nesting(graph, graph.main, 0, ())


def _check_nesting(graph: Graph, block: Block, depth: int, path: tuple[str, ...]) -> None:
    """ERROR_IF(tosa_nesting_depth >= MAX_NESTING) for COND_IF/WHILE_LOOP, and no recursion."""
    for index, op in enumerate(block.ops):
        if SCHEMAS[op.name].category is not OpCategory.CONTROL_FLOW:
            continue
        label = f"{block.name}:{op.label(index)}"
        if depth >= MAX_NESTING:
            raise VerificationError(label, None, f"control flow nested {depth + 1} deep exceeds level 8K "
                                    f"MAX_NESTING={MAX_NESTING}")
        for attr in ("then_graph", "else_graph", "cond_graph", "body_graph"):
            name = op.attrs.get(attr)
            if name is None:
                continue
            if name in path or name == block.name:
                raise VerificationError(label, attr, f"block '{name}' calls itself (recursion is not allowed)")
            _check_nesting(graph, graph.blocks[name], depth + 1, path + (block.name,))


def _check_signature(block: Block) -> None:
    """Every input and output name of ``block`` is a declared tensor (COND_IF/WHILE_LOOP type-check them)."""
    for kind, names in (("input", block.inputs), ("output", block.outputs)):
        for name in names:
            if name not in block.tensors:
                raise VerificationError(f"block {block.name}", name, f"{kind} '{name}' has no tensor declaration")


def _verify_block(graph: Graph, block: Block) -> None:
    defined = set()
    for name in block.inputs:
        if name in defined:
            raise VerificationError(f"block {block.name}", name, f"input '{name}' is listed twice")
        defined.add(name)
    for name, tensor in block.tensors.items():
        if tensor.name != name:
            raise VerificationError(f"block {block.name}", name, f"tensor registered as '{name}' is named "
                                    f"'{tensor.name}'")
        if any(d < 0 for d in tensor.shape) or len(tensor.shape) > MAX_RANK:
            raise VerificationError(f"block {block.name}", name, f"shape {list(tensor.shape)} must have "
                                    f"non-negative dimensions and rank <= {MAX_RANK} (level 8K)")
        if 0 in tensor.shape and tensor.dtype is not DType.SHAPE:
            # TOSA 1.0 has no zero-size tensors (no operator defines a result for them); a SHAPE
            # value may be empty (the shape of a rank-0 tensor).
            raise VerificationError(f"block {block.name}", name, f"shape {list(tensor.shape)} has a dimension of "
                                    "size 0; every tensor dimension must be >= 1")
        if tensor.type.size >= 1 << MAX_LOG2_SIZE:
            raise VerificationError(f"block {block.name}", name, f"{tensor.type.size} elements exceed level 8K "
                                    f"(MAX_LOG2_SIZE={MAX_LOG2_SIZE})")
    for index, op in enumerate(block.ops):
        label = f"{block.name}:{op.label(index)}"
        if op.name not in SCHEMAS:
            raise UnsupportedError(f"{label}: unknown operator '{op.name}'")
        for name in op.inputs:
            if name not in defined:
                raise VerificationError(label, name, f"input '{name}' is used before it is defined")
        for name in op.outputs:
            if name not in block.tensors:
                raise VerificationError(label, name, f"output '{name}' has no tensor declaration")
            if name in defined:
                raise VerificationError(label, name, f"tensor '{name}' is written twice")
            defined.add(name)
        _verify_op(graph, block, op, label)
    for name in block.outputs:
        if name not in defined:
            raise VerificationError(f"block {block.name}", name, f"output '{name}' is never computed")


def _verify_op(graph: Graph, block: Block, op: Op, label: str) -> None:
    schema = SCHEMAS[op.name]
    fixed = [o for o in schema.operands if not o.startswith("*")]
    if (len(op.inputs) < len(fixed)) if schema.variadic else (len(op.inputs) != len(fixed)):
        raise VerificationError(label, None, f"takes operands {list(schema.operands)}, got {len(op.inputs)}")
    variadic_out = schema.results[0].startswith("*")
    if not variadic_out and len(op.outputs) != len(schema.results):
        raise VerificationError(label, None, f"has {len(schema.results)} result(s), got {len(op.outputs)}")
    for key, value in op.attrs.items():
        if key not in schema.attrs:
            raise VerificationError(label, key, f"unknown attribute '{key}'; {op.name} has {list(schema.attrs)}")
        kind = schema.attrs[key].kind
        expected = _ATTR_TYPES.get(kind)
        if expected is not None and not isinstance(value, expected):
            raise VerificationError(label, key, f"attribute must be {kind.value}, got {value!r}")
    for key, spec in schema.attrs.items():
        if spec.default is None and key not in op.attrs:
            raise VerificationError(label, key, f"required attribute '{key}' is missing")
    if schema.category is OpCategory.CONSTANT:
        data = block.tensors[op.outputs[0]].data
        if data is None or tuple(np.shape(data)) != block.tensors[op.outputs[0]].shape:
            raise VerificationError(label, op.outputs[0], "a constant needs data of its declared shape")
        return
    for operand, name in zip(schema.operands, op.inputs):
        if operand in schema.shape_operands and block.type_of(name).dtype is not DType.SHAPE:
            raise VerificationError(label, operand, "must be a SHAPE value from CONST_SHAPE")
    if schema.category is OpCategory.CONTROL_FLOW:
        _verify_control_flow(graph, block, op, label)
        return
    check_types(op, block, label)
    _check_levels(block, op, label)
    declared = [block.type_of(n) for n in op.outputs]
    try:
        inferred = infer_types(op, block, [t.dtype for t in declared])
    except VerificationError as e:
        raise VerificationError(label, e.operand, e.rule) from None
    for name, want, got in zip(op.outputs, inferred, declared):
        if want != got:
            raise VerificationError(label, name, f"declared output {got} but the inputs and attributes give {want}")
    _ERROR_IF.get(op.name, lambda *a: None)(block, op, label)


def _check_levels(block: Block, op: Op, label: str) -> None:
    """The level 8K limits on kernel, stride, padding, scale and list sizes (tosa.xml <levellimit>)."""
    a = op.attrs

    def limit(operand: str, values, bound: int, what: str) -> None:
        if any(v > bound for v in values):
            raise VerificationError(label, operand, f"{what} {list(values)} exceeds level 8K limit {bound}")

    if op.name in ("CONV2D", "CONV3D", "DEPTHWISE_CONV2D"):
        w = block.type_of(op.inputs[1]).shape
        kernel = w[:2] if op.name == "DEPTHWISE_CONV2D" else w[1:-1]
        limit("weight", [d * k for d, k in zip(a["dilation"], kernel)], MAX_KERNEL, "dilation * kernel")
        limit("pad", a["pad"], MAX_KERNEL, "pad")
        limit("stride", a["stride"], MAX_STRIDE, "stride")
    elif op.name == "TRANSPOSE_CONV2D":
        limit("weight", block.type_of(op.inputs[1]).shape[1:3], MAX_KERNEL, "kernel")
        limit("out_pad", a["out_pad"], MAX_KERNEL, "out_pad")
        limit("stride", a["stride"], MAX_STRIDE, "stride")
    elif op.name in ("AVG_POOL2D", "MAX_POOL2D"):
        limit("kernel", a["kernel"], MAX_KERNEL, "kernel")
        limit("pad", a["pad"], MAX_KERNEL, "pad")
        limit("stride", a["stride"], MAX_STRIDE, "stride")
    elif op.name == "RESIZE":
        scale = block.constant(op.inputs[1])
        if scale is not None and len(scale) == 4 and min(scale) > 0:
            limit("scale", [scale[0] / scale[1], scale[2] / scale[3]], MAX_SCALE, "scale_n / scale_d")
    elif op.name in ("CONCAT", "COND_IF", "WHILE_LOOP"):
        limit("input_list", [len(op.inputs), len(op.outputs)], MAX_TENSOR_LIST_SIZE + (op.name == "COND_IF"),
              "list length")


def _verify_control_flow(graph: Graph, block: Block, op: Op, label: str) -> None:
    def body(attr: str) -> Block:
        name = op.attrs.get(attr)
        if name not in graph.blocks:
            raise VerificationError(label, attr, f"block '{name}' does not exist")
        return graph.blocks[name]

    def same_types(names_a, block_a: Block, names_b, block_b: Block, what: str, attr: str) -> None:
        ta = [block_a.type_of(n) for n in names_a]
        tb = [block_b.type_of(n) for n in names_b]
        if ta != tb:
            raise VerificationError(label, attr, f"{what}: {[str(t) for t in ta]} vs {[str(t) for t in tb]}")

    if op.name == "COND_IF":
        cond = block.type_of(op.inputs[0])
        if cond.dtype is not DType.BOOL:
            raise VerificationError(label, "condition", "condition must be a bool tensor")
        if cond.size != 1:
            raise VerificationError(label, "condition", "condition must have exactly one element")
        for attr in ("then_graph", "else_graph"):
            sub = body(attr)
            same_types(op.inputs[1:], block, sub.inputs, sub, "input list does not match the block inputs", attr)
            same_types(op.outputs, block, sub.outputs, sub, "output list does not match the block outputs", attr)
        return
    cond, loop = body("cond_graph"), body("body_graph")
    same_types(op.inputs, block, op.outputs, block, "input list and output list differ", "output_list")
    same_types(op.inputs, block, cond.inputs, cond, "input list does not match cond_graph inputs", "cond_graph")
    same_types(op.inputs, block, loop.inputs, loop, "input list does not match body_graph inputs", "body_graph")
    same_types(op.inputs, block, loop.outputs, loop, "input list does not match body_graph outputs", "body_graph")
    if len(cond.outputs) != 1 or cond.type_of(cond.outputs[0]).dtype is not DType.BOOL \
            or cond.type_of(cond.outputs[0]).size != 1:
        raise VerificationError(label, "cond_graph", "cond_graph must output a single one-element bool tensor")


# ------------------------------------------------------------------ op-specific ERROR_IF rules
def _const(block: Block, op: Op, index: int, label: str, operand: str) -> np.ndarray:
    data = block.constant(op.inputs[index])
    if data is None:
        raise VerificationError(label, operand, f"'{operand}' must be a compile-time constant")
    return np.asarray(data).reshape(-1)


def _zero_point(block: Block, op: Op, index: int, label: str, operand: str, dtype: DType,
                unsigned: bool = False) -> int:
    zp_type = block.type_of(op.inputs[index])
    if zp_type.shape != (1,):
        raise VerificationError(label, operand, f"zero point must have shape [1], got {list(zp_type.shape)}")
    zp = int(_const(block, op, index, label, operand)[0])
    if dtype in (DType.INT8, DType.UINT8):
        return zp
    if dtype in (DType.INT16, DType.UINT16) and unsigned and zp in (0, 32768, -32768):
        return zp
    if zp != 0:
        raise VerificationError(label, operand, f"zero point must be 0 for {dtype.name} (only int8 has zero points)")
    return zp


def _conv_rules(block: Block, op: Op, label: str) -> None:
    x, w, b = (block.type_of(n) for n in op.inputs[:3])
    _zero_point(block, op, 3, label, "input_zp", x.dtype)
    _zero_point(block, op, 4, label, "weight_zp", w.dtype)
    out_channels = block.type_of(op.outputs[0]).shape[-1]
    if b.rank != 1 or b.shape[0] not in (out_channels, 1):
        raise VerificationError(label, "bias", f"bias shape {list(b.shape)} must be [{out_channels}] or [1]")
    if op.name == "TRANSPOSE_CONV2D":
        kh, kw = w.shape[1], w.shape[2]
        p = op.attrs["out_pad"]
        if p[0] <= -kh or p[1] <= -kh or p[2] <= -kw or p[3] <= -kw:
            raise VerificationError(label, "out_pad", f"out_pad {list(p)} must be > -kernel size")
        return
    pad = op.attrs["pad"]
    if min(pad) < 0:
        raise VerificationError(label, "pad", f"pad {list(pad)} must be >= 0")
    if max(op.attrs["stride"]) > MAX_STRIDE or max(pad) > MAX_KERNEL:
        raise VerificationError(label, "stride", "stride or pad exceeds the level 8K limits")


def _pool_rules(block: Block, op: Op, label: str) -> None:
    k, pad = op.attrs["kernel"], op.attrs["pad"]
    if pad[0] >= k[0] or pad[1] >= k[0] or pad[2] >= k[1] or pad[3] >= k[1]:
        raise VerificationError(label, "pad", f"pad {list(pad)} must be smaller than the kernel {list(k)}")
    if op.name == "AVG_POOL2D":
        dtype = block.type_of(op.inputs[0]).dtype
        _zero_point(block, op, 1, label, "input_zp", dtype)
        _zero_point(block, op, 2, label, "output_zp", dtype)
        if dtype.is_int and op.attrs["acc_type"] is not DType.INT32:
            raise VerificationError(label, "acc_type", "integer AVG_POOL2D accumulates in INT32")


def _matmul_rules(block: Block, op: Op, label: str) -> None:
    a, b = block.type_of(op.inputs[0]), block.type_of(op.inputs[1])
    # The v1.0.2 text inverts this condition (a known typo fixed upstream): zero points only for int8.
    _zero_point(block, op, 2, label, "A_zp", a.dtype)
    _zero_point(block, op, 3, label, "B_zp", b.dtype)


def _negate_rules(block: Block, op: Op, label: str) -> None:
    dtype = block.type_of(op.inputs[0]).dtype
    _zero_point(block, op, 1, label, "input1_zp", dtype)
    _zero_point(block, op, 2, label, "output_zp", dtype)


def _clamp_rules(block: Block, op: Op, label: str) -> None:
    lo, hi = op.attrs["min_val"], op.attrs["max_val"]
    if lo != lo or hi != hi:
        raise VerificationError(label, "min_val", "CLAMP bounds must not be NaN")
    if hi < lo:
        raise VerificationError(label, "max_val", f"max_val {hi} is smaller than min_val {lo}")
    dtype = block.type_of(op.inputs[0]).dtype
    if dtype.is_int and not (dtype.min <= lo <= dtype.max and dtype.min <= hi <= dtype.max):
        raise VerificationError(label, "min_val", f"bounds [{lo}, {hi}] are outside the {dtype.name} range")


def _mul_rules(block: Block, op: Op, label: str) -> None:
    shift_type = block.type_of(op.inputs[2])
    if shift_type.dtype is not DType.INT8 or shift_type.shape != (1,):
        raise VerificationError(label, "shift", f"shift must be int8[1], got {shift_type}")
    # The shift's range is a REQUIRE (unpredictable at run time), not an ERROR_IF.


def _table_rules(block: Block, op: Op, label: str) -> None:
    x, table = block.type_of(op.inputs[0]), block.type_of(op.inputs[1])
    size = {DType.INT8: 256, DType.INT16: 513}.get(x.dtype)
    if table.shape != (size,):
        raise VerificationError(label, "table", f"a {x.dtype.name} TABLE needs a table of shape [{size}]")


def _rescale_rules(block: Block, op: Op, label: str) -> None:
    a = op.attrs
    x, out = block.type_of(op.inputs[0]), block.type_of(op.outputs[0])
    in_u, out_u = a.get("input_unsigned", False), a.get("output_unsigned", False)
    scale32, per_channel = a.get("scale32", False), a.get("per_channel", False)
    signed = {DType.UINT8: DType.INT8, DType.UINT16: DType.INT16}
    in_t, out_t = signed.get(x.dtype, x.dtype), signed.get(out.dtype, out.dtype)

    def fail(operand: str, rule: str) -> None:
        raise VerificationError(label, operand, rule)

    if x.dtype in signed and not in_u or out.dtype in signed and not out_u:
        fail("input_unsigned", "an unsigned tensor needs the matching input_unsigned/output_unsigned flag")
    if not scale32 and a.get("rounding_mode", RoundingMode.SINGLE_ROUND) is RoundingMode.DOUBLE_ROUND:
        fail("rounding_mode", "DOUBLE_ROUND requires scale32")
    if scale32 and in_t is DType.INT48:
        fail("scale32", "scale32 must be false for int48 input")
    if in_u and out_u:
        fail("output_unsigned", "input_unsigned and output_unsigned cannot both be set")
    if in_u and in_t in (DType.INT32, DType.INT48) or out_u and in_t in (DType.INT32, DType.INT48):
        fail("input_unsigned", f"unsigned flags are not allowed with {in_t.name} input")
    if out_u and out_t is DType.INT32 or in_u and out_t is DType.INT32:
        fail("output_unsigned", "unsigned flags are not allowed with int32 output")
    if per_channel and x.rank < 1:
        fail("per_channel", "per_channel needs an input of rank >= 1")
    _zero_point(block, op, 3, label, "input_zp", x.dtype if in_t is not DType.INT16 else
                (DType.UINT16 if in_u else DType.INT16), unsigned=in_u)
    _zero_point(block, op, 4, label, "output_zp", out.dtype if out_t is not DType.INT16 else
                (DType.UINT16 if out_u else DType.INT16), unsigned=out_u)
    channels = x.shape[-1] if per_channel else 1
    mult, shift = block.type_of(op.inputs[1]), block.type_of(op.inputs[2])
    if mult.dtype is not (DType.INT32 if scale32 else DType.INT16) or mult.shape != (channels,):
        fail("multiplier", f"multiplier must be {'i32' if scale32 else 'i16'}[{channels}], got {mult}")
    if shift.dtype is not DType.INT8 or shift.shape != (channels,):
        fail("shift", f"shift must be i8[{channels}], got {shift}")


def _resize_rules(block: Block, op: Op, label: str) -> None:
    scale = _const(block, op, 1, label, "scale")
    offset = _const(block, op, 2, label, "offset")
    border = _const(block, op, 3, label, "border")
    for n, d, o, b, axis in ((scale[0], scale[1], offset[0], border[0], "y"),
                             (scale[2], scale[3], offset[1], border[1], "x")):
        if n > (1 << 11):
            raise VerificationError(label, "scale", f"scale_{axis}_n {n} exceeds 2048")
        if d >= 16 * n:
            raise VerificationError(label, "scale", f"scale_{axis}_d {d} must be < 16 * scale_{axis}_n")
        if o < -n or o >= 16 * n:
            raise VerificationError(label, "offset", f"offset_{axis} {o} must be in [-scale_n, 16*scale_n)")
        if b < -16 * n or b >= n:
            raise VerificationError(label, "border", f"border_{axis} {b} must be in [-16*scale_n, scale_n)")
    x, out = block.type_of(op.inputs[0]), block.type_of(op.outputs[0])
    if max(x.shape[1], x.shape[2], out.shape[1], out.shape[2]) >= 16384:
        raise VerificationError(label, "input", "RESIZE sizes must be below 16384")
    if op.attrs["mode"] is ResizeMode.NEAREST and out.dtype != x.dtype:
        raise VerificationError(label, "output", "NEAREST RESIZE keeps the input type")


def _argmax_rules(block: Block, op: Op, label: str) -> None:
    if block.type_of(op.inputs[0]).rank < 1:
        raise VerificationError(label, "input", "ARGMAX input must have rank >= 1")


def _pad_rules(block: Block, op: Op, label: str) -> None:
    pad_const = block.type_of(op.inputs[2])
    if pad_const.shape != (1,):
        raise VerificationError(label, "pad_const", f"pad_const must have shape [1], got {list(pad_const.shape)}")


def _scatter_gather_rules(block: Block, op: Op, label: str) -> None:
    idx = block.type_of(op.inputs[1])
    if idx.dtype is not DType.INT32:
        raise VerificationError(label, "indices", "indices must be int32")


_ERROR_IF = {
    "CONV2D": _conv_rules, "CONV3D": _conv_rules, "DEPTHWISE_CONV2D": _conv_rules,
    "TRANSPOSE_CONV2D": _conv_rules, "AVG_POOL2D": _pool_rules, "MAX_POOL2D": _pool_rules,
    "MATMUL": _matmul_rules, "NEGATE": _negate_rules, "CLAMP": _clamp_rules, "MUL": _mul_rules,
    "TABLE": _table_rules, "RESCALE": _rescale_rules, "RESIZE": _resize_rules, "ARGMAX": _argmax_rules,
    "GATHER": _scatter_gather_rules, "SCATTER": _scatter_gather_rules, "PAD": _pad_rules,
}

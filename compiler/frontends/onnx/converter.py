"""The ONNX → tosac graph converter: tensor bookkeeping, emission helpers and the node loop.

The legalisations themselves live in :mod:`.quantized` (integer ops, shared by
the QDQ and QOperator formats), :mod:`.floating` (float and data-movement ops)
and :mod:`.qoperator` (QLinear* and ``com.microsoft`` ops).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import onnx
from onnx import helper

from tosac.errors import FrontendError, TosacError, UnsupportedError
from tosac.frontends.onnx.entries import Entry, Quant, dtype_of, relayout
from tosac.frontends.onnx.fixed_point import multipliers_shifts
from tosac.frontends.onnx.reader import UPGRADED_FROM
from tosac.ir.builder import GraphBuilder, Value
from tosac.ir.dtypes import DType
from tosac.ir.graph import Graph

Handler = Callable[["Converter", onnx.NodeProto], None]
#: (domain, op_type) → handler; filled by the legalisation modules with :func:`handles`.
HANDLERS: dict[tuple[str, str], Handler] = {}
# Ops that only move data: quantization passes through them unchanged.
LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
# Rules tried before a node's handler (QDQ patterns): each returns True when it converted the node.
PATTERNS: list[Callable[["Converter", onnx.NodeProto], bool]] = []

_ONNX_INT = {onnx.TensorProto.INT8: DType.INT8, onnx.TensorProto.UINT8: DType.UINT8,
             onnx.TensorProto.INT16: DType.INT16, onnx.TensorProto.INT32: DType.INT32,
             onnx.TensorProto.INT64: DType.INT32,    # no int64 tensors in TOSA: token ids and such are int32
             onnx.TensorProto.FLOAT: DType.FP32, onnx.TensorProto.BOOL: DType.BOOL,
             onnx.TensorProto.FLOAT16: DType.FP16}


_NARROW_RANGES = {onnx.TensorProto.INT4: (-8, 7), onnx.TensorProto.UINT4: (0, 15), onnx.TensorProto.INT2: (-2, 1),
                  onnx.TensorProto.UINT2: (0, 3)}


def handles(*op_types: str, domain: str = "") -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for op_type in op_types:
            HANDLERS[(domain, op_type)] = fn
        return fn
    return register


def pattern(rule: Callable[["Converter", onnx.NodeProto], bool]) -> Callable[["Converter", onnx.NodeProto], bool]:
    """Registers ``rule`` to be tried on every node before its handler."""
    PATTERNS.append(rule)
    return rule


@dataclass(frozen=True)
class QOut:
    """Where a quantized op's result goes: its quantization, dtype, fused clamp (real bounds) and name."""
    quant: Quant
    dtype: DType
    name: str
    low: float = -math.inf
    high: float = math.inf


class Converter:
    """Converts one inferred ONNX graph; ``io='quantized'`` keeps quantized inputs/outputs as integers."""

    def __init__(self, proto: onnx.ModelProto, consts: dict[str, np.ndarray], *, io: str,
                 bound: Mapping[str, np.ndarray] | None = None):
        self.proto, self.io = proto, io
        self.bound = dict(bound or {})          # graph inputs with values, used where a constant is needed
        self.used_bound: set[str] = set()
        self.g = GraphBuilder()
        self.env: dict[str, Entry] = {}
        self.io_quant: dict[str, dict[str, Any]] = {}
        graph = proto.graph
        self.shapes = {v.name: v for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
        self.outputs = [o.name for o in graph.output]
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.claimed: set[int] = set()       # id() of nodes folded into an earlier node
        # 4- and 2-bit tensors (stored widened to int8/uint8): the range a QuantizeLinear into them saturates to.
        types = {v.name: v.type.tensor_type.elem_type for v in graph.input} | {
            t.name: t.data_type for t in graph.initializer}
        self.narrow = {name: _NARROW_RANGES[t] for name, t in types.items() if t in _NARROW_RANGES}
        for name, data in consts.items():
            self.env[name] = Entry(tuple(np.shape(data)), data=np.asarray(data))
        self.opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))

    # ------------------------------------------------------------------ the node loop
    def run(self) -> Graph:
        self._check_outputs()
        self._declare_inputs()
        for index, node in enumerate(self.proto.graph.node):
            if id(node) in self.claimed:
                continue
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            handler = HANDLERS.get((domain, node.op_type))
            label = node.name or (node.output[0] if node.output else f"#{index}")
            where = f"node '{label}' ({(domain + '::') if domain else ''}{node.op_type})"
            before = len(self.g.blk.ops)
            try:
                if self._fold(node) or any(rule(self, node) for rule in PATTERNS):
                    pass
                elif handler is None:     # (an op of constants folds, handled or not: Mod, Range on shapes)
                    raise UnsupportedError("operator not supported by the ONNX frontend (supported: "
                                           f"{', '.join(sorted(op for _, op in HANDLERS))})")
                else:
                    handler(self, node)
                self._refuse_empty_results(node)
            except UnsupportedError as exc:
                raise UnsupportedError(f"{where}: {exc}") from None
            except TosacError as exc:
                raise FrontendError(f"{where}: {exc}") from None
            except Exception as exc:
                raise FrontendError(f"{where}: cannot convert ({type(exc).__name__}: {exc})") from exc
            for op in self.g.blk.ops[before:]:
                op.location = label
        self._declare_outputs()
        self._drop_bound_inputs()
        graph = self.g.build()
        graph.metadata["io_quantization"] = self.io_quant
        upgraded = {p.key: p.value for p in self.proto.metadata_props}.get(UPGRADED_FROM)
        if upgraded is not None:
            graph.metadata["onnx_upgraded_from_opset"] = int(upgraded)
        return graph

    def _check_outputs(self) -> None:
        """Every graph output must be a node's result, a graph input or an initializer (else it has no value)."""
        graph = self.proto.graph
        known = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {
            o for node in graph.node for o in node.output if o}
        if not self.outputs:
            raise FrontendError("the graph declares no outputs")
        for name in self.outputs:
            if name not in known:
                raise FrontendError(f"graph output '{name}' is produced by no node and is neither a graph input "
                                    "nor an initializer")

    def _declare_inputs(self) -> None:
        for value in self.proto.graph.input:
            if value.name in self.env:
                continue
            elem = value.type.tensor_type.elem_type
            if (elem not in _ONNX_INT or elem == onnx.TensorProto.INT64) and value.name in self.bound:
                self.env[value.name] = Entry(tuple(self.bound[value.name].shape), data=self.bound[value.name])
                continue
            if elem not in _ONNX_INT:
                raise UnsupportedError(f"input '{value.name}': element type "
                                       f"{onnx.TensorProto.DataType.Name(elem)} is not supported")
            shape = tuple(d.dim_value for d in value.type.tensor_type.shape.dim)
            if 0 in shape:
                raise UnsupportedError(f"input '{value.name}' has shape {list(shape)}: empty tensors are not "
                                       "supported")
            dtype, quant = _ONNX_INT[elem], self._input_quantization(value.name)
            if quant is not None:
                q, dtype = quant
                self.io_quant[value.name] = {"scale": q.s.item(), "zero_point": q.zp, "dtype": dtype.name.lower()}
                self.env[value.name] = Entry(shape, value=self.g.input(value.name, dtype, shape), quant=q)
            else:
                self.env[value.name] = Entry(shape, value=self.g.input(value.name, dtype, shape))

    def _drop_bound_inputs(self) -> None:
        """Inputs that were only ever used as constants leave the graph's inputs."""
        read = {name for op in self.g.blk.ops for name in op.inputs} | set(self.g.blk.outputs)
        for name in self.used_bound - read:
            self.g.blk.inputs.remove(name)
            del self.g.blk.tensors[name]

    def _input_quantization(self, name: str) -> tuple[Quant, DType] | None:
        """With quantized I/O, a float input read only by identical QuantizeLinear nodes becomes integer — also
        through layout-only ops (a Transpose or Reshape that tf2onnx puts before the QuantizeLinear), since a
        per-tensor quantization commutes with them."""
        quantizers = self._quantizers_through_layout(name) if self.io == "quantized" else None
        if not quantizers:
            return None
        params = [self.quantize_params(u) for u in quantizers]
        if any(not p[0].same_as(params[0][0]) or p[1] != params[0][1] for p in params) or params[0][0].per_channel:
            return None
        return params[0]

    def _quantizers_through_layout(self, name: str) -> list[onnx.NodeProto] | None:
        """The QuantizeLinear nodes that read ``name``, directly or through layout-only ops; None when anything
        else reads it (or a layout op's result). A worklist, not recursion: a chain of a thousand layout ops is
        valid ONNX."""
        found, pending = [], [name]
        while pending:
            current = pending.pop()
            users = self.consumers.get(current, [])
            if not users:
                return None
            for user in users:
                if user.op_type == "QuantizeLinear" and user.input[0] == current:
                    found.append(user)
                elif (user.op_type in LAYOUT_OPS and user.input[0] == current and len(user.output) == 1
                      and user.output[0] not in self.outputs):
                    pending.append(user.output[0])
                else:
                    return None
        return found or None

    def _refuse_empty_results(self, node: onnx.NodeProto) -> None:
        """TOSA tensors have no size-0 dimension, so a node that yields an empty tensor cannot be expressed."""
        for name in node.output:
            entry = self.env.get(name)
            if entry is not None and 0 in entry.shape:
                raise UnsupportedError(f"output '{name}' has shape {list(entry.shape)}: empty tensors are not "
                                       "supported")

    def _declare_outputs(self) -> None:
        values = []
        for name in self.outputs:
            e = self.env[name]
            if e.quant is not None and self.io == "quantized" and not e.quant.per_channel:
                self.io_quant[name] = {"scale": e.quant.s.item(), "zero_point": e.quant.zp,
                                       "dtype": e.dtype.name.lower()}
                e = Entry(e.shape, value=self.value(e), layout=e.layout)
            elif e.quant is not None:
                e = self.dequantize(e)
            try:
                values.append(self.value(e, tuple(range(e.rank))))
            except UnsupportedError as exc:
                raise UnsupportedError(f"output '{name}': {exc}") from None
        renamed: dict[str, str] = {}
        named = [self._named(Value(renamed.get(v.name, v.name), v.type), name, renamed)
                 for v, name in zip(values, self.outputs)]
        self.g.output(*named)

    def _named(self, v: Value, name: str, renamed: dict[str, str]) -> Value:
        """``v`` under the ONNX output name: its producer's result is renamed (else an IDENTITY copies it)."""
        blk = self.g.blk
        producer = next((op for op in blk.ops if v.name in op.outputs), None)
        if producer is None and v.name == name and name in blk.inputs:
            return v                        # a graph input that is also an output (an empty graph passes it on)
        if producer is None or name in blk.tensors or v.name in renamed.values():
            if v.dtype is DType.UINT8 and name not in blk.tensors:    # no uint8 IDENTITY in TOSA
                return self._named(self.unsigned(self.signed(v)[0]), name, renamed)
            return self.g.op("IDENTITY", [v], names=[name])
        tensor = blk.tensors.pop(v.name)
        tensor.name = name
        blk.tensors[name] = tensor
        for op in blk.ops:
            op.inputs = [name if i == v.name else i for i in op.inputs]
            op.outputs = [name if o == v.name else o for o in op.outputs]
        renamed[v.name] = name
        return Value(name, v.type)

    def _fold(self, node: onnx.NodeProto) -> bool:
        """Evaluate a standard-domain node whose inputs are all plain constants (shape arithmetic etc.)."""
        if node.domain not in ("", "ai.onnx") or node.op_type in ("DequantizeLinear",):
            return False
        inputs = [self.env.get(n) for n in node.input if n]
        if not inputs or any(e is None or not e.is_const or e.quant is not None for e in inputs):
            return False
        from onnx.reference import ReferenceEvaluator

        names = [n for n in node.input if n]
        model = helper.make_model(
            helper.make_graph([node], "fold", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(
                self.env[n].data.dtype), self.env[n].shape) for n in names],
                [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output]),
            opset_imports=[helper.make_opsetid("", self.opset)])
        results = ReferenceEvaluator(model).run(None, {n: self.env[n].data for n in names})
        for name, data in zip(node.output, results):
            self.env[name] = Entry(tuple(np.shape(data)), data=np.asarray(data))
        return True

    # ------------------------------------------------------------------ reading operands
    def entry(self, node: onnx.NodeProto, index: int) -> Entry | None:
        """Input ``index`` of ``node`` (None when absent or empty)."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.env:
            raise FrontendError(f"input '{name}' is produced by no node, initializer or graph input")
        return self.env[name]

    def const(self, node: onnx.NodeProto, index: int, what: str, default: Any = None) -> np.ndarray | None:
        """Input ``index`` as a compile-time constant (None/``default`` when absent)."""
        e = self.entry(node, index)
        if e is None:
            return None if default is None else np.asarray(default)
        if not e.is_const and node.input[index] in self.bound:
            self.used_bound.add(node.input[index])
            return self.bound[node.input[index]]
        if not e.is_const:
            raise UnsupportedError(f"{what} (input {index}, '{node.input[index]}') must be a constant "
                                   "initializer; bind it with load(..., constants={...})")
        return e.data

    @staticmethod
    def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def quantize_params(self, node: onnx.NodeProto, scale_index: int = 1, zp_index: int = 2,
                        axis: int | None = None) -> tuple[Quant, DType]:
        """The (scale, zero point) operands of a (De)QuantizeLinear or QLinear op, and the integer dtype."""
        scale = np.asarray(self.const(node, scale_index, "scale"), np.float32)
        zp_data = self.const(node, zp_index, "zero point")
        zp = np.zeros(scale.shape, np.uint8) if zp_data is None else zp_data
        if zp.dtype not in (np.int8, np.uint8, np.int16, np.int32):
            raise UnsupportedError(f"zero point of type {zp.dtype} (tosac reads 2/4/8/16-bit signed and 2/4/8-bit "
                                   "unsigned quantization)")
        if scale.size > 1 and axis is None:
            axis = int(self.attr(node, "axis", 1))
        if np.any(~(scale > 0)) or not np.all(np.isfinite(scale)):
            raise FrontendError(f"scale '{node.input[scale_index]}' must be positive and finite")
        quant = Quant(scale.reshape(-1) if scale.size > 1 else scale.reshape(()),
                      zp.astype(np.int64).reshape(-1) if zp.size > 1 else zp.astype(np.int64).reshape(()),
                      axis if scale.size > 1 else None)
        return quant, dtype_of(zp)

    # ------------------------------------------------------------------ QDQ fusion
    def quantized_output(self, node: onnx.NodeProto) -> QOut | None:
        """If the node's result flows (through Relu/Clip) into exactly one QuantizeLinear, claim that chain."""
        name, low, high, chain = node.output[0], -math.inf, math.inf, []
        while True:
            users = self.consumers.get(name, [])
            if name in self.outputs or len(users) != 1:
                return None
            user = users[0]
            if user.op_type == "Relu":
                low = max(low, 0.0)
            elif user.op_type == "Clip":
                lo, hi = (self.env.get(user.input[i]) if len(user.input) > i and user.input[i] else None
                          for i in (1, 2))
                if any(b is not None and not b.is_const for b in (lo, hi)):
                    return None
                low = max(low, float(lo.data)) if lo is not None else low
                high = min(high, float(hi.data)) if hi is not None else high
            elif user.op_type == "QuantizeLinear":
                quant, dtype = self.quantize_params(user)
                if quant.per_channel:
                    return None
                self.claimed.update(id(n) for n in chain + [user])
                return QOut(quant, dtype, user.output[0], low, high)
            else:
                return None
            chain.append(user)
            name = user.output[0]

    # ------------------------------------------------------------------ emitting
    def set(self, name: str, value: Value, layout: tuple[int, ...] | None = None, quant: Quant | None = None) -> Entry:
        perm = layout if layout is not None else tuple(range(len(value.shape)))
        shape = [0] * len(perm)
        for j, p in enumerate(perm):
            shape[p] = value.shape[j]
        entry = Entry(tuple(shape), value=value, layout=None if perm == tuple(range(len(perm))) else perm,
                      quant=quant)
        self.env[name] = entry
        return entry

    def set_entry(self, name: str, entry: Entry) -> None:
        self.env[name] = entry

    def value(self, e: Entry, layout: tuple[int, ...] | None = None, dtype: DType | None = None) -> Value:
        """The stored tosac value of ``e`` in ``layout`` (default: as stored; constants in ONNX order)."""
        if e.is_const:
            data = e.data if layout is None else np.transpose(e.data, layout)
            if data.dtype == np.float64:
                data = data.astype(np.float32)
            if data.dtype == np.int64:
                if np.any(data < -2**31) or np.any(data >= 2**31):
                    raise UnsupportedError("an int64 constant does not fit int32")
                data = data.astype(np.int32)
            return self.g.const(data, dtype or dtype_of(data))
        if layout is None or layout == e.perm:
            return e.value
        perm = relayout(e.perm, layout)
        moved = [p for p in perm if e.value.shape[p] != 1]
        if moved == sorted(moved):           # only size-1 axes move: the data order is unchanged
            shape = tuple(e.value.shape[p] for p in perm)
            return self.move(lambda v: self.g.reshape(v, shape), e.value)
        return self.move(lambda v: self.g.transpose(v, perms=perm), e.value)

    def move(self, fn: Callable[..., Value], *values: Value) -> Value:
        """A data-movement op ``fn(*values)``; uint8 values move as int8 (q − 128, then + 128: exact),
        since TOSA's RESHAPE/TRANSPOSE/CONCAT/SLICE/PAD have no uint8 form."""
        if not any(v.dtype is DType.UINT8 for v in values):
            return fn(*values)
        return self.unsigned(fn(*(self.signed(v)[0] for v in values)))

    def onnx_order(self, e: Entry) -> Value:
        return self.value(e, tuple(range(e.rank)))

    def to_rank(self, e: Entry, rank: int) -> Entry:
        """``e`` with leading 1-dimensions added (ONNX multidirectional broadcasting), layout kept if possible."""
        if e.rank == rank:
            return e
        shape = (1,) * (rank - e.rank) + e.shape
        if e.is_const:
            return Entry(shape, data=e.data.reshape(shape), quant=e.quant)
        lead = rank - e.rank
        layout = tuple(range(lead)) + tuple(p + lead for p in e.perm)
        stored = self.move(lambda v: self.g.reshape(v, (1,) * lead + tuple(e.value.shape)), e.value)
        return Entry(shape, value=stored, layout=None if layout == tuple(range(rank)) else layout, quant=e.quant)

    def common_layout(self, entries: list[Entry]) -> tuple[list[Entry], tuple[int, ...]]:
        """Entries brought to one rank, and the layout of the first non-constant one."""
        rank = max(e.rank for e in entries)
        entries = [self.to_rank(e, rank) for e in entries]
        layout = next((e.perm for e in entries if not e.is_const), tuple(range(rank)))
        return entries, layout

    def reshape_onnx(self, e: Entry, shape: tuple[int, ...]) -> Value:
        """RESHAPE in ONNX order (data moves only if the entry is not stored in ONNX order)."""
        return self.move(lambda v: self.g.reshape(v, tuple(int(d) for d in shape)), self.onnx_order(e))

    def channel_shape(self, rank: int, axis: int, layout: tuple[int, ...], size: int) -> tuple[int, ...]:
        """Broadcast shape of a per-channel vector along ONNX ``axis`` in stored ``layout``."""
        shape = [1] * rank
        shape[layout.index(axis % rank)] = size
        return tuple(shape)

    def dequantize(self, e: Entry) -> Entry:
        """Materialise a lazily dequantized entry as float32: scale · (q − zp), as ONNX computes it."""
        q = e.quant
        if e.is_const:
            data = ((e.data.astype(np.int64) - _bcast(q.zero_point, e.rank, q.axis)).astype(np.float32)
                    * _bcast(q.scale, e.rank, q.axis))
            return Entry(e.shape, data=data.astype(np.float32))
        v, zp_shift = self.signed(e.value)
        x = self.g.cast(v, DType.FP32)
        perm = e.perm
        if q.per_channel:
            shape = self.channel_shape(e.rank, q.axis, perm, q.scale.size)
            zp = self.g.const((q.zero_point + zp_shift).astype(np.float32).reshape(shape))
            scale = self.g.const(q.scale.astype(np.float32).reshape(shape))
        else:
            zp = self.g.const(np.full((1,) * e.rank, q.zp + zp_shift, np.float32))
            scale = self.g.const(np.full((1,) * e.rank, q.s, np.float32))
        x = self.g.mul(self.g.sub(x, zp), scale)
        return Entry(e.shape, value=x, layout=e.layout)

    def signed(self, v: Value) -> tuple[Value, int]:
        """An int8 view of a uint8 value (q − 128, exact), and the zero-point shift it implies."""
        if v.dtype is DType.UINT8:
            return self.g.rescale(v, DType.INT8, multiplier=1 << 30, shift=30, input_zp=0, output_zp=-128), -128
        return v, 0

    def int32(self, v: Value) -> Value:
        """A plain integer value as int32, exactly (uint8 through its int8 view: q − 128, then + 128)."""
        if v.dtype is DType.UINT8:
            shifted = self.g.cast(self.signed(v)[0], DType.INT32)
            return self.g.add(shifted, self.g.const(np.full((1,) * v.type.rank, 128, np.int32)))
        return v if v.dtype is DType.INT32 else self.g.cast(v, DType.INT32)

    def wrapped(self, v: Value, dtype: DType) -> Value:
        """int32 ``v`` wrapped to ``dtype`` as C's conversion does (modulo 2^bits)."""
        if dtype is DType.INT32:
            return v
        if dtype is not DType.UINT8:
            return self.g.cast(v, dtype)                        # CAST narrows by truncation
        g, ones = self.g, (1,) * v.type.rank
        low_byte = g.bitwise_and(v, g.const(np.full(ones, 255, np.int32)))
        return self.unsigned(g.cast(g.add(low_byte, g.const(np.full(ones, -128, np.int32))), DType.INT8))

    def unsigned(self, v: Value) -> Value:
        """The uint8 value q + 128 of an int8 value (exact)."""
        return self.g.rescale(v, DType.UINT8, multiplier=1 << 30, shift=30, input_zp=0, output_zp=128)

    def requantize(self, acc: Value, real_scale: np.ndarray, out: QOut, channel_axis: int | None = None) -> Value:
        """RESCALE an int32 accumulator (or an int8 value) to the output quantization, with the fused clamp."""
        unsigned = out.dtype is DType.UINT8
        zp = out.quant.zp - (128 if unsigned else 0)
        mult, shift = multipliers_shifts(real_scale, "requantization")
        per_channel = len(mult) > 1
        if per_channel and channel_axis != acc.type.rank - 1:
            raise UnsupportedError("per-channel requantization needs the channel dimension last")
        y = self.g.rescale(acc, DType.INT8, multiplier=mult, shift=shift, input_zp=0, output_zp=zp,
                           per_channel=per_channel)
        lo, hi = _quantized_bound(out.low, out.quant.s, zp, -128), _quantized_bound(out.high, out.quant.s, zp, 127)
        if lo > -128 or hi < 127:
            y = self.g.clamp(y, min_val=max(lo, -128), max_val=min(hi, 127))
        return self.unsigned(y) if unsigned else y


def _quantized_bound(real: float, scale: float, zp: int, default: int) -> int:
    if math.isinf(real):
        return default
    return int(np.clip(np.rint(np.float32(real) / np.float32(scale)) + zp, -128, 127))


def _bcast(values: np.ndarray, rank: int, axis: int | None) -> np.ndarray:
    if values.size == 1 or axis is None:
        return values.reshape(())
    shape = [1] * rank
    shape[axis % rank] = values.size
    return values.reshape(shape)


def convert(proto: onnx.ModelProto, consts: Mapping[str, np.ndarray], io: str,
            bound: Mapping[str, np.ndarray] | None = None) -> Graph:
    return Converter(proto, dict(consts), io=io, bound=bound).run()

"""A Pythonic way to build graphs.

    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 8, 8, 3))
    w = g.const(np.ones((4, 3, 3, 3), np.int8))
    y = g.conv2d(x, w, pad=(1, 1, 1, 1), input_zp=-3)
    g.output(y)
    graph = g.build()

Scalar operands that TOSA 1.0 passes as tensors (zero points, RESCALE
multiplier/shift, MUL shift, PAD padding, SLICE start/size ...) may be given as
Python ints or tuples: the builder creates the CONST / CONST_SHAPE ops. Every
op's output type is inferred; every other op of the IR is available as a
lower-case method (``g.add(a, b)``, ``g.clamp(x, min_val=-128, max_val=127)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tosac.errors import VerificationError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType
from tosac.ir.ops import SCHEMAS, RoundingMode, default_acc_type
from tosac.ir.shape_inference import infer_types
from tosac.ir.verifier import verify as verify_graph

NUMPY_TO_DTYPE = {np.dtype(np.bool_): DType.BOOL, np.dtype(np.int8): DType.INT8,
                   np.dtype(np.uint8): DType.UINT8, np.dtype(np.int16): DType.INT16,
                   np.dtype(np.uint16): DType.UINT16, np.dtype(np.int32): DType.INT32,
                   np.dtype(np.int64): DType.INT64, np.dtype(np.float16): DType.FP16,
                   np.dtype(np.float32): DType.FP32}

Operand = "Value | int | Sequence[int] | np.ndarray"


@dataclass(frozen=True)
class Value:
    """A tensor of the graph being built."""
    name: str
    type: TensorType

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape


class GraphBuilder:
    """Builds one block; ``block(name)`` gives a builder for a control-flow body."""

    def __init__(self, name: str = "main", *, graph: Graph | None = None):
        self.graph = graph if graph is not None else Graph()
        if name in self.graph.blocks:
            raise ValueError(f"block '{name}' already exists")
        self.blk = Block(name)
        self.graph.blocks[name] = self.blk
        self._counter = 0

    # ------------------------------------------------------------ basics
    def _fresh(self, stem: str) -> str:
        while True:
            self._counter += 1
            name = f"{stem}_{self._counter}"
            if name not in self.blk.tensors:
                return name

    def input(self, name: str, dtype: DType, shape: Sequence[int]) -> Value:
        """Declare a block input."""
        self._declare(name, TensorType(dtype, tuple(int(d) for d in shape)))
        self.blk.inputs.append(name)
        return Value(name, self.blk.tensors[name].type)

    def const(self, data: Any, dtype: DType | None = None, name: str | None = None) -> Value:
        """A CONST tensor; ``dtype`` defaults from the numpy dtype (int48/int4 must be explicit)."""
        arr = np.asarray(data)
        if dtype is None:
            if arr.dtype not in NUMPY_TO_DTYPE:
                raise VerificationError("CONST", name, f"numpy dtype {arr.dtype} has no IR dtype; pass dtype=")
            dtype = NUMPY_TO_DTYPE[arr.dtype]
        if dtype.is_int and arr.size and (int(arr.min()) < dtype.min or int(arr.max()) > dtype.max):
            raise VerificationError("CONST", name, f"values do not fit {dtype.name}")
        arr = arr.astype(dtype.storage, order="C")             # C order: kernels read constants as flat memory
        return self._const_op("CONST", arr, dtype, name or self._fresh("const"))

    def const_shape(self, values: Sequence[int], name: str | None = None) -> Value:
        """A CONST_SHAPE value (the shape operands of PAD, RESHAPE, SLICE, TILE, RESIZE)."""
        arr = np.asarray(list(values), dtype=np.int64).reshape(-1)
        return self._const_op("CONST_SHAPE", arr, DType.SHAPE, name or self._fresh("shape"))

    def _const_op(self, op_name: str, arr: np.ndarray, dtype: DType, name: str) -> Value:
        self._declare(name, TensorType(dtype, tuple(arr.shape)), arr)
        self.blk.ops.append(Op(op_name, [], [name]))
        return Value(name, self.blk.tensors[name].type)

    def _declare(self, name: str, ttype: TensorType, data: np.ndarray | None = None) -> None:
        if name in self.blk.tensors:
            raise VerificationError("builder", name, f"tensor name '{name}' is already used in block "
                                    f"'{self.blk.name}'")
        self.blk.tensors[name] = Tensor(name, ttype, data)

    def output(self, *values: Value) -> None:
        """Mark values as block outputs, in order."""
        self.blk.outputs.extend(v.name for v in values)

    def block(self, name: str) -> "GraphBuilder":
        """A builder for another block of the same graph (COND_IF / WHILE_LOOP bodies)."""
        return GraphBuilder(name, graph=self.graph)

    def build(self, verify: bool = True) -> Graph:
        """The finished graph, verified unless ``verify=False``."""
        if verify:
            verify_graph(self.graph)
        return self.graph

    # ------------------------------------------------------------ generic op
    def op(self, op_name: str, inputs: Sequence[Value], *, out_dtypes: Sequence[DType] | None = None,
           names: Sequence[str] | None = None, **attrs: Any) -> Any:
        """Append ``op_name(inputs, **attrs)``; returns one Value, or a list for multi-output ops."""
        schema = SCHEMAS[op_name]
        for key, spec in schema.attrs.items():
            if key not in attrs and spec.default is not None:
                attrs[key] = spec.default
        attrs = {k: tuple(int(x) for x in v) if isinstance(v, (list, np.ndarray)) else v
                 for k, v in attrs.items()}
        op = Op(op_name, [v.name for v in inputs], [], attrs)
        types = infer_types(op, self.blk, list(out_dtypes) if out_dtypes else None, blocks=self.graph.blocks)
        outs = list(names) if names else [self._fresh(op_name.lower()) for _ in types]
        for name, ttype in zip(outs, types):
            self._declare(name, ttype)
        op.outputs = outs
        self.blk.ops.append(op)
        values = [Value(n, t) for n, t in zip(outs, types)]
        return values if schema.results[0].startswith("*") else values[0]

    def __getattr__(self, attr: str) -> Any:
        name = attr.upper()
        if name in SCHEMAS and not attr.startswith("_"):
            return lambda *inputs, **attrs: self.op(name, list(inputs), **attrs)
        raise AttributeError(attr)

    # ------------------------------------------------------------ helpers
    def _scalar(self, value: Any, dtype: DType) -> Value:
        """A [1]-shaped operand: zero points, shifts, multipliers, pad values."""
        if isinstance(value, Value):
            return value
        return self.const(np.array([value]).reshape(-1), dtype)

    def _shape(self, value: Any) -> Value:
        return value if isinstance(value, Value) else self.const_shape(value)

    def _bias(self, bias: Any, acc: DType, channels: int) -> Value:
        if bias is None:
            bias = np.zeros((channels,), dtype=acc.storage)
        return bias if isinstance(bias, Value) else self.const(np.asarray(bias), acc)

    # ------------------------------------------------------------ typed ops
    def _conv(self, op_name: str, x: Value, w: Value, b: Any, channels: int, input_zp: Any, weight_zp: Any,
              acc_type: DType | None, **attrs: Any) -> Value:
        acc = acc_type or default_acc_type(x.dtype)
        out_dtype = {DType.INT32: DType.INT32, DType.INT48: DType.INT48}.get(acc, x.dtype)
        return self.op(op_name, [x, w, self._bias(b, out_dtype, channels), self._scalar(input_zp, x.dtype),
                                 self._scalar(weight_zp, w.dtype)], acc_type=acc, **attrs)

    def conv2d(self, x: Value, w: Value, b: Any = None, *, pad=(0, 0, 0, 0), stride=(1, 1), dilation=(1, 1),
               input_zp: Any = 0, weight_zp: Any = 0, acc_type: DType | None = None,
               local_bound: bool = False) -> Value:
        """CONV2D, NHWC input, OHWI weights."""
        return self._conv("CONV2D", x, w, b, w.shape[0], input_zp, weight_zp, acc_type, pad=pad,
                          stride=stride, dilation=dilation, local_bound=local_bound)

    def conv3d(self, x: Value, w: Value, b: Any = None, *, pad=(0,) * 6, stride=(1, 1, 1),
               dilation=(1, 1, 1), input_zp: Any = 0, weight_zp: Any = 0, acc_type: DType | None = None,
               local_bound: bool = False) -> Value:
        """CONV3D, NDHWC input, ODHWI weights."""
        return self._conv("CONV3D", x, w, b, w.shape[0], input_zp, weight_zp, acc_type, pad=pad,
                          stride=stride, dilation=dilation, local_bound=local_bound)

    def depthwise_conv2d(self, x: Value, w: Value, b: Any = None, *, pad=(0, 0, 0, 0), stride=(1, 1),
                         dilation=(1, 1), input_zp: Any = 0, weight_zp: Any = 0,
                         acc_type: DType | None = None, local_bound: bool = False) -> Value:
        """DEPTHWISE_CONV2D, weights [KH, KW, C, M]."""
        return self._conv("DEPTHWISE_CONV2D", x, w, b, w.shape[2] * w.shape[3], input_zp, weight_zp,
                          acc_type, pad=pad, stride=stride, dilation=dilation, local_bound=local_bound)

    def transpose_conv2d(self, x: Value, w: Value, b: Any = None, *, out_pad=(0, 0, 0, 0), stride=(1, 1),
                         input_zp: Any = 0, weight_zp: Any = 0, acc_type: DType | None = None,
                         local_bound: bool = False) -> Value:
        """TRANSPOSE_CONV2D, weights [OC, KH, KW, IC]."""
        return self._conv("TRANSPOSE_CONV2D", x, w, b, w.shape[0], input_zp, weight_zp, acc_type,
                          out_pad=out_pad, stride=stride, local_bound=local_bound)

    def matmul(self, a: Value, b: Value, *, a_zp: Any = 0, b_zp: Any = 0, out_dtype: DType | None = None) -> Value:
        """MATMUL of [N,H,C] by [N,C,W]; ``out_dtype=FP32`` makes fp16 operands accumulate in fp32."""
        return self.op("MATMUL", [a, b, self._scalar(a_zp, a.dtype), self._scalar(b_zp, b.dtype)],
                       out_dtypes=[out_dtype] if out_dtype else None)

    def avg_pool2d(self, x: Value, *, kernel, stride=(1, 1), pad=(0, 0, 0, 0), input_zp: Any = 0,
                   output_zp: Any = 0, acc_type: DType | None = None) -> Value:
        acc = acc_type or (DType.INT32 if x.dtype.is_int else DType.FP32)
        return self.op("AVG_POOL2D", [x, self._scalar(input_zp, x.dtype), self._scalar(output_zp, x.dtype)],
                       kernel=kernel, stride=stride, pad=pad, acc_type=acc)

    def mul(self, a: Value, b: Value, *, shift: Any = 0) -> Value:
        return self.op("MUL", [a, b, self._scalar(shift, DType.INT8)])

    def negate(self, x: Value, *, input_zp: Any = 0, output_zp: Any = 0) -> Value:
        return self.op("NEGATE", [x, self._scalar(input_zp, x.dtype), self._scalar(output_zp, x.dtype)])

    def table(self, x: Value, table: Any) -> Value:
        tab = table if isinstance(table, Value) else self.const(np.asarray(table), x.dtype)
        return self.op("TABLE", [x, tab])

    def rescale(self, x: Value, out_dtype: DType, *, multiplier: Any, shift: Any, input_zp: Any = 0,
                output_zp: Any = 0, scale32: bool = True,
                rounding_mode: RoundingMode = RoundingMode.SINGLE_ROUND, per_channel: bool | None = None,
                input_unsigned: bool | None = None, output_unsigned: bool | None = None) -> Value:
        """RESCALE; ``multiplier``/``shift`` may be lists (per-channel over the last axis)."""
        mult = np.asarray(multiplier).reshape(-1)
        per_channel = bool(mult.size > 1) if per_channel is None else per_channel
        in_unsigned = x.dtype in (DType.UINT8, DType.UINT16) if input_unsigned is None else input_unsigned
        out_unsigned = out_dtype in (DType.UINT8, DType.UINT16) if output_unsigned is None else output_unsigned
        m = multiplier if isinstance(multiplier, Value) else self.const(mult, DType.INT32 if scale32 else DType.INT16)
        s = shift if isinstance(shift, Value) else self.const(np.asarray(shift).reshape(-1), DType.INT8)
        return self.op("RESCALE", [x, m, s, self._scalar(input_zp, x.dtype), self._scalar(output_zp, out_dtype)],
                       out_dtypes=[out_dtype], scale32=scale32, rounding_mode=rounding_mode,
                       per_channel=per_channel, input_unsigned=in_unsigned, output_unsigned=out_unsigned)

    def cast(self, x: Value, out_dtype: DType) -> Value:
        return self.op("CAST", [x], out_dtypes=[out_dtype])

    def pad(self, x: Value, padding: Any, *, pad_const: Any = 0) -> Value:
        """PAD; ``padding`` is [before0, after0, before1, after1, ...]."""
        return self.op("PAD", [x, self._shape(padding), self._scalar(pad_const, x.dtype)])

    def reshape(self, x: Value, shape: Any) -> Value:
        return self.op("RESHAPE", [x, self._shape(shape)])

    def slice(self, x: Value, start: Any, size: Any) -> Value:
        return self.op("SLICE", [x, self._shape(start), self._shape(size)])

    def tile(self, x: Value, multiples: Any) -> Value:
        return self.op("TILE", [x, self._shape(multiples)])

    def resize(self, x: Value, *, scale: Any, offset: Any, border: Any, mode) -> Value:
        return self.op("RESIZE", [x, self._shape(scale), self._shape(offset), self._shape(border)], mode=mode)

    def concat(self, *values: Value, axis: int) -> Value:
        return self.op("CONCAT", list(values), axis=axis)

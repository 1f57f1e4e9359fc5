"""TFLite subgraph 0 → tosac graph, each int8 builtin legalised to exact TOSA integer ops.

Layout: TFLite is NHWC like TOSA, so no transposes. The law is the TFLite
reference kernels (``BUILTIN_REF``); see :mod:`.fixed_point` for why RESCALE
with DOUBLE_ROUND reproduces ``MultiplyByQuantizedMultiplier`` bit for bit.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.Padding import Padding
from tflite.TensorType import TensorType

from tosac.errors import FrontendError, TosacError, UnsupportedError
from tosac.frontends.tflite.fixed_point import (INT32_MAX, INT32_MIN, activation_range, quantize_multiplier,
                                                 tosa_rescale_params)
from tosac.frontends.tflite.reader import ModelDef, OpDef, TensorDef
from tosac.ir.builder import GraphBuilder, Value
from tosac.ir.dtypes import DType
from tosac.ir.graph import Graph
from tosac.ir.ops import RoundingMode

ACT_NAMES = {v: k for k, v in vars(ActivationFunctionType).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}
# Quantized activation types: int8, and int16 with zero point 0 (TFLite's "int16x8": int8 weights).
ACTIVATION_DTYPES = {TensorType.INT8: DType.INT8, TensorType.INT16: DType.INT16}
_NUMPY = {TensorType.INT8: np.int8, TensorType.INT32: np.int32, TensorType.INT64: np.int64,
          TensorType.UINT8: np.uint8, TensorType.INT16: np.int16, TensorType.FLOAT32: np.float32}

# Operators whose int32/int64 index output may be a graph output.
INDEX_OPS = frozenset({"ARG_MAX"})

Handler = Callable[["Converter", OpDef], None]
HANDLERS: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn
    return register


class Converter:
    """Converts one :class:`ModelDef`; graph inputs/outputs are int8 or int16 (float edges' QUANTIZE/DEQUANTIZE
    dropped)."""

    def __init__(self, model: ModelDef):
        self.m = model
        self.g = GraphBuilder()
        self.env: dict[int, Value] = {}
        self.io_quant: dict[str, dict[str, float | int]] = {}
        self.skip: set[int] = set()
        self.names: set[str] = set()

    # ------------------------------------------------------------ tensors
    def t(self, idx: int) -> TensorDef:
        return self.m.tensors[idx]

    def where(self, op: OpDef) -> str:
        return f"{self.m.source}: operator {op.index} ({op.name})"

    def quant(self, idx: int, op: OpDef) -> tuple[float, int]:
        """Per-tensor (scale as float32 widened to float64, zero point)."""
        t = self.t(idx)
        if t.scales.size != 1 or t.zero_points.size != 1:
            raise UnsupportedError(f"{self.where(op)}: tensor {idx} ('{t.name}') must be quantized per tensor, "
                                   f"has {t.scales.size} scales")
        s = float(np.float32(t.scales[0]))
        if not (s > 0 and np.isfinite(s)):
            raise UnsupportedError(f"{self.where(op)}: tensor {idx} has scale {s}")
        z = int(t.zero_points[0])
        if t.type == TensorType.INT8 and not -128 <= z <= 127:
            raise FrontendError(f"{self.where(op)}: int8 tensor {idx} has zero point {z}")
        if t.type == TensorType.INT16 and z != 0:
            raise UnsupportedError(f"{self.where(op)}: int16 tensor {idx} has zero point {z} (TFLite's int16 "
                                   "kernels require 0)")
        return s, z

    def dtype(self, idx: int, op: OpDef) -> DType:
        """The IR type of a quantized activation tensor (int8 or int16)."""
        t = self.t(idx)
        if t.type not in ACTIVATION_DTYPES:
            raise UnsupportedError(f"{self.where(op)}: tensor {idx} ('{t.name}') is "
                                   f"{TYPE_NAMES.get(t.type, t.type)}; only int8 and int16 activations are supported")
        return ACTIVATION_DTYPES[t.type]

    def _edge_quant(self, idx: int) -> dict | None:
        """An int8 graph input's or output's scale and zero point (for the C header and the user), when the
        file gives one per tensor."""
        t = self.t(idx)
        if t.scales.size != 1 or t.zero_points.size != 1 or not float(t.scales[0]) > 0:
            return None
        return {"scale": float(np.float32(t.scales[0])), "zero_point": int(t.zero_points[0]),
                "dtype": ACTIVATION_DTYPES[t.type].name.lower()}

    def const_array(self, idx: int, op: OpDef) -> np.ndarray:
        t = self.t(idx)
        if t.data is None:
            raise UnsupportedError(f"{self.where(op)}: tensor {idx} ('{t.name}') must be a constant")
        dt = _NUMPY.get(t.type)
        if dt is None:
            raise UnsupportedError(f"{self.where(op)}: constant tensor {idx} of type {TYPE_NAMES.get(t.type)}")
        dt = np.dtype(dt).newbyteorder("<")
        n = int(np.prod(t.shape, dtype=np.int64))
        if len(t.data) != n * dt.itemsize:
            raise FrontendError(f"{self.where(op)}: tensor {idx} buffer has {len(t.data)} bytes, shape "
                                f"{list(t.shape)} needs {n * dt.itemsize}")
        return np.frombuffer(t.data, dt).astype(dt.newbyteorder("=")).reshape(t.shape)

    def value(self, idx: int, op: OpDef, dtype: int | tuple[int, ...] = TensorType.INT8) -> Value:
        """Tensor ``idx`` as an IR value (constants materialised); ``dtype``: the TFLite type(s) accepted."""
        if idx < 0:
            raise FrontendError(f"{self.where(op)}: a required input is absent (-1)")
        t = self.t(idx)
        allowed = dtype if isinstance(dtype, tuple) else (dtype,)
        if t.type not in allowed:
            raise UnsupportedError(f"{self.where(op)}: tensor {idx} ('{t.name}') is "
                                   f"{TYPE_NAMES.get(t.type, t.type)}, expected {' or '.join(TYPE_NAMES.get(d, str(d)) for d in allowed)}")
        if idx not in self.env:
            if t.data is None:
                raise FrontendError(f"{self.where(op)}: tensor {idx} ('{t.name}') is read before it is written")
            self.env[idx] = self.g.const(self.const_array(idx, op))
        return self.env[idx]

    def define(self, op: OpDef, v: Value, k: int = 0) -> None:
        idx = op.outputs[k]
        t = self.t(idx)
        if tuple(v.shape) != t.shape:
            raise FrontendError(f"{self.where(op)}: output tensor {idx} has shape {list(t.shape)} but the operator "
                                f"computes {list(v.shape)}")
        if idx in self.env:
            raise FrontendError(f"{self.where(op)}: tensor {idx} is written twice")
        self.env[idx] = v

    def out_int8(self, op: OpDef, k: int = 0, allowed: tuple[int, ...] = (TensorType.INT8,)) -> int:
        """Output ``k``'s tensor index, checked to be of an ``allowed`` type (the ops that take int16 say so)."""
        idx = op.outputs[k]
        if self.t(idx).type not in allowed:
            raise UnsupportedError(f"{self.where(op)}: output of type {TYPE_NAMES.get(self.t(idx).type)}; only "
                                   f"{' or '.join(TYPE_NAMES[a] for a in allowed)} is supported")
        return idx

    def unary_int8(self, op: OpDef, allowed: tuple[int, ...] = (TensorType.INT8,)
                   ) -> tuple[Value, int, tuple[float, int], tuple[float, int]]:
        """A one-input op's input value, output index and the two (scale, zero point) pairs; input and output
        of the same type, one of ``allowed``."""
        nargs(op, self, 1)
        out = self.out_int8(op, allowed=allowed)
        return self.value(op.inputs[0], op, self.t(out).type), out, self.quant(op.inputs[0], op), \
            self.quant(out, op)

    def act(self, op: OpDef, fn_code: int, out: int) -> tuple[int, int]:
        name = ACT_NAMES.get(fn_code, str(fn_code))
        s, z = self.quant(out, op)
        dt = self.dtype(out, op)
        return activation_range(name, s, z, dt.min, dt.max, where=f"{self.where(op)} option fused_activation_function")

    def name(self, raw: str, fallback: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", raw) or fallback
        if not re.match(r"[A-Za-z_]", base):
            base = "t_" + base
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    # ------------------------------------------------------------ emission helpers
    def to_int32(self, x: Value, zp: int, left_shift: int = 0) -> Value:
        """``(x − zp) · 2^left_shift`` as int32, exactly: RESCALE by 2^(l+s) >> s, where RESCALE requires
        |input| < 2^(s−1): s = 9 for int8 (|x − zp| < 2^8), 17 for int16 (zp 0, |x| <= 2^15); an int16
        ``l`` above 13 (multiplier beyond 2^30) is an int32 MUL by 2^l after. The caller keeps the product
        within int32."""
        s = 9 if x.dtype == DType.INT8 else 17
        direct = left_shift + s <= 30
        y = self.g.rescale(x, DType.INT32, multiplier=1 << ((left_shift if direct else 0) + s), shift=s,
                           input_zp=zp)
        return y if direct else self.g.mul(y, self.g.const(np.full([1] * len(y.shape), 1 << left_shift, np.int32)))

    def requantize(self, acc: Value, scales: list[float] | np.ndarray, out_dtype: DType, out_zp: int,
                   lo: int, hi: int, where: str, rounding: RoundingMode = RoundingMode.DOUBLE_ROUND,
                   quantized: list[tuple[int, int]] | None = None,
                   acc_range: tuple[int, int] | None = None) -> Value:
        """``clamp(MultiplyByQuantizedMultiplier(acc, QuantizeMultiplier(scale)) + out_zp, lo, hi)`` per channel.

        ``quantized``: TFLite's ``(M, s)`` pairs where the kernel does not derive them from a scale.
        ``acc_range``: bounds ``acc`` is known to lie in; the clamp RESCALE's left-shift case needs is left out
        where they already keep ``acc`` inside it.
        """
        mults, shifts, bounds = tosa_rescale_params(scales, where, quantized)
        if bounds is not None and acc_range is not None and \
                all(b is None or -b <= acc_range[0] <= acc_range[1] <= b - 1 for b in bounds):
            bounds = None
        if bounds is not None:
            acc = self.clamp_channels(acc, [(-b if b else INT32_MIN) for b in bounds],
                                      [(b - 1 if b else INT32_MAX) for b in bounds])
        out = self.g.rescale(acc, out_dtype, multiplier=mults, shift=shifts, output_zp=out_zp,
                             rounding_mode=rounding, per_channel=len(mults) > 1)
        if lo > out_dtype.min or hi < out_dtype.max:
            out = self.g.clamp(out, min_val=lo, max_val=hi)
        return out

    def gather_table(self, k: Value, table: list[int]) -> Value:
        """``table[k]`` for every element of the int32 index tensor ``k`` (GATHER from a constant int32 table):
        an exact lookup of values wider than TABLE's int8 results."""
        values = self.g.const(np.asarray(table, np.int32).reshape(1, len(table), 1))
        return self.g.reshape(self.g.gather(values, self.g.reshape(k, [1, int(np.prod(k.shape))])), k.shape)

    def clamp_channels(self, x: Value, lo: list[int], hi: list[int]) -> Value:
        """Clamp an int32 tensor per channel (last axis) with MAXIMUM/MINIMUM (CLAMP has no int32)."""
        shape = [1] * (len(x.shape) - 1) + [len(lo)]
        x = self.g.maximum(x, self.g.const(np.asarray(lo, np.int32).reshape(shape)))
        return self.g.minimum(x, self.g.const(np.asarray(hi, np.int32).reshape(shape)))

    def broadcast_rank(self, x: Value, rank: int) -> Value:
        if len(x.shape) == rank:
            return x
        return self.g.reshape(x, [1] * (rank - len(x.shape)) + list(x.shape))

    # ------------------------------------------------------------ the model
    def convert(self) -> Graph:
        m = self.m
        producers = {o: op for op in m.ops for o in op.outputs}
        consumers: dict[int, list[OpDef]] = {}
        for op in m.ops:
            for i in op.inputs:
                consumers.setdefault(i, []).append(op)
        for idx in m.inputs:
            t = self.t(idx)
            if t.type in ACTIVATION_DTYPES:
                v = self.g.input(self.name(t.name, f"input_{idx}"), ACTIVATION_DTYPES[t.type], t.shape)
                self.env[idx] = v
                if self._edge_quant(idx):
                    self.io_quant[v.name] = self._edge_quant(idx)
                continue
            users = consumers.get(idx, [])
            if (t.type == TensorType.FLOAT32 and users and
                    all(u.name == "QUANTIZE" and self.t(u.outputs[0]).type in ACTIVATION_DTYPES for u in users)
                    and len(users) == 1):
                q = users[0]
                out = q.outputs[0]
                s, z = self.quant(out, q)
                dt = ACTIVATION_DTYPES[self.t(out).type]
                v = self.g.input(self.name(t.name, f"input_{idx}"), dt, self.t(out).shape)
                self.env[out] = v
                self.io_quant[v.name] = {"scale": s, "zero_point": z, "dtype": dt.name.lower()}
                self.skip.add(q.index)
                continue
            raise UnsupportedError(f"{m.source}: graph input {idx} ('{t.name}') is "
                                   f"{TYPE_NAMES.get(t.type, t.type)}; only int8/int16 inputs (or float inputs read "
                                   "only by one QUANTIZE) are supported")
        outputs: list[int] = []
        for idx in m.outputs:
            t = self.t(idx)
            p = producers.get(idx)
            if t.type == TensorType.FLOAT32 and p is not None and p.name == "DEQUANTIZE" and \
                    self.t(p.inputs[0]).type in ACTIVATION_DTYPES:
                self.skip.add(p.index)
                s, z = self.quant(p.inputs[0], p)
                outputs.append(p.inputs[0])
                self.io_quant[f"output:{len(outputs) - 1}"] = {
                    "scale": s, "zero_point": z, "dtype": ACTIVATION_DTYPES[self.t(p.inputs[0]).type].name.lower()}
            elif t.type in ACTIVATION_DTYPES:
                outputs.append(idx)
                if self._edge_quant(idx):
                    self.io_quant[f"output:{len(outputs) - 1}"] = self._edge_quant(idx)
            elif t.type in (TensorType.INT32, TensorType.INT64) and p is not None and p.name in INDEX_OPS:
                outputs.append(idx)                 # an index (int64 ones computed as int32, as for ONNX)
            else:
                raise UnsupportedError(f"{m.source}: graph output {idx} ('{t.name}') is "
                                       f"{TYPE_NAMES.get(t.type, t.type)}; only int8/int16 outputs (and int32/int64 "
                                       f"indices of {', '.join(sorted(INDEX_OPS))}) are supported")
        for op in m.ops:
            if op.index in self.skip:
                continue
            handler = HANDLERS.get(op.name)
            if handler is None:
                raise UnsupportedError(f"{self.where(op)}: operator {op.name} is not supported by the TFLite "
                                       "frontend")
            try:
                handler(self, op)
            except (FrontendError, UnsupportedError):
                raise
            except TosacError as e:                 # e.g. the verifier on sizes beyond the TOSA level limits
                raise FrontendError(f"{self.where(op)}: cannot be legalised: {e}") from e
            except (ValueError, IndexError, KeyError, TypeError, OverflowError, ZeroDivisionError) as e:
                raise FrontendError(f"{self.where(op)}: {type(e).__name__}: {e}") from e
        vals = []
        for k, idx in enumerate(outputs):
            if idx not in self.env:
                raise FrontendError(f"{m.source}: graph output tensor {idx} is never computed")
            v = self.env[idx]
            if v.name in self.g.blk.inputs or v in vals:
                v = self.g.identity(v)
            vals.append(v)
        self.g.output(*vals)
        try:
            graph = self.g.build()
        except (FrontendError, UnsupportedError):
            raise
        except TosacError as e:
            raise FrontendError(f"{m.source}: the legalised graph does not verify: {e}") from e
        io = {}
        for k, v in enumerate(vals):
            q = self.io_quant.pop(f"output:{k}", None)
            if q is not None:
                io[v.name] = q
        io.update(self.io_quant)
        if io:
            graph.metadata["io_quantization"] = io
        return graph


def opt(op: OpDef, cv: Converter, *expected: str):
    """The op's options object; absent options are an error where the op needs them."""
    if op.options is None or op.options_name not in expected:
        raise FrontendError(f"{cv.where(op)}: options {op.options_name}, expected {' or '.join(expected)}")
    return op.options


def nargs(op: OpDef, cv: Converter, lo: int, hi: int | None = None) -> None:
    hi = lo if hi is None else hi
    if not (lo <= len(op.inputs) <= hi) or len(op.outputs) != 1:
        raise FrontendError(f"{cv.where(op)}: {len(op.inputs)} inputs and {len(op.outputs)} outputs")


def convert(model: ModelDef) -> Graph:
    """Convert a parsed model (the legalisation modules must have been imported)."""
    return Converter(model).convert()

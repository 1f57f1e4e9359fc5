"""Writing ``.tflite`` flatbuffers with the published schema's builder functions (the ``tflite`` package).

    w = ModelWriter()
    x = w.tensor((1, 8, 8, 3), "INT8", scale=0.05, zp=-3)
    ...
    w.op("CONV_2D", [x, f, b], [y], "Conv2DOptions", Padding=SAME, StrideH=1, StrideW=1, ...)
    data = w.build(inputs=[x], outputs=[y])

Used by the tests (models drawn by hypothesis) and by :mod:`tosac.models` (the
bundled networks as TFLite files); nothing here needs TensorFlow. Option fields
are the schema's names (``<Options>Add<Field>``); list values become int32
vectors.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType

SAME, VALID = 0, 1          # tflite.Padding


class ModelWriter:
    """A one-subgraph model: tensors (constant when given ``data``), operators, then :meth:`build`."""

    def __init__(self) -> None:
        self.tensors: list[dict] = []
        self.buffers: list[bytes] = [b""]
        self.ops: list[tuple] = []
        self.codes: list[int] = []

    def tensor(self, shape, ttype: str, *, scale=None, zp=None, data: np.ndarray | None = None, qdim: int = 0,
               name: str | None = None) -> int:
        buf = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data).astype(np.asarray(data).dtype.newbyteorder("<")).tobytes())
            buf = len(self.buffers) - 1
        self.tensors.append(dict(shape=list(shape), type=getattr(TensorType, ttype), buffer=buf,
                                 name=name or f"t{len(self.tensors)}",
                                 scale=None if scale is None else np.atleast_1d(np.asarray(scale, np.float32)),
                                 zp=None if zp is None else np.atleast_1d(np.asarray(zp, np.int64)), qdim=qdim))
        return len(self.tensors) - 1

    def op(self, name: str, inputs, outputs, options: str | None = None, **fields) -> None:
        code = getattr(BuiltinOperator, name)
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append((self.codes.index(code), list(inputs), list(outputs), options, fields))

    # ------------------------------------------------------------ serialisation
    @staticmethod
    def _vec(b: flatbuffers.Builder, arr: np.ndarray) -> int:
        return b.CreateNumpyVector(np.asarray(arr))

    @staticmethod
    def _offsets(b: flatbuffers.Builder, offs: list[int]) -> int:
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    @staticmethod
    def _bytes(b: flatbuffers.Builder, data: bytes) -> int:
        b.StartVector(1, len(data), 16)
        b.head = b.head - len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        return b.EndVector()

    def build(self, inputs, outputs, description: str = "written by tosac") -> bytes:
        b = flatbuffers.Builder(1024)
        buffers = []
        for data in self.buffers:
            d = self._bytes(b, data) if data else None
            tflite.BufferStart(b)
            if d is not None:
                tflite.BufferAddData(b, d)
            buffers.append(tflite.BufferEnd(b))
        tensors = []
        for t in self.tensors:
            name = b.CreateString(t["name"])
            shape = self._vec(b, np.asarray(t["shape"], np.int32))
            q = None
            if t["scale"] is not None:
                sc = self._vec(b, t["scale"].astype(np.float32))
                zp = self._vec(b, t["zp"].astype(np.int64))
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, sc)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                tflite.QuantizationParametersAddQuantizedDimension(b, t["qdim"])
                q = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, t["type"])
            tflite.TensorAddBuffer(b, t["buffer"])
            tflite.TensorAddName(b, name)
            if q is not None:
                tflite.TensorAddQuantization(b, q)
            tensors.append(tflite.TensorEnd(b))
        ops = []
        for ci, ins, outs, oname, fields in self.ops:
            opts = None
            if oname is not None:
                vectors = {k: self._vec(b, np.asarray(v, np.int32)) for k, v in fields.items()
                           if isinstance(v, (list, tuple, np.ndarray))}
                getattr(tflite, f"{oname}Start")(b)
                for k, v in fields.items():
                    getattr(tflite, f"{oname}Add{k}")(b, vectors.get(k, v))
                opts = getattr(tflite, f"{oname}End")(b)
            iv, ov = self._vec(b, np.asarray(ins, np.int32)), self._vec(b, np.asarray(outs, np.int32))
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, ci)
            tflite.OperatorAddInputs(b, iv)
            tflite.OperatorAddOutputs(b, ov)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, getattr(BuiltinOptions, oname))
                tflite.OperatorAddBuiltinOptions(b, opts)
            ops.append(tflite.OperatorEnd(b))
        tv, opv = self._offsets(b, tensors), self._offsets(b, ops)
        iv, ov = self._vec(b, np.asarray(inputs, np.int32)), self._vec(b, np.asarray(outputs, np.int32))
        name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tv)
        tflite.SubGraphAddInputs(b, iv)
        tflite.SubGraphAddOutputs(b, ov)
        tflite.SubGraphAddOperators(b, opv)
        tflite.SubGraphAddName(b, name)
        sg = tflite.SubGraphEnd(b)
        codes = []
        for code in self.codes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            codes.append(tflite.OperatorCodeEnd(b))
        cv, sgv, bv = self._offsets(b, codes), self._offsets(b, [sg]), self._offsets(b, buffers)
        desc = b.CreateString(description)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, cv)
        tflite.ModelAddSubgraphs(b, sgv)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, bv)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

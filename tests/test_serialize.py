"""Serialisation: TOSA flatbuffer and JSON round trips, official-tool compatibility, robustness.

Oracles: the official tosa-tools generated flatbuffer classes (``tosa.*``), the
official serializer's byte packing (``TosaSerializer.convertDataToUint8Vec``), the
official reference model (run in a subprocess), and hand-worked byte patterns. The real
files are the official conformance suite, made by the tosa-tools generator.
"""
from __future__ import annotations

import importlib
import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tosac.errors import SerializationError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType
from tosac.ir.ops import SCHEMAS, AttrKind, NanMode, ResizeMode, RoundingMode
from tosac.ir.serialize import format_graph, from_json, load, read_tosa, save, to_json, write_tosa
from tosac.ir.serialize import tosa_flatbuffer as tf


@pytest.fixture(scope="module")
def cts_files(require_tosa_tools) -> list[str]:
    """The test.tosa files of the official conformance suite (integer profile and extensions).

    The suite test_tosa_cts.py runs (same operators, the generator's own data): generated once per machine by
    tosa-tools (minutes, on the first run) and cached, see ``tosac.conformance.tosa_cts.generate_full``.
    """
    from tosac.conformance.tosa_cts import INT_OPERATORS, find_tools, generate_full

    dirs = generate_full(find_tools(), list(INT_OPERATORS), None, jobs=2)
    return sorted(str(d / "test.tosa") for d in dirs if (d / "test.tosa").exists())


@pytest.fixture(scope="module")
def official_classes(require_module) -> None:
    """The official generated flatbuffer classes ``tosa.*`` (tosa-tools) that ``_official_view`` reads with."""
    require_module("tosa.TosaGraph", extra="conformance")


def _sample(files: list[str], n: int, seed: int) -> list[str]:
    return sorted(random.Random(seed).sample(files, min(n, len(files))))


def _readable(files: list[str]) -> list[Graph]:
    """Graphs of files tosac can represent (a few ERROR_IF tests use FP8 etc.)."""
    out = []
    for f in files:
        try:
            out.append(read_tosa(f))
        except SerializationError as e:
            assert "ERRORIF" in f, f"{f}: {e}"
    return out


def assert_graphs_equal(a: Graph, b: Graph) -> None:
    assert a.version == b.version
    assert list(a.blocks) == list(b.blocks)
    for name in a.blocks:
        x, y = a.blocks[name], b.blocks[name]
        assert (x.name, x.inputs, x.outputs) == (y.name, y.inputs, y.outputs)
        assert x.ops == y.ops
        assert set(x.tensors) == set(y.tensors), name
        for t in x.tensors:
            p, q = x.tensors[t], y.tensors[t]
            assert (p.name, p.type) == (q.name, q.type)
            assert (p.data is None) == (q.data is None), t
            if p.data is not None:
                assert p.data.dtype == q.data.dtype, t
                assert p.data.shape == q.data.shape, t
                # bitwise equality (NaN payloads, -0.0)
                assert p.data.tobytes() == q.data.tobytes(), t


# ----------------------------------------------------------------------------------------------
# Real files
# ----------------------------------------------------------------------------------------------

def test_conformance_files_round_trip(cts_files: list[str]) -> None:
    files = _sample(cts_files, 700, seed=7)
    for g in _readable(files):
        again = read_tosa(write_tosa(g))
        assert_graphs_equal(g, again)
        assert_graphs_equal(g, from_json(to_json(g)))


def test_reads_expected_content_of_a_pad_test(cts_files: list[str]) -> None:
    # PAD tests: CONST_SHAPE padding lives in the shapes list, pad_const is a CONST tensor.
    f = next(f for f in cts_files if "/pad/" in f and "ERRORIF" not in f)
    g = read_tosa(f)
    ops = [op.name for op in g.ops]
    assert ops[-1] == "PAD" and "CONST_SHAPE" in ops
    pad = g.ops[-1]
    padding = g.tensors[pad.inputs[1]]
    assert padding.dtype is DType.SHAPE and padding.data.dtype == np.int64
    assert padding.shape == (2 * g.tensors[pad.inputs[0]].type.rank,)
    assert g.version[:2] == (1, 0)


def test_unsigned_rescale_tensors_come_back_unsigned(cts_files: list[str]) -> None:
    f = next(f for f in cts_files if "/rescale/" in f and "_iu1_ou0" in f and "_i8_" in f
             and "ERRORIF" not in f)
    g = read_tosa(f)
    rescale = next(op for op in g.ops if op.name == "RESCALE")
    assert rescale.attrs["input_unsigned"] is True
    assert g.tensors[rescale.inputs[0]].dtype is DType.UINT8
    f = next(f for f in cts_files if "/rescale/" in f and "_iu0_ou1" in f and "outi16" in f
             and "ERRORIF" not in f)
    g = read_tosa(f)
    rescale = next(op for op in g.ops if op.name == "RESCALE")
    assert g.tensors[rescale.outputs[0]].dtype is DType.UINT16


# ----------------------------------------------------------------------------------------------
# Official generated classes read our bytes the same way as the original
# ----------------------------------------------------------------------------------------------

def _official_view(data: bytes) -> dict:
    """Everything the official generated classes see in a file (minus writer metadata)."""
    tosa_graph = importlib.import_module("tosa.TosaGraph")   # tests using this request `official_classes`
    attribute = importlib.import_module("tosa.Attribute")
    attr_names = {v: k for k, v in vars(attribute.Attribute).items() if not k.startswith("_")}
    g = tosa_graph.TosaGraph.GetRootAs(data, 0)
    assert tosa_graph.TosaGraph.TosaGraphBufferHasIdentifier(data, 0)
    v = g.Version()
    out: dict = {"version": (v._Major(), v._Minor(), v._Patch()), "regions": []}
    for r in range(g.RegionsLength()):
        region = g.Regions(r)
        blk = region.Blocks(0)
        tensors = {}
        for i in range(blk.TensorsLength()):
            t = blk.Tensors(i)
            tensors[t.Name()] = (t.ShapeAsNumpy().tolist() if t.ShapeLength() else [], t.Type(),
                                 bytes(t.DataAsNumpy()) if t.DataLength() else b"")
        shapes = {}
        for i in range(blk.ShapesLength()):
            s = blk.Shapes(i)
            shapes[s.Name()] = (s.Rank(), bytes(s.DataAsNumpy()) if s.DataLength() else b"")
        ops = []
        for i in range(blk.OperatorsLength()):
            op = blk.Operators(i)
            attrs = {}
            if op.AttributeType():
                cls_name = attr_names[op.AttributeType()]
                cls = getattr(importlib.import_module(f"tosa.{cls_name}"), cls_name)
                a = cls()
                a.Init(op.Attribute().Bytes, op.Attribute().Pos)
                for m in dir(cls):
                    skip = m.startswith("GetRootAs") or m.endswith(
                        ("Length", "IsNone", "BufferHasIdentifier"))
                    if m[0].islower() or m[0] == "_" or m == "Init" or skip:
                        continue
                    if hasattr(cls, m + "AsNumpy"):
                        n = getattr(a, m + "Length")()
                        attrs[m] = bytes(getattr(a, m + "AsNumpy")()) if n else b""
                    elif not m.endswith("AsNumpy"):
                        val = getattr(a, m)()
                        attrs[m] = val
            ops.append((op.Op(), op.AttributeType(), attrs,
                        [op.Inputs(j) for j in range(op.InputsLength())],
                        [op.Outputs(j) for j in range(op.OutputsLength())]))
        out["regions"].append((region.Name(), blk.Name(),
                               [blk.Inputs(j) for j in range(blk.InputsLength())],
                               [blk.Outputs(j) for j in range(blk.OutputsLength())],
                               tensors, shapes, ops))
    return out


def test_official_classes_see_same_content(cts_files: list[str], official_classes: None) -> None:
    files = _sample([f for f in cts_files if "ERRORIF" not in f], 60, seed=3)
    files += [f for f in cts_files if "/clamp/" in f][:3]
    for f in files:
        original = Path(f).read_bytes()
        ours = write_tosa(read_tosa(original))
        assert _official_view(ours) == _official_view(original), f


_REF_SCRIPT = r"""
import json, sys, numpy as np
import tosa_reference_model as trm
from tosac.ir.serialize import read_tosa, write_tosa


def run(data, ins):
    try:
        return trm.run(data, ins)
    except ValueError as e:
        return [], "ValueError: " + str(e)


for d in sys.argv[1:]:
    desc = json.load(open(d + "/desc.json"))
    ins = [np.load(d + "/" + f) for f in desc["ifm_file"]]
    orig = open(d + "/test.tosa", "rb").read()
    ours = write_tosa(read_tosa(orig))
    r1, r2 = run(orig, ins), run(ours, ins)
    same = str(r1[1]) == str(r2[1]) and len(r1[0]) == len(r2[0]) and all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(r1[0], r2[0]))
    print("RESULT", d, str(r1[1]).replace(" ", "_"), same, flush=True)
"""


def _runnable(d: str) -> bool:
    desc = json.loads(Path(d, "desc.json").read_text())
    return not desc.get("expected_failure") and "ERRORIF" not in d and "i48" not in d


def _with_inputs(dirs: list[str], dest: Path) -> list[str]:
    """Copies of the test folders with their input .npy files, which the suite leaves to the runner to make."""
    from generator.datagenerator import GenerateLibrary   # tosa-tools' data generator, as its runner uses it

    from tosac.conformance.tosa_cts import copy_tests, find_tools

    library = GenerateLibrary(find_tools().generate_lib)
    copies = copy_tests([Path(d) for d in dirs], dest)
    for d in copies:
        desc = json.loads((d / "desc.json").read_text())
        if library.check_config(desc):
            library.set_config(desc)
            library.write_numpy_files(d)
    return [str(d) for d in copies]


def test_reference_model_runs_written_files_identically(cts_files: list[str], tmp_path: Path) -> None:
    by_kind: dict[str, list[str]] = {}   # test folders by operator folder (conv2d_3x3, pad, ...)
    for f in cts_files:
        by_kind.setdefault(Path(f).parent.parent.name, []).append(str(Path(f).parent))
    wanted = ["pad", "rescale", "conv2d_3x3", "table", "mul", "cond_if_binary", "cond_if_const",
              "clamp", "while_loop", "reshape", "transpose_conv2d_2x2", "concat", "resize"]
    dirs = []
    for kind in wanted:
        assert by_kind.get(kind), f"the conformance suite has no {kind} test"
        dirs += _sample([d for d in by_kind[kind] if _runnable(d)], 2, seed=11)
    unsigned = [d for d in by_kind["rescale"] if "_iu1" in d or "_ou1" in d]
    dirs += _sample([d for d in unsigned if _runnable(d)], 3, seed=12)
    dirs = _with_inputs(dirs, tmp_path)
    proc = subprocess.run([sys.executable, "-c", _REF_SCRIPT, *dirs], capture_output=True, text=True,
                          timeout=120)
    results = [line.split() for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert len(results) == len(dirs), proc.stderr[-2000:]
    for _, d, status, same in results:
        assert same == "True", f"{d}: reference model result differs for our written file"
    assert sum(status == "GraphStatus.TOSA_VALID" for _, _, status, _ in results) >= len(dirs) - 2


# ----------------------------------------------------------------------------------------------
# Every op: hand-built minimal graphs
# ----------------------------------------------------------------------------------------------

_INTS = {"pad": (0, 1, 2, 3), "stride": (1, 2), "dilation": (2, 1), "kernel": (2, 3), "out_pad": (1, 0, 0, 1),
         "perms": (1, 0)}


def _attr_value(op: str, name: str, kind: AttrKind):
    """A plausible non-default value for each attribute kind."""
    if kind is AttrKind.INT:
        return 1
    if kind is AttrKind.BOOL:
        return True
    if kind is AttrKind.INTS:
        return _INTS[name] if op != "CONV3D" or name == "pad" else (1, 2, 1)
    if kind is AttrKind.DTYPE:
        return DType.INT48
    if kind is AttrKind.NAN_MODE:
        return NanMode.IGNORE
    if kind is AttrKind.ROUNDING_MODE:
        return RoundingMode.DOUBLE_ROUND
    if kind is AttrKind.RESIZE_MODE:
        return ResizeMode.BILINEAR
    if kind is AttrKind.SCALAR:
        return -100 if name == "min_val" else 27000
    if kind is AttrKind.STRING:
        return {"then_graph": "then", "else_graph": "else", "cond_graph": "cond", "body_graph": "body"}[name]
    raise AssertionError(kind)


def _one_op_graph(name: str) -> Graph:
    s = SCHEMAS[name]
    main = Block("main")
    graph = Graph({"main": main}, version=(1, 0, 1))
    ops: list[Op] = []
    inputs: list[str] = []
    operand_names = [o.lstrip("*") for o in s.operands]
    if s.variadic:
        operand_names = operand_names[:-1] + [operand_names[-1] + "_a", operand_names[-1] + "_b"]
    for i, operand in enumerate(operand_names):
        if operand in s.shape_operands:
            main.tensors[operand] = Tensor(operand, TensorType(DType.SHAPE, (2,)),
                                           np.array([i, -i - 1], dtype=np.int64))
            ops.append(Op("CONST_SHAPE", [], [operand]))
        elif operand.endswith("_zp") or operand in ("multiplier", "shift"):
            main.tensors[operand] = Tensor(operand, TensorType(DType.INT8, (1,)), np.array([-3], np.int8))
            ops.append(Op("CONST", [], [operand]))
        else:
            dtype = DType.BOOL if operand == "condition" else DType.INT16
            main.tensors[operand] = Tensor(operand, TensorType(dtype, (2, 3)))
            main.inputs.append(operand)
        inputs.append(operand)
    results = [r.lstrip("*") for r in s.results]
    for r in results:
        data = None
        if name == "CONST":
            data = np.array([[1, -2, 3], [4, 5, -32768]], dtype=np.int16)
        rtype = TensorType(DType.INT16, (2, 3))
        if name == "CONST_SHAPE":
            rtype, data = TensorType(DType.SHAPE, (3,)), np.array([1, 2, -(1 << 40)], dtype=np.int64)
        main.tensors[r] = Tensor(r, rtype, data)
        main.outputs.append(r)
    attrs = {k: _attr_value(name, k, spec.kind) for k, spec in s.attrs.items()}
    if name == "RESCALE":   # unsigned input and output survive the trip
        main.tensors["input"] = Tensor("input", TensorType(DType.UINT8, (2, 3)))
        main.tensors["output"] = Tensor("output", TensorType(DType.UINT16, (2, 3)))
        attrs.update(input_unsigned=True, output_unsigned=True)
    ops.append(Op(name, inputs, results, attrs, location=f"node_{name.lower()}"))
    main.ops = ops
    for sub in attrs.values() if s.attrs and next(iter(s.attrs.values())).kind is AttrKind.STRING else ():
        blk = Block(sub, inputs=["a"], outputs=["b"])
        blk.tensors = {"a": Tensor("a", TensorType(DType.INT16, (2, 3))),
                       "b": Tensor("b", TensorType(DType.BOOL if sub == "cond" else DType.INT16, ()))}
        blk.ops = [Op("IDENTITY", ["a"], ["b"])]
        graph.blocks[sub] = blk
    return graph


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_op_round_trips(name: str, official_classes: None) -> None:
    g = _one_op_graph(name)
    data = write_tosa(g)
    back = read_tosa(data)
    assert_graphs_equal(g, back)
    assert_graphs_equal(g, from_json(to_json(g)))
    # the op code and attribute table the official classes see
    view = _official_view(data)
    code, _, official_attrs, _, _ = view["regions"][0][6][-1]
    assert tf.FB_OPS[code] == name
    # each attribute, read through the official accessor of the same name
    op = g.main.ops[-1]
    for key, value in op.attrs.items():
        got = official_attrs["".join(p.capitalize() for p in key.split("_"))]
        kind = SCHEMAS[name].attrs[key].kind
        if kind is AttrKind.INTS:
            assert got == np.array(value, "<i4").tobytes(), key
        elif kind is AttrKind.STRING:
            assert got == value.encode(), key
        elif kind is AttrKind.DTYPE:
            assert got == 6, key   # INT48 in tosa.fbs
        elif kind is AttrKind.SCALAR:   # int16 input: 2 little-endian bytes, padded to 8
            assert got == int(value).to_bytes(2, "little", signed=True) + bytes(6), key
        elif kind in (AttrKind.NAN_MODE, AttrKind.ROUNDING_MODE, AttrKind.RESIZE_MODE):
            assert got == {NanMode.IGNORE: 2, RoundingMode.DOUBLE_ROUND: 3, ResizeMode.BILINEAR: 2}[value]
        else:
            assert got == value, key


def test_attribute_tables_match_schemas() -> None:
    for name, fields in tf.ATTR_FIELDS.items():
        assert set(fields) == set(SCHEMAS[name].attrs), name
    for name, s in SCHEMAS.items():
        assert s.attrs == {} or name in tf.ATTR_FIELDS, name


def test_attribute_field_order_matches_official_classes(require_module) -> None:
    """Field ids follow declaration order: compare with the generated Add<Field> slot numbers."""
    import inspect
    attribute = require_module("tosa.Attribute", extra="conformance")
    by_code = {v: k for k, v in vars(attribute.Attribute).items() if not k.startswith("_")}
    for name, fields in tf.ATTR_FIELDS.items():
        cls_name = by_code[tf.OP_CODE[name]]
        mod = importlib.import_module(f"tosa.{cls_name}")
        for slot, field in enumerate(fields):
            camel = "".join(p.capitalize() for p in field.split("_"))
            src = inspect.getsource(getattr(mod, f"{cls_name}Add{camel}"))
            assert f"Slot({slot}," in src, (name, field, src)


def test_unsigned_tensor_with_other_uses_stays_signed() -> None:
    g = _one_op_graph("RESCALE")
    main = g.main
    main.tensors["input"] = Tensor("input", TensorType(DType.INT8, (2, 3)))
    main.tensors["copy"] = Tensor("copy", TensorType(DType.INT8, (2, 3)))
    main.ops.append(Op("IDENTITY", ["input"], ["copy"]))
    back = read_tosa(write_tosa(g))
    assert back.tensors["input"].dtype is DType.INT8
    assert back.tensors["output"].dtype is DType.UINT16


# ----------------------------------------------------------------------------------------------
# Constant data encodings
# ----------------------------------------------------------------------------------------------

def test_data_packing_hand_worked() -> None:
    assert tf.encode_data(np.array([1, -2, 7], np.int8), DType.INT4) == bytes([0xE1, 0x07])
    assert tf.encode_data(np.array([-2], np.int64), DType.INT48) == bytes([0xFE] + [0xFF] * 5)
    assert tf.encode_data(np.array([True, False]), DType.BOOL) == b"\x01\x00"
    assert tf.encode_data(np.array([1.0], np.float32), DType.BF16) == b"\x80\x3f"
    assert tf.encode_data(np.array([3], np.int64), DType.SHAPE) == b"\x03" + bytes(7)
    got = tf.decode_data(bytes([0xE1, 0x07]), DType.INT4, (3,))
    assert got.dtype == np.int8 and got.tolist() == [1, -2, 7]
    got = tf.decode_data(bytes([0x00, 0x00, 0x00, 0x00, 0x00, 0x80]), DType.INT48, (1,))
    assert got.tolist() == [-(1 << 47)]


def test_data_packing_matches_official_serializer(require_module) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ser = require_module("serializer.tosa_serializer", extra="conformance")
    rng = np.random.default_rng(5)
    cases = {DType.INT4: rng.integers(-8, 8, 7), DType.INT8: rng.integers(-128, 128, 9),
             DType.INT16: rng.integers(-2**15, 2**15, 9), DType.INT32: rng.integers(-2**31, 2**31, 9),
             DType.INT48: rng.integers(-2**47, 2**47, 9), DType.BOOL: rng.integers(0, 2, 9).astype(bool),
             DType.SHAPE: rng.integers(-2**62, 2**62, 4), DType.INT64: rng.integers(-2**62, 2**62, 4),
             DType.FP32: rng.standard_normal(5).astype(np.float32),
             DType.FP16: rng.standard_normal(5).astype(np.float16)}
    for dtype, values in cases.items():
        arr = values.astype(dtype.storage)
        official = bytes(int(b) for b in ser.TosaSerializer.convertDataToUint8Vec(
            getattr(ser.DType, dtype.name), arr.tolist()))
        assert tf.encode_data(arr, dtype) == official, dtype
        back = tf.decode_data(official, dtype, arr.shape)
        assert back.dtype == dtype.storage and back.tobytes() == arr.tobytes(), dtype


def test_all_dtypes_constants_round_trip() -> None:
    main = Block("main")
    g = Graph({"main": main})
    rng = np.random.default_rng(9)
    vals = {DType.INT4: rng.integers(-8, 8, (3, 3)), DType.INT8: rng.integers(-128, 128, (70,)),
            DType.INT16: rng.integers(-2**15, 2**15, (2,)), DType.INT32: rng.integers(-2**31, 2**31, (4, 1)),
            DType.INT48: np.array([-(1 << 47), (1 << 47) - 1, -1, 0]), DType.INT64: np.array([-(1 << 63)]),
            DType.BOOL: np.array([[True, False, True]]),
            DType.FP32: np.array([np.nan, -0.0, np.inf, 1.5]), DType.FP16: np.array([65504, -0.0, 1e-7]),
            DType.BF16: np.array([0x3F800000, 0xC0200000, 0x7F7F0000, 0xFF800000],
                                 np.uint32).view(np.float32)}
    for i, (dtype, v) in enumerate(vals.items()):
        name = f"c{i}"
        main.tensors[name] = Tensor(name, TensorType(dtype, v.shape), v.astype(dtype.storage))
        main.ops.append(Op("CONST", [], [name]))
        main.outputs.append(name)
    main.tensors["empty"] = Tensor("empty", TensorType(DType.INT8, (0, 3)), np.zeros((0, 3), np.int8))
    main.tensors["rank0"] = Tensor("rank0", TensorType(DType.INT32, ()), np.array(-7, np.int32))
    main.tensors["s0"] = Tensor("s0", TensorType(DType.SHAPE, (0,)), np.zeros(0, np.int64))
    main.ops += [Op("CONST", [], ["empty"]), Op("CONST", [], ["rank0"]), Op("CONST_SHAPE", [], ["s0"])]
    assert_graphs_equal(g, read_tosa(write_tosa(g)))
    assert_graphs_equal(g, from_json(to_json(g)))
    main.tensors["c9"].data = np.array([1.0, 2.0, 3.0e38, 0.0], np.float32)   # 3e38 is not a bfloat16
    with pytest.raises(SerializationError, match="not bfloat16"):
        write_tosa(g)


def test_clamp_bounds_are_typed_scalars() -> None:
    for dtype, lo, hi in ((DType.INT8, -128, 127), (DType.INT16, -300, 32767), (DType.FP32, -1.5, 2.25),
                          (DType.FP16, -0.5, 65504.0), (DType.BF16, -2.0, 8.0)):
        main = Block("main", inputs=["x"], outputs=["y"])
        main.tensors = {"x": Tensor("x", TensorType(dtype, (4,))), "y": Tensor("y", TensorType(dtype, (4,)))}
        main.ops = [Op("CLAMP", ["x"], ["y"], {"min_val": lo, "max_val": hi, "nan_mode": NanMode.PROPAGATE})]
        back = read_tosa(write_tosa(Graph({"main": main})))
        attrs = back.ops[0].attrs
        assert attrs["min_val"] == lo and attrs["max_val"] == hi
        assert type(attrs["min_val"]) is type(lo)


# ----------------------------------------------------------------------------------------------
# Malformed input
# ----------------------------------------------------------------------------------------------

def _small_graph() -> Graph:
    main = Block("main", inputs=["x"], outputs=["y"])
    main.tensors = {"x": Tensor("x", TensorType(DType.INT32, (2,))),
                    "k": Tensor("k", TensorType(DType.INT32, (2,)),
                                np.array([0x11223344, 0x55667788], np.int32)),
                    "y": Tensor("y", TensorType(DType.INT32, (2,)))}
    main.ops = [Op("CONST", [], ["k"]), Op("ADD", ["x", "k"], ["y"])]
    return Graph({"main": main})


def test_clear_errors_for_bad_headers(tmp_path: Path) -> None:
    data = write_tosa(_small_graph())
    with pytest.raises(SerializationError, match="file identifier"):
        read_tosa(data[:4] + b"TFL3" + data[8:])
    with pytest.raises(SerializationError, match="too short"):
        read_tosa(b"\x00\x01")
    with pytest.raises(SerializationError, match="outside"):
        read_tosa(data[: len(data) // 2])
    p = tmp_path / "test.tosa"
    p.write_bytes(data[:4] + b"XXXX" + data[8:])
    with pytest.raises(SerializationError, match=r"^.*test\.tosa: file identifier"):
        read_tosa(p)
    with pytest.raises(SerializationError, match="cannot read"):
        read_tosa(tmp_path / "missing.tosa")


def test_clear_error_for_data_size_mismatch(tmp_path: Path) -> None:
    data = bytearray(write_tosa(_small_graph()))
    marker = (8).to_bytes(4, "little") + bytes.fromhex("4433221188776655")
    at = data.find(marker)
    assert at > 0
    data[at] = 7
    p = tmp_path / "test.tosa"
    p.write_bytes(bytes(data))
    with pytest.raises(SerializationError) as e:
        read_tosa(p)
    assert str(e.value).endswith("test.tosa: tensor 'k' data has 7 bytes, INT32[2] needs 8")


def test_clear_errors_for_unknown_op_and_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setitem(tf.OP_CODE, "ADD", 250)
        data = write_tosa(_small_graph())
    with pytest.raises(SerializationError, match="unknown op code 250"):
        read_tosa(data)
    with monkeypatch.context() as m:
        m.setitem(tf.OP_CODE, "ADD", tf.FB_OPS.index("FFT2D"))
        data = write_tosa(_small_graph())
    with pytest.raises(SerializationError, match="FFT2D is not supported"):
        read_tosa(data)
    with monkeypatch.context() as m:
        m.setattr(tf, "FB_DTYPES", ("X",) * 40 + ("INT32",))
        data = write_tosa(_small_graph())
    with pytest.raises(SerializationError, match="tensor 'x': unknown dtype code 40"):
        read_tosa(data)
    with monkeypatch.context() as m:
        m.setattr(tf, "FB_DTYPES", ("X",) * 11 + ("INT32",))
        data = write_tosa(_small_graph())
    with pytest.raises(SerializationError, match="dtype FP8E4M3 is not supported"):
        read_tosa(data)


def test_undefined_tensor_reference_is_not_a_reader_error() -> None:
    g = _small_graph()
    g.main.ops[1].inputs = ["x", "nowhere"]
    back = read_tosa(write_tosa(g))
    assert back.ops[1].inputs == ["x", "nowhere"]


def test_fuzzed_files_raise_only_serialization_error(cts_files: list[str]) -> None:
    rng = random.Random(20261122)
    files = _sample(cts_files, 35, seed=4)
    outcomes = {"ok": 0, "error": 0}
    for f in files:
        data = Path(f).read_bytes()
        for _ in range(120):
            b = bytearray(data)
            if rng.random() < 0.3:
                b = b[:rng.randrange(len(b))]
            else:
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
            try:
                read_tosa(bytes(b))
                outcomes["ok"] += 1
            except SerializationError:
                outcomes["error"] += 1
    for junk in (os.urandom(0), bytes(range(256)) * 3, random.Random(1).randbytes(5000)):
        with pytest.raises(SerializationError):
            read_tosa(junk)
    assert outcomes["error"] > 0 and outcomes["ok"] > 0


# ----------------------------------------------------------------------------------------------
# JSON form
# ----------------------------------------------------------------------------------------------

def test_json_is_readable_and_versioned() -> None:
    g = _one_op_graph("CONV2D")
    text = to_json(g)
    doc = json.loads(text)
    assert doc["format"] == "tosac-graph" and doc["version"] == 1
    op_lines = [line for line in text.splitlines() if '"op": ' in line]
    assert len(op_lines) == sum(len(b.ops) for b in g.blocks.values())
    assert '"acc_type": "INT48"' in text
    doc["version"] = 99
    with pytest.raises(SerializationError, match="version 99 is not supported"):
        from_json(json.dumps(doc))
    with pytest.raises(SerializationError, match="not valid JSON"):
        from_json("{")
    with pytest.raises(SerializationError, match="not a tosac graph"):
        from_json("[]")
    doc["version"] = 1
    doc["blocks"][0]["ops"][0]["op"] = "FROBNICATE"
    with pytest.raises(SerializationError, match="unknown operator 'FROBNICATE'"):
        from_json(json.dumps(doc))


def test_json_small_constants_are_lists_large_are_base64() -> None:
    g = _small_graph()
    big = np.arange(100, dtype=np.int16)
    g.main.tensors["big"] = Tensor("big", TensorType(DType.INT16, (100,)), big)
    text = to_json(g)
    assert '"data": [287454020, 1432778632]' in text
    assert '"data_b64"' in text
    assert np.array_equal(from_json(text).tensors["big"].data, big)


def test_load_save_by_extension(tmp_path: Path) -> None:
    g = _one_op_graph("RESCALE")
    for ext in (".tosa", ".json"):
        p = tmp_path / f"model{ext}"
        save(g, p)
        assert_graphs_equal(g, load(p))
    with pytest.raises(SerializationError, match="extension"):
        save(g, tmp_path / "model.onnx")


def test_format_graph_lists_types_and_constants() -> None:
    g = _one_op_graph("COND_IF")
    g.main.tensors["w"] = Tensor("w", TensorType(DType.INT8, (16, 3, 3, 8)), np.zeros((16, 3, 3, 8), np.int8))
    g.main.ops.insert(0, Op("CONST", [], ["w"]))
    text = format_graph(g)
    assert "block main:" in text and "block then:" in text
    assert "i8[16,3,3,8] const" in text
    assert "input  input_list_a: i16[2,3]" in text
    assert "then_graph='then'" in text


def test_fuzzed_json_raises_only_serialization_error() -> None:
    rng = random.Random(77)
    text = to_json(_one_op_graph("CONV2D"))
    for _ in range(400):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]",:0123456789abcdeINT-')
        try:
            from_json("".join(chars))
        except SerializationError:
            pass


def test_unsigned_constant_and_rescale_chain_round_trip(official_classes: None) -> None:
    g = _one_op_graph("RESCALE")
    g.main.tensors["input"].data = np.array([[0, 1, 127], [128, 200, 255]], np.uint8)
    g.main.inputs.remove("input")
    g.main.ops.insert(0, Op("CONST", [], ["input"]))
    # a second RESCALE reads the unsigned output: unsigned in both roles
    g.main.tensors["out2"] = Tensor("out2", TensorType(DType.INT32, (2, 3)))
    g.main.ops.append(Op("RESCALE", ["output", "multiplier", "shift", "input_zp", "output_zp"], ["out2"],
                         dict(g.main.ops[-1].attrs, output_unsigned=False)))
    back = read_tosa(write_tosa(g))
    assert_graphs_equal(g, back)
    assert back.tensors["input"].data.tolist() == [[0, 1, 127], [128, 200, 255]]
    raw = _official_view(write_tosa(g))["regions"][0][4][b"input"]
    assert raw[1] == 3 and raw[2] == bytes([0, 1, 127, 128, 200, 255])   # INT8, same bits

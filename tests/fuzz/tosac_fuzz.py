"""The fuzz harness of tosac (issue 16): hostile inputs in eight categories, each run in a child process.

Categories (``CATEGORIES``):

    tosa_bytes     .tosa flatbuffers of small seed graphs: bit flips, byte/int32 overwrites, truncation,
                   deletion, insertion, duplication, splices from another seed
    tosa_semantic  seed graphs changed through the IR (attributes, shapes, dtypes, names, outputs, ops,
                   constant data), saved with ``tosac.ir.serialize.save`` and loaded back
    json           the JSON form: byte mutations of its text, structural edits of the decoded JSON (a value
                   replaced, a key deleted, a list item duplicated), IR mutations saved as .json
    onnx_bytes     ONNX protos (small hand-built ones, the bundled kws models): byte mutations
    onnx_semantic  ONNX protos edited with onnx.helper: attributes, shapes, dtypes, dangling or duplicate
                   names, initializer sizes, opset and IR versions, op types, node order
    tflite_bytes   an int8 .tflite flatbuffer (a DS-CNN-like network or a transformer encoder layer written by
                   tests/tflite_writer.py):
                   byte mutations (offsets, vtables, buffer indices, op codes all live in those bytes)
    tuning_log     tuning logs of a seed graph's tasks (valid random configs, then line/field/knob edits),
                   applied with ``compile(graph, tuning_log=...)``
    cli            ``tosac`` argument lists: random verbs, options and paths (good, mutated, missing,
                   directories, outputs onto inputs)

A case is drawn by hypothesis in the parent (``strategy(category)``) as plain data (bytes, lists) and sent to
a long-lived worker process (``Pool``); the worker loads it, verifies it and, for small graphs, compiles it for
the host and runs both the compiled code and the reference interpreter on seeded inputs
(``tosac.ir.random_inputs``) and compares the results (bit for bit for integers). Outcomes:

    typed     a TosacError (the CLI: exit 2 and one 'tosac: error:' line, or argparse's usage error)
    correct   loaded (and verified, compiled, run and equal), or the CLI exited 0
    raw       any other exception (a traceback), or a CLI exit 2 without the one error line
    crash     the worker died (a signal): it is restarted
    hang      no answer within the timeout: the worker is killed and restarted
    wrong     compiled results differ from the reference, a CLI 'run --check' mismatch, or a half-written
              file (an atomic-write temporary left behind, an empty output after a failed command)

Run as a script with ``--worker`` it is the worker (the parent starts it; not for people).
"""
from __future__ import annotations

import copy
import io
import json
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

CATEGORIES = ("tosa_bytes", "tosa_semantic", "json", "onnx_bytes", "onnx_semantic", "tflite_bytes", "tuning_log",
              "cli")
OUTCOMES = ("typed", "raw", "crash", "hang", "wrong", "correct")
BAD = ("raw", "crash", "hang", "wrong")

#: Graphs up to this many tensor elements (all blocks) and ops are compiled and run; bigger ones are only
#: loaded and verified.
SMALL_ELEMENTS = 1 << 17
SMALL_OPS = 100

# Values hostile files like: type boundaries, zero, negatives (the IR mutations stay within int32: a .tosa
# file cannot hold more, and the byte mutations cover the rest).
INT32S = [0, 1, -1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 100, 127, 128, -128, 255, 256, -129, 1000,
          4096, 32767, -32768, 65535, 65536, 1 << 20, (1 << 31) - 1, -(1 << 31), (1 << 30)]
JSON_VALUES = [0, 1, -1, 2, 7, 127, -128, 255, 65536, (1 << 31) - 1, -(1 << 31), 1 << 32, 1 << 63, -(1 << 63) - 1,
               10 ** 30, 0.5, -0.0, 1e308, float("inf"), float("nan"), "", "x", "main", "i8[1]", "i8[]",
               "i32[-1,4]", "i8[0,4]", "i8[65536,65536,65536]", "q7[2]", "i8[1,2", "CONV2D", "NOPE", None, True,
               False, [], [0], [1, 2], [-1], [1 << 31], ["a"], [[1]], {}, {"a": 1}, [None], "A" * 3000]


# ================================================================================================ seeds
def seed_graphs() -> dict:
    """Small verified integer (and one float) graphs covering the op families; deterministic."""
    import numpy as np

    from tosac.ir.builder import GraphBuilder
    from tosac.ir.dtypes import DType
    from tosac.ir.ops import ResizeMode

    rng = np.random.default_rng(1234)
    i8 = lambda shape: rng.integers(-128, 128, shape).astype(np.int8)  # noqa: E731
    graphs = {}

    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 8, 8, 4))
    y = g.conv2d(x, g.const(i8((6, 3, 3, 4))), rng.integers(-500, 500, 6).astype(np.int32), pad=(1, 1, 1, 1),
                 input_zp=-3, weight_zp=0)
    y = g.rescale(y, DType.INT8, multiplier=rng.integers(1 << 29, 1 << 30, 6).astype(np.int32),
                  shift=np.full(6, 38, np.int8), output_zp=5)
    g.output(g.clamp(y, min_val=-100, max_val=120))
    graphs["conv"] = g.build()

    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 7, 7, 3))
    y = g.depthwise_conv2d(x, g.const(i8((3, 3, 3, 2))), None, stride=(2, 2), pad=(1, 1, 1, 1))
    y = g.rescale(y, DType.INT8, multiplier=1 << 30, shift=36)
    g.output(g.avg_pool2d(y, kernel=(2, 2), stride=(1, 1)), g.max_pool2d(y, kernel=(2, 2), stride=(2, 2),
                                                                         pad=(0, 0, 0, 0)))
    graphs["dwconv_pool"] = g.build()

    g = GraphBuilder()
    a = g.input("a", DType.INT8, (1, 4, 16))
    y = g.matmul(a, g.const(i8((1, 16, 8))), a_zp=2)
    y = g.rescale(y, DType.INT8, multiplier=1 << 30, shift=40)
    y = g.table(y, i8((256,)))
    g.output(g.reshape(y, (4, 8)))
    graphs["matmul_table"] = g.build()

    g = GraphBuilder()
    a = g.input("a", DType.INT16, (2, 3, 4))
    b = g.input("b", DType.INT16, (1, 3, 1))
    s = g.add(g.cast(a, DType.INT32), g.cast(b, DType.INT32))
    m = g.mul(s, g.const(np.full((1, 1, 4), 3, np.int32)), shift=0)
    sel = g.select(g.greater(m, g.const(np.zeros((1, 1, 1), np.int32))), m, g.negate(m))
    t = g.transpose(sel, perms=(2, 0, 1))
    sl = g.slice(t, (0, 1, 0), (4, 1, 3))
    cat = g.concat(sl, sl, axis=1)
    p = g.pad(cat, (0, 0, 1, 1, 2, 0), pad_const=7)
    g.output(g.reduce_sum(p, axis=2), g.argmax(a, axis=0), g.tile(cat, (1, 1, 2)),
             g.arithmetic_right_shift(m, g.const(np.full((1, 1, 4), 2, np.int32)), round=True))
    graphs["elementwise"] = g.build()

    g = GraphBuilder()
    x = g.input("x", DType.INT8, (1, 3, 4, 2))
    g.output(g.resize(x, scale=(4, 2, 4, 2), offset=(0, 0), border=(2, 2), mode=ResizeMode.NEAREST),
             g.reverse(x, axis=2))
    graphs["resize"] = g.build()

    g = GraphBuilder()
    a, b = g.input("a", DType.INT32, (4,)), g.input("b", DType.INT32, (4,))
    n = g.input("n", DType.INT32, (1,))
    cond = g.block("cond")
    cond.input("ca", DType.INT32, (4,))
    cond.input("cb", DType.INT32, (4,))
    cn = cond.input("cn", DType.INT32, (1,))
    cond.output(cond.greater(cn, cond.const(np.zeros(1, np.int32))))
    body = g.block("body")
    ba, bb = body.input("ba", DType.INT32, (4,)), body.input("bb", DType.INT32, (4,))
    bn = body.input("bn", DType.INT32, (1,))
    body.output(body.bitwise_xor(ba, bb), body.add(bb, body.const(np.ones(4, np.int32))),
                body.sub(bn, body.const(np.ones(1, np.int32))))
    loop = g.op("WHILE_LOOP", [a, b, g.const(np.array([3], np.int32))], cond_graph="cond", body_graph="body")
    then = g.block("then")
    ta, _ = then.input("ta", DType.INT32, (4,)), then.input("tb", DType.INT32, (4,))
    then.output(then.bitwise_not(ta))
    other = g.block("else")
    _, eb = other.input("ea", DType.INT32, (4,)), other.input("eb", DType.INT32, (4,))
    other.output(other.clz(eb))
    c = g.op("COND_IF", [g.greater(n, g.const(np.zeros(1, np.int32))), loop[0], loop[1]], then_graph="then",
             else_graph="else")
    g.output(*loop[:2], *c)
    graphs["control_flow"] = g.build()

    g = GraphBuilder()
    x = g.input("x", DType.FP32, (2, 8))
    y = g.maximum(g.add(x, g.const(rng.standard_normal((1, 8)).astype(np.float32))),
                  g.const(np.zeros((1, 1), np.float32)))
    g.output(g.reduce_max(y, axis=1), g.clamp(y, min_val=-1.0, max_val=1.5))
    graphs["float"] = g.build()
    return graphs


def onnx_seeds() -> dict:
    """name -> ModelProto: small hand-built models (float, QDQ, QOperator) and the bundled kws models."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(99)
    F = TensorProto.FLOAT
    models = {}

    def model(nodes, inputs, outputs, inits, opset=17):
        graph = helper.make_graph(nodes, "fuzz", inputs, outputs, inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m

    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    g = numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32), "g")
    shape = numpy_helper.from_array(np.array([1, 64], np.int64), "shape")
    models["float_cnn"] = model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Reshape", ["p", "shape"], ["f"]),
         helper.make_node("MatMul", ["f", "g"], ["y"])],
        [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])], [helper.make_tensor_value_info("y", F, [1, 5])],
        [w, b, g, shape])

    s = lambda name, v: numpy_helper.from_array(np.array(v, np.float32), name)  # noqa: E731
    z = lambda name, v=0: numpy_helper.from_array(np.array(v, np.int8), name)  # noqa: E731
    wq = numpy_helper.from_array(rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8), "wq")
    bq = numpy_helper.from_array(rng.integers(-300, 300, 4).astype(np.int32), "bq")
    models["qdq_conv"] = model(
        [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
         helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
         helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
         helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"]),
         helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
         helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])],
        [helper.make_tensor_value_info("x", F, [1, 3, 6, 6])], [helper.make_tensor_value_info("y", F, [1, 4, 6, 6])],
        [s("xs", 0.05), z("xz", 3), wq, s("ws", 0.01), z("wz"), bq, s("bs", 0.0005),
         numpy_helper.from_array(np.array(0, np.int32), "bz"), s("ys", 0.1), z("yz", -128)])

    U8 = TensorProto.UINT8
    u = lambda name, v=0: numpy_helper.from_array(np.array(v, np.uint8), name)  # noqa: E731
    models["qoperator"] = model(
        [helper.make_node("QLinearConv", ["x", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "bq"], ["c"],
                          pads=[1, 1, 1, 1]),
         helper.make_node("QLinearAdd", ["c", "ys", "yz", "c", "ys", "yz", "as", "az"], ["y"],
                          domain="com.microsoft")],
        [helper.make_tensor_value_info("x", U8, [1, 3, 5, 5])], [helper.make_tensor_value_info("y", U8, [1, 4, 5, 5])],
        [s("xs", 0.05), u("xz", 128), wq, s("ws", 0.01), z("wz"), s("ys", 0.1), u("yz", 120), bq, s("as", 0.2),
         u("az", 100)])
    models["qoperator"].opset_import.append(helper.make_opsetid("com.microsoft", 1))

    models["misc"] = model(
        [helper.make_node("Add", ["a", "b"], ["s"]),
         helper.make_node("Mul", ["s", "a"], ["m"]),
         helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Concat", ["t", "t"], ["c"], axis=1),
         helper.make_node("Sigmoid", ["c"], ["y"])],
        [helper.make_tensor_value_info("a", F, [1, 3, 4]), helper.make_tensor_value_info("b", F, [1, 1, 4])],
        [helper.make_tensor_value_info("y", F, [1, 8, 3])], [])

    from importlib import resources
    data = resources.files("tosac.models.data")
    for fmt in ("qdq", "qoperator"):
        models[f"kws_{fmt}"] = onnx.load_from_string(data.joinpath(f"kws.{fmt}.onnx").read_bytes())
    return models


_SEEDS: dict = {}


def seeds() -> dict:
    """Seed payloads the strategies mutate (built once per process)."""
    if not _SEEDS:
        from tosac.ir.serialize import to_json, write_tosa

        graphs = seed_graphs()
        _SEEDS["graph_names"] = sorted(graphs)
        _SEEDS["tosa"] = {n: bytes(write_tosa(g)) for n, g in graphs.items()}
        _SEEDS["json"] = {n: to_json(g).encode() for n, g in graphs.items()}
        protos = onnx_seeds()
        _SEEDS["onnx"] = {n: m.SerializeToString() for n, m in protos.items()}
        _SEEDS["onnx_names"] = sorted(protos)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # tests/: the .tflite writer
        from tflite_writer import ds_cnn_model, encoder_model
        _SEEDS["tflite"] = {"ds_cnn": ds_cnn_model(), "encoder": encoder_model(layers=1)}
        _SEEDS["logs"] = tuning_seed_logs(graphs)
    return _SEEDS


TUNING_GRAPHS = ("conv", "dwconv_pool", "matmul_table")


def tuning_seed_logs(graphs: dict) -> dict:
    """graph name -> (task keys, knob spaces as {knob: values}, a template record as a dict)."""
    from tosac.pipeline.tuning_log import Record, target_info
    from tosac.tune import extract_tasks

    out = {}
    for name in TUNING_GRAPHS:
        tasks = extract_tasks(graphs[name], "host")
        spaces = [{k.name: list(k.values) for k in t.space.knobs} for t in tasks]
        templates = [json.loads(json.dumps(Record(t.key, t.pattern, dict(t.space.default), [1e-4],
                                                  target=target_info(t.target), tuner="confirm").__dict__))
                     for t in tasks]
        out[name] = (spaces, templates)
    return out


# ================================================================================ byte mutations
def mutate_bytes(data: bytes, ops: list, others: list[bytes]) -> bytes:
    """Apply byte mutations ``ops`` (tuples drawn by ``byte_ops``) to ``data``."""
    buf = bytearray(data)
    for op in ops:
        kind, args = op[0], op[1:]
        n = max(len(buf), 1)
        pos = lambda p: (p if p >= 0 else n + p) % n  # noqa: E731
        if kind == "flip" and buf:
            p = pos(args[0])
            buf[p] ^= 1 << args[1]
        elif kind == "byte" and buf:
            buf[pos(args[0])] = args[1]
        elif kind == "int32" and len(buf) >= 4:
            p = pos(args[0]) % (len(buf) - 3)
            buf[p:p + 4] = struct.pack("<I", args[1] & 0xFFFFFFFF)
        elif kind == "truncate":
            del buf[pos(args[0]):]
        elif kind == "delete":
            p = pos(args[0])
            del buf[p:p + args[1]]
        elif kind == "insert":
            p = pos(args[0])
            buf[p:p] = args[1]
        elif kind == "duplicate":
            p = pos(args[0])
            buf[p:p] = buf[p:p + args[1]]
        elif kind == "splice" and others:
            src = others[args[0] % len(others)]
            s = args[1] % max(len(src), 1)
            buf[pos(args[3]):pos(args[3]) + args[2]] = src[s:s + args[2]]
    return bytes(buf)


# ================================================================================== IR mutations
def _all_tensors(graph) -> list:
    return [(blk, t) for blk in graph.blocks.values() for t in blk.tensors.values()]


def mutate_graph(graph, ops: list):
    """Apply IR mutations ``ops`` (tuples drawn by ``ir_ops``) to ``graph`` in place."""
    from tosac.ir.dtypes import DType
    from tosac.ir.graph import Op, TensorType
    from tosac.ir.ops import SCHEMAS

    for op in ops:
        try:
            _mutate_graph_once(graph, op, list(DType), sorted(SCHEMAS), Op, TensorType)
        except (ValueError, KeyError, IndexError, ZeroDivisionError, TypeError):
            pass                            # a mutation that does not apply to this graph: skipped
    return graph


def _mutate_graph_once(graph, op, dtypes, op_names, Op, TensorType) -> None:  # noqa: N803
    kind, a = op[0], op[1:]
    all_ops = [(blk, o) for blk in graph.blocks.values() for o in blk.ops]
    tensors = _all_tensors(graph)
    blocks = list(graph.blocks.values())
    if kind == "attr" and all_ops:
        _, o = all_ops[a[0] % len(all_ops)]
        keys = sorted(o.attrs)
        if keys:
            key = keys[a[1] % len(keys)]
            o.attrs[key] = _mutated_value(o.attrs[key], a[2], a[3], graph)
    elif kind == "shape" and tensors:
        _, t = tensors[a[0] % len(tensors)]
        t.type = TensorType(t.type.dtype, _mutated_shape(t.type.shape, a[1], a[2]))
    elif kind == "dtype" and tensors:
        _, t = tensors[a[0] % len(tensors)]
        t.type = TensorType(dtypes[a[1] % len(dtypes)], t.type.shape)
    elif kind == "const_data":
        consts = [t for _, t in tensors if t.data is not None]
        if consts:
            t = consts[a[0] % len(consts)]
            t.data = _mutated_data(t.data, a[1], a[2])
    elif kind == "operand" and all_ops:
        blk, o = all_ops[a[0] % len(all_ops)]
        names = sorted(blk.tensors) + ["dangling", ""]
        if o.inputs:
            o.inputs[a[1] % len(o.inputs)] = names[a[2] % len(names)]
        else:
            o.inputs.append(names[a[2] % len(names)])
    elif kind == "result" and all_ops:
        blk, o = all_ops[a[0] % len(all_ops)]
        names = sorted(blk.tensors) + ["dangling"]
        if o.outputs:
            o.outputs[a[1] % len(o.outputs)] = names[a[2] % len(names)]
    elif kind == "operand_count" and all_ops:
        blk, o = all_ops[a[0] % len(all_ops)]
        if a[1] % 2 and o.inputs:
            o.inputs.pop(a[2] % len(o.inputs))
        elif o.inputs:
            o.inputs.insert(a[2] % (len(o.inputs) + 1), o.inputs[a[2] % len(o.inputs)])
    elif kind == "outputs":
        blk = blocks[a[0] % len(blocks)]
        names = sorted(blk.tensors) + ["dangling"]
        choice = a[1] % 4
        if choice == 0 and blk.outputs:                        # an output listed twice
            blk.outputs.append(blk.outputs[a[2] % len(blk.outputs)])
        elif choice == 1 and blk.outputs:
            blk.outputs.pop(a[2] % len(blk.outputs))
        elif choice == 2:
            blk.outputs.append(names[a[2] % len(names)])
        elif blk.outputs:
            blk.outputs[a[2] % len(blk.outputs)] = names[a[2] % len(names)]
    elif kind == "inputs":
        blk = blocks[a[0] % len(blocks)]
        names = sorted(blk.tensors) + ["dangling"]
        choice = a[1] % 3
        if choice == 0 and blk.inputs:
            blk.inputs.append(blk.inputs[a[2] % len(blk.inputs)])
        elif choice == 1 and blk.inputs:
            blk.inputs.pop(a[2] % len(blk.inputs))
        else:
            blk.inputs.append(names[a[2] % len(names)])
    elif kind == "op_name" and all_ops:
        _, o = all_ops[a[0] % len(all_ops)]
        o.name = op_names[a[1] % len(op_names)]
    elif kind == "drop_op" and all_ops:
        blk, o = all_ops[a[0] % len(all_ops)]
        blk.ops.remove(o)
    elif kind == "swap_ops" and all_ops:
        blk, o = all_ops[a[0] % len(all_ops)]
        i, j = blk.ops.index(o), a[1] % len(blk.ops)
        blk.ops[i], blk.ops[j] = blk.ops[j], blk.ops[i]
    elif kind == "dup_op" and all_ops:
        blk, o = all_ops[a[0] % len(all_ops)]
        blk.ops.insert(a[1] % (len(blk.ops) + 1), Op(o.name, list(o.inputs), list(o.outputs), dict(o.attrs)))
    elif kind == "drop_tensor" and tensors:
        blk, t = tensors[a[0] % len(tensors)]
        del blk.tensors[t.name]
    elif kind == "block_name":
        blk = blocks[a[0] % len(blocks)]
        if blk.name != "main" or a[1] % 2:
            new = ["main", "cond", "body", "then", "else", "other", ""][a[1] % 7]
            graph.blocks.pop(blk.name, None)
            blk.name = new
            graph.blocks[new] = blk


def _mutated_value(value, choice: int, extra: int, graph):
    import enum

    import numpy as np

    if isinstance(value, bool):
        return not value
    if isinstance(value, enum.Enum):
        members = list(type(value))
        return members[choice % len(members)]
    if isinstance(value, (int, np.integer)):
        return INT32S[choice % len(INT32S)]
    if isinstance(value, float):
        return [0.0, -0.0, 1e30, -1e30, float("nan"), float("inf"), -1.0, 3.5][choice % 8]
    if isinstance(value, str):
        names = sorted(graph.blocks) + ["nowhere", ""]
        return names[choice % len(names)]
    if isinstance(value, (tuple, list)):
        items = list(value)
        how = extra % 4
        if how == 0 and items:
            items[choice % len(items)] = INT32S[(choice // 7 + extra) % len(INT32S)]
        elif how == 1 and items:
            items.pop(choice % len(items))
        elif how == 2:
            items.append(INT32S[choice % len(INT32S)])
        else:
            items = []
        return tuple(items)
    return value


def _mutated_shape(shape: tuple, choice: int, extra: int) -> tuple:
    dims = list(shape)
    how = extra % 5
    if how == 0 and dims:
        dims[choice % len(dims)] = [0, 1, 2, 3, 5, 16, 65536, -1, 1 << 30, (1 << 31) - 1][choice % 10]
    elif how == 1:
        dims.insert(choice % (len(dims) + 1), [1, 2, 3][choice % 3])
    elif how == 2 and dims:
        dims.pop(choice % len(dims))
    elif how == 3 and len(dims) > 1:
        dims.reverse()
    else:
        dims = [] if choice % 2 else dims * 2
    return tuple(dims)


def _mutated_data(data, choice: int, extra: int):
    import numpy as np

    flat = data.reshape(-1).copy()
    how = extra % 5
    if how == 0 and flat.size:
        info = np.iinfo(flat.dtype) if flat.dtype.kind in "iu" else None
        v = [info.min, info.max, 0, -1 if info and info.min < 0 else 1][choice % 4] if info else \
            [np.nan, np.inf, -np.inf, 0.0][choice % 4]
        flat[choice % flat.size] = v
        return flat.reshape(data.shape)
    if how == 1:
        return flat[: max(0, flat.size - 1 - choice % 3)]                    # too few elements
    if how == 2:
        return np.concatenate([flat, flat[:1 + choice % 4]])                # too many
    if how == 3:
        return data.astype([np.int64, np.int8, np.float32, np.bool_, np.uint16][choice % 5])
    return np.zeros((), data.dtype)


# ================================================================================ ONNX mutations
ONNX_ATTRS = ["strides", "pads", "kernel_shape", "dilations", "group", "axis", "axes", "perm", "keepdims",
              "auto_pad", "transA", "transB", "alpha", "beta", "to", "blocksize", "mode", "ceil_mode",
              "output_padding", "saturate", "block_size", "epsilon", "value", "allowzero", "body"]
ONNX_DTYPES = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16, 17, 21, 22, 8, 99, -1]


def mutate_onnx(model_bytes: bytes, ops: list) -> bytes:
    """Apply ONNX mutations ``ops`` (drawn by ``onnx_ops``) through onnx.helper; the serialized result."""
    import onnx

    m = onnx.load_from_string(model_bytes)
    for op in ops:
        try:
            _mutate_onnx_once(m, op)
        except (ValueError, TypeError, IndexError, OverflowError):
            pass                            # a mutation onnx.helper itself refuses: skipped
    return m.SerializeToString()


def _mutate_onnx_once(m, op) -> None:
    import onnx
    from onnx import helper

    g = m.graph
    kind, a = op[0], op[1:]
    nodes = list(g.node)
    if kind == "attr" and nodes:
        node = nodes[a[0] % len(nodes)]
        existing = [x.name for x in node.attribute]
        names = existing + ONNX_ATTRS
        name = names[a[1] % len(names)]
        value = _onnx_attr_value(a[2], a[3])
        for i, x in enumerate(node.attribute):
            if x.name == name:
                del node.attribute[i]
                break
        node.attribute.append(helper.make_attribute(name, value) if value not in (None, []) else
                              helper.make_attribute(name, [], attr_type=onnx.AttributeProto.INTS))
    elif kind == "del_attr" and nodes:
        node = nodes[a[0] % len(nodes)]
        if node.attribute:
            del node.attribute[a[1] % len(node.attribute)]
    elif kind == "shape":
        infos = list(g.input) + list(g.output) + list(g.value_info)
        if infos:
            vi = infos[a[0] % len(infos)]
            shape = vi.type.tensor_type.shape
            dims = shape.dim
            how = a[2] % 5
            if how == 0 and len(dims):
                dims[a[1] % len(dims)].dim_value = [0, 1, 2, 3, 7, 64, 1 << 20, 1 << 40, (1 << 63) - 1][a[1] % 9]
            elif how == 1 and len(dims):
                dims[a[1] % len(dims)].dim_param = ["N", "", "batch"][a[1] % 3]
            elif how == 2:
                dims.add().dim_value = 1 + a[1] % 3
            elif how == 3 and len(dims):
                del dims[a[1] % len(dims)]
            else:
                vi.type.tensor_type.ClearField("shape")
    elif kind == "dtype":
        pools = [list(g.input), list(g.output), list(g.initializer)]
        pool = pools[a[0] % 3]
        if pool:
            item = pool[a[1] % len(pool)]
            dt = ONNX_DTYPES[a[2] % len(ONNX_DTYPES)]
            if hasattr(item, "data_type"):
                item.data_type = dt
            else:
                item.type.tensor_type.elem_type = dt
    elif kind == "dangle" and nodes:
        node = nodes[a[0] % len(nodes)]
        produced = [o for n in nodes for o in n.output] + [i.name for i in g.input]
        pick = ["missing_tensor", "", *produced][a[2] % (len(produced) + 2)]
        if a[1] % 2 and node.output:
            node.output[a[1] % len(node.output)] = pick or "dup_out"
        elif node.input:
            node.input[a[1] % len(node.input)] = pick
        else:
            node.input.append(pick)
    elif kind == "graph_io":
        how = a[0] % 4
        if how == 0 and len(g.output):
            g.output.append(copy.deepcopy(g.output[a[1] % len(g.output)]))     # output listed twice
        elif how == 1 and len(g.output):
            g.output[a[1] % len(g.output)].name = ["missing_tensor", "", g.input[0].name][a[1] % 3]
        elif how == 2 and len(g.input):
            g.input.append(copy.deepcopy(g.input[a[1] % len(g.input)]))
        elif len(g.input):
            del g.input[a[1] % len(g.input)]
    elif kind == "init_size" and len(g.initializer):
        t = g.initializer[a[0] % len(g.initializer)]
        how = a[1] % 5
        if how == 0 and len(t.dims):
            t.dims[a[2] % len(t.dims)] = [0, 2, 1 << 20, 1 << 40, -1][a[2] % 5]
        elif how == 1:
            t.dims.append(1 + a[2] % 3)
        elif how == 2 and t.raw_data:
            t.raw_data = t.raw_data[: max(0, len(t.raw_data) - 1 - a[2] % 8)]
        elif how == 3 and t.raw_data:
            t.raw_data = t.raw_data + t.raw_data[: 1 + a[2] % 8]
        elif len(t.dims):
            del t.dims[a[2] % len(t.dims)]
    elif kind == "drop_init" and len(g.initializer):
        del g.initializer[a[0] % len(g.initializer)]
    elif kind == "opset":
        version = [0, 1, 6, 7, 9, 10, 11, 12, 13, 17, 18, 19, 21, 22, 23, 25, 99, -1, 1 << 40][a[0] % 19]
        how = a[1] % 4
        if how == 0 and len(m.opset_import):
            m.opset_import[0].version = version
        elif how == 1:
            m.opset_import.append(helper.make_opsetid(["", "com.microsoft", "ai.onnx.ml", "x.y"][a[0] % 4],
                                                      version))
        elif how == 2:
            del m.opset_import[:]
        else:
            m.ir_version = [0, 1, 3, 7, 10, 11, 99, -1][a[0] % 8]
    elif kind == "op_type" and nodes:
        kinds = ["Relu", "Conv", "Add", "MatMul", "Reshape", "Transpose", "QuantizeLinear", "DequantizeLinear",
                 "QLinearConv", "MaxPool", "Softmax", "Gemm", "Identity", "Loop", "If", "Foo", ""]
        nodes[a[0] % len(nodes)].op_type = kinds[a[1] % len(kinds)]
    elif kind == "drop_node" and nodes:
        g.node.remove(nodes[a[0] % len(nodes)])
    elif kind == "swap_nodes" and len(nodes) > 1:
        i, j = a[0] % len(nodes), a[1] % len(nodes)
        ni, nj = copy.deepcopy(nodes[i]), copy.deepcopy(nodes[j])
        g.node[i].CopyFrom(nj)
        g.node[j].CopyFrom(ni)


def _onnx_attr_value(choice: int, extra: int):
    how = extra % 6
    if how == 0:
        return INT32S[choice % len(INT32S)]
    if how == 1:
        n = choice % 7
        return [INT32S[(choice + 3 * k) % len(INT32S)] for k in range(n)]
    if how == 2:
        return [0.0, -1.0, 1e30, float("nan"), float("inf"), 0.5][choice % 6]
    if how == 3:
        return ["", "SAME_UPPER", "VALID", "NOTSET", "DCR", "CRD", "linear", "nearest", "x" * 300][choice % 9]
    if how == 4:
        return [[1, 1], [0, 0], [-1, -1], [2, 2, 2], [1 << 40, 1]][choice % 5]
    return None


# =========================================================================== tuning-log mutations
def tuning_log_text(graph_name: str, config_picks: list, edits: list) -> bytes:
    """A log of valid records (one per task, configs picked from each knob space), then ``edits``."""
    spaces, templates = seeds()["logs"][graph_name]
    lines = []
    for i, (space, template) in enumerate(zip(spaces, templates)):
        record = copy.deepcopy(template)
        for j, (knob, values) in enumerate(sorted(space.items())):
            pick = config_picks[(i * 7 + j) % len(config_picks)] if config_picks else 0
            record["config"][knob] = values[pick % len(values)]
        record["costs"] = [1e-5 * (1 + (i + len(lines)) % 5)]
        lines.append(record)
    text_lines = [json.dumps(r, sort_keys=True) for r in lines]
    for edit in edits:
        kind, a = edit[0], edit[1:]
        if not text_lines:
            text_lines.append("")
        k = a[0] % len(text_lines)
        if kind == "field":
            try:
                rec = json.loads(text_lines[k])
                keys = sorted(rec) + ["extra_field"]
                rec[keys[a[1] % len(keys)]] = JSON_VALUES[a[2] % len(JSON_VALUES)]
                text_lines[k] = json.dumps(rec, sort_keys=True)
            except ValueError:
                pass
        elif kind == "knob":
            try:
                rec = json.loads(text_lines[k])
                knobs = sorted(rec.get("config", {})) + ["bogus", "threads", "mr"] \
                    if isinstance(rec.get("config"), dict) else ["mr"]
                if not isinstance(rec.get("config"), dict):
                    rec["config"] = {}
                rec["config"][knobs[a[1] % len(knobs)]] = ([0, 1, 2, 3, 4, 6, 8, 16, 64, 1 << 20, -1, "nm", "mn",
                                                            "vnni", "avx2", "generic", "sdot", ""] +
                                                           JSON_VALUES)[a[2] % (18 + len(JSON_VALUES))]
                text_lines[k] = json.dumps(rec, sort_keys=True)
            except ValueError:
                pass
        elif kind == "line_bytes":
            text_lines[k] = mutate_bytes(text_lines[k].encode(), [a[1]], []).decode("utf-8", "replace")
        elif kind == "dup_line":
            text_lines.insert(a[1] % (len(text_lines) + 1), text_lines[k])
        elif kind == "join":
            if k + 1 < len(text_lines):
                text_lines[k:k + 2] = [text_lines[k] + text_lines[k + 1]]
        elif kind == "truncate_line":
            text_lines[k] = text_lines[k][: a[1] % (len(text_lines[k]) + 1)]
        elif kind == "garbage":
            text_lines.insert(k, ["", "{}", "[]", "null", "{" * 5000, "\x00\xff", "schema", '{"schema": 1}',
                                  '{"schema": 2}', "[" * 100000 + "]" * 100000][a[1] % 10])
    return ("\n".join(text_lines) + "\n").encode("utf-8", "surrogatepass")


# ======================================================================================== cases
@dataclass
class Case:
    category: str
    family: str
    desc: str
    payload: dict = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {"category": self.category, "family": self.family, "desc": self.desc, **self.payload}


def strategy(category: str):
    """The hypothesis strategy of one category's cases."""
    from hypothesis import strategies as st

    s = seeds()
    # positions: the header, the tail, and (mostly) anywhere: hypothesis favours small integers, so the
    # anywhere ones are scrambled by a multiplicative hash into a uniform spread
    anywhere = st.integers(0, (1 << 32) - 1).map(lambda x: (x * 2654435761) % (1 << 31))
    pos = st.one_of(st.integers(0, 96), st.integers(-64, -1), anywhere, anywhere, anywhere, anywhere)
    flip = st.tuples(st.just("flip"), pos, st.integers(0, 7))
    overwrite = st.tuples(st.just("byte"), pos, st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x0A]))
    byte_op = st.one_of(                     # content changes weigh more than layout-breaking ones
        flip, flip, flip, overwrite, overwrite,
        st.tuples(st.just("int32"), pos, st.sampled_from(INT32S + [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000])),
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("duplicate"), pos, st.integers(1, 256)),
        st.tuples(st.just("splice"), st.integers(0, 50), st.integers(0, 1 << 20), st.integers(1, 512), pos))
    byte_ops = st.lists(byte_op, min_size=1, max_size=3)
    i = st.integers(0, 1 << 16)
    ir_op = st.one_of(
        st.tuples(st.just("attr"), i, i, i, i), st.tuples(st.just("shape"), i, i, i),
        st.tuples(st.just("dtype"), i, i), st.tuples(st.just("const_data"), i, i, i),
        st.tuples(st.just("operand"), i, i, i), st.tuples(st.just("result"), i, i, i),
        st.tuples(st.just("operand_count"), i, i, i), st.tuples(st.just("outputs"), i, i, i),
        st.tuples(st.just("inputs"), i, i, i), st.tuples(st.just("op_name"), i, i),
        st.tuples(st.just("drop_op"), i), st.tuples(st.just("swap_ops"), i, i), st.tuples(st.just("dup_op"), i, i),
        st.tuples(st.just("drop_tensor"), i), st.tuples(st.just("block_name"), i, i))
    ir_ops = st.lists(ir_op, min_size=1, max_size=3)
    graph_name = st.sampled_from(s["graph_names"])
    onnx_name = st.sampled_from(s["onnx_names"])

    def family(ops) -> str:
        return ops[0][0]

    if category == "tosa_bytes":
        return st.builds(lambda name, ops: Case(category, family(ops), f"{name}.tosa bytes {ops}",
                                                {"ext": ".tosa", "data": mutate_bytes(
                                                    s["tosa"][name], ops, list(s["tosa"].values()))}),
                         graph_name, byte_ops)
    if category == "tosa_semantic":
        return st.builds(lambda name, ops: Case(category, family(ops), f"{name} IR {ops} saved as .tosa",
                                                {"seed": name, "ir_ops": ops, "ext": ".tosa"}), graph_name, ir_ops)
    if category == "json":
        def json_struct(name, ops):
            obj = json.loads(s["json"][name])
            for kind, k, v in ops:
                paths = list(_json_paths(obj))
                parent, key = paths[k % len(paths)]
                if kind == "json_value":
                    parent[key] = JSON_VALUES[v % len(JSON_VALUES)]
                elif kind == "json_delete":
                    del parent[key]
                elif kind == "json_dup" and isinstance(parent, list):
                    parent.insert(key, copy.deepcopy(parent[key]))
                elif kind == "json_type" and isinstance(parent[key], str) and "[" in parent[key]:
                    parent[key] = _json_type_string(v)
            return Case(category, ops[0][0], f"{name}.json structure {ops}",
                        {"ext": ".json", "data": json.dumps(obj).encode()})
        struct_op = st.tuples(st.sampled_from(["json_value", "json_delete", "json_dup", "json_type"]), i, i)
        return st.one_of(
            st.builds(lambda name, ops: Case(category, "json_bytes_" + family(ops), f"{name}.json bytes {ops}",
                                             {"ext": ".json", "data": mutate_bytes(s["json"][name], ops,
                                                                                   list(s["json"].values()))}),
                      graph_name, byte_ops),
            st.builds(json_struct, graph_name, st.lists(struct_op, min_size=1, max_size=3)),
            st.builds(lambda name, ops: Case(category, "ir_" + family(ops), f"{name} IR {ops} saved as .json",
                                             {"seed": name, "ir_ops": ops, "ext": ".json"}), graph_name, ir_ops))
    if category == "onnx_bytes":
        return st.builds(lambda name, ops: Case(category, family(ops), f"{name}.onnx bytes {ops}",
                                                {"ext": ".onnx", "data": mutate_bytes(
                                                    s["onnx"][name], ops, list(s["onnx"].values()))}),
                         onnx_name, byte_ops)
    if category == "tflite_bytes":
        return st.builds(lambda name, ops: Case(category, family(ops), f"{name}.tflite bytes {ops}",
                                                {"ext": ".tflite", "data": mutate_bytes(s["tflite"][name], ops, [])}),
                         st.sampled_from(sorted(s["tflite"])), byte_ops)
    if category == "onnx_semantic":
        onnx_op = st.one_of(
            st.tuples(st.just("attr"), i, i, i, i), st.tuples(st.just("del_attr"), i, i),
            st.tuples(st.just("shape"), i, i, i), st.tuples(st.just("dtype"), i, i, i),
            st.tuples(st.just("dangle"), i, i, i), st.tuples(st.just("graph_io"), i, i),
            st.tuples(st.just("init_size"), i, i, i), st.tuples(st.just("drop_init"), i),
            st.tuples(st.just("opset"), i, i), st.tuples(st.just("op_type"), i, i),
            st.tuples(st.just("drop_node"), i), st.tuples(st.just("swap_nodes"), i, i))
        return st.builds(lambda name, ops: Case(category, family(ops), f"{name}.onnx helper {ops}",
                                                {"ext": ".onnx", "data": mutate_onnx(s["onnx"][name], ops)}),
                         onnx_name, st.lists(onnx_op, min_size=1, max_size=3))
    if category == "tuning_log":
        edit = st.one_of(
            st.tuples(st.just("field"), i, i, i), st.tuples(st.just("knob"), i, i, i),
            st.tuples(st.just("line_bytes"), i, byte_op), st.tuples(st.just("dup_line"), i, i),
            st.tuples(st.just("join"), i), st.tuples(st.just("truncate_line"), i, i),
            st.tuples(st.just("garbage"), i, i))
        return st.builds(
            lambda name, picks, edits: Case(category, edits[0][0] if edits else "valid_configs",
                                            f"{name} log picks={picks} edits={edits}",
                                            {"seed": name, "log": tuning_log_text(name, picks, edits)}),
            st.sampled_from(TUNING_GRAPHS), st.lists(st.integers(0, 63), min_size=1, max_size=6),
            st.lists(edit, max_size=3))
    if category == "cli":
        return cli_strategy(byte_ops)
    raise ValueError(category)


def _json_paths(obj):
    """(container, key) of every value inside ``obj``."""
    stack = [obj]
    while stack:
        cur = stack.pop()
        items = cur.items() if isinstance(cur, dict) else enumerate(cur) if isinstance(cur, list) else ()
        for k, v in items:
            yield cur, k
            if isinstance(v, (dict, list)):
                stack.append(v)


def _json_type_string(v: int) -> str:
    dtypes = ["i8", "i16", "i32", "i48", "i4", "u8", "u16", "bool", "f32", "f16", "bf16", "shape", "i64", "x"]
    shapes = ["", "1", "0", "-1", "1,2,3,4,5,6,7,8", "65536,65536", "2147483647", "1,,2", "a", "1.5"]
    return f"{dtypes[v % len(dtypes)]}[{shapes[(v // 16) % len(shapes)]}]"


# ------------------------------------------------------------------------------------------ CLI
CLI_MODELS = ["{d}/good.tosa", "{d}/good.json", "{d}/good.onnx", "{d}/mut.tosa", "{d}/mut.onnx", "{d}/mut.json",
              "{d}/missing.tosa", "{d}/missing.onnx", "{d}", "{d}/sub", "/dev/null", "{d}/empty.onnx",
              "{d}/empty.tosa", "{d}/good.txt", "{d}/link.tosa", "kws", "nosuchmodel", "", "-",
              "{d}/" + "n" * 300 + ".tosa"]
CLI_OUTPUTS = ["{d}/out.o", "{d}/out.h", "{d}/out.a", "{d}/sub/out.o", "{d}/nodir/out.o", "{d}/good.tosa",
               "{d}/link.tosa", "{d}", "{d}/sub", "/dev/null", "{d}/" + "o" * 300 + ".o", "{d}/out.o"]
CLI_TARGETS = ["host", "reference", "x86_64", "x86_64-avx2", "aarch64", "armv7", "bogus", ""]


def cli_strategy(byte_ops):
    from hypothesis import strategies as st

    s = seeds()
    model = st.sampled_from(CLI_MODELS)
    out = st.sampled_from(CLI_OUTPUTS)
    npy = st.sampled_from(["{d}/x.npy", "{d}/x_shape.npy", "{d}/x_dtype.npy", "{d}/garbage.npy",
                           "{d}/object.npy", "{d}/missing.npy", "{d}"])
    name = st.sampled_from(["x", "a", "nope", ""])
    junk = st.sampled_from(["--bogus", "-x", "--target", "--", "é", "--seed=1", "--debug", "-h"])
    option = st.one_of(
        st.tuples(st.just("-o"), out), st.tuples(st.just("--header"), out), st.tuples(st.just("--static-lib"), out),
        st.tuples(st.just("--target"), st.sampled_from(CLI_TARGETS)),
        st.tuples(st.just("--config"), st.sampled_from(["{d}/config.json", "{d}/config_bad.json",
                                                         "{d}/config_list.json", "{d}/missing.json", "{d}"])),
        st.tuples(st.just("--tuning-log"), st.sampled_from(["{d}/log.jsonl", "{d}/garbage.jsonl",
                                                             "{d}/missing.jsonl", "{d}", "/dev/null"])),
        st.tuples(st.just("--input"), st.builds(lambda n, p: f"{n}={p}", name, npy)),
        st.tuples(st.just("--input"), st.sampled_from(["x", "=", "x=", "=x.npy"])),
        st.tuples(st.just("--input-shape"), st.sampled_from(["x=1,3,8,8", "x=", "x=a", "=1", "x=-1", "x=0,0",
                                                              "x=99999999999"])),
        st.tuples(st.just("--io"), st.sampled_from(["quantized", "float", "int"])),
        st.tuples(st.just("--seed"), st.sampled_from(["0", "-1", "abc", "99999999999999999999"])),
        st.tuples(st.just("--output-dir"), st.sampled_from(["{d}/outdir", "{d}/good.tosa", "{d}/nodir/deep"])),
        st.tuples(st.sampled_from(["--random-inputs", "--check", "--ops", "--quiet"])),
        st.tuples(junk))

    def build(verb, model_path, options, mutation, mut_seed):
        argv = list(verb) + ([model_path] if verb[0] in ("inspect", "compile", "run") else [])
        if verb == ["tune", "report"]:
            argv.append(["{d}/log.jsonl", "{d}/garbage.jsonl", "{d}/missing.jsonl", "{d}", "{d}/good.tosa"]
                        [mut_seed % 5])
        for opt in options:
            argv.extend(opt)
        if verb == ["tune", "report"] and mut_seed % 3 == 0:
            argv += ["--plot", ["{d}/plot.png", "{d}/nodir/plot.png", "{d}"][mut_seed % 3]]
        graph = s["graph_names"][mut_seed % len(s["graph_names"])]
        onnx_name = ["float_cnn", "qdq_conv", "misc"][mut_seed % 3]
        files = {"mut.tosa": mutate_bytes(s["tosa"][graph], mutation, []),
                 "mut.json": mutate_bytes(s["json"][graph], mutation, []),
                 "mut.onnx": mutate_bytes(s["onnx"][onnx_name], mutation, [])}
        return Case("cli", verb[0] if verb[0] != "tune" else "tune report", "tosac " + " ".join(argv),
                    {"argv": argv, "graph": graph, "onnx": onnx_name, "files": files})

    verbs = st.sampled_from([["inspect"], ["compile"], ["run"], ["run"], ["compile"], ["models"],
                             ["tune", "report"], ["bogus"]])
    return st.builds(build, verbs, model, st.lists(option, max_size=5), byte_ops, st.integers(0, 1 << 16))


# ======================================================================================== worker
def _tensor_elements(graph) -> int:
    total = 0
    for _, t in _all_tensors(graph):
        n = 1
        for d in t.type.shape:
            n *= max(int(d), 0)
        total += n
    return total


def _check_graph(graph, result: dict, seed: int = 0) -> None:
    """Verify; for a small graph also compile, run and compare with the reference. Fills ``result``."""
    import numpy as np

    import tosac
    from tosac.errors import UnpredictableError
    from tosac.ir.random_inputs import random_inputs
    from tosac.ir.reference.interpreter import run
    from tosac.ir.verifier import verify

    result["stage"] = "verify"
    verify(graph)
    ops = sum(len(b.ops) for b in graph.blocks.values())
    if _tensor_elements(graph) > SMALL_ELEMENTS or ops > SMALL_OPS:
        result["stage"] = "verified (not compiled: large)"
        return
    result["stage"] = "compile"
    exe = tosac.compile(graph, "host", tuning_log=result.get("tuning_log"))
    for k in range(2):
        inputs = random_inputs(graph.input_types(), seed + k, narrow_bits=12)
        result["stage"] = "reference"
        try:
            want = run(graph, inputs)
        except UnpredictableError:
            continue
        result["stage"] = "run"
        got = exe.run(inputs)
        result["stage"] = "compare"
        if set(got) != set(want):
            raise _Wrong(f"outputs {sorted(got)} != reference {sorted(want)}")
        for name in want:
            a, b = np.asarray(got[name]), np.asarray(want[name])
            if a.dtype != b.dtype or a.shape != b.shape:
                raise _Wrong(f"output {name}: {a.dtype}{list(a.shape)} != reference {b.dtype}{list(b.shape)}")
            if a.dtype.kind == "f":
                same = np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True)
            else:
                same = np.array_equal(a, b)
            if not same:
                bad = int(np.sum(a != b))
                raise _Wrong(f"output {name} differs from the reference in {bad} of {a.size} elements "
                             f"(inputs seed {seed + k}, narrow_bits=12)")
    result["stage"] = "done"


class _Wrong(Exception):
    pass


def _leftovers(root: Path, before: set) -> list[str]:
    """Atomic-write temporaries (``.NAME.XXXX.tmp``) left under ``root`` that were not there ``before``."""
    found = []
    for p in root.rglob("*"):
        if p.name.startswith(".") and p.name.endswith(".tmp") and str(p) not in before:
            found.append(str(p.relative_to(root)))
    return found


def _cli_files(d: Path, case: dict) -> None:
    import numpy as np

    s = seeds()
    graph = case["graph"]
    (d / "good.tosa").write_bytes(s["tosa"][graph])
    (d / "good.json").write_bytes(s["json"][graph])
    (d / "good.onnx").write_bytes(s["onnx"][case["onnx"]])
    (d / "good.txt").write_text("hello")
    (d / "empty.onnx").write_bytes(b"")
    (d / "empty.tosa").write_bytes(b"")
    (d / "sub").mkdir()
    os.symlink(d / "good.tosa", d / "link.tosa")
    for name, data in case["files"].items():
        (d / name).write_bytes(data)
    from tosac.ir.serialize import read_tosa
    types = read_tosa(s["tosa"][graph]).input_types()
    first = next(iter(types.values()))
    np.save(d / "x.npy", np.zeros(first.shape, first.dtype.storage))
    np.save(d / "x_shape.npy", np.zeros((2, 3), first.dtype.storage))
    np.save(d / "x_dtype.npy", np.zeros(first.shape, np.float64))
    (d / "garbage.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    np.save(d / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "config.json").write_text(json.dumps({"nope": {"mr": 4}}))
    (d / "config_bad.json").write_text("{")
    (d / "config_list.json").write_text("[1, 2]")
    spaces, templates = s["logs"]["conv"]
    (d / "log.jsonl").write_text("".join(json.dumps(t) + "\n" for t in templates))
    (d / "garbage.jsonl").write_bytes(b"\x00\xff{{\n[1]\n" + b"{" * 3000 + b"\n")


def _run_cli(case: dict, d: Path, result: dict) -> None:
    import contextlib
    import warnings

    from tosac.app.cli import main

    _cli_files(d, case)
    argv = [a.replace("{d}", str(d)) for a in case["argv"]]
    before = {str(p) for p in d.rglob("*")}
    sizes_before = {str(p): p.stat().st_size for p in d.rglob("*") if p.is_file() and not p.is_symlink()}
    out, err = io.StringIO(), io.StringIO()
    result["stage"] = "cli"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            result.update(outcome="raw", error=traceback.format_exc()[-3000:])
            return
    stderr = err.getvalue()
    result["exit"] = code
    result["stderr"] = stderr[-2000:]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("tosac: error:")]
    usage = bool(lines) and lines[-1].startswith("tosac") and ": error: " in lines[-1] and any(
        ln.startswith("usage:") for ln in lines)
    left = _leftovers(d, before)
    if "Traceback" in stderr:
        result.update(outcome="raw", error="traceback on stderr: " + stderr[-2000:])
    elif left:
        result.update(outcome="wrong", error=f"half-written files left: {left}")
    elif code == 0:
        result["outcome"] = "correct"
    elif code == 1 and "MISMATCH" in stderr:
        result.update(outcome="wrong", error=stderr[-2000:])
    elif code == 2 and (len(errors) == 1 and lines[-1] == errors[0] or usage and not errors):
        empty = [p for p in d.rglob("*") if str(p) not in before and p.is_file() and p.stat().st_size == 0]
        shrunk = [p for p, n in sizes_before.items() if Path(p).exists() and Path(p).stat().st_size != n]
        if empty or shrunk:
            result.update(outcome="wrong", error=f"failed command left empty {empty} / changed {shrunk} files")
        else:
            result["outcome"] = "typed"
    else:
        result.update(outcome="raw", error=f"exit {code}, stderr not one 'tosac: error:' line: {stderr[-2000:]!r}")


def handle(case: dict, work: Path) -> dict:
    """Run one case in this process (the worker); never raises."""
    import warnings

    from tosac.errors import TosacError

    result: dict = {"outcome": None, "stage": "load"}
    d = Path(tempfile.mkdtemp(prefix="case-", dir=work))
    tmp_root = Path(tempfile.gettempdir())
    tmp_before = {str(p) for p in tmp_root.iterdir()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if case["category"] == "cli":
                _run_cli(case, d, result)
            elif case["category"] == "selftest":
                _selftest(case, d, result)
            else:
                _run_library_case(case, d, result)
    except TosacError as e:
        result.update(outcome="typed", error=f"{type(e).__name__}: {e}"[:1000])
    except _Wrong as e:
        result.update(outcome="wrong", error=str(e))
    except BaseException as e:  # noqa: BLE001 - what the fuzz suite is looking for
        if isinstance(e, KeyboardInterrupt):
            raise
        result.update(outcome="raw", error=traceback.format_exc()[-4000:])
    if result["outcome"] is None:
        result["outcome"] = "correct"
    if case["category"] != "cli":
        left = _leftovers(d, set())
        if left and result["outcome"] in ("typed", "correct"):
            result.update(outcome="wrong", error=f"half-written files left: {left}")
    stray = [p.name for p in tmp_root.iterdir() if str(p) not in tmp_before and p.name.endswith(".tmp")]
    if stray and result["outcome"] in ("typed", "correct"):
        result.update(outcome="wrong", error=f"temporary files left in {tmp_root}: {stray}")
    shutil.rmtree(d, ignore_errors=True)
    return result


def _selftest(case: dict, d: Path, result: dict) -> None:
    """Cases that prove the harness sees each kind of failure (tests/test_fuzz.py's harness test)."""
    action = case["action"]
    if action == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "sleep":
        time.sleep(3600)
    elif action == "raise":
        raise KeyError("raw")
    elif action == "typed":
        from tosac.errors import SerializationError
        raise SerializationError("typed")
    elif action == "wrong":
        raise _Wrong("compiled != reference")
    elif action == "leftover":
        (d / ".model.tosa.1234abcd.tmp").write_bytes(b"half")


def _run_library_case(case: dict, d: Path, result: dict) -> None:
    from tosac.ir.serialize import load, save

    category = case["category"]
    if "ir_ops" in case:
        graph = seed_graphs()[case["seed"]]
        mutate_graph(graph, case["ir_ops"])
        path = d / ("mutated" + case["ext"])
        result["stage"] = "save"
        save(graph, path)
        result["saved"] = path.read_bytes()
        result["stage"] = "load"
        _check_graph(load(path), result)
    elif category == "tuning_log":
        graph = seed_graphs()[case["seed"]]
        log = d / "log.jsonl"
        log.write_bytes(case["log"])
        result["tuning_log"] = str(log)
        _check_graph(graph, result)
        result.pop("tuning_log")
    else:
        path = d / ("case" + case["ext"])
        path.write_bytes(case["data"])
        if case["ext"] == ".onnx":
            from tosac.frontends.onnx import load as load_onnx
            graph = load_onnx(path)
        elif case["ext"] == ".tflite":
            from tosac.frontends.tflite import load as load_tflite
            graph = load_tflite(path)
        else:
            graph = load(path)
        _check_graph(graph, result)


def worker_main() -> None:
    """The worker loop: length-prefixed pickles in on stdin, out on the original stdout."""
    import faulthandler
    import resource

    wire_in = os.fdopen(os.dup(0), "rb")
    wire_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)                          # stray prints (LLVM, the CLI's stdout) go nowhere
    faulthandler.enable(sys.stderr)              # stderr is the worker's log: a crash leaves its traceback
    limit = int(os.environ.get("TOSAC_FUZZ_MEMORY", str(4 << 30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
    work = Path(os.environ["TOSAC_FUZZ_WORK"])
    import tosac.pipeline.driver  # noqa: F401 - warm up before the first case's clock starts
    seeds()
    _send(wire_out, {"ready": True})
    while True:
        case = _recv(wire_in)
        if case is None:
            return
        print(f"==== case {case['category']} {case['desc'][:300]}", file=sys.stderr, flush=True)
        _send(wire_out, handle(case, work))


def _send(f, obj) -> None:
    data = pickle.dumps(obj, protocol=4)
    f.write(struct.pack("<Q", len(data)) + data)
    f.flush()


def _recv(f):
    head = f.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(f.read(n))


# ========================================================================================== pool
class _Worker:
    def __init__(self, work: Path, index: int):
        self.log_path = work / f"worker-{index}.log"
        self.work = work
        env = dict(os.environ, TOSAC_FUZZ_WORK=str(work), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   PYTHONFAULTHANDLER="1", TMPDIR=str(work / "tmp"))
        (work / "tmp").mkdir(exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env, start_new_session=True)
        self.case: dict | None = None
        self.started = 0.0
        self.ready = False
        self.log_offset = 0

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, case: dict) -> None:
        self.case, self.started = case, time.monotonic()
        self.log.flush()
        self.log_offset = self.log_path.stat().st_size
        _send(self.proc.stdin, case)

    def read(self):
        return _recv(self.proc.stdout)

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self.log.close()


class Pool:
    """``jobs`` worker processes; each case gets ``timeout`` seconds; a dead or hung worker is replaced."""

    def __init__(self, jobs: int = 1, timeout: float = 30.0, work: Path | None = None):
        self.timeout = timeout
        self._own = work is None
        self.work = Path(tempfile.mkdtemp(prefix="tosac-fuzz-")) if work is None else Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.jobs = jobs
        self._next = 0
        self.workers = [self._start() for _ in range(jobs)]

    def _start(self) -> _Worker:
        self._next += 1
        w = _Worker(self.work, self._next)
        return w

    def _wait_ready(self, w: _Worker) -> _Worker:
        """Wait for a worker's hello (imports take a few seconds); a worker that cannot start is an error."""
        while not w.ready:
            r, _, _ = select.select([w], [], [], 120)
            msg = w.read() if r else None
            if not msg or not msg.get("ready"):
                tail = w.log_path.read_text(errors="replace")[-3000:]
                w.kill()
                raise RuntimeError(f"fuzz worker did not start: {tail}")
            w.ready = True
        return w

    def run(self, case: dict) -> dict:
        """One case, synchronously."""
        return next(iter(self.map([case])))[1]

    def map(self, cases):
        """Yield (case, result) for every case, ``jobs`` at a time (not in order)."""
        pending = list(cases)[::-1]
        busy: list[_Worker] = []
        idle = [self._wait_ready(w) for w in self.workers]
        while pending or busy:
            while pending and idle:
                w = idle.pop()
                w.send(pending.pop())
                busy.append(w)
            if not busy:
                continue
            now = time.monotonic()
            wait = max(0.0, min(w.started + self.timeout for w in busy) - now)
            ready, _, _ = select.select(busy, [], [], wait)
            for w in list(busy):
                if w in ready:
                    try:
                        result = w.read()
                    except (OSError, EOFError, pickle.UnpicklingError):
                        result = None
                    if result is None:                                    # the worker died
                        code = w.proc.wait()
                        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                        result = {"outcome": "crash", "error": f"worker died ({how}); its log:\n{w.log_tail()}"}
                        idle.append(self._replace(w, busy))
                    else:
                        busy.remove(w)
                        idle.append(w)
                    result["seconds"] = time.monotonic() - w.started
                    yield w.case, result
                elif time.monotonic() - w.started > self.timeout:
                    result = {"outcome": "hang", "seconds": self.timeout,
                              "error": f"no answer in {self.timeout:.0f} s; its log:\n{w.log_tail()}"}
                    w.kill()
                    idle.append(self._replace(w, busy))
                    yield w.case, result
            idle = [self._wait_ready(w) for w in idle]

    def _replace(self, w: _Worker, busy: list) -> _Worker:
        """A new worker in place of ``w`` (dead, or killed here)."""
        busy.remove(w)
        if w.proc.poll() is None:
            w.kill()
        i = self.workers.index(w)
        self.workers[i] = self._start()
        return self.workers[i]

    def close(self) -> None:
        for w in self.workers:
            w.close()
        if self._own:
            shutil.rmtree(self.work, ignore_errors=True)


# =================================================================================== reproducers
def write_reproducer(root: Path, index: int, case: dict, result: dict) -> Path:
    """A folder with the case's input files and case.json (what was done, what happened, how to replay)."""
    d = Path(root) / f"{case['category']}-{index:05d}-{result['outcome']}"
    d.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in case.items() if not isinstance(v, (bytes, dict))}
    meta["result"] = {k: v for k, v in result.items() if not isinstance(v, bytes)}
    if "data" in case:
        (d / ("input" + case["ext"])).write_bytes(case["data"])
        meta["replay"] = (f"tosac inspect {d / ('input' + case['ext'])} && "
                          f"tosac run {d / ('input' + case['ext'])} --random-inputs --check")
    if "saved" in result:
        (d / ("mutated" + case["ext"])).write_bytes(result["saved"])
        meta["replay"] = f"tosac run {d / ('mutated' + case['ext'])} --random-inputs --check"
    if "log" in case:
        (d / "log.jsonl").write_bytes(case["log"])
        seed_graphs()
        from tosac.ir.serialize import save
        save(seed_graphs()[case["seed"]], d / "model.tosa")
        meta["replay"] = f"tosac run {d}/model.tosa ... / tosac compile {d}/model.tosa --tuning-log {d}/log.jsonl"
    if "files" in case:
        for name, data in case["files"].items():
            (d / name).write_bytes(data)
        meta["replay"] = ("the worker's files (good.*: seed " + case["graph"] + ", onnx " + case["onnx"]
                          + ") with {d} = a scratch folder: " + " ".join(case["argv"]))
    (d / "case.json").write_text(json.dumps(meta, indent=1, default=str))
    return d


def summarize(rows: list[tuple[dict, dict]]) -> dict:
    """category -> {outcome: count, 'tried': n}."""
    table = {c: {"tried": 0, **{o: 0 for o in OUTCOMES}} for c in CATEGORIES}
    for case, result in rows:
        t = table[case["category"]]
        t["tried"] += 1
        t[result["outcome"]] += 1
    return table


def format_table(table: dict) -> str:
    cols = ["tried", "typed", "raw", "crash", "hang", "wrong", "correct"]
    heads = ["tried", "typed error", "raw traceback", "crash", "hang", "silently wrong", "correct"]
    lines = [f"{'category':<15}" + "".join(f"{h:>15}" for h in heads)]
    total = {c: 0 for c in cols}
    for cat, t in table.items():
        lines.append(f"{cat.replace('_', ' '):<15}" + "".join(f"{t[c]:>15}" for c in cols))
        for c in cols:
            total[c] += t[c]
    lines.append(f"{'total':<15}" + "".join(f"{total[c]:>15}" for c in cols))
    return "\n".join(lines)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker_main()

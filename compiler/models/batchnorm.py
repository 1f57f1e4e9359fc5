"""Data-dependent batch-norm statistics for seeded networks, and BN folding as exporters do it.

Random weights alone make activations explode or die with depth. A trained
network's BatchNormalization keeps each channel near zero mean and unit
variance on its data; :func:`calibrate` gives a seeded network the same
property: it runs the float network on seeded inputs with ONNX Runtime and
sets each BN's running mean and variance from the batch statistics of its
input, layer by layer in topological order (each BN sees the already
normalised layers before it). Every node is evaluated once: each step runs
only the nodes between what is already known and the next BN's input.

:func:`fold` then folds each BN into the Conv before it, as
``torch.onnx.export`` does in eval mode, so the shipped float model has no
BatchNormalization.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tosac.errors import TosacError
from tosac.models.layers import has_data
from tosac.models.shapes import infer


def calibrate(model: onnx.ModelProto, samples: Sequence[dict[str, np.ndarray]]) -> None:
    """Sets, in place, each BatchNormalization's mean/var from its input over ``samples`` (run by ORT)."""
    import onnxruntime as ort

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    known = [dict(sample) for sample in samples]
    done: set[int] = set()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    outputs = {o.name for o in graph.output}
    types = {name: elem_type for name, (elem_type, _) in infer(model).items()}
    for bn in graph.node:
        if bn.op_type != "BatchNormalization":
            continue
        needed = _ancestors(graph, bn.input[0], producer, done, known[0])
        if needed:
            known_names = set(known[0])
            feeds = sorted({name for i in needed for name in graph.node[i].input
                            if name in known_names})
            produced = {out for i in needed for out in graph.node[i].output}
            wanted = sorted(out for out in produced
                            if out == bn.input[0] or any(c not in needed and c not in done
                                                         for c in consumers.get(out, [])))
            sub = helper.make_graph(
                [graph.node[i] for i in needed], "calibration",
                [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(known[0][n].dtype),
                                               list(known[0][n].shape)) for n in feeds],
                [helper.make_tensor_value_info(n, types[n], None) for n in wanted],
                [inits[n] for n in sorted({n for i in needed for n in graph.node[i].input if n in inits})])
            submodel = helper.make_model(sub, opset_imports=model.opset_import, ir_version=model.ir_version)
            session = ort.InferenceSession(submodel.SerializeToString(), options, providers=["CPUExecutionProvider"])
            for values in known:
                values.update(zip(wanted, session.run(wanted, {n: values[n] for n in feeds})))
            done |= set(needed)
        x = np.stack([values[bn.input[0]] for values in known])          # [samples, N, C, ...]
        x = np.moveaxis(x, 2, 0).reshape(x.shape[2], -1).astype(np.float64)
        inits[bn.input[3]].CopyFrom(numpy_helper.from_array(x.mean(axis=1).astype(np.float32), bn.input[3]))
        inits[bn.input[4]].CopyFrom(numpy_helper.from_array(x.var(axis=1).astype(np.float32), bn.input[4]))
        for values in known:                                              # forget what nothing still reads
            for name in [n for n in values if n in producer and n not in outputs
                         and all(c in done for c in consumers.get(n, []))]:
                del values[name]


def _ancestors(graph: onnx.GraphProto, tensor: str, producer: dict[str, int], done: set[int],
               known: dict[str, np.ndarray]) -> list[int]:
    """Indices (topological order) of the not-yet-evaluated nodes ``tensor`` depends on."""
    found: set[int] = set()
    stack = [tensor]
    while stack:
        name = stack.pop()
        if name in known or name not in producer:
            continue
        i = producer[name]
        if i in found or i in done:
            continue
        found.add(i)
        stack.extend(graph.node[i].input)
    return sorted(found)


def fold(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with each BatchNormalization folded into the Conv that alone feeds it (bias added)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    keep, drop_inits, renamed = [], set(), {}
    outputs = {output.name for output in graph.output}
    for node in graph.node:
        if node.op_type != "BatchNormalization":
            keep.append(node)
            continue
        conv = producer.get(node.input[0])
        if conv is None or conv.op_type != "Conv" or readers[node.input[0]] != 1:
            raise TosacError(f"model builder: BatchNormalization {node.name} does not follow a Conv it alone reads")
        weight_name = conv.input[1]
        if has_data(inits[weight_name]):
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in node.input[1:5])
            scale = gamma / np.sqrt(var + eps)
            weight = numpy_helper.to_array(inits[weight_name]).astype(np.float64)
            bias = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2
                    else np.zeros(weight.shape[0]))
            inits[weight_name].CopyFrom(numpy_helper.from_array(
                (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(np.float32), weight_name))
            new_bias = ((bias - mean) * scale + beta).astype(np.float32)
        else:                                             # a skeleton: the structure is all that matters
            new_bias = np.zeros(inits[weight_name].dims[0], np.float32)
        bias_name = weight_name[:-len(".weight")] + ".bias" if weight_name.endswith(".weight") else weight_name + "_b"
        if len(conv.input) > 2:
            inits[conv.input[2]].CopyFrom(numpy_helper.from_array(new_bias, conv.input[2]))
        else:
            graph.initializer.append(numpy_helper.from_array(new_bias, bias_name))
            conv.input.append(bias_name)
        if node.output[0] in outputs:                     # the graph output keeps its name
            conv.output[0] = node.output[0]
        else:                                             # readers now read the conv, as in torch's export
            renamed[node.output[0]] = conv.output[0]
        drop_inits.update(node.input[1:5])
    for node in keep:
        node.input[:] = [renamed.get(name, name) for name in node.input]
    del graph.node[:]
    graph.node.extend(keep)
    remaining = [t for t in graph.initializer if t.name not in drop_inits]
    del graph.initializer[:]
    graph.initializer.extend(remaining)
    return model

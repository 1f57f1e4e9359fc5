"""Agreement of an imported quantized ONNX model with ONNX Runtime, layer by layer.

ORT requantizes in float (round half to even); tosac in integer fixed point
(RESCALE, ties rounded up). Given the same inputs a layer can differ by one
quantization step (1 LSB) where the exact value is within float rounding of
a tie; a later layer sees slightly different inputs and may drift further.
So the per-layer figures are the ones that say how exact the legalisation is,
and the first layer that differs at all must differ by at most 1 LSB.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from tosac.ir.random_inputs import random_inputs

#: Input index of each quantized op's output zero point (whose dtype is the output's).
OUTPUT_ZERO_POINT = {"QuantizeLinear": 2, "QLinearConv": 7, "QLinearMatMul": 7, "QGemm": 8, "QLinearAdd": 7,
                     "QLinearMul": 7, "QLinearAveragePool": 4, "QLinearGlobalAveragePool": 4,
                     "QLinearSoftmax": 4, "QLinearSigmoid": 4, "QLinearLeakyRelu": 4, "QLinearConcat": 1}


@dataclass(frozen=True)
class LayerAgreement:
    name: str            # the quantized tensor (a QuantizeLinear or QLinear* output)
    op: str              # the op that computes it (the float op before QuantizeLinear, for QDQ)
    max_diff: int        # max |tosac − ORT| in quantization steps
    equal: int           # elements exactly equal
    total: int

    @property
    def exact(self) -> float:
        return self.equal / self.total


def with_layer_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str], dict[str, str]]:
    """The model with every quantized layer result as an extra graph output; the names in graph order and
    the op computing each."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    types = {t.name: t.data_type for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    existing = {o.name for o in model.graph.output}
    names, ops = [], {}
    for node in model.graph.node:
        if node.op_type not in OUTPUT_ZERO_POINT:
            continue
        name = node.output[0]
        source = producers.get(node.input[0]) if node.op_type == "QuantizeLinear" else node
        ops[name] = source.op_type if source is not None else "input"
        if name not in existing:
            zp = node.input[OUTPUT_ZERO_POINT[node.op_type]]
            model.graph.output.append(helper.make_tensor_value_info(name, types[zp], None))
        names.append(name)
    return model, names, ops


def compare_layers(model: onnx.ModelProto, draws: int = 10, seed: int = 0, target: str = "reference"
                   ) -> list[LayerAgreement]:
    """Run the quantized model on tosac (``target``) and ORT for ``draws`` seeded integer inputs."""
    import onnxruntime as ort

    from tosac.conformance.execute import run_graph_on_target
    from tosac.frontends.onnx import load

    extended, names, ops = with_layer_outputs(model)
    graph = load(extended)
    iq = graph.metadata["io_quantization"]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(extended.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    stats = {n: [0, 0, 0] for n in names}
    for _ in range(draws):
        feed = random_inputs(graph.input_types(), rng)
        real = {name: ((q.astype(np.float32) - iq[name]["zero_point"]) * np.float32(iq[name]["scale"])
                       ).astype(np.float32) for name, q in feed.items()}
        ours = run_graph_on_target(graph, feed, target)
        theirs = dict(zip(names, session.run(names, real)))
        for n in names:
            diff = np.abs(ours[n].astype(np.int64) - theirs[n].astype(np.int64))
            s = stats[n]
            s[0], s[1], s[2] = max(s[0], int(diff.max())), s[1] + int((diff == 0).sum()), s[2] + diff.size
    return [LayerAgreement(n, ops[n], *stats[n]) for n in names]


def first_difference(layers: list[LayerAgreement]) -> LayerAgreement | None:
    """The first layer (graph order) where tosac and ORT differ at all."""
    return next((layer for layer in layers if layer.max_diff), None)

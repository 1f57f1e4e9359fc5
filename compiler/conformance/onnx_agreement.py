"""Agreement of an imported quantized ONNX model with ONNX Runtime: per node, end to end, and against float.

ORT requantizes in float (round half to even); tosac in integer fixed point
(RESCALE, ties rounded up). Given the same inputs a layer can differ by one
quantization step (1 LSB) where the exact value is within float rounding of
a tie; a later layer sees slightly different inputs and may drift further.
So the report has three parts:

1. **Per node, fed ORT's own inputs.** ORT runs the model once per input,
   unoptimised, with every quantized tensor exposed (QuantizeLinear outputs
   in QDQ models, QLinear* outputs in QOperator models, and the integer
   tensors those layers read). Each layer is then cut out of the model as a
   *sub-model*: its integer activation inputs become graph inputs, and it
   keeps its own nodes (QDQ: the QuantizeLinear and the float ops behind it
   back to the DequantizeLinear nodes; QOperator: the one node) and
   initializers. tosac imports the sub-model with the ordinary frontend
   (``io="quantized"``) and runs it on ORT's integer inputs to that layer, on
   the reference interpreter or a compiled target. Cutting ONNX sub-models
   rather than reaching into the imported graph works the same for QDQ
   groups and QOperator nodes, needs nothing from the frontend's internals,
   and exercises exactly the legalisation a user's model goes through (one
   caveat: where the frontend legalises across layers, e.g. an int8 input
   seen through a Transpose, the sub-model shows the layer's own
   legalisation).

   tosac's layer is compared with ORT's unoptimised result (its unfused
   float path, ORT_DISABLE_ALL) and with ORT's optimised kernel for the layer
   (ORT_ENABLE_ALL) on the same inputs; the third column compares ORT's two
   paths with each other. The optimised peer is the layer's sub-model run
   by ORT with all optimisations, given the model's Q -> DQ context around
   it (see :class:`_OrtOptimisedLayer`), not a tensor read out of an
   optimised whole-model run: exposing a QuantizeLinear output as a graph
   output stops ORT from fusing that group (on the bundled kws QDQ model all
   nine convolutions stay unfused float convolutions), so such a run would
   not show ORT's fused kernels. Conversely ORT leaves a few groups of some
   models unfused (e.g. a tensor read by two layers); for those the
   optimised column shows the kernel ORT uses where it does fuse. A fourth
   column compares tosac with the layer's float definition: ORT's float path
   (below) rounded half to even and saturated, which is what ONNX defines;
   where ORT's integer kernels are off (see the end of this docstring) it is
   the arbiter.

   **Near ties.** For each differing element the exact real value before
   rounding, ``r = y / scale_out + zero_point``, is estimated from ORT's
   float path: the layer's dequantized inputs through the float op (the QDQ
   group without its QuantizeLinear; for QOperator nodes the equivalent
   DequantizeLinear -> op), run by ORT in float32. The element is a near tie
   when ``|frac(r) - 0.5| <= tie_epsilon`` (in LSB). The tolerance, 2**-8
   LSB by default, is chosen from the errors involved: a tie flip between
   ORT's float32 requantization and tosac's 31-bit multiplier needs the exact
   value within about 2**-14 LSB of a tie (relative errors of 2**-22 on
   values below 2**8 LSB), while the float32 estimate itself carries the
   error of a float32 dot product (about sqrt(K) * 2**-24 times the sum of
   the products' magnitudes: well below 2**-8 LSB for the layers tosac
   targets, K up to a few thousand). A random element is a near tie with
   probability 2 * 2**-8 (0.8%), so near ties among the differing elements
   are evidence, not chance; the report also gives every node's count of
   near ties among all its elements (the base rate) and the largest distance
   to a tie among its differing elements.

2. **End to end** over seeded inputs (:func:`tosac.ir.random_inputs` over the
   imported graph's integer inputs; ORT gets their dequantized values, which
   its input QuantizeLinear maps back to the same integers): per output the
   max difference in LSB and the share of equal elements, and for a
   classifier the top-1 agreement of tosac with ORT (optimised), next to
   ORT's own optimised-versus-unoptimised agreement, the floor.
3. **Against the float model** (optional): how often tosac's and ORT's int8
   top-1 equal the float model's top-1 on the same (dequantized) inputs.

On x86 without AVX-512 VNNI (or AVX-VNNI), ORT's u8 x s8 kernels add pairs
of products in int16 with saturation (vpmaddubsw) and can be hundreds of LSB
off; the report states the host's VNNI support and lists nodes where ORT
disagrees with itself instead of hiding them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tosac.errors import FrontendError, TosacError, ToolchainMissingError, UnsupportedError
from tosac.ir.graph import Graph
from tosac.ir.random_inputs import random_inputs

#: Input index of each quantized op's output zero point (whose dtype is the output's).
OUTPUT_ZERO_POINT = {"QuantizeLinear": 2, "QLinearConv": 7, "QLinearMatMul": 7, "QGemm": 8, "QLinearAdd": 7,
                     "QLinearMul": 7, "QLinearAveragePool": 4, "QLinearGlobalAveragePool": 4,
                     "QLinearSoftmax": 4, "QLinearSigmoid": 4, "QLinearLeakyRelu": 4, "QLinearConcat": 1}

#: Default near-tie tolerance in LSB (see the module docstring for the choice).
TIE_EPSILON = 2.0 ** -8

#: ORT's graph optimisation levels compared: its unfused float path and its fused integer kernels.
MODES = ("unoptimised", "optimised")

#: The per-node comparisons (NodeRow fields) and how the table names them.
PEERS = {"vs_unoptimised": "tosac vs ORT unoptimised", "vs_optimised": "tosac vs ORT optimised",
         "ort_self": "ORT optimised vs unoptimised (same inputs)",
         "vs_float_path": "tosac vs float definition (rounded)"}


# ---------------------------------------------------------------------------------------------------------
# Layers and their sub-models


@dataclass(frozen=True)
class Layer:
    """One quantized result of the model and the nodes that compute it from integer tensors."""
    name: str                   # the quantized tensor (a QuantizeLinear or QLinear* output)
    op: str                     # the op computing it ("Conv", "QLinearConv", "Conv+Relu", "input")
    nodes: tuple[int, ...]      # indices into model.graph.node, in graph order
    inputs: tuple[str, ...]     # integer activation tensors read (fed from ORT's run)
    float_output: str | None    # QDQ: the float tensor the QuantizeLinear rounds
    skip: str | None = None     # why tosac does not compute this layer (a model input's quantization)


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _output_is_quantized(node: onnx.NodeProto) -> bool:
    index = OUTPUT_ZERO_POINT.get(node.op_type)
    if index is None:
        return False
    # QGemm without y_scale/y_zero_point has a float output; QuantizeLinear without a zero point is uint8.
    return node.op_type == "QuantizeLinear" or (len(node.input) > index and bool(node.input[index]))


def quantized_layers(model: onnx.ModelProto) -> list[Layer]:
    """Every quantized layer of ``model`` in graph order (see the module docstring for what a layer is)."""
    inits = _initializers(model)
    graph_inputs = {v.name for v in model.graph.input} - set(inits)
    producer = {o: i for i, n in enumerate(model.graph.node) for o in n.output if o}
    layers = []
    for index, node in enumerate(model.graph.node):
        if not _output_is_quantized(node):
            continue
        if node.op_type != "QuantizeLinear":
            inputs = tuple(dict.fromkeys(t for t in node.input if t and t not in inits))
            layers.append(Layer(node.output[0], node.op_type, (index,), inputs, None))
            continue
        group, inputs, ops, skip = {index}, [], [], None
        pending = [node.input[0]]
        seen: set[str] = set()
        while pending:
            tensor = pending.pop()
            if tensor in seen or not tensor or tensor in inits:
                continue
            seen.add(tensor)
            if tensor in graph_inputs:
                skip = "a model input's quantization: tosac takes the quantized input itself"
                continue
            if tensor not in producer:
                raise FrontendError(f"tensor '{tensor}' (read by the group of '{node.output[0]}') has no producer")
            p = producer[tensor]
            group.add(p)
            source = model.graph.node[p]
            if source.op_type == "DequantizeLinear":
                if source.input[0] not in inits:
                    inputs.append(source.input[0])
                continue
            ops.append(source.op_type)
            pending.extend(source.input)
        op = "input" if skip else "+".join(reversed(ops)) or "Requantize"
        layers.append(Layer(node.output[0], op, tuple(sorted(group)), tuple(dict.fromkeys(inputs)),
                            node.input[0], skip))
    return layers


def _sub_model(model: onnx.ModelProto, nodes: list[onnx.NodeProto], inputs: Mapping[str, np.ndarray],
               outputs: Mapping[str, int], extra: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    """A model of ``nodes`` with ``inputs`` (name -> an example array) as graph inputs and ``outputs``
    (name -> ONNX element type); it keeps the initializers the nodes read."""
    inits = _initializers(model)
    extra_names = {t.name for t in extra}
    used = dict.fromkeys(t for n in nodes for t in n.input if t in inits and t not in extra_names)
    graph = helper.make_graph(
        nodes, "layer",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, t, None) for k, t in outputs.items()],
        [inits[t] for t in used] + list(extra))
    return helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)


def layer_model(model: onnx.ModelProto, layer: Layer, inputs: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """The one-layer ONNX model tosac imports: ``layer``'s nodes, its integer inputs as graph inputs."""
    nodes = [model.graph.node[i] for i in layer.nodes]
    return _sub_model(model, nodes, inputs, {layer.name: _output_type(model, nodes[-1])})


def _output_type(model: onnx.ModelProto, node: onnx.NodeProto) -> int:
    index = OUTPUT_ZERO_POINT[node.op_type]
    if len(node.input) <= index or not node.input[index]:
        return TensorProto.UINT8
    return _initializers(model)[node.input[index]].data_type


def _requantization(model: onnx.ModelProto, layer: Layer) -> tuple[np.ndarray, np.ndarray, int]:
    """The layer's output scale, zero point and (for per-axis quantization) axis."""
    node = model.graph.node[layer.nodes[-1]]
    inits = _initializers(model)
    index = OUTPUT_ZERO_POINT[node.op_type]
    scale = numpy_helper.to_array(inits[node.input[index - 1]]).astype(np.float64)
    zp_name = node.input[index] if len(node.input) > index else ""
    zero_point = numpy_helper.to_array(inits[zp_name]).astype(np.float64) if zp_name else np.zeros(())
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return scale, zero_point, axis


# QOperator nodes as DequantizeLinear -> float op: (data input triples (q, scale, zp) or bias index, float op,
# attributes copied). A bias (int32 at index b) is dequantized with scale A_scale * B_scale.
_QOPERATOR_FLOAT = {
    "QLinearConv": ([(0, 1, 2), (3, 4, 5), 8], "Conv", ("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                                       "strides")),
    "QLinearMatMul": ([(0, 1, 2), (3, 4, 5)], "MatMul", ()),
    "QGemm": ([(0, 1, 2), (3, 4, 5), 6], "Gemm", ("alpha", "transA", "transB")),
    "QLinearAdd": ([(0, 1, 2), (3, 4, 5)], "Add", ()),
    "QLinearMul": ([(0, 1, 2), (3, 4, 5)], "Mul", ()),
    "QLinearAveragePool": ([(0, 1, 2)], "AveragePool", ("auto_pad", "ceil_mode", "count_include_pad",
                                                         "kernel_shape", "pads", "strides")),
    "QLinearGlobalAveragePool": ([(0, 1, 2)], "GlobalAveragePool", ()),
    "QLinearSigmoid": ([(0, 1, 2)], "Sigmoid", ()),
    "QLinearLeakyRelu": ([(0, 1, 2)], "LeakyRelu", ("alpha",)),
    "QLinearSoftmax": ([(0, 1, 2)], "Softmax", ("axis",)),
}


def float_path_model(model: onnx.ModelProto, layer: Layer, inputs: Mapping[str, np.ndarray]
                     ) -> onnx.ModelProto | None:
    """The layer's float path (dequantized inputs -> float op, before rounding) as an ONNX model whose
    output is the float value the output quantization divides by its scale; None where not derivable."""
    if layer.float_output is not None:
        nodes = [model.graph.node[i] for i in layer.nodes[:-1]]
        return _sub_model(model, nodes, inputs, {layer.float_output: TensorProto.FLOAT})
    node = model.graph.node[layer.nodes[0]]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type not in _QOPERATOR_FLOAT or attrs.get("channels_last", 0):
        return None
    if node.op_type == "QLinearSoftmax" and attrs.get("opset", 13) < 13 and len(inputs[node.input[0]].shape) > 2:
        return None     # opset-11 Softmax flattens around the axis: not the same float op
    triples, op, copied = _QOPERATOR_FLOAT[node.op_type]
    inits = _initializers(model)
    nodes, extra, data = [], [], []
    scales = {}
    for k, spec in enumerate(triples):
        if isinstance(spec, int):            # an int32 bias: scale = a_scale * b_scale, zero point 0
            if len(node.input) <= spec or not node.input[spec]:
                continue
            bias_scale = (scales[0] * scales[1]).astype(np.float32).reshape(-1)
            name = f"{node.output[0]}__bias_scale"
            extra.append(numpy_helper.from_array(bias_scale if bias_scale.size > 1 else bias_scale[0], name))
            nodes.append(helper.make_node("DequantizeLinear", [node.input[spec], name], [f"{name}_dq"], axis=0))
            data.append(f"{name}_dq")
            continue
        q, s, z = (node.input[i] for i in spec)
        scale = numpy_helper.to_array(inits[s]).astype(np.float32)
        scales[k] = scale
        kwargs = {}
        if scale.size > 1:
            if scale.ndim != 1:
                return None
            shape = inputs[q].shape if q in inputs else tuple(inits[q].dims)
            if op == "Conv":
                kwargs["axis"] = 0
            elif op == "Gemm":
                kwargs["axis"] = 0 if attrs.get("transB", 0) else 1
            elif op == "MatMul":
                kwargs["axis"] = len(shape) - 1
            else:
                return None
        out = f"{node.output[0]}__dq{k}"
        nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [out], **kwargs))
        data.append(out)
    y = f"{node.output[0]}__float"
    nodes.append(helper.make_node(op, data, [y], **{k: v for k, v in attrs.items() if k in copied}))
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    sub = _sub_model(model, nodes, inputs, {y: TensorProto.FLOAT}, extra)
    del sub.opset_import[:]
    sub.opset_import.extend(opsets)
    return sub


# ---------------------------------------------------------------------------------------------------------
# ONNX Runtime


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ToolchainMissingError("the ONNX agreement report needs ONNX Runtime: pip install onnxruntime "
                                    "(or pip install 'tosac[test]')") from None
    return onnxruntime


def _session(model: onnx.ModelProto, mode: str):
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if mode == "optimised"
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    try:
        return _Session(ort.InferenceSession(model.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"]), mode)
    except Exception as exc:    # ORT raises its own exception types (Fail, InvalidGraph, ...)
        raise FrontendError(f"ONNX Runtime cannot load the model ({mode}): {exc}") from None


class _Session:
    """An ORT session whose failures are typed errors (ORT raises its own exception types)."""

    def __init__(self, session, mode: str):
        self.session, self.mode = session, mode

    def run(self, names: list[str] | None, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(names, dict(feed))
        except Exception as exc:
            raise FrontendError(f"ONNX Runtime ({self.mode}) failed to run the model: {exc}") from None


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Each tensor's ONNX element type: shape inference where it knows the op, else the output zero point's
    type (quantized ops) or the first input's (data movement on integers, e.g. Flatten of a QLinear output)."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    for v in (*model.graph.input, *model.graph.output):
        types.setdefault(v.name, v.type.tensor_type.elem_type)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for v in inferred.graph.value_info:
            if v.type.tensor_type.elem_type:
                types.setdefault(v.name, v.type.tensor_type.elem_type)
    except Exception:   # shape inference is only a shortcut here; the rules below cover the rest
        pass
    for node in model.graph.node:
        for out in node.output:
            if not out or types.get(out):
                continue
            if _output_is_quantized(node):
                types[out] = _output_type(model, node)
            elif node.op_type == "DequantizeLinear":
                types[out] = TensorProto.FLOAT
            elif node.input and types.get(node.input[0]):
                types[out] = types[node.input[0]]
    return types


def _exposing(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """``model`` with the tensors ``names`` as extra graph outputs."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    types = _element_types(model)
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            if not types.get(name):
                raise FrontendError(f"cannot tell the element type of tensor '{name}' to read it from ONNX Runtime")
            model.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
    return model


def host_has_vnni() -> bool:
    """Whether this CPU has AVX-512 VNNI or AVX-VNNI (ORT's exact u8 x s8 kernels on x86)."""
    from tosac.targets import host_target

    features = set(host_target().features)
    return bool({"avx512vnni", "avxvnni"} & features)


# ---------------------------------------------------------------------------------------------------------
# Per node


@dataclass
class NodeStats:
    """One layer against one peer, over all compared inputs."""
    elements: int = 0
    differing: int = 0
    max_lsb: int = 0
    near_ties: int | None = 0           # of the differing elements; None: no float path for this op
    near_ties_all: int | None = 0       # among all elements (the base rate)
    max_tie_distance: float | None = None   # largest |frac(r) - 0.5| among differing elements, in LSB

    @property
    def share_equal(self) -> float:
        return 1.0 - self.differing / self.elements if self.elements else 1.0

    def add(self, ours: np.ndarray, theirs: np.ndarray, distance: np.ndarray | None, epsilon: float) -> None:
        diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
        differs = diff != 0
        self.elements += diff.size
        self.differing += int(differs.sum())
        self.max_lsb = max(self.max_lsb, int(diff.max(initial=0)))
        if distance is None or self.near_ties is None:
            self.near_ties = self.near_ties_all = None
            return
        near = distance <= epsilon
        self.near_ties += int((near & differs).sum())
        self.near_ties_all += int(near.sum())
        if differs.any():
            worst = float(distance[differs].max())
            self.max_tie_distance = worst if self.max_tie_distance is None else max(self.max_tie_distance, worst)


@dataclass
class NodeRow:
    """One quantized layer: tosac fed ORT's inputs, against ORT unoptimised and optimised, ORT's optimised
    kernel against its unoptimised path on the same inputs, and tosac against the layer's float definition
    (ORT's float path rounded half to even and saturated: the arbiter where ORT's integer kernels are off)."""
    name: str
    op: str
    inputs: list[str]
    vs_unoptimised: NodeStats = field(default_factory=NodeStats)
    vs_optimised: NodeStats = field(default_factory=NodeStats)
    ort_self: NodeStats = field(default_factory=NodeStats)
    vs_float_path: NodeStats | None = None      # None: no float path for this op
    skipped: str | None = None
    error: str | None = None

    @property
    def compared(self) -> bool:
        return self.skipped is None and self.error is None and self.vs_unoptimised.elements > 0

    @property
    def max_lsb(self) -> int:
        return max(self.vs_unoptimised.max_lsb, self.vs_optimised.max_lsb)


class _TosacLayer:
    """A layer's sub-model imported by tosac and run on ``target`` (compiled once)."""

    def __init__(self, model: onnx.ModelProto, target: str):
        from tosac.frontends.onnx import load

        self.graph = load(model, io="quantized")
        self.target = target
        self._exe = None

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.target == "reference":
            from tosac.ir.reference.interpreter import run
            out = run(self.graph, inputs, verify=False)
        else:
            if self._exe is None:
                from tosac.pipeline.driver import compile as compile_graph
                from tosac.targets import get_target
                self._exe = compile_graph(self.graph, get_target(self.target))
            out = self._exe.run(inputs)
        return out[self.graph.outputs[0]]


def _real_value(session, requantization: tuple[np.ndarray, np.ndarray, int], inputs: Mapping[str, np.ndarray]
                ) -> np.ndarray:
    """Each element's real value r = y / scale + zero_point before rounding, from ORT's float path
    (``session``) and the layer's output quantization."""
    y = session.run(None, dict(inputs))[0].astype(np.float64)
    scale, zero_point, axis = requantization
    if scale.size > 1:
        shape = [1] * y.ndim
        shape[axis % y.ndim] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return y / scale + zero_point


def compare_nodes(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], target: str = "reference",
                  tie_epsilon: float = TIE_EPSILON,
                  build_layer: Callable[[onnx.ModelProto, Layer, Mapping[str, np.ndarray]], onnx.ModelProto]
                  | None = None) -> list[NodeRow]:
    """Per-node agreement (part 1 of the report) on ORT feeds ``feeds`` (the model's own input names).

    ``build_layer`` makes the sub-model tosac imports for a layer (default :func:`layer_model`).
    """
    build_layer = build_layer or layer_model
    layers = quantized_layers(model)
    rows = [NodeRow(layer.name, layer.op, list(layer.inputs), skipped=layer.skip) for layer in layers]
    active = [(layer, row) for layer, row in zip(layers, rows) if layer.skip is None]
    graph_inputs = {v.name for v in model.graph.input}
    exposed = [t for t in dict.fromkeys(t for layer, _ in active for t in (*layer.inputs, layer.name))
               if t not in graph_inputs]
    session = _session(_exposing(model, exposed), "unoptimised")
    parts: dict[str, dict] = {}         # per layer: tosac's sub-model, ORT's float path, ORT's optimised layer
    for feed in feeds:
        tensors = {**feed, **dict(zip(exposed, session.run(exposed, feed)))}
        for layer, row in active:
            if row.error:
                continue
            inputs = {t: tensors[t] for t in layer.inputs}
            theirs = tensors[layer.name]
            try:
                if layer.name not in parts:
                    parts[layer.name] = _layer_parts(model, layer, inputs, target, build_layer)
                part = parts[layer.name]
                real = _real_value(part["float"], part["requant"], inputs) if part["float"] else None
                ours = part["tosac"](inputs)
                fused = part["ort_optimised"](inputs)
            except TosacError as exc:
                row.error = f"{type(exc).__name__}: {exc}"
                continue
            distance = None
            if real is not None:
                distance = np.abs(real - np.floor(real) - 0.5)
                limits = np.iinfo(theirs.dtype)
                defined = np.clip(np.rint(real), limits.min, limits.max)     # rint: ties to even, as ONNX
                row.vs_float_path = row.vs_float_path or NodeStats()
                row.vs_float_path.add(ours, defined, distance, tie_epsilon)
            row.vs_unoptimised.add(ours, theirs, distance, tie_epsilon)
            row.vs_optimised.add(ours, fused, distance, tie_epsilon)
            row.ort_self.add(fused, theirs, distance, tie_epsilon)
    return rows


def _layer_parts(model: onnx.ModelProto, layer: Layer, inputs: Mapping[str, np.ndarray], target: str,
                 build_layer: Callable) -> dict:
    float_model = float_path_model(model, layer, inputs)
    return {"tosac": _TosacLayer(build_layer(model, layer, inputs), target),
            "float": _session(float_model, "unoptimised") if float_model is not None else None,
            "ort_optimised": _OrtOptimisedLayer(model, layer, inputs), "requant": _requantization(model, layer)}


class _OrtOptimisedLayer:
    """A layer run by ORT with all graph optimisations, in the context ORT's optimiser sees in the whole model.

    A QDQ group is given a float input through QuantizeLinear -> its DequantizeLinear nodes and a float output
    through DequantizeLinear, as between layers of the model, so that ORT converts int8 pairs to uint8 and
    fuses the group into its integer kernel as it does there; the output is mapped back to integers (exactly:
    it is scale * (q - zero_point) in float32). A QOperator node reads and writes integers, as in the model.
    """

    def __init__(self, model: onnx.ModelProto, layer: Layer, inputs: Mapping[str, np.ndarray]):
        self.layer, self.quant = layer, {}
        if layer.float_output is None:
            node = model.graph.node[layer.nodes[0]]
            sub = _sub_model(model, [node], inputs, {layer.name: _output_type(model, node)})
        else:
            sub = self._wrapped(model, layer, inputs)
        self.session = _session(sub, "optimised")
        self.scale, self.zero_point, _ = _requantization(model, layer)

    def _wrapped(self, model: onnx.ModelProto, layer: Layer, inputs: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        inits = _initializers(model)
        nodes = [model.graph.node[i] for i in layer.nodes]
        real_inputs, quantize = {}, []
        for name in layer.inputs:
            dq = next(n for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] == name)
            scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
            has_zp = len(dq.input) > 2 and dq.input[2]
            zp = numpy_helper.to_array(inits[dq.input[2]]) if has_zp else np.zeros((), np.uint8)
            if scale.size > 1:
                raise UnsupportedError(f"'{name}': per-channel activation quantization")
            self.quant[name] = (scale.reshape(()), zp.reshape(()))
            real_inputs[f"{name}__real"] = inputs[name].astype(np.float32)
            quantize.append(helper.make_node("QuantizeLinear", [f"{name}__real", *dq.input[1:]], [name]))
        q = nodes[-1]
        dequantize = helper.make_node("DequantizeLinear", [layer.name, *q.input[1:]], [f"{layer.name}__real"],
                                      **{a.name: helper.get_attribute_value(a) for a in q.attribute})
        return _sub_model(model, quantize + nodes + [dequantize], real_inputs,
                          {f"{layer.name}__real": TensorProto.FLOAT})

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.layer.float_output is None:
            return self.session.run(None, dict(inputs))[0]
        feed = {}
        for name, (scale, zp) in self.quant.items():
            feed[f"{name}__real"] = ((inputs[name].astype(np.float32) - np.float32(zp)) * scale).astype(np.float32)
        y = self.session.run(None, feed)[0].astype(np.float64)
        return (np.round(y / self.scale) + self.zero_point).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# End to end


@dataclass
class Difference:
    """Two runs of one output compared: max difference (LSB for quantized outputs, else absolute) and
    equal elements."""
    max_diff: float = 0.0
    equal: int = 0
    total: int = 0

    @property
    def share_equal(self) -> float:
        return self.equal / self.total if self.total else 1.0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
            diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
        else:
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        self.max_diff = max(self.max_diff, float(diff.max(initial=0)))
        self.equal += int((diff == 0).sum())
        self.total += diff.size


@dataclass
class OutputAgreement:
    name: str
    unit: str                            # "LSB" (integer output) or "abs" (float output)
    tosac_vs_optimised: Difference = field(default_factory=Difference)
    tosac_vs_unoptimised: Difference = field(default_factory=Difference)
    optimised_vs_unoptimised: Difference = field(default_factory=Difference)
    # With a float model: mean |output - float model's| in real units, for tosac and ORT optimised.
    tosac_vs_float_mean_abs: float | None = None
    ort_vs_float_mean_abs: float | None = None


@dataclass
class EndToEnd:
    inputs: int
    classifier: bool
    outputs: list[OutputAgreement]
    # top-1 agreement counts (of ``inputs``), classifier only
    top1_tosac_vs_optimised: int | None = None
    top1_tosac_vs_unoptimised: int | None = None
    top1_optimised_vs_unoptimised: int | None = None
    # with a float model, classifier only: top-1 equal to the float model's
    top1_float_tosac: int | None = None
    top1_float_ort_optimised: int | None = None
    top1_float_ort_unoptimised: int | None = None


def _is_classifier(graph) -> bool:
    """One output shaped (N, C) with C > 1, unlike every input: a class-score vector, not a reconstruction."""
    if len(graph.outputs) != 1:
        return False
    shape = tuple(graph.output_types()[graph.outputs[0]].shape)
    inputs = [tuple(t.shape) for t in graph.input_types().values()]
    return len(shape) == 2 and shape[1] > 1 and shape not in inputs


def _ort_feed(model: onnx.ModelProto, graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ORT's feed for tosac's ``inputs``: quantized inputs as their real values, the others in the ONNX input's
    own type (tosac's int32 token ids are int64 to ORT)."""
    iq = graph.metadata.get("io_quantization", {})
    declared = {v.name: helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type) for v in model.graph.input}
    return {name: ((q.astype(np.float32) - iq[name]["zero_point"]) * np.float32(iq[name]["scale"])
                   ).astype(np.float32) if name in iq else q.astype(declared.get(name, q.dtype))
            for name, q in inputs.items()}


def _as_tosac_output(graph, name: str, value: np.ndarray) -> np.ndarray:
    """An ORT output in tosac's terms: a dequantized output (float) back to its integers (exact: the value is
    scale * (q - zero_point) in float32)."""
    iq = graph.metadata.get("io_quantization", {}).get(name)
    if iq is None or np.issubdtype(value.dtype, np.integer):
        return value
    q = np.round(value.astype(np.float64) / iq["scale"]) + iq["zero_point"]
    return q.astype(np.int64)


def _real(graph, name: str, value: np.ndarray) -> np.ndarray:
    iq = graph.metadata.get("io_quantization", {}).get(name)
    if iq is None or not np.issubdtype(value.dtype, np.integer):
        return value.astype(np.float64)
    return (value.astype(np.float64) - iq["zero_point"]) * iq["scale"]


def _top1(value: np.ndarray) -> np.ndarray:
    return np.argmax(value.reshape(value.shape[0], -1), axis=1)


def compare_end_to_end(model: onnx.ModelProto, graph, feeds: list[dict[str, np.ndarray]],
                       target: str = "reference", float_model: onnx.ModelProto | None = None,
                       classifier: bool | None = None) -> EndToEnd:
    """Part 2 (and 3 with ``float_model``): tosac's ``graph`` on ``feeds`` (tosac's inputs) against ORT."""
    sessions = {mode: _session(model, mode) for mode in MODES}
    onnx_outputs = [o.name for o in model.graph.output]
    if target == "reference":
        from tosac.ir.reference.interpreter import run

        def run_tosac(x):
            return run(graph, x, verify=False)
    else:
        from tosac.pipeline.driver import compile as compile_graph
        from tosac.targets import get_target
        run_tosac = compile_graph(graph, get_target(target)).run
    float_session, float_names = None, {}
    if float_model is not None:
        float_session = _session(float_model, "unoptimised")
        float_inputs = [v.name for v in float_model.graph.input
                        if v.name not in {t.name for t in float_model.graph.initializer}]
        float_names = _match_names(list(feeds[0]) if feeds else [], float_inputs, "input")
        float_outputs = _match_names(onnx_outputs, [o.name for o in float_model.graph.output], "output")
    classifier = _is_classifier(graph) if classifier is None else classifier
    rows = {name: OutputAgreement(name, "LSB" if name in graph.metadata.get("io_quantization", {}) else "abs")
            for name in graph.outputs}
    result = EndToEnd(len(feeds), classifier, list(rows.values()))
    top = {"tv": 0, "tu": 0, "vu": 0, "ft": 0, "fv": 0, "fu": 0}
    float_errors = {name: [0.0, 0.0] for name in rows}
    for inputs in feeds:
        ours = run_tosac(inputs)
        feed = _ort_feed(model, graph, inputs)
        theirs = {mode: dict(zip(onnx_outputs, sessions[mode].run(onnx_outputs, feed))) for mode in MODES}
        as_ours = {mode: {n: _as_tosac_output(graph, n, v) for n, v in theirs[mode].items()} for mode in MODES}
        for name, row in rows.items():
            row.tosac_vs_optimised.add(ours[name], as_ours["optimised"][name])
            row.tosac_vs_unoptimised.add(ours[name], as_ours["unoptimised"][name])
            row.optimised_vs_unoptimised.add(as_ours["optimised"][name], as_ours["unoptimised"][name])
        reference = None
        if float_session is not None:
            float_feed = {float_names[k]: v if np.issubdtype(v.dtype, np.integer) and k not in
                          graph.metadata.get("io_quantization", {}) else v.astype(np.float32) for k, v in feed.items()}
            reference = dict(zip(float_outputs.values(), float_session.run(list(float_outputs.values()),
                                                                           float_feed)))
            for name in rows:
                want = reference[float_outputs[name]].astype(np.float64)
                float_errors[name][0] += float(np.abs(_real(graph, name, ours[name]) - want).mean())
                float_errors[name][1] += float(np.abs(theirs["optimised"][name].astype(np.float64) - want).mean())
        if classifier:
            name = graph.outputs[0]
            t, v, u = _top1(ours[name]), _top1(as_ours["optimised"][name]), _top1(as_ours["unoptimised"][name])
            top["tv"] += int((t == v).all())
            top["tu"] += int((t == u).all())
            top["vu"] += int((v == u).all())
            if reference is not None:
                f = _top1(reference[float_outputs[name]])
                top["ft"] += int((f == t).all())
                top["fv"] += int((f == v).all())
                top["fu"] += int((f == u).all())
    if float_session is not None and feeds:
        for name, row in rows.items():
            row.tosac_vs_float_mean_abs = float_errors[name][0] / len(feeds)
            row.ort_vs_float_mean_abs = float_errors[name][1] / len(feeds)
    if classifier:
        result.top1_tosac_vs_optimised, result.top1_tosac_vs_unoptimised = top["tv"], top["tu"]
        result.top1_optimised_vs_unoptimised = top["vu"]
        if float_session is not None:
            result.top1_float_tosac, result.top1_float_ort_optimised = top["ft"], top["fv"]
            result.top1_float_ort_unoptimised = top["fu"]
    return result


def _match_names(ours: list[str], theirs: list[str], what: str) -> dict[str, str]:
    """Our names -> the float model's: by name where all match, else by position."""
    if len(ours) != len(theirs):
        raise TosacError(f"--float: the float model has {len(theirs)} {what}s ({theirs}), the quantized model "
                         f"{len(ours)} ({ours})")
    if set(ours) == set(theirs):
        return {n: n for n in ours}
    return dict(zip(ours, theirs))


# ---------------------------------------------------------------------------------------------------------
# The report


@dataclass
class AgreementReport:
    model: str
    target: str
    seed: int
    tie_epsilon: float
    node_inputs: int
    host_vnni: bool
    onnxruntime: str
    nodes: list[NodeRow]
    end_to_end: EndToEnd
    float_model: str | None = None
    findings: list[str] = field(default_factory=list)

    def worst_node_lsb(self) -> int:
        return max((row.max_lsb for row in self.nodes if row.compared), default=0)

    def to_json(self) -> dict:
        out = asdict(self)
        for row, data in zip(self.nodes, out["nodes"]):
            for key in PEERS:
                if getattr(row, key) is not None:
                    data[key]["share_equal"] = getattr(row, key).share_equal
        for o, data in zip(self.end_to_end.outputs, out["end_to_end"]["outputs"]):
            for key in ("tosac_vs_optimised", "tosac_vs_unoptimised", "optimised_vs_unoptimised"):
                data[key]["share_equal"] = getattr(o, key).share_equal
        out["summary"] = summarise(self.nodes)
        return out


def summarise(rows: list[NodeRow]) -> dict:
    """Totals per peer over the compared nodes: what the table's summary lines print."""
    compared = [r for r in rows if r.compared]
    out = {"layers": len(rows), "compared": len(compared), "skipped": sum(r.skipped is not None for r in rows),
           "errors": sum(r.error is not None for r in rows)}
    for key in PEERS:
        stats = [getattr(r, key) for r in compared if getattr(r, key) is not None]
        ties = [s.near_ties for s in stats if s.differing]
        out[key] = {"nodes": len(stats), "nodes_differing": sum(s.differing > 0 for s in stats),
                    "max_lsb": max((s.max_lsb for s in stats), default=0),
                    "elements": sum(s.elements for s in stats),
                    "differing": sum(s.differing for s in stats),
                    "near_ties": None if any(t is None for t in ties) else sum(ties)}
    return out


def load_model(spec: str | Path | onnx.ModelProto, label: str | None = None) -> tuple[onnx.ModelProto, str]:
    """An ONNX model from a path or a ModelProto (external data read safely), and the label the report uses."""
    from tosac.frontends.onnx.reader import read_model

    if isinstance(spec, onnx.ModelProto):
        return read_model(spec), label or spec.graph.name or "<ModelProto>"
    return read_model(Path(spec)), label or str(spec)


def agreement_report(model: str | Path | onnx.ModelProto, float_model: str | Path | onnx.ModelProto | None = None,
                     inputs: int = 100, seed: int = 0, target: str = "reference", node_inputs: int = 5,
                     tie_epsilon: float = TIE_EPSILON, classifier: bool | None = None,
                     labels: tuple[str | None, str | None] = (None, None),
                     samples: Callable[[Graph, int, int], list[dict[str, np.ndarray]]] | None = None
                     ) -> AgreementReport:
    """The whole agreement report of a quantized ONNX model with ONNX Runtime (see the module docstring).

    ``inputs`` seeded inputs end to end, the first ``node_inputs`` of them per node; ``target`` is where tosac
    runs ("reference" or a compile target); ``classifier`` overrides the guess whether the model classifies
    (top-1) or not; ``labels`` name the two models in the report; ``samples(graph, count, seed)`` gives the
    inputs where seeded random ones would be meaningless (token ids: :func:`tosac.models.sample_inputs`).
    Raises a TosacError for a float model, a missing or unreadable file, or a model tosac cannot import.
    """
    from tosac.frontends.onnx import load

    ort = _onnxruntime()
    proto, label = load_model(model, labels[0])
    if not any(_output_is_quantized(n) for n in proto.graph.node):
        raise UnsupportedError(f"{label}: no quantized layer (no QuantizeLinear or QLinear* node): the agreement "
                               "report compares int8 models; quantize it first (onnxruntime.quantization."
                               "quantize_static) and pass the float model with --float")
    float_proto, float_label = load_model(float_model, labels[1]) if float_model is not None else (None, None)
    if float_proto is not None and any(_output_is_quantized(n) for n in float_proto.graph.node):
        raise TosacError(f"--float {float_label}: this model is quantized; give the float model it was made from")
    if inputs < 1 or node_inputs < 0:
        raise TosacError(f"inputs must be at least 1 and node_inputs at least 0 (got {inputs}, {node_inputs})")
    graph = load(proto, io="quantized")
    if samples is not None:
        feeds = samples(graph, inputs, seed)
    else:
        rng = np.random.default_rng(seed)
        feeds = [random_inputs(graph.input_types(), rng) for _ in range(inputs)]
    nodes = compare_nodes(proto, [_ort_feed(proto, graph, f) for f in feeds[:node_inputs]], target, tie_epsilon)
    end = compare_end_to_end(proto, graph, feeds, target, float_proto, classifier)
    report = AgreementReport(label, target, seed, tie_epsilon, min(node_inputs, inputs), host_has_vnni(),
                             ort.__version__, nodes, end, float_label)
    report.findings = findings(report)
    return report


def findings(report: AgreementReport) -> list[str]:
    """What a reader should notice: ORT disagreeing with itself, differences beyond ties, errors."""
    out = []
    rows = [r for r in report.nodes if r.compared]
    wild = [r for r in rows if r.ort_self.max_lsb > 1]
    if wild:
        worst = max(wild, key=lambda r: r.ort_self.max_lsb)
        cause = ("this CPU has no AVX-512 VNNI/AVX-VNNI: ORT's u8 x s8 kernels add pairs of products in int16 "
                 "with saturation (vpmaddubsw); quantize with reduce_range=True (7-bit weights) for such CPUs"
                 if not report.host_vnni else "this CPU has VNNI, so saturating u8 x s8 kernels are not the cause")
        out.append(f"ORT's optimised kernels differ from ORT's own unoptimised path on the same inputs by more "
                   f"than 1 LSB at {len(wild)} node(s), up to {worst.ort_self.max_lsb} LSB at '{worst.name}' "
                   f"({worst.op}); {cause}")
    for key, peer in (("vs_unoptimised", "ORT unoptimised"), ("vs_optimised", "ORT optimised")):
        beyond = [r for r in rows if getattr(r, key).max_lsb > 1]
        if beyond:
            worst = max(beyond, key=lambda r: getattr(r, key).max_lsb)
            out.append(f"tosac differs from {peer} by more than 1 LSB at {len(beyond)} node(s) when fed its "
                       f"inputs, up to {getattr(worst, key).max_lsb} LSB at '{worst.name}' ({worst.op})")
        counted = [(r, getattr(r, key)) for r in rows if getattr(r, key).near_ties is not None]
        unexplained = [(r, s.differing - s.near_ties) for r, s in counted if s.differing > s.near_ties]
        if unexplained:
            where = ", ".join(f"'{r.name}' ({r.op}) {n}" + (", where ORT's two paths also differ"
                                                             if r.ort_self.differing else "")
                              for r, n in sorted(unexplained, key=lambda x: -x[1])[:3])
            out.append(f"{sum(n for _, n in unexplained)} element(s) differing from {peer} are not near ties (real "
                       f"value more than {report.tie_epsilon:g} LSB from a .5 boundary): {where}")
    ort_off = [r for r in rows if r.max_lsb > 1 and r.vs_float_path is not None and r.vs_float_path.max_lsb <= 1]
    if ort_off:
        cause = ("this CPU has no AVX-512 VNNI/AVX-VNNI: ORT's u8 x s8 kernels add pairs of products in int16 with "
                 "saturation (vpmaddubsw); quantize with reduce_range=True (7-bit weights) for such CPUs"
                 if not report.host_vnni else "this CPU has VNNI")
        out.append(f"at {len(ort_off)} node(s) where tosac differs from ORT by more than 1 LSB, tosac is within "
                   f"1 LSB of the layer's float definition, so ORT's integer kernel is off there ({cause}): "
                   + ", ".join(f"'{r.name}'" for r in ort_off[:5]))
    beyond = [r for r in rows if r.vs_float_path is not None and r.vs_float_path.max_lsb > 1]
    if beyond:
        worst = max(beyond, key=lambda r: r.vs_float_path.max_lsb)
        out.append(f"tosac differs from the float definition by more than 1 LSB at {len(beyond)} node(s), up to "
                   f"{worst.vs_float_path.max_lsb} LSB at '{worst.name}' ({worst.op})")
    for r in report.nodes:
        if r.error:
            out.append(f"node '{r.name}' ({r.op}) was not compared: {r.error}")
    end = report.end_to_end
    if end.classifier and end.top1_optimised_vs_unoptimised is not None and end.inputs:
        if end.top1_tosac_vs_optimised < end.top1_optimised_vs_unoptimised:
            out.append(f"tosac's top-1 agrees with ORT optimised less often ({end.top1_tosac_vs_optimised}/"
                       f"{end.inputs}) than ORT optimised with ORT unoptimised ({end.top1_optimised_vs_unoptimised}/"
                       f"{end.inputs})")
    return out


def _stats_cells(s: NodeStats | None) -> str:
    if s is None:
        return "n/a"
    ties = "n/a" if s.near_ties is None else f"{s.near_ties}"
    return f"{s.max_lsb:>4} {s.differing:>7} {ties:>5}"


def format_report(report: AgreementReport, worst: int = 10) -> str:
    """The readable table: summary per peer, the nodes with any difference (worst first), end to end,
    against float, findings. Full per-node rows are in :meth:`AgreementReport.to_json`."""
    lines = [f"ONNX agreement of {report.model} (tosac on {report.target}) with ONNX Runtime {report.onnxruntime}; "
             f"host AVX-512 VNNI/AVX-VNNI: {'yes' if report.host_vnni else 'no'}"]
    s = summarise(report.nodes)
    lines.append(f"\nPer node: {s['compared']} of {s['layers']} quantized layers compared ({s['skipped']} skipped: "
                 f"input quantization; {s['errors']} not importable), tosac fed ORT's own integer inputs, "
                 f"{report.node_inputs} inputs; near tie = real value within {report.tie_epsilon:g} LSB of a "
                 ".5 boundary")
    lines.append(f"  {'peer':<44}{'nodes differing':>16}{'max LSB':>9}{'elements differing':>24}"
                 f"{'near ties':>11}{'equal':>10}")
    for key, label in PEERS.items():
        t = s[key]
        equal = 1 - t["differing"] / t["elements"] if t["elements"] else 1.0
        ties = "n/a" if t["near_ties"] is None else str(t["near_ties"])
        lines.append(f"  {label:<44}{t['nodes_differing']:>10}/{t['nodes']:<5}{t['max_lsb']:>9}"
                     f"{t['differing']:>12,} / {t['elements']:<9,}{ties:>11}{equal:>10.4%}")
    def worst_of(r: NodeRow) -> int:
        return max(getattr(r, key).max_lsb for key in PEERS if getattr(r, key) is not None)

    differing = sorted((r for r in report.nodes if r.compared and worst_of(r)),
                       key=lambda r: (-worst_of(r), -(r.vs_unoptimised.differing + r.vs_optimised.differing)))
    if differing:
        lines.append(f"\nNodes with any difference ({len(differing)}; worst {min(worst, len(differing))} shown; "
                     "columns: max LSB, elements differing, of them near ties):")
        lines.append(f"  {'node':<36}{'op':<16}{'vs ORT unopt':>19}{'vs ORT opt':>19}{'ORT opt vs unopt':>19}"
                     f"{'vs float def':>19}")
        for r in differing[:worst]:
            cells = "".join(f"{_stats_cells(getattr(r, key)):>19}" for key in PEERS)
            lines.append(f"  {r.name[:35]:<36}{r.op[:15]:<16}{cells}")
    else:
        lines.append("\nNo node differs from ORT or the float definition on these inputs.")
    end = report.end_to_end
    lines.append(f"\nEnd to end: {end.inputs} seeded inputs (seed {report.seed})")
    if end.classifier:
        n = end.inputs
        lines.append(f"  top-1 agreement: tosac vs ORT optimised {end.top1_tosac_vs_optimised}/{n}; "
                     f"ORT optimised vs unoptimised (the floor) {end.top1_optimised_vs_unoptimised}/{n}; "
                     f"tosac vs ORT unoptimised {end.top1_tosac_vs_unoptimised}/{n}")
    for o in end.outputs:
        lines.append(f"  output {o.name} ({o.unit}): max diff / equal: tosac vs ORT optimised "
                     f"{o.tosac_vs_optimised.max_diff:g} / {o.tosac_vs_optimised.share_equal:.2%}; ORT optimised "
                     f"vs unoptimised {o.optimised_vs_unoptimised.max_diff:g} / "
                     f"{o.optimised_vs_unoptimised.share_equal:.2%}; tosac vs ORT unoptimised "
                     f"{o.tosac_vs_unoptimised.max_diff:g} / {o.tosac_vs_unoptimised.share_equal:.2%}")
    if report.float_model is not None:
        lines.append(f"\nAgainst the float model {report.float_model} (same real inputs):")
        if end.classifier:
            n = end.inputs
            lines.append(f"  top-1 equal to the float model's: tosac int8 {end.top1_float_tosac}/{n}; "
                         f"ORT int8 optimised {end.top1_float_ort_optimised}/{n}; "
                         f"ORT int8 unoptimised {end.top1_float_ort_unoptimised}/{n}")
        for o in end.outputs:
            lines.append(f"  output {o.name}: mean |int8 - float|: tosac {o.tosac_vs_float_mean_abs:.6g}, "
                         f"ORT optimised {o.ort_vs_float_mean_abs:.6g}")
    if report.findings:
        lines.append("\nFindings:")
        lines.extend(f"  - {f}" for f in report.findings)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# The per-layer check of the test suite: tosac's whole model against ORT's whole model, layer by layer.


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
    """Run the quantized model on tosac (``target``) and ORT for ``draws`` seeded integer inputs.

    Both run the whole model; ORT runs with its default optimisations, but exposing every QuantizeLinear output
    keeps ORT's QDQ groups unfused (module docstring), so for QDQ models ORT's side is mostly its float path.
    """
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

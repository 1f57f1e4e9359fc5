"""Pruning a graph: find the layers with constant int8 weights, rewrite those constants, report.

Layers are found in ``optimise_graph(graph)`` (constant folding + DCE), so a
weight computed from constants (e.g. a TRANSPOSE of a CONST, as ONNX MatMul
weights arrive) is a plain constant by then. Only the entry block is searched.

The graph returned is a new graph; the input is never modified:

* when every pruned weight is a CONST tensor of the input graph itself, it is a
  copy of the input graph in which only those constants differ;
* otherwise (a weight only becomes constant by folding) it is the optimised
  graph with the pruned constants (``PruneResult.folded`` is then True).

A weight constant shared by several layers is pruned once, with the view of the
first of them; every layer reading it must be selected with the same choice
(otherwise :class:`PruneError`, since pruning one layer would silently change
the other). A weight also read by an op that is not a prunable layer in weight
position (or that is a block output) is not prunable.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from tosac.errors import PruneError
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor
from tosac.ir.verifier import verify
from tosac.pipeline.optimise import optimise_graph
from tosac.prune.patterns import check_sparsity, magnitudes, parse_pattern, view_mask

__all__ = ["LayerChoice", "PrunableLayer", "LayerReport", "PruneResult", "prunable_layers", "prune"]

#: op name -> (index of the weight operand, index of the weight zero point operand)
_WEIGHT_OPERANDS = {"CONV2D": (1, 4), "MATMUL": (1, 3)}


@dataclass(frozen=True)
class LayerChoice:
    """How to prune one layer: a pattern (see :func:`parse_pattern`) and a sparsity (None for N:M)."""
    pattern: str
    sparsity: float | None = None


@dataclass
class PrunableLayer:
    """A layer whose weight is a constant int8 tensor, with the sizes a cost model needs.

    ``positions`` is how many multiply-accumulates each weight element takes
    part in, so ``macs == positions * weight size`` (dense): N*OH*OW for CONV2D,
    H for MATMUL (N*H when N == 1, the only case the frontends produce; a MATMUL
    with N > 1 uses each B[n] for the H rows of batch n only).
    """
    name: str
    op: str
    weight: str
    out_channels: int
    reduction: int
    positions: int
    macs: int
    taps: int = 1
    batch: int = 1
    zero_point: int = 0
    shape: tuple[int, ...] = ()


@dataclass
class LayerReport:
    """What pruning did to one layer (densities count elements different from the zero point)."""
    layer: str
    op: str
    pattern: str
    sparsity_requested: float | None
    weight: str
    size: int
    nonzeros_before: int
    nonzeros_after: int
    density: float
    density_before: float
    macs_before: int
    macs_after: int
    magnitude_removed: int
    magnitude_total: int


@dataclass
class PruneResult:
    """The pruned graph and one :class:`LayerReport` per pruned layer."""
    graph: Graph
    report: list[LayerReport] = field(default_factory=list)
    folded: bool = False

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over all pruned layers' weights (0.0 when nothing was pruned)."""
        size = sum(r.size for r in self.report)
        return 1.0 - sum(r.nonzeros_after for r in self.report) / size if size else 0.0

    @property
    def macs_before(self) -> int:
        return sum(r.macs_before for r in self.report)

    @property
    def macs_after(self) -> int:
        return sum(r.macs_after for r in self.report)

    def table(self) -> str:
        """An aligned text table, one row per layer and a total row."""
        head = ["layer", "op", "pattern", "density", "before", "MACs before", "MACs after", "|w| removed"]
        rows = [[r.layer, r.op, r.pattern, f"{r.density:.3f}", f"{r.density_before:.3f}", f"{r.macs_before:,}",
                 f"{r.macs_after:,}", f"{r.magnitude_removed / r.magnitude_total:.1%}" if r.magnitude_total
                 else "-"] for r in self.report]
        total_mag = sum(r.magnitude_total for r in self.report)
        rows.append(["total", "", "", f"{1.0 - self.sparsity:.3f}", "", f"{self.macs_before:,}",
                     f"{self.macs_after:,}", f"{sum(r.magnitude_removed for r in self.report) / total_mag:.1%}"
                     if total_mag else "-"])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        right = {3, 4, 5, 6, 7}

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])

    def to_json(self) -> dict:
        """A JSON-serialisable summary (``json.dumps`` works on it)."""
        out = {"sparsity": self.sparsity, "macs_before": self.macs_before, "macs_after": self.macs_after,
               "folded": self.folded, "layers": [asdict(r) for r in self.report]}
        json.dumps(out)   # fail here, not in the caller, if a numpy scalar slipped in
        return out


# --------------------------------------------------------------------------------------------- finding layers

def _const_int(block: Block, name: str) -> int | None:
    data = block.constant(name)
    if data is None or np.asarray(data).size != 1:
        return None
    return int(np.asarray(data).reshape(-1)[0])


def _why_not(block: Block, op: Op, readers: dict[str, list[tuple[Op, int]]]) -> str | None:
    """Why ``op`` is not a prunable layer, or None when it is."""
    if op.name not in _WEIGHT_OPERANDS:
        return (f"it is a {op.name}; only CONV2D (including fully-connected layers) and MATMUL "
                f"with constant int8 weights are prunable")
    wi, zi = _WEIGHT_OPERANDS[op.name]
    if len(op.inputs) <= max(wi, zi):
        return f"{op.name} has {len(op.inputs)} operands, expected at least {max(wi, zi) + 1}"
    weight = op.inputs[wi]
    role = "weight" if op.name == "CONV2D" else "B operand"
    if block.constant(weight) is None:
        return f"its {role} '{weight}' is not a constant"
    if block.type_of(weight).dtype is not DType.INT8:
        return f"its {role} '{weight}' is {block.type_of(weight).dtype.name}, not INT8"
    if _const_int(block, op.inputs[zi]) is None:
        return f"the zero point '{op.inputs[zi]}' of its {role} is not a constant scalar"
    for reader, index in readers.get(weight, []):
        if _WEIGHT_OPERANDS.get(reader.name, (None,))[0] != index or reader.name != op.name:
            return (f"its {role} '{weight}' is also read by {reader.label()} as operand {index}, "
                    f"which pruning would change")
    if weight in block.outputs:
        return f"its {role} '{weight}' is also a block output"
    return None


def _readers(block: Block) -> dict[str, list[tuple[Op, int]]]:
    out: dict[str, list[tuple[Op, int]]] = {}
    for op in block.ops:
        for i, name in enumerate(op.inputs):
            out.setdefault(name, []).append((op, i))
    return out


def _layer(block: Block, op: Op) -> PrunableLayer:
    wi, zi = _WEIGHT_OPERANDS[op.name]
    weight = op.inputs[wi]
    shape = tuple(block.type_of(weight).shape)
    out_shape = block.type_of(op.outputs[0]).shape
    zp = _const_int(block, op.inputs[zi]) or 0
    if op.name == "CONV2D":
        oc, kh, kw, ic = shape
        positions = int(np.prod(out_shape[:3], dtype=np.int64))
        return PrunableLayer(op.outputs[0], op.name, weight, oc, kh * kw * ic, positions,
                             positions * oc * kh * kw * ic, taps=kh * kw, zero_point=zp, shape=shape)
    n, c, w = shape
    h = int(block.type_of(op.inputs[0]).shape[1])
    return PrunableLayer(op.outputs[0], op.name, weight, w, c, h, h * n * c * w, batch=n, zero_point=zp,
                         shape=shape)


def _view(layer: PrunableLayer, data: np.ndarray) -> np.ndarray:
    """The weight as ``[G, O, T, K]`` (see :mod:`tosac.prune.patterns`)."""
    if layer.op == "CONV2D":
        oc, kh, kw, ic = data.shape
        return data.reshape(1, oc, kh * kw, ic)
    return np.transpose(data, (0, 2, 1))[:, :, None, :]          # B[n].T: [N, W, 1, C]


def _unview(layer: PrunableLayer, view: np.ndarray) -> np.ndarray:
    if layer.op == "CONV2D":
        return view.reshape(layer.shape)
    return np.ascontiguousarray(np.transpose(view[:, :, 0, :], (0, 2, 1)))


def _optimised(graph: Graph) -> Graph:
    if not isinstance(graph, Graph):
        raise PruneError(f"prune needs a tosac Graph, got {type(graph).__name__}")
    return optimise_graph(graph)


def _find(block: Block) -> tuple[dict[str, PrunableLayer], dict[str, tuple[Op, str | None]]]:
    readers = _readers(block)
    layers: dict[str, PrunableLayer] = {}
    ops: dict[str, tuple[Op, str | None]] = {}
    for op in block.ops:
        if not op.outputs:
            continue
        reason = _why_not(block, op, readers)
        ops[op.outputs[0]] = (op, reason)
        if reason is None:
            layers[op.outputs[0]] = _layer(block, op)
    return layers, ops


def prunable_layers(graph: Graph) -> list[PrunableLayer]:
    """The layers of ``graph`` that :func:`prune` can prune, in execution order (after constant folding)."""
    return list(_find(_optimised(graph).main)[0].values())


# --------------------------------------------------------------------------------------------- pruning

def _requests(choice, layers, prunable: dict[str, PrunableLayer],
              ops: dict[str, tuple[Op, str | None]]) -> dict[str, LayerChoice]:
    if isinstance(choice, LayerChoice):
        if layers is None:
            names = list(prunable)
        else:
            if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
                raise PruneError(f"layers must be an iterable of layer names, got {layers!r}")
            names = list(layers)
        wanted = {name: choice for name in names}
    elif isinstance(choice, Mapping):
        if layers is not None:
            raise PruneError("layers= selects the layers of a single LayerChoice; with a mapping of "
                             "layer -> LayerChoice the mapping's keys already select them")
        wanted = dict(choice)
    else:
        raise PruneError(f"choice must be a LayerChoice or a mapping of layer name -> LayerChoice, "
                         f"got {type(choice).__name__}")
    for name, c in wanted.items():
        if not isinstance(name, str):
            raise PruneError(f"layer names are strings (an op's first output tensor), got {name!r}")
        if not isinstance(c, LayerChoice):
            raise PruneError(f"layer '{name}': expected a LayerChoice, got {type(c).__name__} {c!r}")
        if name not in prunable:
            if name in ops:
                op, reason = ops[name]
                raise PruneError(f"layer '{name}' ({op.label()}) is not prunable: {reason}")
            known = ", ".join(list(prunable)[:8]) + (", ..." if len(prunable) > 8 else "")
            raise PruneError(f"no layer '{name}' in the graph (after constant folding); a layer is named by "
                             f"its op's first output tensor; prunable layers: {known or 'none'}")
        check_sparsity(parse_pattern(c.pattern), c.sparsity, f"layer '{name}'")
    return wanted


def prune(graph: Graph, choice: "LayerChoice | Mapping[str, LayerChoice]", *,
          layers: Iterable[str] | None = None) -> PruneResult:
    """Prune constant int8 weights by magnitude with a structure.

    A single :class:`LayerChoice` applies to every prunable layer (or to the
    names in ``layers``); a mapping applies per layer and the other layers
    stay dense. Errors in the request raise :class:`PruneError` before
    anything is computed.
    """
    optimised = _optimised(graph)
    block = optimised.main
    prunable, ops = _find(block)
    wanted = _requests(choice, layers, prunable, ops)

    # Shared weights: every reader must be selected, with the same choice.
    by_weight: dict[str, list[str]] = {}
    for name, layer in prunable.items():
        by_weight.setdefault(layer.weight, []).append(name)
    for name in wanted:
        sharers = by_weight[prunable[name].weight]
        for other in sharers:
            if wanted.get(other) != wanted[name]:
                raise PruneError(f"layer '{name}': its weight '{prunable[name].weight}' is shared with layer "
                                 f"'{other}', which is " + ("not selected" if other not in wanted else
                                                            f"selected with {wanted[other]}") +
                                 f"; select every layer of {sharers} with the same LayerChoice")

    new_data: dict[str, np.ndarray] = {}
    reports: list[LayerReport] = []
    for name in (n for n in prunable if n in wanted):        # execution order
        layer, c = prunable[name], wanted[name]
        pattern = parse_pattern(c.pattern)
        before = np.asarray(block.constant(layer.weight))
        zp = layer.zero_point
        if layer.weight not in new_data:
            view = _view(layer, before)
            keep = view_mask(magnitudes(view, zp), pattern, c.sparsity)
            pruned_view = np.where(keep, view, np.asarray(zp, dtype=view.dtype))
            new_data[layer.weight] = np.ascontiguousarray(_unview(layer, pruned_view), dtype=DType.INT8.storage)
        after = new_data[layer.weight]
        mag_before = magnitudes(before, zp)
        nz_before, nz_after = int(np.count_nonzero(before != zp)), int(np.count_nonzero(after != zp))
        size = int(before.size)
        reports.append(LayerReport(
            layer=name, op=layer.op, pattern=str(pattern), sparsity_requested=c.sparsity, weight=layer.weight,
            size=size, nonzeros_before=nz_before, nonzeros_after=nz_after,
            density=nz_after / size if size else 1.0, density_before=nz_before / size if size else 1.0,
            macs_before=layer.positions * size, macs_after=layer.positions * nz_after,
            magnitude_removed=int(mag_before[after != before].sum()), magnitude_total=int(mag_before.sum())))

    base, folded = _base(graph, optimised, new_data)
    result = copy.deepcopy(base)
    for name, data in new_data.items():
        t = result.main.tensors[name]
        result.main.tensors[name] = Tensor(t.name, t.type, data)
    verify(result)
    return PruneResult(result, reports, folded)


def _base(graph: Graph, optimised: Graph, new_data: Mapping[str, np.ndarray]) -> tuple[Graph, bool]:
    """The input graph when all pruned weights are its own CONSTs (only they change), else the optimised one."""
    block = graph.main
    for name in new_data:
        producer = block.producer(name)
        if (producer is None or producer.name != "CONST" or block.constant(name) is None
                or block.type_of(name) != optimised.main.type_of(name)
                or not np.array_equal(block.constant(name), optimised.main.constant(name))):
            return optimised, True
    return graph, False

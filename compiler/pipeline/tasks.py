"""Tuning tasks: the unique kernels of a model.

A task is one fused op group as a graph of its own (its non-constant inputs
become graph inputs, its constants stay), with the template's config space and
a weight: how many kernels of the model share it. Kernels share a task when
their key matches: op pattern, attributes, operand types and shapes, the
values of small constants (zero points, shifts) and the target class. Large
constants (weights) are not part of the key: they do not change which
schedule is fastest — except their zero pattern: a pruned weight's nonzero mask
(when at least a tenth is zero) is part of the key, since it decides how fast
a sparse schedule is.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from tosac.ir.graph import Block, Graph, Op, Tensor
from tosac.lower.kernels import KernelBuilder
from tosac.passes.fusion import CONST_OPS, CONTROL_FLOW, OpGroup, group_ops
from tosac.pipeline.optimise import kernel_name, optimise_graph
from tosac.schedules.space import ConfigSpace
from tosac.targets import NAMED_TARGETS, Target, get_target

SMALL_CONSTANT = 16          # constants up to this many elements are part of the task key


def target_class(target: Target) -> str:
    """What a tuning record is valid for: the ISA family, not the machine's name."""
    return f"{target.triple.split('-')[0]}/{target.dot_product.value}/{target.vector_bits}"


def runnable_classes(host: Target | None = None) -> list[str]:
    """The target classes whose code ``host`` (default: this machine) runs natively, so can time: its own
    class and that of every named target of its architecture whose features it has (an AVX-512 machine
    runs ``x86_64-avx2`` code too). Everything else would run under an emulator, whose times are no measurements."""
    host = host or get_target("host")
    classes = [target_class(host)]
    for target in NAMED_TARGETS.values():
        if target.arch == host.arch and set(target.features) <= set(host.features):
            classes.append(target_class(target))
    return list(dict.fromkeys(classes))


def _attr(value) -> object:
    if hasattr(value, "name"):
        return value.name
    if isinstance(value, (list, tuple)):
        return [_attr(v) for v in value]
    return value


def _zero_pattern(data: np.ndarray | None) -> str | None:
    if data is None or data.dtype.kind not in "iu" or np.count_nonzero(data) > 0.9 * data.size:
        return None
    return "mask:" + hashlib.sha256(np.packbits(np.asarray(data) != 0).tobytes()).hexdigest()[:16]


def task_key(block: Block, group: OpGroup, target: Target) -> str:
    """A stable key for ``group`` in ``block`` on ``target`` (a hex digest)."""
    parts = [target_class(target)]
    for op in group.ops:
        operands = []
        for name in op.inputs:
            ttype = block.type_of(name)
            data = block.constant(name)
            small = data is not None and data.size <= SMALL_CONSTANT
            operands.append([str(ttype), "const" if data is not None else "var",
                             np.asarray(data).reshape(-1).tolist() if small else _zero_pattern(data)])
        parts.append([op.name, sorted((k, _attr(v)) for k, v in op.attrs.items()), operands,
                      [str(block.type_of(n)) for n in op.outputs]])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def group_graph(block: Block, group: OpGroup) -> Graph:
    """``group`` as a graph of its own: variable inputs become graph inputs, constants stay."""
    sub = Block("main")
    for name in group.external_inputs():
        t = block.tensors[name]
        if t.data is not None:
            sub.tensors[name] = Tensor(name, t.type, t.data)
            sub.ops.append(Op("CONST_SHAPE" if t.dtype.kind == "shape" else "CONST", [], [name]))
        else:
            sub.tensors[name] = Tensor(name, t.type)
            sub.inputs.append(name)
    for op in group.ops:
        for name in op.outputs:
            sub.tensors[name] = Tensor(name, block.tensors[name].type)
        sub.ops.append(Op(op.name, list(op.inputs), list(op.outputs), dict(op.attrs), op.location))
    sub.outputs = list(group.outputs)
    return Graph({"main": sub})


@dataclass
class Task:
    key: str
    pattern: str
    target: Target
    graph: Graph
    weight: int = 1
    kernel_names: list[str] = field(default_factory=list)    # the model's kernels this task stands for

    def builder(self) -> KernelBuilder:
        """The single kernel of the task graph (its name is what ``compile``'s config keys use)."""
        block = self.graph.main
        (group,) = group_ops(block)
        return KernelBuilder(block, group, kernel_name(0, group), self.target)

    @property
    def space(self) -> ConfigSpace:
        return self.builder().space

    @property
    def mac_count(self) -> int:
        return self.builder().mac_count


def extract_tasks(graph: Graph, target: Target | str, optimised: bool = False) -> list[Task]:
    """The unique kernels of ``graph`` on ``target``, in first-use order, weighted by occurrence.

    ``optimised=True`` says the graph has been through the compiler's passes already.
    """
    target = get_target(target)
    block = (graph if optimised else optimise_graph(graph)).main
    tasks: dict[str, Task] = {}
    for index, group in enumerate(group_ops(block)):
        if group.anchor.name in CONTROL_FLOW or group.anchor.name in CONST_OPS:
            continue
        key = task_key(block, group, target)
        if key in tasks:
            tasks[key].weight += 1
        else:
            tasks[key] = Task(key, group.pattern, target, group_graph(block, group))
        tasks[key].kernel_names.append(kernel_name(index, group))
    return list(tasks.values())

"""One fused op group -> a compute definition, its config space, and a schedule.

``KernelBuilder`` is what the driver and the autotuner share: ``space`` is
what may be tuned, ``schedule(config)`` the loop nest for one point of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tosac.errors import UnsupportedError
from tosac.ir.graph import Block
from tosac.ir.ops import OpCategory, schema
from tosac.lower import ops as lower
from tosac.lower import int8_layers
from tosac.lower.elementwise import ElementOp, element, uses_channel
from tosac.lower.values import Operands, loaded, stored, tensor_arg
from tosac.passes.fusion import OpGroup
from tosac.schedules import dense, depthwise, generic, sparse, taps, transpose
from tosac.schedules import loopnest as ln
from tosac.schedules.generic import ElementContext, MapCompute, Schedule, TensorArg
from tosac.schedules.microkernels import WeightFormat
from tosac.schedules.space import Config, ConfigSpace
from tosac.targets import Target


@dataclass
class Chain:
    """The element-wise ops applied after a first value, as an epilogue function."""
    block: Block
    ops: list
    first: str                                 # the tensor the first value stands for
    inputs: list[TensorArg] = field(default_factory=list)
    positional: bool = False

    def __post_init__(self) -> None:
        inner = {self.first} | {o for op in self.ops for o in op.outputs}
        out_shape = self.block.type_of(self.output).shape
        for op in self.ops:
            operands = Operands(self.block, op.inputs)
            self.positional |= uses_channel(op, operands)
            for name in op.inputs:
                if name in inner or any(a.name == name for a in self.inputs):
                    continue
                ttype = self.block.type_of(name)
                self.inputs.append(tensor_arg(name, ttype))
                if ttype.size not in (1, int(np.prod(out_shape, dtype=np.int64))):
                    self.positional = True
                elif ttype.shape != out_shape and ttype.size != 1:
                    self.positional = True

    @property
    def output(self) -> str:
        return self.ops[-1].outputs[0] if self.ops else self.first

    def __call__(self, value: ln.Expr, ctx: ElementContext) -> ln.Expr:
        values = {self.first: value}
        for op in self.ops:
            xs = []
            for name in schema(op.name).data_inputs(op.inputs):
                if name in values:
                    xs.append(values[name])
                else:
                    ttype = self.block.type_of(name)
                    xs.append(loaded(ctx.load(tensor_arg(name, ttype)), ttype.dtype))
            channel = ctx.index[-1] if ctx.index else None
            e = ElementOp(op, Operands(self.block, op.inputs), [self.block.type_of(n).dtype for n in op.inputs],
                          self.block.type_of(op.outputs[0]).dtype, channel)
            values[op.outputs[0]] = element(e, xs)
        return stored(values[self.output], self.block.type_of(self.output).dtype)


class KernelBuilder:
    """Builds the kernel of one op group for one target."""

    def __init__(self, block: Block, group: OpGroup, name: str, target: Target):
        self.block, self.group, self.name, self.target = block, group, name, target
        self.output = tensor_arg(group.outputs[0], block.type_of(group.outputs[0]))
        self.constants: dict[str, np.ndarray] = {}
        self.compute: Any = self._compute()
        self.space: ConfigSpace = self._space()

    @property
    def pattern(self) -> str:
        return self.group.pattern

    def _compute(self):
        anchor = self.group.anchor
        category = schema(anchor.name).category
        if category is OpCategory.CONTROL_FLOW:
            raise UnsupportedError(f"{anchor.name} is not a kernel")
        if category is OpCategory.ELEMENTWISE:
            chain = Chain(self.block, self.group.ops, first="")
            return MapCompute(self.name, self.output, chain.inputs, lambda ctx: chain(None, ctx),
                              positional=chain.positional)
        chain = Chain(self.block, self.group.epilogue, anchor.outputs[0])
        lw = lower.OpLowering(self.block, anchor, self.name, self.output, chain, chain.inputs)
        compute = self._lower_anchor(lw)
        self.constants.update(lw.constants)
        if isinstance(compute, MapCompute):
            compute.positional = compute.positional or chain.positional
        return compute

    def _lower_anchor(self, lw: lower.OpLowering):
        name, category = lw.op.name, schema(lw.op.name).category
        if category is OpCategory.DATA_MOVEMENT:
            if name == "TRANSPOSE" and not self.group.epilogue:
                tiled = lower.tiled_transpose(lw)
                if tiled is not None:
                    return tiled
            return lower.lower_data_movement(lw)
        if category is OpCategory.REDUCTION:
            return lower.lower_reduction(lw)
        if name in ("CONV2D", "CONV3D"):
            fast = int8_layers.try_dense_conv(lw) if name == "CONV2D" else None
            return fast if fast is not None else lower.lower_conv(lw)
        if name == "DEPTHWISE_CONV2D":
            fast = int8_layers.try_depthwise(lw)
            return fast if fast is not None else lower.lower_depthwise(lw)
        if name == "TRANSPOSE_CONV2D":
            return lower.lower_transpose_conv(lw)
        if name == "MATMUL":
            fast = int8_layers.try_dense_matmul(lw)
            return fast if fast is not None else lower.lower_matmul(lw)
        if name in ("AVG_POOL2D", "MAX_POOL2D"):
            return lower.lower_pool(lw)
        if name == "SCATTER":
            return lower.lower_scatter(lw)
        raise UnsupportedError(f"{name} has no code generation")

    def _template(self):
        """(space builder, schedule builder) for this kernel's compute: one table, no parallel if-chains."""
        t = self.target
        table = [
            (MapCompute, lambda c: generic.map_space(c, t.vector_bits), generic.map_schedule),
            (generic.ReduceCompute, lambda c: generic.reduce_space(c, t.vector_bits), generic.reduce_schedule),
            (taps.TapCompute, lambda c: taps.tap_space(c, t.vector_bits), taps.tap_schedule),
            (dense.DenseCompute, lambda c: sparse.add_sparse_knobs(dense.dense_space(c, t), c, t),
             lambda c, cfg: (dense.dense_schedule if WeightFormat.of(cfg).dense_layout
                             else sparse.sparse_schedule)(c, cfg, t)),
            (transpose.TransposeCompute, transpose.transpose_space, transpose.transpose_schedule),
            (depthwise.DepthwiseCompute, lambda c: depthwise.depthwise_space(c, t),
             lambda c, cfg: depthwise.depthwise_schedule(c, cfg, t)),
        ]
        for kind, space, schedule in table:
            if isinstance(self.compute, kind):
                return space, schedule
        return (lambda c: ConfigSpace("fixed")), (lambda c, cfg: Schedule(c))

    def _space(self) -> ConfigSpace:
        return self._template()[0](self.compute)

    def schedule(self, config: Config | None = None) -> Schedule:
        return self._template()[1](self.compute, self.space.resolve(config))

    @property
    def mac_count(self) -> int:
        return int(getattr(self.compute, "mac_count", 0))

    def op_count(self, config: Config | None = None) -> int:
        """MACs the kernel performs under ``config``: a sparse schedule counts only nonzero weights."""
        resolved = self.space.resolve(config)
        if WeightFormat.of(resolved) is not WeightFormat.DENSE:
            return int(self.compute.nonzero_mac_count)
        return self.mac_count

"""Int8 dot-product micro-kernels, chosen from the target's features: what every family shares.

Each kind says how activations are encoded in the packed activation buffer,
how many consecutive reduction elements one instruction consumes (``k_group``)
and how to emit one accumulate step on LLVM vectors. All are exact:

- ``vnni`` (AVX-512 VNNI ``vpdpbusd``): u8 x s8, four products summed into
  each int32 lane, wrapping. Activations are stored as ``x + 128`` (an XOR of
  the sign bit); the kernel subtracts ``(128 + input_zp) * column_sum(w)``,
  a compile-time constant, so the result equals the spec's sum of
  ``(x - input_zp) * w`` exactly (the ONNX Runtime trick, kept exact in int32).
- ``sdot`` (AArch64 FEAT_DotProd): s8 x s8 groups of four; activations stored
  as is, the kernel subtracts ``input_zp * column_sum(w)``.
- ``avx2`` (``vpmaddwd``): int16 pairs, ``x - input_zp`` fits int16 and each
  pair sum fits int32, so there is no saturation (``vpmaddubsw`` saturates
  at 16 bits, which is why it is not used).
- ``portable``: ``sext`` and ``mul``/``add`` on int32 vectors; LLVM picks the
  instructions (SSE2, NEON).

The register budget, the LLVM types and the accumulators are declared here
once; the families (``gemm``, ``bsr``, ``gather``) build on them.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

import llvmlite.ir as ir

from tosac.schedules.emit_llvm import Emitter
from tosac.targets import DotProduct, Target

I1, I8, I16, I32, I64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
PTR = ir.PointerType()
VNNI_ACTIVATION_OFFSET = 128      # vpdpbusd multiplies unsigned activations: x + 128 is x with its sign bit flipped

# The emit function of an ``ln.MicroKernel``: (emitter, evaluated operands) -> None.
Emit = Callable[[Emitter, dict[str, Any]], None]


class Kind(enum.Enum):
    """The instruction a micro-kernel is built on. The value is the ``kind`` knob's value in configs and
    tuning logs (tuning_logs/*.jsonl are keyed by it: never change one)."""
    VNNI = "vnni"
    SDOT = "sdot"
    AVX2 = "avx2"
    PORTABLE = "portable"


class WeightFormat(enum.Enum):
    """How an int8 kernel's constant weights are laid out; the value is the ``format`` knob's value in configs
    and tuning logs (never change one). A config without the knob is dense."""
    DENSE = "dense"          # packed weight panels (gemm)
    PANEL = "panel"          # dense panels without their all-zero reduction groups (gemm)
    PACKED = "packed"        # N:M-packed words with shuffled activations (gemm)
    BSR = "bsr"              # block-sparse rows read at run time (bsr)
    UNROLLED = "unrolled"    # block-sparse rows baked into the code (bsr)

    @classmethod
    def of(cls, config: dict) -> "WeightFormat":
        return cls(config.get("format", cls.DENSE.value))

    @property
    def dense_layout(self) -> bool:
        """Scheduled by the dense template (activations in rows) rather than the sparse one (positions in lanes)."""
        return self in (WeightFormat.DENSE, WeightFormat.PANEL, WeightFormat.PACKED)


@dataclass(frozen=True)
class DotKernel:
    """A micro-kernel kind as one target runs it: element types, group and vector width."""
    kind: Kind
    k_group: int           # reduction elements per instruction lane
    act_type: str          # element type of the packed activation buffer
    weight_type: str       # element type of packed weights
    lanes: int             # int32 accumulator lanes per vector
    zp_correction: int     # the kernel subtracts (zp_correction + input_zp) * colsum, or nothing when -1

    @property
    def name(self) -> str:
        """The knob value (also the label of generated calls)."""
        return self.kind.value

    def encode_offset(self) -> int:
        """What is added to ``x`` (and to a pad value ``input_zp``) when packing activations."""
        return VNNI_ACTIVATION_OFFSET if self.kind is Kind.VNNI else 0

    @property
    def act_bytes(self) -> int:
        return int_type(self.act_type).width // 8

    @property
    def weight_bytes(self) -> int:
        return int_type(self.weight_type).width // 8


VNNI = DotKernel(Kind.VNNI, 4, "i8", "i8", 16, VNNI_ACTIVATION_OFFSET)
SDOT = DotKernel(Kind.SDOT, 4, "i8", "i8", 4, 0)
AVX2 = DotKernel(Kind.AVX2, 2, "i16", "i16", 8, -1)


def portable(target: Target) -> DotKernel:
    return DotKernel(Kind.PORTABLE, 1, "i16", "i8", max(4, target.vector_bits // 32), -1)


def kinds_for(target: Target) -> list[DotKernel]:
    """Usable kinds, best first (the tuner may pick any)."""
    best = {DotProduct.VNNI: [VNNI, AVX2], DotProduct.AVX2: [AVX2], DotProduct.SDOT: [SDOT]}.get(target.dot_product, [])
    return [*best, portable(target)]


def kind_for(target: Target, knob: str) -> DotKernel:
    """The kind a config's ``kind`` knob names, as ``target`` runs it."""
    kind = Kind(knob)
    return next(k for k in kinds_for(target) if k.kind is kind)


def register_budget(target: Target) -> int:
    """Vector registers a register block may plan with (AVX-512 has 32, the others 16)."""
    return 32 if target.vector_bits >= 512 else 16


# ----------------------------------------------------------------------------- LLVM types and constants

def int_type(type_: str) -> ir.IntType:
    """``"i8"`` / ``"i16"`` -> the LLVM integer type."""
    return {"i8": I8, "i16": I16}[type_]


def accumulator_type(micro: DotKernel) -> ir.VectorType:
    return ir.VectorType(I32, micro.lanes)


def weight_vector_type(micro: DotKernel) -> ir.VectorType:
    return ir.VectorType(int_type(micro.weight_type), micro.lanes * micro.k_group)


def activation_vector_type(micro: DotKernel) -> ir.VectorType:
    return ir.VectorType(int_type(micro.act_type), micro.lanes * micro.k_group)


def group_scalar_type(micro: DotKernel) -> ir.IntType:
    """One group of ``k_group`` elements as the scalar that is broadcast to every lane: an i32 holding
    4 x i8 or 2 x i16, an i16 for ``portable``."""
    return I16 if micro.kind is Kind.PORTABLE else I32


def c64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def const_vector(values, bits: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(ir.IntType(bits), len(values)), [int(v) for v in values])


def as_int32(value: int) -> int:
    """An unsigned 32-bit pattern as the signed value LLVM constants take."""
    return value - (1 << 32) if value >= 1 << 31 else value


# ----------------------------------------------------------------------------- dot products

def dot(emitter: Emitter, micro: DotKernel, acc: ir.Value, a: ir.Value, w: ir.Value) -> ir.Value:
    """acc + per-lane dot products of ``k_group`` activations ``a`` and weights ``w``, both full vectors
    (``portable``: one i16 activation and one i8/i16 weight per lane)."""
    b = emitter.builder
    i32v = acc.type
    if micro.kind is Kind.PORTABLE:
        return b.add(acc, b.mul(b.sext(a, i32v), b.sext(w, i32v)))
    if micro.kind is Kind.VNNI:
        fn = emitter.intrinsic("llvm.x86.avx512.vpdpbusd.512", i32v, [i32v, a.type, w.type])
        return b.call(fn, [acc, a, w])
    if micro.kind is Kind.SDOT:
        fn = emitter.intrinsic("llvm.aarch64.neon.sdot.v4i32.v16i8", i32v, [i32v, a.type, w.type])
        return b.call(fn, [acc, a, w])
    fn = emitter.intrinsic("llvm.x86.avx2.pmadd.wd", i32v, [a.type, w.type])
    return b.add(acc, b.call(fn, [a, w]))


def _broadcast_group(emitter: Emitter, micro: DotKernel, group: ir.Value, like: ir.Type) -> ir.Value:
    """``group`` (see ``group_scalar_type``) in every lane, as a vector of type ``like``."""
    vector = emitter.splat(group, micro.lanes)
    return vector if micro.kind is Kind.PORTABLE else emitter.builder.bitcast(vector, like)


def dot_activation_group(emitter: Emitter, micro: DotKernel, acc: ir.Value, a: ir.Value, w: ir.Value) -> ir.Value:
    """acc + dot(a, w) with channels in lanes: ``a`` is one activation group broadcast to all lanes, ``w`` a
    vector of packed weights."""
    return dot(emitter, micro, acc, _broadcast_group(emitter, micro, a, w.type), w)


def dot_weight_group(emitter: Emitter, micro: DotKernel, acc: ir.Value, a: ir.Value, w: ir.Value) -> ir.Value:
    """acc + dot(a, w) with positions in lanes: ``a`` is g activations per lane, ``w`` one weight group
    broadcast to every lane."""
    return dot(emitter, micro, acc, a, _broadcast_group(emitter, micro, w, a.type))


Product = Callable[[Emitter, DotKernel, ir.Value, ir.Value, ir.Value], ir.Value]


class Accumulators:
    """``rows x cols`` int32 accumulator vectors in entry-block stack slots (promoted to registers by LLVM)."""

    def __init__(self, em: Emitter, micro: DotKernel, rows: int, cols: int):
        self.em, self.micro = em, micro
        self.type = accumulator_type(micro)
        self.slots = [[em.entry_alloca(self.type) for _ in range(cols)] for _ in range(rows)]

    def zero(self) -> None:
        for row in self.slots:
            for slot in row:
                self.em.builder.store(ir.Constant(self.type, None), slot)

    def load(self, i: int, j: int) -> ir.Value:
        return self.em.builder.load(self.slots[i][j], typ=self.type)

    def add(self, i: int, j: int, a: ir.Value, w: ir.Value, product: Product = dot) -> None:
        """acc[i][j] = product(acc[i][j], a, w): one dot-product step."""
        slot = self.slots[i][j]
        self.em.builder.store(product(self.em, self.micro, self.load(i, j), a, w), slot)

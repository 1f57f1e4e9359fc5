"""Int8 dot-product micro-kernels, chosen from the target's features.

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
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from tosac.targets import DotProduct, Target


@dataclass(frozen=True)
class MicroKernelKind:
    name: str
    k_group: int           # reduction elements per instruction lane
    act_type: str          # element type of the packed activation buffer
    weight_type: str       # element type of packed weights
    lanes: int             # int32 accumulator lanes per vector
    zp_correction: int     # the kernel subtracts (zp_correction + input_zp) * colsum, or nothing when -1

    def encode_offset(self) -> int:
        """What is added to ``x`` (and to a pad value ``input_zp``) when packing activations."""
        return 128 if self.name == "vnni" else 0


VNNI = MicroKernelKind("vnni", 4, "i8", "i8", 16, 128)
SDOT = MicroKernelKind("sdot", 4, "i8", "i8", 4, 0)
AVX2 = MicroKernelKind("avx2", 2, "i16", "i16", 8, -1)


def portable(target: Target) -> MicroKernelKind:
    return MicroKernelKind("portable", 1, "i16", "i8", max(4, target.vector_bits // 32), -1)


def kinds_for(target: Target) -> list[MicroKernelKind]:
    """Usable kinds, best first (the tuner may pick any)."""
    best = {DotProduct.VNNI: [VNNI, AVX2], DotProduct.AVX2: [AVX2], DotProduct.SDOT: [SDOT]}.get(target.dot_product, [])
    return [*best, portable(target)]


def accumulate(emitter, kind: MicroKernelKind, acc: ir.Value, a: ir.Value, w: ir.Value) -> ir.Value:
    """acc + dot(a, w): ``a`` is one activation group (i32 for 4 x i8 or 2 x i16, i16 for portable)
    broadcast to all lanes, ``w`` a vector of packed weights."""
    group = emitter.splat(a, kind.lanes)
    return dot(emitter, kind, acc, group if kind.name == "portable" else emitter.builder.bitcast(group, w.type), w)


def dot(emitter, kind: MicroKernelKind, acc: ir.Value, a: ir.Value, w: ir.Value) -> ir.Value:
    """acc + per-lane dot products of ``k_group`` activations ``a`` and weights ``w``, both full vectors
    (``portable``: one i16 activation and one i8/i16 weight per lane)."""
    b = emitter.builder
    i32v = acc.type
    if kind.name == "portable":
        return b.add(acc, b.mul(b.sext(a, i32v), b.sext(w, i32v)))
    if kind.name == "vnni":
        fn = emitter.intrinsic("llvm.x86.avx512.vpdpbusd.512", i32v, [i32v, a.type, w.type])
        return b.call(fn, [acc, a, w])
    if kind.name == "sdot":
        fn = emitter.intrinsic("llvm.aarch64.neon.sdot.v4i32.v16i8", i32v, [i32v, a.type, w.type])
        return b.call(fn, [acc, a, w])
    fn = emitter.intrinsic("llvm.x86.avx2.pmadd.wd", i32v, [a.type, w.type])
    return b.add(acc, b.call(fn, [a, w]))


def weight_vector_type(kind: MicroKernelKind) -> ir.VectorType:
    bits = 8 if kind.weight_type == "i8" else 16
    return ir.VectorType(ir.IntType(bits), kind.lanes * kind.k_group)


def activation_group_type(kind: MicroKernelKind) -> ir.Type:
    return ir.IntType(16) if kind.name == "portable" else ir.IntType(32)

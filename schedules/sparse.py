"""The sparse int8 templates for pruned constant weights of CONV2D (1x1 and kxk) and MATMUL.

A kernel whose weights have all-zero reduction groups (``g`` consecutive input
channels of one tap, ``g`` = what the micro-kernel consumes per step), or few
nonzeros per window of input channels, gets a ``format`` knob next to the
dense template's knobs:

- ``panel``: the dense template itself (schedules/dense.py) with each weight
  panel's all-zero groups left out of its unrolled code — no transposition,
  pays for blocks wide along the output channels;
- ``packed``: the dense template with each vector's nonzero weights in a window
  of ``window`` input channels packed into words and the activations
  gathered by a constant shuffle (schedules/dense.py) — pays for N:M and
  scattered nonzeros where no whole group is empty;
- ``bsr`` / ``unrolled`` (this module's schedule): vector lanes run over output
  *positions* and weights are broadcast, as in XNNPACK's sparse inference. A
  prologue packs the activations into ``act[k_group][position][g]`` (whole
  pixel rows transposed in registers, or a masked gather per word for narrow
  pixels; zero-point padding either way), so the inner step is one
  dot-product instruction of the dense micro-kernel kinds (``vnni``, ``sdot``,
  ``avx2``, ``portable``) on a contiguous activation vector and a splat of
  ``g`` weights. Weights are BSR with a block of ``block_n`` output channels x
  ``block_k`` groups (a knob; a stored block may hold zeros). ``bsr`` reads
  row pointers, column indices and values from memory; ``unrolled`` is
  weight-specialised code, indices and weights baked into the instruction
  stream, zero groups inside a block skipped too (offered while the code
  stays small).

The accumulators of an ``m_vectors x lanes`` position tile are transposed in
registers into an L1 tile ``[positions][N]``; the fused epilogue (bias,
zero-point correction, RESCALE, CLAMP, residual ADD) is the dense template's,
so a sparse kernel gives the dense kernel's bits on the same pruned weights.
Input channels must be a multiple of 4 (whole 32-bit words are packed).

This module is the format and knob policy and the schedule; the code of the
``bsr`` / ``unrolled`` kernels and of the prologue is ``microkernels.bsr`` and
``microkernels.gather``.
"""
from __future__ import annotations

import numpy as np

from tosac.errors import CodegenError
from tosac.schedules import loopnest as ln
from tosac.schedules.dense import DenseCompute, column_correction, tile_epilogue
from tosac.schedules.generic import Schedule
from tosac.schedules.microkernels.base import WeightFormat, kind_for, kinds_for, register_budget
from tosac.schedules.microkernels.bsr import (BlockSparse, BsrBuffers, BsrGeometry, bsr_kernel, group_matrix, to_bsr,
                                              unrolled_kernel, value_type)
from tosac.schedules.microkernels.gather import WORD_CHANNELS, GatherGeometry, gather_kernel
from tosac.schedules.microkernels.gemm import packed_word_ratio
from tosac.schedules.space import Config, ConfigSpace
from tosac.targets import Target

UNROLLED_LIMIT = 6000            # nonzero groups x row vectors beyond which unrolled code is not offered
PACKED_WINDOWS = (4, 8, 16)            # input channels an N:M-packed shuffle picks from
TILE_BYTES = 128 << 10           # the [positions][N] int32 tile lives on the stack


def group_density(weights: np.ndarray, g: int = 4) -> float:
    """Fraction of (output channel, reduction group) pairs with a nonzero weight: the work the template keeps."""
    kh, kw, ic, n = weights.shape
    if ic % g:
        return 1.0
    return float(group_matrix(weights, g).any(axis=2).mean())


def sparsity_features(c: DenseCompute, bsr: BlockSparse) -> dict[str, float]:
    """What the cost model learns sparse speed from (density, block, nonzeros per row, index bytes)."""
    per_row = np.diff(bsr.row_ptr).astype(np.float64) * bsr.bk
    k_groups = c.weights.size // c.n // bsr.values.shape[-1]
    block_slots = per_row.size * -(-k_groups // bsr.bk)
    return {"density": float(np.count_nonzero(c.weights)) / c.weights.size,
            "block_density": bsr.blocks / max(block_slots, 1),
            "block_n": bsr.bn, "block_k": bsr.bk, "nnz_row_mean": float(per_row.mean()),
            "nnz_row_var": float(per_row.var()), "log_index_bytes": float(np.log2(bsr.index_bytes()))}


def sparse_supported(c: DenseCompute) -> bool:
    """The template works when whole input-channel words can be gathered with 32-bit offsets."""
    return c.weights.shape[2] % WORD_CHANNELS == 0 and c.input.size < 1 << 31


def max_m_vectors(c: DenseCompute, lanes: int) -> int:
    return max(1, TILE_BYTES // (4 * lanes * c.n))


def add_sparse_knobs(space: ConfigSpace, c: DenseCompute, target: Target) -> ConfigSpace:
    """The dense space plus the sparse variants the weights can use, with the target's best micro-kernel:

    - ``panel``, ``bsr``, ``unrolled`` when at least a tenth of its reduction groups are all zero;
    - ``packed`` when packing each vector's nonzeros into words saves at least a quarter of the dot products
      in some window (so 2:4 and 1:4 pay where a step takes 4 channels and no group is empty).

    The default stays dense: only a measurement may switch."""
    best = kinds_for(target)[0]
    nonzero = group_matrix(c.weights, best.k_group).any(axis=2) if sparse_supported(c) else None
    skips_groups = nonzero is not None and nonzero.mean() < 0.9
    kh, kw, ic, n = c.weights.shape
    dense_words = kh * kw * -(-ic // best.k_group) * -(-n // best.lanes)
    ratios = {w: packed_word_ratio(c.weights, best, w) for w in PACKED_WINDOWS}
    windows = [w for w, ratio in ratios.items() if ratio <= 0.75 and ratio * dense_words <= 2 * UNROLLED_LIMIT]
    formats = [WeightFormat.DENSE]
    if skips_groups:
        nonzero_groups = int(nonzero.sum())
        formats += [f for f, small in ((WeightFormat.PANEL, nonzero_groups <= 16 * UNROLLED_LIMIT),
                                       (WeightFormat.BSR, True),
                                       (WeightFormat.UNROLLED, nonzero_groups * 2 <= UNROLLED_LIMIT)) if small]
    if windows:
        formats.append(WeightFormat.PACKED)
    if len(formats) == 1:
        return space
    space.add("format", [f.value for f in formats], WeightFormat.DENSE.value,
              "dense panels; panels skipping their all-zero reduction groups; positions-in-lanes BSR / "
              "weight-specialised unrolled code; or N:M-packed words with shuffled activations")
    if skips_groups:
        space.add("block_n", (1, 2, 4, 8, 16), 4, "BSR block: output channels")
        space.add("block_k", (1, 2, 4), 1, "BSR block: reduction groups")
        mv = max_m_vectors(c, best.lanes)
        space.add("m_vectors", [v for v in (1, 2, 3, 4) if v <= mv], 1, "position vectors per tile")
        # Measured good points (benchmarks/sparse.py): 8-channel blocks, one position vector per tile.
        space.seeds += [dict(space.default, format=f.value, block_n=8) for f in formats[1:]
                        if f is not WeightFormat.PACKED]
    if windows:
        space.add("window", windows, windows[-1], "N:M-packed: input channels one shuffle picks from")
        space.seeds += [dict(space.default, format=WeightFormat.PACKED.value, window=w) for w in windows]
    return space


def sparse_schedule(c: DenseCompute, config: Config, target: Target) -> Schedule:
    micro = kind_for(target, config["kind"])
    if not sparse_supported(c):
        raise CodegenError(f"{c.name}: the sparse template needs input channels divisible by 4 "
                           f"(got {c.weights.shape[2]}) and an input under 2 GiB")
    fmt = WeightFormat.of(config)
    bn, bk = int(config["block_n"]), int(config["block_k"])
    mv = max(1, min(int(config["m_vectors"]), (register_budget(target) - 2) // bn - 1 or 1,
                    max_m_vectors(c, micro.lanes)))
    threads = int(config["threads"])
    lanes, g = micro.lanes, micro.k_group
    mt_rows = mv * lanes
    m_tiles = -(-c.m // mt_rows)
    mp = m_tiles * mt_rows
    kh, kw, ic, n = c.weights.shape
    k_groups = kh * kw * ic // g
    bsr = to_bsr(c.weights, micro, bn, bk)
    act = ln.Param(f"{c.name}.actT", micro.act_type, k_groups * mp * g)
    buffers = BsrBuffers(act.name, *(f"{c.name}.{part}" for part in ("rows", "cols", "vals")))
    corr = f"{c.name}.corr"
    constants = {buffers.rows: bsr.row_ptr, buffers.cols: bsr.col,
                 buffers.vals: np.ascontiguousarray(bsr.values.reshape(-1)), corr: column_correction(c, micro)}
    window = GatherGeometry(c.input.name, c.input.shape, c.input_zp, (kh, kw), c.out_hw, c.stride, c.dilation, c.pad,
                            c.m, mp)
    prologue = ln.Kernel(f"{c.name}_gather", (c.input.param(), act),
                         (ln.MicroKernel("gather", gather_kernel(micro, window, act.name), {}),))
    geo = BsrGeometry(mv, mp, n, k_groups)
    emit = (bsr_kernel if fmt is WeightFormat.BSR else unrolled_kernel)(micro, bsr, geo, buffers)
    mt = ln.Var("mt")
    features = {"mr": mt_rows, "nr": n, "k": k_groups * g, "lanes": lanes, **sparsity_features(c, bsr)}
    call = ln.MicroKernel(f"sparse_{fmt.value}_{micro.name}", emit, {"m0": mt * mt_rows}, features)
    epilogue = tile_epilogue(c, corr, mt * mt_rows, mt_rows, n, None, n, lanes)
    outer = ln.LoopKind.PARALLEL if threads > 1 else ln.LoopKind.SERIAL
    body = (ln.For("mt", m_tiles, (call, epilogue), outer),)
    params = ln.unique_params([c.input.param(), act,
                               *[ln.Param(name, t, constants[name].size)
                                 for name, t in ((buffers.rows, "i32"), (buffers.cols, "i32"),
                                                 (buffers.vals, value_type(micro)), (corr, "i32"))],
                               *[a.param() for a in c.epilogue_inputs], c.output.param()])
    kernel = ln.Kernel(c.name, params, body, {"tile": ("i32", mt_rows * n)})
    return Schedule(kernel, threads, prologue, [act], constants)

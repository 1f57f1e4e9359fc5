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
- ``bsr`` / ``unrolled`` (this module): vector lanes run over output
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
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from tosac.errors import CodegenError
from tosac.schedules import loopnest as ln
from tosac.schedules import microkernels as mk
from tosac.schedules.dense import DenseCompute, _unravel, column_correction, packed_word_ratio
from tosac.schedules.generic import Schedule, _unique
from tosac.schedules.space import Config, ConfigSpace
from tosac.targets import Target

I1, I8, I16, I32, I64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
PTR = ir.PointerType()
FORMATS = ("dense", "panel", "bsr", "unrolled", "packed")
DENSE_LAYOUT_FORMATS = ("dense", "panel", "packed")      # scheduled by the dense template (schedules/dense.py)
UNROLLED_LIMIT = 6000            # nonzero groups x row vectors beyond which unrolled code is not offered
PACKED_WINDOWS = (4, 8, 16)            # input channels an N:M-packed shuffle picks from
TILE_BYTES = 128 << 10           # the [positions][N] int32 tile lives on the stack


@dataclass(frozen=True)
class BlockSparse:
    """BSR weights: block ``b`` covers output channels ``row*bn ...`` and reduction groups ``col[b]*bk ...``."""
    row_ptr: np.ndarray          # int32 [N/bn + 1]
    col: np.ndarray              # int32 [blocks]
    values: np.ndarray           # [blocks, bn, bk, g] in the micro-kernel's weight element type
    bn: int
    bk: int

    @property
    def blocks(self) -> int:
        return int(self.col.size)

    def index_bytes(self) -> int:
        return 4 * (self.row_ptr.size + self.col.size)


def group_matrix(weights: np.ndarray, g: int) -> np.ndarray:
    """[KH, KW, IC, N] -> [N, K/g, g]: output channel, reduction group, element (IC % g == 0)."""
    kh, kw, ic, n = weights.shape
    return np.ascontiguousarray(weights.reshape(kh * kw * ic // g, g, n).transpose(2, 0, 1))


def to_bsr(weights: np.ndarray, kind: mk.MicroKernelKind, bn: int, bk: int) -> BlockSparse:
    groups = group_matrix(weights, kind.k_group)
    n, kg, g = groups.shape
    nb, kb = -(-n // bn), -(-kg // bk)
    padded = np.zeros((nb * bn, kb * bk, g), dtype=np.int64)
    padded[:n, :kg] = groups
    blocks = padded.reshape(nb, bn, kb, bk, g).transpose(0, 2, 1, 3, 4)      # [nb, kb, bn, bk, g]
    nonzero = blocks.reshape(nb, kb, -1).any(axis=2)
    rows, cols = np.nonzero(nonzero)
    row_ptr = np.zeros(nb + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=nb), out=row_ptr[1:])
    etype = np.int16 if _vals_type(kind) == "i16" else np.int8
    return BlockSparse(row_ptr, cols.astype(np.int32), blocks[rows, cols].astype(etype), bn, bk)


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
    return c.weights.shape[2] % 4 == 0 and c.input.size < 1 << 31


def max_m_vectors(c: DenseCompute, lanes: int) -> int:
    return max(1, TILE_BYTES // (4 * lanes * c.n))


def add_sparse_knobs(space: ConfigSpace, c: DenseCompute, target: Target) -> ConfigSpace:
    """The dense space plus the sparse variants the weights can use, with the target's best micro-kernel:

    - ``panel``, ``bsr``, ``unrolled`` when at least a tenth of its reduction groups are all zero;
    - ``packed`` when packing each vector's nonzeros into words saves at least a quarter of the dot products
      in some window (so 2:4 and 1:4 pay where a step takes 4 channels and no group is empty).

    The default stays dense: only a measurement may switch."""
    kind = mk.kinds_for(target)[0]
    nonzero = group_matrix(c.weights, kind.k_group).any(axis=2) if sparse_supported(c) else None
    skips_groups = nonzero is not None and nonzero.mean() < 0.9
    kh, kw, ic, n = c.weights.shape
    dense_words = kh * kw * -(-ic // kind.k_group) * -(-n // kind.lanes)
    ratios = {w: packed_word_ratio(c.weights, kind, w) for w in PACKED_WINDOWS}
    windows = [w for w, ratio in ratios.items() if ratio <= 0.75 and ratio * dense_words <= 2 * UNROLLED_LIMIT]
    formats = ["dense"]
    if skips_groups:
        nonzero_groups = int(nonzero.sum())
        formats += [f for f, small in (("panel", nonzero_groups <= 16 * UNROLLED_LIMIT), ("bsr", True),
                                       ("unrolled", nonzero_groups * 2 <= UNROLLED_LIMIT)) if small]
    if windows:
        formats.append("packed")
    if len(formats) == 1:
        return space
    space.add("format", formats, "dense", "dense panels; panels skipping their all-zero reduction groups; "
                                          "positions-in-lanes BSR / weight-specialised unrolled code; "
                                          "or N:M-packed words with shuffled activations")
    if skips_groups:
        space.add("block_n", (1, 2, 4, 8, 16), 4, "BSR block: output channels")
        space.add("block_k", (1, 2, 4), 1, "BSR block: reduction groups")
        mv = max_m_vectors(c, kind.lanes)
        space.add("m_vectors", [v for v in (1, 2, 3, 4) if v <= mv], 1, "position vectors per tile")
        # Measured good points (benchmarks/sparse.py): 8-channel blocks, one position vector per tile.
        space.seeds += [dict(space.default, format=fmt, block_n=8) for fmt in formats[1:] if fmt != "packed"]
    if windows:
        space.add("window", windows, windows[-1], "N:M-packed: input channels one shuffle picks from")
        space.seeds += [dict(space.default, format="packed", window=w) for w in windows]
    return space


def sparse_schedule(c: DenseCompute, config: Config, target: Target) -> Schedule:
    kind = next(k for k in mk.kinds_for(target) if k.name == config["kind"])
    if not sparse_supported(c):
        raise CodegenError(f"{c.name}: the sparse template needs input channels divisible by 4 "
                           f"(got {c.weights.shape[2]}) and an input under 2 GiB")
    fmt = str(config["format"])
    regs = 32 if target.vector_bits >= 512 else 16
    bn, bk = int(config["block_n"]), int(config["block_k"])
    mv = max(1, min(int(config["m_vectors"]), (regs - 2) // bn - 1 or 1, max_m_vectors(c, kind.lanes)))
    threads = int(config["threads"])
    lanes, g = kind.lanes, kind.k_group
    mt_rows = mv * lanes
    m_tiles = -(-c.m // mt_rows)
    mp = m_tiles * mt_rows
    kh, kw, ic, n = c.weights.shape
    k_groups = kh * kw * ic // g
    bsr = to_bsr(c.weights, kind, bn, bk)
    act_type = "i16" if kind.act_type == "i16" else "i8"
    act = ln.Param(f"{c.name}.actT", act_type, k_groups * mp * g)
    names = {part: f"{c.name}.{part}" for part in ("rows", "cols", "vals", "corr")}
    constants = {names["rows"]: bsr.row_ptr, names["cols"]: bsr.col,
                 names["vals"]: np.ascontiguousarray(bsr.values.reshape(-1)),
                 names["corr"]: column_correction(c, kind)}
    prologue = ln.Kernel(f"{c.name}_gather", (c.input.param(), act),
                         (ln.MicroKernel("gather", _gather_emit(c, kind, act.name, mp), {}),))
    emit = (_bsr_emit if fmt == "bsr" else _unrolled_emit)(kind, bsr, act.name, names, mp, mv, n, k_groups)
    mt = ln.Var("mt")
    features = {"mr": mt_rows, "nr": n, "k": k_groups * g, "lanes": lanes, **sparsity_features(c, bsr)}
    call = ln.MicroKernel(f"sparse_{fmt}_{kind.name}", emit, {"m0": mt * mt_rows}, features)
    r, ch = ln.Var("r"), ln.Var("ch")
    row = mt * mt_rows + r
    acc = ln.binary("add", ln.Load("tile", r * n + ch, "i32"), ln.Load(names["corr"], ch, "i32"))
    store = ln.Store(c.output.name, row * n + ch, c.finalize(acc, _unravel(row, c.output.shape[:-1]), ch))
    epilogue = ln.For("r", mt_rows, (ln.If(ln.binary("slt", row, ln.Const(c.m)),
                                           (ln.For("ch", n, (store,), ln.LoopKind.VECTORIZE,
                                                   min(lanes, 16) if n >= 4 else 1),)),))
    outer = ln.LoopKind.PARALLEL if threads > 1 else ln.LoopKind.SERIAL
    body = (ln.For("mt", m_tiles, (call, epilogue), outer),)
    params = _unique([c.input.param(), act,
                      *[ln.Param(names[p], t, constants[names[p]].size)
                        for p, t in (("rows", "i32"), ("cols", "i32"), ("vals", _vals_type(kind)), ("corr", "i32"))],
                      *[a.param() for a in c.epilogue_inputs], c.output.param()])
    kernel = ln.Kernel(c.name, params, body, {"tile": ("i32", mt_rows * n)})
    return Schedule(kernel, threads, prologue, [act], constants)


def _vals_type(kind: mk.MicroKernelKind) -> str:
    return "i16" if kind.weight_type == "i16" or kind.name == "portable" else "i8"


def _const_vector(values, bits: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(ir.IntType(bits), len(values)), [int(v) for v in values])


def _gather_emit(c: DenseCompute, kind: mk.MicroKernelKind, act: str, mp: int):
    """act[kg][m][g] = encode(x at position m, tap, channels of group kg), zero point where padded.

    When a pixel has a multiple of ``lanes`` words, each position's row is loaded as whole vectors and
    transposed in registers (hardware gathers are slow on many cores, e.g. under the GDS microcode
    mitigation); otherwise one masked gather per word and ``lanes`` positions.
    """
    lanes, g = kind.lanes, kind.k_group
    batch, ih, iw, ic = c.input.shape
    kh, kw, _, _ = c.weights.shape
    oh, ow = c.out_hw
    sy, sx = c.stride
    dy, dx = c.dilation
    top, _, left, _ = c.pad
    words = ic // 4
    zp_byte = c.input_zp & 0xFF
    zp_word = zp_byte * 0x01010101
    zp_word = zp_word - (1 << 32) if zp_word >= 1 << 31 else zp_word

    def emit(em, operands) -> None:
        b = em.builder
        i32v = ir.VectorType(I32, lanes)
        vec = lambda value: ir.Constant(i32v, [value] * lanes)  # noqa: E731
        src, _ = em.buffers[c.input.name]
        dst, _ = em.buffers[act]
        dst_bytes = b.bitcast(dst, PTR)
        src_int = em.splat(b.ptrtoint(src, I64), lanes)
        gather = em.intrinsic(f"llvm.masked.gather.v{lanes}i32.v{lanes}p0", i32v,
                              [ir.VectorType(PTR, lanes), I32, ir.VectorType(I1, lanes), i32v])
        elem = 2 if kind.act_type == "i16" else 1

        def tile_body(m0):
            # Position arithmetic in i32 lanes (vectorised division by constants; 32-bit gather offsets).
            m = b.add(em.splat(b.trunc(m0, I32), lanes), _const_vector(range(lanes), 32))
            valid_m = b.icmp_signed("<", m, vec(c.m))
            img, rem = b.udiv(m, vec(oh * ow)), b.urem(m, vec(oh * ow))
            oy, ox = b.udiv(rem, vec(ow)), b.urem(rem, vec(ow))
            for ty in range(kh):
                for tx in range(kw):
                    iy = b.add(b.mul(oy, vec(sy)), vec(ty * dy - top))
                    ix = b.add(b.mul(ox, vec(sx)), vec(tx * dx - left))
                    inside = valid_m
                    for v, limit, padded in ((iy, ih, top or c.pad[1]), (ix, iw, left or c.pad[3])):
                        if padded:                         # without padding on this axis: always inside
                            inside = b.and_(inside, b.icmp_unsigned("<", v, vec(limit)))   # also v >= 0
                    pixel = b.add(b.mul(b.add(b.mul(img, vec(ih)), iy), vec(iw)), ix)
                    base = b.mul(b.select(inside, pixel, vec(0)), vec(ic))
                    tap = ty * kw + tx

                    def word_body(wi):
                        offset = b.add(base, em.splat(b.trunc(b.mul(wi, ir.Constant(I64, 4)), I32), lanes))
                        addr = b.add(src_int, b.sext(offset, ir.VectorType(I64, lanes)))
                        ptrs = b.inttoptr(addr, ir.VectorType(PTR, lanes))
                        word = b.call(gather, [ptrs, ir.Constant(I32, 1), inside, vec(zp_word)])
                        store_groups(word, b.add(ir.Constant(I64, tap * words), wi), m0)
                    em._loop("wi", ir.Constant(I64, 0), ir.Constant(I64, words), 1, word_body)

        def transposed_tile_body(m0):
            # Whole rows of `lanes` words per position, transposed in registers: no hardware gather.
            c64 = lambda v: ir.Constant(I64, v)  # noqa: E731
            zero_row = vec(zp_word)
            src_bytes = b.bitcast(src, PTR)
            positions = []
            for lane in range(lanes):
                m = b.add(m0, c64(lane))
                m = b.select(b.icmp_signed("<", m, c64(c.m)), m, c64(c.m - 1))      # rows past M: discarded
                img, rem = b.udiv(m, c64(oh * ow)), b.urem(m, c64(oh * ow))
                positions.append((img, b.udiv(rem, c64(ow)), b.urem(rem, c64(ow))))
            for ty in range(kh):
                for tx in range(kw):
                    rows = []
                    for img, oy, ox in positions:
                        iy = b.add(b.mul(oy, c64(sy)), c64(ty * dy - top))
                        ix = b.add(b.mul(ox, c64(sx)), c64(tx * dx - left))
                        inside = ir.Constant(I1, 1)
                        for v, limit in ((iy, ih), (ix, iw)):
                            inside = b.and_(inside, b.icmp_unsigned("<", v, c64(limit)))   # also v >= 0
                        pixel = b.add(b.mul(b.add(b.mul(img, c64(ih)), iy), c64(iw)), ix)
                        rows.append((b.select(inside, pixel, c64(0)), inside))
                    tap = ty * kw + tx

                    def chunk_body(wc):
                        loaded = []
                        for pixel, inside in rows:
                            offset = b.add(b.mul(pixel, c64(ic)), b.mul(wc, c64(4 * lanes)))
                            ptr = b.bitcast(b.gep(src_bytes, [offset], source_etype=I8), i32v.as_pointer())
                            loaded.append(b.select(inside, b.load(ptr, typ=i32v, align=1), zero_row))
                        for word, labels in _transpose(b, loaded):
                            w = labels[0][0]
                            index = b.add(c64(tap * words), b.add(b.mul(wc, c64(lanes)), c64(w)))
                            store_groups(word, index, m0)
                    em._loop("wc", c64(0), c64(words // lanes), 1, chunk_body)

        def store_groups(word, word_index, m0):
            group0 = b.mul(word_index, ir.Constant(I64, 4 // g))
            for s, encoded in enumerate(_encode(b, kind, word, lanes, c.input_zp)):
                group = b.add(group0, ir.Constant(I64, s))
                offset = b.mul(b.add(b.mul(group, ir.Constant(I64, mp)), m0), ir.Constant(I64, g * elem))
                p = b.gep(dst_bytes, [offset], source_etype=I8)
                b.store(encoded, b.bitcast(p, encoded.type.as_pointer()), align=1)

        body = transposed_tile_body if words % lanes == 0 else tile_body
        em._loop("m0", ir.Constant(I64, 0), ir.Constant(I64, mp), lanes, body)

    return emit


def _encode(b: ir.IRBuilder, kind: mk.MicroKernelKind, word: ir.Value, lanes: int, zp: int) -> list[ir.Value]:
    """One gathered word (4 channels) per lane -> the 4/g group vectors the micro-kernel reads."""
    if kind.act_type == "i8":
        return [b.xor(word, ir.Constant(word.type, [-0x7F7F7F80] * lanes)) if kind.encode_offset() else word]
    g = kind.k_group
    bytes_ = b.bitcast(word, ir.VectorType(I8, 4 * lanes))
    out = []
    for s in range(4 // g):
        picked = b.shuffle_vector(bytes_, ir.Constant(bytes_.type, ir.Undefined),
                                  _const_vector([lane * 4 + s * g + j for lane in range(lanes) for j in range(g)], 32))
        wide = b.sext(picked, ir.VectorType(I16, lanes * g))
        out.append(b.sub(wide, ir.Constant(wide.type, [zp] * (lanes * g))))
    return out


class _Accumulators:
    """``bn x mv`` int32 vectors in stack slots (promoted to registers by LLVM)."""

    def __init__(self, em, kind: mk.MicroKernelKind, bn: int, mv: int):
        self.em, self.kind = em, kind
        self.ty = ir.VectorType(I32, kind.lanes)
        self.slots = [[em.entry_alloca(self.ty) for _ in range(mv)] for _ in range(bn)]

    def zero(self) -> None:
        for row in self.slots:
            for slot in row:
                self.em.builder.store(ir.Constant(self.ty, None), slot)

    def step(self, i: int, r: int, act: ir.Value, weights: ir.Value) -> None:
        b = self.em.builder
        slot = self.slots[i][r]
        b.store(_accumulate(self.em, self.kind, b.load(slot, typ=self.ty), act, weights), slot)

    def scatter(self, tile: ir.Value, n: int, channel0: ir.Value, mv: int, count: int) -> None:
        """tile[(r*lanes + lane) * n + channel0 + i] = acc[i][r] for the block's ``count`` channels.

        A power-of-two ``count`` is transposed in registers (one short vector store per position); other
        counts use a masked scatter per channel.
        """
        b, lanes = self.em.builder, self.kind.lanes
        if count > 1 and count & (count - 1) == 0:
            group = min(count, lanes)
            tile_bytes = b.bitcast(tile, PTR)
            for r in range(mv):
                for c0 in range(0, count, group):
                    vectors = [b.load(self.slots[c0 + i][r], typ=self.ty) for i in range(group)]
                    for values, labels in _transpose(b, vectors):
                        position, channel = labels[0]
                        index = b.add(ir.Constant(I64, (r * lanes + position) * n + c0 + channel), channel0)
                        p = b.gep(tile_bytes, [b.mul(index, ir.Constant(I64, 4))], source_etype=I8)
                        b.store(values, b.bitcast(p, values.type.as_pointer()), align=4)
            return
        scatter = self.em.intrinsic(f"llvm.masked.scatter.v{lanes}i32.v{lanes}p0", ir.VoidType(),
                                    [self.ty, ir.VectorType(PTR, lanes), I32, ir.VectorType(I1, lanes)])
        base = self.em.splat(b.ptrtoint(tile, I64), lanes)
        ones = ir.Constant(ir.VectorType(I1, lanes), [1] * lanes)
        for i in range(count):
            column = b.mul(b.add(channel0, ir.Constant(I64, i)), ir.Constant(I64, 4))
            for r in range(mv):
                offsets = _const_vector([(r * lanes + lane) * n * 4 for lane in range(lanes)], 64)
                addr = b.add(b.add(base, offsets), self.em.splat(column, lanes))
                b.call(scatter, [b.load(self.slots[i][r], typ=self.ty), b.inttoptr(addr, ir.VectorType(PTR, lanes)),
                                 ir.Constant(I32, 4), ones])


def _transpose(b: ir.IRBuilder, rows: list[ir.Value]) -> list[tuple[ir.Value, list[tuple[int, int]]]]:
    """``C`` vectors (channels) of ``L`` lanes (positions), C a power of two <= L -> ``L`` vectors of C channels.

    A butterfly of two-input shuffles (log2 C stages, each interleaving chunks of 1, 2, 4... elements of
    the low or high halves), fed in bit-reversed channel order so every aligned chunk of C elements ends
    up as channels 0..C-1 of one position. Returns (vector, [(position, channel)...]) per position.
    """
    count, lanes = len(rows), rows[0].type.count
    bits = count.bit_length() - 1
    order = [int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(count)]
    vectors = [(rows[c], [(p, c) for p in range(lanes)]) for c in order]
    chunk = 1
    while chunk < count:
        staged = []
        for j in range(count // 2):
            (a, la), (bv, lb) = vectors[j], vectors[j + count // 2]
            for half in (0, 1):
                picks: list[int] = []
                for k in range(half * lanes // 2, (half + 1) * lanes // 2, chunk):
                    picks += list(range(k, k + chunk)) + list(range(lanes + k, lanes + k + chunk))
                labels = [(la + lb)[i] for i in picks]
                staged.append((b.shuffle_vector(a, bv, _const_vector(picks, 32)), labels))
        vectors = staged
        chunk *= 2
    out = []
    for vector, labels in vectors:
        for k in range(0, lanes, count):
            part = labels[k:k + count]
            assert [c for _, c in part] == list(range(count)) and len({p for p, _ in part}) == 1
            piece = vector if count == lanes else b.shuffle_vector(
                vector, ir.Constant(vector.type, ir.Undefined), _const_vector(range(k, k + count), 32))
            out.append((piece, part))
    return out


def _accumulate(em, kind: mk.MicroKernelKind, acc: ir.Value, act: ir.Value, weights: ir.Value) -> ir.Value:
    """acc + dot(act, weights) with positions in lanes: ``act`` is g activations per lane, ``weights`` one group
    (an i32 of g packed weights, or an i16 for ``portable``) for every lane."""
    wvec = em.splat(weights, kind.lanes)
    return mk.dot(em, kind, acc, act, wvec if kind.name == "portable" else em.builder.bitcast(wvec, act.type))


def _act_vector_type(kind: mk.MicroKernelKind) -> ir.VectorType:
    if kind.act_type == "i8":
        return ir.VectorType(I8, kind.lanes * kind.k_group)
    return ir.VectorType(I16, kind.lanes * kind.k_group)


def _load_activations(em, kind, act: str, group: ir.Value, m0: ir.Value, mp: int, mv: int) -> list[ir.Value]:
    b = em.builder
    base, _ = em.buffers[act]
    vty = _act_vector_type(kind)
    elem = 2 if kind.act_type == "i16" else 1
    out = []
    for r in range(mv):
        index = b.add(b.mul(group, ir.Constant(I64, mp)), b.add(m0, ir.Constant(I64, r * kind.lanes)))
        p = b.gep(b.bitcast(base, PTR), [b.mul(index, ir.Constant(I64, kind.k_group * elem))], source_etype=I8)
        out.append(b.load(b.bitcast(p, vty.as_pointer()), typ=vty, align=1))
    return out


def _weight_scalar_type(kind: mk.MicroKernelKind) -> ir.IntType:
    return I16 if kind.name == "portable" else I32


def _bsr_emit(kind, bsr: BlockSparse, act: str, names: dict, mp: int, mv: int, n: int, k_groups: int):
    bn, bk, g = bsr.bn, bsr.bk, kind.k_group
    row_blocks = bsr.row_ptr.size - 1
    wty = _weight_scalar_type(kind)
    w_bytes = 1 if _vals_type(kind) == "i8" else 2

    def emit(em, operands) -> None:
        b = em.builder
        m0 = operands["m0"]
        rows, _ = em.buffers[names["rows"]]
        cols, _ = em.buffers[names["cols"]]
        vals, _ = em.buffers[names["vals"]]
        tile, _ = em.buffers["tile"]
        accs = _Accumulators(em, kind, bn, mv)

        def row_body(nb):
            accs.zero()
            start = b.sext(b.load(b.gep(rows, [nb], source_etype=I32), typ=I32), I64)
            stop = b.sext(b.load(b.gep(rows, [b.add(nb, ir.Constant(I64, 1))], source_etype=I32), typ=I32), I64)

            def block_body(blk):
                col = b.sext(b.load(b.gep(cols, [blk], source_etype=I32), typ=I32), I64)
                for j in range(bk):
                    group = b.add(b.mul(col, ir.Constant(I64, bk)), ir.Constant(I64, j))
                    if k_groups % bk:            # a partial last block: its groups past K have zero weights
                        group = b.select(b.icmp_signed("<", group, ir.Constant(I64, k_groups)), group,
                                         ir.Constant(I64, k_groups - 1))
                    a = _load_activations(em, kind, act, group, m0, mp, mv)
                    for i in range(bn):
                        index = b.add(b.mul(blk, ir.Constant(I64, bn * bk)), ir.Constant(I64, i * bk + j))
                        p = b.gep(b.bitcast(vals, PTR), [b.mul(index, ir.Constant(I64, g * w_bytes))], source_etype=I8)
                        w = b.load(b.bitcast(p, wty.as_pointer()), typ=wty, align=1)
                        for r in range(mv):
                            accs.step(i, r, a[r], w)
            em._loop("blk", start, stop, 1, block_body)
            channel0 = b.mul(nb, ir.Constant(I64, bn))
            if n % bn == 0:
                accs.scatter(tile, n, channel0, mv, bn)
            else:
                last = b.icmp_signed("==", nb, ir.Constant(I64, row_blocks - 1))
                with b.if_else(last) as (then, otherwise):
                    with then:
                        accs.scatter(tile, n, channel0, mv, n % bn)
                    with otherwise:
                        accs.scatter(tile, n, channel0, mv, bn)

        em._loop("nb", ir.Constant(I64, 0), ir.Constant(I64, row_blocks), 1, row_body)

    return emit


def _word(group: np.ndarray, kind: mk.MicroKernelKind) -> ir.Constant:
    """One group of g weights as the scalar the micro-kernel splats (little-endian packing)."""
    if kind.name == "portable":
        return ir.Constant(I16, int(group[0]))
    bits = 8 if _vals_type(kind) == "i8" else 16
    value = 0
    for j, w in enumerate(group):
        value |= (int(w) & ((1 << bits) - 1)) << (j * bits)
    return ir.Constant(I32, value - (1 << 32) if value >= 1 << 31 else value)


def _unrolled_emit(kind, bsr: BlockSparse, act: str, names: dict, mp: int, mv: int, n: int, k_groups: int):
    """Weight-specialised code: for each output block, the nonzero groups' loads and dot products, unrolled."""
    bn, bk = bsr.bn, bsr.bk

    def emit(em, operands) -> None:
        m0 = operands["m0"]
        tile, _ = em.buffers["tile"]
        accs = _Accumulators(em, kind, bn, mv)
        for nb in range(bsr.row_ptr.size - 1):
            accs.zero()
            for blk in range(int(bsr.row_ptr[nb]), int(bsr.row_ptr[nb + 1])):
                for j in range(bk):
                    group = int(bsr.col[blk]) * bk + j
                    users = [i for i in range(bn) if bsr.values[blk, i, j].any()]
                    if not users or group >= k_groups:
                        continue
                    a = _load_activations(em, kind, act, ir.Constant(I64, group), m0, mp, mv)
                    for i in users:
                        for r in range(mv):
                            accs.step(i, r, a[r], _word(bsr.values[blk, i, j], kind))
            accs.scatter(tile, n, ir.Constant(I64, nb * bn), mv, min(bn, n - nb * bn))

    return emit

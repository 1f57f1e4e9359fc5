"""Keep-masks of structured magnitude pruning, computed on a canonical view of a weight.

Every pattern works on a 4-D *view* of magnitudes ``V[G, O, T, K]``:

* ``G`` independent weight matrices (the batch of a MATMUL's constant B; 1 for CONV2D),
* ``O`` output channels,
* ``T`` taps (``KH*KW`` of a CONV2D; 1 for MATMUL and for plain 2-D matrices),
* ``K`` reduction elements of one tap (the input channels of a CONV2D, C of a MATMUL).

Structure along the reduction never crosses a tap: the compiler's int8 kernels
group consecutive input channels *of one tap* (4 at a time), so a block or an
N:M group that straddled two taps would not map onto the code that skips it.

Magnitudes are ``|w - zero_point|``: a pruned element is set to the zero point,
i.e. to the real value 0, and an element equal to the zero point counts as a
zero. Counts are ``round half up`` of ``sparsity * number_of_units``, and ties
between equal scores are broken by index (the lower index is pruned first),
so every mask is deterministic.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

import numpy as np

from tosac.errors import PruneError

__all__ = ["Pattern", "parse_pattern", "check_sparsity", "prune_count", "view_mask", "layer_mask",
           "magnitudes"]

_BLOCK = re.compile(r"block(\d+)x(\d+)")
_NM = re.compile(r"(\d+):(\d+)")


@dataclass(frozen=True)
class Pattern:
    """A parsed pruning pattern; ``str(pattern)`` is its canonical spelling.

    ``kind`` is ``"unstructured"``, ``"block"`` (``block_out`` x ``block_red``),
    ``"nm"`` (keep ``n`` of every ``m``) or ``"channel"``.
    """
    kind: str
    block_out: int = 1
    block_red: int = 1
    n: int = 0
    m: int = 0

    @property
    def needs_sparsity(self) -> bool:
        """N:M fixes its own density; every other pattern needs a sparsity."""
        return self.kind != "nm"

    def __str__(self) -> str:
        if self.kind == "block":
            return f"block{self.block_out}x{self.block_red}"
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        return self.kind


def parse_pattern(text: "str | Pattern") -> Pattern:
    """The one place pattern strings are read (``unstructured``, ``blockOxK``, ``N:M``, ``channel``)."""
    if isinstance(text, Pattern):
        return text
    if not isinstance(text, str):
        raise PruneError(f"pruning pattern must be a string such as 'block1x4', '2:4', 'unstructured' or "
                         f"'channel', got {type(text).__name__} {text!r}")
    s = text.strip()
    if s in ("unstructured", "channel"):
        return Pattern(s)
    if (m := _BLOCK.fullmatch(s)) is not None:
        o, k = int(m.group(1)), int(m.group(2))
        if o < 1 or k < 1:
            raise PruneError(f"pruning pattern '{text}': block dimensions must be positive "
                             f"(output channels x reduction elements, e.g. 'block1x4')")
        return Pattern("block", block_out=o, block_red=k)
    if (m := _NM.fullmatch(s)) is not None:
        n, mm = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= mm:
            raise PruneError(f"pruning pattern '{text}': N:M needs 1 <= N <= M (keep N of every M), "
                             f"got N={n}, M={mm}")
        return Pattern("nm", n=n, m=mm)
    raise PruneError(f"unknown pruning pattern '{text}'; use 'unstructured', 'channel', "
                     f"'block<O>x<K>' (e.g. 'block1x4', 'block4x4') or 'N:M' (e.g. '2:4')")


def check_sparsity(pattern: Pattern, sparsity: object, where: str = "") -> float | None:
    """The sparsity as a float in [0, 1] (None for N:M, which must not be given one)."""
    prefix = f"{where}: " if where else ""
    if not pattern.needs_sparsity:
        if sparsity is not None:
            raise PruneError(f"{prefix}pattern '{pattern}' fixes its own density ({pattern.n}/{pattern.m} kept); "
                             f"pass sparsity=None, got {sparsity!r}")
        return None
    if sparsity is None:
        raise PruneError(f"{prefix}pattern '{pattern}' needs a sparsity in [0, 1], got None")
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise PruneError(f"{prefix}sparsity must be a number in [0, 1], got {type(sparsity).__name__} "
                         f"{sparsity!r}")
    value = float(sparsity)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise PruneError(f"{prefix}sparsity must be in [0, 1], got {sparsity!r}")
    return value


def prune_count(sparsity: float, units: int) -> int:
    """How many of ``units`` to prune: ``sparsity * units`` rounded half up."""
    return min(units, int(math.floor(sparsity * units + 0.5)))


def magnitudes(weights: np.ndarray, zero_point: int = 0) -> np.ndarray:
    """``|w - zero_point|`` without overflow (int64 for integer weights, float64 otherwise)."""
    w = np.asarray(weights)
    wide = w.astype(np.int64) if np.issubdtype(w.dtype, np.integer) else w.astype(np.float64)
    return np.abs(wide - zero_point)


def _lowest(scores: np.ndarray, count: int) -> np.ndarray:
    """Flat keep-mask over ``scores`` that drops the ``count`` lowest (ties: lower index dropped first)."""
    flat = scores.reshape(-1)
    keep = np.ones(flat.shape, dtype=bool)
    if count:
        keep[np.argsort(flat, kind="stable")[:count]] = False
    return keep.reshape(scores.shape)


def view_mask(mag: np.ndarray, pattern: "str | Pattern", sparsity: float | None) -> np.ndarray:
    """Keep-mask (True = keep) of magnitudes ``mag[G, O, T, K]`` under ``pattern``."""
    pattern = parse_pattern(pattern)
    sparsity = check_sparsity(pattern, sparsity)
    mag = np.asarray(mag)
    if mag.ndim != 4:
        raise PruneError(f"view_mask needs a [G, O, T, K] magnitude view, got shape {list(mag.shape)}")
    g, o, t, k = mag.shape
    if pattern.kind == "unstructured":
        return _lowest(mag, prune_count(sparsity, mag.size))
    if pattern.kind == "channel":
        rows = mag.sum(axis=(2, 3))
        keep = _lowest(rows, prune_count(sparsity, rows.size))
        return np.broadcast_to(keep[:, :, None, None], mag.shape).copy()
    if pattern.kind == "block":
        bo, bk = pattern.block_out, pattern.block_red
        nbo, nbk = -(-o // bo), -(-k // bk)
        padded = np.zeros((g, nbo * bo, t, nbk * bk), dtype=mag.dtype)
        padded[:, :o, :, :k] = mag
        scores = padded.reshape(g, nbo, bo, t, nbk, bk).sum(axis=(2, 5))     # [G, nbo, T, nbk]
        keep = _lowest(scores, prune_count(sparsity, scores.size))
        full = np.repeat(np.repeat(keep, bo, axis=1), bk, axis=3)
        return full[:, :o, :, :k].copy()
    # N:M: groups of M along K within a tap. A partial last group of length L is treated as padded
    # with zeros to M (as the kernels pad input channels): it keeps min(N, L) elements.
    n, m = pattern.n, pattern.m
    ng = -(-k // m)
    padded = np.full((g, o, t, ng * m), -1, dtype=np.result_type(mag.dtype, np.int64)
                     if np.issubdtype(mag.dtype, np.integer) else np.float64)
    padded[..., :k] = mag
    groups = padded.reshape(g, o, t, ng, m)
    order = np.argsort(-groups, axis=-1, kind="stable")            # largest first, ties: lower index first
    rank = np.argsort(order, axis=-1, kind="stable")
    keep = (rank < n).reshape(g, o, t, ng * m)
    return keep[..., :k].copy()


def layer_mask(weights: np.ndarray, pattern: "str | Pattern", sparsity: float | None,
               *, zero_point: int = 0) -> np.ndarray:
    """Keep-mask (same shape as ``weights``) of a 2-D matrix ``[out, red]`` or a CONV2D weight ``[OC, KH, KW, IC]``.

    The core of :func:`tosac.prune.prune`, usable on its own: a 2-D matrix is
    one tap; a CONV2D weight is viewed as ``[OC, KH*KW, IC]`` so that blocks
    and N:M groups tile the input channels of each tap.
    """
    w = np.asarray(weights)
    if w.ndim == 2:
        view = w.reshape(1, w.shape[0], 1, w.shape[1])
    elif w.ndim == 4:
        view = w.reshape(1, w.shape[0], w.shape[1] * w.shape[2], w.shape[3])
    else:
        raise PruneError(f"layer_mask takes a 2-D [out, red] matrix or a 4-D CONV2D weight [OC, KH, KW, IC], "
                         f"got shape {list(w.shape)}")
    return view_mask(magnitudes(view, zero_point), pattern, sparsity).reshape(w.shape)

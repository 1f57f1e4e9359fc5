"""Static memory planning: one arena, with an offset for every intermediate tensor.

Embedded users size their RAM from this plan, so it has to be computed ahead
of time and be reproducible: the same graph always gets the same arena. Two
intermediate tensors may share bytes only when their lifetimes (in kernel
steps) are disjoint. Graph inputs, outputs and constants live in memory the
caller provides (or in flash), so they get no arena space.

    steps = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["y"])]
    plan = plan_memory(liveness(steps, sizes, external={"x", "y"}))
    plan.offsets["a"], plan.arena_bytes
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = ["Buffer", "MemoryPlan", "liveness", "peak_live_bytes", "plan_memory"]


@dataclass(frozen=True)
class Buffer:
    """An intermediate tensor needing ``nbytes`` from step ``first_step`` to ``last_step`` (inclusive)."""
    name: str
    nbytes: int
    first_step: int
    last_step: int

    def overlaps_in_time(self, other: "Buffer") -> bool:
        """True when both buffers are live at some common step (they may not share memory)."""
        return self.first_step <= other.last_step and other.first_step <= self.last_step


@dataclass(frozen=True)
class MemoryPlan:
    """Where each buffer lives in the arena and how large the arena must be."""
    offsets: dict[str, int]      # byte offset of each buffer in the arena
    arena_bytes: int             # total arena size (>= peak_bytes)
    peak_bytes: int              # max over steps of the sum of sizes of live buffers

    def describe(self) -> str:
        """One-line summary, e.g. ``arena 1.2 MiB for 14 buffers, peak live 1.1 MiB``."""
        count = len(self.offsets)
        noun = "buffer" if count == 1 else "buffers"
        return f"arena {_human_bytes(self.arena_bytes)} for {count} {noun}, peak live {_human_bytes(self.peak_bytes)}"


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def liveness(steps: Sequence[tuple[Sequence[str], Sequence[str]]], sizes: dict[str, int],
             external: set[str]) -> list[Buffer]:
    """The lifetime of every non-external tensor, in order of the step that writes it.

    ``steps`` holds ``(input names, output names)`` per kernel in execution
    order. A buffer lives from the step writing it to the last step reading it;
    one written but never read lives only at its own step. A kernel's inputs
    are live at its step, so they never share memory with its outputs.

    Raises ValueError for a non-external tensor that is read before it is
    written, written twice, or has no (or a negative) size: each means the
    caller's schedule is inconsistent, and guessing would corrupt memory.
    """
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for step, (inputs, outputs) in enumerate(steps):
        for name in inputs:
            if name in external:
                continue
            if name not in first:
                raise ValueError(f"step {step} reads '{name}' before any step writes it "
                                 f"(and it is not external)")
            last[name] = step
        for name in outputs:
            if name in external:
                continue
            if name in first:
                raise ValueError(f"step {step} writes '{name}', already written at step {first[name]}")
            first[name] = last[name] = step
    buffers = []
    for name, start in first.items():
        if name not in sizes:
            raise ValueError(f"no size given for tensor '{name}'")
        nbytes = int(sizes[name])
        if nbytes < 0:
            raise ValueError(f"tensor '{name}' has negative size {nbytes}")
        buffers.append(Buffer(name, nbytes, start, last[name]))
    return buffers


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def peak_live_bytes(buffers: Sequence[Buffer]) -> int:
    """Max over steps of the total size of the buffers live at that step (a lower bound on any arena)."""
    events: list[tuple[int, int]] = []
    for b in buffers:
        if b.nbytes:
            events.append((b.first_step, b.nbytes))
            events.append((b.last_step + 1, -b.nbytes))
    events.sort()
    peak = live = 0
    for i, (step, delta) in enumerate(events):
        live += delta
        # Only measure once every event of this step is applied.
        if i + 1 == len(events) or events[i + 1][0] != step:
            peak = max(peak, live)
    return peak


def plan_memory(buffers: Sequence[Buffer], alignment: int = 64) -> MemoryPlan:
    """Assign arena offsets: greedy by decreasing size, each at the lowest free aligned offset.

    Offsets are multiples of ``alignment``; a buffer never overlaps (in
    addresses) a buffer whose lifetime overlaps its own. Ties in size are
    placed by first step, then last step, then name, so the plan does not
    depend on the order of ``buffers``. Zero-size buffers get offset 0 and
    take no space.
    """
    if alignment < 1:
        raise ValueError(f"alignment must be >= 1, got {alignment}")
    seen: set[str] = set()
    for b in buffers:
        if b.name in seen:
            raise ValueError(f"buffer '{b.name}' is listed twice")
        seen.add(b.name)
        if b.nbytes < 0:
            raise ValueError(f"buffer '{b.name}' has negative size {b.nbytes}")
        if b.first_step > b.last_step:
            raise ValueError(f"buffer '{b.name}' ends (step {b.last_step}) before it starts "
                             f"(step {b.first_step})")

    order = sorted(buffers, key=lambda b: (-b.nbytes, b.first_step, b.last_step, b.name))
    offsets: dict[str, int] = {}
    placed: list[tuple[Buffer, int]] = []
    arena = 0
    for buf in order:
        if buf.nbytes == 0:
            offsets[buf.name] = 0
            continue
        # Address ranges taken by buffers live at the same time, by start address.
        taken = sorted((off, off + other.nbytes) for other, off in placed if other.overlaps_in_time(buf))
        offset = 0
        for start, end in taken:
            if offset + buf.nbytes <= start:
                break                              # fits in the gap before this range
            offset = max(offset, _align_up(end, alignment))
        offsets[buf.name] = offset
        placed.append((buf, offset))
        arena = max(arena, offset + buf.nbytes)
    # Report offsets in the caller's order, not placement order.
    return MemoryPlan({b.name: offsets[b.name] for b in buffers}, arena, peak_live_bytes(buffers))

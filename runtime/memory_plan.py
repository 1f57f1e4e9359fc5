"""Static memory planning: one arena, with an offset for every intermediate tensor.

Embedded users size their RAM from this plan, so it has to be computed ahead
of time and be reproducible: the same graph always gets the same arena. Two
intermediate tensors may share bytes only when their lifetimes (in kernel
steps) are disjoint. Graph inputs, outputs and constants live in memory the
caller provides (or in flash), so they get no arena space.

    steps = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["y"])]
    plan = plan_memory(liveness(steps, sizes, external={"x", "y"}))
    plan.offsets["a"], plan.arena_bytes

A plan is also checked against a memory budget before anything is allocated
(``check_budget``): a graph whose run needs more than the machine can give is
refused at compile time, naming its largest buffers, instead of failing in an
allocation at run time or swapping the machine to a halt.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from tosac.errors import TosacError

__all__ = ["Buffer", "MemoryLimitError", "MemoryPlan", "check_budget", "human_bytes", "liveness", "memory_limit",
           "parse_bytes", "peak_live_bytes", "physical_memory", "plan_memory"]

ENV_LIMIT = "TOSAC_MEMORY_LIMIT"
PHYSICAL_FRACTION = 0.5          # default budget: this share of the physical memory
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


class MemoryLimitError(TosacError):
    """A compiled graph would need more memory than the budget (``TOSAC_MEMORY_LIMIT``, ``memory_limit=``)."""


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
        return f"arena {human_bytes(self.arena_bytes)} for {count} {noun}, peak live {human_bytes(self.peak_bytes)}"


def human_bytes(n: int) -> str:
    """``n`` bytes for a reader: ``512 B``, ``1.5 KiB``, ... ``6.7 GiB``."""
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


def parse_bytes(text: str, what: str = ENV_LIMIT) -> int | None:
    """Bytes for ``512M``, ``4G``, ``1.5GiB``, ``1000000`` (binary units); None for ``none``/``unlimited``."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    match = _SIZE.fullmatch(text)
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()]) if match else 0
    if value <= 0:
        raise TosacError(f"{what} is '{text}': expected a positive size in bytes such as 512M, 4G or 1000000 "
                         f"(suffixes K, M, G, T are powers of 1024), or 'none' for no limit")
    return value


def physical_memory() -> int | None:
    """Bytes of RAM in this machine, or None where the OS does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def memory_limit(value: int | str | None = None) -> tuple[int | None, str]:
    """The budget in bytes (None: no limit) and where it comes from.

    ``value`` (bytes, or a size string) wins, then ``$TOSAC_MEMORY_LIMIT``, then
    half the physical memory: a graph needing more would only fail in an
    allocation at run time, or push the machine into swap.
    """
    if isinstance(value, bool) or (value is not None and not isinstance(value, (int, str))):
        raise TosacError(f"memory_limit={value!r}: expected bytes (an int), a size such as '4G', or 'none'")
    if isinstance(value, int):
        if value <= 0:
            raise TosacError(f"memory_limit={value}: expected a positive number of bytes")
        return value, "memory_limit="
    if isinstance(value, str):
        return parse_bytes(value, f"memory_limit={value!r}"), "memory_limit="
    text = os.environ.get(ENV_LIMIT, "").strip()
    if text:
        return parse_bytes(text, f"${ENV_LIMIT}"), f"${ENV_LIMIT}"
    physical = physical_memory()
    if physical is None:
        return None, "no limit: the physical memory is unknown"
    return int(physical * PHYSICAL_FRACTION), f"half the physical memory of {human_bytes(physical)}"


def check_budget(plan: MemoryPlan, sizes: Mapping[str, int], constants: Sequence[str], outputs: Sequence[str],
                 limit: int | None, source: str = "") -> None:
    """Raise ``MemoryLimitError`` when a run needs more than ``limit`` bytes: the arena, the constants and the
    outputs a run allocates. The message names the need, the limit and the largest buffers (names and sizes)."""
    if limit is None:
        return
    kinds = {n: "intermediate" for n in plan.offsets}
    kinds.update({n: "constant" for n in constants})
    kinds.update({n: "output" for n in outputs if n not in kinds})
    constant_bytes = sum(int(sizes[n]) for n in set(constants))
    output_bytes = sum(int(sizes[n]) for n in set(outputs) if kinds[n] == "output")
    need = plan.arena_bytes + constant_bytes + output_bytes
    if need <= limit:
        return
    largest = sorted(kinds, key=lambda n: (-int(sizes[n]), n))[:3]
    names = ", ".join(f"'{n}' ({kinds[n]}, {human_bytes(int(sizes[n]))})" for n in largest)
    where = f" ({source})" if source else ""
    raise MemoryLimitError(
        f"this graph needs {human_bytes(need)} ({need} bytes) to run: arena {human_bytes(plan.arena_bytes)}, "
        f"constants {human_bytes(constant_bytes)}, outputs {human_bytes(output_bytes)}; the memory limit is "
        f"{human_bytes(limit)} ({limit} bytes){where}. Largest buffers: {names}. Raise the limit with "
        f"${ENV_LIMIT} (e.g. 16G, or 'none'), tosac --memory-limit or memory_limit= if the machine has the memory")

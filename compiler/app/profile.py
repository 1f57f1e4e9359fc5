"""``tosac profile``: where a compiled model's time goes, kernel by kernel.

Each kernel (a fused op group: its packing prologue and its main loop) is
timed alone in native code on the buffers of a real run, threaded kernels on
the thread pool as in a model run (``Executable.time_kernels``). Per kernel:
its share of the summed kernel time, microseconds, GOPS (2 operations per
multiply-accumulate), the share of the int8 peak of the cores it ran on
(``tosac.runtime.peak``: the dot-product units' issue rate, measured here),
the bytes its buffers hold per microsecond (for kernels without MACs the
rate that matters), its template and config. The whole run is timed too:
the difference from the sum is what lies between kernels.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tosac.errors import TosacError, UnsupportedError
from tosac.ir.graph import Graph
from tosac.pipeline.driver import compile as compile_graph
from tosac.runtime.executable import KernelStep
from tosac.runtime.peak import Peak, int8_peak
from tosac.targets import get_target


@dataclass
class KernelProfile:
    kernel: str                  # the kernel's name (fused op group)
    pattern: str                 # its ops, e.g. CONV2D+RESCALE
    template: str
    config: dict
    macs: int
    seconds: float               # per model run, all the kernel's calls
    bytes: int                   # bytes of the buffers its calls read and write
    threads: int                 # the most threads one of its calls ran on
    share: float = 0.0           # of the summed kernel time

    @property
    def gops(self) -> float:
        return 2 * self.macs / self.seconds / 1e9 if self.macs and self.seconds > 0 else 0.0

    @property
    def gbytes_per_second(self) -> float:
        return self.bytes / self.seconds / 1e9 if self.seconds > 0 else 0.0


@dataclass
class Profile:
    model: str
    target: str
    cpu: str
    threads: int
    run_seconds: float           # one whole model run (one native call)
    peak: Peak                   # one core's int8 peak
    kernels: list[KernelProfile] = field(default_factory=list)

    @property
    def kernel_seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    def peak_share(self, k: KernelProfile) -> float | None:
        """``k``'s GOPS over the peak of the cores it ran on (None: no MACs, or no peak on this CPU)."""
        if not k.macs or not np.isfinite(self.peak.gops):
            return None
        return k.gops / (self.peak.gops * k.threads)

    def table(self, top: int | None = None) -> str:
        lines = [f"profile of {self.model} on {self.target} ({self.cpu}), {self.threads} thread(s): "
                 f"{self.run_seconds * 1e6:.1f} us per run; kernels alone {self.kernel_seconds * 1e6:.1f} us "
                 f"({len(self.kernels)} kernels)",
                 f"int8 peak of one core: {self.peak.gops:.0f} GOPS ({self.peak.method})", "",
                 f"{'share':>6} {'us':>9} {'GOPS':>7} {'%peak':>6} {'GB/s':>7} {'thr':>3}  "
                 f"{'kernel':<44} {'template':<10} config"]
        ranked = sorted(self.kernels, key=lambda k: -k.seconds)
        for k in ranked[:top] if top else ranked:
            share = self.peak_share(k)
            lines.append(f"{100 * k.share:5.1f}% {k.seconds * 1e6:9.2f} {k.gops:7.1f} "
                         f"{f'{100 * share:5.1f}%' if share is not None else '     -':>6} "
                         f"{k.gbytes_per_second:7.1f} {k.threads:>3}  {k.kernel:<44} {k.template:<10} "
                         f"{json.dumps(k.config, sort_keys=True)}")
        if top and len(ranked) > top:
            rest = ranked[top:]
            lines.append(f"{100 * sum(k.share for k in rest):5.1f}% {sum(k.seconds for k in rest) * 1e6:9.2f} "
                         f"in the other {len(rest)} kernels")
        by_template: dict[str, float] = {}
        for k in self.kernels:
            by_template[k.template] = by_template.get(k.template, 0.0) + k.share
        lines += ["", "by template: " + ", ".join(f"{t} {100 * s:.1f}%" for t, s in
                                                   sorted(by_template.items(), key=lambda item: -item[1]))]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "cpu": self.cpu, "threads": self.threads,
                "run_seconds": self.run_seconds, "kernel_seconds": self.kernel_seconds,
                "peak_gops": self.peak.gops, "peak_method": self.peak.method,
                "kernels": [{**asdict(k), "gops": k.gops, "gbytes_per_second": k.gbytes_per_second,
                             "peak_share": self.peak_share(k)} for k in self.kernels]}


def profile_graph(graph: Graph, inputs: Mapping[str, np.ndarray], model: str = "model", target: str = "host",
                  threads: int | str | None = None, tuning_log=None, seconds: float = 0.02) -> Profile:
    """Compile ``graph`` for ``target`` (which must run in this process) and time each kernel on ``inputs``."""
    resolved = get_target(target)
    if not resolved.is_host:
        raise UnsupportedError(f"target {resolved.name} does not run on this machine: a profile is only taken "
                               "where the code runs (never under an emulator)")
    exe = compile_graph(graph, resolved, tuning_log=tuning_log, threads=threads)
    steps = exe.program.steps
    timings = exe.time_kernels(inputs, seconds)
    runs = max(1, int(seconds / max(sum(t or 0 for t in timings), 1e-7)))      # about ``seconds`` of whole runs
    run_seconds = float(np.median([exe.time_runs(inputs, runs) for _ in range(3)]))
    kernels = {info.name: KernelProfile(info.name, info.pattern, info.template, dict(info.config), info.mac_count,
                                        0.0, 0, 1) for info in exe.program.info["kernels"]}
    for step, seconds_ in zip(steps, timings):
        if not isinstance(step, KernelStep) or seconds_ is None or step.kernel not in kernels:
            continue
        k = kernels[step.kernel]
        k.seconds += seconds_
        k.bytes += sum(exe.program.buffers[name].nbytes for name in step.buffers)
        if step.threaded:
            k.threads = max(k.threads, min(step.threads, step.parallel_extent))
    timed = [k for k in kernels.values() if k.seconds > 0]
    total = sum(k.seconds for k in timed) or 1.0
    for k in timed:
        k.share = k.seconds / total
    return Profile(model, resolved.name, _cpu_name(), exe.threads, run_seconds, int8_peak(), timed)


def plot_profile(profile: Profile, path: str | Path, top: int = 20) -> None:
    """A bar per kernel (the ``top`` slowest): its time, coloured by template, labelled with % of peak."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TosacError("--plot needs matplotlib: pip install 'tosac[plot]'") from None
    from tosac.ir.atomic_io import atomic_path

    ranked = sorted(profile.kernels, key=lambda k: -k.seconds)[:top][::-1]
    templates = sorted({k.template for k in ranked})
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(templates)}
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(ranked) + 1.6))
    ax.barh(range(len(ranked)), [k.seconds * 1e6 for k in ranked], color=[colours[k.template] for k in ranked])
    ax.set_yticks(range(len(ranked)), [f"{k.kernel} ({k.pattern})"[:70] for k in ranked], fontsize=7)
    for i, k in enumerate(ranked):
        share = profile.peak_share(k)
        note = f" {100 * k.share:.1f}% of time" + (f", {100 * share:.0f}% of peak" if share is not None else
                                                    f", {k.gbytes_per_second:.1f} GB/s")
        ax.text(k.seconds * 1e6, i, note, va="center", fontsize=7)
    ax.set_xlabel("microseconds per run")
    ax.set_title(f"{profile.model} on {profile.target}, {profile.threads} thread(s): "
                 f"{profile.run_seconds * 1e6:.0f} us per run", fontsize=9)
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[t]) for t in templates], labels=templates,
              fontsize=7, loc="lower right")
    ax.set_xlim(0, max(k.seconds for k in ranked) * 1e6 * 1.45)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()

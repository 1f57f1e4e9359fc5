"""Code-generation targets: an LLVM triple, a CPU and its features, and what follows.

A target is built from a name (``host``, ``x86_64``, ``x86_64-avx2``,
``x86_64-avx512vnni``, ``aarch64``, ``aarch64-dotprod``, ``armv7``). The
schedule templates read ``vector_bits`` and ``dot_product`` to pick
micro-kernels; ``host`` is detected from the running CPU so that code never
uses an instruction the machine lacks (CI machines may have no AVX-512).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from tosac.errors import UnsupportedError


class DotProduct(enum.Enum):
    """The int8 dot-product instruction family a micro-kernel may use."""
    NONE = "none"            # portable widening multiply-add
    AVX2 = "avx2"            # vpmaddwd on int16 pairs (vpmaddubsw saturates: deliberately not used)
    VNNI = "avx512vnni"      # vpdpbusd
    SDOT = "sdot"            # AArch64 dot product (FEAT_DotProd)


@dataclass(frozen=True)
class Target:
    name: str
    triple: str
    cpu: str
    features: tuple[str, ...]     # LLVM feature strings without the leading '+'
    vector_bits: int
    dot_product: DotProduct

    @property
    def arch(self) -> str:
        return self.triple.split("-")[0]

    @property
    def is_host(self) -> bool:
        """True when code for this target runs in this process (same architecture as the machine)."""
        import llvmlite.binding as llvm

        return self.arch == llvm.get_process_triple().split("-")[0]

    def feature_string(self) -> str:
        return ",".join(f"+{f}" for f in self.features)

    def target_machine(self, opt: int = 3):
        """An llvmlite TargetMachine for this target (position-independent code)."""
        import llvmlite.binding as llvm

        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        return llvm.Target.from_triple(self.triple).create_target_machine(
            cpu=self.cpu, features=self.feature_string(), opt=opt, reloc="pic", codemodel="default")


_X86 = "x86_64-unknown-linux-gnu"
NAMED_TARGETS: dict[str, Target] = {
    "x86_64": Target("x86_64", _X86, "x86-64", (), 128, DotProduct.NONE),
    "x86_64-avx2": Target("x86_64-avx2", _X86, "haswell", ("avx2", "fma"), 256, DotProduct.AVX2),
    "x86_64-avx512vnni": Target("x86_64-avx512vnni", _X86, "cascadelake",
                                ("avx512f", "avx512bw", "avx512vl", "avx512vnni"), 512, DotProduct.VNNI),
    "aarch64": Target("aarch64", "aarch64-unknown-linux-gnu", "cortex-a53", ("neon",), 128, DotProduct.NONE),
    "aarch64-dotprod": Target("aarch64-dotprod", "aarch64-unknown-linux-gnu", "cortex-a55",
                              ("neon", "dotprod"), 128, DotProduct.SDOT),
    "armv7": Target("armv7", "armv7a-unknown-linux-gnueabihf", "cortex-a7", ("neon", "vfp4"), 128,
                    DotProduct.NONE),
}


def host_target() -> Target:
    """The running machine: its CPU name and the features LLVM detects on it."""
    import llvmlite.binding as llvm

    triple = llvm.get_process_triple()
    features = llvm.get_host_cpu_features()
    enabled = tuple(sorted(k for k, on in features.items() if on))
    if triple.startswith("x86_64"):
        if features.get("avx512vnni") and features.get("avx512bw"):
            vector_bits, dot = 512, DotProduct.VNNI
        elif features.get("avx2"):
            vector_bits, dot = 256, DotProduct.AVX2
        else:
            vector_bits, dot = 128, DotProduct.NONE
    elif triple.startswith("aarch64"):
        vector_bits, dot = 128, DotProduct.SDOT if features.get("dotprod") else DotProduct.NONE
    else:
        vector_bits, dot = 128, DotProduct.NONE
    return Target("host", triple, llvm.get_host_cpu_name(), enabled, vector_bits, dot)


def get_target(name: str | Target) -> Target:
    """The target called ``name`` (or ``name`` itself if it already is one)."""
    if isinstance(name, Target):
        return name
    if name == "host":
        return host_target()
    try:
        return NAMED_TARGETS[name]
    except KeyError:
        raise UnsupportedError(f"unknown target '{name}'; choose one of "
                               f"{['host', *NAMED_TARGETS]}") from None


def runnable_targets() -> list[str]:
    """The x86-64 targets this machine can run in-process (AVX-512 VNNI only where the CPU has it); else host."""
    host = host_target()
    if not host.triple.startswith("x86_64"):
        return ["host"]
    names = ["x86_64"]
    if "avx2" in host.features:
        names.append("x86_64-avx2")
    if {"avx512vnni", "avx512bw", "avx512vl"} <= set(host.features):
        names.append("x86_64-avx512vnni")
    return names

"""The core's measured int8 multiply-accumulate peak: what "% of peak" in profiles and benchmarks is relative to.

``peak(iters)`` runs independent chains of the widest int8 dot product the
host has (AVX-512 VNNI ``vpdpbusd`` on 512-bit vectors, else AVX2
``vpmaddwd``), enough chains to cover the instruction's latency, so the
figure is the issue rate of the dot-product units on one core: no kernel
can beat it, and a kernel's share of it says how well it feeds them.
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

from tosac.runtime.jit import load_functions
from tosac.runtime.objects import compile_object
from tosac.targets import host_target


@dataclass(frozen=True)
class Peak:
    gops: float            # int8 operations per second (2 per multiply-accumulate), in 10^9; nan when not measured
    method: str            # what was measured


def _peak_ir(vnni: bool, chains: int) -> str:
    """LLVM IR of ``peak(iters)``: ``chains`` independent dot-product accumulators, summed at the end."""
    vec, ops = ("<16 x i32>", "<64 x i8>") if vnni else ("<8 x i32>", "<16 x i16>")
    ones = "<" + ", ".join([ops.split(" x ")[1][:-1] + " 1"] * int(ops[1:].split(" ")[0])) + ">"
    if vnni:
        decl = f"declare {vec} @llvm.x86.avx512.vpdpbusd.512({vec}, {ops}, {ops})"
        step = [f"  %n{i} = call {vec} @llvm.x86.avx512.vpdpbusd.512({vec} %a{i}, {ops} %x, {ops} %x)"
                for i in range(chains)]
    else:
        decl = f"declare {vec} @llvm.x86.avx2.pmadd.wd({ops}, {ops})"
        step = [f"  %p{i} = call {vec} @llvm.x86.avx2.pmadd.wd({ops} %x, {ops} %x)\n  %n{i} = add {vec} %a{i}, %p{i}"
                for i in range(chains)]
    phis = [f"  %a{i} = phi {vec} [ zeroinitializer, %entry ], [ %n{i}, %loop ]" for i in range(chains)]
    sums = [f"  %s{i} = add {vec} %s{i - 1}, %n{i}" for i in range(1, chains)]
    return "\n".join([
        decl, "define i32 @peak(i64 %iters) {", "entry:", "  br label %loop", "loop:",
        "  %i = phi i64 [ 0, %entry ], [ %i.next, %loop ]", *phis,
        f"  %x = select i1 true, {ops} {ones}, {ops} {ones}", *step, "  %i.next = add i64 %i, 1",
        "  %done = icmp eq i64 %i.next, %iters",
        "  br i1 %done, label %exit, label %loop", "exit:", f"  %s0 = add {vec} zeroinitializer, %n0", *sums,
        f"  %r = extractelement {vec} %s{chains - 1}, i32 0", "  ret i32 %r", "}"])


_MEASURED: dict[str, Peak] = {}


def int8_peak(cached: bool = True) -> Peak:
    """One core's int8 peak on this machine (best of 5 runs of ~50 ms; measured once per process if ``cached``)."""
    if cached and "int8" in _MEASURED:
        return _MEASURED["int8"]
    target = host_target()
    vnni = {"avx512vnni", "avx512bw"} <= set(target.features)
    if not target.triple.startswith("x86_64") or not vnni and "avx2" not in target.features:
        return Peak(float("nan"), "no VNNI or AVX2: peak not measured")
    chains, macs = (24, 64) if vnni else (12, 16)
    peak = load_functions(compile_object(_peak_ir(vnni, chains), target, opt=2),
                          {"peak": ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64)})["peak"]
    iters, best = 200_000, 0.0
    for _ in range(5):
        start = time.perf_counter()
        peak(iters)
        best = max(best, 2 * macs * chains * iters / (time.perf_counter() - start) / 1e9)
    result = Peak(best, f"{chains} x {'vpdpbusd zmm' if vnni else 'vpmaddwd ymm'} chains, best of 5")
    _MEASURED["int8"] = result
    return result

"""Targets: every named target gives an LLVM target machine that emits an object for its architecture."""
from __future__ import annotations

import llvmlite.binding as llvm
import pytest

from tosac.errors import UnsupportedError
from tosac.targets import NAMED_TARGETS, DotProduct, get_target, host_target

# ELF e_machine values: EM_386=3 is not used; EM_ARM=40, EM_X86_64=62, EM_AARCH64=183.
ELF_MACHINE = {"x86_64": 62, "aarch64": 183, "armv7a": 40}

MODULE = """
define i32 @dot4(i8* %a, i8* %b) {
entry:
  %pa = bitcast i8* %a to <4 x i8>*
  %pb = bitcast i8* %b to <4 x i8>*
  %va = load <4 x i8>, <4 x i8>* %pa
  %vb = load <4 x i8>, <4 x i8>* %pb
  %wa = sext <4 x i8> %va to <4 x i32>
  %wb = sext <4 x i8> %vb to <4 x i32>
  %p = mul <4 x i32> %wa, %wb
  %s = call i32 @llvm.vector.reduce.add.v4i32(<4 x i32> %p)
  ret i32 %s
}
declare i32 @llvm.vector.reduce.add.v4i32(<4 x i32>)
"""


@pytest.mark.parametrize("name", ["host", *NAMED_TARGETS])
def test_target_emits_an_object_for_its_architecture(name):
    target = get_target(name)
    machine = target.target_machine()
    module = llvm.parse_assembly(MODULE)
    module.triple = target.triple
    module.data_layout = str(machine.target_data)
    module.verify()
    obj = machine.emit_object(module)
    assert obj[:4] == b"\x7fELF"
    assert int.from_bytes(obj[18:20], "little") == ELF_MACHINE[target.arch]


def test_host_detection_matches_llvm():
    host = host_target()
    assert host.is_host and host.cpu == llvm.get_host_cpu_name()
    features = llvm.get_host_cpu_features()
    if features.get("avx512vnni") and features.get("avx512bw"):
        assert host.dot_product is DotProduct.VNNI and host.vector_bits == 512
    elif features.get("avx2"):
        assert host.dot_product is DotProduct.AVX2


def test_named_target_properties():
    assert get_target("aarch64-dotprod").dot_product is DotProduct.SDOT
    assert get_target("x86_64").dot_product is DotProduct.NONE      # baseline: no AVX at all
    assert not get_target("armv7").is_host


def test_unknown_target_is_a_clear_error():
    with pytest.raises(UnsupportedError, match="unknown target 'riscv'"):
        get_target("riscv")

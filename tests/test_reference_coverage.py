"""Every op of the IR has reference semantics (CONST/CONST_SHAPE are values, not kernels)."""
from tosac.ir.ops import SCHEMAS
from tosac.ir.reference.interpreter import _load_kernels
from tosac.ir.reference.registry import KERNELS


def test_every_op_has_a_reference_kernel():
    _load_kernels()
    missing = set(SCHEMAS) - set(KERNELS) - {"CONST", "CONST_SHAPE"}
    assert not missing, f"no reference semantics for {sorted(missing)}"

"""Every op of the IR has its implementations, and the op schema's categories agree with them.

CONST/CONST_SHAPE are values, not kernels. The categories live on the schema
(``tosac.ir.ops``); these tests keep the tables that implement each category
from drifting away from it.
"""
from tosac.ir.ops import FLOAT_MATH_OPS, SCHEMAS, OpCategory, ops_in
import tosac.ir.reference.interpreter  # noqa: F401 (registers the kernels)
from tosac.ir.reference.registry import KERNELS
from tosac.ir.type_support import FLOATS, SAME_TYPE
from tosac.lower.elementwise import ELEMENT_RULES


def test_every_op_has_a_reference_kernel():
    missing = set(SCHEMAS) - set(KERNELS) - ops_in(OpCategory.CONSTANT)
    assert not missing, f"no reference semantics for {sorted(missing)}"


def test_elementwise_ops_are_exactly_the_lowering_element_rules():
    schema_only = ops_in(OpCategory.ELEMENTWISE) - set(ELEMENT_RULES)
    rules_only = set(ELEMENT_RULES) - ops_in(OpCategory.ELEMENTWISE)
    assert not schema_only, f"element-wise in the schema but no element rule: {sorted(schema_only)}"
    assert not rules_only, f"an element rule for ops the schema does not call element-wise: {sorted(rules_only)}"


def test_float_only_agrees_with_the_type_support_tables():
    float_only = {name for name, s in SCHEMAS.items() if s.float_only}
    assert float_only == {name for name, types in SAME_TYPE.items() if set(types) == set(FLOATS)}
    assert FLOAT_MATH_OPS == float_only & ops_in(OpCategory.ELEMENTWISE)


def test_data_operands_lead_and_exclude_parameters():
    for name, s in SCHEMAS.items():
        if s.variadic:
            assert s.data_operands is None, name
            continue
        assert 0 <= s.data_operands <= len(s.operands), name
        assert not set(s.operands[:s.data_operands]) & s.shape_operands, name

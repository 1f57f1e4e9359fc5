"""The operator IR: dtypes, graphs, the op set, builder, verifier, serialisation
and the reference interpreter (the exact semantics)."""
from tosac.ir.dtypes import DType
from tosac.ir.graph import Block, Graph, Op, Tensor, TensorType
from tosac.ir.ops import NanMode, ResizeMode, RoundingMode, SCHEMAS

__all__ = ["DType", "Block", "Graph", "Op", "Tensor", "TensorType",
           "NanMode", "ResizeMode", "RoundingMode", "SCHEMAS"]

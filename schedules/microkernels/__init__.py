"""Int8 dot-product micro-kernels: the code inside the int8 templates' register blocks.

- ``base``: the kinds (an enum; its values are the ``kind`` knob), which a target offers, the register
  budget, LLVM types, the dot product and the accumulators (with the exactness notes);
- ``gemm``: the dense GEMM register block over packed weight panels, with the ``panel`` and ``packed``
  weight formats (schedules/dense.py);
- ``bsr``: positions in lanes with broadcast BSR weights, read at run time or unrolled
  (schedules/sparse.py);
- ``gather``: the BSR family's activation prologue (masked gathers or register transposes).
"""
from tosac.schedules.microkernels.base import (AVX2, SDOT, VNNI, DotKernel, Kind, WeightFormat, kind_for, kinds_for,
                                               register_budget)

__all__ = ["AVX2", "SDOT", "VNNI", "DotKernel", "Kind", "WeightFormat", "kind_for", "kinds_for", "register_budget"]

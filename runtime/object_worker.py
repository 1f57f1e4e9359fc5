"""``python -m tosac.runtime.object_worker``: a helper process compiling LLVM IR (see ``tosac.runtime.workers``)."""
from __future__ import annotations

from tosac.runtime.objects import compile_uncached
from tosac.runtime.workers import serve

if __name__ == "__main__":
    serve(compile_uncached)

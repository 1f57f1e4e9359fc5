"""Placeholder: filled in by the matmul work (see converter.HANDLERS)."""

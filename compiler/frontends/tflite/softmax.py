"""Placeholder: filled in by the softmax work (see converter.HANDLERS)."""

"""Placeholder: filled in by the resize work (see converter.HANDLERS)."""

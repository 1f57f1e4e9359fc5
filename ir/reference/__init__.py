"""Exact numpy semantics of every op: the law every compiled kernel is checked against."""

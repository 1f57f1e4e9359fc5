"""Shipped tuning records, one JSON-lines log per target class (package data ``tosac.tuning_logs``).

``tosac.compile`` uses the log of the target's class by default; see
``tosac.pipeline.tuned_configs``.
"""

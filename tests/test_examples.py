"""The built-in example: builds, verifies, round-trips, and matches the official reference model."""
from __future__ import annotations

import numpy as np

from tosac.conformance.official_model import run_official
from tosac.app.examples import example_int8_net
from tosac.ir.reference.interpreter import run


def test_example_matches_official_reference_model(require_tosa_tools):
    graph = example_int8_net()
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = rng.integers(-128, 128, (1, 16, 16, 8), dtype=np.int8)
        ours = run(graph, {"x": x})
        status, official = run_official(graph, {"x": x})
        assert status == "TOSA_VALID"
        for name in graph.outputs:
            assert official[name].dtype == ours[name].dtype
            assert np.array_equal(official[name], ours[name])


def test_example_output_is_not_degenerate():
    """A demo whose output is constant would prove nothing."""
    graph = example_int8_net()
    rng = np.random.default_rng(5)
    outs = [run(graph, {"x": rng.integers(-128, 128, (1, 16, 16, 8), dtype=np.int8)})[graph.outputs[0]]
            for _ in range(2)]
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) > 3

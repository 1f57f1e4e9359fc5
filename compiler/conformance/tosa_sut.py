"""tosac as a "system under test" for the official TOSA test runner.

``tosa_verif_run_tests --sut-module tosac.conformance.tosa_sut`` imports this
module and calls :class:`TosaSUTRunner` once per test directory. The runner
first runs the official reference model, then us, then compares our output
files with the official compliance checker (EXACT for integer tests).

Outcome mapping: a graph our verifier rejects is TOSA_ERROR (the expected
result of a negative test, and a failure for a positive one); a REQUIRE
failure is TOSA_UNPREDICTABLE; anything else that goes wrong — an unsupported
op, a malformed file, a bug — is OTHER_ERROR and always counts as a failure.

Only importable where `tosa-tools` is installed (the `conformance` extra).
"""
from __future__ import annotations

import traceback

import numpy as np
from runner.tosa_test_runner import TosaTestRunner  # from tosa-tools

from tosac.errors import SerializationError, UnpredictableError, VerificationError


def _runner_options(runner_args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in runner_args if "=" in a)


class TosaSUTRunner(TosaTestRunner):
    """Runs one conformance test directory with tosac."""

    def __init__(self, args, runnerArgs, testDirPath):  # noqa: N803 (the runner's names)
        super().__init__(args, runnerArgs, testDirPath)
        self.target = _runner_options(runnerArgs).get("target", "reference")

    def runTestGraph(self):  # noqa: N802
        from tosac.conformance.execute import run_graph_on_target
        from tosac.ir.serialize import read_tosa
        from tosac.ir.verifier import verify

        desc = self.testDesc
        result = TosaTestRunner.TosaGraphResult
        try:
            graph = read_tosa(self.testDirPath / desc["tosa_file"])
            verify(graph)
        except VerificationError as e:
            return result.TOSA_ERROR, f"rejected by the tosac verifier: {e}"
        except SerializationError as e:
            return result.OTHER_ERROR, f"tosac could not read the file: {e}"
        except Exception as e:  # an unsupported op or a bug: never a pass
            return result.OTHER_ERROR, f"{type(e).__name__}: {e}"
        try:
            inputs = {name: np.load(self.testDirPath / fname)
                      for name, fname in zip(desc["ifm_name"], desc["ifm_file"])}
            outputs = run_graph_on_target(graph, inputs, self.target)
            for name, fname in zip(desc["ofm_name"], desc["ofm_file"]):
                np.save(self.testDirPath / fname, outputs[name])
        except UnpredictableError as e:
            return result.TOSA_UNPREDICTABLE, str(e)
        except Exception as e:
            return result.OTHER_ERROR, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        return result.TOSA_VALID, None

"""The fuzz suite (issue 16): hypothesis-drawn hostile inputs in eight categories — .tosa bytes, .tosa files
changed through the IR, the JSON form, ONNX bytes, ONNX protos changed with onnx.helper, .tflite bytes, tuning logs, CLI
argument lists (tests/fuzz/tosac_fuzz.py has the strategies and the worker).

Every case runs in a worker process (a signal or a hang cannot take pytest down) and must end as a correct
result or a TosacError (the CLI: exit 2 and one error line); a raw traceback, a crash, a hang (timeout) or a
silently wrong result (compiled code != reference interpreter bit for bit, a half-written file) fails the
category's test with the cases and their reproducer folders in the message.

Size: TOSAC_FUZZ_EXAMPLES cases per category (default 80: 640 cases, about 25-45 s);
TOSAC_FUZZ_SEED picks other cases (default 0: every run draws the same ones); TOSAC_FUZZ_TIMEOUT seconds per
case (default 30); TOSAC_FUZZ_REPRO_DIR keeps the reproducers (default: pytest's tmp_path).
``make fuzz`` runs benchmarks/fuzz_table.py: thousands of cases and the table.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))
import tosac_fuzz as fuzz  # noqa: E402

EXAMPLES = int(os.environ.get("TOSAC_FUZZ_EXAMPLES", "80"))
SEED = int(os.environ.get("TOSAC_FUZZ_SEED", "0"))
TIMEOUT = float(os.environ.get("TOSAC_FUZZ_TIMEOUT", "30"))

# Not loaded globally (the other tests keep their own hypothesis settings); no shrinking: a case costs a
# worker round trip, and its reproducer is written as drawn.
settings.register_profile("tosac-fuzz", max_examples=EXAMPLES, deadline=None, database=None,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
PROFILE = settings.get_profile("tosac-fuzz")

# Known defects of code this suite does not own, being fixed elsewhere: (category, family or None, regex on
# the failure's error text, the defect). A failing case that matches one does not fail its test: when only
# such cases fail, the test is an xfail that names the defect and the cases. Remove an entry once its fix
# has landed (the test then passes).
KNOWN: list[tuple[str, str | None, str, str]] = []


def known_defect(case: dict, result: dict) -> str | None:
    for category, family, pattern, defect in KNOWN:
        if case["category"] == category and family in (None, case["family"]) and \
                re.search(pattern, result.get("error") or "", re.S):
            return defect
    return None


@pytest.fixture(scope="module")
def pool():
    p = fuzz.Pool(jobs=1, timeout=TIMEOUT)
    yield p
    p.close()


def _describe(folder: Path, case: dict, result: dict) -> str:
    error = (result.get("error") or "").strip().splitlines()
    tail = "\n      ".join(error[-6:])
    return (f"- {result['outcome'].upper()} [{case['family']}] {case['desc'][:400]}\n"
            f"    stage: {result.get('stage')}; reproducer: {folder}\n      {tail}")


@pytest.mark.parametrize("category", fuzz.CATEGORIES)
def test_fuzz(category: str, pool: fuzz.Pool, tmp_path: Path) -> None:
    rows: list[tuple[dict, dict]] = []

    @seed(SEED)
    @settings(PROFILE)
    @given(fuzz.strategy(category))
    def one(case: fuzz.Case) -> None:
        wire = case.to_wire()
        rows.append((wire, pool.run(wire)))

    one()
    repro = Path(os.environ.get("TOSAC_FUZZ_REPRO_DIR") or tmp_path / "reproducers")
    unknown, known = [], []
    for n, (case, result) in enumerate(rows):
        if result["outcome"] not in fuzz.BAD:
            continue
        folder = fuzz.write_reproducer(repro, n, case, result)
        defect = known_defect(case, result)
        (known if defect else unknown).append((defect, _describe(folder, case, result)))
    counts = fuzz.summarize(rows)[category]
    line = ", ".join(f"{k} {v}" for k, v in counts.items())
    if unknown:
        pytest.fail(f"{category}: {len(unknown)} of {len(rows)} cases failed ({line}):\n"
                    + "\n".join(text for _, text in unknown[:8]), pytrace=False)
    if known:
        defects = sorted({d for d, _ in known})
        pytest.xfail(f"{category}: {len(known)} cases hit known defects {defects} ({line}):\n"
                     + "\n".join(text for _, text in known[:3]))
    assert rows and counts["tried"] == len(rows)
    print(f"{category}: {line}")


def test_harness_sees_every_kind_of_failure() -> None:
    """A signal, a hang, a raw exception, a wrong result and a left temporary are each classified (and the
    worker is replaced after a crash or a hang) without harming this process."""
    actions = {"typed": "typed", "segv": "crash", "raise": "raw", "sleep": "hang", "wrong": "wrong",
               "leftover": "wrong"}
    p = fuzz.Pool(jobs=1, timeout=3)
    try:
        for action, expected in actions.items():
            result = p.run({"category": "selftest", "family": action, "desc": action, "action": action})
            assert result["outcome"] == expected, (action, result)
        assert "SIGSEGV" in p.run({"category": "selftest", "family": "segv", "desc": "", "action": "segv"})["error"]
        assert p.run({"category": "selftest", "family": "typed", "desc": "", "action": "typed"})["outcome"] == "typed"
    finally:
        p.close()

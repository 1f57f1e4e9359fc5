"""The fuzz table (issue 16): hostile inputs per category, run in worker processes; prints per category how many
were tried and how many ended as a typed error, a raw traceback, a crash (signal), a hang (timeout), a silently
wrong result (compiled != reference, or a half-written file) or a correct result, and writes every case of the
last four columns (and raw tracebacks) as a reproducer folder.

    python benchmarks/fuzz_table.py --examples 800 --jobs 2 --out fuzz-failures
    make fuzz                      # the same, with FUZZ_EXAMPLES per category (default 800: 5,600 inputs)

The cases are drawn by hypothesis from the strategies of tests/fuzz/tosac_fuzz.py (the same ones
tests/test_fuzz.py uses, at a larger size); --seed makes a run repeatable.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

import tosac_fuzz as fuzz  # noqa: E402


def draw(category: str, count: int, seed: int) -> list[dict]:
    """``count`` cases of ``category`` drawn by hypothesis (generation only: nothing runs here)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    cases: list[dict] = []

    @hseed(seed)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(fuzz.strategy(category))
    def collect(case):
        cases.append(case.to_wire())

    collect()
    return cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=800, help="cases per category (default 800)")
    p.add_argument("--categories", default=",".join(fuzz.CATEGORIES), help="comma-separated categories")
    p.add_argument("--jobs", "-j", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as hung (default 60)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed of the drawn cases (default 0)")
    p.add_argument("--out", default="fuzz-failures", help="reproducer folder (emptied first; default fuzz-failures)")
    p.add_argument("--json", help="also write the table and the failures as JSON")
    args = p.parse_args(argv)

    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    unknown = sorted(set(categories) - set(fuzz.CATEGORIES))
    if unknown:
        p.error(f"unknown categories {unknown}; choose from {list(fuzz.CATEGORIES)}")
    started = time.monotonic()
    cases = []
    for category in categories:
        drawn = draw(category, args.examples, args.seed)
        print(f"drew {len(drawn)} {category} cases", flush=True)
        cases += drawn
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows, failures = [], []
    pool = fuzz.Pool(jobs=args.jobs, timeout=args.timeout)
    try:
        for n, (case, result) in enumerate(pool.map(cases), 1):
            rows.append((case, result))
            if result["outcome"] in fuzz.BAD:
                folder = fuzz.write_reproducer(out, len(rows), case, result)
                failures.append({"category": case["category"], "family": case["family"],
                                 "outcome": result["outcome"], "folder": str(folder),
                                 "error": (result.get("error") or "")[-300:]})
            if n % 250 == 0:
                print(f"  {n}/{len(cases)} cases, {time.monotonic() - started:.0f} s, "
                      f"{len(failures)} failing", flush=True)
    finally:
        pool.close()
    table = fuzz.summarize(rows)
    table = {c: t for c, t in table.items() if c in categories}
    print()
    print(fuzz.format_table(table))
    print(f"\n{len(rows)} inputs in {time.monotonic() - started:.0f} s; {len(failures)} failing cases "
          f"written to {out}/")
    by_kind: dict[tuple, int] = {}
    for f in failures:
        key = (f["category"], f["family"], f["outcome"])
        by_kind[key] = by_kind.get(key, 0) + 1
    for (cat, fam, outcome), k in sorted(by_kind.items()):
        print(f"  {cat:<14} {fam:<22} {outcome:<6} {k}")
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "failures": failures}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Conformance results: one record per test, and the reports users read.

Every suite prints a per-op table ending in ``N passed, N failed, N skipped``,
and can write JSON and JUnit XML for CI systems.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class CaseResult:
    name: str
    op: str
    negative: bool          # an ERROR_IF test: passing means the graph was rejected
    outcome: str            # "passed" | "failed" | "skipped"
    message: str = ""


def counts(results: list[CaseResult]) -> dict[str, int]:
    return {k: sum(r.outcome == k for r in results) for k in ("passed", "failed", "skipped")}


def summary_line(results: list[CaseResult]) -> str:
    c = counts(results)
    return f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"


def format_table(results: list[CaseResult], show_failures: int = 20) -> str:
    """Per-op table (positive and negative columns), first failures, then the summary line."""
    per_op: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in results:
        kind = "neg" if r.negative else "pos"
        per_op[r.op][f"{kind}_{r.outcome}"] += 1
    rows = [f"{'operator':<24}{'pos pass':>9}{'pos fail':>9}{'neg pass':>9}{'neg fail':>9}{'skipped':>9}"]
    for op in sorted(per_op):
        c = per_op[op]
        rows.append(f"{op:<24}{c['pos_passed']:>9}{c['pos_failed']:>9}{c['neg_passed']:>9}{c['neg_failed']:>9}"
                    f"{c['pos_skipped'] + c['neg_skipped']:>9}")
    failures = [r for r in results if r.outcome == "failed"]
    if failures:
        rows.append("")
        rows.append(f"failures ({len(failures)}):")
        for r in failures[:show_failures]:
            first = r.message.splitlines()[0] if r.message else ""
            rows.append(f"  {r.name}: {first[:160]}")
        if len(failures) > show_failures:
            rows.append(f"  ... and {len(failures) - show_failures} more (see --json)")
    pos = [r for r in results if not r.negative and r.outcome != "skipped"]
    neg = [r for r in results if r.negative and r.outcome != "skipped"]
    rows.append("")
    if pos:
        rows.append(f"positive tests passing: {sum(r.outcome == 'passed' for r in pos)}/{len(pos)} "
                    f"({100.0 * sum(r.outcome == 'passed' for r in pos) / len(pos):.1f}%)")
    if neg:
        rows.append(f"negative tests rejected: {sum(r.outcome == 'passed' for r in neg)}/{len(neg)} "
                    f"({100.0 * sum(r.outcome == 'passed' for r in neg) / len(neg):.1f}%)")
    rows.append(summary_line(results))
    return "\n".join(rows)


def write_json(results: list[CaseResult], path: Path, meta: dict) -> None:
    payload = {"meta": meta, "summary": counts(results), "results": [asdict(r) for r in results]}
    Path(path).write_text(json.dumps(payload, indent=1))


def write_junit(results: list[CaseResult], path: Path, suite_name: str) -> None:
    c = counts(results)
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(results)), failures=str(c["failed"]),
                       skipped=str(c["skipped"]), errors="0")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.{r.op}", name=r.name)
        if r.outcome == "failed":
            ET.SubElement(case, "failure", message=(r.message.splitlines() or [""])[0][:500]).text = r.message
        elif r.outcome == "skipped":
            ET.SubElement(case, "skipped", message=r.message[:500])
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

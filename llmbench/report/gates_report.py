"""The gates' verdict for people and CI: a console table of failures, a markdown summary
(a CI job summary or PR comment: headline leaderboard and gates) and JUnit XML of the gates."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pandas as pd
from rich.table import Table

from llmbench.gates import GateResult
from llmbench.report.leaderboard import rank_text
from llmbench.report.statistics import headline
from llmbench.schema import BenchConfig


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def failure_table(results: Sequence[GateResult]) -> Table:
    """What failed, one row per gate and entrant/task."""
    table = Table(title="Quality gates failed")
    for column in ("gate", "model", "task/metric", "value", "expected", "why"):
        table.add_column(column, overflow="fold", no_wrap=column == "model")
    for result in results:
        if result.failed:
            table.add_row(
                result.gate,
                result.model,
                f"{result.task}/{result.metric}",
                _number(result.value),
                result.expected,
                result.detail,
            )
    return table


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _leaderboard_rows(config: BenchConfig, leaderboard: pd.DataFrame) -> list[list[object]]:
    rows: list[list[object]] = []
    for record in leaderboard.to_dict("records"):
        rows.append(
            [
                rank_text(record.get("rank")),
                f"`{record['model']}`",
                _number(float(record["score"])),
                f"{_number(float(record['score_ci_low']))}–{_number(float(record['score_ci_high']))}",
                *(
                    _number(float(record.get(f"{task.name}/{headline(task).key}", math.nan)))
                    for task in config.tasks
                ),
                f"${float(record.get('cost_usd', 0.0)):.4f}",
                _number(float(record.get("latency_p50_s", math.nan))),
            ]
        )
    return rows


def summary_markdown(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: Sequence[GateResult],
    run_name: str,
    notes: Sequence[str] = (),
) -> str:
    """The run in a few lines of markdown: the verdict, the leaderboard, every gate."""
    failed = [r for r in results if r.failed]
    if not results:
        verdict = "no quality gates were asked for"
    elif failed:
        verdict = f"**{len(failed)} of {len(results)} gate checks failed**"
    else:
        verdict = f"all {len(results)} gate checks passed"
    lines = [f"## llmbench: {run_name}", "", f"{verdict}.", ""]
    header = [
        "rank",
        "model",
        "score",
        f"{config.stats.confidence:.0%} CI",
        *(f"{task.name}/{headline(task).key}" for task in config.tasks),
        "cost",
        "p50 s",
    ]
    lines += _markdown(header, _leaderboard_rows(config, leaderboard))
    if results:
        lines += ["", "### Quality gates", ""]
        rows = [
            [
                {"pass": "✅ pass", "fail": "❌ fail", "skip": "➖ skip"}[r.status],
                r.gate,
                f"`{r.model}`",
                f"{r.task}/{r.metric}",
                _number(r.value),
                r.expected,
                r.detail,
            ]
            for r in sorted(results, key=lambda r: not r.failed)
        ]
        lines += _markdown(["", "gate", "model", "task/metric", "value", "expected", "how"], rows)
    lines += [f"\n{note}" for note in notes]
    return "\n".join(lines) + "\n"


def gates_junit(results: Sequence[GateResult], run_name: str) -> str:
    """JUnit XML: one test case per gate check, a failure element for each that failed."""
    suite = ET.Element(
        "testsuite",
        name=f"llmbench gates: {run_name}",
        tests=str(len(results)),
        failures=str(sum(r.failed for r in results)),
        errors="0",
        skipped=str(sum(r.status == "skip" for r in results)),
    )
    for result in results:
        case = ET.SubElement(
            suite, "testcase", classname=f"llmbench.{result.gate}", name=result.name
        )
        message = f"{_number(result.value)} (expected {result.expected}): {result.detail}"
        if result.failed:
            ET.SubElement(case, "failure", message=message, type=result.gate).text = message
        elif result.status == "skip":
            ET.SubElement(case, "skipped", message=result.detail)
        else:
            ET.SubElement(case, "system-out").text = message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

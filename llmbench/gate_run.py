"""The gates of one finished run: evaluated, then written where CI looks for them.

``summary.md`` (headline leaderboard and gates, for a CI job summary or PR comment) is written
for every run; ``gates.xml`` (JUnit) when a gate was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llmbench.gates import GateResult, Threshold, regression_results, threshold_results
from llmbench.report.gates_report import gates_junit, summary_markdown
from llmbench.schema import BenchConfig
from llmbench.tracking.previous import previous_run

SUMMARY_FILE = "summary.md"
JUNIT_FILE = "gates.xml"


@dataclass(frozen=True)
class GateOutcome:
    results: list[GateResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if r.failed]


def evaluate_gates(
    config: BenchConfig,
    results: pd.DataFrame,
    intervals: pd.DataFrame,
    thresholds: list[Threshold],
    *,
    regression: bool,
    mlflow_run_id: str,
) -> GateOutcome:
    """The thresholds on this run, and, with ``regression``, this run against the previous
    benchmark run of its MLflow experiment (none yet: nothing to regress from, a note)."""
    gates = threshold_results(config, intervals, thresholds)
    notes = []
    if regression:
        assert config.tracking.uri, "load() always resolves the tracking URI"
        baseline = previous_run(config.tracking.uri, config.tracking.experiment, mlflow_run_id)
        if baseline is None:
            notes.append(
                f"--fail-on-regression: no previous run in experiment "
                f"{config.tracking.experiment!r}; this run is the baseline for the next."
            )
        else:
            gates += regression_results(config, results, baseline.results, baseline.run_name)
            notes.append(
                f"--fail-on-regression: compared with run {baseline.run_name} "
                f"(MLflow run {baseline.run_id})."
            )
    return GateOutcome(gates, notes)


def write_gate_files(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    outcome: GateOutcome,
    output_dir: Path,
    run_name: str,
    *,
    asked: bool,
) -> list[Path]:
    """summary.md, and gates.xml when gates were ``asked`` for; returns the files written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = output_dir / SUMMARY_FILE
    summary.write_text(
        summary_markdown(config, leaderboard, outcome.results, run_name, outcome.notes),
        encoding="utf-8",
    )
    if not asked:
        return [summary]
    junit = output_dir / JUNIT_FILE
    junit.write_text(gates_junit(outcome.results, run_name), encoding="utf-8")
    return [summary, junit]

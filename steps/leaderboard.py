"""Step: gather every task's scored rows into the leaderboard, its statistics and one
results table, and draw the report's plots. ``baselines``: the same-spend baselines' scored
rows, read by the statistics only (they are not entrants).

The plots are drawn here, not in the report step, because they depend on nothing that
changes between unchanged runs (the report page shows the run's name): a fully cached
re-run takes them from this step's cache instead of drawing them again (~0.7 s of CPU)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench.report import statistics
from llmbench.report.html import report_figures
from llmbench.report.leaderboard import build_leaderboard
from llmbench.schema import BenchConfig


# No step logs: a pure step logs nothing of its own, and ZenML writes a log record and file
# for every step on every run, cached or not (docs/architecture.md).
@step(enable_step_logs=False)
def leaderboard(
    config: dict[str, Any],
    results: list[pd.DataFrame],
    aggregates: list[pd.DataFrame],
    verdicts: list[pd.DataFrame],
    baselines: list[pd.DataFrame],
) -> tuple[
    Annotated[pd.DataFrame, "leaderboard"],
    Annotated[pd.DataFrame, "all_results"],
    Annotated[pd.DataFrame, "statistics"],
    Annotated[dict[str, bytes], "figures"],
]:
    bench = BenchConfig.model_validate(config)
    all_results = pd.concat(results, ignore_index=True)
    all_aggregates = pd.concat(aggregates, ignore_index=True)
    same_spend = pd.concat(baselines, ignore_index=True) if baselines else all_results.iloc[:0]
    report = statistics.build_report(
        bench, all_results, statistics.concat_verdicts(verdicts), same_spend
    )
    board = build_leaderboard(bench, all_results, all_aggregates, report.intervals)
    figures = report_figures(bench, board, all_results, report)
    # ZenML reads the output count from a literal tuple in the return statement.
    return board, all_results, report.to_frame(), figures

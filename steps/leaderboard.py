"""Step: gather every (model, task) result into the leaderboard, its statistics and one
results table. ``baselines``: the same-spend baselines' scored rows, read by the statistics
only (they are not entrants)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench.report import statistics
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
]:
    bench = BenchConfig.model_validate(config)
    all_results = pd.concat(results, ignore_index=True)
    all_aggregates = pd.concat(aggregates, ignore_index=True)
    same_spend = pd.concat(baselines, ignore_index=True) if baselines else all_results.iloc[:0]
    report = statistics.build_report(
        bench, all_results, statistics.concat_verdicts(verdicts), same_spend
    )
    board = build_leaderboard(bench, all_results, all_aggregates, report.intervals)
    return board, all_results, report.to_frame()

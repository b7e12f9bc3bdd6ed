"""Step: the run's report.html as a ZenML HTMLString, the run's visualization in the
dashboard, with the plots the leaderboard step drew (cached with it) inlined.

The page is rendered here only: the track step logs it to MLflow and run.py writes it to
the output folder, so a run renders its report once.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from llmbench.report.html import render_report
from llmbench.report.statistics import Report
from llmbench.schema import BenchConfig


# No step logs: a pure step logs nothing of its own, and ZenML writes a log record and file
# for every step on every run, cached or not (docs/architecture.md).
@step(enable_step_logs=False)
def report(
    config: dict[str, Any],
    leaderboard: pd.DataFrame,
    all_results: pd.DataFrame,
    statistics: pd.DataFrame,
    figures: dict[str, bytes],
    run_name: str,
) -> Annotated[HTMLString, "report"]:
    bench = BenchConfig.model_validate(config)
    tables = Report.from_frame(statistics)
    page = render_report(
        bench, leaderboard, all_results, tables, run_name=run_name, figures=figures
    )
    return HTMLString(page)

"""Step: the run's report.html as a ZenML HTMLString, the run's visualization in the
dashboard, and its plots as PNG files.

The page is rendered and the plots drawn here only: the track step logs these to MLflow
and run.py writes the page to the output folder, so a run renders its report once.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from llmbench.report.html import render_report, report_figures
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
    run_name: str,
) -> tuple[Annotated[HTMLString, "report"], Annotated[dict[str, bytes], "figures"]]:
    bench = BenchConfig.model_validate(config)
    tables = Report.from_frame(statistics)
    figures = report_figures(bench, leaderboard, all_results, tables)
    page = render_report(
        bench, leaderboard, all_results, tables, run_name=run_name, figures=figures
    )
    # ZenML reads the output count from a literal tuple in the return statement.
    return HTMLString(page), figures

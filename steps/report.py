"""Step: the run's report.html as a ZenML HTMLString, the run's visualization in the
dashboard."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from llmbench.report.html import render_report
from llmbench.report.statistics import Report
from llmbench.schema import BenchConfig


@step
def report(
    config: dict[str, Any],
    leaderboard: pd.DataFrame,
    all_results: pd.DataFrame,
    statistics: pd.DataFrame,
    run_name: str,
) -> Annotated[HTMLString, "report"]:
    page = render_report(
        BenchConfig.model_validate(config),
        leaderboard,
        all_results,
        Report.from_frame(statistics),
        run_name=run_name,
    )
    return HTMLString(page)

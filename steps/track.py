"""Step: log the finished benchmark to MLflow, once, at the end of the run.

Never cached (every run is logged) and the only step bound to the MLflow experiment
tracker: ZenML's tracker is not safe with steps running in parallel.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, step

from llmbench.report.statistics import Report
from llmbench.schema import BenchConfig
from llmbench.tracking.mlflow_log import log_benchmark


# True: the active stack's MLflow tracker (llmbench-mlflow locally, the stack's own elsewhere).
@step(enable_cache=False, experiment_tracker=True)
def track(
    config: dict[str, Any],
    leaderboard: pd.DataFrame,
    all_results: pd.DataFrame,
    statistics: pd.DataFrame,
    run_name: str,
) -> Annotated[str, "mlflow_run_id"]:
    context = get_step_context()
    return log_benchmark(
        BenchConfig.model_validate(config),
        leaderboard,
        all_results,
        run_name=run_name,
        report=Report.from_frame(statistics),
        extra_params={"zenml_run_id": str(context.pipeline_run.id)},
    )

"""Step: log the finished benchmark to MLflow, once, at the end of the run.

Never cached (every run is logged) and the only step bound to the MLflow experiment
tracker: ZenML's tracker is not safe with steps running in parallel. The MLflow runs are
timed from the pipeline run's start (each model's run until its last generation step
ended), and the ZenML run gets the headline, the cost and a link to the MLflow run. It runs
after the report step, whose page and plots it logs.
"""

from __future__ import annotations

from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.metadata.metadata_types import Uri
from zenml.types import HTMLString

from llmbench.report.statistics import Report
from llmbench.schema import BenchConfig
from llmbench.tracking.mlflow_log import log_benchmark
from llmbench.tracking.run_summary import epoch_ms, mlflow_run_url, run_summary


# True: the active stack's MLflow tracker (llmbench-mlflow locally, the stack's own elsewhere).
@step(enable_cache=False, experiment_tracker=True)
def track(
    config: dict[str, Any],
    leaderboard: pd.DataFrame,
    all_results: pd.DataFrame,
    statistics: pd.DataFrame,
    page: HTMLString,
    figures: dict[str, bytes],
    run_name: str,
) -> Annotated[str, "mlflow_run_id"]:
    """``page``: the report step's, ``figures``: the leaderboard step's, logged as they are
    (never drawn again)."""
    context = get_step_context()
    bench = BenchConfig.model_validate(config)
    run = context.pipeline_run
    started = run.start_time
    run_id = log_benchmark(
        bench,
        leaderboard,
        all_results,
        run_name=run_name,
        report=Report.from_frame(statistics),
        extra_params={"zenml_run_id": str(run.id)},
        started_at_ms=epoch_ms(started) if started is not None else None,
        entrant_windows=generation_windows(bench, run.steps),
        page=str(page),
        figures=figures,
    )

    tracked = mlflow.MlflowClient().get_run(run_id)
    url = mlflow_run_url(mlflow.get_tracking_uri(), tracked.info.experiment_id, run_id)
    log_metadata(
        metadata={**run_summary(bench, leaderboard, all_results), "mlflow_run": Uri(url)},
        run_id_name_or_prefix=run.id,
    )
    return run_id


def generation_windows(bench: BenchConfig, steps: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Each entrant's first generation start and last end, from its finished steps."""
    windows: dict[str, tuple[int, int]] = {}
    for entrant in bench.entrants:
        prefixes = (f"generate__{entrant.name}__", f"answer__{entrant.name}__")
        times = [
            (epoch_ms(s.start_time), epoch_ms(s.end_time))
            for name, s in steps.items()
            if name.startswith(prefixes) and s.start_time and s.end_time
        ]
        if times:
            windows[entrant.name] = (min(t[0] for t in times), max(t[1] for t in times))
    return windows

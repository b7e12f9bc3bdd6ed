"""Run the benchmark pipeline on the local stack and collect what it produced."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from zenml.enums import ExecutionStatus

from llmbench.config import BenchConfig
from llmbench.tracking.mlflow_log import ensure_experiment
from pipelines.benchmark import benchmark
from pipelines.stack import ensure_local_stack


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    run_name: str
    leaderboard: pd.DataFrame
    results: pd.DataFrame
    mlflow_run_id: str
    generations: int
    generations_cached: int


def run_benchmark(
    config: BenchConfig, fingerprints: dict[str, str], run_name: str, *, use_cache: bool = True
) -> RunOutcome:
    ensure_local_stack(config.tracking.uri or "")
    ensure_experiment(config)
    pipeline = benchmark.with_options(run_name=run_name, enable_cache=use_cache)
    run = pipeline(
        config=config.model_dump(mode="json"), fingerprints=fingerprints, run_name=run_name
    )
    assert run is not None
    steps = run.steps
    generations = [s for name, s in steps.items() if name.startswith("generate__")]
    board_step = steps["leaderboard"]
    return RunOutcome(
        run_id=str(run.id),
        run_name=run.name,
        leaderboard=board_step.outputs["leaderboard"][0].load(),
        results=board_step.outputs["all_results"][0].load(),
        mlflow_run_id=str(steps["track"].outputs["mlflow_run_id"][0].load()),
        generations=len(generations),
        generations_cached=sum(s.status == ExecutionStatus.CACHED for s in generations),
    )

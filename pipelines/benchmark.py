"""The benchmark pipeline: load -> generate per (model, task) -> score -> leaderboard -> MLflow.

A dynamic pipeline: every (model, task) generation is submitted at once and runs in its own
thread, so models on different backends run concurrently. Each step has a stable id
(``generate__<model>__<task>``) and the model spec is a step parameter, so adding a model to
the config runs only that model's steps; everything else is a cache hit.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from llmbench.config import BenchConfig
from llmbench.runtime.runner import request_params
from steps.generate import generate
from steps.leaderboard import leaderboard
from steps.load_task import load_task
from steps.score import score
from steps.track import track


@pipeline(dynamic=True, enable_cache=True)
def benchmark(
    config: dict[str, Any], fingerprints: dict[str, str], run_name: str, refresh: bool = False
) -> None:
    bench = BenchConfig.model_validate(config)
    limit = bench.execution.limit
    samples = {
        task.name: load_task.submit(
            task=task.sample_spec().model_dump(mode="json"),
            limit=limit,
            data_fingerprint=fingerprints[task.name],
            id=f"load__{task.name}",
        )
        for task in bench.tasks
    }
    results, aggregates = [], []
    for model in bench.models:
        assert model.price is not None
        for task in bench.tasks:
            params = request_params(model, task, bench.execution.seed)
            completions = generate.with_options(
                extra={
                    "concurrency": bench.execution.concurrency,
                    "price": model.price.model_dump(mode="json"),
                    "limits": model.limits.model_dump(mode="json", exclude_none=True),
                    "retries": bench.execution.retries.model_dump(mode="json"),
                    "response_cache": bench.execution.response_cache,
                    "cache_dir": bench.execution.cache_dir,
                    "refresh": refresh,
                    "run": run_name,
                    "max_cost_usd": bench.execution.max_cost_usd,
                    "max_error_rate": bench.execution.max_error_rate,
                },
                # A secret's keys become environment variables during this step only.
                secrets=[model.secret] if model.secret else None,
            ).submit(
                samples=samples[task.name],
                model=model.generation_identity(),
                params=params.model_dump(mode="json"),
                label=f"{model.name} / {task.name}",
                id=f"generate__{model.name}__{task.name}",
            )
            scored = score.submit(
                samples=samples[task.name],
                completions=completions,
                model=model.model_dump(mode="json"),
                task=task.model_dump(mode="json"),
                id=f"score__{model.name}__{task.name}",
            )
            results.append(scored.get_artifact("results"))
            aggregates.append(scored.get_artifact("aggregates"))
    board = leaderboard.submit(
        config=config, results=results, aggregates=aggregates, id="leaderboard"
    )
    track.with_options(
        settings={"experiment_tracker": {"experiment_name": bench.tracking.experiment}}
    ).submit(
        config=config,
        leaderboard=board.get_artifact("leaderboard"),
        all_results=board.get_artifact("all_results"),
        run_name=run_name,
        id="track",
    )

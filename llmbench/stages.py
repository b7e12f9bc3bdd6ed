"""The stages of a benchmark run as plain functions over DataFrames.

ZenML steps (``steps/``) are one-line wrappers around these, so the whole flow can also be
run and tested without ZenML.
"""

from __future__ import annotations

import pandas as pd

from llmbench.config import ModelSpec, SampleSpec, TaskSpec
from llmbench.report.leaderboard import RESULT_COLUMNS
from llmbench.runtime import runner
from llmbench.scoring.score import score_completions
from llmbench.tables import (
    completions_to_frame,
    frame_to_completions,
    frame_to_samples,
    samples_to_frame,
)
from llmbench.tasks.build import build_samples
from llmbench.types import GenerationParams


def load_task(task: SampleSpec, limit: int | None) -> pd.DataFrame:
    return samples_to_frame(build_samples(task, limit))


def generate(
    model: ModelSpec,
    samples: pd.DataFrame,
    params: GenerationParams,
    *,
    settings: runner.RunSettings,
    label: str,
) -> pd.DataFrame:
    items = frame_to_samples(samples)
    completions = runner.generate(model, items, params, settings=settings, label=label)
    return completions_to_frame([s.sample_id for s in items], completions)


def score(
    model: ModelSpec, task: TaskSpec, samples: pd.DataFrame, completions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sample result rows, aggregate rows) for one model on one task.

    Cost is recomputed here from the price in force, so a price change rescoring a cached
    generation still reports tokens x the snapshotted price.
    """
    items = frame_to_samples(samples)
    priced = [runner.price_completion(c, model.price) for c in frame_to_completions(completions)]  # type: ignore[arg-type]
    scores, aggregates = score_completions(task, items, priced)
    generated = completions_to_frame([s.sample_id for s in items], priced)
    results = samples.drop(columns=["choices"]).merge(generated, on="sample_id", validate="1:1")
    results = results.rename(columns={"text": "output"}).merge(
        scores, on="sample_id", validate="1:1"
    )
    results.insert(0, "task", task.name)
    results.insert(0, "model", model.name)
    score_columns = [c for c in results.columns if c.startswith("score.")]
    aggregates.insert(0, "task", task.name)
    aggregates.insert(0, "model", model.name)
    return results[RESULT_COLUMNS + score_columns], aggregates

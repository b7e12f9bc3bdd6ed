"""Step: one model over one task's samples. Cached per (model, params, samples)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, step

from llmbench import stages
from llmbench.config import ModelSpec
from llmbench.runtime.budget import budget_for
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, open_cache
from llmbench.types import GenerationParams


@step
def generate(
    samples: pd.DataFrame, model: dict[str, Any], params: dict[str, Any], label: str
) -> Annotated[pd.DataFrame, "completions"]:
    """``model`` holds only what shapes the outputs (no price): a price change re-scores,
    it never regenerates. How requests are sent (concurrency, retries, response cache,
    the price for the live spend figure) arrives through the step's ``extra`` settings,
    which are not part of ZenML's cache key."""
    extra = get_step_context().step_run.config.extra
    spec = ModelSpec.model_validate(
        {**model, "price": extra["price"], "limits": extra.get("limits") or {}}
    )
    settings = RunSettings(
        concurrency=int(extra["concurrency"]),
        retries=RetryPolicy.model_validate(extra["retries"]),
        # ZenML drops None values from `extra`: absent means "default".
        cache=open_cache(bool(extra.get("response_cache", True)), extra.get("cache_dir")),
        refresh=bool(extra.get("refresh", False)),
        budget=budget_for(extra["run"], float(extra["max_cost_usd"]))
        if extra.get("max_cost_usd")
        else None,
        max_error_rate=extra.get("max_error_rate"),
    )
    try:
        return stages.generate(
            spec, samples, GenerationParams.model_validate(params), settings=settings, label=label
        )
    finally:
        if settings.cache is not None:
            settings.cache.close()

"""Step: one model over one task's samples. Cached per (model, params, samples)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, step

from llmbench import stages
from llmbench.config import ModelSpec, PriceEntry
from llmbench.types import GenerationParams


@step
def generate(
    samples: pd.DataFrame, model: dict[str, Any], params: dict[str, Any], label: str
) -> Annotated[pd.DataFrame, "completions"]:
    """``model`` holds only what shapes the outputs (no price): a price change re-scores,
    it never regenerates. Concurrency and the price used for the live spend figure arrive
    through the step's ``extra`` settings, which are not part of the cache key."""
    extra = get_step_context().step_run.config.extra
    spec = ModelSpec.model_validate({**model, "price": PriceEntry.model_validate(extra["price"])})
    return stages.generate(
        spec,
        samples,
        GenerationParams.model_validate(params),
        concurrency=int(extra["concurrency"]),
        label=label,
    )

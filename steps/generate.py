"""Step: one model over one task's samples. Cached per (model, params, samples)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, step

from llmbench import stages
from llmbench.types import GenerationParams
from steps.settings import run_settings, spec_with_extra


@step
def generate(
    samples: pd.DataFrame,
    model: dict[str, Any],
    params: dict[str, Any],
    label: str,
    data_fingerprint: str | None = None,
) -> Annotated[pd.DataFrame, "completions"]:
    """``model`` holds only what shapes the outputs (no price): a price change re-scores,
    it never regenerates. How requests are sent arrives through the step's ``extra``
    settings (:mod:`steps.settings`). ``data_fingerprint`` changes when a file of
    recorded outputs changes."""
    extra = get_step_context().step_run.config.extra
    settings = run_settings(extra)
    try:
        return stages.generate(
            spec_with_extra(model, extra),
            samples,
            GenerationParams.model_validate(params),
            settings=settings,
            label=label,
        )
    finally:
        if settings.cache is not None:
            settings.cache.close()

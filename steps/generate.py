"""Step: one model over one task's samples. Cached per (model, params, samples)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.types import GenerationParams
from steps.settings import spec_with_extra, step_requests


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
    settings (:mod:`steps.settings`). ``data_fingerprint`` (the provider's
    :meth:`~llmbench.providers.base.Provider.fingerprint`) changes when a file of recorded
    outputs, or a local engine's defaults or build, changes."""
    with step_requests() as (extra, settings):
        return stages.generate(
            spec_with_extra(model, extra),
            samples,
            GenerationParams.model_validate(params),
            settings=settings,
            label=label,
        )

"""Step: a strategy's same-spend baseline on one task (its best member, drawn as often as
the strategy's spend allows), chosen from the scored rows of the strategy and its members.

Its inputs are those scored rows, so it re-runs when they change and is a ZenML cache hit
when they do not; the draws it sends go through the response cache like any member call.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.schema import ModelSpec, TaskSpec
from steps.settings import step_requests


@step
def same_spend(
    samples: pd.DataFrame,
    strategy_results: pd.DataFrame,
    member_results: list[pd.DataFrame],
    strategy: str,
    members: list[dict[str, Any]],
    task: dict[str, Any],
    seed: int,
    label: str,
) -> Annotated[pd.DataFrame, "completions"]:
    """``members``: each model member's generation identity, in the order of
    ``member_results``; their prices and limits come from the step's ``extra``."""
    with step_requests() as (extra, settings):
        models = {
            str(m["name"]): ModelSpec.model_validate({**m, **extra["models"][m["name"]]})
            for m in members
        }
        return stages.same_spend(
            strategy,
            TaskSpec.model_validate(task),
            samples,
            strategy_results,
            dict(zip(models, member_results, strict=True)),
            models,
            seed=seed,
            settings=settings,
            label=label,
        )

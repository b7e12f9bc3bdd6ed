"""Step: a strategy's same-spend baseline on one task (its best member, drawn as often as
the strategy's spend allows), chosen from the task's scored rows of the strategy and its
members, and scored in this step (a step fewer per baseline than scoring it apart).

Its input is the task's scored rows, so it re-runs when they change and is a ZenML cache
hit when they do not; the draws it sends go through the response cache like any member
call, so a re-run after an unrelated entrant's rows changed sends nothing new.
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
    scored: pd.DataFrame,
    strategy: str,
    members: list[dict[str, Any]],
    task: dict[str, Any],
    seed: int,
    label: str,
    prices: dict[str, dict[str, Any]],
) -> Annotated[pd.DataFrame, "results"]:
    """``members``: each model member's generation identity; their limits come from the
    step's ``extra``, their prices from ``prices`` (a parameter, so a price change
    re-scores the baseline)."""
    with step_requests() as (extra, settings):
        models = {}
        for member in members:
            name, sent = str(member["name"]), extra["models"][member["name"]]
            price = prices.get(name, sent["price"])
            models[name] = ModelSpec.model_validate({**member, **sent, "price": price})
        return stages.score_same_spend(
            strategy,
            TaskSpec.model_validate(task),
            samples,
            scored,
            models,
            seed=seed,
            settings=settings,
            label=label,
        )

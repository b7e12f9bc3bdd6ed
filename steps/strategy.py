"""Step: a strategy (router, cascade ...) answering one task's samples through its members.

Cached on the strategy's identity, which holds every member's generation identity: change a
member and the strategy re-runs; change nothing and it is a cache hit. It runs after its
members' own generation steps, so a member call its own row already made is a
response-cache hit. Prices and limits travel in ``extra`` (outside the cache key).
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.strategies.base import TaskView
from steps.settings import step_requests


@step
def answer(
    samples: pd.DataFrame,
    strategy: dict[str, Any],
    task: dict[str, Any],
    seed: int,
    label: str,
    data_fingerprints: dict[str, str] | None = None,
) -> Annotated[pd.DataFrame, "completions"]:
    """``data_fingerprints``: what besides their specs decides the members' answers (a
    recorded file, a local engine's defaults and build), part of the cache key only."""
    with step_requests() as (extra, settings):
        return stages.answer(
            strategy,
            extra["models"],
            TaskView.model_validate(task),
            samples,
            seed=seed,
            settings=settings,
            label=label,
        )

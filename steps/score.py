"""Step: extract answers, compute metrics, join judge verdicts and cost for one model on
one task."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.config import ModelSpec, PriceEntry, TaskSpec


@step
def score(
    samples: pd.DataFrame,
    completions: pd.DataFrame,
    judgments: list[pd.DataFrame],
    human_labels: dict[str, Any] | None,
    judge_prices: dict[str, dict[str, Any]],
    model: dict[str, Any],
    task: dict[str, Any],
) -> tuple[Annotated[pd.DataFrame, "results"], Annotated[pd.DataFrame, "aggregates"]]:
    # ZenML reads the output count from a literal tuple in the return statement.
    results, aggregates = stages.score(
        ModelSpec.model_validate(model),
        TaskSpec.model_validate(task),
        samples,
        completions,
        judgments,
        human_labels,
        {name: PriceEntry.model_validate(price) for name, price in judge_prices.items()},
    )
    return results, aggregates

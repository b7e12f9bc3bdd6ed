"""Step: extract answers, compute metrics, join judge verdicts and cost for one model or
strategy on one task."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.schema import PriceEntry, TaskSpec


@step
def score(
    samples: pd.DataFrame,
    completions: pd.DataFrame,
    judgments: list[pd.DataFrame],
    human_labels: dict[str, Any] | None,
    judge_prices: dict[str, dict[str, Any]],
    model: str,
    prices: dict[str, dict[str, Any]],
    task: dict[str, Any],
) -> tuple[Annotated[pd.DataFrame, "results"], Annotated[pd.DataFrame, "aggregates"]]:
    """``prices``: the entrant's own price, or each member model's for a strategy; a price
    change re-prices here without regenerating."""
    # ZenML reads the output count from a literal tuple in the return statement.
    results, aggregates = stages.score(
        model,
        TaskSpec.model_validate(task),
        samples,
        completions,
        judgments,
        human_labels,
        {name: PriceEntry.model_validate(price) for name, price in judge_prices.items()},
        prices={name: PriceEntry.model_validate(price) for name, price in prices.items()},
    )
    return results, aggregates

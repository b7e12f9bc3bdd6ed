"""Step: extract answers, compute metrics, join judge verdicts and cost for every model and
strategy on one task (one step per task: ZenML's own work per step outweighs scoring)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.schema import PriceEntry, TaskSpec


# No step logs: a pure step logs nothing of its own, and ZenML writes a log record and file
# for every step on every run, cached or not (docs/architecture.md).
@step(enable_step_logs=False)
def score(
    samples: pd.DataFrame,
    completions: list[pd.DataFrame],
    judgments: list[pd.DataFrame],
    human_labels: dict[str, dict[str, Any]] | None,
    judge_prices: dict[str, dict[str, Any]],
    entrants: list[str],
    judged: dict[str, list[int]],
    prices: dict[str, dict[str, dict[str, Any]]],
    task: dict[str, Any],
) -> tuple[Annotated[pd.DataFrame, "results"], Annotated[pd.DataFrame, "aggregates"]]:
    """``completions``: each entrant's answers, in the order of ``entrants``; ``judged``:
    each entrant's positions in ``judgments`` (a pairwise verdict serves two entrants);
    ``prices``: each entrant's own price, or its member models' for a strategy, so a price
    change re-prices here without regenerating."""
    # ZenML reads the output count from a literal tuple in the return statement.
    results, aggregates = stages.score_task(
        TaskSpec.model_validate(task),
        samples,
        dict(zip(entrants, completions, strict=True)),
        {name: [judgments[n] for n in judged.get(name, [])] for name in entrants},
        human_labels,
        {name: PriceEntry.model_validate(price) for name, price in judge_prices.items()},
        prices={
            name: {model: PriceEntry.model_validate(p) for model, p in mine.items()}
            for name, mine in prices.items()
        },
    )
    return results, aggregates

"""Step: gather every (model, task) result into the leaderboard and one results table."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench.config import BenchConfig
from llmbench.report.leaderboard import build_leaderboard


@step
def leaderboard(
    config: dict[str, Any], results: list[pd.DataFrame], aggregates: list[pd.DataFrame]
) -> tuple[Annotated[pd.DataFrame, "leaderboard"], Annotated[pd.DataFrame, "all_results"]]:
    all_results = pd.concat(results, ignore_index=True)
    all_aggregates = pd.concat(aggregates, ignore_index=True)
    board = build_leaderboard(BenchConfig.model_validate(config), all_results, all_aggregates)
    return board, all_results

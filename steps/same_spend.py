"""Step: the same-spend baselines of one task's multi-step strategies (each one's best
member, drawn as often as the strategy's spend allows), chosen from the task's scored rows
of each strategy and its members, and scored in this step: one step per task, as the task
is scored in one (ZenML's own work per step outweighs what a step here does when cached).

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
    strategies: dict[str, list[dict[str, Any]]],
    task: dict[str, Any],
    seed: int,
    prices: dict[str, dict[str, Any]],
    judges: list[dict[str, Any]] | None = None,
    judge_prices: dict[str, dict[str, Any]] | None = None,
    judge_fingerprints: dict[str, str | None] | None = None,
    judge_prompt: str | None = None,
    parser_version: int | None = None,
    relevance_template: str | None = None,
    select_prompt: str | None = None,
) -> Annotated[pd.DataFrame, "results"]:
    """``strategies``: each strategy's model members' generation identities; their limits
    come from the step's ``extra``, their prices from ``prices`` (a parameter, so a price
    change re-scores the baselines). On a judged task, ``judges``: the panel's generation
    identities, priced at ``judge_prices``, which grade the baselines; the judges'
    fingerprints, the judge prompt's text, the verdict parser's version, the relevance
    prompt's text and the USC selection prompt's text are part of the cache key only (the
    task's spec says how to grade; the selection prompt is read from its file)."""
    with step_requests() as (extra, settings):

        def spec(member: dict[str, Any], priced: dict[str, dict[str, Any]]) -> ModelSpec:
            name, sent = str(member["name"]), extra["models"][member["name"]]
            price = priced.get(name, sent["price"])
            return ModelSpec.model_validate({**member, **sent, "price": price})

        return stages.score_same_spend(
            TaskSpec.model_validate(task),
            samples,
            scored,
            {
                name: {m["name"]: spec(m, prices) for m in members}
                for name, members in strategies.items()
            },
            seed=seed,
            settings=settings,
            judges={j["name"]: spec(j, judge_prices or {}) for j in judges or []},
        )

"""The same-spend baseline: which member, how many draws of it, and the paired tests that
say what a strategy buys against that member as it is and paid as much."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

from llmbench.config import BenchConfig
from llmbench.report.same_spend import (
    DRAW_TEMPERATURE,
    Baseline,
    baseline_of,
    choose,
    draws_for,
    needs_baseline,
    same_spend_table,
)

PRICE = {"input_per_1m": 1.0, "output_per_1m": 1.0, "source": "t", "date": "d"}
CASCADE = {"name": "cascade", "kind": "cascade", "members": {"first": "cheap", "then": "strong"}}


def _config(*strategies: dict[str, object], strong_temperature: float = 0.0) -> BenchConfig:
    return BenchConfig.model_validate(
        {
            "models": [
                {"name": "cheap", "provider": "openai", "model": "c", "price": PRICE},
                {
                    "name": "strong",
                    "provider": "openai",
                    "model": "s",
                    "price": PRICE,
                    "params": {"temperature": strong_temperature},
                },
            ],
            "strategies": list(strategies) or [CASCADE],
            "tasks": [
                {
                    "name": "t",
                    "source": {"path": "x.jsonl"},
                    "template": "{{ q }}",
                    "target": "a",
                    "metrics": ["exact_match"],
                }
            ],
            "stats": {"resamples": 200},
        }
    )


def _rows(name: str, right: list[int], cost: float, calls: int = 1) -> list[dict[str, Any]]:
    trace = json.dumps([{"model": "cheap", "cost_usd": cost / calls}] * calls)
    return [
        {
            "model": name,
            "task": "t",
            "sample_id": str(i),
            "score.exact_match": float(r),
            "cost_usd": cost,
            "trace": trace,
        }
        for i, r in enumerate(right)
    ]


def test_draws_match_the_strategys_spend() -> None:
    assert draws_for(2.8, 1.0, 3) == 3
    assert draws_for(2.5, 1.0, 3) == 2  # a tie: the smaller n
    assert draws_for(0.2, 1.0, 3) == 1  # cheaper than one call: the member alone
    assert draws_for(1000.0, 1.0, 3) == 64  # no more draws than a vote takes
    assert draws_for(0.0, 0.0, 2.6) == 3  # unpriced: matched by model calls


def test_which_strategies_get_a_baseline() -> None:
    config = _config(
        CASCADE,
        {
            "name": "sc",
            "kind": "vote",
            "members": {"a": "strong"},
            "options": {"samples": 3, "temperature": 0.7},
        },
        {
            "name": "pick",
            "kind": "router",
            "members": {"only": "strong"},
            "options": {"default": "only"},
        },
    )
    cascade, sc, pick = config.strategies
    assert needs_baseline(cascade)
    assert not needs_baseline(sc)  # self-consistency already
    assert not needs_baseline(pick)  # one call an item


@pytest.mark.parametrize(("temperature", "expected"), [(0.0, DRAW_TEMPERATURE), (0.4, None)])
def test_the_best_member_drawn_at_the_strategys_cost(
    temperature: float, expected: float | None
) -> None:
    config = _config(strong_temperature=temperature)
    results = pd.DataFrame(
        _rows("cheap", [0, 0, 0, 0, 1, 0], 1.0)
        + _rows("strong", [1, 1, 0, 0, 0, 0], 1.0)
        + _rows("cascade", [1, 1, 1, 1, 1, 1], 2.1, calls=2)
    )
    chosen = baseline_of(config, config.strategies[0], config.tasks[0], results)
    # strong scores 2/6, cheap 1/6; the cascade costs 2.1 a strong call's 1.0: two draws,
    # sampled at the member's own temperature, or at the draws' default if it is greedy.
    assert chosen == Baseline("cascade", "t", "strong", 2, expected)
    assert chosen.label == "strong x2 votes" and chosen.name == "cascade.same-spend"
    spec = chosen.spec()
    assert spec.kind == "vote" and spec.options["samples"] == 2
    assert spec.options.get("temperature") == expected


def test_a_recorded_member_is_drawn_once() -> None:
    config = _config()
    rows = pd.DataFrame(_rows("cascade", [1, 1], 3.0, calls=2))
    members = {"strong": pd.DataFrame(_rows("strong", [1, 0], 1.0))}
    assert choose("cascade", config.tasks[0], rows, members, {"strong": 0.0}).draws == 3
    replayed = choose("cascade", config.tasks[0], rows, members, {"strong": 0.0}, {"strong"})
    assert replayed == Baseline("cascade", "t", "strong", 1, None)  # its one answer


def test_the_strategy_against_its_best_member_and_the_same_spend_baseline() -> None:
    config = _config()
    results = pd.DataFrame(
        _rows("cheap", [0, 0, 0, 0, 0, 0], 1.0)
        + _rows("strong", [1, 1, 0, 0, 0, 0], 1.0)
        + _rows("cascade", [1, 1, 1, 1, 1, 1], 2.0, calls=2)
    )
    baselines = pd.DataFrame(_rows("cascade.same-spend", [1, 1, 1, 1, 1, 0], 2.0, calls=2))
    [row] = same_spend_table(config, results, baselines).to_dict("records")
    assert row["best_member"] == "strong" and row["draws"] == 2
    assert row["vs_member"] == pytest.approx(4 / 6)
    assert row["vs_member_p"] == pytest.approx(0.125)  # McNemar: 4 discordant pairs, all one way
    assert row["cost_ratio"] == pytest.approx(2.0)
    assert row["baseline"] == "strong x2 votes"
    assert row["vs_baseline"] == pytest.approx(1 / 6)
    assert row["vs_baseline_p"] == pytest.approx(1.0)
    assert row["method"] == "mcnemar" and row["n"] == 6
    assert row["summary"] == (
        "cascade on t: +66.7 points over strong for 2.0x the cost (p = 0.12); "
        "+16.7 against strong x2 votes at the same spend (p = 1)"
    )


def test_without_the_baselines_rows_only_the_member_comparison() -> None:
    config = _config()
    results = pd.DataFrame(
        _rows("cheap", [0, 1], 1.0) + _rows("strong", [1, 1], 1.0) + _rows("cascade", [1, 1], 1.5)
    )
    [row] = same_spend_table(config, results, results.iloc[:0]).to_dict("records")
    assert row["baseline"] is None and math.isnan(row["vs_baseline"])
    assert row["summary"].endswith("over strong for 1.5x the cost (p = 1)")


def test_the_plan_draws_a_baseline_per_multi_step_strategy_after_scoring() -> None:
    from llmbench.plan import plan

    config = _config(
        CASCADE,
        {
            "name": "sc",
            "kind": "vote",
            "members": {"a": "strong"},
            "options": {"samples": 3, "temperature": 0.7},
        },
    )
    [planned] = plan(config, {}).same_spend  # one step per task, "sc" needs none
    assert (planned.id, planned.entrants) == ("same_spend__t", ("cascade.same-spend",))
    assert planned.members == ("cheap", "strong")
    assert list(planned.params["strategies"]) == ["cascade"]
    assert [m["name"] for m in planned.params["strategies"]["cascade"]] == ["cheap", "strong"]
    assert set(planned.params["prices"]) == {"cheap", "strong"}


def test_a_tasks_baselines_share_one_step() -> None:
    from llmbench.plan import plan

    router = {
        "name": "router",
        "kind": "router",
        "members": {"a": "cheap", "b": "strong"},
        "options": {"default": "a"},
    }
    solo = {"name": "solo", "kind": "cascade", "members": {"first": "strong", "then": "strong"}}
    config = _config(CASCADE, router, solo)
    [planned] = plan(config, {}).same_spend
    needing = [s.name for s in config.strategies if needs_baseline(s)]
    assert planned.strategies == tuple(needing) and "cascade" in needing
    assert planned.members == ("cheap", "strong")  # each member once
    assert list(planned.params["strategies"]) == needing

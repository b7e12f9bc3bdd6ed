"""A judged task's same-spend baseline: universal self-consistency's selection read
robustly, its n matched with the selection call counted, the plan's step carrying the
panel (priced, fingerprinted), a pairwise task's line saying why it has none, and the dry
run counting the panel's grades of the baselines."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from llmbench.config import BenchConfig, check_registries
from llmbench.estimate import same_spend_entrants
from llmbench.plan import plan
from llmbench.report.same_spend import (
    PAIRWISE_REASON,
    Baseline,
    baseline_of,
    calls_for,
    draws_for,
    method_of,
    needs_baseline,
    same_spend_table,
)
from llmbench.strategies.usc import parse_selection
from llmbench.tracking.prompts import templates_of

PRICE = {"input_per_1m": 1.0, "output_per_1m": 1.0, "source": "t", "date": "d"}
CASCADE = {"name": "cascade", "kind": "cascade", "members": {"first": "cheap", "then": "strong"}}


@pytest.mark.parametrize(
    ("text", "shown", "expected"),
    [
        ("The most consistent response is Response 2", 3, 2),
        ("the MOST consistent response is **Response 1**.", 3, 1),
        ("Response 0 and 2 agree ... The most consistent response is Response 2", 3, 2),
        ("The most consistent response is: Response #0", 2, 0),
        ("I pick Response 1 because it agrees with most.", 3, 1),  # one response named
        ("Response 0 and Response 2 agree.", 3, None),  # two named, none stated
        ("The most consistent response is Response 3", 3, None),  # out of range
        ("All of them.", 3, None),
        ("", 3, None),
    ],
)
def test_a_selection_is_read_robustly(text: str, shown: int, expected: int | None) -> None:
    assert parse_selection(text, shown) == expected


def test_usc_draws_count_the_selection_call() -> None:
    assert [calls_for(n, "usc") for n in (1, 2, 5)] == [1, 3, 6]  # one draw: no selection
    assert [calls_for(n, "vote") for n in (1, 2, 5)] == [1, 2, 5]
    # A strategy costing 3.1 member calls: a vote of 3, or USC's 2 draws and a selection.
    assert draws_for(3.1, 1.0, 3, "vote") == 3
    assert draws_for(3.1, 1.0, 3, "usc") == 2
    assert draws_for(6.0, 1.0, 6, "usc") == 5
    assert draws_for(1.9, 1.0, 2, "usc") == 1  # 1 call beats 3: the member itself
    assert draws_for(1000.0, 1.0, 3, "usc") == 64  # MAX_DRAWS still bounds it
    assert draws_for(0.0, 0.0, 4.0, "usc") == 3  # unpriced: 3 draws + 1 selection calls


def _config(mode: str | None, *strategies: dict[str, Any]) -> BenchConfig:
    task: dict[str, Any] = {"name": "t", "source": {"path": "x.jsonl"}, "template": "{{ q }}"}
    if mode is None:
        task.update(target="a", metrics=["exact_match"])
    else:
        task["judge"] = {"mode": mode, "panel": ["judge"]}
    return check_registries(
        BenchConfig.model_validate(
            {
                "models": [
                    {"name": "cheap", "provider": "openai", "model": "c", "price": PRICE},
                    {
                        "name": "strong",
                        "provider": "openai",
                        "model": "s",
                        "price": PRICE,
                        "params": {"temperature": 0.5},
                    },
                ],
                "judges": [{"name": "judge", "provider": "openai", "model": "j", "price": PRICE}],
                "strategies": list(strategies) or [CASCADE],
                "tasks": [task],
                "stats": {"resamples": 200},
            }
        )
    )


def _rows(name: str, grades: list[float], cost: float, key: str) -> list[dict[str, Any]]:
    trace = json.dumps([{"model": "cheap", "cost_usd": cost}])
    return [
        {
            "model": name,
            "task": "t",
            "sample_id": str(i),
            f"score.{key}": g,
            "cost_usd": cost,
            "trace": trace,
        }
        for i, g in enumerate(grades)
    ]


def test_a_judged_tasks_baseline_is_usc_and_a_pairwise_ones_none() -> None:
    assert method_of(_config(None).tasks[0]) == "vote"
    assert method_of(_config("rubric").tasks[0]) == "usc"
    assert method_of(_config("pairwise").tasks[0]) is None
    usc = Baseline("cascade", "t", "strong", 4, None, "usc")
    assert usc.label == "strong x4 USC"
    spec = usc.spec()
    assert spec.kind == "universal_self_consistency" and spec.options == {"samples": 4}
    assert Baseline("cascade", "t", "strong", 1, None, "usc").label == "strong x1"
    # A universal self-consistency is self-consistency already.
    config = _config(
        "rubric",
        {
            "name": "usc",
            "kind": "universal_self_consistency",
            "members": {"draws": "strong"},
            "options": {"samples": 3},
        },
    )
    assert not needs_baseline(config.strategies[0])


def test_a_judged_task_chooses_usc_at_the_spend_with_the_selection() -> None:
    config = _config("rubric")
    results = pd.DataFrame(
        _rows("cheap", [2, 2, 3], 1.0, "judge")
        + _rows("strong", [8, 7, 9], 1.0, "judge")
        + _rows("cascade", [8, 8, 8], 3.1, "judge")
    )
    chosen = baseline_of(config, config.strategies[0], config.tasks[0], results)
    assert chosen == Baseline("cascade", "t", "strong", 2, None, "usc")


def test_the_plan_grades_a_judged_tasks_baselines_with_its_panel() -> None:
    config = _config("rubric")
    [planned] = plan(config, {"model:judge": "sha256:abc"}).same_spend
    assert planned.judges == ("judge",)
    assert planned.request_models == ("cheap", "strong", "judge")
    params = planned.params
    assert [j["name"] for j in params["judges"]] == ["judge"]
    assert params["judge_fingerprints"] == {"judge": "sha256:abc"}
    assert set(params["judge_prices"]) == {"judge"}
    assert "Grade the assistant's answer" in params["judge_prompt"]
    assert isinstance(params["parser_version"], int)
    assert "majority consensus" in params["select_prompt"]
    # A metric task's step has no judge; a pairwise task has no baseline step.
    [metric] = plan(_config(None), {}).same_spend
    assert metric.judges == () and "judges" not in metric.params
    assert plan(_config("pairwise"), {}).same_spend == []


def test_a_pairwise_tasks_line_says_why_it_has_no_baseline() -> None:
    config = _config("pairwise")
    results = pd.DataFrame(
        _rows("cheap", [0.2, 0.4], 1.0, "win_rate")
        + _rows("strong", [0.6, 0.6], 1.0, "win_rate")
        + _rows("cascade", [0.7, 0.5], 2.0, "win_rate")
    )
    [row] = same_spend_table(config, results, results.iloc[:0]).to_dict("records")
    assert row["baseline"] is None and pd.isna(row["draws"])
    assert row["summary"].endswith(PAIRWISE_REASON)


def test_the_dry_run_and_the_prompt_registry_count_a_judged_tasks_baseline() -> None:
    judged, metric = _config("rubric"), _config(None)
    assert same_spend_entrants(judged, judged.tasks[0]) == ["cascade.same-spend"]
    assert same_spend_entrants(_config("pairwise"), _config("pairwise").tasks[0]) == []
    assert "llmbench.same_spend.select_prompt" in templates_of(judged)
    assert "llmbench.same_spend.select_prompt" not in templates_of(metric)
    text, _tags = templates_of(judged)["llmbench.same_spend.select_prompt"]
    assert "Select the most consistent response based on majority consensus." in text
    # The panel grades two models, the cascade and its baseline: 4 calls an item.
    from llmbench.estimate import judge_estimates
    from llmbench.types import Sample

    items = {"t": [Sample(sample_id=str(i), prompt="q", references=()) for i in range(3)]}
    [row] = judge_estimates(judged, items)
    assert (row.model, row.samples) == ("judge: judge", 12)

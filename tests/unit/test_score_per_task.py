"""One score step per task: the plan gives each task one scoring of all its entrants, each
with its own judgments and prices, and scoring a task at once gives exactly the rows of
scoring its entrants one by one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmbench import stages
from llmbench.config import BenchConfig
from llmbench.plan import plan
from llmbench.tables import completions_to_frame
from llmbench.types import Completion

ROOT = Path(__file__).resolve().parents[2]
PRICE = {"input_per_1m": 1.0, "output_per_1m": 2.0, "source": "t", "date": "d"}
CHEAP = {"input_per_1m": 0.1, "output_per_1m": 0.2, "source": "t", "date": "d"}


def _config() -> BenchConfig:
    data = str(ROOT / "datasets" / "arithmetic_word_problems.jsonl")
    task = {"source": {"path": data}, "template": "{{ question }}", "target": "answer"}
    return BenchConfig.model_validate(
        {
            "models": [
                {"name": "a", "provider": "openai", "model": "a", "price": PRICE},
                {"name": "b", "provider": "openai", "model": "b", "price": CHEAP},
                {"name": "c", "provider": "openai", "model": "c", "price": PRICE},
            ],
            "strategies": [
                {"name": "cascade", "kind": "cascade", "members": {"first": "b", "then": "a"}}
            ],
            "tasks": [
                {
                    **task,
                    "name": "math",
                    "extract": ["last_number"],
                    "metrics": ["exact_match"],
                },
                {**task, "name": "versus", "judge": {"mode": "pairwise", "panel": ["c"]}},
            ],
        }
    )


def test_one_scoring_per_task_with_every_entrants_judgments_and_prices() -> None:
    planned = plan(_config(), {"math": "f", "versus": "f"})
    assert [s.id for s in planned.scorings] == ["score__math", "score__versus"]
    math_scoring, versus = planned.scorings
    assert math_scoring.entrants == versus.entrants == ("a", "b", "c", "cascade")
    assert math_scoring.judgings == () and not any(math_scoring.judged.values())
    assert versus.judgings == tuple(j.id for j in planned.judgings if j.task == "versus")
    # Each pairwise verdict serves both of its entrants.
    for entrant in versus.entrants:
        mine = [versus.judgings[n] for n in versus.judged[entrant]]
        assert mine and all(f"__{entrant}__" in judging for judging in mine)
    assert sum(len(v) for v in versus.judged.values()) == 2 * len(versus.judgings)
    assert set(versus.prices["cascade"]) == {"a", "b"}
    assert set(versus.prices["b"]) == {"b"}
    assert set(versus.judge_prices) == {"c"}


def test_a_task_scored_at_once_equals_its_entrants_scored_one_by_one() -> None:
    config = _config()
    task = config.tasks[0]
    samples = stages.load_task(task, 6)
    ids = samples["sample_id"].tolist()
    right = [str(r[0]) for r in samples["references"]]
    answers = {
        "a": [Completion(text=r, input_tokens=10, output_tokens=3) for r in right],
        "b": [Completion(text="0", input_tokens=10, output_tokens=1)] * len(ids),
        "c": [*(Completion(text=r) for r in right[:-1]), Completion(error="HTTP 500")],
    }
    frames = {name: completions_to_frame(ids, made) for name, made in answers.items()}
    prices = {m.name: {m.name: m.price} for m in config.models if m.price is not None}

    results, aggregates = stages.score_task(task, samples, frames, prices=prices)

    one_by_one = [
        stages.score(name, task, samples, frame, prices=prices[name])
        for name, frame in frames.items()
    ]
    pd.testing.assert_frame_equal(results, pd.concat([r for r, _ in one_by_one], ignore_index=True))
    pd.testing.assert_frame_equal(
        aggregates, pd.concat([a for _, a in one_by_one], ignore_index=True)
    )
    assert results.groupby("model", sort=False)["score.exact_match"].sum().to_dict() == {
        "a": 6.0,
        "b": 0.0,
        "c": 5.0,
    }
    assert results.loc[results["model"] == "b", "cost_usd"].sum() > 0  # priced at b's price

"""A vote's pass@k and maj@k from its recorded draws, and a strategy's quality, cost and
turned answers by round, from hand-built rows (no model is called)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmbench.config import BenchConfig
from llmbench.report.draws import draw_curves, maj_at_k, pass_at_k
from llmbench.report.rounds import outer_rounds, purpose_of, round_table
from llmbench.types import Call

PRICE = {"input_per_1m": 1.0, "output_per_1m": 1.0, "source": "t", "date": "d"}


def _config(strategy: dict[str, object]) -> BenchConfig:
    return BenchConfig.model_validate(
        {
            "models": [
                {"name": "cheap", "provider": "openai", "model": "c", "price": PRICE},
                {"name": "strong", "provider": "openai", "model": "s", "price": PRICE},
            ],
            "strategies": [strategy],
            "tasks": [
                {
                    "name": "t",
                    "source": {"path": "x.jsonl"},
                    "template": "{{ q }}",
                    "target": "a",
                    "extract": ["last_number"],
                    "metrics": ["exact_match"],
                }
            ],
            "stats": {"resamples": 200},
        }
    )


def _row(name: str, i: int, trace: list[dict[str, Any]], right: float) -> dict[str, Any]:
    return {
        "model": name,
        "task": "t",
        "sample_id": str(i),
        "prompt": f"question {i}",
        "references": ["4"],
        "output": trace[-1].get("output", ""),
        "error": None,
        "score.exact_match": right,
        "cost_usd": math.fsum(c.get("cost_usd", 0.0) for c in trace),
        "trace": json.dumps(trace),
    }


def test_pass_at_k_is_chen_et_al_unbiased_estimator() -> None:
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 2, 4) == 1.0  # any 4 of 5 hold one of the 2 right draws
    assert pass_at_k(5, 0, 3) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_maj_at_k_averages_the_vote_over_every_subset() -> None:
    right = {"4": 1.0, "5": 0.0}
    assert maj_at_k(["4", "4", "5"], right, 1) == pytest.approx(2 / 3)
    # {4,4}: right; {4,5} twice: a tie, half right.
    assert maj_at_k(["4", "4", "5"], right, 2) == pytest.approx(2 / 3)
    assert maj_at_k(["4", "4", "5"], right, 3) == 1.0
    # A draw without an answer does not vote: {4,None} right, {4,5} a tie, {None,5} wrong.
    assert maj_at_k(["4", None, "5"], right, 2) == pytest.approx(0.5)
    assert maj_at_k([None, None], right, 2) == 0.0


def test_maj_at_k_samples_subsets_when_there_are_too_many() -> None:
    answers = ["4"] * 30 + ["5"] * 10
    estimate = maj_at_k(answers, {"4": 1.0, "5": 0.0}, 20, np.random.default_rng(0))
    assert 0.95 < estimate <= 1.0  # 20 of 40 with 30 right: a right majority nearly always


def _vote_trace(outputs: list[str], agreement: float) -> list[dict[str, Any]]:
    purposes = ["answer", "draw 1", "draw 2"]
    trace = [
        {"model": "cheap", "role": "sc", "purpose": p, "output": o, "cost_usd": 1.0}
        for p, o in zip(purposes, outputs, strict=True)
    ]
    trace[0].update(note="voted", score=agreement)
    return trace


def test_draw_curves_of_a_self_consistency_vote() -> None:
    config = _config(
        {
            "name": "sc",
            "kind": "vote",
            "members": {"sc": "cheap"},
            "options": {"samples": 3, "temperature": 0.7},
        }
    )
    results = pd.DataFrame(
        [
            _row("sc", 0, _vote_trace(["It is 4", "It is 4", "It is 5"], 2 / 3), 1.0),
            _row("sc", 1, _vote_trace(["It is 5", "no idea", "It is 4"], 1 / 3), 0.0),
        ]
    )
    table = draw_curves(config, results)
    assert table["k"].tolist() == [1, 2, 3]
    assert table["items"].tolist() == [2, 2, 2]
    # item 0: 2 of 3 right; item 1: 1 of 3 right, one draw with no answer.
    assert table["pass_at_k"].tolist() == pytest.approx([0.5, (1 + 2 / 3) / 2, 1.0])
    assert table["maj_at_k"].tolist() == pytest.approx([0.5, (2 / 3 + 0.5) / 2, 0.75])
    assert (table["pass_low"] <= table["pass_at_k"]).all()
    assert (table["maj_high"] >= table["maj_at_k"]).all()
    assert table["agreement"].iloc[-1] == pytest.approx(0.5)
    assert table["agreement"].iloc[:-1].isna().all()
    assert round_table(config, results).empty  # one round: nothing to add to its row


def _refine(outputs: list[str], verdicts: list[str]) -> list[dict[str, Any]]:
    """A generator's answers with a critique between each two (and after the last when
    the loop passed it), each call costing 1.0 and taking 1 s."""
    trace, n = [], 0
    for i, output in enumerate(outputs):
        trace.append(
            {
                "model": "cheap",
                "role": "generator",
                "purpose": "answer" if i == 0 else "revise",
                "output": output,
                "round": n,
                "start_s": float(n),
                "latency_s": 1.0,
                "cost_usd": 1.0,
            }
        )
        n += 1
        if i < len(verdicts):
            trace.append(
                {
                    "model": "strong",
                    "role": "evaluator",
                    "purpose": "critique",
                    "output": f"[[{verdicts[i]}]]",
                    "round": n,
                    "start_s": float(n),
                    "latency_s": 1.0,
                    "cost_usd": 1.0,
                }
            )
            n += 1
    return trace


def test_rounds_of_an_evaluator_optimizer() -> None:
    config = _config(
        {
            "name": "refine",
            "kind": "evaluator_optimizer",
            "members": {"generator": "cheap", "evaluator": "strong"},
        }
    )
    results = pd.DataFrame(
        [
            _row("refine", 0, _refine(["It is 3", "It is 4"], ["REVISE", "PASS"]), 1.0),
            _row(
                "refine", 1, _refine(["It is 4", "It is 5", "It is 6"], ["REVISE", "REVISE"]), 0.0
            ),
            _row("refine", 2, _refine(["It is 4"], ["PASS"]), 1.0),
        ]
    )
    table = round_table(config, results)
    assert table["round"].tolist() == [0, 1, 2, 3, 4]
    assert table["step"].tolist() == ["answer", "critique", "revise", "critique", "revise"]
    assert table["reached"].tolist() == [3, 3, 2, 2, 1]
    assert table["n"].tolist() == [3, 3, 3, 3, 3]
    assert table["quality"].tolist() == pytest.approx([2 / 3] * 5)
    assert table["mean_cost_usd"].tolist() == pytest.approx([1, 2, 8 / 3, 10 / 3, 11 / 3])
    assert table["mean_latency_s"].tolist() == pytest.approx([1, 2, 8 / 3, 10 / 3, 11 / 3])
    # Round 2's revisions: item 0 wrong -> right, item 1 right -> wrong.
    assert table["wrong_to_right"].tolist()[1:] == [0, 1, 0, 0]
    assert table["right_to_wrong"].tolist()[1:] == [0, 1, 0, 0]
    assert math.isnan(table["wrong_to_right"].iloc[0])


def test_a_nested_strategys_calls_sit_in_the_round_of_its_answer() -> None:
    trace = [
        Call(model="cheap", round=0),
        Call(model="cheap", parent="then:inner", round=0),
        Call(model="strong", parent="then:inner", round=1),
        Call(model="inner", kind="strategy", round=1),
    ]
    assert outer_rounds(trace) == [0, 1, 1, 1]


@pytest.mark.parametrize(
    ("purpose", "read"),
    [
        ("draw 3", "draw"),
        ("critique, draw 2", "critique"),
        ("solve, retry 1", "solve"),
        ("solve gate", "gate"),
        ("delegate math", "delegate"),
        ("layer 2", "layer"),
        ("revise", "revise"),
    ],
)
def test_a_calls_purpose_without_its_number(purpose: str, read: str) -> None:
    assert purpose_of(Call(model="m", purpose=purpose)) == read

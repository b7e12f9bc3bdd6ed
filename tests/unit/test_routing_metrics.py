"""RouteLLM's sweep figures: quality at each share of strong calls, APGR and CPT."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmbench.config import BenchConfig
from llmbench.report.routing import aiq, apgr, cpt, routing_table, sweep, sweep_curves

WEAK = np.array([0.0, 0.0, 1.0, 1.0])
STRONG = np.array([1.0, 1.0, 1.0, 0.0])


def test_sweep_routes_the_highest_scores_first() -> None:
    best_first = sweep(WEAK, STRONG, np.array([0.9, 0.8, 0.1, 0.0]))
    assert best_first.tolist() == [0.5, 0.75, 1.0, 1.0, 0.75]  # k = 0..4 strong calls
    assert sweep(WEAK, STRONG, np.array([0.0, 0.1, 0.8, 0.9])).tolist() == [
        0.5,
        0.25,
        0.25,
        0.5,
        0.75,
    ]


def test_apgr_and_cpt_of_a_good_and_a_bad_router() -> None:
    q_w, q_s = WEAK.mean(), STRONG.mean()
    good = sweep(WEAK, STRONG, np.array([0.9, 0.8, 0.1, 0.0]))
    bad = sweep(WEAK, STRONG, np.array([0.0, 0.1, 0.8, 0.9]))
    assert apgr(good, q_w, q_s) > 0.5 > apgr(bad, q_w, q_s)
    assert cpt(good, q_w, q_s, 0.5) == pytest.approx(0.25)  # one strong call in four
    assert cpt(bad, q_w, q_s, 0.8) == pytest.approx(1.0)
    assert np.isnan(apgr(good, 0.5, 0.5))  # no gap to recover


def test_a_random_router_recovers_half_the_gap_on_average() -> None:
    rng = np.random.default_rng(0)
    weak = (rng.random(2000) < 0.6).astype(float)
    strong = (rng.random(2000) < 0.85).astype(float)
    values = [
        apgr(sweep(weak, strong, rng.random(2000)), weak.mean(), strong.mean()) for _ in range(50)
    ]
    assert np.mean(values) == pytest.approx(0.5, abs=0.02)


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
                    "metrics": ["exact_match"],
                }
            ],
            "stats": {"resamples": 200},
        }
    )


def _results(name: str, traces: list[list[dict[str, Any]]]) -> pd.DataFrame:
    """cheap is right on items 0 and 1 only and costs 1.0 an item; strong is right on all and
    costs 10.0; the strategy's row for item i has ``traces[i]``."""
    rows = []
    for i, trace in enumerate(traces):
        rows += [
            {
                "model": "cheap",
                "sample_id": str(i),
                "score.exact_match": float(i < 2),
                "cost_usd": 1.0,
            },
            {"model": "strong", "sample_id": str(i), "score.exact_match": 1.0, "cost_usd": 10.0},
            {
                "model": name,
                "sample_id": str(i),
                "score.exact_match": 1.0,
                "cost_usd": math.fsum(c["cost_usd"] for c in trace),
                "answered_by": trace[-1]["model"],
                "trace": json.dumps(trace),
            },
        ]
    return pd.DataFrame(rows).assign(task="t")


def test_a_confidence_cascade_sweeps_lowest_confidence_first() -> None:
    config = _config(
        {
            "name": "cascade",
            "kind": "cascade",
            "members": {"first": "cheap", "then": "strong"},
            "options": {"escalate_on": ["low_confidence"], "min_confidence": 0.5},
        }
    )
    # Stated confidence 0.9, 0.2, 0.1 and none (item 3): the sweep escalates 3, then 2, then
    # 1, then 0.
    confidence = [0.9, 0.2, 0.1, None]
    traces = [
        [{"model": "cheap", "score": confidence[i], "cost_usd": 1.0}]
        + ([] if i == 0 else [{"model": "strong", "cost_usd": 10.0}])
        for i in range(4)
    ]
    results = _results("cascade", traces)
    curve = sweep_curves(config, results)
    assert curve["score"].tolist() == [0.5, 0.75, 1.0, 1.0, 1.0]
    # An escalated item pays the cheap call it was first asked and then the strong one.
    assert curve["cost_usd"].tolist() == [4.0, 14.0, 24.0, 34.0, 44.0]
    [row] = routing_table(config, results).to_dict("records")
    assert row["router_strong_share"] == 0.75 and row["oracle_score"] == 1.0
    assert row["cpt_80"] == 0.5  # two escalations recover the whole gap
    cost = np.array([4.0, 14.0, 24.0, 34.0, 44.0])
    assert row["aiq"] == pytest.approx(aiq(cost, np.array([0.5, 0.75, 1.0, 1.0, 1.0])))


def test_a_verifier_cascade_pays_every_grade_at_every_threshold() -> None:
    config = _config(
        {
            "name": "cascade",
            "kind": "cascade",
            "members": {"first": "cheap", "then": "strong", "check": "cheap"},
            "options": {"escalate_on": ["low_grade"], "verifier": "check"},
        }
    )
    grades = [9.0, 3.0, 2.0, 1.0]  # the sweep escalates 3, then 2, then 1, then 0
    traces = [
        [
            {"model": "cheap", "role": "first", "cost_usd": 1.0},
            {"model": "cheap", "role": "check", "purpose": "verify", "score": g, "cost_usd": 0.5},
        ]
        + ([] if g >= 7 else [{"model": "strong", "role": "then", "cost_usd": 10.0}])
        for g in grades
    ]
    curve = sweep_curves(config, _results("cascade", traces))
    assert curve["score"].tolist() == [0.5, 0.75, 1.0, 1.0, 1.0]
    # Four answers and four grades whatever the threshold, then 10.0 per escalation.
    assert curve["cost_usd"].tolist() == [6.0, 16.0, 26.0, 36.0, 46.0]


def test_a_threshold_router_pays_only_the_member_it_chose() -> None:
    config = _config(
        {
            "name": "router",
            "kind": "router",
            "members": {"weak": "cheap", "strong": "strong"},
            "options": {"threshold": {"score": "random", "weak": "weak", "strong": "strong"}},
        }
    )
    scores = [0.1, 0.6, 0.7, 0.8]  # the sweep sends 3, then 2, then 1, then 0 to strong
    traces = [
        [{"model": "strong" if s >= 0.5 else "cheap", "score": s, "cost_usd": 1.0}] for s in scores
    ]
    curve = sweep_curves(config, _results("router", traces))
    assert curve["score"].tolist() == [0.5, 0.75, 1.0, 1.0, 1.0]
    assert curve["cost_usd"].tolist() == [4.0, 13.0, 22.0, 31.0, 40.0]


def test_aiq_is_the_area_under_the_non_decreasing_convex_hull() -> None:
    from llmbench.report.routing import non_decreasing_hull

    cost = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    quality = np.array([0.2, 0.3, 0.9, 0.5, 1.0])  # (1, 0.3) is under the chord, (3, 0.5) dominated
    c, q = non_decreasing_hull(cost, quality)
    assert c.tolist() == [0.0, 2.0, 4.0] and q.tolist() == [0.2, 0.9, 1.0]
    # Trapezoids (0..2: 0.2 -> 0.9) + (2..4: 0.9 -> 1.0) = 1.1 + 1.9 = 3.0, over a range of 4.
    assert aiq(cost, quality) == pytest.approx(3.0 / 4.0)
    assert aiq(np.array([1.0, 1.0]), np.array([0.4, 0.6])) == 0.6

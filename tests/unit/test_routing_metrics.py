"""RouteLLM's sweep figures: quality at each share of strong calls, APGR and CPT."""

from __future__ import annotations

import numpy as np
import pytest

from llmbench.report.routing import apgr, cpt, sweep

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


def test_a_confidence_cascade_sweeps_lowest_confidence_first() -> None:
    import json

    import pandas as pd

    from llmbench.config import BenchConfig
    from llmbench.report.routing import routing_table, sweep_curves

    price = {"input_per_1m": 1.0, "output_per_1m": 1.0, "source": "t", "date": "d"}
    config = BenchConfig.model_validate(
        {
            "models": [
                {"name": "cheap", "provider": "openai", "model": "c", "price": price},
                {"name": "strong", "provider": "openai", "model": "s", "price": price},
            ],
            "strategies": [
                {
                    "name": "cascade",
                    "kind": "cascade",
                    "members": {"first": "cheap", "then": "strong"},
                    "options": {"escalate_on": ["low_confidence"], "min_confidence": 0.5},
                }
            ],
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
    # cheap is right on items 0 and 1 only; strong on all; stated confidence 0.9, 0.2, 0.1
    # and none (item 3): the sweep escalates 3, then 2, then 1, then 0.
    confidence = [0.9, 0.2, 0.1, None]
    rows = []
    for i in range(4):
        call = {"model": "cheap", "score": confidence[i], "cost_usd": 1.0}
        rows += [
            {
                "model": "cheap",
                "sample_id": str(i),
                "score.exact_match": float(i < 2),
                "cost_usd": 1.0,
            },
            {"model": "strong", "sample_id": str(i), "score.exact_match": 1.0, "cost_usd": 10.0},
            {
                "model": "cascade",
                "sample_id": str(i),
                "score.exact_match": 1.0,
                "cost_usd": 1.0,
                "answered_by": "cheap" if i == 0 else "strong",
                "trace": json.dumps([call]),
            },
        ]
    results = pd.DataFrame(rows).assign(task="t")
    curve = sweep_curves(config, results)
    assert curve["score"].tolist() == [0.5, 0.75, 1.0, 1.0, 1.0]
    assert curve["cost_usd"].tolist() == [4.0, 13.0, 22.0, 31.0, 40.0]
    [row] = routing_table(config, results).to_dict("records")
    assert row["router_strong_share"] == 0.75 and row["oracle_score"] == 1.0
    assert row["cpt_80"] == 0.5  # two escalations recover the whole gap


def test_aiq_is_the_area_under_the_non_decreasing_convex_hull() -> None:
    from llmbench.report.routing import aiq, non_decreasing_hull

    cost = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    quality = np.array([0.2, 0.3, 0.9, 0.5, 1.0])  # (1, 0.3) is under the chord, (3, 0.5) dominated
    c, q = non_decreasing_hull(cost, quality)
    assert c.tolist() == [0.0, 2.0, 4.0] and q.tolist() == [0.2, 0.9, 1.0]
    # Trapezoids (0..2: 0.2 -> 0.9) + (2..4: 0.9 -> 1.0) = 1.1 + 1.9 = 3.0, over a range of 4.
    assert aiq(cost, quality) == pytest.approx(3.0 / 4.0)
    assert aiq(np.array([1.0, 1.0]), np.array([0.4, 0.6])) == 0.6

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

"""The Pareto frontier over (cost, score): rows no other row beats on both."""

from __future__ import annotations

import math

from llmbench.report.strategies import pareto


def test_frontier_keeps_rows_nobody_beats() -> None:
    points = {
        "cheap": (1.0, 0.5),
        "strong": (10.0, 0.9),
        "cascade": (4.0, 0.9),  # as good as strong, cheaper: strong is off the frontier
        "waste": (5.0, 0.4),  # dearer and worse than cheap
        "tie": (1.0, 0.5),  # equal to cheap: neither beats the other
        "unscored": (0.5, math.nan),
    }
    assert pareto(points) == {"cheap", "cascade", "tie"}


def test_one_row_is_its_own_frontier() -> None:
    assert pareto({"only": (3.0, 0.1)}) == {"only"}

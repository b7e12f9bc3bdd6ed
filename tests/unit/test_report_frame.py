"""The statistics tables survive being stacked into one artifact and split again."""

from __future__ import annotations

import pandas as pd

from llmbench.report.statistics import (
    COMPARISON_COLUMNS,
    INTERVAL_COLUMNS,
    JUDGE_COLUMNS,
    RATING_COLUMNS,
    Report,
)
from llmbench.scoring.judge import PAIR_COLUMNS


def test_round_trip_with_empty_tables() -> None:
    intervals = pd.DataFrame(
        [["m", "t", "exact_match", 0.5, 0.4, 0.6, 10]], columns=INTERVAL_COLUMNS
    )
    report = Report(
        intervals=intervals,
        comparisons=pd.DataFrame(columns=COMPARISON_COLUMNS),
        ratings=pd.DataFrame(columns=RATING_COLUMNS),
        judges=pd.DataFrame(columns=JUDGE_COLUMNS),
        verdicts=pd.DataFrame(columns=PAIR_COLUMNS),
    )
    back = Report.from_frame(report.to_frame())
    assert back.intervals.to_dict("records") == intervals.to_dict("records")
    assert back.intervals["n"].dtype.kind == "i"
    for name, columns in (("ratings", RATING_COLUMNS), ("judges", JUDGE_COLUMNS)):
        table = getattr(back, name)
        assert table.empty and list(table.columns) == columns

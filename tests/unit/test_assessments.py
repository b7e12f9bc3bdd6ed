"""A result row's scores as assessments, and the ZenML run's headline: pure logic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmbench.tracking.assessments import assessments_for
from llmbench.tracking.run_summary import DEFAULT_UI_URL, UI_URL_ENV, mlflow_run_url
from llmbench.tracking.trace_writer import FeedbackRecord

GRADE = {"judge": "grader", "grade": 7.0, "explanation": "mostly right", "error": None}
VERDICT = {"judge": "grader", "opponent": "b", "forward": "win", "swapped": "tie"}


def by_name(record: dict[str, object]) -> dict[str, FeedbackRecord]:
    return {f.name: f for f in assessments_for(record, at_ms=5)}


def test_metrics_are_code_judges_llm_judge_with_rationale_and_labels_human() -> None:
    found = by_name(
        {
            "score.exact_match": 1.0,
            "score.judge": 7.0,
            "judgments": np.array([GRADE | {"opponent": None}], dtype=object),
            "human_label": 6.0,
        }
    )
    assert sorted(found) == ["exact_match", "human_label", "judge", "judge/grader"]
    kinds = {name: (f.source_type, f.value) for name, f in found.items()}
    assert kinds == {
        "exact_match": ("CODE", 1.0),
        "judge": ("LLM_JUDGE", 7.0),
        "judge/grader": ("LLM_JUDGE", 7.0),
        "human_label": ("HUMAN", 6.0),
    }
    assert found["judge"].rationale == "grader: mostly right"
    assert found["judge/grader"].rationale == "mostly right"


def test_pairwise_verdicts_errors_and_unscored_rows() -> None:
    found = by_name(
        {
            "score.win_rate": 0.75,
            "score.exact_match": math.nan,  # unscored: no assessment
            "judgments": '[{"judge": "grader", "opponent": "b", "forward": "win", '
            '"swapped": "tie", "verdict": "win", "error": null}, '
            '{"judge": "other", "grade": null, "error": "timeout"}, '
            '{"judge": "silent", "grade": null, "error": null}]',
            "human_label": None,
        }
    )
    assert sorted(found) == ["judge/other", "pairwise/grader/vs/b", "win_rate"]
    verdict = found["pairwise/grader/vs/b"]
    assert verdict.value == "win"
    assert verdict.metadata == {"forward": "win", "swapped": "tie"}
    failed = found["judge/other"]
    assert failed.value is None and failed.error == "timeout"


def test_mlflow_run_url_on_a_server_or_the_local_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mlflow_run_url("https://mlflow.example.com/", "3", "abc") == (
        "https://mlflow.example.com/#/experiments/3/runs/abc"
    )
    secret = "https://user:tok-3f9a@mlflow.example.com:8443/base/?token=tok-3f9a"
    assert mlflow_run_url(secret, "3", "abc") == (
        "https://mlflow.example.com:8443/base/#/experiments/3/runs/abc"
    )
    monkeypatch.delenv(UI_URL_ENV, raising=False)
    assert mlflow_run_url("sqlite:///x.db", "1", "r").startswith(DEFAULT_UI_URL + "/#/")
    monkeypatch.setenv(UI_URL_ENV, "http://127.0.0.1:5055")
    assert (
        mlflow_run_url("sqlite:///x.db", "1", "r") == "http://127.0.0.1:5055/#/experiments/1/runs/r"
    )

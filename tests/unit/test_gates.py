"""Quality gates: thresholds in the metric's direction, regressions decided by the paired test
on the same items (by intervals otherwise), and the files CI reads."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from llmbench import config as cfg
from llmbench.config import BenchConfig
from llmbench.cron import check_cron
from llmbench.errors import ConfigError
from llmbench.gates import (
    GateResult,
    check_thresholds,
    parse_threshold,
    regression_results,
    threshold_results,
)
from llmbench.report.gates_report import gates_junit, summary_markdown

ROOT = Path(__file__).resolve().parents[2]
SIMPLIFICATION = ROOT / "datasets" / "sentence_simplification.jsonl"


def load_config(
    tmp_path: Path, metrics: list[str], models: tuple[str, ...] = ("a", "b")
) -> BenchConfig:
    raw: dict[str, Any] = {
        "name": "gates",
        "models": [{"name": m, "provider": "recorded", "model": "unused.jsonl"} for m in models],
        "tasks": [
            {
                "name": "simplify",
                "source": {"path": str(SIMPLIFICATION)},
                "sample_id": "id",
                "target": "reference",
                "template": "{{ text }}",
                "metrics": metrics,
            }
        ],
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return cfg.load(path)


def results(scores: dict[str, list[float]], ids: list[str] | None = None) -> pd.DataFrame:
    rows = []
    for model, values in scores.items():
        for n, value in enumerate(values):
            sample = ids[n] if ids else f"s{n}"
            rows.append(
                {
                    "model": model,
                    "task": "simplify",
                    "sample_id": sample,
                    "score.exact_match": value,
                }
            )
    return pd.DataFrame(rows)


def intervals(estimates: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": m,
                "task": "simplify",
                "metric": k,
                "estimate": v,
                "low": v,
                "high": v,
                "n": 10,
            }
            for (m, k), v in estimates.items()
        ]
    )


def test_a_threshold_names_task_metric_value_and_optionally_a_model() -> None:
    assert parse_threshold("gsm8k/exact_match=0.5").model is None
    rule = parse_threshold("gemma3-270m:gsm8k/exact_match=0.25")
    assert (rule.model, rule.task, rule.metric, rule.value) == (
        "gemma3-270m",
        "gsm8k",
        "exact_match",
        0.25,
    )


@pytest.mark.parametrize(
    "text", ["gsm8k=0.5", "gsm8k/exact_match", "gsm8k/exact_match=high", "x/y=nan"]
)
def test_a_malformed_threshold_names_the_flag_and_the_form(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_threshold(text)
    assert error.value.field == "--fail-under"
    assert "TASK/METRIC=VALUE" in str(error.value)


def test_an_unknown_task_metric_or_model_lists_what_the_run_has(tmp_path: Path) -> None:
    config = load_config(tmp_path, ["exact_match", "ter"])
    check_thresholds(
        config, [parse_threshold("simplify/ter=50"), parse_threshold("a:simplify/exact_match=0.1")]
    )
    with pytest.raises(ConfigError) as error:
        check_thresholds(config, [parse_threshold("simplify/accuracy=0.5")])
    assert error.value.field == "--fail-under"
    assert "simplify/exact_match, simplify/ter" in str(error.value)
    with pytest.raises(ConfigError, match="no model 'c'") as error:
        check_thresholds(config, [parse_threshold("c:simplify/exact_match=0.5")])
    assert "a, b" in str(error.value)


def test_thresholds_follow_the_metric_direction_and_the_model_named(tmp_path: Path) -> None:
    config = load_config(tmp_path, ["exact_match", "ter"])
    table = intervals(
        {
            ("a", "exact_match"): 0.6,
            ("b", "exact_match"): 0.4,
            ("a", "ter"): 40.0,
            ("b", "ter"): 70.0,
        }
    )
    rules = [parse_threshold("simplify/exact_match=0.5"), parse_threshold("simplify/ter=50")]
    outcome = {(r.model, r.metric): r.status for r in threshold_results(config, table, rules)}
    # exact match: higher is better, b is below 0.5; TER: lower is better, b is above 50.
    assert outcome == {
        ("a", "exact_match"): "pass",
        ("b", "exact_match"): "fail",
        ("a", "ter"): "pass",
        ("b", "ter"): "fail",
    }
    only_b = threshold_results(config, table, [parse_threshold("b:simplify/exact_match=0.3")])
    assert [(r.model, r.status, r.expected) for r in only_b] == [("b", "pass", ">= 0.3")]


def test_a_real_drop_on_the_same_items_fails_by_mcnemar_and_no_change_passes(
    tmp_path: Path,
) -> None:
    config = load_config(tmp_path, ["exact_match"])
    rng = np.random.default_rng(1)
    before = rng.integers(0, 2, 60).astype(float)
    dropped = before.copy()
    dropped[np.flatnonzero(before == 1)[:20]] = 0.0  # 20 items a got right before, wrong now
    previous = results({"a": before.tolist(), "b": before.tolist()})
    current = results({"a": dropped.tolist(), "b": before.tolist()})
    gates = {r.model: r for r in regression_results(config, current, previous, "run-1")}
    assert gates["a"].status == "fail" and gates["b"].status == "pass"
    assert "mcnemar on 60 paired items" in gates["a"].detail
    assert gates["a"].value == pytest.approx(dropped.mean())
    assert gates["a"].expected == f"{before.mean():.4g} in run-1"
    # The same drop the other way round is an improvement: it passes.
    improved = regression_results(config, previous, current, "run-1")
    assert [r.status for r in improved] == ["pass", "pass"]


def test_one_changed_item_is_not_a_regression(tmp_path: Path) -> None:
    config = load_config(tmp_path, ["exact_match"], models=("a",))
    before = [1.0] * 30 + [0.0] * 30
    now = [0.0, *before[1:]]
    (gate,) = regression_results(config, results({"a": now}), results({"a": before}), "run-1")
    assert gate.status == "pass" and gate.value < 0.5


def test_on_different_items_only_non_overlapping_intervals_fail(tmp_path: Path) -> None:
    config = load_config(tmp_path, ["exact_match"], models=("a",))
    previous = results({"a": [1.0] * 45 + [0.0] * 5}, ids=[f"old{n}" for n in range(50)])
    far = results({"a": [1.0] * 5 + [0.0] * 45})
    near = results({"a": [1.0] * 43 + [0.0] * 7})
    (gate,) = regression_results(config, far, previous, "run-1")
    assert gate.status == "fail" and gate.detail.startswith("different items (50 vs 50)")
    (gate,) = regression_results(config, near, previous, "run-1")
    assert gate.status == "pass"


def test_a_model_new_since_the_previous_run_is_skipped(tmp_path: Path) -> None:
    config = load_config(tmp_path, ["exact_match"])
    gates = regression_results(
        config, results({"a": [1.0, 0.0], "b": [1.0, 1.0]}), results({"a": [1.0, 0.0]}), "run-1"
    )
    assert [(r.model, r.status) for r in gates] == [("a", "pass"), ("b", "skip")]
    assert gates[1].detail == "not scored in run-1"
    empty = regression_results(config, results({"a": [1.0]}), pd.DataFrame(), "run-1")
    assert {r.status for r in empty} == {"skip"}


def gate(status: str, model: str = "a") -> GateResult:
    return GateResult("fail-under", model, "simplify", "exact_match", status, 0.4, ">= 0.5", "why")  # type: ignore[arg-type]


def test_junit_counts_failures_and_skips() -> None:
    root = ET.fromstring(gates_junit([gate("pass"), gate("fail", "b"), gate("skip", "c")], "run-2"))
    (suite,) = root.iter("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failed == ["fail-under b simplify/exact_match"]


def test_the_summary_has_the_verdict_the_leaderboard_and_failures_first(tmp_path: Path) -> None:
    config = load_config(tmp_path, ["exact_match"])
    board = pd.DataFrame(
        [
            {
                "rank": 1,
                "model": "a",
                "score": 0.6,
                "score_ci_low": 0.5,
                "score_ci_high": 0.7,
                "simplify/exact_match": 0.6,
                "cost_usd": 0.0,
                "latency_p50_s": 0.1,
            },
            {
                "rank": 2,
                "model": "b",
                "score": 0.4,
                "score_ci_low": 0.3,
                "score_ci_high": 0.5,
                "simplify/exact_match": 0.4,
                "cost_usd": 0.0,
                "latency_p50_s": math.nan,
            },
        ]
    )
    text = summary_markdown(config, board, [gate("pass"), gate("fail", "b")], "run-2", ["a note"])
    assert "**1 of 2 gate checks failed**" in text
    assert "| 1 | `a` | 0.6 | 0.5–0.7 | 0.6 | $0.0000 | 0.1 |" in text
    gates_part = text.split("### Quality gates")[1]
    assert gates_part.index("`b`") < gates_part.index("`a`")
    assert text.rstrip().endswith("a note")
    assert "no quality gates were asked for" in summary_markdown(config, board, [], "run-2")


@pytest.mark.parametrize("good", ["0 3 * * *", "*/15 * * * 1-5", " 30 2 1,15 JAN MON "])
def test_a_cron_expression_has_five_fields(good: str) -> None:
    assert check_cron(good) == " ".join(good.split())


@pytest.mark.parametrize("bad", ["0 3 * *", "every day", "0 3 * * * *", "0 3 * * %"])
def test_a_bad_cron_expression_names_the_flag(bad: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_cron(bad)
    assert error.value.field == "--schedule"


def corpus_rows(model: str, answers: list[str], references: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": model,
            "task": "simplify",
            "sample_id": [f"s{n}" for n in range(len(answers))],
            "answer": answers,
            "references": [[r] for r in references],
            "score.ter": 0.0,  # scored; a corpus score is recomputed from answers and references
        }
    )


def test_a_lower_is_better_corpus_score_regresses_upwards(tmp_path: Path) -> None:
    config = load_config(tmp_path, ["ter"], models=("a",))
    references = [f"the cat number {n} sat on the mat today" for n in range(40)]
    garbled = [f"a dog {n} stood under some table yesterday again" for n in range(40)]
    exact, worse = corpus_rows("a", references, references), corpus_rows("a", garbled, references)
    (gate,) = regression_results(config, worse, exact, "run-1")
    assert gate.status == "fail" and gate.metric == "ter"
    assert gate.value > 50 and gate.expected == "0 in run-1"  # TER went from 0 up
    assert gate.detail.startswith("permutation on 40 paired items")
    (gate,) = regression_results(config, exact, worse, "run-1")
    assert gate.status == "pass"  # TER down: better

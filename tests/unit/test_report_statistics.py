"""The report's numbers describe what they stand beside: corpus-score intervals, metric
direction, and ranks that agree with the paired tests printed under them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sacrebleu
import yaml

from llmbench import config as cfg
from llmbench import stages
from llmbench.config import BenchConfig
from llmbench.report.leaderboard import build_leaderboard
from llmbench.report.statistics import (
    OVERALL,
    comparisons,
    intervals,
    overall_intervals,
)
from llmbench.scoring.metrics import METRICS, MetricDef
from llmbench.scoring.stats import holm
from llmbench.tables import completions_to_frame
from llmbench.types import Completion

ROOT = Path(__file__).resolve().parents[2]
SIMPLIFICATION = ROOT / "datasets" / "sentence_simplification.jsonl"
# Real outputs of the two default models on the simplification task (bench.yaml, greedy).
OUTPUTS = ROOT / "tests" / "data" / "simplification_outputs.jsonl"


def load_config(tmp_path: Path, tasks: list[dict[str, Any]], models: list[str]) -> BenchConfig:
    raw = {
        "name": "stats",
        "models": [{"name": m, "provider": "recorded", "model": "unused.jsonl"} for m in models],
        "tasks": tasks,
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return cfg.load(path)


def simplification(metrics: list[str]) -> dict[str, Any]:
    return {
        "name": "simplification",
        "source": {"path": str(SIMPLIFICATION)},
        "sample_id": "id",
        "target": "reference",
        "template": "{{ text }}",
        "extract": ["first_line"],
        "metrics": metrics,
    }


def real_outputs() -> dict[str, dict[str, str]]:
    outputs: dict[str, dict[str, str]] = {}
    for line in OUTPUTS.read_text().splitlines():
        row = json.loads(line)
        outputs.setdefault(row["model"], {})[row["sample_id"]] = row["output"]
    return outputs


def score_outputs(
    config: BenchConfig, outputs: dict[str, dict[str, str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and aggregates exactly as the score step makes them; a missing output is a
    failed request."""
    results, aggregates = [], []
    prices = {m.name: {m.name: m.price} for m in config.models if m.price is not None}
    for task in config.tasks:
        samples = stages.load_task(task, None)
        ids = samples["sample_id"].tolist()
        answers = {}
        for model in config.models:
            mine = outputs[model.name]
            completions = [
                Completion(text=mine[i]) if i in mine else Completion(error="failed") for i in ids
            ]
            answers[model.name] = completions_to_frame(ids, completions)
        r, a = stages.score_task(task, samples, answers, prices=prices)
        results.append(r)
        aggregates.append(a)
    return pd.concat(results, ignore_index=True), pd.concat(aggregates, ignore_index=True)


def aggregate(aggregates: pd.DataFrame, model: str, metric: str) -> float:
    found = aggregates[(aggregates["model"] == model) & (aggregates["metric"] == metric)]
    return float(found["value"].iloc[0])


# --- 3. an interval describes the number beside it -----------------------------------------


def test_bleu_and_chrf_intervals_and_tests_are_of_the_corpus_score(tmp_path: Path) -> None:
    config = load_config(tmp_path, [simplification(["bleu", "chrf"])], ["smollm", "gemma"])
    outputs = real_outputs()
    results, aggregates = score_outputs(
        config, {"smollm": outputs["smollm2-135m"], "gemma": outputs["gemma3-270m"]}
    )
    table = intervals(config, results)
    for row in table.to_dict("records"):
        reported = aggregate(aggregates, row["model"], row["metric"])  # the corpus score
        assert row["estimate"] == pytest.approx(reported, abs=1e-9)
        assert row["low"] <= reported <= row["high"]
        sentences = results.loc[results["model"] == row["model"], f"score.{row['metric']}"]
        assert reported != pytest.approx(sentences.mean())  # not the mean sentence score

    # The same bootstrap done by hand: sacrebleu's corpus BLEU on resampled item lists.
    rows = results[results["model"] == "smollm"]
    hypotheses = rows["answer"].tolist()
    references = [str(r[0]) for r in rows["references"]]
    rng = np.random.default_rng(123)
    by_hand = []
    for index in rng.integers(0, len(rows), size=(1000, len(rows))):
        by_hand.append(
            sacrebleu.corpus_bleu(
                [hypotheses[i] for i in index], [[references[i] for i in index]]
            ).score
        )
    low, high = np.quantile(by_hand, [0.025, 0.975])
    mine = table[(table["model"] == "smollm") & (table["metric"] == "bleu")].iloc[0]
    assert mine["low"] == pytest.approx(low, abs=1.0)
    assert mine["high"] == pytest.approx(high, abs=1.0)

    paired = comparisons(config, results).iloc[0]
    assert paired["method"] == "permutation"
    assert paired["difference"] == pytest.approx(
        aggregate(aggregates, "smollm", "bleu") - aggregate(aggregates, "gemma", "bleu")
    )
    assert paired["low"] <= paired["difference"] <= paired["high"]

    # The overall score's interval is around the leaderboard's score (corpus BLEU / 100).
    board = build_leaderboard(config, results, aggregates, table).set_index("model")
    for model, ci in overall_intervals(config, results).items():
        assert ci.estimate == pytest.approx(board.loc[model, "score"], abs=1e-12)
        assert ci.low <= board.loc[model, "score"] <= ci.high


def test_corpus_interval_skips_failed_requests(tmp_path: Path) -> None:
    config = load_config(tmp_path, [simplification(["bleu"])], ["smollm", "gemma"])
    outputs = real_outputs()
    partial = dict(list(outputs["smollm2-135m"].items())[:30])
    results, aggregates = score_outputs(
        config, {"smollm": partial, "gemma": outputs["gemma3-270m"]}
    )
    row = intervals(config, results).iloc[0]
    assert row["n"] == 30
    assert row["estimate"] == pytest.approx(aggregate(aggregates, "smollm", "bleu"), abs=1e-9)
    paired = comparisons(config, results).iloc[0]
    assert paired["n"] == 30 and not paired["same_items"]
    # A model with every request failed: no corpus, no interval, no test, no overall score.
    results, aggregates = score_outputs(config, {"smollm": {}, "gemma": outputs["gemma3-270m"]})
    row = intervals(config, results).set_index("model").loc["smollm"]
    assert row["n"] == 0 and math.isnan(row["estimate"]) and math.isnan(row["low"])
    assert comparisons(config, results).empty
    board = build_leaderboard(config, results, aggregates, intervals(config, results))
    assert board.set_index("model")["rank"].to_dict() == {"gemma": 1, "smollm": 2}


# --- 4. direction of metrics ---------------------------------------------------------------


def test_a_lower_is_better_metric_ranks_the_lower_score_first(tmp_path: Path) -> None:
    """TER (edits per reference word): the model that copies the references has TER 0."""
    config = load_config(tmp_path, [simplification(["ter"])], ["smollm", "oracle"])
    references = {
        json.loads(line)["id"]: json.loads(line)["reference"]
        for line in SIMPLIFICATION.read_text().splitlines()
    }
    results, aggregates = score_outputs(
        config, {"smollm": real_outputs()["smollm2-135m"], "oracle": references}
    )
    assert aggregate(aggregates, "oracle", "ter") == 0.0
    assert aggregate(aggregates, "smollm", "ter") > 20.0
    board = build_leaderboard(config, results, aggregates, intervals(config, results))
    board = board.set_index("model")
    assert board.loc["oracle", "rank"] == 1 and board.loc["smollm", "rank"] == 2
    assert board.loc["oracle", "simplification/rank"] == 1
    assert board.loc["oracle", "score"] == 1.0  # 1 - TER/100: higher is better overall
    assert board.loc["smollm", "score"] < board.loc["oracle", "score"]
    paired = comparisons(config, results).iloc[0]
    assert paired["difference"] > 0  # smollm - oracle: more edits ...
    assert paired["significant"] and paired["better"] == "oracle"  # ... so the oracle is better


def scores_frame(tasks: dict[str, dict[str, list[float]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and aggregates from given per-item scores: {task: {model: [score, ...]}}, the
    task's metric named as the task; NaN is a failed request."""
    rows, aggregates = [], []
    for task, models in tasks.items():
        for model, values in models.items():
            for i, value in enumerate(values):
                failed = math.isnan(value)
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "sample_id": f"{task}-{i}",
                        "answer": None,
                        "references": ["x"],
                        "error": "failed" if failed else None,
                        f"score.{task}": value,
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cost_usd": 0.0,
                        "cached": False,
                        "attempts": 1,
                        "latency_s": 0.1,
                    }
                )
            value = float(np.nanmean(values))
            aggregates.append({"model": model, "task": task, "metric": task, "value": value})
    return pd.DataFrame(rows), pd.DataFrame(aggregates)


def mean_task(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"path": "unused.jsonl"},
        "template": "{{ q }}",
        "target": "a",
        "metrics": [name],
    }


@pytest.fixture
def error_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test-only lower-is-better mean metric (and an accuracy-like one) in the registry."""
    monkeypatch.setitem(
        METRICS, "error_rate", MetricDef("error_rate", ("error_rate",), higher_is_better=False)
    )
    monkeypatch.setitem(METRICS, "correct", MetricDef("correct", ("correct",)))


@pytest.mark.usefixtures("error_rate")
def test_the_overall_score_and_ranks_read_the_direction(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    config = load_config(tmp_path, [mean_task("correct"), mean_task("error_rate")], ["good", "bad"])
    results, aggregates = scores_frame(
        {
            "correct": {
                "good": (rng.random(200) < 0.8).astype(float).tolist(),
                "bad": (rng.random(200) < 0.6).astype(float).tolist(),
            },
            "error_rate": {
                "good": (rng.random(200) < 0.05).astype(float).tolist(),
                "bad": (rng.random(200) < 0.6).astype(float).tolist(),
            },
        }
    )
    board = build_leaderboard(config, results, aggregates, intervals(config, results))
    board = board.set_index("model")
    good_errors = aggregate(aggregates, "good", "error_rate")
    good_correct = aggregate(aggregates, "good", "correct")
    assert board.loc["good", "score"] == pytest.approx((good_correct + 1 - good_errors) / 2)
    assert board.loc["good", "rank"] == 1 and board.loc["bad", "rank"] == 2
    assert board.loc["good", "error_rate/rank"] == 1 and board.loc["bad", "error_rate/rank"] == 2
    tests = comparisons(config, results).set_index("task")
    assert tests.loc["error_rate", "difference"] < 0  # good - bad: fewer errors ...
    assert tests.loc["error_rate", "better"] == "good"  # ... is better
    assert tests.loc[OVERALL, "better"] == "good"


# --- 5. ranks agree with the paired tests --------------------------------------------------


def correlated(n: int, a_only: int, b_only: int, both: int) -> tuple[list[float], list[float]]:
    """Two models' 0/1 scores on n items: both right on ``both``, one right on the others."""
    a = [1.0] * both + [1.0] * a_only + [0.0] * b_only
    b = [1.0] * both + [0.0] * a_only + [1.0] * b_only
    rest = n - len(a)
    return a + [0.0] * rest, b + [0.0] * rest


@pytest.mark.usefixtures("error_rate")
def test_ranks_separate_by_holm_adjusted_paired_tests(tmp_path: Path) -> None:
    # a and b: overlapping intervals (0.55 vs 0.51 on 300 items) but 15 vs 2 discordant
    # items: McNemar p = 0.002, significant after Holm over the three pairs.
    a, b = correlated(300, 15, 2, 150)
    c = [1.0] * 90 + [0.0] * 210  # far below both
    config = load_config(tmp_path, [mean_task("correct")], ["a", "b", "c"])
    results, aggregates = scores_frame({"correct": {"a": a, "b": b, "c": c}})
    table = intervals(config, results).set_index("model")
    assert table.loc["a", "low"] < table.loc["b", "high"]  # the intervals overlap
    board = build_leaderboard(config, results, aggregates, intervals(config, results))
    ranks = dict(zip(board["model"], board["rank"], strict=True))
    assert ranks == {"a": 1, "b": 2, "c": 3}
    tests = comparisons(config, results).set_index(["model_a", "model_b"])
    assert tests.loc[("a", "b"), "method"] == "mcnemar"
    assert tests["p_holm"].tolist() == pytest.approx(holm(tests["p_value"].tolist()))
    assert tests.loc[("a", "b"), "better"] == "a"


@pytest.mark.usefixtures("error_rate")
def test_a_raw_p_below_alpha_is_not_enough_after_holm(tmp_path: Path) -> None:
    # a is right alone on 14 items, b and c (identical) on 4: a vs b and a vs c both have
    # McNemar p = 0.031, significant alone; Holm over the three pairs makes them 0.093.
    a = [1.0] * 150 + [1.0] * 14 + [0.0] * 4 + [0.0] * 132
    b = [1.0] * 150 + [0.0] * 14 + [1.0] * 4 + [0.0] * 132
    config = load_config(tmp_path, [mean_task("correct")], ["a", "b", "c"])
    results, aggregates = scores_frame({"correct": {"a": a, "b": b, "c": list(b)}})
    tests = comparisons(config, results).set_index(["model_a", "model_b"])
    for pair in (("a", "b"), ("a", "c")):
        assert tests.loc[pair, "p_value"] == pytest.approx(0.0309, abs=1e-4)
        assert tests.loc[pair, "p_holm"] == pytest.approx(3 * tests.loc[pair, "p_value"])
        assert not tests.loc[pair, "significant"] and tests.loc[pair, "better"] == ""
    board = build_leaderboard(config, results, aggregates, intervals(config, results))
    assert board["rank"].tolist() == [1, 1, 1]


@pytest.mark.usefixtures("error_rate")
def test_ranks_fall_back_to_intervals_where_the_items_differ(tmp_path: Path) -> None:
    a, b = correlated(300, 15, 2, 150)
    b[-1] = math.nan  # b's last request failed: the two were not scored on the same items
    config = load_config(tmp_path, [mean_task("correct")], ["a", "b"])
    results, aggregates = scores_frame({"correct": {"a": a, "b": b}})
    test = comparisons(config, results).iloc[0]
    assert test["significant"] and not test["same_items"]  # on the 299 shared items
    board = build_leaderboard(config, results, aggregates, intervals(config, results))
    assert board["rank"].tolist() == [1, 1]  # the intervals overlap


@pytest.mark.usefixtures("error_rate")
def test_overall_ranks_use_a_paired_test_of_the_overall_score(tmp_path: Path) -> None:
    # On each task alone a is ahead by too little; over both the paired test is sure.
    a1, b1 = correlated(150, 9, 2, 60)
    a2, b2 = correlated(150, 9, 2, 80)
    config = load_config(tmp_path, [mean_task("correct"), mean_task("error_rate")], ["a", "b"])
    # error_rate: lower is better, so b's extra errors make a better on that task too.
    results, aggregates = scores_frame(
        {"correct": {"a": a1, "b": b1}, "error_rate": {"a": b2, "b": a2}}
    )
    tests = comparisons(config, results).set_index("task")
    assert not tests.loc["correct", "significant"] and not tests.loc["error_rate", "significant"]
    overall = tests.loc[OVERALL]
    assert overall["metric"] == "score" and overall["method"] == "permutation"
    assert overall["significant"] and overall["better"] == "a"
    board = build_leaderboard(config, results, aggregates, intervals(config, results))
    board = board.set_index("model")
    assert overall["difference"] == pytest.approx(board.loc["a", "score"] - board.loc["b", "score"])
    assert board.loc["a", "rank"] == 1 and board.loc["b", "rank"] == 2
    assert board.loc["a", "correct/rank"] == board.loc["b", "correct/rank"] == 1

"""configs/gsm8k_replay.yaml on the real file: four GPT-3 variants' published GSM8K solutions,
scored, tested pairwise and ranked (no ZenML: the stages as plain functions)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llmbench import config as cfg
from llmbench import stages
from llmbench.report import statistics
from llmbench.report.leaderboard import build_leaderboard
from llmbench.runtime import runner

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {
    "6b-finetuning": "6b_finetuning",
    "6b-verification": "6b_verification",
    "175b-finetuning": "175b_finetuning",
    "175b-verification": "175b_verification",
}


@pytest.fixture(scope="module")
def replay() -> tuple[cfg.BenchConfig, pd.DataFrame, pd.DataFrame]:
    solutions = ROOT.parent / "shared" / "data" / "gsm8k" / "example_model_solutions.jsonl"
    if not solutions.is_file():
        pytest.skip(f"shared benchmark data not found at {solutions}")
    bench = cfg.load(ROOT / "configs" / "gsm8k_replay.yaml")
    (task,) = bench.tasks
    samples = stages.load_task(task, None)
    results, aggregates = [], []
    for model in bench.models:
        completions = stages.generate(
            model,
            samples,
            runner.request_params(model, task, bench.execution.seed),
            settings=runner.RunSettings(),
            label=model.name,
        )
        scored, aggregate = stages.score(model, task, samples, completions)
        results.append(scored)
        aggregates.append(aggregate)
    return bench, pd.concat(results, ignore_index=True), pd.concat(aggregates, ignore_index=True)


def test_scores_reproduce_openais_labels(
    replay: tuple[cfg.BenchConfig, pd.DataFrame, pd.DataFrame],
) -> None:
    _, results, _ = replay
    solutions = ROOT.parent / "shared" / "data" / "gsm8k" / "example_model_solutions.jsonl"
    rows = [json.loads(line) for line in solutions.read_text().splitlines()]
    assert results["error"].isna().all()
    for name, field in VARIANTS.items():
        mine = results[results["model"] == name]["score.exact_match"].tolist()
        assert mine == [float(row[field]["is_correct"]) for row in rows]


def test_ranks_separate_where_the_paired_tests_do(
    replay: tuple[cfg.BenchConfig, pd.DataFrame, pd.DataFrame],
) -> None:
    bench, results, aggregates = replay
    report = statistics.build_report(bench, results, statistics.concat_verdicts([]))
    board = build_leaderboard(bench, results, aggregates, report.intervals).set_index("model")
    assert board["score"].round(4).to_dict() == {
        "175b-verification": 0.5625,
        "6b-verification": 0.3904,
        "175b-finetuning": 0.3472,
        "6b-finetuning": 0.2168,
    }
    # 6B verification and 175B fine-tuning: their intervals overlap (they shared rank 2) ...
    assert (
        board.loc["6b-verification", "score_ci_low"] < board.loc["175b-finetuning", "score_ci_high"]
    )
    # ... but on the same 1319 items McNemar says the 4.3-point difference is real.
    tests = report.comparisons.set_index(["model_a", "model_b"])
    pair = tests.loc[("6b-verification", "175b-finetuning")]
    assert pair["method"] == "mcnemar" and pair["n"] == 1319 and pair["same_items"]
    assert pair["p_value"] == pytest.approx(0.00315, abs=5e-5)
    assert pair["significant"] and pair["better"] == "6b-verification"
    assert report.comparisons["significant"].all()  # every pair, after Holm
    assert board["rank"].to_dict() == {
        "175b-verification": 1,
        "6b-verification": 2,
        "175b-finetuning": 3,
        "6b-finetuning": 4,
    }
    assert (board["rank"] == board["gsm8k_replay/rank"]).all()  # one task: the same rule

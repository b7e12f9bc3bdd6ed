"""The shipped MT-Bench (rubric) and AlpacaEval (pairwise, recorded outputs) configs run
offline on the real files in ../shared/data with a local llama.cpp judge, and land in
MLflow with confidence intervals."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.cli_runs import ROOT, isolated_env, run_cli

pytestmark = pytest.mark.slow

LIMIT = 2


def shipped(name: str, folder: Path) -> Path:
    """A shipped config with absolute paths and its own MLflow store under ``folder``."""
    config = yaml.safe_load((ROOT / "configs" / name).read_text())
    config["tasks"] = [str((ROOT / "configs" / t).resolve()) for t in config["tasks"]]
    for model in config["models"]:
        if model["provider"] == "recorded":
            model["model"] = str((ROOT / "configs" / model["model"]).resolve())
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def runs_of(folder: Path, experiment: str) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    return client.search_runs([found.experiment_id])


def test_mt_bench_rubric_with_a_local_judge(tmp_path: Path, shared_data: Path) -> None:
    env = isolated_env(tmp_path)
    run_cli(
        tmp_path,
        env,
        "--config",
        str(shipped("mt_bench.yaml", tmp_path)),
        "--limit",
        str(LIMIT),
        "--output-dir",
        "out",
    )
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    assert len(samples) == 2 * LIMIT
    unscored = 0
    for row in samples:
        # Both turns asked: turn 2 after the model's own turn-1 answer, each turn graded.
        assert len(row["follow_ups"]) == 1 and len(row["turn_answers"]) == 2
        assert row["output"] == row["turn_answers"][1]
        assert [c["turn"] for c in row["trace"]] == [0, 1]
        assert row["trace"][1]["input"][1]["content"] == row["turn_answers"][0]
        # The grammar keeps the local judge's reply JSON, but a 135M judge can ramble past
        # max_tokens before its score: that turn is unscored, and counted as such.
        turns = [row["scores"]["judge_turn1"], row["scores"]["judge_turn2"]]
        assert row["judgments"][0]["turn_grades"] == turns
        scored = [g for g in turns if g is not None]
        assert scored and all(1 <= g <= 10 for g in scored)
        assert row["scores"]["judge"] == pytest.approx(sum(scored) / len(scored))
        unscored += len(turns) - len(scored)
        assert row["judgments"][0]["judge"] == "judge"
        assert row["judge_cost_usd"] > 0
    runs = runs_of(tmp_path, "llmbench-mt-bench")
    child = next(r for r in runs if r.data.tags.get("llmbench.model") == "smollm2-135m")
    low = child.data.metrics["mt_bench/judge_ci_low"]
    high = child.data.metrics["mt_bench/judge_ci_high"]
    assert 1 <= low <= child.data.metrics["mt_bench/judge"] <= high <= 10
    assert {"mt_bench/judge_turn1", "mt_bench/judge_turn2"} <= set(child.data.metrics)
    # Each conversation is one MLflow session of two traces, one per turn.
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    traces = client.search_traces(locations=[child.info.experiment_id], max_results=100)
    sessions: dict[str, list[str]] = {}
    for trace in traces:
        key = trace.info.trace_metadata["mlflow.trace.session"]
        sessions.setdefault(key, []).append(trace.info.trace_metadata["llmbench.turn"])
    assert len(sessions) == 2 * LIMIT and all(sorted(t) == ["1", "2"] for t in sessions.values())
    parent = next(r for r in runs if r.data.tags.get("llmbench.kind") == "benchmark")
    assert parent.data.metrics["judge/mt_bench/judge/unscored"] == unscored


def test_alpaca_eval_recorded_outputs_judged_pairwise(tmp_path: Path, shared_data: Path) -> None:
    env = isolated_env(tmp_path)
    result = run_cli(
        tmp_path,
        env,
        "--config",
        str(shipped("alpaca_eval.yaml", tmp_path)),
        "--limit",
        str(LIMIT),
        "--output-dir",
        "out",
    )
    assert "All 2 generation steps were cached" not in result.stdout  # first run
    board = {r["model"]: r for r in csv.DictReader((tmp_path / "out" / "leaderboard.csv").open())}
    assert set(board) == {"gpt4_1106_preview", "gpt-4o-mini"}
    rates = [float(board[m]["alpaca_eval/win_rate"]) for m in board]
    assert sum(rates) == pytest.approx(1.0)  # one pair: the two win rates complement
    verdicts = list(csv.DictReader((tmp_path / "out" / "statistics" / "verdicts.csv").open()))
    assert len(verdicts) == LIMIT
    assert all(v["forward"] and v["swapped"] for v in verdicts)  # both orders were judged
    judges = list(csv.DictReader((tmp_path / "out" / "statistics" / "judges.csv").open()))
    consistency = float(judges[0]["position_consistency"])
    assert 0.0 <= consistency <= 1.0
    runs = runs_of(tmp_path, "llmbench")
    child = next(r for r in runs if r.data.tags.get("llmbench.model") == "gpt-4o-mini")
    assert not math.isnan(child.data.metrics["alpaca_eval/bt_rating"])
    assert "alpaca_eval/win_rate_ci_high" in child.data.metrics

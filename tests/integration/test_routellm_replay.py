"""The shipped RouteLLM GSM8K replay on the real file: the data's own figures come out
exactly, and a random router's APGR is 0.5 within its interval."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.cli_runs import isolated_env, run_cli
from tests.integration.test_real_judged import shipped

pytestmark = pytest.mark.slow


def test_routellm_gsm8k_replay_reproduces_the_data(tmp_path: Path, shared_data: Path) -> None:
    source = shared_data / "routellm" / "routellm" / "evals" / "gsm8k" / "gsm8k_responses.csv"
    rows = list(csv.DictReader(source.open()))
    weak = sum(r["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True" for r in rows)
    strong = sum(r["gpt-4-1106-preview"] == "True" for r in rows)
    assert (len(rows), weak, strong) == (1319, 842, 1130)  # 63.84%, 85.67%

    result = run_cli(
        tmp_path,
        isolated_env(tmp_path),
        "--config",
        str(shipped("routellm_gsm8k.yaml", tmp_path)),
        "--output-dir",
        "out",
    )
    board = {r["model"]: r for r in csv.DictReader((tmp_path / "out" / "leaderboard.csv").open())}
    metric = "routellm_gsm8k/exact_match"
    assert float(board["mixtral-8x7b-instruct"][metric]) == pytest.approx(842 / 1319)
    assert float(board["gpt-4-1106-preview"][metric]) == pytest.approx(1130 / 1319)
    # Output tokens estimated from the recorded responses, priced from configs/prices.yaml.
    assert float(board["gpt-4-1106-preview"]["cost_usd"]) > 20 * float(
        board["mixtral-8x7b-instruct"]["cost_usd"]
    )

    [routing] = list(csv.DictReader((tmp_path / "out" / "statistics" / "routing.csv").open()))
    assert routing["model"] == "random-router" and int(routing["items"]) == 1319
    assert float(routing["weak_score"]) == pytest.approx(0.6384, abs=5e-5)
    assert float(routing["strong_score"]) == pytest.approx(0.8567, abs=5e-5)
    assert float(routing["oracle_score"]) == pytest.approx(0.9287, abs=5e-5)
    assert float(routing["apgr_ci_low"]) <= 0.5 <= float(routing["apgr_ci_high"])
    assert 0.45 <= float(routing["router_strong_share"]) <= 0.55
    assert "APGR" in result.stdout

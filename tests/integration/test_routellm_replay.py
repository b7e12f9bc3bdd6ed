"""The shipped RouteLLM GSM8K replay on the real file: the data's own figures come out
exactly, and a random router's APGR is 0.5 within its interval."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

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
    assert 0.4 <= float(routing["router_pgr"]) <= 0.6  # half the calls, about half the gap
    assert "APGR" in result.stdout

    # A learned router, trained on one half of the items and scored on the other only.
    from llmbench import route
    from llmbench.strategies.learned import load

    router = tmp_path / "router.joblib"
    assert (
        route.main(
            [
                "train",
                str(tmp_path / "out"),
                "--task",
                "routellm_gsm8k",
                "--weak",
                "mixtral-8x7b-instruct",
                "--strong",
                "gpt-4-1106-preview",
                "-o",
                str(router),
            ]
        )
        == 0
    )
    trained = load(str(router))
    assert len(trained.train_ids) + trained.meta["test_items"] == 1319
    learned = shipped("routellm_gsm8k_learned.yaml", tmp_path)
    config = yaml.safe_load(learned.read_text())
    config["strategies"][1]["options"]["threshold"]["path"] = str(router)
    learned.write_text(yaml.safe_dump(config))
    run_cli(tmp_path, isolated_env(tmp_path), "--config", str(learned), "--output-dir", "held")
    routing = {
        r["model"]: r
        for r in csv.DictReader((tmp_path / "held" / "statistics" / "routing.csv").open())
    }
    held_out = routing["learned-router"]
    assert int(held_out["items"]) == trained.meta["test_items"]
    assert float(held_out["apgr"]) == pytest.approx(trained.meta["test_apgr"])
    assert (
        float(held_out["apgr_ci_low"]) < float(held_out["apgr"]) < float(held_out["apgr_ci_high"])
    )
    samples = [json.loads(line) for line in (tmp_path / "held" / "samples.jsonl").open()]
    assert not {s["sample_id"] for s in samples} & trained.train_ids  # never scored on them

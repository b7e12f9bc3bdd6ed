"""configs/cloud.yaml end to end, offline: every cloud model through its official SDK against
the loopback fake, one model's key from a ZenML secret, and no key anywhere it should not be."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli_runs import NO_WAIT_RETRIES, isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-cloud-e2e-7b3d9a51-never-logged"
SECRET_KEY = "sk-from-zenml-secret-2c8e4f10"
LIMIT = 2


def cloud_config(folder: Path) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "cloud.yaml").read_text())
    config["tasks"] = [str((ROOT / "configs" / t).resolve()) for t in config["tasks"]]
    config["tracking"] = {"experiment": "cloud-e2e"}
    config["execution"]["retries"] = NO_WAIT_RETRIES
    for model in config["models"]:
        if model["name"] == "gpt-4o-mini":
            model["secret"] = "openai-from-zenml"  # its key comes from a ZenML secret
    path = folder / "cloud.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cloud_config_runs_end_to_end(server: ProviderServer, tmp_path: Path) -> None:
    env = isolated_env(
        tmp_path,
        OPENAI_BASE_URL=server.url + "/v1",
        DEEPSEEK_BASE_URL=server.url + "/v1",
        GROQ_BASE_URL=server.url + "/v1",
        ANTHROPIC_BASE_URL=server.url,
        GEMINI_BASE_URL=server.url,
        OLLAMA_HOST=server.url,
        ANTHROPIC_API_KEY=KEY,
        GEMINI_API_KEY=KEY,
        DEEPSEEK_API_KEY=KEY,
        GROQ_API_KEY=KEY,
    )
    for name in ("GOOGLE_API_KEY", "OPENAI_API_KEY"):
        env.pop(name, None)
    create_secret = (
        "from zenml.client import Client; Client().create_secret("
        f"'openai-from-zenml', values={{'OPENAI_API_KEY': {SECRET_KEY!r}}})"
    )
    subprocess.run([sys.executable, "-c", create_secret], env=env, check=True, timeout=300)
    config = cloud_config(tmp_path)

    # gpt-4o (same provider, no secret) needs OPENAI_API_KEY from the environment.
    env["OPENAI_API_KEY"] = KEY
    result = run_cli(
        tmp_path, env, "--config", str(config), "--limit", str(LIMIT), "--output-dir", "out"
    )

    expected = yaml.safe_load((ROOT / "configs" / "cloud.yaml").read_text())["models"]
    prices = yaml.safe_load((ROOT / "configs" / "prices.yaml").read_text())["models"]
    board = {r["model"]: r for r in csv.DictReader((tmp_path / "out" / "leaderboard.csv").open())}
    assert set(board) == {m["name"] for m in expected}
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    for model in expected:
        mine = [s for s in samples if s["model"] == model["name"]]
        assert len(mine) == 4 * LIMIT
        price = prices[model["model"]]
        for row in mine:
            assert row["error"] is None, row["error"]
            assert row["output"].startswith("echo:")
            if "per_hour" in price:
                want = price["per_hour"] * row["latency_s"] / 3600
            else:
                want = (
                    row["input_tokens"] * price["input_per_1m"]
                    + row["output_tokens"] * price["output_per_1m"]
                ) / 1e6
            assert row["cost_usd"] == pytest.approx(want, rel=1e-12)
        assert float(board[model["name"]]["cost_usd"]) == pytest.approx(
            sum(r["cost_usd"] for r in mine), rel=1e-12
        )
        assert int(board[model["name"]]["errors"]) == 0

    # The secret's key was used for gpt-4o-mini, the environment's for gpt-4o.
    openai_requests = [r for r in server.requests if r.vendor == "openai"]
    by_model = {r.model: r.headers.get("authorization", "") for r in openai_requests}
    assert SECRET_KEY in by_model["gpt-4o-mini"] and KEY in by_model["gpt-4o"]

    # No key in the output, the results, MLflow's store or ZenML's artifacts.
    assert KEY not in result.stdout + result.stderr
    assert SECRET_KEY not in result.stdout + result.stderr
    leaked = []
    for path in tmp_path.rglob("*"):
        if not path.is_file() or path.name == "zenml.db":  # the secrets store itself
            continue
        data = path.read_bytes()
        if KEY.encode() in data or SECRET_KEY.encode() in data:
            leaked.append(str(path))
    assert leaked == []

    # Repeating the finished run, even with ZenML's cache off, sends no request: every answer
    # comes from the response cache, and the run says what that saved.
    sent = len(server.requests)
    again = run_cli(
        tmp_path,
        env,
        "--config",
        str(config),
        "--limit",
        str(LIMIT),
        "--output-dir",
        "again",
        "--no-cache",
    )
    assert "0 were cached" in again.stdout  # every ZenML step ran ...
    assert len(server.requests) == sent  # ... and called no model
    rerun = {r["model"]: r for r in csv.DictReader((tmp_path / "again" / "leaderboard.csv").open())}
    for name, row in rerun.items():
        assert int(row["cache_hits"]) == 4 * LIMIT
        assert float(row["spend_usd"]) == 0.0
        assert float(row["cost_usd"]) == pytest.approx(float(board[name]["cost_usd"]))
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cloud-e2e")
    assert experiment is not None
    [latest] = client.search_runs(
        [experiment.experiment_id],
        "tags.`llmbench.kind` = 'benchmark'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    metrics = latest.data.metrics
    assert metrics["cache_hits"] == len(expected) * 4 * LIMIT and metrics["cache_misses"] == 0
    assert metrics["saved_usd"] == pytest.approx(metrics["cost_usd"]) and metrics["spend_usd"] == 0

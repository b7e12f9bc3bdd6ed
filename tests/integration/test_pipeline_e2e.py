"""The whole benchmark through the real CLI, ZenML (isolated store) and MLflow (sqlite).

Three runs share one isolated ZenML store: a first run, an unchanged rerun (every
generation cached, no model called), and a run with one more model (only its steps run).
"""

from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli_runs import isolated_env, run_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 3
TASKS = ["arithmetic", "multiple_choice"]
BASE_MODELS = [
    {
        "name": "smollm2",
        "provider": "llamacpp",
        "model": "smollm2-135m-instruct",
        "params": {"max_tokens": 32},
    },
    {
        "name": "gemma3",
        "provider": "llamacpp",
        "model": "gemma-3-270m",
        "params": {"max_tokens": 32},
    },
]
EXTRA_MODEL = {
    "name": "smollm2-warm",
    "provider": "llamacpp",
    "model": "smollm2-135m-instruct",
    "params": {"max_tokens": 32, "temperature": 0.7, "seed": 7},
}


def write_config(folder: Path, models: list[dict[str, object]]) -> Path:
    config = {
        "name": "e2e",
        "models": models,
        "tasks": [str(ROOT / "configs" / "tasks" / f"{t}.yaml") for t in TASKS],
        "execution": {"limit": LIMIT, "concurrency": 2},
        "tracking": {"experiment": "e2e-test"},
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def artifact_versions(folder: Path) -> int:
    """How many artifact versions the run's ZenML store holds."""
    (store,) = (folder / "zenml").rglob("zenml.db")
    with contextlib.closing(sqlite3.connect(store)) as db:
        (count,) = db.execute("SELECT count(*) FROM artifact_version").fetchone()
    return int(count)


def run_bench(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(folder, env, "--config", str(folder / "bench.yaml"), *args)


def zenml_steps(env: dict[str, str], run_name: str) -> dict[str, str]:
    script = (
        "import json; from zenml.client import Client;"
        f"run = Client().get_pipeline_run({run_name!r});"
        "print(json.dumps({k: str(s.status) for k, s in run.steps.items()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("e2e")
    return folder, isolated_env(folder)


def test_first_run_cached_rerun_and_added_model(workspace: tuple[Path, dict[str, str]]) -> None:
    from mlflow.tracking import MlflowClient

    folder, env = workspace
    write_config(folder, BASE_MODELS)

    # 1. First run: every (model, task) pair generated.
    first = run_bench(folder, env, "--run-name", "e2e-1")
    assert "Generated 4 of 4 (model, task) pairs; 0 were cached." in first.stdout
    assert "mlflow ui --backend-store-uri" in first.stdout
    out = folder / "results" / "latest"
    assert out.resolve() == (folder / "results" / "e2e-1").resolve()
    board = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert sorted(r["model"] for r in board) == ["gemma3", "smollm2"]
    for column in (
        "score",
        "arithmetic/exact_match",
        "multiple_choice/accuracy",
        "cost_usd",
        "latency_p50_s",
        "latency_p95_s",
        "errors",
        "input_tokens",
        "output_tokens",
    ):
        assert column in board[0], column
    samples = [json.loads(line) for line in (out / "samples.jsonl").open()]
    assert len(samples) == 2 * len(TASKS) * LIMIT
    for row in samples:
        assert {
            "model",
            "task",
            "sample_id",
            "prompt",
            "output",
            "answer",
            "scores",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "latency_s",
            "error",
            "cached",
        } <= set(row)
        assert row["error"] is None and row["output_tokens"] > 0
        # Local models are priced by compute time: cost = hourly rate x latency, exactly.
        assert row["cost_usd"] == pytest.approx(0.085 * row["latency_s"] / 3600, rel=1e-9)
    for record in board:
        mine = [r for r in samples if r["model"] == record["model"]]
        assert float(record["cost_usd"]) == pytest.approx(sum(r["cost_usd"] for r in mine))
        assert int(record["input_tokens"]) == sum(r["input_tokens"] for r in mine)
        exact = [r["scores"]["exact_match"] for r in mine if r["task"] == "arithmetic"]
        assert float(record["arithmetic/exact_match"]) == pytest.approx(sum(exact) / len(exact))

    # MLflow: a parent run per benchmark run, a child run per model, metrics and artifacts.
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e-test")
    assert experiment is not None
    assert experiment.artifact_location.startswith(str(folder / "mlruns"))
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("llmbench.kind") == "benchmark"]
    children = [r for r in runs if r.data.tags.get("llmbench.kind") == "model"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    for key in (
        "config_hash",
        "models",
        "model_ids",
        "tasks",
        "git_sha",
        "version.zenml",
        "version.mlflow",
        "version.llama-cpp-python",
        "zenml_run_id",
    ):
        assert key in parent.data.params, key
    assert parent.data.params["tasks"] == ",".join(TASKS)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.csv", "config.resolved.yaml", "prices.snapshot.yaml"} <= artifacts
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        metrics = child.data.metrics
        for key in (
            "arithmetic/exact_match",
            "multiple_choice/accuracy",
            "cost_usd",
            "input_tokens",
            "output_tokens",
            "latency_p50_s",
            "latency_p95_s",
            "errors",
        ):
            assert key in metrics, key
        row = next(r for r in board if r["model"] == child.data.params["model"])
        assert metrics["cost_usd"] == pytest.approx(float(row["cost_usd"]))
        assert "samples.json" in {a.path for a in client.list_artifacts(child.info.run_id)}
    local = client.download_artifacts(children[0].info.run_id, "samples.json", str(folder))
    table = json.loads(Path(local).read_text())
    assert len(table["data"]) == len(TASKS) * LIMIT
    assert {"prompt", "output", "score.exact_match", "cost_usd"} <= set(table["columns"])

    steps = zenml_steps(env, "e2e-1")
    assert sum(name.startswith("generate__") for name in steps) == 4
    assert set(steps.values()) == {"completed"}

    # 2. Unchanged rerun: no model is called, results identical, logged again. The only
    # artifacts it writes are the outputs of the steps that run (the report's page, the
    # MLflow run id): no step input is uploaded as an artifact, and the plots come from the
    # cached leaderboard step, not drawn again.
    stored = artifact_versions(folder)
    second = run_bench(folder, env, "--run-name", "e2e-2")
    assert "All 4 generation steps were cached: no model was called." in second.stdout
    assert artifact_versions(folder) - stored == 2
    board2 = list(csv.DictReader((folder / "results" / "e2e-2" / "leaderboard.csv").open()))
    assert board2 == board
    assert (
        len(client.search_runs([experiment.experiment_id], "tags.`llmbench.kind` = 'benchmark'"))
        == 2
    )

    # 3. One more model: only its steps run.
    write_config(folder, [*BASE_MODELS, EXTRA_MODEL])
    third = run_bench(folder, env, "--run-name", "e2e-3")
    assert "Generated 2 of 6 (model, task) pairs; 4 were cached." in third.stdout
    steps = zenml_steps(env, "e2e-3")
    for name, status in steps.items():
        if name.startswith("generate__"):
            expected = "completed" if "smollm2-warm" in name else "cached"
            assert status == expected, (name, status)

"""A strategy restricted to one of two tasks, through run.py, ZenML and MLflow: its steps,
rows and same-spend baseline only on its task, the dry run counting only that task, and the
leaderboard and MLflow showing it unranked overall with its per-task figures."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_runs import isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_pipeline_e2e import zenml_steps

pytestmark = pytest.mark.slow

ITEMS = 4


def members(request: RecordedRequest) -> Reply:
    """The cheap model finds no number for odd questions; the strong one always answers."""
    text = request.last_user_text or ""
    number = int(text.rsplit(" ", 1)[-1].rstrip("?"))
    factor = 3 if "thrice" in text else 2
    if request.model == "gpt-cheap" and number % 2:
        return Reply(text="Not sure.", input_tokens=20, output_tokens=3)
    return Reply(text=f"It is {number * factor}", input_tokens=20, output_tokens=4)


def write_config(folder: Path) -> Path:
    tasks = []
    for name, word, factor in (("double", "twice", 2), ("triple", "thrice", 3)):
        data = folder / f"{name}.jsonl"
        data.write_text(
            "".join(
                json.dumps({"q": f"What is {word} {n}?", "a": str(factor * n)}) + "\n"
                for n in range(ITEMS)
            )
        )
        tasks.append(
            {
                "name": name,
                "source": {"path": str(data)},
                "template": "{{ q }}",
                "target": "a",
                "extract": ["last_number"],
                "metrics": ["exact_match"],
            }
        )
    price: dict[str, Any] = {"source": "test", "date": "2026-12-01"}
    config = {
        "name": "strategy-tasks-e2e",
        "models": [
            {
                "name": "cheap",
                "provider": "openai",
                "model": "gpt-cheap",
                "params": {"max_tokens": 16},
                "price": {"input_per_1m": 1.0, "output_per_1m": 2.0, **price},
            },
            {
                "name": "strong",
                "provider": "openai",
                "model": "gpt-strong",
                "params": {"max_tokens": 16},
                "price": {"input_per_1m": 10.0, "output_per_1m": 30.0, **price},
            },
        ],
        "strategies": [
            {
                "name": "cascade",
                "kind": "cascade",
                "members": {"first": "cheap", "then": "strong"},
                "tasks": ["double"],
            },
        ],
        "tasks": tasks,
        "execution": {"concurrency": 4},
        "tracking": {"experiment": "strategy-tasks-e2e"},
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def dry_run_samples(stdout: str) -> dict[str, int]:
    """Each row's sample count from the dry run's table."""
    counts = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 3 and cells[2].isdigit():
            counts[cells[0]] = int(cells[2])
    return counts


def test_a_strategy_on_one_of_two_tasks(server: ProviderServer, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    server.clear()
    server.default = members
    env = isolated_env(tmp_path, OPENAI_BASE_URL=server.url + "/v1", OPENAI_API_KEY="sk-e2e")
    config = write_config(tmp_path)

    dry = run_cli(tmp_path, env, "--config", str(config), "--dry-run")
    counts = dry_run_samples(dry.stdout)
    assert counts["cheap"] == 2 * ITEMS and counts["strong"] == 2 * ITEMS
    assert counts["cascade"] == ITEMS and counts["cascade.same-spend"] == ITEMS
    assert server.requests == []

    # --tasks without the strategy's task: left out, with one line saying so.
    dropped = run_cli(tmp_path, env, "--config", str(config), "--dry-run", "--tasks", "triple")
    assert "cascade" not in dry_run_samples(dropped.stdout)
    assert "strategy cascade left out: it runs on double, not on --tasks triple" in dropped.stderr

    first = run_cli(tmp_path, env, "--config", str(config), "--run-name", "p-1")
    steps = zenml_steps(env, "p-1")
    assert [s for s in steps if s.startswith("answer__")] == ["answer__cascade__double"]
    assert [s for s in steps if s.startswith("same_spend__")] == ["same_spend__double"]

    out = tmp_path / "results" / "p-1"
    samples = [json.loads(line) for line in (out / "samples.jsonl").open()]
    assert {r["task"] for r in samples if r["model"] == "cascade"} == {"double"}
    assert sum(r["model"] == "cascade" for r in samples) == ITEMS
    same_spend = list(csv.DictReader((out / "statistics" / "same_spend.csv").open()))
    assert [(r["model"], r["task"]) for r in same_spend] == [("cascade", "double")]

    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [r["model"] for r in rows][-1] == "cascade"  # after the ranked entrants
    board = {r["model"]: r for r in rows}
    mine = board["cascade"]
    assert mine["rank"] == "" and mine["score"] == ""
    assert mine["score_ci_low"] == "" and mine["score_ci_high"] == ""
    assert float(mine["double/exact_match"]) == 1.0 and mine["double/rank"] == "1"
    assert mine["triple/exact_match"] == "" and mine["triple/rank"] == ""
    assert mine["samples"] == str(ITEMS) and mine["tasks_run"] == "1"
    assert board["strong"]["rank"] == "1" and board["strong"]["triple/rank"] == "1"
    assert "cascade ran on 1 of 2 tasks (double): no overall score or rank" in first.stdout
    page = (out / "report.html").read_text()
    assert "cascade ran on 1 of 2 tasks (double)" in page

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("strategy-tasks-e2e")
    assert experiment is not None
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    cascade, strong = runs["cascade"].data, runs["strong"].data
    assert "score" in strong.metrics and "rank" in strong.metrics
    assert not {"score", "score_ci_low", "score_ci_high", "rank"} & set(cascade.metrics)
    assert not [k for k in cascade.metrics if k.startswith("triple/")]
    assert cascade.metrics["double/exact_match"] == 1.0
    assert cascade.tags["llmbench.tasks"] == "double"

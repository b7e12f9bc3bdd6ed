"""Strategies through run.py, ZenML and MLflow: a router and a cascade over two models on
the loopback OpenAI API, ranked beside them; their member calls come from the response
cache; an unchanged rerun is all cache hits; a changed member re-runs the strategies."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_runs import isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_pipeline_e2e import zenml_steps

pytestmark = pytest.mark.slow

ITEMS = 6


def members(request: RecordedRequest) -> Reply:
    """The cheap model finds no number for odd questions; the strong one always answers."""
    text = request.last_user_text or ""
    number = int(text.rsplit(" ", 1)[-1].rstrip("?"))
    if request.model == "gpt-cheap" and number % 2:
        return Reply(text="Not sure.", input_tokens=20, output_tokens=3)
    return Reply(text=f"It is {number * 2}", input_tokens=20, output_tokens=4)


def write_config(folder: Path, cheap_max_tokens: int = 16) -> Path:
    data = folder / "double.jsonl"
    data.write_text(
        "".join(json.dumps({"q": f"What is twice {n}?", "a": str(2 * n)}) + "\n" for n in range(6))
    )
    price: dict[str, Any] = {"source": "test", "date": "2026-12-01"}
    config = {
        "name": "strategies-e2e",
        "models": [
            {
                "name": "cheap",
                "provider": "openai",
                "model": "gpt-cheap",
                "params": {"max_tokens": cheap_max_tokens},
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
            },
            {
                "name": "router",
                "kind": "router",
                "members": {"small": "cheap", "big": "strong"},
                "options": {"rules": [{"regex": "[02468]\\?$", "use": "small"}], "default": "big"},
            },
        ],
        "tasks": [
            {
                "name": "double",
                "source": {"path": str(data)},
                "template": "{{ q }}",
                "target": "a",
                "extract": ["last_number"],
                "metrics": ["exact_match"],
            }
        ],
        "execution": {"concurrency": 4},
        "tracking": {"experiment": "strategies-e2e"},
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_strategies_rank_beside_their_members(server: ProviderServer, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    server.clear()
    server.default = members
    env = isolated_env(tmp_path, OPENAI_BASE_URL=server.url + "/v1", OPENAI_API_KEY="sk-e2e")
    config = write_config(tmp_path)

    first = run_cli(tmp_path, env, "--config", str(config), "--run-name", "s-1")
    # Each model's own row asked every item once; the strategies' calls were all free.
    asked = [r.model for r in server.requests]
    assert asked.count("gpt-cheap") == ITEMS and asked.count("gpt-strong") == ITEMS
    out = tmp_path / "results" / "s-1"
    board = {r["model"]: r for r in csv.DictReader((out / "leaderboard.csv").open())}
    assert set(board) == {"cheap", "strong", "cascade", "router"}
    assert board["cascade"]["provider"] == "strategy:cascade"
    assert float(board["cheap"]["double/exact_match"]) == pytest.approx(0.5)
    for name in ("strong", "cascade", "router"):
        assert float(board[name]["double/exact_match"]) == 1.0
        assert board[name]["rank"] == "1"
    assert float(board["cascade"]["spend_usd"]) == 0.0
    cheap_cost = 3 * (20 * 1 + 4 * 2) / 1e6 + 3 * (20 * 1 + 3 * 2) / 1e6
    escalations = 3 * (20 * 10 + 4 * 30) / 1e6
    assert float(board["cascade"]["cost_usd"]) == pytest.approx(cheap_cost + escalations)

    samples = [json.loads(line) for line in (out / "samples.jsonl").open()]
    cascade = sorted((r for r in samples if r["model"] == "cascade"), key=lambda r: r["sample_id"])
    assert [r["answered_by"] for r in cascade] == ["cheap", "strong"] * 3
    escalated = cascade[1]["trace"]
    assert [c["model"] for c in escalated] == ["cheap", "strong"]
    assert escalated[0]["note"] == "escalated: no answer extracted"
    assert all(c["cached"] for r in cascade for c in r["trace"])

    strategies = {
        r["model"]: r for r in csv.DictReader((out / "statistics" / "strategies.csv").open())
    }
    assert float(strategies["cascade"]["escalation_rate"]) == pytest.approx(0.5)
    assert int(strategies["cascade"]["free_member_calls"]) == 9
    assert json.loads(strategies["router"]["answers_by"]) == {"cheap": 0.5, "strong": 0.5}
    assert strategies["router"]["pareto"] == "True"  # as good as strong, cheaper
    assert strategies["strong"]["pareto"] == "False"
    comparisons = list(csv.DictReader((out / "statistics" / "comparisons.csv").open()))
    pairs = {(r["model_a"], r["model_b"]) for r in comparisons}
    assert ("cheap", "cascade") in pairs and ("strong", "router") in pairs
    assert "strategies (Pareto" in first.stdout
    # Each is read against strong, its best member, and strong paid as much: cheaper than
    # one strong answer an item, so one answer of it (its own row's, no request sent).
    same_spend = {
        r["model"]: r for r in csv.DictReader((out / "statistics" / "same_spend.csv").open())
    }
    assert set(same_spend) == {"cascade", "router"}
    assert {(r["best_member"], r["draws"], r["baseline"]) for r in same_spend.values()} == {
        ("strong", "1", "strong x1")
    }
    assert same_spend["cascade"]["summary"] in first.stdout
    rounds = list(csv.DictReader((out / "statistics" / "rounds.csv").open()))
    assert [(r["model"], r["round"]) for r in rounds if r["model"] == "cascade"] == [
        ("cascade", "0"),
        ("cascade", "1"),
    ]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("strategies-e2e")
    assert experiment is not None
    kinds = [
        r.data.tags.get("llmbench.kind") for r in client.search_runs([experiment.experiment_id])
    ]
    assert kinds.count("strategy") == 2 and kinds.count("model") == 2

    # Every answer is a trace on the experiment's GenAI side, its calls LLM spans priced
    # from the run's snapshot.
    traces = client.search_traces(locations=[experiment.experiment_id], max_results=100)
    assert len(traces) == 4 * ITEMS
    by_model: dict[str, list[Any]] = {}
    for trace in traces:
        by_model.setdefault(trace.info.trace_metadata["llmbench.model"], []).append(trace)
    escalated = [
        t
        for t in by_model["cascade"]
        if len([s for s in t.data.spans if s.span_type == "LLM"]) == 2
    ]
    assert len(escalated) == 3
    cheap_span, strong_span = sorted(
        (s for s in escalated[0].data.spans if s.span_type == "LLM"),
        key=lambda s: s.start_time_ns,
    )
    assert cheap_span.attributes["mlflow.llm.model"] == "cheap"
    assert cheap_span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == 20
    assert strong_span.attributes["mlflow.llm.cost"]["total_cost"] == pytest.approx(
        (20 * 10 + 4 * 30) / 1e6
    )
    assert strong_span.attributes["mlflow.llm.cost"]["input_cost"] == pytest.approx(200 / 1e6)
    runs_by_name = {
        r.info.run_name: r.info.run_id for r in client.search_runs([experiment.experiment_id])
    }
    assert escalated[0].info.trace_metadata["mlflow.sourceRun"] == runs_by_name["cascade"]

    steps = zenml_steps(env, "s-1")
    assert {"answer__cascade__double", "answer__router__double"} <= set(steps)
    # One score step per task; the task's same-spend baselines are drawn and scored in one.
    assert [name for name in steps if name.startswith("score__")] == ["score__double"]
    assert [name for name in steps if name.startswith("same_spend__")] == ["same_spend__double"]

    # Unchanged: every step cached, nothing sent.
    server.clear()
    run_cli(tmp_path, env, "--config", str(config), "--run-name", "s-2")
    assert server.requests == []
    assert set(zenml_steps(env, "s-2").values()) >= {"cached"}
    assert zenml_steps(env, "s-2")["answer__cascade__double"] == "cached"
    assert zenml_steps(env, "s-2")["same_spend__double"] == "cached"

    # A changed member: its row and both strategies re-run, the other member stays cached.
    write_config(tmp_path, cheap_max_tokens=24)
    run_cli(tmp_path, env, "--config", str(config), "--run-name", "s-3")
    steps = zenml_steps(env, "s-3")
    assert steps["generate__cheap__double"] == "completed"
    assert steps["generate__strong__double"] == "cached"
    assert steps["answer__cascade__double"] == "completed"
    assert steps["answer__router__double"] == "completed"
    assert [r.model for r in server.requests].count("gpt-strong") == 0

"""A multi-step strategy against its best member and its same-spend baseline, through the
real model client, the OpenAI SDK and the loopback server: the member chosen, its n draws
(draw 0 from the response cache, the others n - 1 new requests), the paired tests, the
rounds table and the line the report prints, from the stages the pipeline runs."""

from __future__ import annotations

import html
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from rich.console import Console

from llmbench import stages
from llmbench.report.html import render_report
from llmbench.report.leaderboard import build_leaderboard
from llmbench.report.output import print_orchestration
from llmbench.report.statistics import Report, build_report
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.runtime.runner import request_params
from llmbench.strategies.base import TaskView
from llmbench.strategies.build import identity
from llmbench.tables import samples_to_frame
from llmbench.tracking.mlflow_log import _log_report, _log_strategy
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_strategies import (
    ZERO_WAIT,
    bench,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
    samples,
)

STRONG_BY_SEED = {1: "It is 4", 2: "It is 5", 3: "It is 4"}


def members(request: RecordedRequest) -> Reply:
    """cheap always says 5 (wrong); strong answers by seed (right at draw 0) and critiques
    every answer; a strong answer costs 160 micro-dollars, the loop 14 + 500 + 14."""
    text = request.last_user_text or ""
    if request.model == "gpt-cheap":
        return Reply(text="It is 5", input_tokens=10, output_tokens=2)
    if text.startswith("Review this answer"):
        return Reply(text="Not right. [[REVISE]]", input_tokens=20, output_tokens=10)
    seed = request.body.get("seed")
    assert isinstance(seed, int)
    return Reply(text=STRONG_BY_SEED[seed], input_tokens=10, output_tokens=2)


def test_an_evaluator_optimizer_against_its_member_paid_as_much(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.default = members
    refine = {
        "name": "refine",
        "kind": "evaluator_optimizer",
        "members": {"generator": "cheap", "evaluator": "strong"},
        "options": {"max_rounds": 1},
    }
    config = bench([refine])
    config = config.model_copy(
        update={
            "models": [
                config.models[0],
                config.models[1].model_copy(
                    update={
                        "params": config.models[1].params.model_copy(update={"temperature": 0.5})
                    }
                ),
            ]
        }
    )
    task = config.tasks[0].model_copy(update={"name": "math"})
    items = [s.model_copy(update={"references": ("4",)}) for s in samples("q0", "q1")]
    frame = samples_to_frame(items)
    settings = RunSettings(cache=ResponseCache(tmp_path), retries=ZERO_WAIT)
    models = {m.name: m for m in config.models}
    answers = {}
    for model in config.models:
        params = request_params(model, task, 1)
        answers[model.name] = stages.generate(model, frame, params, settings=settings, label="")
    [spec] = config.strategies
    answers["refine"] = stages.answer(
        identity(spec, models, {}),
        {m.name: {"price": m.price.model_dump(), "limits": {}} for m in config.models},  # type: ignore[union-attr]
        TaskView.of(task),
        frame,
        seed=1,
        settings=settings,
        label="refine",
    )
    prices = {n: m.price for n, m in models.items() if m.price is not None}
    # As the pipeline's score step scores the task, and its same_spend step the baselines.
    results, aggregates = stages.score_task(
        task,
        frame,
        answers,
        prices={**{n: {n: p} for n, p in prices.items()}, "refine": prices},  # type: ignore[dict-item]
    )
    sent = len(server.requests)

    baseline = stages.score_same_spend(
        task, frame, results, {"refine": models}, seed=1, settings=settings
    )
    # (14 + 500 + 14) / 160 = 3.3 strong answers: 3 draws of strong, the best member; draw
    # 0 is its own row's request (a cache hit), draws 1 and 2 are new, at its temperature.
    new = server.requests[sent:]
    assert sorted(r.body.get("seed") for r in new) == [2, 2, 3, 3]  # type: ignore[type-var]
    assert {r.temperature for r in new} == {0.5}
    assert baseline["model"].unique().tolist() == ["refine.same-spend"]
    assert baseline["output"].tolist() == ["It is 4", "It is 4"]  # 2 of 3 draws say 4

    report = build_report(config, results, pd.DataFrame(), baseline)
    [row] = report.same_spend.to_dict("records")
    assert (row["best_member"], row["draws"], row["baseline"]) == ("strong", 3, "strong x3 votes")
    assert row["cost_ratio"] == pytest.approx(528 / 160)
    assert row["vs_member"] == -1.0 and row["vs_baseline"] == -1.0
    assert row["vs_member_p"] == pytest.approx(0.5)  # McNemar: 2 discordant pairs
    assert row["summary"] == (
        "refine on math: -100.0 points over strong for 3.3x the cost (p = 0.5); "
        "-100.0 against strong x3 votes at the same spend (p = 0.5)"
    )
    assert report.rounds["step"].tolist() == ["answer", "critique", "revise"]
    assert report.rounds["mean_cost_usd"].tolist() == pytest.approx([14e-6, 514e-6, 528e-6])

    # The artifact's round trip keeps the tables; the console and report.html say it.
    report = Report.from_frame(report.to_frame())
    assert report.same_spend["summary"].tolist() == [row["summary"]]
    console = Console(record=True, width=200)
    print_orchestration(report, console)
    printed = console.export_text()
    assert row["summary"] in printed and "strategies by round" in printed
    leaderboard = build_leaderboard(config, results, aggregates, report.intervals)
    page = render_report(config, leaderboard, results, report)
    assert html.escape(row["summary"]) in page
    assert 'id="rounds-plot"' in page and 'id="same-spend"' in page
    assert 'id="draws-plot"' not in page  # no vote in this run

    # MLflow: the tables and figures on the parent run, the line and the rounds as curves
    # (step = round) on the strategy's own run.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("spend", artifact_location=str(tmp_path / "art"))
        with mlflow.start_run(experiment_id=experiment) as parent:
            _log_report(report)
        with mlflow.start_run(experiment_id=experiment) as child:
            _log_strategy(report, "refine")
        client = mlflow.MlflowClient()
        logged = client.get_run(parent.info.run_id)
        assert logged.data.metrics["same_spend/math/refine/draws"] == 3
        assert logged.data.metrics["same_spend/math/refine/vs_baseline_p"] == pytest.approx(0.5)
        tables = {a.path for a in client.list_artifacts(parent.info.run_id, "statistics")}
        assert {"statistics/rounds.json", "statistics/same_spend.json"} <= tables
        assert client.get_run(child.info.run_id).data.tags["llmbench.same_spend"] == row["summary"]
        history = client.get_metric_history(child.info.run_id, "rounds/math/mean_cost_usd")
        assert [m.step for m in history] == [0, 1, 2]
        assert [m.value for m in history] == pytest.approx([14e-6, 514e-6, 528e-6])
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]

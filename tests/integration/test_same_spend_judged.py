"""A judged task's same-spend baseline, through the real model client, the OpenAI SDK and
the loopback server: universal self-consistency (n draws of the best member, then the
member picks the most consistent one), n matched to the strategy's spend with the
selection call counted, the selection prompt holding every draw, the picked draw as the
answer (draw 0 when the pick cannot be read, said on the row), the panel grading it as it
grades the leaderboard's rows, the paired test, and an unchanged rerun sending nothing."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llmbench import stages
from llmbench.config import BenchConfig, check_registries
from llmbench.report.statistics import build_report
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.runtime.runner import request_params
from llmbench.scoring.judge import task_template
from llmbench.strategies.base import TaskView
from llmbench.strategies.build import identity
from llmbench.tables import samples_to_frame, trace_of
from llmbench.types import Sample, Tool
from tests.cli_runs import isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_pipeline_e2e import zenml_steps
from tests.integration.test_strategies import (
    CHEAP,
    STRONG,
    ZERO_WAIT,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
)

AGGREGATE = "You have been given several responses"
SELECT = "I have generated the following responses"
STRONG_BY_SEED = {1: "first draft", 2: "second draft GOOD"}


def scripted(request: RecordedRequest) -> Reply:
    """cheap says "It is 5"; strong answers by seed, aggregates (at twice a draw's price)
    and selects: Response 1 for q0, an unreadable pick for q1. The judge grades GOOD 9,
    "It is 5" 1, anything else 3."""
    text = request.last_user_text or ""
    if request.model == "gpt-judge":
        found = re.search(r"\[Answer to grade\]\n(.*?)\n\[End of answer\]", text, re.S)
        assert found, text
        shown = found.group(1)
        score = 9 if "GOOD" in shown else 1 if "It is 5" in shown else 3
        return Reply(
            text=json.dumps({"explanation": "graded", "score": score}),
            input_tokens=100,
            output_tokens=20,
        )
    if request.model == "gpt-cheap":
        return Reply(text="It is 5", input_tokens=10, output_tokens=2)
    if text.startswith(AGGREGATE):
        return Reply(text="aggregated GOOD", input_tokens=26, output_tokens=2)
    if text.startswith(SELECT):
        pick = "The most consistent response is Response 1." if "q0" in text else "Both."
        return Reply(text=pick, input_tokens=10, output_tokens=2)
    seed = request.body.get("seed")
    assert isinstance(seed, int)
    return Reply(text=STRONG_BY_SEED[seed], input_tokens=10, output_tokens=2)


def config() -> BenchConfig:
    model = {"provider": "openai", "params": {"max_tokens": 16, "temperature": 0.5}}
    return check_registries(
        BenchConfig.model_validate(
            {
                "models": [
                    {"name": "cheap", "model": "gpt-cheap", "price": CHEAP.model_dump(), **model},
                    {
                        "name": "strong",
                        "model": "gpt-strong",
                        "price": STRONG.model_dump(),
                        **model,
                    },
                ],
                "judges": [
                    {
                        "name": "judge",
                        "provider": "openai",
                        "model": "gpt-judge",
                        "price": CHEAP.model_dump(),
                    }
                ],
                "strategies": [
                    {
                        "name": "moa",
                        "kind": "mixture_of_agents",
                        "members": {"a": "cheap", "b": "strong", "aggregator": "strong"},
                    }
                ],
                "tasks": [
                    {
                        "name": "essay",
                        "source": {"path": "x.jsonl"},
                        "template": "{{ q }}",
                        "judge": {"mode": "rubric", "panel": ["judge"]},
                    }
                ],
            }
        )
    )


@pytest.mark.slow
def test_a_judged_task_gets_a_universal_self_consistency_baseline_graded_by_its_panel(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.default = scripted
    bench = config()
    [task] = bench.tasks
    [spec] = bench.strategies
    [judge] = bench.judges
    models = {m.name: m for m in bench.models}
    # The samples offer a tool: the draws carry it, the selection does not.
    lookup = Tool(name="lookup", description="look a fact up")
    items = [
        Sample(sample_id=str(i), prompt=f"q{i}", references=(), tools=(lookup,)) for i in range(2)
    ]
    frame = samples_to_frame(items)
    settings = RunSettings(cache=ResponseCache(tmp_path), retries=ZERO_WAIT)
    answers = {
        m.name: stages.generate(
            m, frame, request_params(m, task, 1), settings=settings, label=m.name
        )
        for m in bench.models
    }
    answers["moa"] = stages.answer(
        identity(spec, models, {}),
        {m.name: {"price": m.price.model_dump(), "limits": {}} for m in bench.models},  # type: ignore[union-attr]
        TaskView.of(task),
        frame,
        seed=1,
        settings=settings,
        label="moa",
    )
    # As the pipeline's grade steps and score step do.
    assert task.judge is not None
    one = task.judge.model_copy(update={"panel": ["judge"]})
    judgments = {
        name: [
            stages.grade(
                task.name,
                one,
                task_template(task),
                judge,
                frame,
                done,
                seed=1,
                settings=settings,
                label=name,
            )
        ]
        for name, done in answers.items()
    }
    prices = {n: m.price for n, m in models.items() if m.price is not None}
    results, _ = stages.score_task(
        task,
        frame,
        answers,
        judgments,
        judge_prices={"judge": judge.price},  # type: ignore[dict-item]
        prices={**{n: {n: p} for n, p in prices.items()}, "moa": prices},  # type: ignore[dict-item]
    )
    sent = len(server.requests)

    def baseline() -> pd.DataFrame:
        return stages.score_same_spend(
            task,
            frame,
            results,
            {"moa": models},
            seed=1,
            settings=settings,
            judges={"judge": judge},
        )

    drawn = baseline()
    new = server.requests[sent:]
    # moa costs 14 + 160 + 320 = 494 micro-dollars an item, a strong call 160: a vote
    # would take 3 draws (480), USC 2 draws and its selection (480). Draw 0 is strong's own
    # row (a cache hit); draw 1 and the selection are new, then the judge grades the pick
    # (q1's pick is draw 0, strong's own answer, whose grade is a cache hit too).
    by_model = pd.Series([r.model for r in new]).value_counts().to_dict()
    assert by_model == {"gpt-strong": 4, "gpt-judge": 1}
    selections = [r for r in new if (r.last_user_text or "").startswith(SELECT)]
    assert len(selections) == 2
    for request in selections:
        prompt = request.last_user_text or ""
        assert "Response 0:\nfirst draft\n" in prompt
        assert "Response 1:\nsecond draft GOOD\n" in prompt
        assert "Select the most consistent response based on majority consensus." in prompt
        assert not request.body.get("tools")
    draws = [r for r in new if r.model == "gpt-strong" and r not in selections]
    assert len(draws) == 2 and all(r.body.get("tools") for r in draws)
    assert drawn["model"].unique().tolist() == ["moa.same-spend"]
    # q0: Response 1 picked; q1: the pick unreadable, draw 0, and the row says so.
    assert drawn["output"].tolist() == ["second draft GOOD", "first draft"]
    notes = [[c.note for c in trace_of(t) if c.note] for t in drawn["trace"]]
    assert notes[0] == ["selected draw 1 of 2"]
    assert notes[1] == ["selection unparseable: fell back to draw 0"]
    assert drawn["cost_usd"].tolist() == pytest.approx([480e-6, 480e-6])
    # The panel's grades, as the leaderboard rows': 9 for the GOOD pick, 3 for draw 0.
    assert drawn["score.judge"].tolist() == [9.0, 3.0]

    report = build_report(bench, results, pd.DataFrame(), drawn)
    [row] = report.same_spend.to_dict("records")
    assert (row["best_member"], row["draws"], row["baseline"]) == ("strong", 2, "strong x2 USC")
    assert row["baseline_cost_per_item_usd"] == pytest.approx(480e-6)
    assert not math.isnan(row["vs_baseline"]) and not math.isnan(row["vs_baseline_p"])
    assert "against strong x2 USC at the same spend" in row["summary"]

    # Unchanged, a rerun sends nothing: every draw, selection and grade is cached.
    sent = len(server.requests)
    again = baseline()
    assert len(server.requests) == sent
    assert again["output"].tolist() == drawn["output"].tolist()


@pytest.mark.slow
def test_the_pipeline_draws_and_grades_a_judged_tasks_baseline(
    server: ProviderServer, tmp_path: Path
) -> None:
    """Through run.py and ZenML: the same_spend step sends the draws, the selections and
    the panel's grades, and an unchanged rerun is all cache hits."""
    server.default = scripted
    data = tmp_path / "essay.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{i}"}) + "\n" for i in range(2)))
    spec = config().model_dump(mode="json", exclude_defaults=True)
    spec["tasks"][0]["source"] = {"path": str(data)}
    spec.update(name="usc-e2e", execution={"seed": 1}, tracking={"experiment": "usc-e2e"})
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = isolated_env(tmp_path, OPENAI_BASE_URL=server.url + "/v1", OPENAI_API_KEY="sk-e2e")

    run_cli(tmp_path, env, "--config", str(path), "--run-name", "u-1")
    asked = pd.Series([r.model for r in server.requests]).value_counts().to_dict()
    # strong: its row, the aggregations, draw 1 and the selection per item; the judge: three
    # entrants' answers and the baseline's one new pick.
    assert asked == {"gpt-cheap": 2, "gpt-strong": 8, "gpt-judge": 7}
    out = tmp_path / "results" / "u-1"
    [row] = list(csv.DictReader((out / "statistics" / "same_spend.csv").open()))
    assert (row["model"], row["best_member"], row["baseline"]) == ("moa", "strong", "strong x2 USC")
    assert float(row["baseline_score"]) == pytest.approx((9 - 1 + 3 - 1) / 2 / 9)
    assert "against strong x2 USC at the same spend" in row["summary"]
    steps = zenml_steps(env, "u-1")
    assert steps["same_spend__essay"] == "completed"

    server.clear()
    run_cli(tmp_path, env, "--config", str(path), "--run-name", "u-2")
    assert server.requests == []
    assert zenml_steps(env, "u-2")["same_spend__essay"] == "cached"

"""Conversations through the real runner, the OpenAI SDK and the loopback fake: turn 2 is
sent with turn 1's question and the model's own answer, an unchanged rerun sends nothing,
the judge grades each turn (turn 2 with the whole dialogue), the row reports per-turn
scores, and MLflow stores each conversation as one session of one trace per turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from llmbench import stages
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.runner import RunSettings
from llmbench.schema import ModelSpec, PriceEntry, TaskSpec
from llmbench.scoring.judge import task_template
from llmbench.tables import frame_to_completions, samples_to_frame
from llmbench.tracking.traces import TRACE_SESSION, log_traces
from llmbench.types import GenerationParams, Sample
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply

KEY = "sk-conversation-test"
PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
MODEL = ModelSpec(name="talker", provider="openai", model="gpt-4o-mini", price=PRICE)
JUDGE = ModelSpec(name="judge", provider="openai", model="gpt-4o-judge", price=PRICE)
PARAMS = GenerationParams(max_tokens=32, seed=3)
SAMPLES = [
    Sample(sample_id=str(i), prompt=f"first ask {i}", follow_ups=(f"then ask {i}",), references=())
    for i in range(3)
]
TASK = TaskSpec.model_validate(
    {
        "name": "talk",
        "source": {"path": "questions.jsonl"},
        "turns": "turns",
        "judge": {"mode": "rubric", "panel": ["judge"]},
    }
)
DIALOGUE = "<|The Start of Assistant's Conversation with User|>"


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")


def answer(cache: Path) -> pd.DataFrame:
    settings = RunSettings(cache=ResponseCache(cache))
    return stages.generate(
        MODEL, samples_to_frame(SAMPLES), PARAMS, settings=settings, label="talker"
    )


def sent(request: RecordedRequest) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request.body["messages"]]


def test_turn_two_is_asked_after_the_models_own_answer_and_a_rerun_sends_nothing(
    server: ProviderServer, tmp_path: Path
) -> None:
    completions = frame_to_completions(answer(tmp_path))

    assert len(server.requests) == 6  # two turns of three conversations
    by_question = {r.last_user_text: r for r in server.requests}
    for i, row in enumerate(completions):
        first, second = by_question[f"first ask {i}"], by_question[f"then ask {i}"]
        assert sent(first) == [("user", f"first ask {i}")]
        assert sent(second) == [
            ("user", f"first ask {i}"),
            ("assistant", f"echo: first ask {i}"),  # the model's own turn-1 answer, verbatim
            ("user", f"then ask {i}"),
        ]
        assert row.turn_answers == (f"echo: first ask {i}", f"echo: then ask {i}")
        assert row.text == row.turn_answers[-1]
        assert [(c.turn, c.round, c.output) for c in row.trace] == [
            (0, 0, row.turn_answers[0]),
            (1, 0, row.turn_answers[1]),
        ]
        assert row.trace[1].input == [{"role": r, "content": c} for r, c in sent(second)]
        assert row.input_tokens == sum(c.input_tokens for c in row.trace) > 0
        assert row.cost_usd == pytest.approx(sum(c.cost_usd for c in row.trace))
        assert row.latency_s == pytest.approx(sum(c.latency_s for c in row.trace))

    server.clear()
    again = frame_to_completions(answer(tmp_path))
    assert server.requests == []  # each turn's whole conversation found in the cache
    assert all(row.cached for row in again)
    assert [r.turn_answers for r in again] == [r.turn_answers for r in completions]


def judge_each_turn(request: RecordedRequest) -> Reply:
    """8 for a first turn, 4 for a second, shown with the whole dialogue."""
    prompt = request.last_user_text or ""
    score = 4 if DIALOGUE in prompt else 8
    return Reply(text=json.dumps({"explanation": f"turn graded {score}", "score": score}))


def judged(server: ProviderServer, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three conversations answered, graded turn by turn and scored: (results, aggregates)."""
    answers = answer(tmp_path)
    server.clear()
    server.default = judge_each_turn  # type: ignore[assignment]
    assert TASK.judge is not None
    grades = stages.grade(
        TASK.name,
        TASK.judge,
        task_template(TASK),
        JUDGE,
        samples_to_frame(SAMPLES),
        answers,
        seed=1,
        settings=RunSettings(),
        label="judge",
    )
    return stages.score(MODEL, TASK, samples_to_frame(SAMPLES), answers, [grades])


def test_the_judge_grades_each_turn_and_turn_two_with_both(
    server: ProviderServer, tmp_path: Path
) -> None:
    results, aggregates = judged(server, tmp_path)

    prompts = [r.last_user_text or "" for r in server.requests]
    assert len(prompts) == 6  # one grade per turn
    for i in range(3):
        [second] = [p for p in prompts if f"then ask {i}" in p]
        for shown in (f"first ask {i}", f"echo: first ask {i}", f"echo: then ask {i}"):
            assert shown in second
        [first] = [p for p in prompts if f"first ask {i}" in p and p != second]
        assert DIALOGUE not in first and f"echo: first ask {i}" in first
    assert results["score.judge_turn1"].tolist() == [8.0] * 3
    assert results["score.judge_turn2"].tolist() == [4.0] * 3
    assert results["score.judge"].tolist() == [6.0] * 3  # the mean of the turns
    means = dict(zip(aggregates["metric"], aggregates["value"], strict=True))
    assert (means["judge"], means["judge_turn1"], means["judge_turn2"]) == (6.0, 8.0, 4.0)
    assert results["judgments"][0][0]["turn_grades"] == [8.0, 4.0]
    assert json.loads(results["turn_answers"][0]) == ["echo: first ask 0", "echo: then ask 0"]
    assert json.loads(results["follow_ups"][0]) == ["then ask 0"]


@pytest.mark.slow
def test_each_conversation_is_one_mlflow_session_turn_by_turn(
    server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results, _ = judged(server, tmp_path / "cache")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("conversations")
    run = client.create_run(experiment, run_name="talker")
    ids = log_traces(
        results,
        experiment,
        {"talker": run.info.run_id},
        {"talker": PRICE},
        {"talker": "openai"},
        started_ms=1_000,
        run_name="conversations-run",
    )
    assert len(ids) == 6  # a trace per turn

    traces = client.search_traces(locations=[experiment], max_results=100)
    sessions: dict[str, list[Any]] = {}
    for trace in traces:
        sessions.setdefault(trace.info.trace_metadata[TRACE_SESSION], []).append(trace)
    assert len(sessions) == 3
    for session, turns in sessions.items():
        # MLflow finds the session by its metadata key, as its Sessions view does.
        found = client.search_traces(
            locations=[experiment], filter_string=f"metadata.`{TRACE_SESSION}` = '{session}'"
        )
        assert sorted(t.info.trace_id for t in found) == sorted(t.info.trace_id for t in turns)
        first, second = sorted(turns, key=lambda t: t.info.request_time)
        i = first.info.trace_metadata["llmbench.sample_id"]
        assert session.endswith(f"/talker/talk/{i}")
        assert [t.info.trace_metadata["llmbench.turn"] for t in (first, second)] == ["1", "2"]
        assert first.info.request_preview == f"first ask {i}"
        assert second.info.request_preview == f"then ask {i}"
        assert second.info.response_preview == f"echo: then ask {i}"
        # Each turn's span is its own call; turn 2's starts when turn 1's ends.
        assert [(s.name, s.outputs) for s in second.data.spans if s.span_type == "LLM"] == [
            ("talker: answer", f"echo: then ask {i}")
        ]
        assert second.info.request_time >= first.info.request_time
        # The turn's grade on its trace; the conversation's on the last turn.
        grades = {
            t.info.trace_metadata["llmbench.turn"]: {a.name: a.value for a in t.info.assessments}
            for t in (first, second)
        }
        assert grades["1"]["judge_turn1"] == 8.0 and "judge" not in grades["1"]
        assert grades["2"]["judge_turn2"] == 4.0 and grades["2"]["judge"] == 6.0


def test_a_conversation_without_a_user_turn_exits_2_before_anything_runs(
    server: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import run as cli

    monkeypatch.chdir(tmp_path)
    rows = [{"question_id": 1, "turns": ["hello"]}, {"question_id": 2, "turns": []}]
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = TASK.model_dump(mode="json", exclude_defaults=True)
    (tmp_path / "task.yaml").write_text(json.dumps({**task, "sample_id": "question_id"}))
    bench = {
        "models": [MODEL.model_dump(mode="json", include={"name", "provider", "model"})],
        "judges": [{"name": "judge", "provider": "openai", "model": "gpt-4o-mini"}],
        "tasks": ["task.yaml"],
    }
    (tmp_path / "bench.yaml").write_text(json.dumps(bench))

    code = cli.main(["--config", str(tmp_path / "bench.yaml")])

    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "task talk (" in err and "questions.jsonl): turns: row 1:" in err
    assert "the conversation has no user turn" in err and "fix:" in err
    assert server.requests == [] and not (tmp_path / "results").exists()

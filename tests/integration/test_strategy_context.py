"""Strategies answer conversations and use the task's tools, through the real model client
and the OpenAI SDK against scripted members on the loopback server: a router and a vote on
the shipped tool task whose members call a tool and then answer (each member's answer is
its agent loop), a cascade's verifier asked without tools, and a strategy talking over two
turns whose second request carries the strategy's own first answer verbatim. Costs are
summed over every call and the calls nest (member, tool, turn) as MLflow stores them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from llmbench import config as cfg
from llmbench import stages
from llmbench.config import BenchConfig, check_registries
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.schema import TaskSpec
from llmbench.scoring.score import score_completions
from llmbench.strategies.base import TaskView
from llmbench.strategies.build import identity
from llmbench.tables import frame_to_completions, samples_to_frame
from llmbench.tasks.build import build_samples
from llmbench.tools.spec import McpServerSpec, ToolsSpec
from llmbench.tracking.traces import TRACE_SESSION, log_traces
from llmbench.types import Completion, Sample
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_strategies import (
    CHEAP,
    ZERO_WAIT,
    bench,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
)
from tests.integration.test_tools_through_providers import CALLS, TASK, agent_model

ODD = {
    "name": "odd",
    "provider": "openai",
    "model": "gpt-odd",
    "params": {"max_tokens": 16},
    "price": CHEAP.model_dump(),
}
VERIFY = "Is this answer to the question correct?"


def tool_task() -> tuple[TaskSpec, list[Sample]]:
    """The shipped tool task and its two Paris weather questions the fake model can ask."""
    task = cfg.load_task_file(TASK)
    items = [s for s in build_samples(task, 12) if any(q in s.prompt for q in CALLS)]
    assert len(items) == 2 and all(s.agent is not None for s in items)
    return task, items


def run(
    config: BenchConfig,
    task: TaskSpec,
    items: list[Sample],
    settings: RunSettings | None = None,
) -> list[Completion]:
    """The config's only strategy over ``items`` of ``task``, as its step runs it."""
    [spec] = config.strategies
    models = {m.name: m for m in config.models}
    frame = stages.answer(
        identity(spec, models, {}),
        {m.name: {"price": m.price.model_dump()} for m in config.models},  # type: ignore[union-attr]
        TaskView.of(task),
        samples_to_frame(items),
        seed=1,
        settings=settings or RunSettings(retries=ZERO_WAIT),
        label="t",
    )
    return frame_to_completions(frame)


def shape(row: Completion) -> list[tuple[str, str | None, str | None]]:
    """Each call's kind, parent path and role, in trace order."""
    return [(c.kind, c.parent, c.role) for c in row.trace]


def tool_value(row: Completion, parent: str, sample: Sample) -> str:
    """The field ``sample``'s question needs from the tool result the member ``parent``
    got back (what a right answer ends with)."""
    [tool] = [c for c in row.trace if c.kind == "tool" and c.parent == parent]
    field = next(CALLS[q][2] for q in CALLS if q in sample.prompt)
    return str(json.loads(tool.output)[field])


def test_a_router_routes_to_a_members_agent_loop(server: ProviderServer) -> None:
    server.default = agent_model
    task, items = tool_task()
    config = bench(
        [
            {
                "name": "router",
                "kind": "router",
                "members": {"small": "cheap", "big": "strong"},
                "options": {
                    "rules": [{"regex": "precipitation", "use": "big"}],
                    "default": "small",
                },
            }
        ]
    )
    rows = run(config, task, items)

    routed = ["big" if "precipitation" in s.prompt else "small" for s in items]
    names = {"small": "cheap", "big": "strong"}
    assert [r.error for r in rows] == [None, None]
    assert [r.answered_by for r in rows] == [names[role] for role in routed]
    # Per item the routed model is asked twice: offered the tools, then sent the result.
    assert len(server.requests) == 4
    for sample, role in zip(items, routed, strict=True):
        mine = [r for r in server.requests if r.last_user_text == sample.prompt]
        assert [r.model for r in mine] == [f"gpt-{names[role]}"] * 2
        first, second = sorted(mine, key=lambda r: len(r.tool_results))
        assert "get_weather" in first.tool_names and not first.tool_results
        assert second.call_names == ["get_weather"] and len(second.tool_results) == 1
    for row, role, sample in zip(rows, routed, items, strict=True):
        path = f"{role}:{names[role]}"
        # The member's steps and its tool call nested under it, then its final answer.
        assert shape(row) == [
            ("model", path, role),
            ("tool", path, "builtin"),
            ("model", path, role),
            ("agent", None, role),
        ]
        whole = row.trace[-1]
        assert whole.note is not None and whole.note.startswith(f"routed to {role}")
        assert whole.output == row.text and row.text.endswith(tool_value(row, path, sample))
        assert whole.cost_usd == 0.0
        assert row.cost_usd > 0
        assert row.cost_usd == pytest.approx(sum(c.cost_usd for c in row.trace))
        assert row.latency_s == pytest.approx(sum(c.latency_s for c in row.trace[:3]))
    scores, _ = score_completions(task, items, rows)
    assert scores["score.exact_match"].tolist() == [1.0, 1.0]


def three_agents(request: RecordedRequest) -> Reply:
    """Every model calls the weather tool; the odd one then misreads the result by one."""
    reply = agent_model(request)
    if request.model == "gpt-odd" and request.tool_results:
        *head, value = reply.text.split("\n")
        return Reply(text="\n".join([*head, str(float(value) + 1)]), output_tokens=5)
    return reply


def test_a_vote_votes_over_its_members_agent_answers(server: ProviderServer) -> None:
    server.default = three_agents
    task, items = tool_task()
    config = bench(
        [{"name": "jury", "kind": "vote", "members": {"a": "cheap", "b": "strong", "c": "odd"}}],
        extra_models=(ODD,),
    )
    rows = run(config, task, items)

    assert len(server.requests) == 12  # 3 members x 2 steps x 2 items
    for row, sample in zip(rows, items, strict=True):
        paths = ["a:cheap", "b:strong", "c:odd"]
        tools = [c for c in row.trace if c.kind == "tool"]
        assert [c.parent for c in tools] == paths and all(c.error is None for c in tools)
        wholes = [c for c in row.trace if c.kind == "agent"]
        assert [(c.role, c.parent) for c in wholes] == [("a", None), ("b", None), ("c", None)]
        right = tool_value(row, "a:cheap", sample)
        assert [c.output.endswith(right) for c in wholes] == [True, True, False]
        [tallied] = [c for c in wholes if c.note]
        assert tallied.note is not None and tallied.note.startswith("voted: 2 of 3 agree")
        assert row.text.endswith(right) and row.answered_by == "cheap"
        models = [c for c in row.trace if c.kind == "model"]
        assert len(models) == 6
        assert row.cost_usd > 0
        assert row.cost_usd == pytest.approx(sum(c.cost_usd for c in models))
        assert row.input_tokens == sum(c.input_tokens for c in models)
    scores, _ = score_completions(task, items, rows)
    assert scores["score.exact_match"].tolist() == [1.0, 1.0]


def test_a_cascade_escalates_on_the_agents_answer_and_its_verifier_gets_no_tools(
    server: ProviderServer,
) -> None:
    """The cheap member's agent loop answers; the verifier, asked to grade that answer,
    is sent no tools (a grade is read from its text; the answer already holds the facts)."""

    def members(request: RecordedRequest) -> Reply:
        if (request.last_user_text or "").startswith(VERIFY):
            return Reply(text="Wrong. [[2]]", input_tokens=40, output_tokens=4)
        return agent_model(request)

    server.default = members
    task, items = tool_task()
    config = bench(
        [
            {
                "name": "cascade",
                "kind": "cascade",
                "members": {"cheap": "cheap", "strong": "strong", "checker": "strong"},
                "options": {"escalate_on": ["low_grade"], "verifier": "checker"},
            }
        ]
    )
    rows = run(config, task, items[:1])

    grading = [r for r in server.requests if (r.last_user_text or "").startswith(VERIFY)]
    assert len(grading) == 1 and grading[0].tool_names == []
    assert "tools" not in grading[0].body  # no tools field at all
    [row] = rows
    assert [(c.kind, c.role, c.purpose) for c in row.trace if c.parent is None] == [
        ("agent", "cheap", "answer"),
        ("model", "checker", "verify"),
        ("agent", "strong", "answer"),
    ]
    assert row.answered_by == "strong" and row.text.endswith(
        tool_value(row, "strong:strong", items[0])
    )
    assert len([c for c in row.trace if c.kind == "tool"]) == 2


def talk_config() -> BenchConfig:
    """A router over the conversation task: the first turn goes to the strong model, a
    follow-up to the cheap one."""
    config = bench(
        [
            {
                "name": "router",
                "kind": "router",
                "members": {"small": "cheap", "big": "strong"},
                "options": {"rules": [{"regex": "^first", "use": "big"}], "default": "small"},
            }
        ]
    )
    talk = config.tasks[0].model_copy(update={"name": "talk", "turns": "turns", "extract": []})
    # Strategies on a conversation task are accepted (they were refused before they talked).
    return check_registries(config.model_copy(update={"tasks": [talk]}))


TALKS = [
    Sample(sample_id=str(i), prompt=f"first ask {i}", follow_ups=(f"then ask {i}",), references=())
    for i in range(2)
]


def says(request: RecordedRequest) -> Reply:
    return Reply(
        text=f"{request.model} on {request.last_user_text}",
        input_tokens=7 * len(request.body["messages"]),
        output_tokens=4,
    )


def sent(request: RecordedRequest) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request.body["messages"]]


def test_a_strategy_answers_each_turn_after_its_own_answer(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.default = says
    config = talk_config()
    settings = RunSettings(retries=ZERO_WAIT, cache=ResponseCache(tmp_path / "cache"))
    rows = run(config, config.tasks[0], TALKS, settings)

    assert len(server.requests) == 4  # two turns of two conversations
    for i, row in enumerate(rows):
        first = next(r for r in server.requests if r.last_user_text == f"first ask {i}")
        second = next(r for r in server.requests if r.last_user_text == f"then ask {i}")
        own = f"gpt-strong on first ask {i}"  # the strategy's turn-1 answer (its big member's)
        assert (first.model, sent(first)) == ("gpt-strong", [("user", f"first ask {i}")])
        assert second.model == "gpt-cheap"
        assert sent(second) == [
            ("user", f"first ask {i}"),
            ("assistant", own),  # verbatim, though the cheap member never said it
            ("user", f"then ask {i}"),
        ]
        assert row.turn_answers == (own, f"gpt-cheap on then ask {i}")
        assert row.text == row.turn_answers[-1] and row.answered_by == "cheap"
        assert [(c.turn, c.round, c.role, c.note) for c in row.trace] == [
            (0, 0, "big", "routed to big: rule 1: prompt matches /^first/"),
            (1, 0, "small", "routed to small: no rule matched: default"),
        ]
        assert row.trace[0].input is None and row.trace[1].input == [
            {"role": r, "content": c} for r, c in sent(second)
        ]
        # Turns run one after another: costs, tokens and latency are summed.
        assert row.trace[1].start_s == pytest.approx(row.trace[0].latency_s)
        assert row.latency_s == pytest.approx(sum(c.latency_s for c in row.trace))
        assert row.input_tokens == 7 + 21
        assert row.cost_usd > 0
        assert row.cost_usd == pytest.approx(sum(c.cost_usd for c in row.trace))

    server.clear()
    again = run(config, config.tasks[0], TALKS, settings)
    assert server.requests == []  # every turn's conversation found in the cache
    assert [r.turn_answers for r in again] == [r.turn_answers for r in rows]


def results_frame(
    name: str, task: str, items: list[Sample], rows: list[Completion]
) -> pd.DataFrame:
    """The answers as the tracking step's results frame holds them."""
    return pd.DataFrame(
        [
            {
                "model": name,
                "task": task,
                "sample_id": s.sample_id,
                "prompt": s.prompt,
                "follow_ups": json.dumps(list(s.follow_ups)),
                "turn_answers": json.dumps(list(r.turn_answers)),
                "output": r.text,
                "answered_by": r.answered_by,
                "latency_s": r.latency_s,
                "trace": json.dumps([c.model_dump() for c in r.trace]),
            }
            for s, r in zip(items, rows, strict=True)
        ]
    )


def spans_by_name(trace: Any) -> dict[str, Any]:
    return {s.name: s for s in trace.data.spans}


@pytest.mark.slow
def test_member_agents_and_turns_nest_in_mlflow(
    server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.default = three_agents
    task, items = tool_task()
    jury = bench(
        [{"name": "jury", "kind": "vote", "members": {"a": "cheap", "b": "strong", "c": "odd"}}],
        extra_models=(ODD,),
    )
    voted = run(jury, task, items[:1])
    server.default = says
    talks = talk_config()
    talked = run(talks, talks.tasks[0], TALKS[:1])

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("context")
    run_ids = {n: client.create_run(experiment, run_name=n).info.run_id for n in ("jury", "router")}
    prices = {m.name: m.price for m in jury.models}
    providers = {"jury": "strategy:vote", "router": "strategy:router"} | dict.fromkeys(
        prices, "openai"
    )
    frame = pd.concat(
        [
            results_frame("jury", task.name, items[:1], voted),
            results_frame("router", "talk", TALKS[:1], talked),
        ],
        ignore_index=True,
    )
    log_traces(frame, experiment, run_ids, prices, providers, started_ms=1_000)  # type: ignore[arg-type]

    [agents] = client.search_traces(locations=[experiment], run_id=run_ids["jury"])
    (root,) = [s for s in agents.data.spans if s.parent_id is None]
    assert root.span_type == "CHAIN"
    loops = [s for s in agents.data.spans if s.span_type == "AGENT"]
    assert len(loops) == 3 and all(s.parent_id == root.span_id for s in loops)
    for loop in loops:
        inside = sorted(
            (s for s in agents.data.spans if s.parent_id == loop.span_id),
            key=lambda s: s.start_time_ns,
        )
        assert [s.span_type for s in inside] == ["LLM", "TOOL", "LLM"]
        assert inside[1].name == "get_weather" and inside[1].inputs["city"] == "Paris"
        assert loop.start_time_ns <= inside[0].start_time_ns
        assert inside[-1].end_time_ns <= loop.end_time_ns
    assert agents.info.token_usage["input_tokens"] == voted[0].input_tokens

    turns = sorted(
        client.search_traces(locations=[experiment], run_id=run_ids["router"]),
        key=lambda t: t.info.request_time,
    )
    assert len(turns) == 2
    assert len({t.info.trace_metadata[TRACE_SESSION] for t in turns}) == 1
    for turn, (trace, call) in enumerate(zip(turns, talked[0].trace, strict=True)):
        assert trace.info.trace_metadata["llmbench.turn"] == str(turn + 1)
        [llm] = [s for s in trace.data.spans if s.span_type == "LLM"]
        assert llm.outputs == call.output == talked[0].turn_answers[turn]
        assert llm.attributes["llmbench.role"] == call.role


def test_a_mixtures_proposers_are_agents_and_its_aggregator_gets_no_tools(
    server: ProviderServer,
) -> None:
    """The proposers answer the tool task through their loops; the aggregator combines their
    final answers, which already hold what the tools said, without tools of its own."""

    def members(request: RecordedRequest) -> Reply:
        if (request.last_user_text or "").startswith("You have been given several responses"):
            return Reply(text="Both looked it up.", output_tokens=9)
        return agent_model(request)

    server.default = members
    task, items = tool_task()
    config = bench(
        [
            {
                "name": "moa",
                "kind": "mixture_of_agents",
                "members": {"a": "cheap", "b": "strong", "aggregator": "odd"},
            }
        ],
        extra_models=(ODD,),
    )
    [row] = run(config, task, items[:1])

    [aggregating] = [r for r in server.requests if r.model == "gpt-odd"]
    assert "tools" not in aggregating.body and not aggregating.tool_results
    right = tool_value(row, "a:cheap", items[0])
    assert (aggregating.last_user_text or "").count(f"Looked it up.\n{right}") == 2
    assert [(c.kind, c.role, c.parent) for c in row.trace if c.parent is None] == [
        ("agent", "a", None),
        ("agent", "b", None),
        ("model", "aggregator", None),
    ]
    assert len([c for c in row.trace if c.kind == "tool"]) == 2
    assert row.cost_usd == pytest.approx(sum(c.cost_usd for c in row.trace))


def test_tools_that_cannot_open_fail_each_members_answer_and_the_run_goes_on(
    server: ProviderServer,
) -> None:
    """An MCP server that will not start (after the preflight) is the error of every answer
    that needs it, opened once for the strategy's step, and no model is asked."""
    gone = ToolsSpec(mcp=[McpServerSpec(name="gone", command="/nonexistent/server")])
    task, items = tool_task()
    items = [s.model_copy(update={"agent": gone}) for s in items]
    config = bench(
        [{"name": "jury", "kind": "vote", "members": {"a": "cheap", "b": "strong"}}],
    )
    rows = run(config, task, items)

    assert server.requests == []
    for row in rows:
        assert row.error is not None and "MCP server 'gone'" in row.error
        assert [(c.kind, c.error is not None) for c in row.trace] == [("agent", True)] * 2

"""The agent loop over llmbench's local tools, driven by a scripted model through the
model client: the trace of steps and tool calls, bad input inside the loop recorded as
data (unknown tool, arguments failing the schema, a raising tool, the step limit), and a
rerun replayed from the response cache."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import ModelClient, RunSettings
from llmbench.tools.agent import AgentLimits, run_agent
from llmbench.tools.base import ToolSet
from llmbench.tools.local import FUNCTIONS, builtin_tool
from llmbench.tools.python import function_tool
from llmbench.types import Completion, Message, Request
from tests.fakes.scripted_agent import SCRIPTS, Script, ScriptedProvider, field_of, spec

WEATHER = "What was the high in Paris on 2025-03-02?"
ALWAYS = "Keep calling"
BROKEN = "Try everything"
FAILS = "No script for this one"


def _explode(reason: str) -> str:
    """A user tool that raises."""
    raise RuntimeError(f"exploded: {reason}")


SCRIPTS["unit"] = {
    WEATHER: Script(
        [[("get_weather", {"city": "Paris", "date": "2025-03-02"})]], field_of("high_c")
    ),
    ALWAYS: Script([[("calculator", {"expression": "1+1"})]] * 10),
    BROKEN: Script(
        [
            [
                ("get_wether", {"city": "Paris"}),
                ("get_weather", {"city": "Paris"}),
                ("calculator", "{not json"),
                ("explode", {"reason": "boom"}),
                ("get_weather", {"city": "Oslo", "date": "2025-03-02"}),
            ]
        ],
        lambda results: f"{len(results)} results",
    ),
}


def _tools() -> ToolSet:
    return ToolSet(
        [
            *(builtin_tool(n) for n in FUNCTIONS),
            function_tool(_explode, source="python:t", name="explode"),
        ]
    )


def _ask(
    question: str, limits: AgentLimits | None = None, settings: RunSettings | None = None
) -> tuple[Completion, ModelClient]:
    model = spec("unit")
    client = ModelClient(model, settings or RunSettings(), provider=ScriptedProvider(model))
    request = Request(messages=(Message(role="user", content=question),))
    answer = run_agent(client, request, _tools(), limits or AgentLimits(), index=0)
    return asyncio.run(answer), client


def test_a_tool_answer_is_read_back_and_every_step_is_traced() -> None:
    row, _ = _ask(WEATHER)
    assert row.error is None and row.finish_reason == "stop"
    assert row.text.splitlines()[-1] == "13.0"  # the fixture's high for Paris that day
    assert [(c.kind, c.model, c.round) for c in row.trace] == [
        ("model", "scripted", 0),
        ("tool", "get_weather", 0),
        ("model", "scripted", 1),
    ]
    first, tool, last = row.trace
    assert tool.input == [
        {
            "id": "call_0_0",
            "name": "get_weather",
            "arguments": '{"city": "Paris", "date": "2025-03-02"}',
        }
    ]
    assert json.loads(tool.output)["condition"] == "cloudy" and tool.role == "builtin"
    assert first.input is None  # the sample's own conversation, on the row already
    assert last.input is not None and [t["role"] for t in last.input] == [
        "user",
        "assistant",
        "tool",
    ]
    assert json.loads(last.input[1]["tool_calls"])[0]["name"] == "get_weather"
    assert first.start_s == 0 and tool.start_s >= first.latency_s and last.start_s >= tool.start_s
    assert row.input_tokens == first.input_tokens + last.input_tokens > 0
    assert row.output_tokens == 14 and row.cost_usd == first.cost_usd + last.cost_usd > 0
    assert row.tool_calls == ()  # a final answer: the calls on the way are in the trace


def test_bad_calls_are_errors_on_their_tool_calls_and_the_model_sees_them() -> None:
    ScriptedProvider.sent.clear()
    row, _ = _ask(BROKEN)
    assert row.error is None and row.text == "5 results"
    errors = [c.error for c in row.trace if c.kind == "tool"]
    assert errors[0] is not None and "no tool named 'get_wether'" in errors[0]
    assert errors[1] is not None and "'date' is a required property" in errors[1]
    assert errors[2] is not None and "not JSON" in errors[2]
    assert errors[3] == "the tool raised RuntimeError: exploded: boom"
    assert errors[4] is not None and "no weather for 'Oslo'" in errors[4]
    shown = [m.content for m in ScriptedProvider.sent[-1].messages if m.role == "tool"]
    assert shown == [f"error: {e}" for e in errors]


def test_the_step_limit_ends_the_loop_with_a_note_and_a_scored_row() -> None:
    row, client = _ask(ALWAYS, AgentLimits(max_steps=3))
    models = [c for c in row.trace if c.kind == "model"]
    assert len(models) == 3 and client.counts.sent == 3
    assert len([c for c in row.trace if c.kind == "tool"]) == 2  # the last step's are not run
    assert row.error is None and row.finish_reason == "tool_calls"
    assert models[-1].note == "step limit: 3 model calls made, the last asked for 1 more tool call"
    assert [c.name for c in row.tool_calls] == ["calculator"]  # scored as the answer


def test_a_failed_model_call_fails_the_row_with_its_steps_kept() -> None:
    row, _ = _ask(FAILS)
    assert row.error is not None and "no script" in row.error
    assert [c.kind for c in row.trace] == ["model"] and row.trace[0].error == row.error


def test_a_rerun_replays_every_step_from_the_response_cache(tmp_path: Path) -> None:
    settings = RunSettings(cache=ResponseCache(tmp_path))
    first, client = _ask(WEATHER, settings=settings)
    again, replay = _ask(WEATHER, settings=settings)
    assert client.counts.sent == 2 and replay.counts.sent == 0 and replay.counts.cache_hits == 2
    assert again.text == first.text and again.cached and not first.cached


def test_the_first_call_takes_the_tool_choice_and_later_ones_choose_freely() -> None:
    ScriptedProvider.sent.clear()
    _ask(WEATHER, AgentLimits(tool_choice="required"))
    assert [r.tool_choice for r in ScriptedProvider.sent] == ["required", None]
    assert {t.name for t in ScriptedProvider.sent[0].tools} == {*FUNCTIONS, "explode"}

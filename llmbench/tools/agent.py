"""The agent loop of one sample: the entrant answers with tool calls, the tools answer
them, the entrant reads the results and answers again ... until an answer calls no tool
(the final answer) or ``max_steps`` model calls were made.

Every model call goes through the model client (response cache, budget, limits, retries,
price), so a rerun replays a conversation from the cache step by step and a retry re-sends
one step, never the earlier ones. Every step is in the answer's trace: a ``model`` call
per step (its ``round`` the step; from the second on, ``input`` is the conversation it was
sent, tool calls and results included) and a ``tool`` call per tool call (the tool's name,
its arguments as ``input``, its result as ``output``, or ``error``). What goes wrong inside
the loop is data, not a crash: a tool the model names that does not exist, arguments that
fail the tool's schema, a tool that raises, an MCP server that died are errors on their
tool calls, shown to the model as the tool's answer; the step limit is a note on the last
model call and the row's ``finish_reason`` "tool_calls". The row is then scored on what
the entrant answered. Only a model call that failed fails the row (its error, unscored as
any failed request), with the steps before it kept in the trace.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmbench.errors import BenchError
from llmbench.runtime.client import ModelClient
from llmbench.tools.spec import ToolsSpec
from llmbench.types import Ask, Call, Completion, GenerationParams, Message, Request

if TYPE_CHECKING:
    from llmbench.tools.base import ToolSet


@dataclass(frozen=True)
class AgentLimits:
    """How long the loop may run and how the first call is told to use the tools."""

    max_steps: int = 8
    tool_choice: str | None = None  # the first call's; later ones choose freely

    @classmethod
    def of(cls, spec: ToolsSpec) -> AgentLimits:
        return cls(max_steps=spec.max_steps, tool_choice=spec.tool_choice)


def transcript(messages: list[Message]) -> list[dict[str, str]]:
    """A conversation as a trace keeps it: role and content, an assistant turn's tool calls
    as JSON text, a tool turn's call id."""
    out = []
    for message in messages:
        turn = {"role": message.role, "content": message.content}
        if message.tool_calls:
            turn["tool_calls"] = json.dumps(
                [c.model_dump() for c in message.tool_calls], ensure_ascii=False
            )
        if message.tool_call_id is not None:
            turn["tool_call_id"] = message.tool_call_id
        out.append(turn)
    return out


def _step_request(
    request: Request, messages: list[Message], tools: ToolSet, choice: str | None
) -> Request:
    return Request(
        messages=tuple(messages),
        params=request.params,
        tools=tools.tools,
        tool_choice=choice,
        response_schema=request.response_schema,
        draw=request.draw,
    )


def _answer(
    client: ModelClient,
    last: Completion,
    trace: list[Call],
    *,
    finish: str | None = None,
) -> Completion:
    """The row: the last model answer with the loop's sums (tokens and cost over the model
    calls, latency over every step one after another) and the whole trace. Its tool calls
    are the last answer's: none after a final answer, the unanswered ones at the step limit
    (the calls made on the way are in the trace)."""
    models = [c for c in trace if c.kind == "model"]
    return last.model_copy(
        update={
            "input_tokens": sum(c.input_tokens for c in models),
            "output_tokens": sum(c.output_tokens for c in models),
            "cached_tokens": sum(c.cached_tokens for c in models),
            "cache_write_tokens": sum(c.cache_write_tokens for c in models),
            "reasoning_tokens": sum(c.reasoning_tokens for c in models),
            "latency_s": max((c.start_s + c.latency_s for c in trace), default=0.0),
            "cost_usd": math.fsum(c.cost_usd for c in models),
            "cached": all(c.cached for c in models),
            "attempts": sum(c.attempts for c in models),
            "finish_reason": finish or last.finish_reason,
            "answered_by": client.name,
            "trace": trace,
        }
    )


async def run_agent(
    client: ModelClient,
    request: Request,
    tools: ToolSet,
    limits: AgentLimits,
    *,
    index: int,
    role: str | None = None,
    record_input: bool = False,
) -> Completion:
    """One sample's conversation with ``tools`` until a final answer or the step limit.
    ``request`` is the sample's (its conversation and settings; its own tools are replaced
    by ``tools``'); ``index`` keys unseeded sampling as in :meth:`ModelClient.generate`.
    ``record_input``: the first step's input is kept too (not the sample's own request)."""
    messages = list(request.messages)
    trace: list[Call] = []
    clock = 0.0
    step = 0
    while True:
        choice = limits.tool_choice if step == 0 else None
        completion = await client.generate(
            _step_request(request, messages, tools, choice),
            index=index,
            role=role,
            purpose=f"step {step + 1}",
        )
        call = completion.trace[0].model_copy(
            update={
                "round": step,
                "start_s": clock,
                "input": transcript(messages) if step or record_input else None,
            }
        )
        trace.append(call)
        clock += call.latency_s
        if completion.error is not None or not completion.tool_calls:
            return _answer(client, completion, trace)
        if step + 1 >= limits.max_steps:
            pending = len(completion.tool_calls)
            trace[-1] = call.model_copy(
                update={
                    "note": f"step limit: {limits.max_steps} model calls made, the last "
                    f"asked for {pending} more tool call{'s' if pending > 1 else ''}"
                }
            )
            return _answer(client, completion, trace, finish="tool_calls")
        messages.append(
            Message(role="assistant", content=completion.text, tool_calls=completion.tool_calls)
        )
        for tool_call in completion.tool_calls:
            outcome = await tools.call(tool_call.name, tool_call.arguments)
            trace.append(
                Call(
                    model=tool_call.name,
                    kind="tool",
                    role=outcome.source,
                    purpose=f"step {step + 1}",
                    input=[
                        {
                            "id": tool_call.id,
                            "name": tool_call.name,
                            "arguments": tool_call.arguments,
                        }
                    ],
                    round=step,
                    start_s=clock,
                    output=outcome.output,
                    latency_s=outcome.latency_s,
                    error=outcome.error,
                )
            )
            clock += outcome.latency_s
            messages.append(
                Message(role="tool", content=outcome.message(), tool_call_id=tool_call.id)
            )
        step += 1


class ToolBox:
    """The tool sets of one step's answers, opened on the step's event loop when an answer
    first needs one (MCP servers started, their tools listed) and closed when the step
    ends; shared by a plain model's answers or by every member of a strategy, so a tool set
    is opened once per step whoever calls it. A set that cannot be opened is remembered as
    the error of every answer that needs it."""

    def __init__(self) -> None:
        self._open: dict[str, ToolSet | str] = {}  # by the spec's JSON (its lists: no hash)
        self._opening: asyncio.Lock | None = None

    async def open(self, spec: ToolsSpec) -> ToolSet | str:
        """The open tool set of ``spec``, or why it could not be opened."""
        from llmbench.tools.toolset import open_toolset

        if self._opening is None:
            self._opening = asyncio.Lock()
        key = spec.model_dump_json()
        async with self._opening:
            if key not in self._open:
                try:
                    self._open[key] = await open_toolset(spec)
                except BenchError as exc:  # a server the preflight started fails now
                    self._open[key] = f"tools: {exc.message}"
        return self._open[key]

    async def aclose(self) -> None:
        """Close every open set (again: nothing to do)."""
        opened, self._open = self._open, {}
        for tools in opened.values():
            if not isinstance(tools, str):
                await tools.aclose()


async def ask_model(
    client: ModelClient,
    params: GenerationParams,
    ask: Ask,
    toolbox: ToolBox,
    *,
    index: int,
    draw: int = 0,
    role: str | None = None,
    purpose: str = "answer",
    note: str | None = None,
    record_input: bool = False,
) -> Completion:
    """A model's answer to ``ask`` on its settings ``params``: one call through its client,
    or, when the ask carries an agent loop (``Ask.agent``), the loop over that tool set.
    The one way a model answers an ask, as an entrant of its own or as a strategy's
    member. ``record_input``: keep what the first call sent in the trace (it is not the
    sample's own request)."""
    request = ask.request(params, draw=draw)
    if ask.agent is None:
        return await client.generate(
            request, index=index, role=role, purpose=purpose, note=note, record_input=record_input
        )
    tools = await toolbox.open(ask.agent)
    if isinstance(tools, str):
        return Completion(finish_reason="error", error=tools, answered_by=client.name)
    return await run_agent(
        client,
        request,
        tools,
        AgentLimits.of(ask.agent),
        index=index,
        role=role,
        record_input=record_input,
    )

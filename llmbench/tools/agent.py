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

from llmbench.errors import BenchError
from llmbench.runtime.client import ModelClient
from llmbench.tools.base import ToolSet
from llmbench.tools.spec import ToolsSpec
from llmbench.types import Ask, Call, Completion, GenerationParams, Message, Request, Sample


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
) -> Completion:
    """One sample's conversation with ``tools`` until a final answer or the step limit.
    ``request`` is the sample's (its conversation and settings; its own tools are replaced
    by ``tools``'); ``index`` keys unseeded sampling as in :meth:`ModelClient.generate`."""
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
                "input": transcript(messages) if step else None,
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


class AgentAnswerer:
    """A plain model answering through the agent loop (the runner's ``Answerer``): the
    tool set is opened on the step's event loop at the first sample and closed at the end."""

    def __init__(self, client: ModelClient, params: GenerationParams, spec: ToolsSpec) -> None:
        self.client, self.params, self.spec = client, params, spec
        self._tools: ToolSet | None = None
        self._opening: asyncio.Lock | None = None
        self._failed: str | None = None

    async def tools(self) -> ToolSet | str:
        """The open tool set, or why it could not be opened (once per step)."""
        from llmbench.tools.toolset import open_toolset

        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._tools is None and self._failed is None:
                try:
                    self._tools = await open_toolset(self.spec)
                except BenchError as exc:  # a server the preflight started fails now
                    self._failed = f"tools: {exc.message}"
        return self._tools if self._tools is not None else str(self._failed)

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """The loop from ``ask`` (the driver's; None: the sample's own question)."""
        tools = await self.tools()
        if isinstance(tools, str):
            return Completion(finish_reason="error", error=tools, answered_by=self.client.name)
        request = (ask or Ask.of(sample)).request(self.params)
        return await run_agent(self.client, request, tools, AgentLimits.of(self.spec), index=index)

    async def aclose(self) -> None:
        try:
            if self._tools is not None:
                await self._tools.aclose()
        finally:
            await self.client.aclose()

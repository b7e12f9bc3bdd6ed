"""The OpenAI provider's lean request path against the SDK's typed one, on the wire.

`OpenAIProvider.generate` sends through `client.post` with the body serialised once and reads
the reply as plain JSON. Here the same requests also go through `chat.completions.create`
(typed response objects, the path it replaced) and both must agree: the bytes the server
received, every Completion field, and the exception class of every fault. A streamed answer's
tool calls are put together on the typed path by the SDK's own accumulator
(`ChatCompletionStreamState`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from llmbench.config import ModelSpec, PriceEntry
from llmbench.providers.openai import OpenAIProvider, _connection_error
from llmbench.providers.registry import build_provider
from llmbench.providers.remote import Stopwatch
from llmbench.types import Completion, GenerationParams, Message, Request, ToolCall
from tests.fakes.provider_server import Fault, ProviderServer, Reply, ReplyCall

KEY = "sk-test-fast-path"
PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
MESSAGES = [
    Message(role="system", content="Answer briefly."),
    Message(role="user", content="What is the capital of France? Ünïcode ✓"),
]
PARAMS = GenerationParams(temperature=0.3, top_p=0.9, max_tokens=16, stop=("\n",), seed=7)
TIMING = {"latency_s", "ttft_s"}


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.clear()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    monkeypatch.setenv("DEEPSEEK_BASE_URL", server.url + "/v1")


def make(provider: str = "openai", model: str = "gpt-4o-mini", **fields: Any) -> OpenAIProvider:
    spec = ModelSpec.model_validate(
        {"name": "m", "provider": provider, "model": model, "price": PRICE, **fields}
    )
    built = build_provider(spec)
    assert isinstance(built, OpenAIProvider)
    return built


def _typed_field(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    return value


def _typed_calls(calls: Any) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
        for c in calls or ()
    )


def _typed_usage(usage: Any) -> dict[str, Any] | None:
    """A typed Usage object as the dict the lean path reads (extras included)."""
    return None if usage is None else usage.model_dump()


async def typed_generate(
    provider: OpenAIProvider, messages: Sequence[Message], params: GenerationParams
) -> Completion:
    """The path the lean one replaced: chat.completions.create and its typed objects."""
    body = provider.request(Request(messages=tuple(messages), params=params))
    clock = Stopwatch()
    try:
        if not provider.spec.stream:
            response = await provider.client.chat.completions.create(**body)
            choice = response.choices[0]
            return provider._completion(
                text=choice.message.content or "",
                reasoning=_typed_field(choice.message, "reasoning_content"),
                calls=_typed_calls(choice.message.tool_calls),
                finish=choice.finish_reason,
                usage=_typed_usage(response.usage),
                model=response.model,
                latency=clock.elapsed,
                ttft=None,
            )
        stream = await provider.client.chat.completions.create(
            **body, stream=True, stream_options={"include_usage": True}
        )
        from openai.lib.streaming.chat import ChatCompletionStreamState

        state: Any = ChatCompletionStreamState()
        seen = False
        text, reasoning, finish, usage, model = [], [], None, None, provider.spec.model
        async for chunk in stream:
            if chunk.choices:
                state.handle_chunk(chunk)
                seen = True
            model = chunk.model or model
            if chunk.usage is not None:
                usage = chunk.usage
            for part in chunk.choices:
                if (
                    part.delta.content
                    or _typed_field(part.delta, "reasoning_content")
                    or part.delta.tool_calls
                ):
                    clock.token()
                text.append(part.delta.content or "")
                reasoning.append(_typed_field(part.delta, "reasoning_content") or "")
                finish = part.finish_reason or finish
        if usage is None:
            raise ConnectionError("the stream ended without usage (dropped before the end)")
        snapshot = state.current_completion_snapshot if seen else None
        return provider._completion(
            text="".join(text),
            reasoning="".join(reasoning) or None,
            calls=_typed_calls(snapshot.choices[0].message.tool_calls) if snapshot else (),
            finish=finish,
            usage=_typed_usage(usage),
            model=model,
            latency=clock.elapsed,
            ttft=clock.first_token,
        )
    except Exception as error:
        renamed = _connection_error(error)
        if renamed is None:
            raise
        raise renamed from error.__cause__


def both(
    server: ProviderServer, item: Reply | Fault, **fields: Any
) -> tuple[Completion | BaseException, Completion | BaseException]:
    """The lean and the typed path on the same scripted answer: each a Completion or error."""
    results: list[Completion | BaseException] = []
    for typed in (False, True):
        provider = make(**fields)
        server.script(item)

        async def call(provider: OpenAIProvider = provider, typed: bool = typed) -> Completion:
            try:
                if typed:
                    return await typed_generate(provider, MESSAGES, PARAMS)
                return await provider.generate(Request(messages=MESSAGES, params=PARAMS))
            finally:
                await provider.aclose()

        try:
            results.append(asyncio.run(call()))
        except Exception as error:
            results.append(error)
    return results[0], results[1]


def fields_of(completion: Completion | BaseException) -> dict[str, Any]:
    assert isinstance(completion, Completion), repr(completion)
    return completion.model_dump(exclude=TIMING)


REPLIES = [
    Reply(text="Paris.", input_tokens=21, output_tokens=6, model_version="gpt-4o-mini-2024"),
    Reply(text="Par", input_tokens=9, output_tokens=16, finish="length"),
    Reply(text="", finish="safety"),
    Reply(text="4", reasoning="2+2 is 4", reasoning_tokens=30, output_tokens=31),
    Reply(text="ok", input_tokens=100, cached_input_tokens=64),
    Reply(text="", tool_calls=(ReplyCall("get_weather", {"city": "Paris"}, id="call_w"),)),
    Reply(
        text="Both.",  # ids given: the fake numbers its own by request
        tool_calls=(
            ReplyCall("get_weather", {"city": "Ünïcode"}, id="call_w"),
            ReplyCall("get_quote", id="call_q"),
        ),
    ),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "reply", REPLIES, ids=lambda r: r.text or ("calls" if r.tool_calls else r.finish)
)
def test_same_completion_as_the_typed_path(
    server: ProviderServer, reply: Reply, stream: bool
) -> None:
    lean, typed = both(server, reply, stream=stream)
    assert fields_of(lean) == fields_of(typed)
    assert isinstance(lean, Completion)
    assert lean.text == reply.text and lean.input_tokens == reply.input_tokens
    answered = reply.text or reply.reasoning or reply.tool_calls
    assert (lean.ttft_s is not None) == (stream and bool(answered))


@pytest.mark.parametrize("stream", [False, True])
def test_same_request_on_the_wire(server: ProviderServer, stream: bool) -> None:
    options = {"json_mode": True, "extra_body": {"repeat_penalty": 1.0, "top_k": 1}}
    lean, typed = both(server, Reply(text="{}"), stream=stream, options=options)
    assert fields_of(lean) == fields_of(typed)
    lean_request, typed_request = server.requests
    assert lean_request.path == typed_request.path == "/v1/chat/completions"
    assert lean_request.json == typed_request.json
    assert lean_request.body["repeat_penalty"] == 1.0 and "extra_body" not in lean_request.body
    assert lean_request.headers["authorization"] == f"Bearer {KEY}"
    assert lean_request.headers["content-type"] == "application/json"
    assert set(lean_request.headers) == set(typed_request.headers)


def test_reasoning_model_and_deepseek_fields(server: ProviderServer) -> None:
    lean, typed = both(server, Reply(text="x", output_tokens=40, reasoning_tokens=33), model="o3")
    assert fields_of(lean) == fields_of(typed)
    assert "max_completion_tokens" in server.requests[0].body
    lean, typed = both(
        server,
        Reply(text="4", reasoning="think", cached_input_tokens=5),
        provider="deepseek",
        model="deepseek-reasoner",
    )
    assert fields_of(lean) == fields_of(typed)
    assert isinstance(lean, Completion) and lean.reasoning == "think"


FAULTS = [
    Fault(status=429, retry_after=1),
    Fault(status=500),
    Fault(status=503, body="upstream down"),
    Fault(status=401),
    Fault(status=400),
    Fault(malformed=True),
    Fault(reset_connection=True),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", FAULTS, ids=repr)
def test_same_error_as_the_typed_path(server: ProviderServer, fault: Fault, stream: bool) -> None:
    lean, typed = both(server, fault, stream=stream)
    assert isinstance(lean, BaseException) and isinstance(typed, BaseException)
    assert type(lean) is type(typed), (lean, typed)
    provider = make()
    assert provider.retryable(lean) == provider.retryable(typed)
    assert provider.rate_limited(lean) == provider.rate_limited(typed)
    if not (fault.malformed or fault.reset_connection):
        assert getattr(lean, "status_code", None) == fault.status


def test_dropped_stream_is_the_same_error(server: ProviderServer) -> None:
    lean, typed = both(server, Fault(drop_stream_after=2), stream=True)
    assert isinstance(lean, BaseException) and type(lean) is type(typed), (lean, typed)
    assert make().retryable(lean)

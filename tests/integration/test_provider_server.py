"""The fake provider server speaks each vendor's wire format: proven through the official SDKs.

Every client runs with retries off (`max_retries=0`; Gemini: `HttpRetryOptions(attempts=1)`, which
also stops google-genai's own 1-10 s sleep-and-retry on aiohttp connection errors), so a scripted
fault reaches the test as the exact exception a provider adapter would see.

The clients share one TLS context, through each SDK's public options: every client otherwise loads
the CA bundle (~50 ms), which was most of this module's run time. The fake is plain http anyway.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.fakes.provider_server import (
    REDACTED,
    Fault,
    ProviderServer,
    RecordedRequest,
    Reply,
    error_body,
)

QUESTION = "What is the capital of France?"
TLS = ssl.create_default_context()


def openai_client(server: ProviderServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{server.url}/v1",
        api_key="sk-test-oa",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=TLS),
    )


def anthropic_client(server: ProviderServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=server.url,
        api_key="sk-ant-test",
        max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=TLS),
    )


def gemini_client(server: ProviderServer, **options: Any) -> genai.Client:
    http_options = genai_types.HttpOptions(
        base_url=server.url,
        retry_options=genai_types.HttpRetryOptions(attempts=1),
        client_args={"verify": TLS},
        async_client_args={"ssl": TLS},  # aiohttp's name for it
        **options,
    )
    return genai.Client(api_key="gemini-test-key", http_options=http_options)


def ollama_client(server: ProviderServer) -> ollama.AsyncClient:
    # Ollama sends no key unless asked (or OLLAMA_API_KEY is set); a proxy in front may want one.
    headers = {"Authorization": "Bearer ollama-test"}
    return ollama.AsyncClient(host=server.url, headers=headers, verify=TLS)


def only(server: ProviderServer) -> RecordedRequest:
    (request,) = server.requests
    return request


def assert_cut(error: BaseException, status_error: type[BaseException]) -> None:
    """A dropped stream or a reset connection reached the client as a transport failure: not an
    HTTP status, not a body that failed to parse. Which class an SDK raises for it is the SDK's
    business and changes between releases; that llmbench retries it, whatever the class, is
    tested through each provider in test_providers.py."""
    assert not isinstance(error, (status_error, json.JSONDecodeError)), repr(error)


# OpenAI ----------------------------------------------------------------------------------------


OPENAI_MESSAGES = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": QUESTION},
]


async def openai_chat(server: ProviderServer, **params: Any) -> Any:
    async with openai_client(server) as client:
        return await client.chat.completions.create(
            model="gpt-4o-mini", messages=OPENAI_MESSAGES, **params
        )


async def openai_stream(server: ProviderServer, chunks: list[Any], **params: Any) -> None:
    """Collects chunks into the caller's list, so what came before an error stays visible."""
    async with openai_client(server) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=OPENAI_MESSAGES, stream=True, **params
        )
        async for chunk in stream:
            chunks.append(chunk)


def test_openai_non_streaming_parses_text_usage_and_finish(server: ProviderServer) -> None:
    server.script(
        Reply(
            "Paris",
            input_tokens=21,
            output_tokens=9,
            reasoning="The capital is Paris.",
            reasoning_tokens=8,
            cached_input_tokens=16,
            model_version="gpt-4o-mini-2024-07-18",
        )
    )
    completion = asyncio.run(openai_chat(server, temperature=0.2, max_completion_tokens=50))

    choice = completion.choices[0]
    assert choice.message.content == "Paris"
    assert choice.message.model_extra == {"reasoning_content": "The capital is Paris."}
    assert choice.finish_reason == "stop"
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.object == "chat.completion"
    assert completion.system_fingerprint == "fp_fake"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (21, 9, 30)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 8
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 16

    request = only(server)
    assert (request.vendor, request.method, request.path) == (
        "openai",
        "POST",
        "/v1/chat/completions",
    )
    assert request.body["messages"][0] == {"role": "system", "content": "Answer in one word."}
    assert (request.model, request.temperature, request.max_tokens) == ("gpt-4o-mini", 0.2, 50)
    assert request.body["max_completion_tokens"] == 50
    assert (request.system_text, request.last_user_text) == ("Answer in one word.", QUESTION)
    assert request.headers["authorization"] == "Bearer sk-test-oa"
    assert not request.stream


def test_openai_finish_reasons_map_length_and_safety(server: ProviderServer) -> None:
    server.script(Reply("Par", finish="length"), Reply("", finish="safety"))
    first = asyncio.run(openai_chat(server, max_tokens=1))
    second = asyncio.run(openai_chat(server))
    assert first.choices[0].finish_reason == "length"
    assert server.requests[0].body["max_tokens"] == 1
    assert server.requests[0].max_tokens == 1
    assert second.choices[0].finish_reason == "content_filter"


def test_openai_streaming_ends_with_usage_chunk_and_done(server: ProviderServer) -> None:
    server.script(Reply("Paris is the capital.", input_tokens=12, output_tokens=5, reasoning="Hm"))
    chunks: list[Any] = []
    asyncio.run(openai_stream(server, chunks, stream_options={"include_usage": True}))

    with_choices = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in with_choices
    )
    assert (text, reasoning) == ("Paris is the capital.", "Hm")
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.usage is None for c in with_choices)
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (12, 5)
    request = only(server)
    assert request.stream and request.body["stream_options"] == {"include_usage": True}


def test_openai_streaming_without_include_usage_sends_no_usage(server: ProviderServer) -> None:
    chunks: list[Any] = []
    asyncio.run(openai_stream(server, chunks))
    assert all(c.choices and c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == f"echo: {QUESTION}"


def test_openai_rate_limit_and_server_errors(server: ProviderServer) -> None:
    server.script(Fault(429, retry_after=1.5, retry_after_ms=1500), Fault(500))
    with pytest.raises(openai.RateLimitError) as limited:
        asyncio.run(openai_chat(server))
    assert limited.value.status_code == 429
    assert limited.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in limited.value.message
    assert limited.value.response.headers["retry-after"] == "1.5"
    assert limited.value.response.headers["retry-after-ms"] == "1500"
    assert limited.value.request_id is not None

    with pytest.raises(openai.InternalServerError) as broken:
        asyncio.run(openai_chat(server))
    assert broken.value.status_code == 500
    assert broken.value.type == "server_error"


def test_openai_text_error_body_and_custom_json_body(server: ProviderServer) -> None:
    server.script(
        Fault(502, body="<html>bad gateway</html>"),
        Fault(400, body={"error": {"message": "no", "type": "x", "param": "model", "code": "c"}}),
    )
    with pytest.raises(openai.InternalServerError) as gateway:
        asyncio.run(openai_chat(server))
    assert gateway.value.status_code == 502
    assert gateway.value.body == "<html>bad gateway</html>"
    with pytest.raises(openai.BadRequestError) as bad:
        asyncio.run(openai_chat(server))
    assert (bad.value.param, bad.value.code) == ("model", "c")


def test_openai_malformed_dropped_and_reset(server: ProviderServer) -> None:
    server.script(Fault(malformed=True))
    with pytest.raises(json.JSONDecodeError):  # the SDK does not wrap a 200 with broken JSON
        asyncio.run(openai_chat(server))

    server.script(Fault(drop_stream_after=2))
    chunks: list[Any] = []
    with pytest.raises(Exception) as dropped:
        asyncio.run(openai_stream(server, chunks, stream_options={"include_usage": True}))
    assert_cut(dropped.value, openai.APIStatusError)
    assert [c.choices[0].delta.content for c in chunks] == ["", "echo:", " What"]
    assert all(c.usage is None for c in chunks)

    server.script(Fault(reset_connection=True))
    with pytest.raises(Exception) as reset:
        asyncio.run(openai_chat(server))
    assert_cut(reset.value, openai.APIStatusError)


# Anthropic -------------------------------------------------------------------------------------


async def anthropic_create(server: ProviderServer, **params: Any) -> Any:
    async with anthropic_client(server) as client:
        return await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            system="Answer in one word.",
            messages=[{"role": "user", "content": QUESTION}],
            **params,
        )


async def anthropic_events(server: ProviderServer) -> list[str]:
    async with anthropic_client(server) as client:
        stream = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
        )
        return [event.type async for event in stream]


async def anthropic_stream(server: ProviderServer, texts: list[str]) -> Any:
    async with (
        anthropic_client(server) as client,
        client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"temperature": 0.5},
        ) as stream,
    ):
        async for text in stream.text_stream:
            texts.append(text)
        return await stream.get_final_message()


def test_anthropic_non_streaming_parses_content_usage_and_stop(server: ProviderServer) -> None:
    server.script(
        Reply(
            "Paris",
            input_tokens=30,
            output_tokens=7,
            reasoning="Capital of France.",
            cached_input_tokens=20,
            cache_creation_tokens=4,
            model_version="claude-haiku-4-5-20251001",
        )
    )
    # anthropic 2.x dropped the `temperature` argument; the API field still exists.
    message = asyncio.run(anthropic_create(server, extra_body={"temperature": 0.3}))

    thinking, text = message.content
    assert (thinking.type, thinking.thinking) == ("thinking", "Capital of France.")
    assert (text.type, text.text) == ("text", "Paris")
    assert (message.type, message.role, message.stop_reason) == ("message", "assistant", "end_turn")
    assert message.model == "claude-haiku-4-5-20251001"
    # Anthropic's input_tokens leaves out cache reads and writes.
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (6, 7)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (20, 4)

    request = only(server)
    assert (request.vendor, request.path) == ("anthropic", "/v1/messages")
    assert request.body["system"] == "Answer in one word."
    assert request.body["messages"] == [{"role": "user", "content": QUESTION}]
    assert (request.max_tokens, request.temperature) == (64, 0.3)
    # anthropic 2.x sends the key as a bearer token; older SDKs used x-api-key.
    key = request.headers.get("x-api-key") or request.headers["authorization"].removeprefix(
        "Bearer "
    )
    assert key == "sk-ant-test"
    assert "anthropic-version" in request.headers


def test_anthropic_stop_reasons_map_length_and_safety(server: ProviderServer) -> None:
    server.script(Reply("Par", finish="length"), Reply("I can't help.", finish="safety"))
    assert asyncio.run(anthropic_create(server)).stop_reason == "max_tokens"
    assert asyncio.run(anthropic_create(server)).stop_reason == "refusal"


def test_anthropic_streaming_events_build_the_final_message(server: ProviderServer) -> None:
    server.script(
        Reply("Paris, of course.", input_tokens=14, output_tokens=4, cached_input_tokens=4)
    )
    texts: list[str] = []
    message = asyncio.run(anthropic_stream(server, texts))
    assert texts == ["Paris,", " of", " course."]
    assert message.content[0].text == "Paris, of course."
    assert message.stop_reason == "end_turn"
    # input from message_start, output from message_delta
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 4)
    assert message.usage.cache_read_input_tokens == 4
    request = only(server)
    assert request.stream and request.temperature == 0.5 and request.system_text is None


def test_anthropic_raw_stream_event_order(server: ProviderServer) -> None:
    server.script(Reply("a b", reasoning="x"))
    assert asyncio.run(anthropic_events(server)) == [  # the SDK swallows `ping`
        "message_start",
        "content_block_start",
        "content_block_delta",  # thinking_delta
        "content_block_delta",  # signature_delta
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_rate_limit_overloaded_and_server_errors(server: ProviderServer) -> None:
    server.script(Fault(429, retry_after=7), Fault(529), Fault(500))
    with pytest.raises(anthropic.RateLimitError) as limited:
        asyncio.run(anthropic_create(server))
    assert limited.value.status_code == 429
    assert limited.value.type == "rate_limit_error"
    assert limited.value.api_message == "This request would exceed your organization's rate limit."
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.request_id is not None and limited.value.request_id.startswith("req_")

    with pytest.raises(anthropic.OverloadedError) as overloaded:
        asyncio.run(anthropic_create(server))
    assert (overloaded.value.status_code, overloaded.value.type) == (529, "overloaded_error")
    assert isinstance(overloaded.value, anthropic.InternalServerError)

    with pytest.raises(anthropic.InternalServerError) as broken:
        asyncio.run(anthropic_create(server))
    assert (broken.value.status_code, broken.value.type) == (500, "api_error")


def test_anthropic_malformed_dropped_and_reset(server: ProviderServer) -> None:
    server.script(Fault(malformed=True))
    with pytest.raises(json.JSONDecodeError):
        asyncio.run(anthropic_create(server))

    server.script(Fault(drop_stream_after=2))
    texts: list[str] = []
    with pytest.raises(Exception) as dropped:
        asyncio.run(anthropic_stream(server, texts))
    assert_cut(dropped.value, anthropic.APIStatusError)
    assert texts == ["echo:", " What"]

    server.script(Fault(reset_connection=True))
    with pytest.raises(Exception) as reset:
        asyncio.run(anthropic_create(server))
    assert_cut(reset.value, anthropic.APIStatusError)


# Gemini ----------------------------------------------------------------------------------------

GEMINI_CONFIG = genai_types.GenerateContentConfig(
    system_instruction="Answer in one word.", temperature=0.4, max_output_tokens=40
)


async def gemini_generate(server: ProviderServer, **options: Any) -> Any:
    async with gemini_client(server, **options).aio as client:
        return await client.models.generate_content(
            model="gemini-2.5-flash", contents=QUESTION, config=GEMINI_CONFIG
        )


async def gemini_stream(server: ProviderServer, chunks: list[Any]) -> None:
    async with gemini_client(server).aio as client:
        stream = await client.models.generate_content_stream(
            model="gemini-2.5-flash", contents=QUESTION, config=GEMINI_CONFIG
        )
        async for chunk in stream:
            chunks.append(chunk)


def test_gemini_non_streaming_parses_text_usage_and_finish(server: ProviderServer) -> None:
    server.script(
        Reply(
            "Paris",
            input_tokens=11,
            output_tokens=9,
            reasoning="Easy one.",
            reasoning_tokens=6,
            cached_input_tokens=2,
            model_version="gemini-2.5-flash-001",
        )
    )
    response = asyncio.run(gemini_generate(server))

    assert response.text == "Paris"  # thought parts are left out of .text
    parts = response.candidates[0].content.parts
    assert [(p.text, p.thought) for p in parts] == [("Easy one.", True), ("Paris", None)]
    assert response.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert response.model_version == "gemini-2.5-flash-001"
    assert response.response_id is not None
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (11, 3)
    assert (usage.thoughts_token_count, usage.total_token_count) == (6, 20)
    assert usage.cached_content_token_count == 2

    request = only(server)
    # google-genai 3.x defaults to the v1 API; set HttpOptions(api_version=...) for another.
    assert request.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert (request.vendor, request.model, request.stream) == ("gemini", "gemini-2.5-flash", False)
    assert request.body["systemInstruction"]["parts"] == [{"text": "Answer in one word."}]
    assert request.body["contents"] == [{"parts": [{"text": QUESTION}], "role": "user"}]
    assert request.body["generationConfig"] == {"temperature": 0.4, "maxOutputTokens": 40}
    assert (request.temperature, request.max_tokens) == (0.4, 40)
    assert (request.system_text, request.last_user_text) == ("Answer in one word.", QUESTION)
    assert request.headers["x-goog-api-key"] == "gemini-test-key"


def test_gemini_v1beta_route_and_length_finish(server: ProviderServer) -> None:
    server.script(Reply("Par", finish="length"))
    response = asyncio.run(gemini_generate(server, api_version="v1beta"))
    assert response.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS
    assert only(server).path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_gemini_streaming_sends_usage_on_the_last_chunk(server: ProviderServer) -> None:
    server.script(Reply("Paris is lovely.", input_tokens=8, output_tokens=3))
    chunks: list[Any] = []
    asyncio.run(gemini_stream(server, chunks))
    assert "".join(c.text or "" for c in chunks) == "Paris is lovely."
    last = chunks[-1]
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count == 3
    assert last.usage_metadata.total_token_count == 11
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage_metadata.candidates_token_count is None for c in chunks[:-1])
    request = only(server)
    assert request.path == "/v1/models/gemini-2.5-flash:streamGenerateContent"
    assert request.query == {"alt": "sse"} and request.stream


def test_gemini_safety_blocks_parse_to_no_text(server: ProviderServer) -> None:
    server.script(
        Reply("never shown", finish="safety", safety_scope="prompt"),
        Reply("never shown", finish="safety"),
    )
    prompt_blocked = asyncio.run(gemini_generate(server))
    assert prompt_blocked.text is None
    assert not prompt_blocked.candidates
    assert prompt_blocked.prompt_feedback.block_reason == genai_types.BlockedReason.SAFETY

    answer_blocked = asyncio.run(gemini_generate(server))
    assert answer_blocked.text is None
    candidate = answer_blocked.candidates[0]
    assert candidate.finish_reason == genai_types.FinishReason.SAFETY
    assert candidate.content is None
    assert any(rating.blocked for rating in candidate.safety_ratings)


def test_gemini_streamed_safety_block(server: ProviderServer) -> None:
    server.script(Reply("never shown", finish="safety", safety_scope="prompt"))
    chunks: list[Any] = []
    asyncio.run(gemini_stream(server, chunks))
    (chunk,) = chunks
    assert chunk.text is None
    assert chunk.prompt_feedback.block_reason == genai_types.BlockedReason.SAFETY


def test_gemini_rate_limit_and_server_errors(server: ProviderServer) -> None:
    server.script(Fault(429, retry_after=3), Fault(503), Fault(500))
    with pytest.raises(genai_errors.ClientError) as limited:
        asyncio.run(gemini_generate(server))
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert limited.value.message == "Resource has been exhausted (e.g. check quota)."
    # Real Gemini puts the wait in the body (google.rpc.RetryInfo), not in a header.
    (retry_info,) = limited.value.details["error"]["details"]
    assert retry_info["retryDelay"] == "3s"

    with pytest.raises(genai_errors.ServerError) as unavailable:
        asyncio.run(gemini_generate(server))
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")
    with pytest.raises(genai_errors.ServerError) as broken:
        asyncio.run(gemini_generate(server))
    assert (broken.value.code, broken.value.status) == (500, "INTERNAL")


def test_gemini_malformed_dropped_and_reset(server: ProviderServer) -> None:
    server.script(Fault(malformed=True))
    with pytest.raises(json.JSONDecodeError):
        asyncio.run(gemini_generate(server))

    server.script(Fault(malformed=True))
    with pytest.raises(genai_errors.UnknownApiResponseError):
        asyncio.run(gemini_stream(server, []))

    server.script(Fault(drop_stream_after=1))
    chunks: list[Any] = []
    with pytest.raises(Exception) as dropped:
        asyncio.run(gemini_stream(server, chunks))
    assert_cut(dropped.value, genai_errors.APIError)
    assert [c.text for c in chunks] == ["echo:"]
    assert all(c.usage_metadata.candidates_token_count is None for c in chunks)

    server.script(Fault(reset_connection=True))
    with pytest.raises(Exception) as reset:
        asyncio.run(gemini_generate(server))
    assert_cut(reset.value, genai_errors.APIError)


# Ollama ----------------------------------------------------------------------------------------

OLLAMA_MESSAGES = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": QUESTION},
]


async def ollama_chat(server: ProviderServer) -> Any:
    async with ollama_client(server) as client:
        return await client.chat(
            model="llama3.2:1b",
            messages=OLLAMA_MESSAGES,
            options={"temperature": 0.1, "num_predict": 30},
        )


async def ollama_stream(server: ProviderServer, parts: list[Any]) -> None:
    async with ollama_client(server) as client:
        async for part in await client.chat(
            model="llama3.2:1b", messages=OLLAMA_MESSAGES, stream=True
        ):
            parts.append(part)


def test_ollama_non_streaming_parses_message_counts_and_reason(server: ProviderServer) -> None:
    server.script(Reply("Paris", input_tokens=26, output_tokens=2, reasoning="Simple."))
    response = asyncio.run(ollama_chat(server))

    assert response.message.content == "Paris"
    assert response.message.thinking == "Simple."
    assert (response.done, response.done_reason) == (True, "stop")
    assert (response.prompt_eval_count, response.eval_count) == (26, 2)
    durations = (response.load_duration, response.prompt_eval_duration, response.eval_duration)
    assert response.total_duration == sum(durations)
    assert all(d > 0 for d in durations)
    assert response.model == "llama3.2:1b" and response.created_at.endswith("Z")

    request = only(server)
    assert (request.vendor, request.path) == ("ollama", "/api/chat")
    assert request.body["messages"] == OLLAMA_MESSAGES
    assert request.body["stream"] is False  # the SDK always says; the server defaults to True
    assert request.body["options"] == {"temperature": 0.1, "num_predict": 30}
    assert (request.temperature, request.max_tokens) == (0.1, 30)
    assert request.headers["authorization"] == "Bearer ollama-test"


def test_ollama_streaming_ndjson_ends_with_counts(server: ProviderServer) -> None:
    server.script(Reply("Paris it is", input_tokens=5, output_tokens=3, finish="length"))
    parts: list[Any] = []
    asyncio.run(ollama_stream(server, parts))
    assert "".join(p.message.content for p in parts) == "Paris it is"
    assert all(p.done is False and p.eval_count is None for p in parts[:-1])
    final = parts[-1]
    assert (final.done, final.done_reason) == (True, "length")
    assert (final.prompt_eval_count, final.eval_count) == (5, 3)
    assert only(server).stream


def test_ollama_rate_limit_and_server_errors(server: ProviderServer) -> None:
    server.script(Fault(429, retry_after=2), Fault(500, body={"error": "llama runner crashed"}))
    with pytest.raises(ollama.ResponseError) as limited:
        asyncio.run(ollama_chat(server))
    assert (limited.value.status_code, limited.value.error) == (429, "too many requests")
    with pytest.raises(ollama.ResponseError) as broken:
        asyncio.run(ollama_stream(server, []))
    assert (broken.value.status_code, broken.value.error) == (500, "llama runner crashed")


def test_ollama_malformed_dropped_and_reset(server: ProviderServer) -> None:
    server.script(Fault(malformed=True))
    with pytest.raises(json.JSONDecodeError):
        asyncio.run(ollama_chat(server))

    server.script(Fault(drop_stream_after=2))
    parts: list[Any] = []
    with pytest.raises(Exception) as dropped:
        asyncio.run(ollama_stream(server, parts))
    assert_cut(dropped.value, ollama.ResponseError)
    assert [p.message.content for p in parts] == ["echo:", " What"]
    assert not any(p.done for p in parts)  # no done line came

    server.script(Fault(reset_connection=True))
    with pytest.raises(Exception) as reset:
        asyncio.run(ollama_chat(server))
    assert_cut(reset.value, ollama.ResponseError)


def test_a_stream_can_end_cleanly_before_its_closing_events(server: ProviderServer) -> None:
    """end_stream_after: the body ends well framed after N text deltas, so each SDK reads it
    without an error, and nothing in it says that the answer was finished."""
    server.script(Fault(end_stream_after=2))
    chunks: list[Any] = []
    asyncio.run(openai_stream(server, chunks, stream_options={"include_usage": True}))
    assert [c.choices[0].delta.content for c in chunks] == ["", "echo:", " What"]
    assert all(c.choices[0].finish_reason is None and c.usage is None for c in chunks)

    server.script(Fault(end_stream_after=2))
    events = asyncio.run(anthropic_events(server))
    assert events == ["message_start", "content_block_start", *["content_block_delta"] * 2]

    server.script(Fault(end_stream_after=1))
    pieces: list[Any] = []
    asyncio.run(gemini_stream(server, pieces))
    assert [c.text for c in pieces] == ["echo:"]
    assert all(c.candidates[0].finish_reason is None for c in pieces)

    server.script(Fault(end_stream_after=2))
    parts: list[Any] = []
    asyncio.run(ollama_stream(server, parts))
    assert [p.message.content for p in parts] == ["echo:", " What"]
    assert not any(p.done for p in parts)

    server.script(Fault(end_stream_after=2))  # not streaming: the JSON body is cut instead
    with pytest.raises(json.JSONDecodeError):
        asyncio.run(openai_chat(server))


# The fixture itself ----------------------------------------------------------------------------


def test_script_is_shared_by_all_routes_then_default_echoes(server: ProviderServer) -> None:
    server.script(Reply("first"), Reply("second"))
    assert server.pending == 2
    assert asyncio.run(anthropic_create(server)).content[0].text == "first"
    assert asyncio.run(ollama_chat(server)).message.content == "second"
    assert server.pending == 0
    echoed = asyncio.run(openai_chat(server, max_tokens=3))
    assert echoed.choices[0].message.content == "echo: What is"
    assert echoed.choices[0].finish_reason == "length"
    assert echoed.usage is not None
    assert (echoed.usage.prompt_tokens, echoed.usage.completion_tokens) == (10, 3)
    assert [r.vendor for r in server.requests] == ["anthropic", "ollama", "openai"]


def test_default_responder_can_be_replaced(server: ProviderServer) -> None:
    server.default = lambda request: Fault(503) if request.vendor == "gemini" else Reply("ok")
    assert asyncio.run(ollama_chat(server)).message.content == "ok"
    with pytest.raises(genai_errors.ServerError):
        asyncio.run(gemini_generate(server))

    def broken(request: RecordedRequest) -> Reply:
        raise ValueError("bug in the test's responder")

    server.default = broken
    with pytest.raises(openai.InternalServerError, match="bug in the test's responder"):
        asyncio.run(openai_chat(server))


def test_secrets_can_be_left_out_of_recordings(server: ProviderServer) -> None:
    asyncio.run(openai_chat(server))
    asyncio.run(gemini_generate(server))
    openai_request, gemini_request = server.requests
    safe = openai_request.headers_without_secrets()
    assert safe["authorization"] == REDACTED
    assert safe["content-type"] == "application/json"
    assert gemini_request.redacted().headers["x-goog-api-key"] == REDACTED
    assert "sk-test-oa" not in json.dumps(safe)
    assert gemini_request.headers["x-goog-api-key"] == "gemini-test-key"  # the record is intact


def test_invalid_json_gets_the_vendors_400(server: ProviderServer) -> None:
    response = httpx.post(f"{server.url}/v1/messages", content=b"{nope", timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert only(server).json is None
    assert error_body("gemini", 429)["error"]["status"] == "RESOURCE_EXHAUSTED"


async def openai_many(server: ProviderServer, n: int) -> list[str]:
    """n requests at once; a generous timeout, as the fake may hold them (hold())."""
    async with openai_client(server) as client:
        calls = [
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"q{i}"}], timeout=60
            )
            for i in range(n)
        ]
        return [c.choices[0].message.content or "" for c in await asyncio.gather(*calls)]


def test_requests_are_answered_concurrently(server: ProviderServer) -> None:
    # Every answer waits until all 32 requests are in flight: a fake that served one at a
    # time would leave the first waiting (the client times out), however fast the machine.
    server.hold(32)
    answers = asyncio.run(openai_many(server, 32))
    assert sorted(answers) == sorted(f"echo: q{i}" for i in range(32))
    assert server.peak_in_flight == 32
    assert server.in_flight == 0


def test_latency_is_added_to_every_answer(server: ProviderServer) -> None:
    server.latency_s = 0.2
    durations = []
    for _ in range(3):
        started = time.monotonic()
        asyncio.run(openai_chat(server))
        durations.append(time.monotonic() - started)
    # Lower bounds only: a busy machine can make an answer later, never earlier.
    assert all(d >= 0.2 for d in durations), durations
    assert len(server.requests) == 3


def test_stream_pacing_follows_ttft_and_delay(server: ProviderServer) -> None:
    server.script(Reply("a b c d", ttft_delay_s=0.2, delay_s=0.2))
    arrivals: list[float] = []

    async def timed() -> None:
        started = time.monotonic()
        async with ollama_client(server) as client:
            async for _ in await client.chat(model="m", messages=OLLAMA_MESSAGES, stream=True):
                arrivals.append(time.monotonic() - started)

    asyncio.run(timed())
    assert len(arrivals) == 5  # four words and the done line
    # The first word after ttft_delay_s, the other three and the done line delay_s / 4 apart:
    # lower bounds only, since a busy machine can deliver a word later, never earlier.
    earliest = [0.2, 0.25, 0.3, 0.35, 0.4]
    assert all(at >= due - 0.001 for at, due in zip(arrivals, earliest, strict=True)), arrivals


def test_a_client_timeout_ends_the_slow_answer(server: ProviderServer) -> None:
    server.script(Reply("late", delay_s=3600))

    async def impatient() -> None:
        async with openai_client(server) as client:
            await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES, timeout=0.3)

    with pytest.raises(openai.APITimeoutError):
        asyncio.run(impatient())
    # Noticing the disconnect takes milliseconds; the deadline only bounds a failing test.
    deadline = time.monotonic() + 60
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.in_flight == 0  # the fake noticed the disconnect instead of sleeping on
    assert server.abandoned == 0  # the client left: stop() had nothing to do with it


def test_stop_ends_answers_still_being_played() -> None:
    fake = ProviderServer().start()
    fake.script(Reply("a b c d", delay_s=3600))
    parts: list[Any] = []
    errors: list[BaseException] = []

    async def listen() -> None:
        try:
            await ollama_stream(fake, parts)
        except Exception as exc:
            errors.append(exc)

    async def scenario() -> None:
        listening = asyncio.create_task(listen())
        while not parts:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(fake.stop)
        await listening

    asyncio.run(scenario())
    # Ended by stop() itself, not by uvicorn cancelling it after its graceful-shutdown wait.
    assert fake.abandoned == 1
    assert [p.message.content for p in parts] == ["a"]
    (error,) = errors
    assert_cut(error, ollama.ResponseError)

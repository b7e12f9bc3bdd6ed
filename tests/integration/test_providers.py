"""Every cloud/server provider through its official SDK, over HTTP, against the loopback fake.

Asserts what the SDK sent (model, messages, system placement, parameters, auth) and what the
provider made of the answer (text, tokens, cost, finish reason, TTFT, errors as data).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from llmbench import pricing
from llmbench.config import ModelSpec, PriceEntry
from llmbench.errors import ConfigError, MissingKeyError
from llmbench.providers.registry import build_provider
from llmbench.runtime.client import ModelClient
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, run_samples
from llmbench.types import Completion, GenerationParams, Message, Request, Sample, Tool
from tests.fakes.provider_server import Fault, ProviderServer, Reply

KEY = "sk-test-4f9c1e7d-do-not-leak"
PRICE = PriceEntry(
    input_per_1m=1.0, output_per_1m=2.0, cached_input_per_1m=0.5, source="t", date="d"
)
MESSAGES = [
    Message(role="system", content="Answer briefly."),
    Message(role="user", content="What is the capital of France?"),
]
PARAMS = GenerationParams(temperature=0.0, max_tokens=16, stop=("\n",), seed=7)

# provider name -> (model id, key variable, base-url variable, suffix the SDK needs)
PROVIDERS: dict[str, tuple[str, str, str, str]] = {
    "openai": ("gpt-4o-mini", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "deepseek": ("deepseek-chat", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", "/v1"),
    "groq": ("llama-3.3-70b-versatile", "GROQ_API_KEY", "GROQ_BASE_URL", "/v1"),
    "anthropic": ("claude-3-haiku-20240307", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ""),
    "gemini": ("gemini-2.0-flash", "GEMINI_API_KEY", "GEMINI_BASE_URL", ""),
    "ollama": ("llama3.2", "", "OLLAMA_HOST", ""),
}
AUTH_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for _model, key_var, url_var, suffix in PROVIDERS.values():
        if key_var:
            monkeypatch.setenv(key_var, KEY)
        monkeypatch.setenv(url_var, server.url + suffix)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def make(provider: str, **fields: Any) -> Any:
    spec = ModelSpec.model_validate(
        {
            "name": f"{provider}-m",
            "provider": provider,
            "model": PROVIDERS[provider][0],
            "price": PRICE,
            **fields,
        }
    )
    return build_provider(spec)


def generate(provider: Any, messages: list[Message] = MESSAGES, **params: Any) -> Completion:
    merged = PARAMS.model_copy(update=params)

    async def call() -> Completion:
        try:
            request = Request(messages=tuple(messages), params=merged)
            return await provider.generate(request)  # type: ignore[no-any-return]
        finally:
            await provider.aclose()

    return asyncio.run(call())


def rows(provider: Any, n: int = 1) -> list[Completion]:
    """One attempt per sample (retries are tested in test_reliability.py)."""
    samples = [Sample(sample_id=str(i), prompt="hi", references=("x",)) for i in range(n)]
    settings = RunSettings(concurrency=2, retries=RetryPolicy(max_attempts=1))
    progress = GenerationProgress("t", n, live=False)
    return asyncio.run(
        run_samples(provider, samples, PARAMS, price=PRICE, progress=progress, settings=settings)
    )


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("stream", [False, True])
def test_answer_usage_and_request(server: ProviderServer, name: str, stream: bool) -> None:
    server.script(
        Reply(
            text="Paris is the capital.",
            input_tokens=21,
            output_tokens=6,
            model_version=f"{PROVIDERS[name][0]}-2025",
            ttft_delay_s=0.05 if stream else 0,
        )
    )
    completion = generate(make(name, stream=stream))
    assert completion.text == "Paris is the capital."
    assert completion.error is None
    assert (completion.input_tokens, completion.output_tokens) == (21, 6)
    assert completion.finish_reason == "stop"
    assert completion.model_version == f"{PROVIDERS[name][0]}-2025"
    assert completion.latency_s > 0
    if stream:
        assert completion.ttft_s is not None and 0.05 <= completion.ttft_s <= completion.latency_s
    else:
        assert completion.ttft_s is None

    [request] = server.requests
    assert request.model == PROVIDERS[name][0]
    assert request.stream is stream
    assert request.max_tokens == 16
    assert request.temperature == 0.0
    assert request.system_text == "Answer briefly."
    assert request.last_user_text == "What is the capital of France?"
    body = request.body
    if name == "anthropic":
        assert body["system"] == "Answer briefly."  # top-level, not a message
        assert [m["role"] for m in body["messages"]] == ["user"]
        assert body["stop_sequences"] == ["\n"] and "seed" not in body
    elif name == "gemini":
        assert "systemInstruction" in body
        assert body["generationConfig"]["stopSequences"] == ["\n"]
        assert body["generationConfig"]["seed"] == 7
    elif name == "ollama":
        assert body["options"]["num_predict"] == 16 and body["options"]["seed"] == 7
        assert body["options"]["stop"] == ["\n"]
    else:
        assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
        assert body["stop"] == ["\n"] and body["seed"] == 7
        if stream:
            assert body["stream_options"] == {"include_usage": True}
    if name != "ollama":
        assert any(KEY in request.headers.get(h, "") for h in AUTH_HEADERS)
    assert KEY not in repr(completion)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_length_finish_is_normalised(server: ProviderServer, name: str) -> None:
    server.script(Reply(text="Paris is", finish="length"))
    assert generate(make(name)).finish_reason == "length"


def test_openai_reasoning_model_parameters(server: ProviderServer) -> None:
    server.script(Reply(text="42", input_tokens=9, output_tokens=50, reasoning_tokens=40))
    provider = make("openai", model="o3-mini")
    completion = generate(provider)
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 16
    assert "max_tokens" not in body and "temperature" not in body
    assert completion.reasoning_tokens == 40 and completion.output_tokens == 50


@pytest.mark.parametrize("stream", [False, True])
def test_deepseek_reasoner_keeps_reasoning_apart(server: ProviderServer, stream: bool) -> None:
    server.script(
        Reply(
            text="Paris",
            reasoning="The user asks about France...",
            reasoning_tokens=12,
            output_tokens=14,
        )
    )
    completion = generate(make("deepseek", model="deepseek-reasoner", stream=stream))
    assert completion.text == "Paris"
    assert completion.reasoning == "The user asks about France..."


def test_anthropic_cache_tokens_and_cost(server: ProviderServer) -> None:
    server.script(
        Reply(
            text="ok",
            input_tokens=160,
            output_tokens=4,
            cached_input_tokens=100,
            cache_creation_tokens=50,
        )
    )
    completion = generate(make("anthropic"))
    assert (completion.input_tokens, completion.cached_tokens) == (160, 100)
    assert completion.cache_write_tokens == 50
    # The provider's own completion, priced as a run prices it: 10 fresh x $1 + 100 cached x
    # $0.5 + 50 written x $1.25 (the default write markup) + 4 out x $2, per million.
    price = pricing.with_cache_writes(PRICE, make("anthropic").cache_write_markup)
    assert pricing.call_cost(completion, price) == pytest.approx((10 + 50 + 62.5 + 8) / 1e6)


@pytest.mark.parametrize("scope", ["response", "prompt"])
def test_gemini_safety_block_is_an_error_row(server: ProviderServer, scope: str) -> None:
    server.script(Reply(text="", finish="safety", safety_scope=scope))  # type: ignore[arg-type]
    [row] = rows(make("gemini"))
    assert row.error is not None and row.error.startswith("blocked")
    assert row.finish_reason == "content_filter"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_rate_limit_is_retryable_and_auth_is_not(server: ProviderServer, name: str) -> None:
    provider = make(name)
    server.script(Fault(status=429, retry_after=1))
    with pytest.raises(Exception) as limited:
        generate(provider)
    assert provider.retryable(limited.value)
    server.script(Fault(status=503))
    with pytest.raises(Exception) as unavailable:
        generate(make(name))
    assert provider.retryable(unavailable.value)
    server.script(Fault(status=401 if name != "ollama" else 400))
    with pytest.raises(Exception) as denied:
        generate(make(name))
    assert not provider.retryable(denied.value)


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini"])
def test_errors_are_rows_and_never_show_the_key(server: ProviderServer, name: str) -> None:
    echoed = {
        "openai": {
            "error": {
                "message": f"Incorrect API key provided: {KEY}",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        "anthropic": {
            "type": "error",
            "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"},
        },
        "gemini": {
            "error": {
                "code": 400,
                "message": f"API key not valid: {KEY}",
                "status": "INVALID_ARGUMENT",
            }
        },
    }[name]
    server.script(Fault(status=401 if name != "gemini" else 400, body=echoed))
    [row] = rows(make(name))
    assert row.error is not None and row.finish_reason == "error"
    assert KEY not in row.error and "***" in row.error


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "ollama"])
def test_malformed_and_dropped_streams_are_error_rows(server: ProviderServer, name: str) -> None:
    server.script(Fault(malformed=True))
    [bad] = rows(make(name))
    assert bad.error is not None
    server.script(Fault(drop_stream_after=2))
    [dropped] = rows(make(name, stream=True))
    assert dropped.error is not None


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "deepseek", "groq"])
def test_missing_key_fails_before_any_request(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv(PROVIDERS[name][1])
    with pytest.raises(MissingKeyError) as info:
        make(name)
    assert PROVIDERS[name][1] in info.value.message
    assert server.requests == []


def test_unsupported_parameter_is_rejected_clearly() -> None:
    with pytest.raises(ConfigError, match="anthropic does not support seed"):
        make("anthropic", params={"seed": 3})
    with pytest.raises(ConfigError, match="anthropic has no JSON mode"):
        make("anthropic", options={"json_mode": True})


def test_json_mode_is_requested(server: ProviderServer) -> None:
    server.script(Reply(text='{"a": 1}'), Reply(text='{"a": 1}'), Reply(text='{"a": 1}'))
    generate(make("openai", options={"json_mode": True}))
    generate(make("gemini", options={"json_mode": True}))
    generate(make("ollama", options={"json_mode": True}))
    openai_req, gemini_req, ollama_req = server.requests
    assert openai_req.body["response_format"] == {"type": "json_object"}
    assert gemini_req.body["generationConfig"]["responseMimeType"] == "application/json"
    assert ollama_req.body["format"] == "json"


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "ollama"])
def test_cut_connections_are_retryable(server: ProviderServer, name: str) -> None:
    streaming = make(name, stream=True)
    server.script(Fault(drop_stream_after=2))
    with pytest.raises(Exception) as dropped:
        generate(streaming)
    assert streaming.retryable(dropped.value), repr(dropped.value)
    plain = make(name)
    server.script(Fault(reset_connection=True))
    with pytest.raises(Exception) as reset:
        generate(plain)
    assert plain.retryable(reset.value), repr(reset.value)


def answer_with_retries(provider: Any, attempts: int) -> Completion:
    settings = RunSettings(retries=RetryPolicy(max_attempts=attempts, backoff_base_s=0))
    progress = GenerationProgress("t", 1, live=False)
    sample = Sample(sample_id="0", prompt="hi", references=("x",))
    [row] = asyncio.run(
        run_samples(provider, [sample], PARAMS, price=PRICE, progress=progress, settings=settings)
    )
    return row


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "ollama"])
def test_a_cut_connection_is_sent_again_and_the_sample_answered(
    server: ProviderServer, name: str
) -> None:
    """What llmbench does with a stream dropped mid-answer and a reset connection, whichever
    exception class the installed SDK raises for them: it asks again, and the answer counts."""
    server.script(Fault(drop_stream_after=2), Fault(reset_connection=True), Reply(text="whole"))
    row = answer_with_retries(make(name, stream=True), attempts=3)
    assert (row.text, row.error, row.attempts) == ("whole", None, 3)
    assert len(server.requests) == 3 and server.pending == 0


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "ollama"])
def test_a_cut_connection_out_of_attempts_is_an_error_row_naming_its_type(
    server: ProviderServer, name: str
) -> None:
    server.script(Fault(drop_stream_after=1), Fault(drop_stream_after=1))
    row = answer_with_retries(make(name, stream=True), attempts=2)
    assert (row.text, row.finish_reason, row.attempts) == ("", "error", 2)
    assert row.error is not None
    assert re.match(r"[A-Z]\w*(Error|Exception)\w*: ", row.error), row.error
    assert len(server.requests) == 2 and server.pending == 0


# A 200 that is not the answer, in every shape found to reach a provider (what each SDK raises
# for it differs: json's JSONDecodeError, google-genai's UnknownApiResponseError, pydantic's
# ValidationError from google-genai and ollama; openai and anthropic hand a body of another
# shape over unchecked, and the provider's reading of it raises MalformedReply).
MALFORMED_200 = {
    "json-cut-short": Fault(malformed=True),
    "stream-ends-early": Fault(end_stream_after=1),
    "not-json": Fault(status=200, body="<html>upstream busy</html>"),
    "another-shape": Fault(
        status=200,
        body={"choices": "x", "content": 5, "candidates": [{"content": 3}], "message": 3},
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED_200))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "ollama"])
def test_a_malformed_200_is_retryable(
    server: ProviderServer, name: str, stream: bool, kind: str
) -> None:
    provider = make(name, stream=stream)
    server.script(MALFORMED_200[kind])
    with pytest.raises(Exception) as broken:
        generate(provider)
    assert provider.retryable(broken.value), repr(broken.value)
    assert not provider.rate_limited(broken.value)


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "ollama"])
def test_a_malformed_200_is_sent_again_and_counted(server: ProviderServer, name: str) -> None:
    server.script(Fault(malformed=True), Fault(end_stream_after=1), Reply(text="whole"))
    row = answer_with_retries(make(name), attempts=3)
    assert (row.text, row.error, row.attempts) == ("whole", None, 3)
    assert len(server.requests) == 3 and server.pending == 0


def test_a_bug_in_the_request_is_not_mistaken_for_a_malformed_reply(
    server: ProviderServer,
) -> None:
    """Only errors from reading a reply count: one raised while building the request (here
    a google-genai config that rejects a value) is not retried, and nothing is sent."""
    provider = make("gemini")
    with pytest.raises(Exception) as invalid:
        generate(provider, temperature="hot")
    assert not provider.retryable(invalid.value), repr(invalid.value)
    assert server.requests == []


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def through_client(provider: Any, request: Request) -> Completion:
    """One request through the model client (cache-less), as every call in a run is sent."""
    spec = provider.spec.model_copy(update={"price": PRICE})
    client = ModelClient(spec, RunSettings(retries=RetryPolicy(max_attempts=1)), provider=provider)

    async def call() -> Completion:
        try:
            return await client.generate(request, index=0)
        finally:
            await client.aclose()

    return asyncio.run(call())


@pytest.mark.parametrize("name", ["openai", "gemini", "ollama"])
def test_a_response_schema_reaches_each_api_in_its_own_shape(
    server: ProviderServer, name: str
) -> None:
    server.script(Reply(text='{"answer": "Paris"}'))
    request = Request(messages=tuple(MESSAGES), params=PARAMS, response_schema=SCHEMA)
    completion = through_client(make(name), request)
    assert completion.error is None and completion.text == '{"answer": "Paris"}'
    (sent_request,) = server.requests
    body = sent_request.body
    sent = {
        "openai": lambda: body["response_format"],
        "gemini": lambda: body["generationConfig"],
        "ollama": lambda: body["format"],
    }[name]()
    assert (
        sent
        == {
            "openai": {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}},
            "gemini": {
                **sent,
                "responseMimeType": "application/json",
                "responseJsonSchema": SCHEMA,
            },
            "ollama": SCHEMA,
        }[name]
    )


WEATHER = Tool(name="get_weather", parameters={"type": "object"})


@pytest.mark.parametrize(
    ("name", "extra", "fields"),
    [
        ("anthropic", {"response_schema": SCHEMA}, {}),
        ("ollama", {"tools": (WEATHER,), "tool_choice": "required"}, {}),  # no tool choice
        ("openai", {"tools": (WEATHER,)}, {"mode": "completion"}),  # a plain prompt
    ],
    ids=["anthropic-schema", "ollama-required-call", "openai-completion-mode-tools"],
)
def test_a_request_the_provider_cannot_honour_is_refused_unsent(
    server: ProviderServer, name: str, extra: dict[str, Any], fields: dict[str, Any]
) -> None:
    """Never sent without the part it cannot take: an error row that says so, no attempt."""
    request = Request(messages=tuple(MESSAGES), params=PARAMS, **extra)
    completion = through_client(make(name, **fields), request)
    assert completion.finish_reason == "error" and completion.attempts == 0
    assert completion.error is not None and completion.error.startswith("UnsupportedRequest: ")
    assert f"{name}-m ({name})" in completion.error
    assert server.requests == []

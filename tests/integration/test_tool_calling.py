"""Tool calling through each vendor's official SDK, over HTTP, against the loopback fake.

What each API is sent (tools, tool choice, an assistant's calls and the results, in the
vendor's own shape) and what the provider makes of the calls in the answer (in order, the
arguments as the model wrote them, the finish reason), streamed and not; the response
cache keys on the tools; a BFCL task answered with its possible answers scores 100%.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from llmbench import config as cfg
from llmbench.config import ModelSpec, PriceEntry
from llmbench.providers.registry import build_provider
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import ModelClient
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, run_samples
from llmbench.scoring.metrics import compute_structured
from llmbench.tasks.build import build_samples
from llmbench.types import Completion, GenerationParams, Message, Request, Tool, ToolCall
from tests.fakes.provider_server import Fault, ProviderServer, RecordedRequest, Reply, ReplyCall

KEY = "sk-test-tools-do-not-leak"
PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
PARAMS = GenerationParams(temperature=0.0, max_tokens=64)
ROOT = Path(__file__).resolve().parents[2]
BFCL = ROOT.parent / "shared" / "data" / "bfcl"

# provider name -> (model id, key variable, base-url variable, suffix the SDK needs)
PROVIDERS: dict[str, tuple[str, str, str, str]] = {
    "openai": ("gpt-4o-mini", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "anthropic": ("claude-haiku-4-5", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ""),
    "gemini": ("gemini-2.5-flash", "GEMINI_API_KEY", "GEMINI_BASE_URL", ""),
    "ollama": ("llama3.2", "", "OLLAMA_HOST", ""),
}
VENDORS = sorted(PROVIDERS)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "the city's name"},
        "date": {"type": "string", "description": "YYYY-MM-DD"},
    },
    "required": ["city"],
}
QUOTE_SCHEMA = {
    "type": "object",
    "properties": {"ticker": {"type": "string", "description": "the stock's ticker"}},
    "required": ["ticker"],
}
WEATHER = Tool(name="get_weather", description="Weather in a city", parameters=WEATHER_SCHEMA)
QUOTE = Tool(name="get_quote", description="A stock's price", parameters=QUOTE_SCHEMA)
ASK = [
    Message(role="system", content="Use the tools."),
    Message(role="user", content="Weather in Paris and the ACME quote?"),
]
PARIS = {"city": "Paris", "date": "2026-12-06"}
ACME = {"ticker": "ACME"}


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for _model, key_var, url_var, suffix in PROVIDERS.values():
        if key_var:
            monkeypatch.setenv(key_var, KEY)
        monkeypatch.setenv(url_var, server.url + suffix)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def spec(name: str, **fields: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": f"{name}-m",
            "provider": name,
            "model": PROVIDERS[name][0],
            "price": PRICE,
            **fields,
        }
    )


def send(
    name: str,
    messages: list[Message] = ASK,
    *,
    stream: bool = False,
    cache: ResponseCache | None = None,
    **fields: Any,
) -> Completion:
    """One request through the model client, as every call of a run is sent."""
    request = Request(messages=tuple(messages), params=PARAMS, **fields)
    model = spec(name, stream=stream)
    settings = RunSettings(retries=RetryPolicy(max_attempts=1), cache=cache)
    client = ModelClient(model, settings, provider=build_provider(model))

    async def call() -> Completion:
        try:
            return await client.generate(request, index=0)
        finally:
            await client.aclose()

    return asyncio.run(call())


def arguments(call: ToolCall) -> Any:
    return json.loads(call.arguments)


# ---------------------------------------------------------------------------------------------
# What is sent.

OPENAI_CHOICE = {
    "auto": "auto",
    "none": "none",
    "required": "required",
    "get_quote": {"type": "function", "function": {"name": "get_quote"}},
}
ANTHROPIC_CHOICE = {
    "auto": {"type": "auto"},
    "none": {"type": "none"},
    "required": {"type": "any"},
    "get_quote": {"type": "tool", "name": "get_quote"},
}
GEMINI_CHOICE = {
    "auto": {"mode": "AUTO"},
    "none": {"mode": "NONE"},
    "required": {"mode": "ANY"},
    "get_quote": {"mode": "ANY", "allowedFunctionNames": ["get_quote"]},
}


def sent_tools(request: RecordedRequest) -> tuple[Any, Any]:
    """The tools and the tool choice as the vendor's body holds them."""
    body = request.body
    if request.vendor == "gemini":
        # google-genai passes a declaration through with its Python field names
        # (parameters_json_schema); the API reads proto JSON, which takes either spelling.
        tools = [
            {
                "functionDeclarations": [
                    {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): v for k, v in f.items()}
                    for f in tool["functionDeclarations"]
                ]
            }
            for tool in body.get("tools") or ()
        ]
        return tools or None, body.get("toolConfig")
    return body.get("tools"), body.get("tool_choice")


@pytest.mark.parametrize(
    ("name", "choice"),
    [
        (name, choice)
        for name in VENDORS
        for choice in (None, "auto", "none", "required", "get_quote")
        # Ollama has no tool choice: a call it must make is refused unsent (test_providers.py)
        if not (name == "ollama" and choice in ("required", "get_quote"))
    ],
)
def test_tools_and_tool_choice_are_sent_in_each_vendors_shape(
    server: ProviderServer, name: str, choice: str | None
) -> None:
    completion = send(name, tools=(WEATHER, QUOTE), tool_choice=choice)
    assert completion.error is None
    (request,) = server.requests
    tools, sent_choice = sent_tools(request)
    if name == "ollama" and choice == "none":  # no choice to send: no tools offered
        assert not tools and request.tool_names == []  # the SDK sends "tools": []
        return
    assert request.tool_names == ["get_weather", "get_quote"]
    if name in ("openai", "ollama"):
        assert tools == [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": schema},
            }
            for t, schema in ((WEATHER, WEATHER_SCHEMA), (QUOTE, QUOTE_SCHEMA))
        ]
    elif name == "anthropic":
        assert tools == [
            {
                "name": "get_weather",
                "description": "Weather in a city",
                "input_schema": WEATHER_SCHEMA,
            },
            {"name": "get_quote", "description": "A stock's price", "input_schema": QUOTE_SCHEMA},
        ]
    else:
        assert tools == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather in a city",
                        "parametersJsonSchema": WEATHER_SCHEMA,
                    },
                    {
                        "name": "get_quote",
                        "description": "A stock's price",
                        "parametersJsonSchema": QUOTE_SCHEMA,
                    },
                ]
            }
        ]
    if choice is None or name == "ollama":
        assert sent_choice is None
    elif name == "openai":
        assert sent_choice == OPENAI_CHOICE[choice]
    elif name == "anthropic":
        assert sent_choice == ANTHROPIC_CHOICE[choice]
    else:
        assert sent_choice == {"functionCallingConfig": GEMINI_CHOICE[choice]}


def conversation(calls: tuple[ToolCall, ...]) -> list[Message]:
    """The question, the assistant's calls (with a word first), a result for each, and a
    follow-up after the assistant's answer."""
    return [
        *ASK,
        Message(role="assistant", content="Checking.", tool_calls=calls),
        Message(role="tool", content='{"temp_c": 21}', tool_call_id=calls[0].id),
        Message(role="tool", content="ACME 12.5", tool_call_id=calls[1].id),
        Message(role="assistant", content="21 C in Paris; ACME is at 12.5."),
        Message(role="user", content="Thanks. And tomorrow?"),
    ]


CALLS = (
    ToolCall(id="call_a", name="get_weather", arguments=json.dumps(PARIS)),
    ToolCall(id="call_b", name="get_quote", arguments=json.dumps(ACME)),
)


@pytest.mark.parametrize("name", VENDORS)
def test_a_tool_conversation_is_sent_in_each_vendors_shape(
    server: ProviderServer, name: str
) -> None:
    completion = send(name, conversation(CALLS), tools=(WEATHER, QUOTE))
    assert completion.error is None
    (request,) = server.requests
    assert request.call_names == ["get_weather", "get_quote"]
    assert request.tool_results == ['{"temp_c": 21}', "ACME 12.5"]
    body = request.body
    answer = {"role": "assistant", "content": "21 C in Paris; ACME is at 12.5."}
    follow_up = {"role": "user", "content": "Thanks. And tomorrow?"}
    if name == "openai":
        assert body["messages"] == [
            {"role": "system", "content": "Use the tools."},
            {"role": "user", "content": "Weather in Paris and the ACME quote?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in CALLS
                ],
            },
            {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_a"},
            {"role": "tool", "content": "ACME 12.5", "tool_call_id": "call_b"},
            answer,
            follow_up,
        ]
    elif name == "anthropic":
        assert body["system"] == "Use the tools."
        assert body["messages"] == [
            {"role": "user", "content": "Weather in Paris and the ACME quote?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": PARIS},
                    {"type": "tool_use", "id": "call_b", "name": "get_quote", "input": ACME},
                ],
            },
            {  # both results in one user turn
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_a", "content": '{"temp_c": 21}'},
                    {"type": "tool_result", "tool_use_id": "call_b", "content": "ACME 12.5"},
                ],
            },
            answer,
            follow_up,
        ]
    elif name == "gemini":
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "Weather in Paris and the ACME quote?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"id": "call_a", "name": "get_weather", "args": PARIS}},
                    {"functionCall": {"id": "call_b", "name": "get_quote", "args": ACME}},
                ],
            },
            {  # results named by function, both in one turn; a non-object result as output
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_a",
                            "name": "get_weather",
                            "response": {"temp_c": 21},
                        }
                    },
                    {
                        "functionResponse": {
                            "id": "call_b",
                            "name": "get_quote",
                            "response": {"output": "ACME 12.5"},
                        }
                    },
                ],
            },
            {"role": "model", "parts": [{"text": answer["content"]}]},
            {"role": "user", "parts": [{"text": follow_up["content"]}]},
        ]
    else:
        assert body["messages"] == [
            {"role": "system", "content": "Use the tools."},
            {"role": "user", "content": "Weather in Paris and the ACME quote?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": PARIS}},
                    {"function": {"name": "get_quote", "arguments": ACME}},
                ],
            },
            {"role": "tool", "content": '{"temp_c": 21}', "tool_name": "get_weather"},
            {"role": "tool", "content": "ACME 12.5", "tool_name": "get_quote"},
            answer,
            follow_up,
        ]


def test_anthropic_puts_words_after_the_results_in_the_results_user_turn(
    server: ProviderServer,
) -> None:
    """Anthropic's turns alternate: a user turn right after the results joins theirs."""
    messages = [*conversation(CALLS)[:4], Message(role="user", content="Only Paris, please.")]
    calls = (CALLS[0],)
    messages[2] = Message(role="assistant", content="", tool_calls=calls)
    assert send("anthropic", messages, tools=(WEATHER,)).error is None
    (request,) = server.requests
    assert request.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": PARIS},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": '{"temp_c": 21}'},
                {"type": "text", "text": "Only Paris, please."},
            ],
        },
    ]


# ---------------------------------------------------------------------------------------------
# What comes back.


@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_single_call_and_parallel_calls_come_back_in_order(
    server: ProviderServer, name: str, stream: bool
) -> None:
    weather, quote = ReplyCall("get_weather", PARIS), ReplyCall("get_quote", ACME)
    server.script(
        Reply(text="", tool_calls=(weather,)),
        Reply(text="Let me look.", tool_calls=(weather, quote), input_tokens=30, output_tokens=9),
        Reply(text="", tool_calls=(weather, quote)),  # the same answer again: the same ids
    )
    single = send(name, stream=stream, tools=(WEATHER, QUOTE))
    parallel = send(name, stream=stream, tools=(WEATHER, QUOTE), tool_choice="auto")
    again = send(name, stream=stream, tools=(WEATHER, QUOTE), tool_choice="none")
    for completion in (single, parallel, again):
        assert completion.error is None and completion.finish_reason == "tool_calls"
    assert [(c.name, arguments(c)) for c in single.tool_calls] == [("get_weather", PARIS)]
    assert single.text == ""
    assert [(c.name, arguments(c)) for c in parallel.tool_calls] == [
        ("get_weather", PARIS),
        ("get_quote", ACME),
    ]
    assert parallel.text == "Let me look."
    assert (parallel.input_tokens, parallel.output_tokens) == (30, 9)
    assert parallel.cost_usd > 0
    ids = [c.id for c in parallel.tool_calls]
    assert len(set(ids)) == 2 and all(ids)
    if name in ("openai", "anthropic"):  # the vendor's own ids
        prefix = "call" if name == "openai" else "toolu"
        assert all(re.fullmatch(rf"{prefix}_fake\d+_\d", i) for i in ids)
    else:  # none given: derived from the call, so the same answer gets the same ids
        assert [c.id for c in again.tool_calls] == ids
        assert single.tool_calls[0].id == ids[0]
    if stream:
        assert parallel.ttft_s is not None


@pytest.mark.parametrize(
    ("name", "stream"),
    [("openai", False), ("openai", True), ("anthropic", True)],
    ids=["openai", "openai-stream", "anthropic-stream"],
)
def test_arguments_that_are_not_json_are_kept_as_the_model_wrote_them(
    server: ProviderServer, name: str, stream: bool
) -> None:
    """Where the vendor sends arguments as text, broken JSON is the model's answer: kept for
    the scorer to judge, never repaired or dropped."""
    broken = '{"city": "Par'
    server.script(Reply(text="", tool_calls=(ReplyCall("get_weather", broken),)))
    completion = send(name, stream=stream, tools=(WEATHER,))
    assert completion.error is None
    [call] = completion.tool_calls
    assert (call.name, call.arguments) == ("get_weather", broken)


@pytest.mark.parametrize("name", VENDORS)
def test_a_call_with_broken_arguments_goes_back_only_where_arguments_are_text(
    server: ProviderServer, name: str
) -> None:
    """OpenAI takes the call back as it was written; the vendors that take an object refuse
    the request unsent rather than send other arguments than the model wrote."""
    broken = (ToolCall(id="call_a", name="get_weather", arguments='{"city": "Par'), CALLS[1])
    completion = send(name, conversation(broken), tools=(WEATHER, QUOTE))
    if name == "openai":
        assert completion.error is None
        (request,) = server.requests
        [assistant] = [m for m in request.body["messages"] if m.get("tool_calls")]
        assert assistant["tool_calls"][0]["function"]["arguments"] == '{"city": "Par'
        return
    assert completion.error is not None and completion.attempts == 0
    assert completion.error.startswith("UnsupportedRequest: ") and "call_a" in completion.error
    assert server.requests == []


def test_gemini_gets_back_its_own_ids_and_thought_signatures(server: ProviderServer) -> None:
    """Gemini 3 refuses a conversation whose calls lost the signature it attached to them,
    and matches results to calls by the ids it gave; an id derived here is never sent."""
    signed = ReplyCall("get_weather", PARIS, id="gem-7", signature="c2lnbmVkLWJ5LWdlbWluaQ==")
    server.script(Reply(text="", tool_calls=(signed, ReplyCall("get_quote", ACME))))
    first = send("gemini", tools=(WEATHER, QUOTE))
    assert [c.signature for c in first.tool_calls] == ["c2lnbmVkLWJ5LWdlbWluaQ==", None]
    assert first.tool_calls[0].id == "gem-7" and first.tool_calls[1].id.startswith("call_")
    assert send("gemini", conversation(first.tool_calls), tools=(WEATHER, QUOTE)).error is None
    contents = server.requests[1].body["contents"]
    assert contents[1]["parts"][1:] == [
        {
            "functionCall": {"id": "gem-7", "name": "get_weather", "args": PARIS},
            "thoughtSignature": "c2lnbmVkLWJ5LWdlbWluaQ==",
        },
        {"functionCall": {"name": "get_quote", "args": ACME}},
    ]
    ids = [part["functionResponse"].get("id") for part in contents[2]["parts"]]
    assert ids == ["gem-7", None]


@pytest.mark.parametrize("name", VENDORS)
def test_the_response_cache_keys_on_the_tools(
    server: ProviderServer, name: str, tmp_path: Path
) -> None:
    cache = ResponseCache(tmp_path)
    call = ReplyCall("get_weather", PARIS)
    server.script(*[Reply(text="", tool_calls=(call,)) for _ in range(3)])
    first = send(name, cache=cache, tools=(WEATHER,))
    again = send(name, cache=cache, tools=(WEATHER,))
    assert again.cached and again.tool_calls == first.tool_calls and len(server.requests) == 1
    changed = WEATHER.model_copy(
        update={"parameters": {**WEATHER_SCHEMA, "required": ["city", "date"]}}
    )
    assert not send(name, cache=cache, tools=(changed,)).cached
    assert not send(name, cache=cache, tools=(WEATHER,), tool_choice="auto").cached
    assert len(server.requests) == 3


# ---------------------------------------------------------------------------------------------
# A BFCL task end to end.


def first_allowed(allowed: list[Any]) -> Any:
    """BFCL's first allowed value of a parameter; a nested answer's own values the same way."""
    value = next(v for v in allowed if v != "")
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        return {k: first_allowed(v) for k, v in value.items() if any(x != "" for x in v)}
    return value


@pytest.mark.skipif(not BFCL.is_dir(), reason=f"BFCL data not found at {BFCL}")
@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_bfcl_task_answered_with_its_possible_answers_scores_100(
    server: ProviderServer, name: str, stream: bool
) -> None:
    """BFCL's own functions (real schemas, nested ones included) go out in each vendor's
    format, the fake answers each item with its possible answer as calls in that format,
    and what comes back scores 100% by BFCL's AST rule."""
    task = cfg.load_task_file(ROOT / "configs" / "tasks" / "bfcl_simple_python.yaml")
    samples = build_samples(task, 6)
    by_question = {s.prompt: s for s in samples}
    assert len(by_question) == len(samples)

    def possible_answer(request: RecordedRequest) -> Reply:
        sample = by_question[request.last_user_text or ""]
        calls = [
            ReplyCall(name, {p: first_allowed(a) for p, a in answer.items() if any(a)})
            for call in sample.expected or []
            for name, answer in call.items()
        ]
        return Reply(text="", tool_calls=tuple(calls))

    server.default = possible_answer
    settings = RunSettings(concurrency=3, retries=RetryPolicy(max_attempts=1))
    provider = build_provider(spec(name, stream=stream))
    completions = asyncio.run(
        run_samples(
            provider,
            samples,
            PARAMS,
            price=PRICE,
            progress=GenerationProgress("bfcl", len(samples), live=False),
            settings=settings,
        )
    )
    assert [c.error for c in completions] == [None] * len(samples)
    assert all(c.tool_calls and c.finish_reason == "tool_calls" for c in completions)
    sent = {r.last_user_text: r.tool_names for r in server.requests}
    assert sent == {s.prompt: [t.name for t in s.tools] for s in samples}
    scored = compute_structured("bfcl_ast", samples, completions).per_sample["bfcl_ast"]
    assert scored == [1.0] * len(samples)
    # The scorer reads the calls that came back: without them the same item is a miss.
    wrong = completions[0].model_copy(update={"tool_calls": ()})
    assert compute_structured("bfcl_ast", samples[:1], [wrong]).per_sample["bfcl_ast"] == [0.0]


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_compatible_server_speaks_the_same(server: ProviderServer, stream: bool) -> None:
    """vLLM, llama.cpp's server and the hosted presets are the OpenAI provider: the same
    tools and turns go out, the same calls come back."""
    server.script(Reply(text="", tool_calls=(ReplyCall("get_quote", ACME),)))
    model = ModelSpec.model_validate(
        {
            "name": "local-m",
            "provider": "openai_compatible",
            "model": "qwen3",
            "base_url": server.url + "/v1",
            "price": PRICE,
            "stream": stream,
        }
    )
    client = ModelClient(model, RunSettings(retries=RetryPolicy(max_attempts=1)))
    request = Request(messages=tuple(conversation(CALLS)), params=PARAMS, tools=(QUOTE,))

    async def call() -> Completion:
        try:
            return await client.generate(request, index=0)
        finally:
            await client.aclose()

    completion = asyncio.run(call())
    assert [(c.name, arguments(c)) for c in completion.tool_calls] == [("get_quote", ACME)]
    (sent,) = server.requests
    assert sent.tool_names == ["get_quote"]
    assert [m["role"] for m in sent.body["messages"]].count("tool") == 2


def test_the_fakes_anthropic_tool_stream_is_what_the_sdks_accumulator_reads(
    server: ProviderServer,
) -> None:
    """The SDK's own stream helper puts the fake's ``input_json_delta`` pieces together into
    the same ``tool_use`` blocks the fake sends whole: the stream is the API's shape."""
    import anthropic

    calls = (ReplyCall("get_weather", PARIS, id="toolu_w"), ReplyCall("get_quote", ACME))
    server.script(Reply(text="Both.", tool_calls=calls), Reply(text="Both.", tool_calls=calls))

    async def both() -> tuple[Any, Any]:
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0)
        ask: Any = {"model": "claude-haiku-4-5", "max_tokens": 64}
        ask["messages"] = [{"role": "user", "content": "?"}]
        try:
            whole = await client.messages.create(**ask)
            async with client.messages.stream(**ask) as stream:
                streamed = await stream.get_final_message()
            return whole, streamed
        finally:
            await client.close()

    whole, streamed = asyncio.run(both())
    uses = [(b.name, b.input) for b in streamed.content if b.type == "tool_use"]
    assert uses == [("get_weather", PARIS), ("get_quote", ACME)]
    assert uses == [(b.name, b.input) for b in whole.content if b.type == "tool_use"]
    assert streamed.content[1].id == "toolu_w" and streamed.stop_reason == "tool_use"


def test_a_compatible_server_that_sends_arguments_as_an_object_is_read(
    server: ProviderServer,
) -> None:
    """Not the OpenAI API's shape, but some compatible servers send it: the object becomes
    the JSON text a call keeps, rather than a malformed reply sent again and again."""
    call = {"id": "c1", "type": "function", "function": {"name": "get_quote", "arguments": ACME}}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    server.script(Fault(status=200, body=body))
    completion = send("openai", tools=(QUOTE,))
    assert completion.error is None and completion.attempts == 1
    assert [(c.id, c.name, arguments(c)) for c in completion.tool_calls] == [
        ("c1", "get_quote", ACME)
    ]

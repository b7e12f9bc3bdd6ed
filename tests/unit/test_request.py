"""The conversation request every call carries: what it accepts, and how it keys the cache."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from llmbench.pricing import worst_case_cost
from llmbench.runtime.cache import cache_key
from llmbench.runtime.client import draw_request
from llmbench.schema import PriceEntry
from llmbench.types import GenerationParams, Message, Request, Sample, Tool, ToolCall

IDENTITY = {"provider": "openai", "model": "gpt-4o-mini", "options": {}}
PARAMS = GenerationParams(max_tokens=32, stop=("\n",), seed=7)
SAMPLE = Sample(sample_id="1", prompt="What is 2+2?", system="Answer briefly.", references=("4",))
WEATHER = Tool(
    name="get_weather",
    description="Weather in a city on a date",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def test_a_plain_request_keys_the_cache_as_before_requests_existed() -> None:
    """Entries written before the Request (messages + params + draw) are still hits."""
    messages = SAMPLE.messages()
    before = {
        "model": IDENTITY,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "params": PARAMS.model_dump(mode="json"),
        "draw": None,
    }
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert cache_key(IDENTITY, SAMPLE.request(PARAMS), 3) == expected


def test_tools_a_schema_and_unseeded_draws_are_other_answers() -> None:
    plain = SAMPLE.request(PARAMS)
    keys = {
        cache_key(IDENTITY, plain, 0),
        cache_key(IDENTITY, plain.model_copy(update={"tools": (WEATHER,)}), 0),
        cache_key(IDENTITY, plain.model_copy(update={"response_schema": {"type": "object"}}), 0),
        cache_key(IDENTITY, plain.with_params(max_tokens=512), 0),
    }
    assert len(keys) == 4
    sampled = SAMPLE.request(GenerationParams(temperature=0.7))
    draws = {cache_key(IDENTITY, sampled.model_copy(update={"draw": d}), 0) for d in range(3)}
    assert len(draws) == 3
    # A greedy request is the same answer whichever sample position or draw asks it.
    greedy = SAMPLE.request(GenerationParams(temperature=0.0))
    assert cache_key(IDENTITY, greedy, 0) == cache_key(IDENTITY, greedy, 5)


def test_a_seeded_draw_gets_its_own_seed() -> None:
    request = SAMPLE.request(PARAMS, draw=2)
    assert draw_request(request).params.seed == 9
    assert draw_request(SAMPLE.request(PARAMS)).params.seed == 7


def test_per_call_overrides_leave_the_rest() -> None:
    judged = SAMPLE.request(PARAMS).with_params(max_tokens=512, stop=())
    assert (judged.params.max_tokens, judged.params.stop, judged.params.seed) == (512, (), 7)
    assert judged.messages == tuple(SAMPLE.messages())


def test_conversation_turns_are_checked() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    Request(
        messages=(
            Message(role="user", content="Weather in Paris?"),
            Message(role="assistant", content="", tool_calls=(call,)),
            Message(role="tool", content='{"temp_c": 21}', tool_call_id="call_1"),
        ),
        tools=(WEATHER,),
        tool_choice="get_weather",
    )
    with pytest.raises(ValidationError, match="cannot carry tool calls"):
        Message(role="user", content="x", tool_calls=(call,))
    with pytest.raises(ValidationError, match="tool_call_id"):
        Message(role="tool", content="x")
    with pytest.raises(ValidationError, match="tool_call_id"):
        Message(role="user", content="x", tool_call_id="call_1")
    with pytest.raises(ValidationError, match="names no tool"):
        Request(messages=(Message(role="user", content="x"),), tool_choice="get_stock")
    with pytest.raises(ValidationError):
        Request(messages=())
    with pytest.raises(ValidationError):
        Tool(name="has spaces")


def test_the_worst_case_counts_tools_and_the_schema() -> None:
    price = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
    plain = SAMPLE.request(PARAMS)
    with_tools = plain.model_copy(update={"tools": (WEATHER,)})
    with_schema = plain.model_copy(update={"response_schema": {"type": "object"}})
    assert worst_case_cost(with_tools, price) > worst_case_cost(plain, price)
    assert worst_case_cost(with_schema, price) > worst_case_cost(plain, price)

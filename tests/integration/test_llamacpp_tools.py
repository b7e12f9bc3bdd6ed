"""The shipped tool task through the in-process SmolLM2 with tool_format: json, as the
generate step runs it (slow: loads the GGUF). The model is tiny, so what is asserted is
what the convention guarantees: each answer is a final answer or calls of offered tools with
arguments valid to their schemas, and the weather question is looked up with get_weather."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest

from llmbench import config as cfg
from llmbench.config import ModelSpec, PriceEntry
from llmbench.providers.llamacpp import LlamaCppProvider
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, generate
from llmbench.tasks.build import build_samples
from llmbench.tools.local import builtin_tool
from llmbench.types import Completion, GenerationParams, Message, Request

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "configs" / "tasks" / "tools_weather_stock.yaml"
PRICE = PriceEntry(per_hour=0.085, source="test", date="2026-11-29")


def smollm2(**options: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "smollm2-tools",
            "provider": "llamacpp",
            "model": "smollm2-135m-instruct",
            "price": PRICE,
            "options": {"n_threads": 1, **options},
        }
    )


def test_smollm2_answers_the_weather_question_through_the_agent_loop() -> None:
    task = cfg.load_task_file(TASK)
    (sample,) = [s for s in build_samples(task, 12) if s.sample_id == "tool-01"]
    assert sample.agent is not None
    sample = sample.model_copy(update={"agent": sample.agent.model_copy(update={"max_steps": 2})})
    schemas = {name: builtin_tool(name).tool.parameters for name in sample.agent.builtin}
    settings = RunSettings(retries=RetryPolicy(max_attempts=1))
    params = GenerationParams(temperature=0.0, max_tokens=64)

    (row,) = generate(smollm2(tool_format="json"), [sample], params, settings=settings, label="t")

    assert row.error is None
    models = [c for c in row.trace if c.kind == "model"]
    tools = [c for c in row.trace if c.kind == "tool"]
    assert 1 <= len(models) <= 2 and models[0].error is None
    assert "get_weather" in [c.model for c in tools]  # the question was looked up
    for call in tools:  # every call names an offered tool, with arguments its schema takes
        (sent,) = call.input or []
        jsonschema.validate(json.loads(sent["arguments"]), schemas[call.model])
        assert call.error is None or "no weather" in call.error
    # the last answer is either final (text, no calls) or, at the step limit, calls again
    assert (row.tool_calls == ()) == (row.finish_reason != "tool_calls")


def test_a_request_without_tools_is_answered_as_without_the_option() -> None:
    request = Request(
        messages=(Message(role="user", content="What is the capital of France?"),),
        params=GenerationParams(max_tokens=8),
    )
    plain = asyncio.run(LlamaCppProvider(smollm2()).generate(request))
    with_option = asyncio.run(LlamaCppProvider(smollm2(tool_format="json")).generate(request))
    assert plain.text and with_option.text == plain.text
    assert with_option.tool_calls == ()


def test_the_convention_through_llama_server() -> None:
    """engine: server sends the convention's schema as the response format: llama-server's
    own grammar makes the answer a call of an offered tool or a response, read back alike."""
    pytest.importorskip("llama_cpp")
    from llmbench.providers.llama_server import server_binary

    try:
        server_binary()
    except Exception as exc:  # not built on this machine (make install builds it)
        pytest.skip(str(exc))
    tools = tuple(builtin_tool(n).tool for n in ("get_weather", "calculator"))
    question = "What was the high temperature in Paris on 2025-03-02, in degrees Celsius?"
    request = Request(
        messages=(Message(role="user", content=question),),
        params=GenerationParams(max_tokens=64),
        tools=tools,
    )
    provider = LlamaCppProvider(smollm2(tool_format="json", engine="server"))

    async def ask() -> Completion:
        try:
            return await provider.generate(request)
        finally:
            await provider.aclose()

    answer = asyncio.run(ask())
    assert answer.error is None and answer.ttft_s is not None
    schemas = {tool.name: tool.parameters for tool in tools}
    if answer.tool_calls:
        for call in answer.tool_calls:
            jsonschema.validate(json.loads(call.arguments), schemas[call.name])
        assert answer.finish_reason == "tool_calls" and answer.text == ""
    else:
        assert answer.text and not answer.text.startswith('{"response"')

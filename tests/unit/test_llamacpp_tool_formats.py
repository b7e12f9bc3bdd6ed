"""How a local llama.cpp model is offered tools and how its calls are read back: the chat
template's own format (Hermes <tool_call>), and tool_format: json (llmbench's prompt and
grammar), without running a model."""

from __future__ import annotations

import json

import jsonschema
import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from llmbench.config import ModelSpec, PriceEntry
from llmbench.providers import local_tools
from llmbench.providers.llamacpp import LlamaCppProvider, _json_grammar, grammar_pattern
from llmbench.runtime.cache import cache_key
from llmbench.tools.local import builtin_tool
from llmbench.types import Completion, Message, Request, ToolCall

WEATHER = builtin_tool("get_weather").tool
CALCULATOR = builtin_tool("calculator").tool
ASK = Message(role="user", content="How warm was Paris on 2025-03-02?")
SMOLLM2_LIKE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The tool parts of Qwen2.5's template (Hermes format), as its GGUF carries it.
HERMES = (
    "{%- if tools %}<|im_start|>system\n# Tools\n<tools>"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools>\n"
    'Call a function with <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>\n'
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant"
    "{%- for tool_call in message.tool_calls %}{%- set f = tool_call.function %}\n"
    '<tool_call>\n{"name": "{{ f.name }}", "arguments": {{ f.arguments | tojson }}}\n'
    "</tool_call>{%- endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n"
    "{{ message.content }}\n</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)
CALL = ToolCall(
    id="call_1", name="get_weather", arguments='{"city": "Paris", "date": "2025-03-02"}'
)
CONVERSATION = (
    ASK,
    Message(role="assistant", content="", tool_calls=(CALL,)),
    Message(role="tool", content='{"high_c": 13.0}', tool_call_id="call_1"),
)


def test_a_template_takes_tools_when_it_reads_them() -> None:
    assert local_tools.template_tools(SMOLLM2_LIKE) is None
    assert local_tools.template_tools(None) is None
    assert local_tools.template_tools(HERMES) == "hermes"
    llama3_like = "{% if tools %}{{ tools | tojson }}{% endif %}<|eot_id|>"
    assert local_tools.template_tools(llama3_like) == "other"


def test_hermes_calls_are_read_in_order_and_the_text_kept() -> None:
    text = (
        "Looking it up.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris", "date": "2025-03-02"}}\n'
        '</tool_call>\n<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}'
        "</tool_call>"
    )
    content, calls = local_tools.hermes_calls(text)
    assert content == "Looking it up."
    assert [c.name for c in calls] == ["get_weather", "calculator"]
    assert json.loads(calls[0].arguments) == {"city": "Paris", "date": "2025-03-02"}
    assert len({c.id for c in calls}) == 2
    assert local_tools.hermes_calls(text)[1] == calls  # ids derived from the calls


def test_a_malformed_hermes_block_is_a_call_without_a_name() -> None:
    content, calls = local_tools.hermes_calls("<tool_call>{not json</tool_call>")
    assert content == ""
    assert [(c.name, c.arguments) for c in calls] == [("", "{not json")]
    assert local_tools.hermes_calls("no calls here") == ("no calls here", ())


def test_a_hermes_template_renders_the_tools_calls_and_results() -> None:
    """The shapes llama-cpp-python's formatter is given fit a Hugging Face tool template:
    the tool's schema, the call's arguments as an object, the result in its turn."""
    formatter = Jinja2ChatFormatter(template=HERMES, eos_token="<|im_end|>", bos_token="")
    prompt = formatter(
        messages=local_tools.template_messages(CONVERSATION),  # type: ignore[arg-type]
        tools=local_tools.template_tool_list((WEATHER,)),  # type: ignore[arg-type]
    ).prompt
    assert '"name": "get_weather"' in prompt and '"pattern"' in prompt
    assert '{"name": "get_weather", "arguments": {"city": "Paris"' in prompt
    assert '<tool_response>\n{"high_c": 13.0}\n</tool_response>' in prompt
    assert prompt.endswith("<|im_start|>assistant")


def test_the_convention_sends_tools_in_the_system_prompt_and_results_as_a_user_turn() -> None:
    system = Message(role="system", content="Answer with a number.")
    extra = Message(role="tool", content="7", tool_call_id="call_2")
    two_calls = (CALL, ToolCall(id="call_2", name="calculator", arguments='{"expression": "3+4"}'))
    request = Request(
        messages=(
            system,
            ASK,
            Message(role="assistant", content="", tool_calls=two_calls),
            CONVERSATION[2],
            extra,
        ),
        tools=(WEATHER, CALCULATOR),
    )
    sent = local_tools.convention_request(request)
    assert sent.tools == () and sent.response_schema is not None
    roles = [m.role for m in sent.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert sent.messages[0].content.startswith("Answer with a number.\n\nYou can call")
    assert "- get_weather: The weather of a city" in sent.messages[0].content
    assert json.loads(sent.messages[2].content) == {
        "tool_calls": [
            {"function": "get_weather", "parameters": {"city": "Paris", "date": "2025-03-02"}},
            {"function": "calculator", "parameters": {"expression": "3+4"}},
        ]
    }
    results = [json.loads(line) for line in sent.messages[3].content.splitlines()]
    assert results == [
        {"tool_response": {"function": "get_weather", "content": '{"high_c": 13.0}'}},
        {"tool_response": {"function": "calculator", "content": "7"}},
    ]


def test_the_convention_schema_admits_only_offered_tools_with_valid_arguments() -> None:
    schema = local_tools.convention_schema((WEATHER, CALCULATOR), None, None)
    good = {
        "tool_calls": [
            {"function": "get_weather", "parameters": {"city": "Paris", "date": "2025-03-02"}}
        ]
    }
    jsonschema.validate(good, schema)
    jsonschema.validate({"response": "13"}, schema)
    bad = [
        {"tool_calls": [{"function": "get_stock_quote", "parameters": {}}]},  # not offered
        {"tool_calls": [{"function": "get_weather", "parameters": {"city": "Paris"}}]},
        {"tool_calls": [{"function": "calculator", "parameters": {"expression": 3}}]},
        {"tool_calls": []},
        {"answer": "13"},
    ]
    for value in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)
    # tool_choice narrows it: none answers, required or a name calls
    jsonschema.validate({"response": "x"}, local_tools.convention_schema((WEATHER,), "none", None))
    named = local_tools.convention_schema((WEATHER, CALCULATOR), "calculator", None)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good, named)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"response": "x"}, named)
    # llama.cpp builds its grammar from it (the date's \d pattern included)
    assert _json_grammar(json.dumps(schema, sort_keys=True)) is not None


def test_grammar_patterns_spell_shorthand_classes() -> None:
    assert grammar_pattern(r"^\d{4}-\d{2}$") == "^[0-9]{4}-[0-9]{2}$"
    assert grammar_pattern(r"[\d.]+\w\.") == r"[0-9.]+[A-Za-z0-9_]\."


def test_the_convention_answer_is_read_back() -> None:
    request = Request(messages=(ASK,), tools=(WEATHER,))
    written = {
        "tool_calls": [
            {"function": "get_weather", "parameters": {"city": "Paris", "date": "2025-03-02"}}
        ]
    }
    called = local_tools.convention_answer(Completion(text=json.dumps(written)), request)
    assert called.text == "" and called.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in called.tool_calls] == [
        ("get_weather", {"city": "Paris", "date": "2025-03-02"})
    ]
    answered = local_tools.convention_answer(Completion(text='{"response": "13"}'), request)
    assert answered.text == "13" and answered.tool_calls == ()
    cut = Completion(text='{"tool_calls": [{"func', finish_reason="length")
    assert local_tools.convention_answer(cut, request) == cut


def _provider(model: str, **options: object) -> LlamaCppProvider:
    price = PriceEntry(per_hour=0.085, source="test", date="2026-11-29")
    spec = ModelSpec.model_validate(
        {"name": "m", "provider": "llamacpp", "model": model, "price": price, "options": options}
    )
    return LlamaCppProvider(spec)


def test_smollm2_refuses_tools_unless_the_convention_is_turned_on() -> None:
    tools = Request(messages=(ASK,), tools=(WEATHER,))
    plain = Request(messages=(ASK,))
    default, json_format = (
        _provider("smollm2-135m-instruct"),
        _provider("smollm2-135m-instruct", tool_format="json"),
    )
    refusal = default.unsupported(tools)
    assert refusal is not None and "tool_format: json" in refusal
    assert default.unsupported(Request(messages=CONVERSATION)) == refusal  # tool turns too
    assert json_format.unsupported(tools) is None
    assert default.unsupported(plain) is None
    # the convention is in the answers' identity; a model without it keys as before
    assert "tool_prompt" not in default.cache_identity()
    assert json_format.cache_identity()["tool_prompt"] == local_tools.convention_identity()
    assert json_format.cache_identity()["options"] == {"tool_format": "json"}
    assert cache_key(default.cache_identity(), tools, 0) != cache_key(
        json_format.cache_identity(), tools, 0
    )


def test_a_base_model_refuses_tools() -> None:
    refusal = _provider("gemma-3-270m", tool_format="json").unsupported(
        Request(messages=(ASK,), tools=(WEATHER,))
    )
    assert refusal is not None and "completion mode" in refusal


def test_a_template_with_tools_takes_them_in_process_in_the_hermes_format() -> None:
    provider = _provider("smollm2-135m-instruct")
    tools = Request(messages=(ASK,), tools=(WEATHER,))
    provider.__dict__["chat_template"] = HERMES  # as a Qwen GGUF's header would give it
    assert provider.unsupported(tools) is None
    assert provider.unsupported(tools.model_copy(update={"tool_choice": "get_weather"})) is None
    required = provider.unsupported(tools.model_copy(update={"tool_choice": "required"}))
    assert required is not None and "tool_format: json" in required
    schema = provider.unsupported(tools.model_copy(update={"response_schema": {"type": "object"}}))
    assert schema is not None
    provider.__dict__["chat_template"] = "{{ tools | tojson }}[TOOL_CALLS]"
    other = provider.unsupported(tools)
    assert other is not None and "engine: server" in other

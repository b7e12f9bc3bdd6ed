"""What the vendors' tool formats share: derived call ids, the function a result answers,
and which conversations a vendor that takes arguments as an object cannot be sent."""

from __future__ import annotations

from llmbench.providers.tool_wire import (
    arguments_object,
    call_id,
    result_names,
    unanswerable_results,
    unsendable_arguments,
    vendor_id,
    with_calls,
)
from llmbench.types import Message, Request, ToolCall


def test_a_derived_id_depends_on_the_call_and_its_place_only() -> None:
    first = call_id(0, "get_weather", '{"city": "Paris"}')
    assert first == call_id(0, "get_weather", '{"city": "Paris"}')
    others = {
        call_id(1, "get_weather", '{"city": "Paris"}'),
        call_id(0, "get_quote", '{"city": "Paris"}'),
        call_id(0, "get_weather", '{"city": "Rome"}'),
    }
    assert first not in others and len(others) == 3
    assert first.startswith("call_")
    # A derived id is never sent to a vendor as if it had given it; any other id is.
    assert vendor_id(first) is None and vendor_id(None) is None
    assert vendor_id("call_a") == "call_a" and vendor_id("toolu_01") == "toolu_01"


def test_a_result_answers_the_nearest_earlier_call_of_its_id() -> None:
    """Derived ids repeat when a later turn makes the same call: the nearest one counts."""
    messages = [
        Message(role="user", content="?"),
        Message(role="assistant", content="", tool_calls=(ToolCall(id="c", name="first"),)),
        Message(role="tool", content="1", tool_call_id="c"),
        Message(role="assistant", content="", tool_calls=(ToolCall(id="c", name="second"),)),
        Message(role="tool", content="2", tool_call_id="c"),
        Message(role="tool", content="3", tool_call_id="unknown"),
    ]
    assert result_names(messages) == [None, None, "first", None, "second", None]
    refusal = unanswerable_results(Request(messages=tuple(messages)), "Gemini")
    assert refusal is not None and "'unknown'" in refusal and "Gemini" in refusal


def test_arguments_that_are_not_an_object_cannot_go_to_an_object_vendor() -> None:
    good = ToolCall(id="a", name="f", arguments='{"x": 1}')
    for text in ('{"x": 1', "[1, 2]", '"x"'):
        bad = ToolCall(id="b", name="f", arguments=text)
        assert arguments_object(bad) is None
        request = Request(
            messages=(
                Message(role="user", content="?"),
                Message(role="assistant", content="", tool_calls=(good, bad)),
            )
        )
        refusal = unsendable_arguments(request, "Ollama")
        assert refusal is not None and "call b (f)" in refusal
    assert arguments_object(good) == {"x": 1}
    plain = Request(messages=(Message(role="assistant", content="", tool_calls=(good,)),))
    assert unsendable_arguments(plain, "Ollama") is None


def test_an_answer_that_ends_in_calls_finishes_for_them() -> None:
    call = ToolCall(id="a", name="f")
    assert with_calls("stop", (call,)) == "tool_calls"
    assert with_calls("length", (call,)) == "length"  # cut short: not a finished call
    assert with_calls("stop", ()) == "stop"

"""What every vendor's tool format needs from a request, whatever its wire shape.

The vendors agree on the idea (functions with JSON-schema parameters; an assistant turn that
calls some; a turn per result) and differ in the details this module settles once: a call id
where the vendor gives none (Gemini, Ollama), the function a result answers where the vendor
names results by function (Gemini, Ollama), and arguments as an object where the vendor takes
an object instead of JSON text (Anthropic, Gemini, Ollama).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from llmbench.types import FinishReason, Message, Request, ToolCall


def uses_tools(request: Request) -> bool:
    """Whether the request offers tools or carries a tool call or result."""
    return bool(request.tools) or any(m.role == "tool" or m.tool_calls for m in request.messages)


_DERIVED_ID = re.compile(r"call_[0-9a-f]{16}")


def call_id(index: int, name: str, arguments: str) -> str:
    """An id for the ``index``-th call of an answer whose vendor gives none: derived from the
    call itself, so the same answer (a rerun, a cache hit, a replay) gets the same ids."""
    digest = hashlib.sha256(f"{index}\0{name}\0{arguments}".encode()).hexdigest()
    return f"call_{digest[:16]}"


def vendor_id(identifier: str | None) -> str | None:
    """The id as a vendor that names calls by id only when it has to is sent it: an id the
    model's side gave, never one :func:`call_id` made up (the vendor never saw that one)."""
    if identifier is None or _DERIVED_ID.fullmatch(identifier):
        return None
    return identifier


def arguments_text(arguments: Any) -> str:
    """A vendor's parsed arguments (an object) as the JSON text a ToolCall keeps."""
    return json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)


def arguments_object(call: ToolCall) -> dict[str, Any] | None:
    """The call's arguments as an object, or None when they are not a JSON object."""
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def unsendable_arguments(request: Request, vendor: str) -> str | None:
    """Why an assistant call in the conversation cannot be sent to a vendor that takes
    arguments as an object: its arguments are not one (the model wrote them so; sending {}
    instead would rewrite what it said)."""
    for message in request.messages:
        for call in message.tool_calls:
            if arguments_object(call) is None:
                return (
                    f"the conversation's call {call.id} ({call.name}) has arguments that are "
                    f"not a JSON object, and {vendor} takes a call's arguments as an object"
                )
    return None


def result_names(messages: Sequence[Message]) -> list[str | None]:
    """For each message, the function a tool turn answers (None for other turns): the call
    of that id in the nearest assistant turn before it (ids the vendor gave none repeat
    across turns, so the nearest is the one answered)."""
    names: dict[str, str] = {}
    out: list[str | None] = []
    for message in messages:
        if message.tool_calls:
            names.update({call.id: call.name for call in message.tool_calls})
        out.append(names.get(message.tool_call_id) if message.tool_call_id else None)
    return out


def unanswerable_results(request: Request, vendor: str) -> str | None:
    """Why a tool turn cannot be sent to a vendor that names results by function: no earlier
    assistant turn made the call it answers."""
    for message, name in zip(request.messages, result_names(request.messages), strict=True):
        if message.role == "tool" and name is None:
            return (
                f"the tool turn for call {message.tool_call_id!r} answers no call of an earlier "
                f"assistant turn, and {vendor} names a result by the function called"
            )
    return None


def with_calls(finish: FinishReason, calls: Sequence[ToolCall]) -> FinishReason:
    """An answer that ends in calls finished to have them run, whatever the vendor says
    (Gemini and Ollama say "stop")."""
    return "tool_calls" if calls and finish == "stop" else finish

"""Tool calling for local llama.cpp models, in one of two ways the user can see.

- The GGUF's own chat template, where it takes tools (it reads ``tools``): the template renders
  the tools and the conversation's calls and results, and the model's calls are read in that
  template's own format. In-process, llama-cpp-python renders the template (its
  ``Jinja2ChatFormatter``) and calls in the Hermes / Qwen format (``<tool_call>{json}</tool_call>``)
  are read here (:func:`hermes_calls`); llama-server (``engine: server``) renders and reads
  every format its chat parsers know, so there the request goes as any OpenAI-style one.
- ``tool_format: json``, for chat models whose template has no tools (SmolLM2): llmbench's own
  convention, shaped as llama.cpp's generic tool format. The tools are described in a system
  prompt (configs/prompts/local_tools.j2), and a JSON-schema grammar makes the model answer
  either ``{"response": ...}`` or ``{"tool_calls": [{"function", "parameters"}]}`` with names
  restricted to the offered tools and arguments to their schemas (keys that sort in the order
  they are written: the grammar is built from the schema with sorted keys, so the function is
  chosen before its arguments): the grammar, not the model,
  is what makes a tiny model's calls parseable. Earlier calls go back as the assistant's JSON
  and results as a user turn of ``{"tool_response": ...}`` lines (minja's polyfill for templates
  without a tool role). The user turns it on; nothing is rewritten without it.

llama-cpp-python's ``chatml-function-calling`` handler was not reused: its template has no
branch for ``tool`` turns (a result would never reach the model), and it sends its own
sampling settings (``max_tokens=None``, ``repeat_penalty``) instead of the request's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from llmbench import prompts
from llmbench.providers.tool_wire import (
    arguments_object,
    arguments_text,
    call_id,
    result_names,
    with_calls,
)
from llmbench.types import Completion, Message, Request, Tool, ToolCall

TOOL_PROMPT = "local_tools.j2"
TemplateTools = Literal["hermes", "other"]

_READS_TOOLS = re.compile(r"\btools\b")
_HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def template_tools(template: str | None) -> TemplateTools | None:
    """Whether a chat template takes tools (it reads ``tools``; None: it does not), and in
    which call format: ``hermes`` (``<tool_call>`` tags) or another one."""
    if not template or not _READS_TOOLS.search(template):
        return None
    return "hermes" if "<tool_call>" in template else "other"


def hermes_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """The answer's text without its ``<tool_call>`` blocks, and the calls they hold, in
    order. A block that is not a JSON object naming a function is kept as a call with no
    name and its text as arguments: a malformed call, recorded and scored as one."""
    calls = []
    for index, match in enumerate(_HERMES_CALL.finditer(text)):
        body = match.group(1)
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            name = value["name"]
            raw = value.get("arguments", value.get("parameters", {}))
            arguments = raw if isinstance(raw, str) else arguments_text(raw)
        else:
            name, arguments = "", body
        calls.append(ToolCall(id=call_id(index, name, arguments), name=name, arguments=arguments))
    if not calls:
        return text, ()
    return _HERMES_CALL.sub("", text).strip(), tuple(calls)


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation as Hugging Face chat templates read it: a call's arguments as an
    object (a template writes them with ``tojson``), a result with its function's name."""
    names = result_names(messages)
    out: list[dict[str, Any]] = []
    for message, name in zip(messages, names, strict=True):
        turn: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            turn["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": arguments_object(call) or call.arguments,
                    },
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id is not None:
            turn["tool_call_id"] = message.tool_call_id
            if name is not None:
                turn["name"] = name
        out.append(turn)
    return out


def template_tool_list(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The tools as a chat template reads them (OpenAI's ``{"type": "function", ...}``)."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


# --- tool_format: json ---------------------------------------------------------------------


def convention_prompt() -> str:
    """The convention's system prompt template (its text is part of the cache identity)."""
    return prompts.read(TOOL_PROMPT, ("tools",))


def convention_identity() -> str:
    """A short digest of the convention's prompt: a reworded prompt gives other answers."""
    return hashlib.sha256(convention_prompt().encode()).hexdigest()[:12]


def convention_schema(
    tools: Sequence[Tool], choice: str | None, response_schema: dict[str, Any] | None
) -> dict[str, Any]:
    """What the grammar lets the model write: a response (following ``response_schema``
    where the request has one) or calls of the offered tools, each with arguments that
    follow the tool's parameters. ``choice`` narrows it as ``tool_choice`` does."""
    offered = [t for t in tools if choice in (None, "auto", "required", "none", t.name)]
    call = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"function": {"const": t.name}, "parameters": t.parameters},
                "required": ["function", "parameters"],
                "additionalProperties": False,
            }
            for t in offered
        ]
    }
    calls = {
        "type": "object",
        "properties": {"tool_calls": {"type": "array", "items": call, "minItems": 1}},
        "required": ["tool_calls"],
        "additionalProperties": False,
    }
    response = {
        "type": "object",
        "properties": {"response": response_schema or {"type": "string"}},
        "required": ["response"],
        "additionalProperties": False,
    }
    if not offered or choice == "none":
        return response
    if choice is not None and choice != "auto":  # required, or a tool's name
        return calls
    return {"anyOf": [calls, response]}


def _assistant_turn(message: Message) -> str:
    """An earlier answer in the convention's own shape, as the model would have written it."""
    if not message.tool_calls:
        return json.dumps({"response": message.content}, ensure_ascii=False)
    written = [
        {"function": c.name, "parameters": arguments_object(c) or c.arguments}
        for c in message.tool_calls
    ]
    return json.dumps({"tool_calls": written}, ensure_ascii=False)


def convention_request(request: Request) -> Request:
    """``request`` as the convention sends it: no tools, the tools described in the system
    prompt, calls and results as text, and the grammar's schema as its response schema."""
    described = prompts.render(
        convention_prompt(),
        {
            "tools": [
                {
                    "name": t.name,
                    "description": t.description,
                    "parameters": json.dumps(t.parameters, ensure_ascii=False),
                }
                for t in request.tools
            ]
        },
        TOOL_PROMPT,
    ).strip()
    messages: list[Message] = []
    results: list[str] = []
    names = result_names(request.messages)

    def flush() -> None:
        if results:
            messages.append(Message(role="user", content="\n".join(results)))
            results.clear()

    for message, name in zip(request.messages, names, strict=True):
        if message.role == "tool":
            response = {"function": name or message.tool_call_id, "content": message.content}
            results.append(json.dumps({"tool_response": response}, ensure_ascii=False))
            continue
        flush()
        if message.role == "assistant":
            messages.append(Message(role="assistant", content=_assistant_turn(message)))
        else:
            messages.append(message)
    flush()
    if request.tools:
        if messages and messages[0].role == "system":
            system = f"{messages[0].content}\n\n{described}"
            messages[0] = Message(role="system", content=system)
        else:
            messages.insert(0, Message(role="system", content=described))
    return Request(
        messages=tuple(messages),
        params=request.params,
        response_schema=convention_schema(
            request.tools, request.tool_choice, request.response_schema
        ),
        draw=request.draw,
    )


def convention_answer(completion: Completion, request: Request) -> Completion:
    """The model's JSON read back: its calls, or its response as the answer's text. A reply
    that is not the grammar's whole object (cut by max_tokens) stays text, with no calls."""
    try:
        value = json.loads(completion.text)
    except ValueError:
        return completion
    if not isinstance(value, dict):
        return completion
    if isinstance(value.get("tool_calls"), list):
        calls = []
        for index, written in enumerate(value["tool_calls"]):
            name = str(written.get("function", ""))
            arguments = arguments_text(written.get("parameters"))
            calls.append(
                ToolCall(id=call_id(index, name, arguments), name=name, arguments=arguments)
            )
        finish = with_calls(completion.finish_reason, calls)
        return completion.model_copy(
            update={"text": "", "tool_calls": tuple(calls), "finish_reason": finish}
        )
    if "response" in value:
        response = value["response"]
        plain = request.response_schema is None and isinstance(response, str)
        text = response if plain else json.dumps(response, ensure_ascii=False)
        return completion.model_copy(update={"text": text})
    return completion

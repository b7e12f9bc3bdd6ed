"""A loopback fake of four LLM vendors' HTTP APIs, so provider code is tested through the real SDKs.

Patching SDK internals tests our guess of how an SDK behaves; answering it on the wire tests the
SDK itself (its parsing, its error classes, its retry headers). One `ProviderServer` (a starlette
app served by uvicorn on 127.0.0.1, free port, background thread) speaks all four at once:

    vendor     routes (all POST)                            the official async SDK, pointed at it
    openai     /v1/chat/completions                         openai.AsyncOpenAI(base_url=url + "/v1")
    anthropic  /v1/messages                                 anthropic.AsyncAnthropic(base_url=url)
    gemini     /{v1,v1beta,v1alpha}/models/{m}:generateContent       genai.Client(http_options=
               /{...}/models/{m}:streamGenerateContent?alt=sse         HttpOptions(base_url=url))
    ollama     /api/chat                                    ollama.AsyncClient(host=url)

What each request gets is scripted: `server.script(Reply(...), Fault(...))` queues items that any
route consumes in arrival order; with the queue empty, `server.default(request)` answers (the
built-in `echo_reply` says "echo: <last user text>" with whitespace word counts as tokens).
`reset()` forgets requests and script and puts back the constructor's latency and responder (the
tests' `server` fixture does so around each test); `hold(n)` keeps answers waiting until n
requests are in flight at once, so a test proves concurrency by a count instead of a duration.

`Reply` counts use the OpenAI convention: `input_tokens` is the whole prompt including cached
tokens and `output_tokens` all billed output including reasoning. Each vendor then splits them the
way its API does: Anthropic `input_tokens` excludes `cache_read_input_tokens` and
`cache_creation_input_tokens`; Gemini `candidatesTokenCount` excludes `thoughtsTokenCount`.
`finish` maps to OpenAI stop/length/content_filter, Anthropic end_turn/max_tokens/refusal, Gemini
STOP/MAX_TOKENS/SAFETY and Ollama stop/length/stop (Ollama has no content filter). `reasoning` is
OpenAI `reasoning_content` (DeepSeek style), an Anthropic thinking block, Gemini `thought` parts
and Ollama `message.thinking`.

`tool_calls` (`ReplyCall`: name and arguments) are rendered after the text as each vendor
does: OpenAI `message.tool_calls` (arguments as JSON text; streamed as `delta.tool_calls`
pieces by index, the id and name first, the arguments in pieces), Anthropic `tool_use`
blocks (streamed as `input_json_delta` pieces), Gemini `functionCall` parts (one stream event
per call; no id unless the ReplyCall has one) and Ollama `message.tool_calls` (arguments as
an object, no id; streamed in one line before the final one). A reply with calls that would
finish with "stop" finishes as each vendor says a turn ends in calls: OpenAI `tool_calls`,
Anthropic `tool_use`, Gemini `STOP` and Ollama `stop`. Arguments given as a string are sent
as that text where the vendor sends text (OpenAI, Anthropic's stream), so a test can send
JSON that does not parse; where the vendor sends an object the string must be a JSON object.
`RecordedRequest.tool_names`, `call_names` and `tool_results` read the tools offered, the
calls of the conversation's assistant turns and its tool results the same way for every
vendor (the vendor's own shape is in `body`).

Every pause (`latency_s`, `delay_s`, `ttft_delay_s`) is an asyncio wait that ends early when the
client disconnects (a client-side timeout) or `stop()` is called, so a slow answer never holds up
the loop, the next test, or shutdown.

Faults: `reset_connection` aborts the TCP connection with an RST (SO_LINGER 0, then
`transport.abort()`); `drop_stream_after` sends N text deltas, lets them reach the client, then
closes the socket without the end of the chunked body; `malformed` answers 200 with the JSON
body (or a stream's first event) cut in half, the HTTP framing intact; `end_stream_after` ends a
stream cleanly after N text deltas, without its closing events (usage, finish reason, `[DONE]`,
`message_stop`, Ollama's done line). Both need the socket, which ASGI does not
expose, so `_TransportInScope` (a uvicorn h11 protocol) puts each connection's transport into the
ASGI scope state. Without it (another server) they fall back to raising, which uvicorn answers by
closing the connection or with a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias, cast

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

Vendor: TypeAlias = Literal["openai", "anthropic", "gemini", "ollama"]
Finish: TypeAlias = Literal["stop", "length", "safety"]
JSONDict: TypeAlias = dict[str, Any]

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key"}
)
REDACTED = "<redacted>"
_TRANSPORT_KEY = "provider_server.transport"
_HANG_UP_WAIT_S = 2.0


@dataclass(frozen=True)
class ReplyCall:
    """One function call of a Reply. `arguments` as a dict is sent as JSON; as a str it is the
    arguments' text as sent (possibly not JSON). `id` None: the fake's own id where the vendor
    gives one (OpenAI `call_...`, Anthropic `toolu_...`), none for Gemini and Ollama.
    `signature` is Gemini's `thoughtSignature` on the call's part (base64), ignored elsewhere."""

    name: str
    arguments: JSONDict | str = field(default_factory=dict)
    id: str | None = None
    signature: str | None = None

    def text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    def object(self) -> JSONDict:
        if isinstance(self.arguments, dict):
            return self.arguments
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError(f"{self.name}: arguments this vendor sends must be a JSON object")
        return value


@dataclass(frozen=True)
class Reply:
    """A successful answer; each vendor renders it in its own fields (see the module docstring).

    `delay_s` is spread over a stream's deltas (added up front when not streaming); `ttft_delay_s`
    comes before the first delta. `safety_scope` only matters to Gemini with `finish="safety"`:
    "response" gives a candidate with finishReason SAFETY and no parts, "prompt" gives
    `promptFeedback.blockReason` SAFETY and no candidates. Gemini drops `text` in both cases.
    """

    text: str
    input_tokens: int = 10
    output_tokens: int = 5
    finish: Finish = "stop"
    reasoning: str | None = None
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    model_version: str | None = None
    delay_s: float = 0.0
    ttft_delay_s: float = 0.0
    safety_scope: Literal["response", "prompt"] = "response"
    tool_calls: tuple[ReplyCall, ...] = ()


@dataclass(frozen=True)
class Fault:
    """A failure. Precedence: reset_connection, malformed, drop_stream_after, end_stream_after,
    then the status.

    `body=None` renders the vendor's own error shape for `status` (see `error_body`); a dict is
    sent as JSON, a str verbatim as text/plain (like a proxy's error page); `status=200` with a
    `body` is a 200 of another shape. `malformed`, `drop_stream_after` and `end_stream_after`
    ignore `status` and play the default responder's answer, truncated: a non-streaming drop
    sends the headers and half the body, then closes; a non-streaming `end_stream_after` is
    `malformed` (a JSON body has no events to stop between).
    """

    status: int = 500
    body: JSONDict | str | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    malformed: bool = False
    drop_stream_after: int | None = None
    end_stream_after: int | None = None
    delay_s: float = 0.0
    reset_connection: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; the properties read it the same way for every vendor."""

    vendor: Vendor
    path: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    json: JSONDict | None
    received_at: float  # time.monotonic(), comparable with the test's own clock

    def headers_without_secrets(self) -> dict[str, str]:
        """Headers safe to print or store: key values replaced by a marker that one was sent."""
        return {k: REDACTED if k in SECRET_HEADERS else v for k, v in self.headers.items()}

    def redacted(self) -> RecordedRequest:
        """A copy without keys in headers or in Gemini's `?key=` query parameter."""
        query = {k: REDACTED if k == "key" else v for k, v in self.query.items()}
        return replace(self, headers=self.headers_without_secrets(), query=query)

    @property
    def body(self) -> JSONDict:
        return self.json or {}

    @property
    def model(self) -> str | None:
        if self.vendor == "gemini":
            _, found, target = self.path.partition("/models/")
            return (target.rpartition(":")[0] or None) if found else None
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        """Whether a stream was asked for; Ollama streams unless told `"stream": false`."""
        if self.vendor == "gemini":
            return self.path.endswith(":streamGenerateContent")
        if self.vendor == "ollama":
            return self.body.get("stream") is not False
        return self.body.get("stream") is True

    @property
    def max_tokens(self) -> int | None:
        b = self.body
        value: Any
        if self.vendor == "openai":
            value = b.get("max_completion_tokens", b.get("max_tokens"))
        elif self.vendor == "anthropic":
            value = b.get("max_tokens")
        elif self.vendor == "gemini":
            value = _mapping(b.get("generationConfig")).get("maxOutputTokens")
        else:
            value = _mapping(b.get("options")).get("num_predict")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def temperature(self) -> float | None:
        if self.vendor == "gemini":
            value = _mapping(self.body.get("generationConfig")).get("temperature")
        elif self.vendor == "ollama":
            value = _mapping(self.body.get("options")).get("temperature")
        else:
            value = self.body.get("temperature")
        return float(value) if isinstance(value, int | float) else None

    @property
    def tool_names(self) -> list[str]:
        """The names of the functions the request offers, in its order, whatever the vendor."""
        if self.vendor == "gemini":
            declared = [
                _mapping(f).get("name")
                for tool in _list(self.body.get("tools"))
                for f in _list(_mapping(tool).get("functionDeclarations"))
            ]
        elif self.vendor == "anthropic":
            declared = [_mapping(t).get("name") for t in _list(self.body.get("tools"))]
        else:
            tools = _list(self.body.get("tools"))
            declared = [_mapping(_mapping(t).get("function")).get("name") for t in tools]
        return [name for name in declared if isinstance(name, str)]

    @property
    def call_names(self) -> list[str]:
        """The functions the conversation's assistant turns called, in order, any vendor."""
        names: list[Any] = []
        if self.vendor == "gemini":
            for content in _list(self.body.get("contents")):
                for part in _list(_mapping(content).get("parts")):
                    names.append(_mapping(_mapping(part).get("functionCall")).get("name"))
        for message in _list(self.body.get("messages")):
            m = _mapping(message)
            for call in _list(m.get("tool_calls")):  # OpenAI, Ollama
                names.append(_mapping(_mapping(call).get("function")).get("name"))
            if isinstance(m.get("content"), list):  # Anthropic
                for block in m["content"]:
                    if _mapping(block).get("type") == "tool_use":
                        names.append(_mapping(block).get("name"))
        return [name for name in names if isinstance(name, str)]

    @property
    def tool_results(self) -> list[str]:
        """The tool results the conversation carries, in order, as text, any vendor (a
        Gemini response is its `output`, or the whole object as JSON)."""
        results: list[str] = []
        if self.vendor == "gemini":
            for content in _list(self.body.get("contents")):
                for part in _list(_mapping(content).get("parts")):
                    found = _mapping(part).get("functionResponse")
                    if found is not None:
                        response = _mapping(_mapping(found).get("response"))
                        output = response.get("output")
                        results.append(output if isinstance(output, str) else json.dumps(response))
            return results
        for message in _list(self.body.get("messages")):
            m = _mapping(message)
            if m.get("role") == "tool":  # OpenAI, Ollama
                results.append(_content_text(m.get("content")))
            elif isinstance(m.get("content"), list):  # Anthropic
                for block in m["content"]:
                    if _mapping(block).get("type") == "tool_result":
                        results.append(_content_text(_mapping(block).get("content")))
        return results

    @property
    def system_text(self) -> str | None:
        system, _ = self._conversation()
        return "\n".join(system) if system else None

    @property
    def last_user_text(self) -> str | None:
        _, turns = self._conversation()
        return next((text for role, text in reversed(turns) if role == "user"), None)

    @property
    def prompt_text(self) -> str:
        """All system and message text, for counting prompt tokens."""
        system, turns = self._conversation()
        return "\n".join([*system, *(text for _, text in turns)])

    def _conversation(self) -> tuple[list[str], list[tuple[str, str]]]:
        b = self.body
        system: list[str] = []
        turns: list[tuple[str, str]] = []
        if self.vendor == "gemini":
            instruction = b.get("systemInstruction")
            if instruction is not None:
                system.append(_gemini_text(instruction))
            for content in _list(b.get("contents")):
                turns.append((str(_mapping(content).get("role", "user")), _gemini_text(content)))
            return system, turns
        if self.vendor == "anthropic" and b.get("system") is not None:
            system.append(_content_text(b.get("system")))
        for message in _list(b.get("messages")):
            m = _mapping(message)
            role, text = str(m.get("role", "")), _content_text(m.get("content"))
            if role in ("system", "developer"):
                system.append(text)
            else:
                turns.append((role, text))
        return system, turns


Responder: TypeAlias = Callable[[RecordedRequest], Reply | Fault]


def echo_reply(request: RecordedRequest) -> Reply:
    """The default answer: deterministic, cut to the request's max tokens like a real model."""
    words = f"echo: {request.last_user_text or ''}".split()
    finish: Finish = "stop"
    limit = request.max_tokens
    if limit is not None and len(words) > limit:
        words, finish = words[: max(limit, 0)], "length"
    return Reply(
        text=" ".join(words),
        input_tokens=len(request.prompt_text.split()),
        output_tokens=len(words),
        finish=finish,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _content_text(content: Any) -> str:
    """OpenAI, Anthropic and Ollama content: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    texts = [_mapping(part).get("text") for part in _list(content)]
    return "\n".join(t for t in texts if isinstance(t, str))


def _gemini_text(content: Any) -> str:
    texts = [_mapping(part).get("text") for part in _list(_mapping(content).get("parts"))]
    return "\n".join(t for t in texts if isinstance(t, str))


def _pieces(text: str | None) -> list[str]:
    """Word-sized stream deltas that concatenate back to exactly `text`."""
    return re.findall(r"\s*\S+|\s+$", text) if text else []


def _slices(text: str, size: int = 7) -> list[str]:
    """Fixed-size stream deltas of a call's arguments (cut mid-token, as vendors cut them)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------------------------------------
# Error shapes, as each vendor documents them.

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to use this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests per min (RPM)."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource was not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your organization's rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_GEMINI_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "API key not valid. Please pass a valid API key."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}
_OLLAMA_ERRORS: dict[int, str] = {
    400: "invalid request",
    401: "unauthorized",
    404: "model not found, try pulling it first",
    429: "too many requests",
    500: "internal server error",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def error_body(vendor: Vendor, status: int, message: str | None = None) -> JSONDict:
    """The JSON error body `vendor` sends with `status`; `message` replaces the stock wording."""
    if vendor == "openai":
        fallback = ("invalid_request_error" if status < 500 else "server_error", None, "Error.")
        etype, code, text = _OPENAI_ERRORS.get(status, fallback)
        return {"error": {"message": message or text, "type": etype, "param": None, "code": code}}
    if vendor == "anthropic":
        fallback_type = "invalid_request_error" if status < 500 else "api_error"
        etype, text = _ANTHROPIC_ERRORS.get(status, (fallback_type, "Error."))
        return {"type": "error", "error": {"type": etype, "message": message or text}}
    if vendor == "gemini":
        fallback_status = "INVALID_ARGUMENT" if status < 500 else "INTERNAL"
        gstatus, text = _GEMINI_ERRORS.get(status, (fallback_status, "Error."))
        return {"error": {"code": status, "message": message or text, "status": gstatus}}
    return {"error": message or _OLLAMA_ERRORS.get(status, "error")}


# ---------------------------------------------------------------------------------------------
# Success shapes.

_OPENAI_FINISH = {"stop": "stop", "length": "length", "safety": "content_filter"}
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "safety": "refusal"}
_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "safety": "SAFETY"}
_OLLAMA_DONE = {"stop": "stop", "length": "length", "safety": "stop"}  # Ollama has no filter
_SIGNATURE = "fake-thinking-signature"
_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]


@dataclass(frozen=True)
class _Frame:
    """One stream event; `delta` marks the text-bearing ones that pacing and drops count."""

    payload: Any  # JSON-able; a str sent as is (OpenAI's "[DONE]"); a callable made when sent
    delta: bool = False
    event: str | None = None  # the SSE `event:` line (Anthropic needs it)


@dataclass(frozen=True)
class _Plan:
    content_type: str
    frames: list[_Frame]
    framing: Literal["sse", "ndjson", "json-array"]

    def encode(self, index: int, *, truncate: bool = False) -> bytes:
        payload = self.frames[index].payload
        payload = payload() if callable(payload) else payload
        data = payload if isinstance(payload, str) else json.dumps(payload)
        if truncate:
            data = data[: max(1, len(data) // 2)]
        if self.framing == "ndjson":
            return f"{data}\n".encode()
        if self.framing == "json-array":
            return f"{'[' if index == 0 else ','}{data}\r\n".encode()
        event = f"event: {self.frames[index].event}\n" if self.frames[index].event else ""
        return f"{event}data: {data}\n\n".encode()

    @property
    def trailer(self) -> bytes:
        return b"]" if self.framing == "json-array" else b""


@dataclass(frozen=True)
class _Render:
    """Renders one Reply for one request, both as a JSON body and as a stream plan."""

    request: RecordedRequest
    reply: Reply
    number: int

    @property
    def model(self) -> str:
        return self.reply.model_version or self.request.model or "fake-model"

    @property
    def ident(self) -> str:
        return f"fake{self.number:06d}"

    def body(self) -> JSONDict:
        return cast(JSONDict, getattr(self, f"_{self.request.vendor}_body")())

    def plan(self) -> _Plan:
        return cast(_Plan, getattr(self, f"_{self.request.vendor}_plan")())

    # OpenAI -----------------------------------------------------------------------------
    def _openai_usage(self) -> JSONDict:
        r = self.reply
        return {
            "prompt_tokens": r.input_tokens,
            "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cached_input_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": r.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _openai_envelope(self, kind: str) -> JSONDict:
        return {
            "id": f"chatcmpl-{self.ident}",
            "object": kind,
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
        }

    def _call_id(self, call: ReplyCall, prefix: str, index: int) -> str:
        return call.id or f"{prefix}_{self.ident}_{index}"

    @property
    def _calls_end_turn(self) -> bool:
        return bool(self.reply.tool_calls) and self.reply.finish == "stop"

    @property
    def _openai_finish(self) -> str:
        return "tool_calls" if self._calls_end_turn else _OPENAI_FINISH[self.reply.finish]

    def _openai_body(self) -> JSONDict:
        calls = self.reply.tool_calls
        content = self.reply.text or (None if calls else "")
        message: JSONDict = {"role": "assistant", "content": content, "refusal": None}
        if self.reply.reasoning is not None:
            message["reasoning_content"] = self.reply.reasoning
        if calls:
            message["tool_calls"] = [
                {
                    "id": self._call_id(call, "call", i),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.text()},
                }
                for i, call in enumerate(calls)
            ]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self._openai_finish,
        }
        return {
            **self._openai_envelope("chat.completion"),
            "choices": [choice],
            "usage": self._openai_usage(),
        }

    def _openai_plan(self) -> _Plan:
        options = _mapping(self.request.body.get("stream_options"))
        include_usage = options.get("include_usage") is True
        envelope = self._openai_envelope("chat.completion.chunk")

        def chunk(delta: JSONDict, finish: str | None = None) -> JSONDict:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            extra: JSONDict = {"usage": None} if include_usage else {}
            return {**envelope, "choices": [choice], **extra}

        frames = [_Frame(chunk({"role": "assistant", "content": ""}))]
        frames += [
            _Frame(chunk({"reasoning_content": p}), True) for p in _pieces(self.reply.reasoning)
        ]
        frames += [_Frame(chunk({"content": p}), True) for p in _pieces(self.reply.text)]
        for i, call in enumerate(self.reply.tool_calls):
            head = {"name": call.name, "arguments": ""}
            opened = {"index": i, "id": self._call_id(call, "call", i), "type": "function"}
            frames.append(_Frame(chunk({"tool_calls": [{**opened, "function": head}]}), True))
            for piece in _slices(call.text()):
                delta = {"index": i, "function": {"arguments": piece}}
                frames.append(_Frame(chunk({"tool_calls": [delta]}), True))
        frames.append(_Frame(chunk({}, self._openai_finish)))
        if include_usage:
            frames.append(_Frame({**envelope, "choices": [], "usage": self._openai_usage()}))
        frames.append(_Frame("[DONE]"))
        return _Plan("text/event-stream; charset=utf-8", frames, "sse")

    # Anthropic --------------------------------------------------------------------------
    def _anthropic_usage(self) -> JSONDict:
        r = self.reply
        uncached = r.input_tokens - r.cached_input_tokens - r.cache_creation_tokens
        return {
            "input_tokens": max(0, uncached),
            "output_tokens": r.output_tokens,
            "cache_creation_input_tokens": r.cache_creation_tokens,
            "cache_read_input_tokens": r.cached_input_tokens,
        }

    def _anthropic_message(self, content: list[JSONDict], stop: str | None) -> JSONDict:
        return {
            "id": f"msg_{self.ident}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self._anthropic_usage(),
        }

    def _anthropic_body(self) -> JSONDict:
        content: list[JSONDict] = []
        if self.reply.reasoning is not None:
            thinking = {"type": "thinking", "thinking": self.reply.reasoning}
            content.append({**thinking, "signature": _SIGNATURE})
        if self.reply.text:
            content.append({"type": "text", "text": self.reply.text})
        for i, call in enumerate(self.reply.tool_calls):
            use = {"type": "tool_use", "id": self._call_id(call, "toolu", i), "name": call.name}
            content.append({**use, "input": call.object()})
        return self._anthropic_message(content, self._anthropic_stop)

    @property
    def _anthropic_stop(self) -> str:
        return "tool_use" if self._calls_end_turn else _ANTHROPIC_STOP[self.reply.finish]

    def _anthropic_plan(self) -> _Plan:
        start = self._anthropic_message([], None)
        start["usage"] = {**start["usage"], "output_tokens": min(1, self.reply.output_tokens)}
        frames = [_Frame({"type": "message_start", "message": start}, event="message_start")]
        blocks: list[tuple[JSONDict, list[JSONDict], JSONDict | None]] = []
        if self.reply.reasoning is not None:
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in _pieces(self.reply.reasoning)
            ]
            signature = {"type": "signature_delta", "signature": _SIGNATURE}
            blocks.append(
                ({"type": "thinking", "thinking": "", "signature": ""}, deltas, signature)
            )
        if self.reply.text:
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(self.reply.text)]
            blocks.append(({"type": "text", "text": ""}, deltas, None))
        for i, call in enumerate(self.reply.tool_calls):
            use = {"type": "tool_use", "id": self._call_id(call, "toolu", i), "name": call.name}
            pieces = ["", *_slices(call.text())]  # the API opens with an empty piece
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            blocks.append(({**use, "input": {}}, deltas, None))
        for index, (block, deltas, closing) in enumerate(blocks):
            opened = {"type": "content_block_start", "index": index, "content_block": block}
            frames.append(_Frame(opened, event="content_block_start"))
            if index == 0:
                frames.append(_Frame({"type": "ping"}, event="ping"))
            for delta in deltas:
                payload = {"type": "content_block_delta", "index": index, "delta": delta}
                frames.append(_Frame(payload, True, "content_block_delta"))
            if closing is not None:
                payload = {"type": "content_block_delta", "index": index, "delta": closing}
                frames.append(_Frame(payload, event="content_block_delta"))
            stopped = {"type": "content_block_stop", "index": index}
            frames.append(_Frame(stopped, event="content_block_stop"))
        if not blocks:
            frames.append(_Frame({"type": "ping"}, event="ping"))
        stop = {"stop_reason": self._anthropic_stop, "stop_sequence": None}
        usage = {"output_tokens": self.reply.output_tokens}
        frames.append(
            _Frame({"type": "message_delta", "delta": stop, "usage": usage}, event="message_delta")
        )
        frames.append(_Frame({"type": "message_stop"}, event="message_stop"))
        return _Plan("text/event-stream; charset=utf-8", frames, "sse")

    # Gemini -----------------------------------------------------------------------------
    def _gemini_usage(self, *, final: bool) -> JSONDict:
        r = self.reply
        usage: JSONDict = {"promptTokenCount": r.input_tokens}
        if r.cached_input_tokens:
            usage["cachedContentTokenCount"] = r.cached_input_tokens
        if not final:
            return {**usage, "totalTokenCount": r.input_tokens}
        usage["candidatesTokenCount"] = max(0, r.output_tokens - r.reasoning_tokens)
        if r.reasoning_tokens:
            usage["thoughtsTokenCount"] = r.reasoning_tokens
        return {**usage, "totalTokenCount": r.input_tokens + r.output_tokens}

    def _gemini_response(self, candidates: list[JSONDict] | None, *, final: bool) -> JSONDict:
        body: JSONDict = {}
        if candidates is not None:
            body["candidates"] = candidates
        else:  # blocked prompt: no candidates, the reason is in promptFeedback
            body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS}
        usage = self._gemini_usage(final=final)
        if candidates is None:
            usage = {"promptTokenCount": self.reply.input_tokens}
            usage["totalTokenCount"] = self.reply.input_tokens
        body["usageMetadata"] = usage
        body["modelVersion"] = self.model
        body["responseId"] = f"resp-{self.ident}"
        return body

    def _gemini_candidate(self, parts: list[JSONDict] | None, finish: str | None) -> JSONDict:
        candidate: JSONDict = {"index": 0}
        if parts is not None:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish is not None:
            candidate["finishReason"] = finish
        if finish == "SAFETY":
            candidate["safetyRatings"] = _SAFETY_RATINGS
        return candidate

    @property
    def _gemini_blocked(self) -> Literal["prompt", "response"] | None:
        return self.reply.safety_scope if self.reply.finish == "safety" else None

    def _gemini_body(self) -> JSONDict:
        if self._gemini_blocked == "prompt":
            return self._gemini_response(None, final=True)
        finish = _GEMINI_FINISH[self.reply.finish]
        if self._gemini_blocked == "response":
            return self._gemini_response([self._gemini_candidate(None, finish)], final=True)
        parts: list[JSONDict] = []
        if self.reply.reasoning is not None:
            parts.append({"text": self.reply.reasoning, "thought": True})
        if self.reply.text or not self.reply.tool_calls:
            parts.append({"text": self.reply.text})
        parts += self._gemini_calls()
        return self._gemini_response([self._gemini_candidate(parts, finish)], final=True)

    def _gemini_calls(self) -> list[JSONDict]:
        parts = []
        for call in self.reply.tool_calls:
            function: JSONDict = {"name": call.name, "args": call.object()}
            if call.id is not None:
                function["id"] = call.id
            part: JSONDict = {"functionCall": function}
            if call.signature is not None:
                part["thoughtSignature"] = call.signature
            parts.append(part)
        return parts

    def _gemini_plan(self) -> _Plan:
        sse = self.request.query.get("alt") == "sse"
        framing: Literal["sse", "json-array"] = "sse" if sse else "json-array"
        content_type = "text/event-stream" if sse else "application/json; charset=utf-8"
        if self._gemini_blocked is not None:
            return _Plan(content_type, [_Frame(self._gemini_body())], framing)
        frames: list[_Frame] = []
        parts: list[JSONDict] = [
            {"text": p, "thought": True} for p in _pieces(self.reply.reasoning)
        ]
        parts += [{"text": p} for p in _pieces(self.reply.text)]
        parts += self._gemini_calls()
        for part in parts:
            candidate = self._gemini_candidate([part], None)
            frames.append(_Frame(self._gemini_response([candidate], final=False), True))
        last = self._gemini_candidate([{"text": ""}], _GEMINI_FINISH[self.reply.finish])
        frames.append(_Frame(self._gemini_response([last], final=True)))
        return _Plan(content_type, frames, framing)

    # Ollama -----------------------------------------------------------------------------
    def _ollama_line(self, message: JSONDict) -> JSONDict:
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"model": self.model, "created_at": created, "message": message}

    def _ollama_final(self, message: JSONDict) -> JSONDict:
        total = max(int((time.monotonic() - self.request.received_at) * 1e9), 1_000)
        load, prompt_eval = total // 10, total // 5
        return {
            **self._ollama_line(message),
            "done_reason": _OLLAMA_DONE[self.reply.finish],
            "done": True,
            "total_duration": total,
            "load_duration": load,
            "prompt_eval_count": self.reply.input_tokens,
            "prompt_eval_duration": prompt_eval,
            "eval_count": self.reply.output_tokens,
            "eval_duration": total - load - prompt_eval,
        }

    def _ollama_body(self) -> JSONDict:
        message: JSONDict = {"role": "assistant", "content": self.reply.text}
        if self.reply.reasoning is not None:
            message["thinking"] = self.reply.reasoning
        if self.reply.tool_calls:
            message["tool_calls"] = self._ollama_calls()
        return self._ollama_final(message)

    def _ollama_calls(self) -> list[JSONDict]:
        return [
            {"function": {"name": call.name, "arguments": call.object()}}
            for call in self.reply.tool_calls
        ]

    def _ollama_plan(self) -> _Plan:
        frames: list[_Frame] = []
        for piece in _pieces(self.reply.reasoning):
            message = {"role": "assistant", "content": "", "thinking": piece}
            frames.append(_Frame({**self._ollama_line(message), "done": False}, True))
        for piece in _pieces(self.reply.text):
            message = {"role": "assistant", "content": piece}
            frames.append(_Frame({**self._ollama_line(message), "done": False}, True))
        if self.reply.tool_calls:
            message = {"role": "assistant", "content": "", "tool_calls": self._ollama_calls()}
            frames.append(_Frame({**self._ollama_line(message), "done": False}, True))
        final = {"role": "assistant", "content": ""}
        frames.append(_Frame(lambda: self._ollama_final(final)))  # durations as of sending
        return _Plan("application/x-ndjson", frames, "ndjson")


# ---------------------------------------------------------------------------------------------
# Wire: the ASGI side, plus the two ways of hanging up that ASGI itself cannot express.


class _TransportInScope(H11Protocol):
    """uvicorn's h11 protocol, plus the connection's transport in `scope["state"]`.

    Why: resetting or half-closing a connection needs the socket. uvicorn copies `app_state` into
    every request's scope, so a per-connection copy carrying the transport reaches the app.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, _TRANSPORT_KEY: transport}


class _HangUp(Exception):
    """Raised when the transport is out of reach: uvicorn then closes the connection itself."""


class _Gone(Exception):
    """The client left, or the server is stopping: nothing more is worth sending."""


class _Wire:
    """The ASGI side of one exchange, plus what ASGI cannot say: hang up, notice a departure.

    A watcher task owns `receive` once the body is read, so pauses end early when the client
    disconnects (a client-side timeout) or the server stops, instead of sleeping on.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        transport = _mapping(scope.get("state")).get(_TRANSPORT_KEY)
        self._transport = cast("asyncio.Transport | None", transport)
        self.disconnected = asyncio.Event()
        self.gone = asyncio.Event()  # disconnected, or abandoned by stop()
        self.started = False
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()
        self.gone.set()

    def abandon(self) -> None:
        self.gone.set()

    def close(self) -> None:
        self._watcher.cancel()

    async def pause(self, seconds: float) -> None:
        """Sleep without blocking the loop; raise _Gone if the exchange ends meanwhile."""
        if seconds > 0 and not self.gone.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self.gone.wait()
        if self.gone.is_set():
            raise _Gone

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def write(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes = b"") -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def respond(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        await self.start(status, {**headers, "content-length": str(len(body))})
        await self.finish(body)

    async def hang_up(self, *, reset: bool) -> None:
        """Close abruptly: an RST (`reset`) or a FIN after what was written so far."""
        transport = self._transport
        if self.disconnected.is_set():
            return
        if transport is None or transport.is_closing():
            raise _HangUp("no transport to close; uvicorn closes the connection instead")
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    linger = struct.pack("ii", 1, 0)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            transport.abort()
        else:
            deadline = time.monotonic() + _HANG_UP_WAIT_S
            while transport.get_write_buffer_size() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            transport.close()
        # Returning once uvicorn has seen the disconnect keeps it from logging an error.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_HANG_UP_WAIT_S):
                await self.disconnected.wait()


class _Exchange(Response):
    """Plays one scripted item as a raw ASGI response: pacing, drops and resets need the wire."""

    def __init__(self, server: ProviderServer, request: RecordedRequest, item: Reply | Fault):
        super().__init__()
        self._server = server
        self._request = request
        self._item = item

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wire = _Wire(scope, receive, send)
        self._server._enter(wire)
        try:
            await self._server._wait_for_company(wire)
            await wire.pause(self._server.latency_s)
            if isinstance(self._item, Fault):
                await self._fault(wire, self._item)
            else:
                await self._reply(wire, self._item)
        except _Gone:
            if not wire.disconnected.is_set():  # stop() abandoned it: let the client know
                self._server._count_abandoned()
                await wire.hang_up(reset=not wire.started)
        finally:
            wire.close()
            self._server._leave(wire)

    def _vendor_headers(self) -> dict[str, str]:
        rid = f"req_fake{self._server._next_id():06d}"
        vendor = self._request.vendor
        if vendor == "openai":
            return {"x-request-id": rid, "openai-processing-ms": "1"}
        return {"request-id": rid} if vendor == "anthropic" else {}

    async def _fault(self, wire: _Wire, fault: Fault) -> None:
        await wire.pause(fault.delay_s)
        if fault.reset_connection:
            await wire.hang_up(reset=True)
            return
        if fault.malformed or fault.drop_stream_after is not None:
            reply = self._server._default_reply(self._request)
            await self._reply(wire, reply, malformed=fault.malformed, drop=fault.drop_stream_after)
            return
        if fault.end_stream_after is not None:
            reply = self._server._default_reply(self._request)
            streaming = self._request.stream
            await self._reply(wire, reply, malformed=not streaming, end=fault.end_stream_after)
            return
        headers = self._vendor_headers()
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        if isinstance(fault.body, str):
            headers["content-type"] = "text/plain; charset=utf-8"
            await wire.respond(fault.status, headers, fault.body.encode())
            return
        body = fault.body
        if body is None:
            body = error_body(self._request.vendor, fault.status)
            if self._request.vendor == "anthropic":
                body["request_id"] = headers["request-id"]
            if self._request.vendor == "gemini" and fault.retry_after is not None:
                retry = {"retryDelay": f"{fault.retry_after:g}s"}
                body["error"]["details"] = [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", **retry}
                ]
        headers["content-type"] = "application/json"
        await wire.respond(fault.status, headers, json.dumps(body).encode())

    async def _reply(
        self,
        wire: _Wire,
        reply: Reply,
        *,
        malformed: bool = False,
        drop: int | None = None,
        end: int | None = None,
    ) -> None:
        render = _Render(self._request, reply, self._server._next_id())
        headers = self._vendor_headers()
        if not self._request.stream:
            await wire.pause(reply.ttft_delay_s + reply.delay_s)
            data = json.dumps(render.body()).encode()
            if malformed:
                data = data[: len(data) // 2]
            headers["content-type"] = "application/json"
            if drop is None:
                await wire.respond(200, headers, data)
                return
            await wire.start(200, {**headers, "content-length": str(len(data))})
            await wire.write(data[: len(data) // 2])
            await wire.hang_up(reset=False)
            return
        plan = render.plan()
        await wire.start(200, {**headers, "content-type": plan.content_type})
        if malformed:
            await wire.finish(plan.encode(0, truncate=True))
            return
        deltas = [i for i, frame in enumerate(plan.frames) if frame.delta]
        last_delta = deltas[-1] if deltas else -1
        gap = reply.delay_s / len(deltas) if deltas else 0.0
        sent = 0
        for index, frame in enumerate(plan.frames):
            if drop is not None and sent >= drop and (frame.delta or index > last_delta):
                await wire.hang_up(reset=False)
                return
            if end is not None and sent >= end and (frame.delta or index > last_delta):
                await wire.finish(plan.trailer)
                return
            pause = 0.0
            if frame.delta:
                pause = reply.ttft_delay_s if sent == 0 else gap
                sent += 1
            elif index == last_delta + 1:
                pause = gap if deltas else reply.ttft_delay_s + reply.delay_s
            await wire.pause(pause)
            await wire.write(plan.encode(index))
        await wire.finish(plan.trailer)


# ---------------------------------------------------------------------------------------------


class ProviderServer:
    """The fake vendors on one loopback port. Use as `with ProviderServer() as server:`.

    Thread-safe towards the test: scripting, recording and counters sit behind one lock, while
    the handlers run on uvicorn's own event loop and never block it (delays are asyncio.sleep).
    """

    def __init__(
        self, *, latency_s: float = 0.0, default: Responder | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.latency_s = latency_s  # added before every answer, e.g. for throughput benchmarks
        self.default: Responder = default or echo_reply
        self._initial = (self.latency_s, self.default)  # what reset() puts back
        self.host = host
        self._lock = threading.Lock()
        self._queue: deque[Reply | Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._in_flight = 0
        self._peak_in_flight = 0
        self._hold_until: int | None = None  # answers wait until this many are in flight
        self._held = False  # ... and once that many were, the hold is over
        self._abandoned = 0
        self._wires: set[_Wire] = set()  # touched on the server's loop only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.app = Starlette(routes=self._routes())

    # Lifecycle --------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> ProviderServer:
        """Serve in a background thread; return once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("ProviderServer is already started")
        self._stopping = False
        # proto must say TCP: asyncio only turns Nagle off (TCP_NODELAY) on sockets that do, and
        # with Nagle on, every answer waits out the client's 40 ms delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # leave the test's logging setup alone
            log_level=None,
            access_log=False,
            loop="asyncio",
            http=_TransportInScope,
            backlog=2048,
            # uvicorn's 5 s default lets a pooled connection that a busy client left idle close
            # just as the client reuses it: a spurious ReadError under load. stop() closes them.
            timeout_keep_alive=120,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="provider-server", daemon=True
        )
        self._uvicorn, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("ProviderServer did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit (it closes idle keep-alive connections) and join its thread."""
        server, thread = self._uvicorn, self._thread
        if server is None or thread is None:
            return
        self._stopping = True  # answers that start from now on are abandoned at once
        loop = self._loop
        if loop is not None:  # end answers still being played, or uvicorn waits for them
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._abandon_all)
        server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout_s)
        self._uvicorn = self._thread = self._loop = None

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None or self._thread is None:
            raise RuntimeError("ProviderServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:41234."""
        return f"http://{self.host}:{self.port}"

    # Scripting and recording ------------------------------------------------------------
    def script(self, *items: Reply | Fault) -> None:
        """Queue answers; any route takes the next one, in request arrival order."""
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"script() takes Reply or Fault, not {type(item).__name__}")
        with self._lock:
            self._queue.extend(items)

    @property
    def pending(self) -> int:
        """Scripted items not consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, vendor: Vendor) -> list[RecordedRequest]:
        return [r for r in self.requests if r.vendor == vendor]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """Most answers being played at once since start or clear(): proves client concurrency."""
        with self._lock:
            return self._peak_in_flight

    @property
    def abandoned(self) -> int:
        """Answers that stop() cut short (not the client leaving), since start."""
        with self._lock:
            return self._abandoned

    def hold(self, count: int | None) -> None:
        """Answers wait until `count` requests are in flight at once, then all go (None: no
        hold). Concurrency proven by a count, not by how long a batch took: a client that
        sends fewer at once leaves them waiting, until it gives up (its own timeout)."""
        with self._lock:
            self._hold_until, self._held = count, False

    def clear(self) -> None:
        """Forget recorded requests, unconsumed script items and the concurrency peak."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self._peak_in_flight = self._in_flight

    def reset(self) -> None:
        """As constructed: clear(), no hold, and the constructor's latency and default
        responder, whatever a test set them to (the fixtures call it around each test)."""
        self.clear()
        self.hold(None)
        self.latency_s, self.default = self._initial

    # Internals (called on the server's event loop) --------------------------------------
    def _routes(self) -> list[Route]:
        routes = [
            Route("/v1/chat/completions", self._endpoint("openai"), methods=["POST"]),
            Route("/v1/messages", self._endpoint("anthropic"), methods=["POST"]),
            Route("/api/chat", self._endpoint("ollama"), methods=["POST"]),
        ]
        for version in ("v1", "v1beta", "v1alpha"):
            path = f"/{version}/models/{{target:path}}"
            routes.append(Route(path, self._endpoint("gemini"), methods=["POST"]))
        return routes

    def _endpoint(self, vendor: Vendor) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._accept(vendor, request)

        return endpoint

    async def _accept(self, vendor: Vendor, request: Request) -> Response:
        received_at = time.monotonic()
        raw = await request.body()
        body: JSONDict | None = None
        parsed = True
        if raw:
            try:
                loaded = json.loads(raw)
            except ValueError:
                loaded, parsed = None, False
            body = loaded if isinstance(loaded, dict) else None
        record = RecordedRequest(
            vendor=vendor,
            path=request.url.path,
            method=request.method,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
            received_at=received_at,
        )
        with self._lock:
            self._requests.append(record)
        item: Reply | Fault
        method = record.path.rpartition(":")[2]
        if not parsed:
            item = Fault(400, error_body(vendor, 400, "The request body is not valid JSON."))
        elif vendor == "gemini" and method not in ("generateContent", "streamGenerateContent"):
            item = Fault(404, error_body(vendor, 404, f"Method {method!r} is not faked."))
        else:
            item = self._next_item(record)
        return _Exchange(self, record, item)

    def _next_item(self, record: RecordedRequest) -> Reply | Fault:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        try:
            return self.default(record)
        except Exception as exc:  # surface a broken responder to the test, not a hang
            message = f"fake provider: default responder raised {exc!r}"
            return Fault(500, error_body(record.vendor, 500, message))

    def _default_reply(self, record: RecordedRequest) -> Reply:
        """What a malformed or dropped answer truncates: the default's Reply, else the echo."""
        try:
            answer = self.default(record)
        except Exception:
            answer = echo_reply(record)
        return answer if isinstance(answer, Reply) else echo_reply(record)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    async def _wait_for_company(self, wire: _Wire) -> None:
        """Hold this answer until hold()'s count of requests is in flight."""
        while True:
            with self._lock:
                if self._hold_until is None or self._held:
                    return
                if self._in_flight >= self._hold_until:
                    self._held = True
                    return
            await wire.pause(0.002)

    def _count_abandoned(self) -> None:
        with self._lock:
            self._abandoned += 1

    def _enter(self, wire: _Wire) -> None:
        self._loop = asyncio.get_running_loop()
        self._wires.add(wire)
        if self._stopping:
            wire.abandon()
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def _leave(self, wire: _Wire) -> None:
        self._wires.discard(wire)
        with self._lock:
            self._in_flight -= 1

    def _abandon_all(self) -> None:
        for wire in list(self._wires):
            wire.abandon()

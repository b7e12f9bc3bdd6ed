"""Google Gemini through google-genai: generate_content with a system instruction.

A prompt or answer blocked by safety filters, or an empty candidate list, is an error row
(with its token usage), not a crash.

Tools are ``functionDeclarations`` (parameters as JSON schema, ``parametersJsonSchema``) and
``toolConfig.functionCallingConfig`` (AUTO, ANY, NONE, allowed names); an assistant's calls
are ``functionCall`` parts, results ``functionResponse`` parts of a user turn, named by the
function they answer, the results of one assistant turn together in one turn. A call Gemini
gave no id gets one derived from the call (``tool_wire.call_id``), which is never sent back;
an id Gemini gave goes back on the call and on its result, and a call's thought signature
with the call.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, ClassVar

from llmbench.providers.remote import (
    Endpoint,
    MalformedReply,
    RemoteProvider,
    Stopwatch,
    finish_reason,
    is_malformed_reply,
    is_transport_error,
    reading_reply,
    split_system,
)
from llmbench.providers.tool_wire import (
    arguments_object,
    arguments_text,
    call_id,
    result_names,
    unanswerable_results,
    unsendable_arguments,
    vendor_id,
    with_calls,
)
from llmbench.types import Completion, FinishReason, Message, Request, ToolCall

if TYPE_CHECKING:
    from google.genai import Client

    from llmbench.schema import ModelSpec

FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "max_tokens": "length",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "image_safety": "content_filter",
}
BLOCKED = {"safety", "recitation", "blocklist", "prohibited_content", "spii", "image_safety"}


def _response(content: str) -> dict[str, Any]:
    """A tool's result as a function response: a JSON object as it is, anything else as its
    ``output`` (the key the API reads a function's output from)."""
    try:
        value = json.loads(content)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"output": content}


def _contents(messages: list[Message]) -> list[Any]:
    """The conversation as Gemini contents; consecutive tool results are one user turn."""
    from google.genai import types

    contents: list[types.Content] = []
    for message, name in zip(messages, result_names(messages), strict=True):
        if message.role == "tool":
            response = types.FunctionResponse(
                id=vendor_id(message.tool_call_id), name=name, response=_response(message.content)
            )
            part = types.Part(function_response=response)
            last = contents[-1] if contents else None
            if last is not None and last.parts and last.parts[-1].function_response is not None:
                last.parts.append(part)
            else:
                contents.append(types.Content(role="user", parts=[part]))
            continue
        parts = (
            [types.Part(text=message.content)] if message.content or not message.tool_calls else []
        )
        for call in message.tool_calls:
            signature = base64.b64decode(call.signature) if call.signature else None
            function_call = types.FunctionCall(
                id=vendor_id(call.id), name=call.name, args=arguments_object(call)
            )
            parts.append(types.Part(function_call=function_call, thought_signature=signature))
        role = "model" if message.role == "assistant" else "user"
        contents.append(types.Content(role=role, parts=parts))
    return contents


def _tool_config(choice: str | None) -> Any:
    from google.genai import types

    if choice is None:
        return None
    mode = types.FunctionCallingConfigMode
    modes = {"auto": mode.AUTO, "none": mode.NONE, "required": mode.ANY}
    calling = (
        types.FunctionCallingConfig(mode=modes[choice])
        if choice in modes
        else types.FunctionCallingConfig(mode=mode.ANY, allowed_function_names=[choice])
    )
    return types.ToolConfig(function_calling_config=calling)


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value)).lower()


class GeminiProvider(RemoteProvider):
    name: ClassVar[str] = "gemini"
    endpoint: ClassVar[Endpoint] = Endpoint(
        None, ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "GEMINI_BASE_URL"
    )
    honours_response_schema = True  # responseJsonSchema
    honours_tools = True  # functionDeclarations / functionCall / functionResponse

    @classmethod
    def resolve_base_url(cls, spec: ModelSpec) -> str | None:
        return super().resolve_base_url(spec) or "https://generativelanguage.googleapis.com"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        from google import genai
        from google.genai import types

        self.client: Client = genai.Client(
            api_key=self.api_key,
            http_options=types.HttpOptions(
                base_url=self.base_url,
                timeout=int(self.options.timeout_s * 1000),
                # google-genai retries connection errors by itself unless told not to;
                # llmbench keeps one retry layer.
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def request(self, request: Request) -> dict[str, Any]:
        """generate_content's arguments for ``request``."""
        from google.genai import types

        params, schema = request.params, request.response_schema
        system, rest = split_system(request.messages)
        contents = _contents(rest)
        tools: list[Any] | None = None
        if request.tools:
            declarations = [
                types.FunctionDeclaration(
                    name=t.name,
                    description=t.description or None,
                    parameters_json_schema=t.parameters,
                )
                for t in request.tools
            ]
            tools = [types.Tool(function_declarations=declarations)]
        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=params.temperature,
            top_p=params.top_p,
            max_output_tokens=params.max_tokens,
            stop_sequences=list(params.stop) or None,
            seed=params.seed,
            response_mime_type="application/json"
            if self.options.json_mode or schema is not None
            else None,
            response_json_schema=schema,
            tools=tools,
            tool_config=_tool_config(request.tool_choice) if tools else None,
        )
        return {"model": self.spec.model, "contents": contents, "config": config}

    def unsupported(self, request: Request) -> str | None:
        return (
            super().unsupported(request)
            or unsendable_arguments(request, "Gemini")
            or unanswerable_results(request, "Gemini")
        )

    async def generate(self, request: Request) -> Completion:
        body = self.request(request)
        clock = Stopwatch()
        if not self.spec.stream:
            response = await self.client.aio.models.generate_content(**body)
            with reading_reply("the reply"):
                return self._completion([response], clock.elapsed, None)
        chunks = []
        with reading_reply("the stream"):
            async for chunk in await self.client.aio.models.generate_content_stream(**body):
                if _text(chunk) or _function_calls(chunk):
                    clock.token()
                chunks.append(chunk)
            return self._completion(chunks, clock.elapsed, clock.first_token)

    def _completion(self, chunks: list[Any], latency: float, ttft: float | None) -> Completion:
        text = "".join(_text(c) for c in chunks)
        last = chunks[-1] if chunks else None
        usage = next((c.usage_metadata for c in reversed(chunks) if c.usage_metadata), None)
        candidates = [cand for c in chunks for cand in (c.candidates or [])]
        finish = next(
            (_enum_name(cand.finish_reason) for cand in reversed(candidates) if cand.finish_reason),
            None,
        )
        feedback = getattr(last, "prompt_feedback", None)
        block = _enum_name(getattr(feedback, "block_reason", None))
        if candidates and finish is None and not block:
            # The API sets finishReason once a candidate is done; without it the answer was
            # cut short (a stream that ended early), not finished.
            raise MalformedReply("the reply ended before its finish reason (cut short)")
        error = None
        if block:
            error = f"blocked: prompt blocked by the provider ({block})"
        elif finish in BLOCKED:
            error = f"blocked: answer stopped by the provider's filter ({finish})"
        elif not candidates:
            error = "empty response: no candidates"
        thoughts = getattr(usage, "thoughts_token_count", None) or 0
        calls = _calls([call for c in chunks for call in _function_calls(c)])
        finish_as = "content_filter" if block else finish_reason(finish, FINISH)
        return Completion(
            text=text,
            input_tokens=getattr(usage, "prompt_token_count", None) or 0,
            output_tokens=(getattr(usage, "candidates_token_count", None) or 0) + thoughts,
            cached_tokens=getattr(usage, "cached_content_token_count", None) or 0,
            reasoning_tokens=thoughts,
            latency_s=latency,
            ttft_s=ttft,
            finish_reason=with_calls(finish_as, calls),
            model_version=getattr(last, "model_version", None) or self.spec.model,
            error=error,
            tool_calls=calls,
        )

    def retryable(self, error: BaseException) -> bool:
        from google.genai import errors
        from pydantic import ValidationError

        if isinstance(error, errors.ServerError):
            return True
        if isinstance(error, errors.ClientError):
            return error.code in (408, 429)
        if isinstance(error, errors.UnknownApiResponseError):
            return True  # a stream event that is not JSON (cut short)
        if isinstance(error, ValidationError) and error.title == "GenerateContentResponse":
            return True  # the SDK validates a reply: this one is not the API's shape
        return is_transport_error(error) or is_malformed_reply(error)

    async def aclose(self) -> None:
        await self.client.aio.aclose()


def _text(chunk: Any) -> str:
    parts = []
    for candidate in chunk.candidates or []:
        content = candidate.content
        for part in content.parts if content and content.parts else []:
            if part.text and not getattr(part, "thought", False):
                parts.append(part.text)
    return "".join(parts)


def _function_calls(chunk: Any) -> list[Any]:
    """The chunk's function-call parts, in order (a stream sends each call whole)."""
    return [
        part
        for candidate in chunk.candidates or []
        if candidate.content and candidate.content.parts
        for part in candidate.content.parts
        if part.function_call is not None
    ]


def _calls(parts: list[Any]) -> tuple[ToolCall, ...]:
    calls = []
    for index, part in enumerate(parts):
        call = part.function_call
        name, arguments = call.name or "", arguments_text(call.args)
        signature = part.thought_signature
        calls.append(
            ToolCall(
                id=call.id or call_id(index, name, arguments),
                name=name,
                arguments=arguments,
                signature=base64.b64encode(signature).decode() if signature else None,
            )
        )
    return tuple(calls)

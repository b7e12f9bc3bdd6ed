"""Ollama's /api/chat through ollama.AsyncClient; host from the model or OLLAMA_HOST.

Tools are ``{type: function, function: {name, description, parameters}}`` (Ollama keeps of
each parameter its type, items, description and enum); an assistant's calls are its
``tool_calls`` with arguments as an object, a result a ``tool`` turn naming the function it
answers (``tool_name``). Ollama gives calls no ids, so they are derived from the call
(``tool_wire.call_id``). It has no tool choice: "auto" is its only way, "none" offers no
tools, and a request that must call ("required", a named tool) is refused.
"""

from __future__ import annotations

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
)
from llmbench.providers.tool_wire import (
    arguments_object,
    arguments_text,
    call_id,
    result_names,
    unanswerable_results,
    unsendable_arguments,
    with_calls,
)
from llmbench.types import Completion, FinishReason, Message, Request, ToolCall

if TYPE_CHECKING:
    from ollama import AsyncClient

    from llmbench.schema import ModelSpec

FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "load": "other"}


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message, name in zip(messages, result_names(messages), strict=True):
        turn: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            turn["tool_calls"] = [
                {"function": {"name": call.name, "arguments": arguments_object(call)}}
                for call in message.tool_calls
            ]
        if message.role == "tool":
            turn["tool_name"] = name
        out.append(turn)
    return out


def _calls(raw: list[Any]) -> tuple[ToolCall, ...]:
    calls = []
    for index, call in enumerate(raw):
        name = call.function.name
        arguments = arguments_text(call.function.arguments)
        given = getattr(call, "id", None)  # newer servers may name their calls
        calls.append(
            ToolCall(id=given or call_id(index, name, arguments), name=name, arguments=arguments)
        )
    return tuple(calls)


class OllamaProvider(RemoteProvider):
    name: ClassVar[str] = "ollama"
    endpoint: ClassVar[Endpoint] = Endpoint(
        "http://127.0.0.1:11434", (), "OLLAMA_HOST", key_required=False
    )
    honours_response_schema = True  # format: a JSON schema
    honours_tools = True  # tools / tool_calls / tool turns; no tool choice

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        from ollama import AsyncClient

        self.client: AsyncClient = AsyncClient(host=self.base_url, timeout=self.options.timeout_s)

    def request(self, request: Request) -> dict[str, Any]:
        """/api/chat's arguments for ``request``."""
        params = request.params
        options: dict[str, Any] = {
            "temperature": params.temperature,
            "num_predict": params.max_tokens,
        }
        if params.top_p is not None:
            options["top_p"] = params.top_p
        if params.stop:
            options["stop"] = list(params.stop)
        if params.seed is not None:
            options["seed"] = params.seed
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": _messages(request.messages),
            "options": options,
        }
        if request.tools and request.tool_choice != "none":
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "parameters": t.parameters}
                    | ({"description": t.description} if t.description else {}),
                }
                for t in request.tools
            ]
        if request.response_schema is not None:
            body["format"] = request.response_schema  # structured outputs: a JSON schema
        elif self.options.json_mode:
            body["format"] = "json"
        return body

    def unsupported(self, request: Request) -> str | None:
        refusal = super().unsupported(request)
        if refusal is None and request.tools and request.tool_choice not in (None, "auto", "none"):
            refusal = (
                f"{self.spec.name} ({self.name}): Ollama has no tool choice, so it cannot be "
                f"made to call ({request.tool_choice!r}); leave tool_choice unset or auto"
            )
        return (
            refusal
            or unsendable_arguments(request, "Ollama")
            or unanswerable_results(request, "Ollama")
        )

    async def generate(self, request: Request) -> Completion:
        body = self.request(request)
        clock = Stopwatch()
        if not self.spec.stream:
            response = await self.client.chat(**body, stream=False)
            with reading_reply("the reply"):
                return self._completion(
                    response.message.content or "",
                    response.message.thinking,
                    _calls(list(response.message.tool_calls or ())),
                    response,
                    clock.elapsed,
                    None,
                )
        text: list[str] = []
        thinking: list[str] = []
        called: list[Any] = []
        final: Any = None
        with reading_reply("the stream"):
            async for part in await self.client.chat(**body, stream=True):
                called.extend(part.message.tool_calls or ())
                if part.message.content or part.message.thinking or part.message.tool_calls:
                    clock.token()
                text.append(part.message.content or "")
                thinking.append(part.message.thinking or "")
                if part.done:
                    final = part
            if final is None:
                raise MalformedReply("the stream ended before its final message (cut short)")
            return self._completion(
                "".join(text),
                "".join(thinking) or None,
                _calls(called),
                final,
                clock.elapsed,
                clock.first_token,
            )

    def _completion(
        self,
        text: str,
        thinking: str | None,
        calls: tuple[ToolCall, ...],
        final: Any,
        latency: float,
        ttft: float | None,
    ) -> Completion:
        return Completion(
            text=text,
            reasoning=thinking or None,
            input_tokens=final.prompt_eval_count or 0,
            output_tokens=final.eval_count or 0,
            latency_s=latency,
            ttft_s=ttft,
            finish_reason=with_calls(finish_reason(final.done_reason, FINISH), calls),
            model_version=final.model or self.spec.model,
            tool_calls=calls,
        )

    def retryable(self, error: BaseException) -> bool:
        from ollama import ResponseError
        from pydantic import ValidationError

        if isinstance(error, ResponseError):
            return error.status_code in (408, 429) or error.status_code >= 500
        if isinstance(error, ValidationError) and error.title == "ChatResponse":
            return True  # the SDK validates a reply: this one is not the API's shape
        return is_transport_error(error) or is_malformed_reply(error)

    async def aclose(self) -> None:
        await self.client.close()  # type: ignore[no-untyped-call]

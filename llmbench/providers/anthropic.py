"""Anthropic Messages API: system prompt as the top-level field, max_tokens required,
usage including prompt-cache reads and writes.

Tools are ``{name, description, input_schema}``; an assistant's calls are ``tool_use``
content blocks (arguments as an object), and results are ``tool_result`` blocks of a user
turn, the results of one assistant turn together in one user turn as the API asks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from llmbench.providers.remote import (
    Endpoint,
    MalformedReply,
    RemoteProvider,
    SDKOptions,
    Stopwatch,
    finish_reason,
    is_malformed_reply,
    is_transport_error,
    reading_reply,
    sampling,
    sdk_http_client,
    split_system,
)
from llmbench.providers.tool_wire import (
    arguments_object,
    arguments_text,
    unsendable_arguments,
    with_calls,
)
from llmbench.types import Completion, FinishReason, Message, Request, ToolCall

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from llmbench.schema import ModelSpec

FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}


def _blocks(message: Message) -> list[dict[str, Any]]:
    """A turn that is part of a tool exchange as content blocks."""
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        return [{**result, "content": message.content}]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        use = {"type": "tool_use", "id": call.id, "name": call.name}
        blocks.append({**use, "input": arguments_object(call)})
    return blocks


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation in the Messages API's shape. A plain turn is role and text, as
    always; tool results become user turns, and a result joins the user turn before it (the
    results of parallel calls, and the user's words after them, are one user turn)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "user" if message.role == "tool" else message.role
        if message.role != "tool" and not message.tool_calls:
            joins = role == "user" and out and isinstance(out[-1]["content"], list)
            if not joins:
                out.append({"role": role, "content": message.content})
                continue
        blocks = _blocks(message)
        previous = out[-1] if out else None
        if previous is not None and previous["role"] == role == "user":
            if isinstance(previous["content"], str):
                previous["content"] = [{"type": "text", "text": previous["content"]}]
            previous["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _tool_choice(choice: str) -> dict[str, Any]:
    kinds = {"auto": "auto", "none": "none", "required": "any"}
    return {"type": kinds[choice]} if choice in kinds else {"type": "tool", "name": choice}


class AnthropicProvider(RemoteProvider):
    name: ClassVar[str] = "anthropic"
    endpoint: ClassVar[Endpoint] = Endpoint(None, ("ANTHROPIC_API_KEY",), "ANTHROPIC_BASE_URL")
    # The Messages API has no seed; asking for one is a config error, not a silent no-op.
    unsupported_params: ClassVar[frozenset[str]] = frozenset({"seed"})
    supports_json_mode: ClassVar[bool] = False
    cache_write_markup: ClassVar[float | None] = 1.25  # 5-minute cache writes: 1.25x input
    options_model = SDKOptions
    honours_tools = True  # tools / tool_choice / tool_use and tool_result blocks

    @classmethod
    def resolve_base_url(cls, spec: ModelSpec) -> str | None:
        return super().resolve_base_url(spec) or "https://api.anthropic.com"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        from anthropic import AsyncAnthropic

        assert isinstance(self.options, SDKOptions)
        self.client: AsyncAnthropic = AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.options.timeout_s,
            http_client=sdk_http_client("anthropic", self.options, spec.name),
        )

    def request(self, request: Request) -> dict[str, Any]:
        """The Messages API body of ``request``."""
        params = request.params
        system, rest = split_system(request.messages)
        body: dict[str, Any] = {
            "model": self.spec.model,
            "max_tokens": params.max_tokens,
            "messages": _messages(rest),
            # This SDK generation dropped temperature/top_p from create()'s arguments; the
            # Messages API still takes them in the body for the models that support them.
            "extra_body": sampling(params),
        }
        if system:
            body["system"] = system
        if params.stop:
            body["stop_sequences"] = list(params.stop)
        if request.tools:
            body["tools"] = [
                {"name": t.name, "input_schema": t.parameters}
                | ({"description": t.description} if t.description else {})
                for t in request.tools
            ]
            if request.tool_choice is not None:
                body["tool_choice"] = _tool_choice(request.tool_choice)
        return body

    def unsupported(self, request: Request) -> str | None:
        return super().unsupported(request) or unsendable_arguments(request, "Anthropic")

    async def generate(self, request: Request) -> Completion:
        body = self.request(request)
        clock = Stopwatch()
        if self.spec.stream:
            return await self._stream(body, clock)
        response = await self.client.messages.create(**body)
        with reading_reply("the reply"):
            text = "".join(block.text for block in response.content if block.type == "text")
            calls = tuple(
                ToolCall(id=block.id, name=block.name, arguments=arguments_text(block.input))
                for block in response.content
                if block.type == "tool_use"
            )
            return self._completion(
                text,
                calls,
                response.stop_reason,
                response.usage,
                response.model,
                clock.elapsed,
                None,
            )

    async def _stream(self, body: dict[str, Any], clock: Stopwatch) -> Completion:
        stream = await self.client.messages.create(**body, stream=True)
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}  # content block index -> id, name, JSON pieces
        usage: Any = None
        stop: str | None = None
        model = self.spec.model
        finished = False
        with reading_reply("the stream"):
            async for event in stream:
                if event.type == "message_start":
                    usage = event.message.usage
                    model = event.message.model
                elif event.type == "content_block_start" and (
                    event.content_block.type == "tool_use"
                ):
                    block = event.content_block
                    calls[event.index] = {"id": block.id, "name": block.name, "json": []}
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    clock.token()
                    text.append(event.delta.text)
                elif event.type == "content_block_delta" and (
                    event.delta.type == "input_json_delta"
                ):
                    clock.token()
                    calls[event.index]["json"].append(event.delta.partial_json)
                elif event.type == "message_delta":
                    stop = event.delta.stop_reason
                    if usage is not None:
                        usage.output_tokens = event.usage.output_tokens
                elif event.type == "message_stop":
                    finished = True
            if usage is None or not finished:
                raise MalformedReply("the stream ended before message_stop (cut short)")
            return self._completion(
                "".join(text),
                tuple(_streamed_call(calls[index]) for index in sorted(calls)),
                stop,
                usage,
                model,
                clock.elapsed,
                clock.first_token,
            )

    def _completion(
        self,
        text: str,
        calls: tuple[ToolCall, ...],
        stop: str | None,
        usage: Any,
        model: str,
        latency: float,
        ttft: float | None,
    ) -> Completion:
        cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
        cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
        return Completion(
            text=text,
            input_tokens=usage.input_tokens + cache_read + cache_write,
            output_tokens=usage.output_tokens,
            cached_tokens=cache_read,
            cache_write_tokens=cache_write,
            latency_s=latency,
            ttft_s=ttft,
            finish_reason=with_calls(finish_reason(stop, FINISH), calls),
            model_version=model,
            tool_calls=calls,
        )

    def retryable(self, error: BaseException) -> bool:
        import anthropic

        if isinstance(error, (anthropic.RateLimitError, anthropic.APIConnectionError)):
            return True
        if isinstance(error, anthropic.APIStatusError):
            return error.status_code >= 500  # 529 overloaded included
        # A stream cut mid-answer: anthropic 2.17 wraps it in APIConnectionError, earlier 2.x
        # releases let httpx2's own error escape; both are retried, whichever the installed SDK
        # raises (tests/integration/test_providers.py::test_a_cut_connection_*). A 200 cut short
        # or not JSON raises json's own error (the SDK does not wrap it).
        return is_transport_error(error) or is_malformed_reply(error)

    async def aclose(self) -> None:
        await self.client.close()


def _streamed_call(call: dict[str, Any]) -> ToolCall:
    """A call put together from its ``input_json_delta`` pieces, kept as streamed (JSON or
    not); a call with no arguments streams no piece, or an empty one: ``{}``."""
    arguments = "".join(call["json"])
    return ToolCall(id=call["id"], name=call["name"], arguments=arguments or "{}")

"""Anthropic Messages API: system prompt as the top-level field, max_tokens required,
usage including prompt-cache reads and writes."""

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
from llmbench.types import Completion, FinishReason, Request

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


class AnthropicProvider(RemoteProvider):
    name: ClassVar[str] = "anthropic"
    endpoint: ClassVar[Endpoint] = Endpoint(None, ("ANTHROPIC_API_KEY",), "ANTHROPIC_BASE_URL")
    # The Messages API has no seed; asking for one is a config error, not a silent no-op.
    unsupported_params: ClassVar[frozenset[str]] = frozenset({"seed"})
    supports_json_mode: ClassVar[bool] = False
    cache_write_markup: ClassVar[float | None] = 1.25  # 5-minute cache writes: 1.25x input
    options_model = SDKOptions

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
            "messages": [{"role": m.role, "content": m.content} for m in rest],
            # This SDK generation dropped temperature/top_p from create()'s arguments; the
            # Messages API still takes them in the body for the models that support them.
            "extra_body": sampling(params),
        }
        if system:
            body["system"] = system
        if params.stop:
            body["stop_sequences"] = list(params.stop)
        return body

    async def generate(self, request: Request) -> Completion:
        body = self.request(request)
        clock = Stopwatch()
        if self.spec.stream:
            return await self._stream(body, clock)
        response = await self.client.messages.create(**body)
        with reading_reply("the reply"):
            text = "".join(block.text for block in response.content if block.type == "text")
            return self._completion(
                text, response.stop_reason, response.usage, response.model, clock.elapsed, None
            )

    async def _stream(self, body: dict[str, Any], clock: Stopwatch) -> Completion:
        stream = await self.client.messages.create(**body, stream=True)
        text: list[str] = []
        usage: Any = None
        stop: str | None = None
        model = self.spec.model
        finished = False
        with reading_reply("the stream"):
            async for event in stream:
                if event.type == "message_start":
                    usage = event.message.usage
                    model = event.message.model
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    clock.token()
                    text.append(event.delta.text)
                elif event.type == "message_delta":
                    stop = event.delta.stop_reason
                    if usage is not None:
                        usage.output_tokens = event.usage.output_tokens
                elif event.type == "message_stop":
                    finished = True
            if usage is None or not finished:
                raise MalformedReply("the stream ended before message_stop (cut short)")
            return self._completion(
                "".join(text), stop, usage, model, clock.elapsed, clock.first_token
            )

    def _completion(
        self,
        text: str,
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
            finish_reason=finish_reason(stop, FINISH),
            model_version=model,
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

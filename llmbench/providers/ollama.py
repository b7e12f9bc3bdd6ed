"""Ollama's /api/chat through ollama.AsyncClient; host from the model or OLLAMA_HOST."""

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
from llmbench.types import Completion, FinishReason, Request

if TYPE_CHECKING:
    from ollama import AsyncClient

    from llmbench.schema import ModelSpec

FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "load": "other"}


class OllamaProvider(RemoteProvider):
    name: ClassVar[str] = "ollama"
    endpoint: ClassVar[Endpoint] = Endpoint(
        "http://127.0.0.1:11434", (), "OLLAMA_HOST", key_required=False
    )
    honours_response_schema = True  # format: a JSON schema

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
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "options": options,
        }
        if request.response_schema is not None:
            body["format"] = request.response_schema  # structured outputs: a JSON schema
        elif self.options.json_mode:
            body["format"] = "json"
        return body

    async def generate(self, request: Request) -> Completion:
        body = self.request(request)
        clock = Stopwatch()
        if not self.spec.stream:
            response = await self.client.chat(**body, stream=False)
            with reading_reply("the reply"):
                return self._completion(
                    response.message.content or "",
                    response.message.thinking,
                    response,
                    clock.elapsed,
                    None,
                )
        text: list[str] = []
        thinking: list[str] = []
        final: Any = None
        with reading_reply("the stream"):
            async for part in await self.client.chat(**body, stream=True):
                if part.message.content or part.message.thinking:
                    clock.token()
                text.append(part.message.content or "")
                thinking.append(part.message.thinking or "")
                if part.done:
                    final = part
            if final is None:
                raise MalformedReply("the stream ended before its final message (cut short)")
            return self._completion(
                "".join(text), "".join(thinking) or None, final, clock.elapsed, clock.first_token
            )

    def _completion(
        self, text: str, thinking: str | None, final: Any, latency: float, ttft: float | None
    ) -> Completion:
        return Completion(
            text=text,
            reasoning=thinking or None,
            input_tokens=final.prompt_eval_count or 0,
            output_tokens=final.eval_count or 0,
            latency_s=latency,
            ttft_s=ttft,
            finish_reason=finish_reason(final.done_reason, FINISH),
            model_version=final.model or self.spec.model,
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

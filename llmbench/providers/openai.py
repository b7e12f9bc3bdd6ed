"""OpenAI Chat Completions, and the hosts that speak the same API.

Presets give each OpenAI-compatible host its endpoint and key variable: DeepSeek (V3 is
``deepseek-chat``, R1 ``deepseek-reasoner``, whose reasoning is kept apart from the answer),
Groq, xAI, Together, OpenRouter; ``openai_compatible`` takes any ``base_url`` (vLLM, the
llama.cpp server, LM Studio). Reasoning models (o1/o3/o4, gpt-5) get
``max_completion_tokens`` and no sampling parameters; their reasoning tokens are counted.
``mode: completion`` sends a base model the conversation as one plain prompt
(``completion_prompt``) to ``/completions``, which such servers also serve. An unstreamed
reply from llama.cpp's server still gets a time to first token, from its ``timings``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from llmbench.providers.base import completion_prompt
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
)
from llmbench.providers.tool_wire import arguments_text, call_id, uses_tools, with_calls
from llmbench.types import Completion, FinishReason, Message, Request, Tool, ToolCall

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream

    from llmbench.schema import ModelSpec

FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class OpenAIOptions(SDKOptions):
    reasoning: bool | None = Field(
        default=None, description="treat as a reasoning model (default: by model id)"
    )
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="fields a compatible server takes beyond the OpenAI API "
        "(e.g. llama.cpp's repeat_penalty, vLLM's top_k)",
    )


def is_reasoning_model(model: str) -> bool:
    return model.split("/")[-1].startswith(REASONING_PREFIXES)


# What chat.completions.create sends besides the body: bearer auth (the SDK adds the
# headers, timeout and retry settings of the client).
_POST_OPTIONS: Any = {"security": {"bearer_auth": True}}


def _message(message: Message) -> dict[str, Any]:
    """One turn in Chat Completions' shape: a plain turn as role and content; an assistant
    turn's calls as ``tool_calls`` (arguments as the JSON text they were), a result as a
    ``tool`` turn naming its call."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["content"] = message.content or None  # content is optional beside tool_calls
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _function(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    return function


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _calls(raw: Any) -> tuple[ToolCall, ...]:
    """A reply's ``tool_calls`` (the whole ones, or those a stream put together), in order;
    arguments kept as the model wrote them, JSON or not."""
    calls = []
    for index, call in enumerate(raw or ()):
        function = call.get("function") or {}
        name = function.get("name") or ""
        arguments = function.get("arguments") or "{}"  # no arguments: an empty object
        if not isinstance(arguments, str):  # a compatible server that sends an object
            arguments = arguments_text(arguments)
        calls.append(
            ToolCall(
                id=call.get("id") or call_id(index, name, arguments),
                name=name,
                arguments=arguments,
            )
        )
    return tuple(calls)


def _add_call_delta(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """One streamed piece of a call, joined to the call of its ``index`` as the SDK's own
    stream accumulator joins them (text fields concatenated)."""
    call = calls.setdefault(delta.get("index", len(calls)), {"function": {}})
    if delta.get("id"):
        call["id"] = call.get("id", "") + delta["id"]
    function = call["function"]
    for field in ("name", "arguments"):
        piece = (delta.get("function") or {}).get(field)
        if piece:
            function[field] = function.get(field, "") + piece


def _payload(body: dict[str, Any]) -> bytes:
    """The request's JSON, serialised once, as the SDK would (``extra_body`` merged last)."""
    extra = body.pop("extra_body", None)
    if extra:
        body = {**body, **extra}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def server_ttft(response: dict[str, Any], latency: float) -> float | None:
    """The time to first token of an unstreamed reply that carries llama.cpp's ``timings``
    (llama-server's extension): its wall latency less ``predicted_ms``, the time the server
    spent on the tokens after the first (0 for a one-token answer). Measured against a
    stream on the same server, it is the streamed figure without the cost of streaming;
    a reply without timings (any other server): None, as before."""
    timings = response.get("timings")
    predicted_ms = timings.get("predicted_ms") if isinstance(timings, dict) else None
    if not isinstance(predicted_ms, int | float) or isinstance(predicted_ms, bool):
        return None
    return min(latency, max(0.0, latency - predicted_ms / 1000))


class OpenAIProvider(RemoteProvider):
    name: ClassVar[str] = "openai"
    endpoint: ClassVar[Endpoint] = Endpoint(
        "https://api.openai.com/v1", ("OPENAI_API_KEY",), "OPENAI_BASE_URL"
    )
    options_model = OpenAIOptions
    honours_response_schema = True  # response_format json_schema (Structured Outputs)
    honours_tools = True  # tools / tool_choice / tool_calls / tool turns (chat mode)

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        from openai import AsyncOpenAI

        assert isinstance(self.options, OpenAIOptions)
        self.openai_options = self.options
        self.reasoning = (
            self.openai_options.reasoning
            if self.openai_options.reasoning is not None
            else is_reasoning_model(spec.model)
        )

        # Chat: messages to /chat/completions; completion: one prompt to /completions.
        self.completion_mode = spec.mode == "completion"
        self.path = "/completions" if self.completion_mode else "/chat/completions"
        self.client: AsyncOpenAI = AsyncOpenAI(
            api_key=self.api_key or "not-needed",
            base_url=self.base_url,
            max_retries=0,  # one retry layer: llmbench's own
            timeout=self.options.timeout_s,
            http_client=sdk_http_client("openai", self.openai_options, spec.name),
        )

    def request(self, request: Request) -> dict[str, Any]:
        """The Chat Completions (or, in completion mode, Completions) body of ``request``."""
        options, params = self.openai_options, request.params
        body: dict[str, Any] = {"model": self.spec.model}
        if self.completion_mode:
            body["prompt"] = completion_prompt(request.messages)
        else:
            body["messages"] = [_message(m) for m in request.messages]
            if request.tools:
                body["tools"] = [
                    {"type": "function", "function": _function(t)} for t in request.tools
                ]
                if request.tool_choice is not None:
                    body["tool_choice"] = _tool_choice(request.tool_choice)
        if self.reasoning:
            body["max_completion_tokens"] = params.max_tokens
            if options.reasoning_effort:
                body["reasoning_effort"] = options.reasoning_effort
        else:
            body["max_tokens"] = params.max_tokens
            body.update(sampling(params))
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.response_schema},
            }
        elif options.json_mode:
            body["response_format"] = {"type": "json_object"}
        if options.extra_body:
            body["extra_body"] = dict(options.extra_body)
        return body

    def unsupported(self, request: Request) -> str | None:
        if self.completion_mode and uses_tools(request):
            return (
                f"{self.spec.name} ({self.name}) is in completion mode: a plain prompt "
                "cannot carry tools or tool turns (use mode: chat)"
            )
        return super().unsupported(request)

    async def generate(self, request: Request) -> Completion:
        try:
            return await self._generate(request)
        except Exception as error:
            renamed = (
                _connection_error(error) if self.openai_options.http_client == "aiohttp" else None
            )
            if renamed is None:
                raise
            raise renamed from error.__cause__

    async def _generate(self, request: Request) -> Completion:
        body = self.request(request)
        clock = Stopwatch()
        if self.spec.stream:
            return await self._stream(body, clock)
        # The SDK's own request path (client.post: its headers, auth, timeouts, transport and
        # error classes), with the JSON body serialised once and the reply read as plain JSON
        # instead of typed response objects: about a third less client CPU per request.
        raw: bytes = await self.client.post(
            self.path, cast_to=bytes, content=_payload(body), options=_POST_OPTIONS
        )
        latency = clock.elapsed
        response = json.loads(raw)  # a truncated body: JSONDecodeError, retried
        with reading_reply("the reply"):
            choice = response["choices"][0]
            message = choice if self.completion_mode else (choice.get("message") or {})
            return self._completion(
                text=message.get("text" if self.completion_mode else "content") or "",
                reasoning=message.get("reasoning_content"),
                calls=_calls(message.get("tool_calls")),
                finish=choice.get("finish_reason"),
                usage=response.get("usage"),
                model=response.get("model") or self.spec.model,
                latency=latency,
                ttft=server_ttft(response, latency),
            )

    async def _stream(self, body: dict[str, Any], clock: Stopwatch) -> Completion:
        from openai import AsyncStream

        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        # The SDK's SSE stream (its decoder, its mid-stream error events), chunks as dicts.
        stream: AsyncStream[dict[str, Any]] = await self.client.post(
            self.path,
            cast_to=object,
            content=_payload(body),
            options=_POST_OPTIONS,
            stream=True,
            stream_cls=AsyncStream[dict[str, Any]],
        )
        text: list[str] = []
        reasoning: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        usage: Any = None
        model = self.spec.model
        with reading_reply("the stream"):
            async for chunk in stream:
                model = chunk.get("model") or model
                if chunk.get("usage") is not None:
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    delta = choice if self.completion_mode else (choice.get("delta") or {})
                    piece = delta.get("text" if self.completion_mode else "content") or ""
                    thought = delta.get("reasoning_content") or ""
                    called = delta.get("tool_calls") or ()
                    for call in called:
                        _add_call_delta(calls, call)
                    if piece or thought or called:
                        clock.token()
                    text.append(piece)
                    reasoning.append(thought)
                    finish = choice.get("finish_reason") or finish
            if usage is None:
                raise MalformedReply("the stream ended without its usage event (cut short)")
            return self._completion(
                text="".join(text),
                reasoning="".join(reasoning) or None,
                calls=_calls(calls[index] for index in sorted(calls)),
                finish=finish,
                usage=usage,
                model=model,
                latency=clock.elapsed,
                ttft=clock.first_token,
            )

    def _completion(
        self,
        *,
        text: str,
        reasoning: str | None,
        calls: tuple[ToolCall, ...],
        finish: str | None,
        usage: dict[str, Any] | None,
        model: str,
        latency: float,
        ttft: float | None,
    ) -> Completion:
        usage = usage or {}
        details = usage.get("completion_tokens_details") or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        cached = prompt_details.get("cached_tokens") or usage.get(
            "prompt_cache_hit_tokens"  # DeepSeek's name for prompt-cache hits
        )
        return Completion(
            text=text,
            reasoning=reasoning,
            input_tokens=usage.get("prompt_tokens") or 0,
            output_tokens=usage.get("completion_tokens") or 0,
            cached_tokens=int(cached or 0),
            reasoning_tokens=int(details.get("reasoning_tokens") or 0),
            latency_s=latency,
            ttft_s=ttft,
            finish_reason=with_calls(finish_reason(finish, FINISH), calls),
            model_version=model,
            tool_calls=calls,
        )

    def retryable(self, error: BaseException) -> bool:
        import openai

        if isinstance(error, (openai.RateLimitError, openai.APIConnectionError)):
            return True  # APITimeoutError is an APIConnectionError
        if isinstance(error, openai.APIStatusError):
            return error.status_code >= 500
        # A stream cut mid-answer surfaces unwrapped; a 200 cut short or not JSON raises
        # json's own error (the SDK does not wrap it).
        return is_transport_error(error) or is_malformed_reply(error)

    async def aclose(self) -> None:
        await self.client.close()


def _connection_error(error: Exception) -> Exception | None:
    """The openai SDK's vendored aiohttp transport turns every aiohttp connection error (a
    reset, a refused connect) into a connect timeout: the connection error it really was."""
    import openai

    if not isinstance(error, openai.APITimeoutError) or error.__cause__ is None:
        return None
    import aiohttp

    root = error.__cause__.__cause__  # APITimeoutError <- httpx2.ConnectTimeout <- aiohttp's
    if isinstance(root, aiohttp.ClientConnectionError) and not isinstance(root, TimeoutError):
        return openai.APIConnectionError(request=error.request)
    return None


def _preset(
    preset: str, base_url: str | None, key: str, *, key_required: bool = True
) -> type[OpenAIProvider]:
    endpoint = Endpoint(
        base_url,
        (key,) if key else (),
        f"{preset.upper()}_BASE_URL",
        key_required=key_required,
    )
    return type(
        f"{preset.title().replace('_', '')}Provider",
        (OpenAIProvider,),
        {"name": preset, "endpoint": endpoint, "__module__": __name__},
    )


DeepSeekProvider = _preset("deepseek", "https://api.deepseek.com", "DEEPSEEK_API_KEY")
GroqProvider = _preset("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY")
XAIProvider = _preset("xai", "https://api.x.ai/v1", "XAI_API_KEY")
TogetherProvider = _preset("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY")
OpenRouterProvider = _preset("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY")
# Any server that speaks the API (vLLM, llama.cpp's server, LM Studio): base_url required,
# a key only when the model names api_key_env.
OpenAICompatibleProvider = _preset("openai_compatible", None, "", key_required=False)

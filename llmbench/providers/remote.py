"""What every HTTP provider shares: endpoint and key resolution, options, timing, finish
reasons, and which failures are worth sending again (cut connections, malformed replies)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmbench.errors import ConfigError, MissingDependencyError
from llmbench.providers.base import Provider
from llmbench.providers.keys import read_key, variable
from llmbench.types import FinishReason, GenerationParams, Message

if TYPE_CHECKING:
    from llmbench.schema import ModelSpec


class RemoteOptions(BaseModel):
    """Settings every HTTP provider accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=120.0, gt=0, description="per-request timeout")
    json_mode: bool = Field(default=False, description="ask for a JSON object as the answer")


class SDKOptions(RemoteOptions):
    """Settings of the providers whose SDK (openai, anthropic) can swap its HTTP transport."""

    http_client: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp",
        # Why aiohttp: CPU per request bounds a run's requests/s, and benchmarks/throughput.py
        # measures the SDK's aiohttp transport at ~30% less client CPU per request than httpx.
        description="the SDK's HTTP transport: aiohttp (DefaultAioHttpClient, less CPU per "
        "request) or httpx (the SDK's default)",
    )


def sdk_http_client(sdk: str, options: SDKOptions, model: str) -> Any:
    """The ``http_client=`` for an SDK's async client; None keeps the SDK's own httpx one."""
    if options.http_client == "httpx":
        return None
    import importlib

    try:
        return importlib.import_module(sdk).DefaultAioHttpClient()
    except (AttributeError, RuntimeError) as exc:  # an SDK without it, or aiohttp missing
        raise MissingDependencyError(
            f"the {sdk} SDK cannot use aiohttp here ({exc})",
            field=f"models.{model}.options.http_client",
            hint=f"pip install '{sdk}[aiohttp]', or set http_client: httpx",
        ) from exc


@dataclass(frozen=True)
class Endpoint:
    """Where a provider lives by default and which variables override it."""

    base_url: str | None
    key_variables: tuple[str, ...]
    base_url_variable: str | None = None
    key_required: bool = True


class RemoteProvider(Provider):
    """A provider that calls an HTTP API through its vendor's official SDK."""

    endpoint: ClassVar[Endpoint]
    unsupported_params: ClassVar[frozenset[str]] = frozenset()
    supports_json_mode: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = RemoteOptions

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.preflight(spec)
        self.api_key = self.resolve_key(spec)
        self.base_url = self.resolve_base_url(spec)
        options = self.options_model.model_validate(spec.options)  # once, not per request
        assert isinstance(options, RemoteOptions)
        self.options = options

    @classmethod
    def key_variables(cls, spec: ModelSpec) -> tuple[str, ...]:
        return (spec.api_key_env,) if spec.api_key_env else cls.endpoint.key_variables

    @classmethod
    def resolve_key(cls, spec: ModelSpec) -> str | None:
        variables = cls.key_variables(spec)
        if not variables:
            return None
        if not cls.endpoint.key_required and not spec.api_key_env:
            return next((v for v in (variable(n, model=spec.name) for n in variables) if v), None)
        return read_key(variables, model=spec.name)

    @classmethod
    def resolve_base_url(cls, spec: ModelSpec) -> str | None:
        name = cls.endpoint.base_url_variable
        from_env = variable(name, model=spec.name) if name else ""
        return spec.base_url or from_env or cls.endpoint.base_url

    @classmethod
    def preflight(cls, spec: ModelSpec) -> None:
        """Key present, base URL known, no parameter the API lacks — before any call."""
        explicit = {
            name
            for name in spec.params.model_fields_set & cls.unsupported_params
            if getattr(spec.params, name) is not None
        }
        if explicit:
            raise ConfigError(
                f"{cls.name} does not support {', '.join(sorted(explicit))}",
                field=f"models.{spec.name}.params",
                hint=f"remove {', '.join(sorted(explicit))} from the model's params",
            )
        if spec.options.get("json_mode") and not cls.supports_json_mode:
            raise ConfigError(
                f"{cls.name} has no JSON mode",
                field=f"models.{spec.name}.options.json_mode",
                hint="remove json_mode; ask for JSON in the prompt instead",
            )
        if cls.resolve_base_url(spec) is None and not spec.secret:
            raise ConfigError(
                f"model {spec.name!r} needs a base_url",
                field=f"models.{spec.name}.base_url",
                hint="set base_url to the server's endpoint, e.g. http://127.0.0.1:8000/v1",
            )
        if not spec.secret:  # a ZenML secret is checked when the pipeline starts
            cls.resolve_key(spec)

    def secrets(self) -> list[str]:
        return [self.api_key] if self.api_key else []

    def connection_key(self) -> str:
        """Provider, endpoint and (a digest of) the key: what shares a rate limit."""
        digest = hashlib.sha256((self.api_key or "").encode()).hexdigest()[:8]
        return f"{self.name}:{self.base_url}:{digest}"

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "base_url": self.base_url}

    def request_timeout_s(self) -> float | None:
        return self.options.timeout_s


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """APIs that take the system prompt as a separate field get it joined here."""
    system = [m.content for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    return ("\n\n".join(system) if system else None), rest


def finish_reason(raw: str | None, mapping: dict[str, FinishReason]) -> FinishReason:
    if raw is None:
        return "stop"
    return mapping.get(raw.lower(), "other")


class Stopwatch:
    """Latency of a request and, when streaming, time to the first token."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_token: float | None = None

    def token(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter() - self.started

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def sampling(params: GenerationParams) -> dict[str, object]:
    """The sampling parameters that are set, under their common names."""
    out: dict[str, object] = {"temperature": params.temperature}
    if params.top_p is not None:
        out["top_p"] = params.top_p
    return out


_TRANSPORT_ERRORS = (
    ("httpx", "TransportError"),  # ollama
    ("httpx2", "TransportError"),  # openai 3.x and anthropic 2.x are built on this fork
    ("aiohttp", "ClientError"),  # google-genai's async transport
)


def is_transport_error(error: BaseException) -> bool:
    """A connection that failed, timed out or was cut mid-answer, whatever the HTTP stack."""
    import importlib

    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    for module_name, class_name in _TRANSPORT_ERRORS:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        if isinstance(error, cls):
            return True
    return False


class MalformedReply(Exception):
    """A 200 reply that is not the API's answer: fields missing or of another type, or a
    stream that ended (cleanly) before its last event. Sent again, like a 5xx."""


@contextmanager
def reading_reply(what: str) -> Iterator[None]:
    """Around our reading of an SDK's response objects. The openai and anthropic SDKs do not
    validate a 200 (they build their models without checking), so a body of another shape
    reaches us as is and fails here: as MalformedReply, not as a bare TypeError."""
    try:
        yield
    except (AttributeError, TypeError, KeyError, IndexError, ValidationError) as error:
        raise MalformedReply(
            f"{what} is not the API's answer ({type(error).__name__}: {error})"
        ) from error


def is_malformed_reply(error: BaseException) -> bool:
    """A 200 whose body could not be read: cut short or not JSON (json's own error, whichever
    SDK parsed it; no provider parses JSON itself), or not the API's shape (MalformedReply)."""
    return isinstance(error, (MalformedReply, json.JSONDecodeError))

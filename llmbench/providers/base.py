"""The provider contract: one async ``generate`` per backend (the inspect_ai shape).

Request failures are returned to the runner as exceptions and recorded there as error
rows; a provider only decides whether a failure is worth retrying.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from llmbench.providers.tool_wire import uses_tools
from llmbench.types import Completion, Message, Request

if TYPE_CHECKING:
    from llmbench.schema import ModelSpec


# How a request travels, never what it answers: not part of the response-cache key.
TRANSPORT_OPTIONS = frozenset({"timeout_s", "http_client"})


def completion_prompt(messages: Sequence[Message]) -> str:
    """A base model sees the conversation as plain text: system text, then the prompt."""
    return "\n\n".join(m.content for m in messages if m.content)


class NoOptions(BaseModel):
    """Providers without provider-specific settings accept no ``options``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Provider(abc.ABC):
    """A model backend. Subclasses implement :meth:`generate`; the rest has defaults."""

    name: ClassVar[str]
    options_model: ClassVar[type[BaseModel]] = NoOptions
    # What of a Request this backend can honour besides a text conversation (a backend
    # without a tool format refuses a request that needs one with a clear error, never
    # sends it without them).
    honours_tools: ClassVar[bool] = False
    honours_response_schema: ClassVar[bool] = False
    # Runs on this machine's cores, one local request at a time process-wide (LocalTurn):
    # a strategy's calls to local models in one round take the sum of their times, not the max.
    local: ClassVar[bool] = False
    remote: ClassVar[bool] = True  # talks to a server: base_url, keys and streaming apply
    # Its bill for a prompt-cache write over the input rate, where the price table gives none.
    cache_write_markup: ClassVar[float | None] = None

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @classmethod
    def preflight(cls, spec: ModelSpec) -> None:
        """Fail before the run starts if this model cannot be used (files, packages, keys)."""
        return None

    @classmethod
    def fingerprint(cls, spec: ModelSpec) -> str | None:
        """What, besides the spec, decides this model's answers and may change between runs
        (a recorded file's bytes, a local engine's defaults and build), for the step cache
        key (None: the spec says it all)."""
        return None

    @abc.abstractmethod
    async def generate(self, request: Request) -> Completion:
        """Send one request. ``cost_usd`` is filled in by the runner from the price table."""

    def unsupported(self, request: Request) -> str | None:
        """Why this backend cannot honour ``request`` (None: it can). Checked before sending:
        the answer would not be the one asked for, so it is an error row, not a retry."""
        if uses_tools(request) and not self.honours_tools:
            return f"{self.spec.name} ({self.name}) cannot take tool definitions or tool turns yet"
        if request.response_schema is not None and not self.honours_response_schema:
            return (
                f"{self.spec.name} ({self.name}) cannot constrain an answer to a JSON schema; "
                "use a model whose provider can (openai, gemini, ollama, llamacpp)"
            )
        return None

    def cache_identity(self) -> dict[str, Any]:
        """What, besides the request, determines an answer (never a key)."""
        options = {k: v for k, v in self.spec.options.items() if k not in TRANSPORT_OPTIONS}
        return {"provider": self.name, "model": self.spec.model, "options": options}

    def request_timeout_s(self) -> float | None:
        """A request still running after this long is cut (and retried)."""
        return None

    def secrets(self) -> list[str]:
        """Values that must never appear in an error message or log (API keys)."""
        return []

    def retryable(self, error: BaseException) -> bool:
        """Whether a failed request may succeed if sent again (429/5xx/timeouts: yes)."""
        return False

    def rate_limited(self, error: BaseException) -> bool:
        """A 429: the endpoint asks for fewer requests (drives adaptive concurrency)."""
        return 429 in (getattr(error, "status_code", None), getattr(error, "code", None))

    def connection_key(self) -> str:
        """Requests with the same key share a concurrency and rate limit."""
        return f"{self.name}:{self.spec.model}"

    def close(self) -> None:
        """Release clients or model memory."""
        return None

    async def aclose(self) -> None:
        """Release async clients, on the event loop that used them."""
        self.close()

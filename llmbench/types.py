"""Plain data passed between the stages of a benchmark.

Errors, cost and latency are fields of a :class:`Completion`, not exceptions: a failed
request is a row like any other, so a run never loses the samples that did succeed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error", "other"]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str


class GenerationParams(BaseModel):
    """Sampling parameters sent with a request; the model's defaults merged with the task's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=131072)
    stop: tuple[str, ...] = ()
    seed: int | None = None


class Sample(BaseModel):
    """One prompt of a task, rendered and ready to send, with what counts as a right answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    prompt: str
    system: str | None = None
    references: tuple[str, ...]
    choices: tuple[str, ...] = ()

    def messages(self) -> list[Message]:
        head = [Message(role="system", content=self.system)] if self.system else []
        return [*head, Message(role="user", content=self.prompt)]

    def question(self) -> str:
        """The whole request as one text, system prompt first: what a judge, a classifier or
        a verifier is shown of it (the system prompt can say what a right answer is)."""
        return f"{self.system}\n\n{self.prompt}" if self.system else self.prompt


class Call(BaseModel):
    """One model call behind an answer: what a member was asked to do, what it cost, and why
    the answer's strategy made it (or moved on from it)."""

    model_config = ConfigDict(extra="forbid")

    model: str  # the configured model's name
    role: str | None = None  # its role in the strategy that made the call
    purpose: str = "answer"  # answer, classify, verify, draw 2 ...
    output: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False  # a response-cache hit, or shared with an identical request in flight
    attempts: int = 0
    error: str | None = None
    note: str | None = None  # the strategy's reason: "routed: prompt under 400 chars", ...
    score: float | None = None  # the router's score for this prompt, where it uses one


class Completion(BaseModel):
    """What one request produced. ``error`` set means the request failed and is unscored.

    ``trace`` lists the model calls behind the answer (one for a plain model); for a
    strategy, tokens and cost are sums over it and latency is the wall time of them all."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    reasoning: str | None = None  # reasoning/thinking text, kept apart from the answer
    input_tokens: int = 0  # all prompt tokens, cached ones included
    output_tokens: int = 0  # all generated tokens, reasoning ones included
    cached_tokens: int = 0  # prompt tokens served from the provider's prompt cache
    cache_write_tokens: int = 0  # prompt tokens written to it (billed apart by some)
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None
    finish_reason: FinishReason = "stop"
    model_version: str | None = None
    cost_usd: float = 0.0
    cached: bool = False  # served by the response cache: no request was sent this run
    attempts: int = 0  # requests sent for this sample (0 when cached)
    retry_wait_s: float = 0.0  # time spent waiting between attempts
    error: str | None = None
    answered_by: str | None = None  # the model whose answer this is
    trace: list[Call] = Field(default_factory=list)

"""Plain data passed between the stages of a benchmark.

Errors, cost and latency are fields of a :class:`Completion`, not exceptions: a failed
request is a row like any other, so a run never loses the samples that did succeed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from llmbench.scoring.extract import ExtractorSpec
from llmbench.tools.spec import ToolsSpec

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error", "other"]


class ToolCall(BaseModel):
    """A function call an assistant message asked for; ``arguments`` is the JSON text the
    model wrote (kept as written: whether it parses is part of what is scored).

    ``signature`` is an opaque token the vendor attached to the call and wants back with it
    when the conversation goes on (Gemini 3's thought signature, base64): without it such a
    model refuses the next turn. It is dumped only when there is one, so every other call
    dumps (and keys the cache) as before."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None

    @model_serializer(mode="wrap")
    def _without_an_empty_signature(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if isinstance(dumped, dict) and dumped.get("signature") is None:
            dumped.pop("signature", None)
        return dumped


class Message(BaseModel):
    """One turn of a conversation. An assistant turn may carry tool calls; a tool turn is the
    result of one of them (``tool_call_id``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"a {self.role} message cannot carry tool calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message, and only a tool message, names its tool_call_id")
        return self

    def identity(self) -> dict[str, Any]:
        """What keys a cached answer: a plain text turn dumps as it always has (role and
        content), so adding conversation fields left existing cache entries valid."""
        return self.model_dump(mode="json", exclude_defaults=True)


class Tool(BaseModel):
    """A function the model may call: a name, what it does, and its parameters as a JSON
    schema (the shape every vendor's tool format is made from)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class GenerationParams(BaseModel):
    """Sampling parameters sent with a request; the model's defaults merged with the task's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=131072)
    stop: tuple[str, ...] = ()
    seed: int | None = None


class Request(BaseModel):
    """Everything one model call is asked: the conversation, the generation settings of this
    call (the model's and the task's, with any per-call override such as a verifier's own
    answer length), the tools it may call and the JSON schema its answer must follow.

    ``draw`` says which sample of the same conversation this is (0: the first): k draws are k
    different requests (a seeded one gets seed + draw; an unseeded one is keyed by it).
    A provider that cannot honour a field refuses the request with a clear error instead of
    quietly sending less (:meth:`llmbench.providers.base.Provider.unsupported`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: tuple[Message, ...] = Field(min_length=1)
    params: GenerationParams = Field(default_factory=GenerationParams)
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None  # auto, none, required, or a tool's name
    response_schema: dict[str, Any] | None = None
    draw: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> Request:
        choice = self.tool_choice
        named = {"auto", "none", "required"} | {tool.name for tool in self.tools}
        if choice is not None and choice not in named:
            raise ValueError(f"tool_choice {choice!r} names no tool of the request")
        return self

    def with_params(self, **overrides: Any) -> Request:
        """This request with some generation settings of its own (max_tokens, stop, ...)."""
        return self.model_copy(update={"params": self.params.model_copy(update=overrides)})

    def transcript(self) -> list[dict[str, str]]:
        """The conversation as a trace records it: each turn's role and text."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def identity(self) -> dict[str, Any]:
        """What keys its cached answer (``draw`` is the client's: it keys only sampling)."""
        identity: dict[str, Any] = {
            "messages": [m.identity() for m in self.messages],
            "params": self.params.model_dump(mode="json"),
        }
        if self.tools:
            identity["tools"] = [tool.model_dump(mode="json") for tool in self.tools]
        if self.tool_choice is not None:
            identity["tool_choice"] = self.tool_choice
        if self.response_schema is not None:
            identity["response_schema"] = self.response_schema
        return identity


class Passage(BaseModel):
    """One retrieved passage: its corpus id, text, the retriever's score and its rank (1:
    the best)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str
    title: str = ""
    score: float
    rank: int = Field(ge=1)


class Retrieval(BaseModel):
    """What was retrieved for a sample: the query, by which retriever, the passages in rank
    order, the ids of the gold passages (those holding the answer) and the retrieval's time
    per query (the batch's wall time over its queries)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str
    retriever: str
    passages: tuple[Passage, ...]
    gold: tuple[str, ...] = ()
    latency_s: float = Field(default=0.0, ge=0.0)


# Marks a Sample field that says what a right answer is (an evaluation dataset's
# "expectations"); every other field is part of what the entrant was asked ("inputs").
EXPECTATION: dict[str, Any] = {"expectation": True}


class Sample(BaseModel):
    """One prompt of a task, rendered and ready to send, with what counts as a right answer.

    ``conversation``, when given, is the whole conversation asked (a dataset's own system,
    user and assistant turns, in order); ``prompt`` is then its last user turn, what a judge
    is shown and a recorded output is found by. ``tools`` are the functions the model may
    call; ``expected`` is a structured right answer a metric reads (BFCL's possible answers:
    ``[{function: {param: [allowed values]}}]``, empty: no call is right). ``agent``, when
    given, is the tool set and step limit of the agent loop that answers the sample
    (:mod:`llmbench.tools.agent`): its tools are offered and run until a final answer.
    ``retrieval`` is what a retrieval-augmented task retrieved for the prompt (the passages
    in it) and which passages were the right ones.

    ``follow_ups`` are the user turns asked after the first (MT-Bench's second turn), each
    after the entrant's own answer to the turn before (:mod:`llmbench.runtime.conversation`);
    ``prompt`` is the first user turn. With follow-ups, ``references`` line up with the user
    turns: the reference answer of each turn, for a reference-guided judge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    prompt: str
    system: str | None = None
    references: tuple[str, ...] = Field(json_schema_extra=EXPECTATION)
    choices: tuple[str, ...] = ()
    conversation: tuple[Message, ...] = ()
    tools: tuple[Tool, ...] = ()
    expected: list[dict[str, Any]] | None = Field(default=None, json_schema_extra=EXPECTATION)
    agent: ToolsSpec | None = None
    retrieval: Retrieval | None = None
    follow_ups: tuple[str, ...] = ()

    def messages(self) -> list[Message]:
        """The conversation of the first request (the follow-ups come after its answer)."""
        if self.conversation:
            return list(self.conversation)
        head = [Message(role="system", content=self.system)] if self.system else []
        return [*head, Message(role="user", content=self.prompt)]

    def request(self, params: GenerationParams, *, draw: int = 0) -> Request:
        """The request that asks this sample with ``params``, offering the sample's tools."""
        return Request(messages=tuple(self.messages()), params=params, tools=self.tools, draw=draw)

    def question(self) -> str:
        """The whole request as one text, system prompt first: what a judge, a classifier or
        a verifier is shown of it (the system prompt can say what a right answer is)."""
        return f"{self.system}\n\n{self.prompt}" if self.system else self.prompt

    def user_turns(self) -> tuple[str, ...]:
        """Every user turn asked, in order: the prompt, then the follow-ups."""
        return (self.prompt, *self.follow_ups)


class Ask(BaseModel):
    """What an entrant (a model or a strategy) is asked about one sample, without any model's
    own settings: the conversation so far, the tools it may call and the JSON schema its
    answer must follow; the per-call settings its asker decides (a verifier's answer length,
    no stop sequences for a judging call, a vote's temperature; None keeps each model's own);
    and how the asker reads the answer (``extract``; None: the task's extractors).

    A model sends it as a request on its own settings (:meth:`request`); a strategy hands it
    to its members, so a strategy asked a prompt built for it (a verifier's, a revision)
    answers that prompt and compares its members' answers the way its asker reads them.
    ``Ask.of(sample)`` sends exactly the sample's own request (:meth:`Sample.request`).

    ``agent``, when given, is the tool set and step limit the answer may use: a model asked
    it answers through the agent loop (:func:`llmbench.tools.agent.ask_model`), its tool
    calls run and their results fed back until a final answer. ``Ask.of`` carries the
    sample's; a prompt that judges or combines answers is built without it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: tuple[Message, ...] = Field(min_length=1)
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    response_schema: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=131072)
    stop: tuple[str, ...] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    extract: tuple[ExtractorSpec, ...] | None = None
    agent: ToolsSpec | None = None

    @classmethod
    def of(cls, sample: Sample) -> Ask:
        """The sample's own question: its conversation, its tools and its agent loop."""
        return cls(messages=tuple(sample.messages()), tools=sample.tools, agent=sample.agent)

    @property
    def prompt(self) -> str:
        """Its last user turn: what is being asked now (a rule's regex reads it)."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    def question(self) -> str:
        """The system prompt, then :attr:`prompt`: what a verifier or a critic is shown of
        the question (the system prompt can say what a right answer is)."""
        system = next((m.content for m in self.messages if m.role == "system"), None)
        return f"{system}\n\n{self.prompt}" if system else self.prompt

    def instead(self, text: str, **settings: Any) -> Ask:
        """This ask with ``text`` as its user turn in place of its last one (a revision, a
        later layer's prompt): earlier turns, the system prompt, the tools and the agent
        loop stay (``agent=None`` in ``settings`` drops the loop)."""
        head = self.messages[:-1] if self.messages[-1].role == "user" else self.messages
        update = {"messages": (*head, Message(role="user", content=text)), **settings}
        return self.model_copy(update=update)

    def request(self, params: GenerationParams, *, draw: int = 0) -> Request:
        """What a model with ``params`` (its own and the task's) sends for it."""
        overrides = {
            name: value
            for name in ("max_tokens", "stop", "temperature")
            if (value := getattr(self, name)) is not None
        }
        return Request(
            messages=self.messages,
            params=params.model_copy(update=overrides) if overrides else params,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_schema=self.response_schema,
            draw=draw,
        )


CallKind = Literal["model", "strategy", "agent", "tool", "retriever"]


class Call(BaseModel):
    """One call behind an answer: what a member was asked, what it cost, when it ran and
    why the answer's strategy made it (or moved on from it).

    ``kind`` "model" is a request to a model. A member that is itself a strategy leaves its
    own calls in the trace, each with ``parent`` naming where it sits, followed by one
    "strategy" call for its answer as a whole (output, latency, the outer strategy's note and
    score), whose tokens and cost are zero: they lie in its calls, so sums over a trace stay
    sums over requests.

    ``parent`` is the path of the nested strategy the call belongs to, one ``role:name``
    segment per level below the answer's own strategy, outermost first and joined by "/"
    ("stage2:router", "careful:cascade/stage2:router"); None: a call of the answer's own
    strategy (or a plain model's call). ``round`` counts the rounds of the strategy that made
    the call (its stages, its draws side by side in one round) from 0.

    ``start_s`` is when the call starts, in seconds from the start of the answer, on the
    clock the answer's ``latency_s`` is measured on: rounds one after another, the calls of
    a round side by side, each taking its own latency, except calls to local models
    (``local``): they share this machine's cores one request at a time (``LocalTurn``), so a
    round's local calls run one after another. So a trace spans exactly the row's
    latency, and a call served by the response cache sits where it was asked, as it did when
    it was sent (a wall clock would put a cached first stage and the escalation after it at
    the same instant, and lay a rerun out unlike the run it repeats).

    A strategy's member that answered through the agent loop (a tool task) is nested the
    same way: its model steps and "tool" calls under the path ``role:model``, then one
    "agent" call for its final answer (tokens and cost zero, as a "strategy" call's).

    ``turn`` is the user turn of a conversation the call answers (0: the first), None for
    a single request: a conversation's answer holds every turn's calls one turn after
    another, each turn's keeping its own ``round`` (a strategy's rounds, an agent's steps).

    ``input`` is the conversation the call sent, as role and content: None when it is the
    sample's own (a plain model's row, a member answering the sample, its draws), which the
    row already holds, so samples.jsonl grows only by the prompts a strategy built (a
    classifier's, a verifier's)."""

    model_config = ConfigDict(extra="forbid")

    model: str  # the configured model's name (a nested strategy's, for kind "strategy")
    kind: CallKind = "model"
    role: str | None = None  # its role in the strategy that made the call
    purpose: str = "answer"  # answer, classify, verify, draw 2 ...
    input: list[dict[str, str]] | None = None
    round: int = Field(default=0, ge=0)
    turn: int | None = Field(default=None, ge=0)
    parent: str | None = None
    start_s: float = Field(default=0.0, ge=0.0)
    output: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False  # a response-cache hit, or shared with an identical request in flight
    local: bool = False  # a local model's: local requests run one at a time (see start_s)
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
    # Attempts the endpoint refused with a 429: read by the run-wide concurrency limit when a
    # worker process sent the request (never stored: not part of the answer).
    rate_limited: int = Field(default=0, exclude=True)
    error: str | None = None
    answered_by: str | None = None  # the model whose answer this is
    trace: list[Call] = Field(default_factory=list)
    tool_calls: tuple[ToolCall, ...] = ()  # the functions the answer calls, in its order
    # A conversation's answer to each user turn, in order (``text`` is the last); empty for
    # a single request.
    turn_answers: tuple[str, ...] = ()

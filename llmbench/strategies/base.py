"""The strategy contract: ``answer(sample, index, ask)`` from member calls, each through a model
client, returning one completion whose trace holds every call and the reason for it."""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmbench.errors import ConfigError
from llmbench.prompts import PromptError, prompt_texts
from llmbench.prompts import render as render_prompt
from llmbench.runtime.client import ModelClient
from llmbench.scoring.extract import ExtractorSpec, extract
from llmbench.tools.agent import ToolBox, ask_model
from llmbench.types import Ask, Call, CallKind, Completion, GenerationParams, Message, Sample

if TYPE_CHECKING:
    from llmbench.schema import BenchConfig, StrategySpec, TaskSpec


# Calls that judge the prompt or an answer rather than answer it, and their default answer
# length (each strategy's options can set its own). A verifier is asked to explain before its
# grade, so it gets room for that: at 64 tokens most grades were cut off and read as none;
# a critique explains what to fix before its verdict.
JUDGING = {"classify": 16, "verify": 512, "critique": 512}


def judging_length(purpose: str, why: str) -> Any:
    """The option for a judging call's own answer length, defaulting to ``JUDGING``'s."""
    return Field(default=JUDGING[purpose], ge=8, le=32768, description=why)


def judging(text: str, max_tokens: int, reads: Sequence[ExtractorSpec]) -> Ask:
    """A prompt that judges (a label, a grade, a verdict): asked alone, without the task's
    stop sequences, at its own answer length, its answer read by the extractors ``reads``,
    so a strategy asked it compares its members' labels or grades, not the task's answers."""
    return Ask(
        messages=(Message(role="user", content=text),),
        max_tokens=max_tokens,
        stop=(),
        extract=tuple(reads),
    )


def valid_regex(pattern: str | None) -> str | None:
    """``pattern`` if it compiles (a rule's or a gate's regex, checked at load)."""
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskView(Options):
    """What a strategy knows of the task: its name (for rules), its extractors (to see
    whether an answer was found) and what shapes its requests. Metrics and judges are not
    part of it, so changing them re-scores without re-running a strategy."""

    name: str
    extract: list[ExtractorSpec] = Field(default_factory=list)
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None

    @classmethod
    def of(cls, task: TaskSpec) -> TaskView:
        return cls.model_validate(task.model_dump(mode="json", include=set(cls.model_fields)))

    def answer_of(self, completion: Completion, ask: Ask | None = None) -> str | None:
        """The answer the task's extractors (or those of ``ask``, the prompt it answers: a
        grade, a label) find in ``completion`` (its stripped text when there are none);
        None for a failed request or no answer found."""
        if completion.error is not None:
            return None
        extractors = self.extract if ask is None or ask.extract is None else ask.extract
        if not extractors:
            return completion.text.strip() or None
        return extract(completion.text, extractors)


class Member:
    """A strategy's handle on one member (by role): a model client with the task's request
    parameters, or another strategy. ``toolbox``: the step's open tool sets, shared by
    every member, for the asks that carry an agent loop."""

    def __init__(
        self,
        role: str,
        name: str,
        *,
        client: ModelClient | None = None,
        params: GenerationParams | None = None,
        strategy: Strategy | None = None,
        toolbox: ToolBox | None = None,
    ) -> None:
        self.role, self.name = role, name
        self.client, self.params, self.strategy = client, params, strategy
        self.toolbox = toolbox or ToolBox()

    @property
    def sampled(self) -> bool:
        return self.params is not None and self.params.temperature > 0

    async def ask(
        self,
        sample: Sample,
        index: int,
        ask: Ask | None = None,
        *,
        draw: int = 0,
        purpose: str = "answer",
        note: str | None = None,
    ) -> Completion:
        """The member's answer to ``ask`` (None: the sample's own question). A model member
        sends it on its own settings with the ask's per-call ones; asked the sample itself
        with draw 0, that is exactly the request its own leaderboard row sent, so the answer
        comes from the response cache. A strategy member is handed the ask and answers it
        (a verifier's prompt, a revision), its calls nested under this role.

        An ask that carries an agent loop (``Ask.agent``: a tool task's question, a
        revision of an answer to it) is answered by a model member through that loop, as
        the model's own row answers it: its steps and tool calls nested under this role,
        then one "agent" call for its final answer, which is what the strategy routes,
        grades or votes on. Prompts that judge or combine answers carry no loop."""
        if self.strategy is not None:
            if draw:  # refused at config load: see vote.check_draws
                raise ValueError(f"{self.role}: a strategy answers once; draws need a model")
            done = await self.strategy.answer(sample, index, ask)
            return nested(done, self.role, self.name, purpose=purpose, note=note)
        assert self.client is not None and self.params is not None
        asked = ask or Ask.of(sample)
        done = await ask_model(
            self.client,
            self.params,
            asked,
            self.toolbox,
            index=index,
            draw=draw,
            role=self.role,
            purpose=purpose,
            note=note,
            record_input=asked.messages != tuple(sample.messages()),
        )
        if asked.agent is None:
            return done
        return nested(done, self.role, self.name, purpose=purpose, note=note, kind="agent")

    async def aclose(self) -> None:
        try:
            await self.toolbox.aclose()  # shared: closing it twice is harmless
        finally:
            if self.client is not None:
                await self.client.aclose()
            if self.strategy is not None:
                await self.strategy.aclose()


def nested(
    completion: Completion,
    role: str,
    name: str,
    *,
    purpose: str,
    note: str | None,
    kind: CallKind = "strategy",
) -> Completion:
    """A strategy member's answer (``kind`` "agent": a model member's agent loop) as its
    outer strategy's trace holds it: its calls under the path ``role:name`` (see
    :class:`Call`), then one ``kind`` call for the answer as a whole, where the outer
    strategy's note and score go (its tokens and cost are its calls')."""
    here = f"{role}:{name}"
    calls = [
        call.model_copy(update={"parent": f"{here}/{call.parent}" if call.parent else here})
        for call in completion.trace
    ]
    whole = Call(
        model=name,
        kind=kind,
        role=role,
        purpose=purpose,
        output=completion.text,
        latency_s=completion.latency_s,
        cached=completion.cached,
        error=completion.error,
        note=note,
    )
    return completion.model_copy(update={"trace": [*calls, whole]})


def annotate(completion: Completion, note: str) -> Completion:
    """``completion`` with ``note`` on its last call: why the strategy moved on (or not)."""
    if not completion.trace:
        return completion
    *head, last = completion.trace
    merged = f"{last.note}; {note}" if last.note else note
    return completion.model_copy(
        update={"trace": [*head, last.model_copy(update={"note": merged})]}
    )


def with_score(completion: Completion, score: float) -> Completion:
    """``completion`` with ``score`` (a routing score, a stated confidence, a verifier's
    grade) on its last call, where a threshold sweep reads it."""
    if not completion.trace:
        return completion
    *head, last = completion.trace
    return completion.model_copy(
        update={"trace": [*head, last.model_copy(update={"score": score})]}
    )


@dataclass(frozen=True)
class Sweep:
    """How one run of a strategy becomes a whole threshold sweep: the member roles it moves
    between, which way its recorded score points (+1: a higher score sends the prompt to
    ``strong``; -1: a higher score keeps it with ``weak``) and what a prompt sent to
    ``strong`` costs: a cascade has asked ``weak`` first, so it pays both
    (``escalates``); a router pays only the member it chose."""

    weak: str
    strong: str
    direction: int
    escalates: bool = False


def combine(
    chosen: Completion,
    rounds: Sequence[Sequence[Completion]],
    numbers: Sequence[int] | None = None,
    *,
    renumber: bool = True,
) -> Completion:
    """The strategy's answer: ``chosen``'s text, every call of every round in its trace.

    Tokens and cost are sums over the calls. Latency is what a caller would wait: rounds run
    one after another, the calls of one round side by side (the slowest counts), from each
    call's own latency, so an answer rebuilt from the response cache reports the same time.
    Answers whose model requests are all local (``Call.local``) are the exception: local
    requests run one at a time, so a round's local answers follow one another (a local vote's
    draws take their sum, an agent's or nested strategy's answer too), beside its remote ones.
    Each call is placed on that clock (``Call.start_s``) and its own calls numbered by
    round: its position, or ``numbers[position]`` where the strategy counts its own (a
    chain's step, however often it was asked); with ``renumber`` False each call keeps its
    round (a conversation's turns, each answered with rounds of its own).
    """
    calls: list[Call] = []
    begin = 0.0
    for n, round_ in enumerate(rounds):
        queued = 0.0  # the local answers of this round so far, one after another
        slowest = 0.0
        for done in round_:
            # Its model requests decide: a nested strategy's or an agent's wrapper call
            # and tool calls hold no model turn of their own.
            requests = [c for c in done.trace if c.kind == "model"]
            local = bool(requests) and all(c.local for c in requests)
            start = begin + (queued if local else 0.0)
            for call in done.trace:
                update: dict[str, Any] = {"start_s": start + call.start_s}
                if renumber and call.parent is None:  # a nested one's keep their own
                    update["round"] = n if numbers is None else numbers[n]
                calls.append(call.model_copy(update=update))
            if local:
                queued += done.latency_s
            slowest = max(slowest, queued if local else done.latency_s)
        begin += slowest
    answered = [done for round_ in rounds for done in round_]
    return chosen.model_copy(
        update={
            "input_tokens": sum(c.input_tokens for c in calls),
            "output_tokens": sum(c.output_tokens for c in calls),
            "cached_tokens": sum(c.cached_tokens for c in calls),
            "cache_write_tokens": sum(c.cache_write_tokens for c in calls),
            "reasoning_tokens": sum(c.reasoning_tokens for c in calls),
            "cost_usd": math.fsum(c.cost_usd for c in calls),
            "latency_s": begin,
            "ttft_s": None,
            "cached": all(c.cached for c in calls),
            "attempts": sum(c.attempts for c in calls),
            "retry_wait_s": sum(d.retry_wait_s for d in answered),
            "trace": calls,
        }
    )


class Strategy(abc.ABC):
    """One kind of strategy. ``roles``: the role names it takes (None: any names);
    ``required``: those it cannot work without."""

    kind: ClassVar[str]
    options_model: ClassVar[type[Options]] = Options
    roles: ClassVar[frozenset[str] | None] = None
    required: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, spec: StrategySpec, members: Mapping[str, Member], task: TaskView) -> None:
        self.spec, self.members, self.task = spec, dict(members), task
        self.options: Any = self.options_model.model_validate(spec.options)

    @classmethod
    def check(cls, spec: StrategySpec) -> None:
        """Raise ValueError naming the field if ``spec`` is not a valid strategy of this kind."""
        if cls.roles is not None:
            for role in spec.members:
                if role not in cls.roles:
                    raise ValueError(
                        f"members.{role}: a {cls.kind} has no role {role!r}; "
                        f"its roles are {', '.join(sorted(cls.roles))}"
                    )
        for role in sorted(cls.required - set(spec.members)):
            raise ValueError(f"members.{role}: a {cls.kind} needs a {role!r} member")
        try:
            options = cls.options_model.model_validate(spec.options)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                message = "unknown option; remove it or check its spelling"
            raise ValueError(f"options.{loc}: {message}") from None
        cls.check_options(spec, options)

    @classmethod
    def check_options(cls, spec: StrategySpec, options: Any) -> None:
        """Cross-checks between options and members (roles named in options exist ...)."""
        return None

    @classmethod
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        """Checks that need the members' own settings (e.g. sampling for k draws)."""
        return None

    @classmethod
    def identity_extra(cls, spec: StrategySpec) -> dict[str, Any]:
        """What else shapes its answers besides its settings and members (a trained file)."""
        return {}

    @classmethod
    def prompts(cls, spec: StrategySpec) -> dict[str, str]:
        """The prompt texts it sends, by option (registered beside the task's and judges')."""
        return prompt_texts(cls.options_model.model_validate(spec.options))

    def render(self, option: str, text: str, context: Mapping[str, Any]) -> str:
        """One of its prompt options over ``context``; a failure names the strategy and it."""
        try:
            return render_prompt(text, context)
        except PromptError as exc:
            raise ConfigError(
                exc.message, source=f"strategy {self.spec.name}", field=f"options.{option}"
            ) from None

    @classmethod
    def describe(cls, spec: StrategySpec) -> str:
        """Its kind as the report shows it, with what a reader must know of this one (an
        evaluator that sees the reference cannot be deployed)."""
        return cls.kind

    @classmethod
    def sweep(cls, spec: StrategySpec) -> Sweep | None:
        """Set where one score and one threshold decide between two members."""
        return None

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        """At most how many calls each role makes per sample (``--dry-run``'s worst case)."""
        return dict.fromkeys(spec.members, 1)

    @classmethod
    def worst_case_tokens(
        cls, spec: StrategySpec, own: Mapping[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        """Per sample, the most prompt and output tokens each role's calls take together.
        ``own``: one call's (prompt, output) when the member is asked the sample itself. By
        default every call is that size; a kind whose prompts grow (a critique holding the
        answer, a revision holding the critique) says more."""
        return {
            role: (n * own[role][0], n * own[role][1]) for role, n in cls.max_calls(spec).items()
        }

    @abc.abstractmethod
    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """The strategy's answer to ``ask`` about one sample (None: the sample's own
        question), with every member call in its trace. Its members are asked ``ask``
        where they answer the question, and prompts built from ``ask`` (its
        :meth:`~llmbench.types.Ask.question`) where they judge or revise."""

    async def aclose(self) -> None:
        closed: set[int] = set()  # two roles played by one model share one client
        for member in self.members.values():
            handle = id(member.client or member.strategy)
            if handle not in closed:
                closed.add(handle)
                await member.aclose()


def check_role(spec: StrategySpec, field: str, role: str) -> None:
    """Raise naming ``options.<field>`` unless ``role`` is one of the members'."""
    if role not in spec.members:
        raise ValueError(
            f"options.{field}: no member with role {role!r}; "
            f"the members are {', '.join(spec.members)}"
        )

"""``vote``: the majority answer of several members, or of n draws of one member
(self-consistency), compared by the task's extractors, as a cascade's disagreement is.

Draw 0 of each member at its own temperature is exactly the request its own leaderboard row
sent (a response-cache hit); the other draws are new requests (the draw index is in the
request, and a seeded one gets seed + draw). Answers in which the extractors find nothing do
not vote. A tie goes to the answer given first (``tie: first``, in member then draw order)
or to the one given by the shortest reply (``tie: shortest``). The chosen call records the
agreement: the share of all draws giving the chosen answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from llmbench.schema import BenchConfig, ModelSpec, StrategySpec
from llmbench.strategies.base import Member, Options, Strategy, annotate, combine, with_score
from llmbench.types import Ask, Completion, Sample

TieRule = Literal["first", "shortest"]


class VoteOptions(Options):
    samples: int | None = Field(
        default=None,
        ge=2,
        le=64,
        description="draws of each member (self-consistency); none: each member answers once",
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="the draws' temperature; none: each member's own (draw 0 is then its "
        "own row's request, from the response cache)",
    )
    tie: TieRule = Field(
        default="first",
        description="among answers with equally many votes: the one given first, or the one "
        "given by the shortest reply",
    )


@dataclass(frozen=True)
class Tally:
    """A vote's outcome: which reply answers (its index), with how many votes of how many."""

    chosen: int
    answer: str | None
    votes: int
    voters: int

    @property
    def agreement(self) -> float:
        return self.votes / self.voters if self.voters else 0.0


def majority(answers: Sequence[str | None], texts: Sequence[str], tie: TieRule = "first") -> Tally:
    """The most frequent answer (None does not vote) and the reply that stands for it: the
    first reply giving it, or with ``tie: shortest`` the shortest (ties broken by order
    there too). No answer at all: reply 0, with no votes."""
    counts: dict[str, int] = {}
    for answer in answers:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    if not counts:
        return Tally(chosen=0, answer=None, votes=0, voters=len(answers))
    top = max(counts.values())
    tied = [i for i, a in enumerate(answers) if a is not None and counts[a] == top]
    chosen = min(tied, key=lambda i: (len(texts[i]), i)) if tie == "shortest" else tied[0]
    return Tally(chosen=chosen, answer=answers[chosen], votes=top, voters=len(answers))


async def ask_draws(
    members: Sequence[Member],
    sample: Sample,
    index: int,
    ask: Ask | None = None,
    *,
    samples: int | None,
    temperature: float | None,
    purpose: str = "answer",
) -> list[Completion]:
    """Each member's ``samples`` draws (one when None) of ``ask`` (None: the sample's own
    question), side by side, in member then draw order. Draw 0 of the sample itself at the
    member's own temperature is its own row's request; draw d is a distinct request (a
    seeded one gets seed + d)."""
    if temperature is not None:
        ask = (ask or Ask.of(sample)).model_copy(update={"temperature": temperature})

    def called(d: int) -> str:
        if d == 0:
            return purpose
        return f"draw {d}" if purpose == "answer" else f"{purpose}, draw {d}"

    asked = [(member, d) for member in members for d in range(samples or 1)]
    return list(
        await asyncio.gather(
            *(member.ask(sample, index, ask, draw=d, purpose=called(d)) for member, d in asked)
        )
    )


def check_draws(
    role: str, member: ModelSpec | StrategySpec, samples: int | None, temperature: float | None
) -> None:
    """Refuse draws that cannot differ: draws (``samples``) or a ``temperature`` of a
    strategy, which answers once at its own members' temperatures (it has no draw to vary),
    and ``samples`` draws of a model that would all be one answer: greedy ones (at the
    strategy's ``temperature``, else the member's own)."""
    if isinstance(member, StrategySpec):
        if samples is not None or temperature is not None:
            raise ValueError(
                f"members.{role}: {member.name!r} is a strategy, which answers once and at "
                "its members' own temperatures; draws and a temperature need a model"
            )
        return
    if samples is None:
        return
    if (temperature if temperature is not None else member.params.temperature) == 0:
        raise ValueError(
            f"options.temperature: {samples} draws of {member.name} at temperature 0 "
            "would all be the same answer; set options.temperature above 0 (or the "
            "member's params.temperature)"
        )


class Vote(Strategy):
    kind = "vote"
    options_model = VoteOptions

    @classmethod
    def check_options(cls, spec: StrategySpec, options: Any) -> None:
        assert isinstance(options, VoteOptions)
        if options.samples is None and len(spec.members) < 2:
            raise ValueError(
                "options.samples: a vote of one member needs samples (2 or more draws of it)"
            )

    @classmethod
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        options = VoteOptions.model_validate(spec.options)
        for role, name in spec.members.items():
            check_draws(role, config.entrant(name), options.samples, options.temperature)

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        samples = VoteOptions.model_validate(spec.options).samples or 1
        return dict.fromkeys(spec.members, samples)

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """Every member's draws answer ``ask``; they vote on what its asker reads in
        them (a grade, a label; the task's answer for the sample's own question)."""
        options: VoteOptions = self.options
        draws = await ask_draws(
            list(self.members.values()),
            sample,
            index,
            ask,
            samples=options.samples,
            temperature=options.temperature,
        )
        answers = [self.task.answer_of(d, ask) for d in draws]
        tally = majority(answers, [d.text for d in draws], options.tie)
        if tally.answer is None:
            why = f"voted: none of {tally.voters} answers had an answer; the first's text"
        else:
            why = (
                f"voted: {tally.votes} of {tally.voters} agree on {tally.answer!r} "
                f"(tie: {options.tie})"
            )
        draws[tally.chosen] = with_score(annotate(draws[tally.chosen], why), tally.agreement)
        return combine(draws[tally.chosen], [draws])

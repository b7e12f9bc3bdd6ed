"""The per-sample driver: the one place an entrant (a model or a strategy) is turned on one
sample and its answer becomes the row's completion.

The driver asks the entrant the sample's own question (``Ask.of(sample)``: its
conversation, its tools and its agent loop). A conversation of several user turns is a
loop here (FastChat's MT-Bench): ask turn 1, append the entrant's own answer verbatim, ask
turn 2 ... (:mod:`llmbench.runtime.conversation`), each turn an :class:`~llmbench.types.Ask`
over the conversation so far, so a model and a strategy answer conversations alike and
every call still goes through the entrant's (or its members') model clients. An agent loop
(an answer that calls tools, their results appended, the model asked again) is a model's
way of answering an ask that carries ``agent`` (:func:`llmbench.tools.agent.ask_model`):
a plain model's and a strategy member's alike.

The runner fans the driver out over a task's samples (:func:`llmbench.runtime.runner.
run_answers`). A plain model's step sent from worker processes sends each sample's own
request, which is this driver's one-turn case (:mod:`llmbench.runtime.offload`).
"""

from __future__ import annotations

from typing import Protocol

from llmbench.runtime.conversation import conversation_answer, next_ask
from llmbench.types import Ask, Completion, Sample


class Entrant(Protocol):
    """What answers a sample: a model (:class:`~llmbench.runtime.runner.ModelAnswerer`) or a
    strategy (:class:`~llmbench.strategies.base.Strategy`), asked an :class:`Ask` (None:
    the sample's own question)."""

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion: ...

    async def aclose(self) -> None: ...


class Driver:
    """(entrant, sample) -> the row's completion."""

    def __init__(self, entrant: Entrant) -> None:
        self.entrant = entrant

    async def answer(self, sample: Sample, index: int) -> Completion:
        """The entrant's answer to the sample: to its one request, or to each of its user
        turns after its own earlier answers (a failed turn ends the conversation)."""
        ask = Ask.of(sample)
        turns = [await self.entrant.answer(sample, index, ask)]
        if not sample.follow_ups:
            return turns[0]
        for question in sample.follow_ups:
            if turns[-1].error is not None:
                break
            ask = next_ask(ask, turns[-1], question)
            turns.append(await self.entrant.answer(sample, index, ask))
        return conversation_answer(turns)

    async def aclose(self) -> None:
        await self.entrant.aclose()

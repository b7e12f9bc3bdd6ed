"""The per-sample driver: the one place an entrant (a model or a strategy) is turned on one
sample and its answer becomes the row's completion.

Today a sample is one turn: the driver asks the entrant the sample's own question
(``Ask.of(sample)``: its conversation and tools) and the answer is the row. A conversation
of several turns (ask turn 1, append the answer, ask turn 2) and an agent loop (an answer
that calls tools, their results appended as tool turns, the entrant asked again) are loops
here, each turn an :class:`~llmbench.types.Ask` over the conversation so far, so a model
and a strategy run them alike and every call still goes through the entrant's members'
model clients.

The runner fans the driver out over a task's samples (:func:`llmbench.runtime.runner.
run_answers`). A plain model's step sent from worker processes sends each sample's own
request, which is this driver's one-turn case (:mod:`llmbench.runtime.offload`).
"""

from __future__ import annotations

from typing import Protocol

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
        return await self.entrant.answer(sample, index, Ask.of(sample))

    async def aclose(self) -> None:
        await self.entrant.aclose()

"""``evaluator_optimizer``: a generator answers; an evaluator critiques the answer and ends
with a verdict, ``[[PASS]]`` or ``[[REVISE]]``; on anything but a pass the generator
revises, shown its answer and the critique verbatim; up to ``max_rounds`` rounds or until
the evaluator passes it. Self-Refine is one model in both roles.

The generator's first answer is its own leaderboard row's request (a response-cache hit).
An evaluator shown the reference (``oracle: true``) measures what feedback could buy, not a
system one can deploy: the report's kind says so, and so does every critique's note.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from llmbench import prompts
from llmbench.pricing import estimated_tokens
from llmbench.schema import StrategySpec
from llmbench.scoring.extract import ExtractorSpec, NormalizeExtractor, RegexExtractor
from llmbench.strategies.base import (
    Options,
    Strategy,
    annotate,
    combine,
    judging,
    judging_length,
)
from llmbench.types import Ask, Completion, Sample

# What the prompts are rendered with. The critique's ``reference`` is empty unless the
# evaluator is an oracle; ``round`` counts critiques from 1.
CRITIQUE_SEES = ("prompt", "answer", "round", "reference")
REVISE_SEES = ("prompt", "answer", "critique")
VERDICT = re.compile(r"\[\[\s*(PASS|REVISE)\s*\]\]", re.IGNORECASE)
# How a critique is read where a strategy answers it (a vote of critics votes on verdicts).
VERDICT_READER: list[ExtractorSpec] = [
    RegexExtractor(type="regex", pattern=VERDICT.pattern, select="last", ignore_case=True),
    NormalizeExtractor(type="normalize"),
]


class EvaluatorOptimizerOptions(Options):
    max_rounds: int = Field(
        default=2,
        ge=1,
        le=10,
        description="critiques (each followed by a revision unless it passes)",
    )
    oracle: bool = Field(
        default=False,
        description="the evaluator sees the task's reference answer: an upper bound on what "
        "feedback buys, not deployable",
    )
    critique_prompt: Annotated[str, prompts.PromptText(CRITIQUE_SEES)] = prompts.prompt_field(
        "strategies/critique.j2", "the evaluator's prompt", CRITIQUE_SEES
    )
    revise_prompt: Annotated[str, prompts.PromptText(REVISE_SEES)] = prompts.prompt_field(
        "strategies/revise.j2", "the generator's prompt to revise", REVISE_SEES
    )
    evaluator_max_tokens: int = judging_length(
        "critique", "the evaluator's answer length: room for a critique before its verdict"
    )


def verdict_of(text: str) -> str | None:
    """The last ``[[PASS]]`` / ``[[REVISE]]`` in a critique, lower case (None: neither)."""
    found = VERDICT.findall(text)
    return found[-1].lower() if found else None


class EvaluatorOptimizer(Strategy):
    kind = "evaluator_optimizer"
    options_model = EvaluatorOptimizerOptions
    roles = frozenset({"generator", "evaluator"})
    required = roles

    @classmethod
    def describe(cls, spec: StrategySpec) -> str:
        if EvaluatorOptimizerOptions.model_validate(spec.options).oracle:
            return f"{cls.kind} (oracle: its evaluator sees the reference; not deployable)"
        return cls.kind

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        """The loop that never passes: a first answer and a revision per critique."""
        rounds = EvaluatorOptimizerOptions.model_validate(spec.options).max_rounds
        return {"generator": rounds + 1, "evaluator": rounds}

    @classmethod
    def worst_case_tokens(
        cls, spec: StrategySpec, own: Mapping[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        """The loop that never passes, with its prompts growing: each critique holds the
        question and the answer, each revision the question, the answer and the critique."""
        options = EvaluatorOptimizerOptions.model_validate(spec.options)
        rounds = options.max_rounds
        question, answer = own["generator"]
        critique = float(options.evaluator_max_tokens)
        critique_prompt = estimated_tokens(options.critique_prompt) + question + answer
        revise_prompt = estimated_tokens(options.revise_prompt) + question + answer + critique
        return {
            "generator": (question + rounds * revise_prompt, (rounds + 1) * answer),
            "evaluator": (rounds * critique_prompt, rounds * critique),
        }

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """The generator answers ``ask``; the critique and the revisions are built from
        it (its question; its conversation with the revision request as its last turn)."""
        options: EvaluatorOptimizerOptions = self.options
        generator, evaluator = self.members["generator"], self.members["evaluator"]
        oracle = " (oracle)" if options.oracle else ""
        asked = ask or Ask.of(sample)
        first = answer = await generator.ask(sample, index, ask)
        rounds: list[list[Completion]] = [[first]]
        for n in range(1, options.max_rounds + 1):
            if answer.error is not None:
                break
            critique = await evaluator.ask(
                sample,
                index,
                judging(
                    self._critique(sample, asked, answer, n),
                    options.evaluator_max_tokens,
                    VERDICT_READER,
                ),
                purpose="critique",
            )
            if critique.error is not None:
                rounds.append([annotate(critique, f"round {n}{oracle}: failed; answer kept")])
                break
            verdict = verdict_of(critique.text)
            said = verdict or "no verdict, revise"
            rounds.append([annotate(critique, f"round {n}{oracle}: {said}")])
            if verdict == "pass":
                break
            revision = await generator.ask(
                sample, index, self._revise(asked, answer, critique), purpose="revise"
            )
            if revision.error is not None:
                rounds.append([annotate(revision, f"round {n}: failed; previous answer kept")])
                break
            answer = revision
            rounds.append([answer])
        return self._final(first, answer, rounds, ask)

    def _critique(self, sample: Sample, asked: Ask, answer: Completion, n: int) -> str:
        options: EvaluatorOptimizerOptions = self.options
        reference = sample.references[0] if options.oracle and sample.references else ""
        context = {"prompt": asked.question(), "answer": answer.text, "round": n}
        return self.render(
            "critique_prompt", options.critique_prompt, context | {"reference": reference}
        )

    def _revise(self, asked: Ask, answer: Completion, critique: Completion) -> Ask:
        """The system prompt and earlier turns as they were, then the revision request:
        the question, the answer and the critique, verbatim."""
        options: EvaluatorOptimizerOptions = self.options
        context = {"prompt": asked.prompt, "answer": answer.text, "critique": critique.text}
        return asked.instead(self.render("revise_prompt", options.revise_prompt, context))

    def _final(
        self,
        first: Completion,
        final: Completion,
        rounds: list[list[Completion]],
        ask: Ask | None,
    ) -> Completion:
        """The answer, its call noting whether it differs from the first (by the task's
        extractors), so the share of changed answers is read from the trace."""
        at = next(r for r, round_ in enumerate(rounds) if round_[-1] is final)
        before, after = self.task.answer_of(first, ask), self.task.answer_of(final, ask)
        if final is first:
            note = "final: the first answer"
        elif before == after:
            note = f"final: revised, same answer as the first ({after!r})"
        else:
            note = f"final: changed from the first answer ({before!r} -> {after!r})"
        rounds[at][-1] = annotate(final, note)
        return combine(rounds[at][-1], rounds)

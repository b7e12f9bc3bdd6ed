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
from llmbench.schema import BenchConfig, StrategySpec
from llmbench.strategies.base import (
    Options,
    Strategy,
    annotate,
    check_model_member,
    combine,
    judging_length,
)
from llmbench.types import Completion, Message, Sample

# What the prompts are rendered with. The critique's ``reference`` is empty unless the
# evaluator is an oracle; ``round`` counts critiques from 1.
CRITIQUE_SEES = ("prompt", "answer", "round", "reference")
REVISE_SEES = ("prompt", "answer", "critique")
VERDICT = re.compile(r"\[\[\s*(PASS|REVISE)\s*\]\]", re.IGNORECASE)


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
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        # Both are asked prompts built for them: the evaluator a critique, the generator a
        # revision.
        for role in ("generator", "evaluator"):
            check_model_member(spec, config, f"members.{role}", role)

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

    async def answer(self, sample: Sample, index: int) -> Completion:
        options: EvaluatorOptimizerOptions = self.options
        generator, evaluator = self.members["generator"], self.members["evaluator"]
        oracle = " (oracle)" if options.oracle else ""
        first = answer = await generator.ask(sample, index)
        rounds: list[list[Completion]] = [[first]]
        for n in range(1, options.max_rounds + 1):
            if answer.error is not None:
                break
            critique = await evaluator.ask(
                sample,
                index,
                messages=[Message(role="user", content=self._critique(sample, answer, n))],
                purpose="critique",
                max_tokens=options.evaluator_max_tokens,
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
                sample, index, messages=self._revise(sample, answer, critique), purpose="revise"
            )
            if revision.error is not None:
                rounds.append([annotate(revision, f"round {n}: failed; previous answer kept")])
                break
            answer = revision
            rounds.append([answer])
        return self._final(first, answer, rounds)

    def _critique(self, sample: Sample, answer: Completion, n: int) -> str:
        options: EvaluatorOptimizerOptions = self.options
        reference = sample.references[0] if options.oracle and sample.references else ""
        context = {"prompt": sample.question(), "answer": answer.text, "round": n}
        return self.render(
            "critique_prompt", options.critique_prompt, context | {"reference": reference}
        )

    def _revise(self, sample: Sample, answer: Completion, critique: Completion) -> list[Message]:
        """The sample's system prompt as it was, then the revision request: the question,
        the answer and the critique, verbatim."""
        options: EvaluatorOptimizerOptions = self.options
        context = {"prompt": sample.prompt, "answer": answer.text, "critique": critique.text}
        text = self.render("revise_prompt", options.revise_prompt, context)
        return [*sample.messages()[:-1], Message(role="user", content=text)]

    def _final(
        self, first: Completion, final: Completion, rounds: list[list[Completion]]
    ) -> Completion:
        """The answer, its call noting whether it differs from the first (by the task's
        extractors), so the share of changed answers is read from the trace."""
        at = next(r for r, round_ in enumerate(rounds) if round_[-1] is final)
        before, after = self.task.answer_of(first), self.task.answer_of(final)
        if final is first:
            note = "final: the first answer"
        elif before == after:
            note = f"final: revised, same answer as the first ({after!r})"
        else:
            note = f"final: changed from the first answer ({before!r} -> {after!r})"
        rounds[at][-1] = annotate(final, note)
        return combine(rounds[at][-1], rounds)

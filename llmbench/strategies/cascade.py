"""``cascade``: ask the cheapest member first and escalate to the next while its answer
looks wrong: the task's extractors find no answer, k sampled answers disagree, a verifier
member grades it under a threshold, or the member's stated confidence is too low.

The first stage's first draw is exactly the request that member's own leaderboard row
sent, so it comes from the response cache; only escalations cost new calls.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from llmbench import prompts
from llmbench.pricing import estimated_tokens
from llmbench.schema import BenchConfig, ModelSpec, StrategySpec
from llmbench.scoring.extract import ExtractorSpec, RegexExtractor
from llmbench.scoring.verdict import parse_grade
from llmbench.strategies.base import (
    Options,
    Strategy,
    Sweep,
    annotate,
    check_role,
    combine,
    judging,
    judging_length,
    with_score,
)
from llmbench.strategies.vote import majority
from llmbench.types import Ask, Completion, Sample

# What the verifier's prompt is rendered with: the question (the task's system prompt with
# it) and the stage's answer.
VERIFIER_SEES = ("prompt", "answer")
CONFIDENCE = re.compile(r"confidence\W{0,3}(\d+(?:\.\d+)?)\s*(%?)", re.IGNORECASE)
Signal = Literal["no_answer", "disagreement", "low_grade", "low_confidence"]
# How a verifier's reply is read where a strategy answers it (a vote of verifiers votes on
# grades): the last [[n]], as the verifier prompt asks for it.
GRADE: list[ExtractorSpec] = [
    RegexExtractor(type="regex", pattern=r"\[\[\s*(\d+(?:\.\d+)?)", select="last")
]


class CascadeOptions(Options):
    order: list[str] | None = Field(
        default=None, description="stage roles, cheapest first; default: the members' order"
    )
    escalate_on: list[Signal] = Field(default=["no_answer"], min_length=1)
    samples: int = Field(default=3, ge=2, le=32, description="draws compared for disagreement")
    min_agreement: float = Field(
        default=1.0, gt=0, le=1, description="share of draws that must give the same answer"
    )
    verifier: str | None = Field(default=None, description="the role that grades answers")
    min_grade: float = Field(default=7.0, ge=1, le=10, description="verifier grade to accept")
    verifier_prompt: Annotated[str, prompts.PromptText(VERIFIER_SEES)] = prompts.prompt_field(
        "strategies/verifier.j2", "the verifier's prompt", VERIFIER_SEES
    )
    verifier_max_tokens: int = judging_length(
        "verify", "the verifier's answer length: room to explain before its [[grade]]"
    )
    min_confidence: float = Field(default=0.7, ge=0, le=1)

    @model_validator(mode="after")
    def _verifier_when_graded(self) -> CascadeOptions:
        if "low_grade" in self.escalate_on and self.verifier is None:
            raise ValueError("escalate_on low_grade needs 'verifier': the role that grades")
        return self


def stated_confidence(text: str) -> float | None:
    """The last "confidence: 0.8" / "Confidence 80%" in the text, on 0-1."""
    found = CONFIDENCE.findall(text)
    if not found:
        return None
    number, percent = found[-1]
    value = float(number)
    return value / 100.0 if percent or value > 1.0 else value


class Cascade(Strategy):
    kind = "cascade"
    options_model = CascadeOptions

    @classmethod
    def stages(cls, spec: StrategySpec, options: CascadeOptions) -> list[str]:
        if options.order is not None:
            return list(options.order)
        return [role for role in spec.members if role != options.verifier]

    @classmethod
    def check_options(cls, spec: StrategySpec, options: Any) -> None:
        assert isinstance(options, CascadeOptions)
        for n, role in enumerate(options.order or []):
            check_role(spec, f"order.{n}", role)
        if options.verifier is not None:
            check_role(spec, "verifier", options.verifier)
        if len(cls.stages(spec, options)) < 2:
            raise ValueError("members: a cascade needs two or more stages to escalate between")
        if options.verifier in cls.stages(spec, options):
            raise ValueError("options.verifier: the verifier cannot also be a stage")

    @classmethod
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        options = CascadeOptions.model_validate(spec.options)
        if "disagreement" not in options.escalate_on:
            return
        for role in cls.stages(spec, options)[:-1]:
            member = config.entrant(spec.members[role])
            if isinstance(member, ModelSpec) and member.params.temperature == 0:
                raise ValueError(
                    f"members.{role}: disagreement compares {options.samples} sampled answers, "
                    f"but {member.name} samples greedily (temperature 0): its draws would all "
                    "be the same; set its params.temperature above 0"
                )

    @classmethod
    def prompts(cls, spec: StrategySpec) -> dict[str, str]:
        texts = super().prompts(spec)
        if "low_grade" not in CascadeOptions.model_validate(spec.options).escalate_on:
            del texts["verifier_prompt"]  # no verifier is asked
        return texts

    @classmethod
    def sweep(cls, spec: StrategySpec) -> Sweep | None:
        """Two stages escalating on one graded signal: every threshold of it, from one run."""
        options = CascadeOptions.model_validate(spec.options)
        stages = cls.stages(spec, options)
        if len(stages) != 2 or set(options.escalate_on) not in ({"low_confidence"}, {"low_grade"}):
            return None
        return Sweep(weak=stages[0], strong=stages[1], direction=-1, escalates=True)

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        options = CascadeOptions.model_validate(spec.options)
        calls = cls.stage_calls(spec, options)
        if options.verifier is not None:
            calls[options.verifier] = len(cls.stages(spec, options)) - 1
        return calls

    @classmethod
    def stage_calls(cls, spec: StrategySpec, options: CascadeOptions) -> dict[str, int]:
        """Each stage's most answer calls per sample: every stage asked, k draws where the
        cascade compares them."""
        stages = cls.stages(spec, options)
        draws = options.samples if "disagreement" in options.escalate_on else 1
        calls = {role: draws for role in stages[:-1]}
        calls[stages[-1]] = 1
        return calls

    @classmethod
    def worst_case_tokens(
        cls, spec: StrategySpec, own: Mapping[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        """Every stage asked; a verifier's grading prompt holds the question and an answer,
        and its reply is as long as ``verifier_max_tokens``."""
        options = CascadeOptions.model_validate(spec.options)
        stages = cls.stages(spec, options)
        calls = cls.stage_calls(spec, options)
        worst = {role: (n * own[role][0], n * own[role][1]) for role, n in calls.items()}
        if options.verifier is not None:
            question = max(own[role][0] for role in stages)
            answer = max(own[role][1] for role in stages)
            grades = len(stages) - 1
            prompt = estimated_tokens(options.verifier_prompt) + question + answer
            stage = worst.get(options.verifier, (0.0, 0.0))
            worst[options.verifier] = (
                stage[0] + grades * prompt,
                stage[1] + grades * float(options.verifier_max_tokens),
            )
        return worst

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """Each stage answers ``ask``; its signals read the answers as ``ask``'s asker does
        (a grade, a label) and the verifier is shown ``ask``'s question."""
        options: CascadeOptions = self.options
        stages = self.stages(self.spec, options)
        rounds: list[list[Completion]] = []
        answer = Completion(finish_reason="error", error="cascade: no stage answered")
        for n, role in enumerate(stages):
            if n == len(stages) - 1:  # the last stage answers; nothing to escalate to
                answer = await self.members[role].ask(sample, index, ask)
                rounds.append([answer])
                break
            answer, why = await self._stage(sample, index, ask, role, rounds)
            if why is None:
                rounds[-1][-1] = annotate(rounds[-1][-1], "accepted")
                break
            rounds[-1][-1] = annotate(rounds[-1][-1], f"escalated: {why}")
        return combine(answer, rounds)

    async def _stage(
        self,
        sample: Sample,
        index: int,
        ask: Ask | None,
        role: str,
        rounds: list[list[Completion]],
    ) -> tuple[Completion, str | None]:
        """One stage's answer and the reason to escalate from it (None: accept it)."""
        options: CascadeOptions = self.options
        member = self.members[role]
        signals = set(options.escalate_on)
        if "disagreement" in signals and member.sampled:
            draws = await asyncio.gather(
                *(
                    member.ask(
                        sample, index, ask, draw=d, purpose="answer" if d == 0 else f"draw {d}"
                    )
                    for d in range(options.samples)
                )
            )
            rounds.append(list(draws))
            answers = [self.task.answer_of(d, ask) for d in draws]
            tally = majority(answers, [d.text for d in draws])
            chosen = draws[tally.chosen]
            if tally.agreement < options.min_agreement:
                return chosen, (
                    f"{tally.votes} of {len(draws)} draws agree ({tally.agreement:.2f} < "
                    f"{options.min_agreement:.2f})"
                )
        else:
            chosen = await member.ask(sample, index, ask)
            rounds.append([chosen])
        if chosen.error is not None:
            return chosen, "the request failed"
        extracted = self.task.answer_of(chosen, ask)
        if "no_answer" in signals and extracted is None:
            return chosen, "no answer extracted"
        if "low_confidence" in signals:
            confidence = stated_confidence(chosen.text)
            if confidence is None:
                return chosen, "no stated confidence"
            rounds[-1][-1] = with_score(rounds[-1][-1], confidence)
            if confidence < options.min_confidence:
                return chosen, f"stated confidence {confidence:.2f} < {options.min_confidence:.2f}"
        if "low_grade" in signals:
            assert options.verifier is not None
            prompt = self.render(
                "verifier_prompt",
                options.verifier_prompt,
                {"prompt": (ask or Ask.of(sample)).question(), "answer": chosen.text},
            )
            verdict = await self.members[options.verifier].ask(
                sample,
                index,
                judging(prompt, options.verifier_max_tokens, GRADE),
                purpose="verify",
            )
            grade = parse_grade(verdict.text, low=1, high=10) if verdict.error is None else None
            if grade is not None and grade.scored:
                verdict = with_score(verdict, grade.value)
            rounds.append([verdict])
            if grade is None or not grade.scored:
                return chosen, "the verifier gave no grade"
            if grade.value < options.min_grade:
                return chosen, f"verifier grade {grade.value:g} < {options.min_grade:g}"
        return chosen, None

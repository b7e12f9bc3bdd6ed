"""``router``: one member answers each prompt, chosen by rules (task, a regex on the prompt,
its length) and, where no rule decides, by a classifier member that labels the prompt.

Rules are tried in order; the first whose conditions all hold picks the member. The
classifier's call is part of the answer's trace and cost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from llmbench import prompts
from llmbench.schema import StrategySpec
from llmbench.scoring.extract import ExtractorSpec, NormalizeExtractor, RegexExtractor
from llmbench.strategies import learned
from llmbench.strategies.base import (
    JUDGING,
    Options,
    Strategy,
    Sweep,
    check_role,
    combine,
    judging,
    valid_regex,
    with_score,
)
from llmbench.types import Ask, Completion, Sample

# What the classifier's prompt is rendered with: the question (the task's system prompt
# with it) and the labels it may answer.
CLASSIFIER_SEES = ("prompt", "labels")


class Rule(Options):
    """Send a prompt to ``use`` when every condition given holds."""

    use: str = Field(description="the member role that answers")
    task: list[str] | None = Field(default=None, description="the task is one of these")
    regex: str | None = Field(default=None, description="the prompt matches (re.search)")
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)

    @field_validator("task", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        return valid_regex(pattern)

    @model_validator(mode="after")
    def _has_condition(self) -> Rule:
        if all(v is None for v in (self.task, self.regex, self.min_chars, self.max_chars)):
            raise ValueError("a rule needs a condition: task, regex, min_chars or max_chars")
        return self

    def reason(self, text: str, task: str) -> str | None:
        """Why this rule matches the prompt ``text`` (None: it does not)."""
        why: list[str] = []
        if self.task is not None:
            if task not in self.task:
                return None
            why.append(f"task {task}")
        if self.regex is not None:
            if re.search(self.regex, text) is None:
                return None
            why.append(f"prompt matches /{self.regex}/")
        if self.min_chars is not None:
            if len(text) < self.min_chars:
                return None
            why.append(f"prompt {len(text)} >= {self.min_chars} chars")
        if self.max_chars is not None:
            if len(text) > self.max_chars:
                return None
            why.append(f"prompt {len(text)} <= {self.max_chars} chars")
        return ", ".join(why)


class Classifier(Options):
    """A member labels the prompt; ``labels`` maps each label it may answer to a role."""

    member: str = Field(description="the role of the member that classifies")
    labels: dict[str, str] = Field(min_length=2, description="label -> role that answers")
    prompt: Annotated[str, prompts.PromptText(CLASSIFIER_SEES)] = prompts.prompt_field(
        "strategies/classifier.j2", "the classifier's prompt", CLASSIFIER_SEES
    )
    max_tokens: int = Field(
        default=JUDGING["classify"], ge=1, le=32768, description="the label's answer length"
    )


class Threshold(Options):
    """RouteLLM's shape of router: a score per prompt, the strong member when the score
    reaches ``at``. ``random``: a uniform score from the sample id and ``seed`` (the baseline
    every learned router is held against); ``learned``: a trained router's probability that
    the strong member is needed (``path``: from ``python -m llmbench.route train``)."""

    score: Literal["random", "learned"]
    path: str | None = Field(default=None, description="learned: the trained router file")
    strong: str = Field(description="the role answering when the score reaches 'at'")
    weak: str = Field(description="the role answering below it")
    at: float = Field(default=0.5, ge=0.0, le=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _learned_has_a_file(self) -> Threshold:
        if (self.score == "learned") != (self.path is not None):
            raise ValueError("'path' (the trained router file) goes with score: learned only")
        return self

    def of(self, sample: Sample, prompt: str) -> float:
        """The score of ``prompt``, asked about ``sample`` (a random score is the item's)."""
        if self.path is not None:
            return learned.load(self.path).score(prompt)
        digest = hashlib.sha256(f"{self.seed}:{sample.sample_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def trained_on(self, sample: Sample) -> bool:
        return self.path is not None and sample.sample_id in learned.load(self.path).train_ids


class RouterOptions(Options):
    rules: list[Rule] = Field(default_factory=list)
    threshold: Threshold | None = None
    classifier: Classifier | None = None
    default: str | None = Field(
        default=None, description="the role answering when nothing else decides"
    )

    @model_validator(mode="after")
    def _decides(self) -> RouterOptions:
        if self.default is None and self.classifier is None and self.threshold is None:
            raise ValueError("give 'default' (the role answering when no rule matches)")
        if self.threshold is not None and self.classifier is not None:
            raise ValueError("use 'threshold' or 'classifier' after the rules, not both")
        return self


def label_reader(labels: Iterable[str]) -> list[ExtractorSpec]:
    """How a classifier's reply is read when a strategy answers it: its first label, in
    lower case (a vote of classifiers then votes on labels)."""
    names = "|".join(re.escape(label) for label in labels)
    first = RegexExtractor(type="regex", pattern=rf"\b({names})\b", ignore_case=True)
    return [first, NormalizeExtractor(type="normalize")]


def label_of(reply: str, labels: dict[str, str]) -> str | None:
    """The first label named in the classifier's reply, as a whole word, case-insensitive."""
    found = [
        (match.start(), label)
        for label in labels
        if (match := re.search(rf"\b{re.escape(label)}\b", reply, re.IGNORECASE))
    ]
    return min(found)[1] if found else None


class Router(Strategy):
    kind = "router"
    options_model = RouterOptions

    @classmethod
    def sweep(cls, spec: StrategySpec) -> Sweep | None:
        options = RouterOptions.model_validate(spec.options)
        cut = options.threshold
        if cut is None or options.rules:  # rules decide some prompts: no single sweep
            return None
        return Sweep(weak=cut.weak, strong=cut.strong, direction=1)

    @classmethod
    def identity_extra(cls, spec: StrategySpec) -> dict[str, Any]:
        threshold = RouterOptions.model_validate(spec.options).threshold
        if threshold is None or threshold.path is None:
            return {}
        return {"router_file": learned.file_digest(threshold.path)}

    @classmethod
    def check_options(cls, spec: StrategySpec, options: Any) -> None:
        assert isinstance(options, RouterOptions)
        for n, rule in enumerate(options.rules):
            check_role(spec, f"rules.{n}.use", rule.use)
        if options.default is not None:
            check_role(spec, "default", options.default)
        if options.threshold is not None:
            check_role(spec, "threshold.strong", options.threshold.strong)
            check_role(spec, "threshold.weak", options.threshold.weak)
        if options.classifier is not None:
            check_role(spec, "classifier.member", options.classifier.member)
            for label, role in options.classifier.labels.items():
                check_role(spec, f"classifier.labels.{label}", role)

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """Rules and scores read the prompt asked (``ask``'s, else the sample's); the chosen
        member answers ``ask``."""
        options: RouterOptions = self.options
        asked = ask or Ask.of(sample)
        rounds: list[list[Completion]] = []
        for n, rule in enumerate(options.rules):
            why = rule.reason(asked.prompt, self.task.name)
            if why is not None:
                return await self._route(
                    sample, index, ask, rule.use, f"rule {n + 1}: {why}", rounds
                )
        if options.threshold is not None:
            cut = options.threshold
            if cut.trained_on(sample):
                return Completion(
                    finish_reason="error",
                    error="not scored: the learned router was trained on this item "
                    "(score it on the task's subset part: test)",
                )
            score = cut.of(sample, asked.prompt)
            role, sign = (cut.strong, ">=") if score >= cut.at else (cut.weak, "<")
            why = f"{cut.score} score {score:.3f} {sign} {cut.at:g}"
            return await self._route(sample, index, ask, role, why, rounds, score=score)
        if options.classifier is not None:
            spec = options.classifier
            prompt = self.render(
                "classifier.prompt",
                spec.prompt,
                {"prompt": asked.question(), "labels": list(spec.labels)},
            )
            reply = await self.members[spec.member].ask(
                sample,
                index,
                judging(prompt, spec.max_tokens, label_reader(spec.labels)),
                purpose="classify",
            )
            rounds.append([reply])
            label = None if reply.error else label_of(reply.text, spec.labels)
            if label is not None:
                return await self._route(
                    sample, index, ask, spec.labels[label], f"classifier said {label!r}", rounds
                )
            if options.default is None:
                return combine(
                    Completion(
                        finish_reason="error", error="router: the classifier named no label"
                    ),
                    rounds,
                )
            return await self._route(
                sample, index, ask, options.default, "classifier named no label: default", rounds
            )
        assert options.default is not None
        why = "no rule matched: default"
        return await self._route(sample, index, ask, options.default, why, rounds)

    async def _route(
        self,
        sample: Sample,
        index: int,
        ask: Ask | None,
        role: str,
        why: str,
        rounds: list[list[Completion]],
        *,
        score: float | None = None,
    ) -> Completion:
        member = self.members[role]
        answer = await member.ask(sample, index, ask, note=f"routed to {role}: {why}")
        if score is not None:
            answer = with_score(answer, score)
        rounds.append([answer])
        return combine(answer, rounds)

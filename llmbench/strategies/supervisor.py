"""``supervisor``: a planner splits the question into sub-questions, specialists answer them,
a synthesiser answers the question from their answers.

The planner is asked for a plan through a structured-output request: its answer must follow
a JSON schema (:func:`plan_schema`: a list of at most ``max_steps`` steps, each a sub-question
and the role of the specialist it goes to), which its provider enforces natively (the loader
refuses a planner whose provider cannot). The plan is still checked, against the shape it is
accepted in (:data:`PLAN_SCHEMA`): one that is not JSON or does not fit ends the answer as a
failed plan (an empty answer, scored as wrong, the planner's call in the trace with the
reason), never a crash. At most ``max_steps`` sub-questions are delegated; the note says how
many more the plan had.

Every member other than ``planner`` and ``synthesiser`` is a specialist, found by its role
name, or by a plan role name ``roles`` maps to it; a step naming no role or an unknown one
goes to ``default`` (none: the first specialist). The specialists answer side by side, each
shown its sub-question alone (``delegate_prompt``), without the task's stop sequences: a
sub-question is not in the task's format. The synthesiser is shown the question and every
sub-question with its answer verbatim (``synthesise_prompt``, after the task's system prompt);
its answer is the strategy's. A failed delegation is left out of what it is shown.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import jsonschema
from pydantic import Field

from llmbench import prompts
from llmbench.pricing import estimated_tokens
from llmbench.providers.registry import provider_class
from llmbench.schema import BenchConfig, ModelSpec, StrategySpec
from llmbench.strategies.base import (
    Member,
    Options,
    Strategy,
    annotate,
    combine,
)
from llmbench.types import Ask, Completion, Message, Sample

PLANNER, SYNTHESISER = "planner", "synthesiser"
PLAN_SEES = ("prompt", "roles", "max_steps")
DELEGATE_SEES = ("question", "role", "prompt")
SYNTHESISE_SEES = ("prompt", "steps")


def plan_schema(roles: Sequence[str] = (), max_steps: int | None = None) -> dict[str, Any]:
    """The plan's shape: steps, each a sub-question and the role it goes to. With ``roles``
    and ``max_steps``, the schema the planner is asked for: a provider that constrains its
    answer to it (llama.cpp's grammar) then writes only known roles and stops after the
    last step. Without them, the shape a plan is accepted in (:data:`PLAN_SCHEMA`): a
    role is optional and free text (a missing or unknown one goes to the default
    specialist) and a longer plan loses its tail, so a provider that enforces a schema
    loosely costs a step, not the answer."""
    role: dict[str, Any] = {"type": "string"}
    if roles:
        role["enum"] = list(roles)
    steps: dict[str, Any] = {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {"role": role, "question": {"type": "string", "minLength": 1}},
            "required": ["question"],
            "additionalProperties": False,
        },
    }
    if max_steps is not None:
        steps["maxItems"] = max_steps
    return {
        "type": "object",
        "properties": {"steps": steps},
        "required": ["steps"],
        "additionalProperties": False,
    }


PLAN_SCHEMA = plan_schema()
_VALIDATOR = jsonschema.Draft202012Validator(PLAN_SCHEMA)


class PlanError(ValueError):
    """A plan that cannot be followed: not JSON, or not of :data:`PLAN_SCHEMA`'s shape."""


@dataclass(frozen=True)
class Step:
    """One sub-question of a plan and the role the planner gave it (None: none)."""

    question: str
    role: str | None


def parse_plan(text: str) -> list[Step]:
    """The steps of a planner's answer, or :class:`PlanError` saying what is wrong with it."""
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(plan))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "the plan"
        raise PlanError(f"does not fit the plan's schema: {where}: {error.message}")
    return [Step(question=s["question"].strip(), role=s.get("role")) for s in plan["steps"]]


def _key(role: str) -> str:
    """A role name as plans are matched to it: case and surrounding spaces do not count."""
    return role.strip().lower()


class SupervisorOptions(Options):
    max_steps: int = Field(
        default=3,
        ge=1,
        le=10,
        description="the most sub-questions delegated; a longer plan's first max_steps are",
    )
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="plan role name -> specialist member role, for names besides the "
        "specialists' own (each specialist answers to its own role name)",
    )
    default: str | None = Field(
        default=None,
        description="the specialist for a sub-question with no role or an unknown one; "
        "none: the first specialist",
    )
    plan_prompt: Annotated[str, prompts.PromptText(PLAN_SEES)] = prompts.prompt_field(
        "strategies/plan.j2", "the planner's prompt", PLAN_SEES
    )
    delegate_prompt: Annotated[str, prompts.PromptText(DELEGATE_SEES)] = prompts.prompt_field(
        "strategies/delegate.j2", "a specialist's prompt for its sub-question", DELEGATE_SEES
    )
    synthesise_prompt: Annotated[str, prompts.PromptText(SYNTHESISE_SEES)] = prompts.prompt_field(
        "strategies/synthesise.j2", "the synthesiser's prompt", SYNTHESISE_SEES
    )
    planner_max_tokens: int = Field(
        default=512,
        ge=8,
        le=32768,
        description="the planner's answer length: room for the whole JSON plan",
    )
    delegate_max_tokens: int = Field(
        default=256,
        ge=8,
        le=32768,
        description="a specialist's answer length (a sub-question is not in the task's "
        "format, so the task's is not used)",
    )
    synthesiser_max_tokens: int | None = Field(
        default=None,
        ge=8,
        le=32768,
        description="the synthesiser's answer length; none: its own max_tokens",
    )


def specialists(spec: StrategySpec) -> list[str]:
    """The specialist roles, in the config's order."""
    return [role for role in spec.members if role not in (PLANNER, SYNTHESISER)]


class Supervisor(Strategy):
    kind = "supervisor"
    options_model = SupervisorOptions
    required = frozenset({PLANNER, SYNTHESISER})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options: SupervisorOptions = self.options
        own = specialists(self.spec)
        self.route = {_key(role): role for role in own} | {
            _key(name): role for name, role in options.roles.items()
        }
        self.plan_roles = [*own, *options.roles]
        self.fallback = options.default or own[0]

    @classmethod
    def check_options(cls, spec: StrategySpec, options: Any) -> None:
        assert isinstance(options, SupervisorOptions)
        own = specialists(spec)
        if not own:
            raise ValueError(
                "members: a supervisor needs at least one specialist besides its planner and "
                "synthesiser (any other role name)"
            )
        named = {_key(role) for role in own}
        mapped: dict[str, str] = {}
        for name, role in options.roles.items():
            if not name.strip():
                raise ValueError("options.roles: a plan role name cannot be empty")
            if _key(name) in named:
                raise ValueError(
                    f"options.roles.{name}: {name!r} is already a specialist's own role; "
                    "map only other names"
                )
            if _key(name) in mapped:
                raise ValueError(
                    f"options.roles.{name}: {mapped[_key(name)]!r} and {name!r} are one name "
                    "to a plan (case and spaces do not count); keep one"
                )
            mapped[_key(name)] = name
            if role not in own:
                raise ValueError(
                    f"options.roles.{name}: no specialist with role {role!r}; "
                    f"the specialists are {', '.join(own)}"
                )
        if options.default is not None and options.default not in own:
            raise ValueError(
                f"options.default: no specialist with role {options.default!r}; "
                f"the specialists are {', '.join(own)}"
            )

    @classmethod
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        # Specialists and the synthesiser answer the prompt built for them, a strategy too;
        # the plan is structured output, which only a model's provider can constrain.
        planner = config.entrant(spec.members[PLANNER])
        if not isinstance(planner, ModelSpec):
            raise ValueError(
                f"members.{PLANNER}: {planner.name} is a strategy, but the plan is asked for "
                "as structured output (a JSON schema), which only a model's provider can "
                "constrain; name a model"
            )
        if not provider_class(planner.provider).honours_response_schema:
            raise ValueError(
                f"members.{PLANNER}: {planner.name}'s provider ({planner.provider}) cannot "
                "constrain an answer to a JSON schema, which the plan is asked for; use a "
                "model of openai, gemini, ollama or llamacpp"
            )

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        """A full plan, every sub-question to the same specialist (whichever it is)."""
        steps = SupervisorOptions.model_validate(spec.options).max_steps
        calls = dict.fromkeys(specialists(spec), steps)
        return {PLANNER: 1, **calls, SYNTHESISER: 1}

    @classmethod
    def worst_case_tokens(
        cls, spec: StrategySpec, own: Mapping[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        """A plan at its full length with max_steps sub-questions, each to every specialist
        (an upper bound: all of them together answer max_steps), each answer at its length;
        the planner's prompt holds the role names and the schema (sent as part of it, as
        pricing's budget reservation counts it), the synthesiser's the question, the plan's
        sub-questions (no longer than the plan) and every answer."""
        options = SupervisorOptions.model_validate(spec.options)
        steps, plan = options.max_steps, float(options.planner_max_tokens)
        question = max(prompt for prompt, _ in own.values())
        names = [*specialists(spec), *options.roles]
        asked = estimated_tokens(options.plan_prompt) + estimated_tokens(", ".join(names))
        asked += estimated_tokens(json.dumps(plan_schema(names, steps)))
        worst = {PLANNER: (asked + question, plan)}
        delegate = estimated_tokens(options.delegate_prompt) + question
        for role in specialists(spec):
            worst[role] = (steps * delegate + plan, float(steps * options.delegate_max_tokens))
        shown = plan + steps * options.delegate_max_tokens
        synthesised = options.synthesiser_max_tokens or own[SYNTHESISER][1]
        prompt = estimated_tokens(options.synthesise_prompt) + question + shown
        worst[SYNTHESISER] = (prompt, float(synthesised))
        return worst

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        options: SupervisorOptions = self.options
        asked = ask or Ask.of(sample)
        planned = await self._plan(sample, index, asked)
        if planned.error is not None:
            return combine(planned, [[planned]])
        try:
            steps = parse_plan(planned.text)
        except PlanError as exc:
            return self._rejected(planned, str(exc))
        kept = steps[: options.max_steps]
        note = f"plan: {len(steps)} sub-question{'s' if len(steps) != 1 else ''}"
        if len(steps) > len(kept):
            note += f"; step limit {options.max_steps}: {len(steps) - len(kept)} dropped"
        planned = annotate(planned, note)
        routed = [self._specialist(step) for step in kept]
        delegated = list(
            await asyncio.gather(
                *(
                    self._delegate(sample, index, asked, n, step, member, why)
                    for n, (step, (member, why)) in enumerate(zip(kept, routed, strict=True), 1)
                )
            )
        )
        rounds: list[list[Completion]] = [[planned], delegated]
        shown = [
            {"question": step.question, "role": member.role, "answer": done.text}
            for step, (member, _), done in zip(kept, routed, delegated, strict=True)
            if done.error is None
        ]
        if not shown:
            first = annotate(delegated[0], "every delegation failed; nothing to synthesise")
            rounds[1][0] = first
            return combine(first, rounds)
        text = self.render(
            "synthesise_prompt",
            options.synthesise_prompt,
            {"prompt": asked.prompt, "steps": shown},
        )
        final = await self.members[SYNTHESISER].ask(
            sample,
            index,
            asked.instead(text, max_tokens=options.synthesiser_max_tokens, agent=None),
            purpose="synthesise",
        )
        left_out = len(delegated) - len(shown)
        note = f"synthesised from {len(shown)} sub-answer{'s' if len(shown) != 1 else ''}"
        if left_out:
            note += f" ({left_out} failed, left out)"
        if final.error is not None:
            note += "; failed"
        final = annotate(final, note)
        rounds.append([final])
        return combine(final, rounds)

    async def _plan(self, sample: Sample, index: int, asked: Ask) -> Completion:
        """The planner's answer to the plan prompt, asked to follow :func:`plan_schema`."""
        options: SupervisorOptions = self.options
        context = {
            "prompt": asked.question(),
            "roles": self.plan_roles,
            "max_steps": options.max_steps,
        }
        text = self.render("plan_prompt", options.plan_prompt, context)
        plan = Ask(
            messages=(Message(role="user", content=text),),
            max_tokens=options.planner_max_tokens,
            stop=(),  # a JSON plan is not in the task's format
            response_schema=plan_schema(self.plan_roles, options.max_steps),
        )
        planned = await self.members[PLANNER].ask(sample, index, plan, purpose="plan")
        return annotate(planned, "plan: failed") if planned.error is not None else planned

    def _specialist(self, step: Step) -> tuple[Member, str]:
        """The specialist a step goes to, and why."""
        if step.role is not None and _key(step.role) in self.route:
            role = self.route[_key(step.role)]
            why = f"role {step.role!r}" if role == step.role else f"role {step.role!r} -> {role}"
            return self.members[role], why
        said = "no role" if step.role is None else f"unknown role {step.role!r}"
        return self.members[self.fallback], f"{said}: default {self.fallback}"

    async def _delegate(
        self, sample: Sample, index: int, asked: Ask, n: int, step: Step, member: Member, why: str
    ) -> Completion:
        options: SupervisorOptions = self.options
        context = {"question": step.question, "role": member.role, "prompt": asked.prompt}
        text = self.render("delegate_prompt", options.delegate_prompt, context)
        sub_question = Ask(
            messages=(Message(role="user", content=text),),
            max_tokens=options.delegate_max_tokens,
            stop=(),  # a sub-question is not in the task's format
            agent=asked.agent,  # a specialist answers it, with the task's tools if it has any
        )
        done = await member.ask(sample, index, sub_question, purpose=f"delegate {member.role}")
        failed = "; failed" if done.error is not None else ""
        return annotate(done, f"step {n}: {why}{failed}")

    def _rejected(self, planned: Completion, why: str) -> Completion:
        """A plan that cannot be followed as the row's answer: no text (so it is scored as
        wrong, as an answer with nothing to extract is), the reason on the planner's call."""
        options: SupervisorOptions = self.options
        if planned.finish_reason == "length":
            why += f" (cut at planner_max_tokens, {options.planner_max_tokens})"
        reason = f"plan rejected: {why}"
        *head, last = planned.trace
        call = last.model_copy(update={"error": reason, "note": reason})
        rejected = planned.model_copy(update={"text": "", "trace": [*head, call]})
        return combine(rejected, [[rejected]])

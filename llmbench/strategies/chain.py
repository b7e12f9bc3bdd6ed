"""``chain``: a fixed sequence of prompt steps, each a template over the question and the
earlier steps' outputs, each asked of its own member; the last step's output is the answer.

A step may have gates, checked in order on its output: a check (``answer``: the task's
extractors find an answer; ``regex``: a pattern is found; ``judge``: a member says yes to
the gate's prompt) and, when it holds (``when``: passed or failed), an action: ``stop``
(this output is the answer), ``retry`` (ask the step again, up to ``times``, each a distinct
draw) or ``branch`` (go on at the named step). A retry gate that has used its retries lets
the next gate decide; no gate acting goes on to the next step. ``max_steps`` bounds the
step runs, so a branch back to an earlier step cannot loop for ever.

A step without a prompt is asked the question itself: from its member's own leaderboard row,
a response-cache hit. Every call's ``round`` is its step's index and its purpose the step's
name, so per-step figures are read from the trace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from jinja2 import nodes
from pydantic import Field, field_validator, model_validator

from llmbench import prompts
from llmbench.pricing import estimated_tokens
from llmbench.schema import BenchConfig, StrategySpec
from llmbench.scoring.extract import ExtractorSpec, NormalizeExtractor, RegexExtractor
from llmbench.strategies.base import (
    Options,
    Strategy,
    annotate,
    check_role,
    combine,
    judging,
    judging_length,
    valid_regex,
)
from llmbench.types import Ask, Completion, Sample

# What a step's prompt is rendered with: the question's last user turn (the system prompt
# and earlier turns are sent as they were), the previous step's output and every step's
# latest output by name (empty for a step not run yet).
STEP_SEES = ("prompt", "previous", "steps")
# What a judge gate's prompt is rendered with: the question (system prompt first), the
# step's output and the step's name.
GATE_SEES = ("prompt", "answer", "step")
YES_NO: list[ExtractorSpec] = [
    RegexExtractor(type="regex", pattern=r"\b(yes|no)\b", ignore_case=True),
    NormalizeExtractor(type="normalize"),
]
STEP_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Gate(Options):
    """A check on a step's output and what to do when it holds."""

    check: Literal["answer", "regex", "judge"] = Field(
        description="answer: the task's extractors find an answer; regex: 'pattern' is "
        "found (re.search); judge: the member 'judge' says yes to 'prompt'"
    )
    pattern: str | None = Field(default=None, description="regex: the pattern")
    judge: str | None = Field(default=None, description="judge: the role that says yes or no")
    prompt: Annotated[str, prompts.PromptText(GATE_SEES)] = prompts.prompt_field(
        "strategies/chain_gate.j2", "judge: the yes-or-no question", GATE_SEES
    )
    max_tokens: int = judging_length("verify", "judge: the answer length of its reply")
    action: Literal["stop", "retry", "branch"]
    when: Literal["passed", "failed"] | None = Field(
        default=None,
        description="act when the check passed or failed; default: passed for stop and "
        "branch, failed for retry",
    )
    times: int = Field(default=1, ge=1, le=10, description="retry: at most this many retries")
    to: str | None = Field(default=None, description="branch: the step to go on at")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        return valid_regex(pattern)

    @model_validator(mode="after")
    def _fields_fit(self) -> Gate:
        if (self.check == "regex") != (self.pattern is not None):
            raise ValueError("'pattern' goes with check: regex, and check: regex needs one")
        if (self.check == "judge") != (self.judge is not None):
            raise ValueError("'judge' (a role) goes with check: judge, and check: judge needs one")
        if (self.action == "branch") != (self.to is not None):
            raise ValueError("'to' (a step's name) goes with action: branch, which needs one")
        return self

    @property
    def acts_when(self) -> str:
        return self.when or ("failed" if self.action == "retry" else "passed")


class Step(Options):
    name: str = Field(pattern=STEP_NAME, description="how later prompts and gates name it")
    member: str = Field(description="the role that answers it")
    prompt: Annotated[str | None, prompts.PromptText(STEP_SEES)] = Field(
        default=None,
        description="a Jinja2 template string or {file: <path>}; it sees "
        f"{', '.join(STEP_SEES)}; none: the question itself (the member's own answer)",
    )
    max_tokens: int | None = Field(
        default=None, ge=1, le=32768, description="its answer length; none: the member's own"
    )
    stop: list[str] | None = Field(
        default=None,
        description="its stop sequences ([]: none, for a step that works at length); none: "
        "the member's own with the task's",
    )
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="its temperature; none: the member's own"
    )
    gates: list[Gate] = Field(default_factory=list)


class ChainOptions(Options):
    steps: list[Step] = Field(min_length=1)
    max_steps: int = Field(
        default=10, ge=1, le=100, description="at most this many step runs (branches loop)"
    )

    @field_validator("steps")
    @classmethod
    def _names_are_unique(cls, steps: list[Step]) -> list[Step]:
        seen: set[str] = set()
        for step in steps:
            if step.name in seen:
                raise ValueError(f"two steps are named {step.name!r}; name each step once")
            seen.add(step.name)
        return steps


def steps_read(template: str) -> set[str]:
    """The step names a template reads as ``steps.<name>`` or ``steps['<name>']``."""
    tree = prompts.ENV.parse(template)
    names = {
        node.attr
        for node in tree.find_all(nodes.Getattr)
        if isinstance(node.node, nodes.Name) and node.node.name == "steps"
    }
    names |= {
        str(node.arg.value)
        for node in tree.find_all(nodes.Getitem)
        if isinstance(node.node, nodes.Name)
        and node.node.name == "steps"
        and isinstance(node.arg, nodes.Const)
    }
    return names


class Chain(Strategy):
    kind = "chain"
    options_model = ChainOptions

    @classmethod
    def check_options(cls, spec: StrategySpec, options: Any) -> None:
        assert isinstance(options, ChainOptions)
        names = [step.name for step in options.steps]
        for n, step in enumerate(options.steps):
            check_role(spec, f"steps.{n}.member", step.member)
            for unknown in sorted(steps_read(step.prompt or "") - set(names)):
                raise ValueError(
                    f"options.steps.{n}.prompt: the template reads steps.{unknown}, but no "
                    f"step is named {unknown!r}; the steps are {', '.join(names)}"
                )
            for g, gate in enumerate(step.gates):
                if gate.judge is not None:
                    check_role(spec, f"steps.{n}.gates.{g}.judge", gate.judge)
                if gate.to is not None and gate.to not in names:
                    raise ValueError(
                        f"options.steps.{n}.gates.{g}.to: no step named {gate.to!r}; "
                        f"the steps are {', '.join(names)}"
                    )

    @classmethod
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        """A retried step is asked again as a distinct draw, which must be able to differ:
        not a strategy's (it answers once) nor a greedy model's."""
        for n, step in enumerate(ChainOptions.model_validate(spec.options).steps):
            if not any(gate.action == "retry" for gate in step.gates):
                continue
            entrant = config.entrant(spec.members[step.member])
            if isinstance(entrant, StrategySpec):
                raise ValueError(
                    f"options.steps.{n}.member: a retry asks the step again as a new draw, "
                    f"but {entrant.name!r} is a strategy, which answers once; a step with a "
                    "retry gate needs a model"
                )
            temperature = step.temperature
            if (temperature if temperature is not None else entrant.params.temperature) == 0:
                raise ValueError(
                    f"options.steps.{n}.temperature: a retry asks the step again as a new "
                    f"draw, but {entrant.name} samples greedily (temperature 0) and would "
                    "give the same answer; set the step's temperature above 0 (or the "
                    "member's params.temperature)"
                )

    @classmethod
    def prompts(cls, spec: StrategySpec) -> dict[str, str]:
        """The prompts it sends: its steps' (not a step asked the question itself) and its
        judge gates'."""
        options = ChainOptions.model_validate(spec.options)
        texts: dict[str, str] = {}
        for n, step in enumerate(options.steps):
            if step.prompt is not None:
                texts[f"steps.{n}.prompt"] = step.prompt
            for g, gate in enumerate(step.gates):
                if gate.check == "judge":
                    texts[f"steps.{n}.gates.{g}.prompt"] = gate.prompt
        return texts

    @classmethod
    def cyclic(cls, options: ChainOptions) -> bool:
        """Whether a branch goes back (to its own step or an earlier one)."""
        at = {step.name: n for n, step in enumerate(options.steps)}
        return any(
            gate.to is not None and at[gate.to] <= n
            for n, step in enumerate(options.steps)
            for gate in step.gates
        )

    @classmethod
    def runs(cls, options: ChainOptions) -> int:
        """At most how often one step runs: once, unless a branch goes back."""
        return options.max_steps if cls.cyclic(options) else 1

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        """Every step run with every retry, each asking its judges again; with a branch back,
        ``max_steps`` runs of the step that calls a role most."""
        options = ChainOptions.model_validate(spec.options)
        per_run = [cls._calls_per_run(step) for step in options.steps]
        calls = dict.fromkeys(spec.members, 0)
        for role in calls:
            counts = [run.get(role, 0) for run in per_run]
            calls[role] = options.max_steps * max(counts) if cls.cyclic(options) else sum(counts)
        return calls

    @staticmethod
    def _calls_per_run(step: Step) -> dict[str, int]:
        asks = 1 + sum(gate.times for gate in step.gates if gate.action == "retry")
        calls = {step.member: asks}
        for gate in step.gates:
            if gate.judge is not None:
                calls[gate.judge] = calls.get(gate.judge, 0) + asks
        return calls

    @classmethod
    def worst_case_tokens(
        cls, spec: StrategySpec, own: Mapping[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        """Every step run and retried, its prompt growing with the earlier steps' outputs
        (each as long as its answer length): a step's prompt holds the template, the
        question and every output before it (every step's, with a branch back); a judge's
        holds its prompt, the question and the step's output."""
        options = ChainOptions.model_validate(spec.options)
        question = max(own[role][0] for role in spec.members)
        out = [
            float(step.max_tokens) if step.max_tokens else own[step.member][1]
            for step in options.steps
        ]
        cyclic, runs = cls.cyclic(options), cls.runs(options)
        worst: dict[str, tuple[float, float]] = {}

        def add(role: str, prompt: float, output: float) -> None:
            held = worst.get(role, (0.0, 0.0))
            worst[role] = (held[0] + prompt, held[1] + output)

        per_role: dict[str, list[tuple[float, float]]] = {}
        for n, step in enumerate(options.steps):
            asks = cls._calls_per_run(step)[step.member]
            shown = sum(out) if cyclic else sum(out[:n])
            prompt = (
                own[step.member][0]
                if step.prompt is None
                else estimated_tokens(step.prompt) + question + shown
            )
            run = {step.member: (asks * prompt, asks * out[n])}
            for gate in step.gates:
                if gate.judge is not None:
                    judged = estimated_tokens(gate.prompt) + question + out[n]
                    held = run.get(gate.judge, (0.0, 0.0))
                    run[gate.judge] = (
                        held[0] + asks * judged,
                        held[1] + asks * float(gate.max_tokens),
                    )
            for role, sizes in run.items():
                per_role.setdefault(role, []).append(sizes)
        for role, each in per_role.items():
            if cyclic:  # max_steps runs of the step that costs this role most
                prompt, output = max(each, key=lambda t: t[0] + t[1])
                add(role, runs * prompt, runs * output)
            else:
                for prompt, output in each:
                    add(role, prompt, output)
        return {role: worst.get(role, (0.0, 0.0)) for role in spec.members}

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """The steps in order from the first, each asked ``ask``'s conversation with its own
        prompt as the last turn (a step without one: ``ask`` itself), until the last step
        has answered, a gate stops the chain, or ``max_steps`` runs were made."""
        options: ChainOptions = self.options
        asked = ask or Ask.of(sample)
        outputs = {step.name: "" for step in options.steps}
        rounds: list[list[Completion]] = []
        numbers: list[int] = []
        n, runs, previous = 0, 0, ""
        answer = Completion(finish_reason="error", error="chain: no step answered")
        while n < len(options.steps):
            if runs == options.max_steps:
                rounds[-1][-1] = annotate(rounds[-1][-1], f"max_steps ({runs}) reached")
                break
            runs += 1
            run = Run(sample, index, ask, asked, n, options.steps[n])
            answer, go = await self._run(run, outputs, previous)
            rounds.extend([done] for done in run.calls)
            numbers.extend([n] * len(run.calls))
            if answer.error is not None or go is None:
                break
            outputs[run.step.name] = previous = answer.text
            n = go
        return combine(answer, rounds, numbers)

    async def _run(
        self, run: Run, outputs: Mapping[str, str], previous: str
    ) -> tuple[Completion, int | None]:
        """One run of a step: its answer (retried as its gates say) and the index of the
        step to go on at (None: stop here, this answer is the chain's)."""
        step, asking = run.step, run.ask
        if step.prompt is not None:
            context = {"prompt": run.asked.prompt, "previous": previous, "steps": dict(outputs)}
            text = self.render(f"steps.{run.n}.prompt", step.prompt, context)
            asking = run.asked.instead(text)
        stop = None if step.stop is None else tuple(step.stop)
        own = {"max_tokens": step.max_tokens, "stop": stop, "temperature": step.temperature}
        if any(value is not None for value in own.values()):
            update = {name: value for name, value in own.items() if value is not None}
            asking = (asking or run.asked).model_copy(update=update)
        used = [0] * len(step.gates)
        draw = 0
        while True:
            purpose = step.name if draw == 0 else f"{step.name}, retry {draw}"
            done = await self.members[step.member].ask(
                run.sample, run.index, asking, draw=draw, purpose=purpose
            )
            run.calls.append(done)
            if done.error is not None:
                run.note(f"{step.name}: failed")
                return done, None
            retry = False
            for g, gate in enumerate(step.gates):
                passed = await self._check(run, g, done)
                said = "no verdict" if passed is None else "passed" if passed else "failed"
                head = f"gate {g + 1} ({gate.check}): {said}"
                if said != gate.acts_when:
                    run.note(head)
                elif gate.action == "stop":
                    run.note(f"{head}: stop")
                    return done, None
                elif gate.action == "branch":
                    assert gate.to is not None
                    run.note(f"{head}: branch to {gate.to}")
                    return done, [s.name for s in self.options.steps].index(gate.to)
                elif used[g] < gate.times:
                    used[g] += 1
                    run.note(f"{head}: retry {used[g]} of {gate.times}")
                    retry = True
                    break
                else:
                    run.note(f"{head}: no retries left")
            if not retry:
                return done, run.n + 1
            draw += 1

    async def _check(self, run: Run, g: int, done: Completion) -> bool | None:
        """Whether ``done`` passes gate ``g`` of the run's step (None: its judge failed or
        said neither yes nor no: the gate does not act)."""
        gate = run.step.gates[g]
        if gate.check == "answer":
            return self.task.answer_of(done, run.asked) is not None
        if gate.check == "regex":
            assert gate.pattern is not None
            return re.search(gate.pattern, done.text) is not None
        assert gate.judge is not None
        context = {"prompt": run.asked.question(), "answer": done.text, "step": run.step.name}
        text = self.render(f"steps.{run.n}.gates.{g}.prompt", gate.prompt, context)
        asking = judging(text, gate.max_tokens, YES_NO)
        reply = await self.members[gate.judge].ask(
            run.sample, run.index, asking, purpose=f"{run.step.name} gate"
        )
        run.calls.append(reply)
        said = self.task.answer_of(reply, asking)
        return None if said is None else said == "yes"


@dataclass
class Run:
    """One run of step ``n`` for one sample: what it is asked and the calls it made (its
    answers and its judges' replies, in order)."""

    sample: Sample
    index: int
    ask: Ask | None
    asked: Ask
    n: int
    step: Step
    calls: list[Completion] = field(default_factory=list)

    def note(self, note: str) -> None:
        """``note`` on the run's latest call (the step's answer, or a judge's reply)."""
        self.calls[-1] = annotate(self.calls[-1], note)

"""``mixture_of_agents`` (Wang et al. 2024): layers of proposers, then an aggregator.

Layer 1: every proposer answers the sample (at its own settings, draw 0 is exactly its own
leaderboard row's request, a response-cache hit). Each further layer: every proposer answers
again, shown all of the previous layer's answers (``propose_prompt``). Last, the aggregator
synthesises one answer from the last layer's answers (``aggregate_prompt``); its answer is
the strategy's. The aggregator is the role ``aggregator``; every other role is a proposer.

Self-MoA is one proposer with ``samples``: n draws of it (at ``temperature``) stand for the
proposers, as a vote's draws do. Failed proposals are left out of what the next layer and
the aggregator are shown; a layer with no answer at all ends the run with its first failure.
The prompts built for proposers and aggregator keep the task's system prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from llmbench import prompts
from llmbench.pricing import estimated_tokens
from llmbench.schema import BenchConfig, StrategySpec
from llmbench.strategies.base import Options, Strategy, annotate, combine
from llmbench.strategies.vote import ask_draws, check_draws
from llmbench.types import Ask, Completion, Sample

# What the prompts are rendered with: the question, the previous layer's answers (a list,
# failures left out) and, for a proposer, the layer it answers in (2 and up).
PROPOSE_SEES = ("prompt", "answers", "layer")
AGGREGATE_SEES = ("prompt", "answers")
AGGREGATOR = "aggregator"


class MixtureOfAgentsOptions(Options):
    layers: int = Field(
        default=1,
        ge=1,
        le=10,
        description="proposer layers: 1, each proposer answers once; each further layer "
        "answers again shown the previous layer's answers",
    )
    samples: int | None = Field(
        default=None,
        ge=2,
        le=64,
        description="draws of each proposer per layer (with one proposer: Self-MoA); none: "
        "each proposer answers once per layer",
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="the proposers' temperature; none: each one's own (layer 1's draw 0 is "
        "then its own row's request, from the response cache)",
    )
    propose_prompt: Annotated[str, prompts.PromptText(PROPOSE_SEES)] = prompts.prompt_field(
        "strategies/moa_propose.j2", "a proposer's prompt in layers 2 and up", PROPOSE_SEES
    )
    aggregate_prompt: Annotated[str, prompts.PromptText(AGGREGATE_SEES)] = prompts.prompt_field(
        "strategies/moa_aggregate.j2", "the aggregator's prompt", AGGREGATE_SEES
    )
    aggregator_max_tokens: int | None = Field(
        default=None,
        ge=8,
        le=32768,
        description="the aggregator's answer length; none: its own max_tokens",
    )


class MixtureOfAgents(Strategy):
    kind = "mixture_of_agents"
    options_model = MixtureOfAgentsOptions
    required = frozenset({AGGREGATOR})

    @classmethod
    def check_options(cls, spec: StrategySpec, options: object) -> None:
        if not [role for role in spec.members if role != AGGREGATOR]:
            raise ValueError(
                "members: a mixture_of_agents needs at least one proposer besides its "
                "aggregator (any other role name)"
            )

    @classmethod
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        options = MixtureOfAgentsOptions.model_validate(spec.options)
        for role, name in spec.members.items():
            if role != AGGREGATOR:
                check_draws(role, config.entrant(name), options.samples, options.temperature)

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        options = MixtureOfAgentsOptions.model_validate(spec.options)
        per_proposer = options.layers * (options.samples or 1)
        return {role: 1 if role == AGGREGATOR else per_proposer for role in spec.members}

    @classmethod
    def worst_case_tokens(
        cls, spec: StrategySpec, own: Mapping[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        """Every layer after the first shows the proposers the whole previous layer's answers,
        and the aggregator the last layer's: prompts that grow with the proposers and draws."""
        options = MixtureOfAgentsOptions.model_validate(spec.options)
        draws = options.samples or 1
        proposers = [role for role in spec.members if role != AGGREGATOR]
        question = max(own[role][0] for role in proposers)
        shown = len(proposers) * draws * max(own[role][1] for role in proposers)
        later = estimated_tokens(options.propose_prompt) + question + shown
        worst = {
            role: (
                draws * (own[role][0] + (options.layers - 1) * later),
                draws * options.layers * own[role][1],
            )
            for role in proposers
        }
        aggregated = options.aggregator_max_tokens or own[AGGREGATOR][1]
        prompt = estimated_tokens(options.aggregate_prompt) + question + shown
        worst[AGGREGATOR] = (prompt, float(aggregated))
        return worst

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        """Layer 1 answers ``ask``; later layers and the aggregator are asked its
        conversation with their own prompt, over its question, as its last turn."""
        options: MixtureOfAgentsOptions = self.options
        asked = ask or Ask.of(sample)
        proposers = [m for role, m in self.members.items() if role != AGGREGATOR]
        layer = await ask_draws(
            proposers,
            sample,
            index,
            ask,
            samples=options.samples,
            temperature=options.temperature,
        )
        rounds: list[list[Completion]] = [layer]
        for n in range(2, options.layers + 1):
            answers = self._answered(layer)
            if not answers:
                return self._failed(rounds, n - 1)
            context = {"prompt": asked.prompt, "answers": answers, "layer": n}
            text = self.render("propose_prompt", options.propose_prompt, context)
            layer = await ask_draws(
                proposers,
                sample,
                index,
                asked.instead(text, agent=None),  # combining answers: no tool loop
                samples=options.samples,
                temperature=options.temperature,
                purpose=f"layer {n}",
            )
            rounds.append(layer)
        answers = self._answered(layer)
        if not answers:
            return self._failed(rounds, options.layers)
        context = {"prompt": asked.prompt, "answers": answers}
        text = self.render("aggregate_prompt", options.aggregate_prompt, context)
        aggregating = asked.instead(text, agent=None)  # the proposers' answers hold the facts
        if options.aggregator_max_tokens is not None:
            aggregating = aggregating.model_copy(
                update={"max_tokens": options.aggregator_max_tokens}
            )
        aggregated = await self.members[AGGREGATOR].ask(
            sample, index, aggregating, purpose="aggregate"
        )
        left_out = len(layer) - len(answers)
        note = f"aggregated {len(answers)} answer{'s' if len(answers) != 1 else ''}"
        if left_out:
            note += f" ({left_out} failed, left out)"
        if aggregated.error is not None:
            note += "; failed"
        aggregated = annotate(aggregated, note)
        rounds.append([aggregated])
        return combine(aggregated, rounds)

    @staticmethod
    def _answered(layer: list[Completion]) -> list[str]:
        return [done.text for done in layer if done.error is None]

    @staticmethod
    def _failed(rounds: list[list[Completion]], n: int) -> Completion:
        first = annotate(rounds[-1][0], f"layer {n}: every proposal failed; nothing to aggregate")
        rounds[-1][0] = first
        return combine(first, rounds)

"""``universal_self_consistency`` (Chen et al. 2023, arXiv 2311.17311): n draws of one
member, then that member asked which draw is the most consistent with the others; the
picked draw is the answer. Self-consistency for answers no extractor can compare (free
text graded by a judge), where a majority vote is undefined.

Draw 0 at the member's own temperature is its own leaderboard row's request (a
response-cache hit); draw d is a distinct request. The selection prompt
(``select_prompt``) shows the question and every answered draw verbatim, numbered from 0
as in the paper, and asks for "The most consistent response is Response N"; it is sent
without tools or an agent loop, at the member's own settings. A selection that names no
shown response (unparseable, out of range) falls back to draw 0, and the answer's last
call says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from llmbench import prompts
from llmbench.schema import BenchConfig, StrategySpec
from llmbench.strategies.base import Options, Strategy, annotate, combine
from llmbench.strategies.vote import ask_draws, check_draws
from llmbench.types import Ask, Completion, Sample

SELECT_SEES = ("prompt", "answers")
SELECT_PROMPT = "strategies/usc_select.j2"
DRAWS = "draws"
_STATED = re.compile(r"most\s+consistent\s+response\s+is\W*response\W*(\d+)", re.IGNORECASE)
_NAMED = re.compile(r"\bresponse\W*(\d+)", re.IGNORECASE)


class UniversalSelfConsistencyOptions(Options):
    samples: int = Field(ge=2, le=64, description="draws of the member to choose among")
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="the draws' temperature; none: the member's own (draw 0 is then its "
        "own row's request, from the response cache)",
    )
    select_prompt: Annotated[str, prompts.PromptText(SELECT_SEES)] = prompts.prompt_field(
        SELECT_PROMPT, "the selection prompt", SELECT_SEES
    )


def parse_selection(text: str, shown: int) -> int | None:
    """The response number a selection names, or None when it names none of the ``shown``
    ones: the stated form ("The most consistent response is Response N", its last
    occurrence, markdown around it allowed); else the one response number the text
    mentions, when it mentions exactly one."""
    stated = _STATED.findall(text)
    if stated:
        number = int(stated[-1])
    else:
        named = set(_NAMED.findall(text))
        if len(named) != 1:
            return None
        number = int(named.pop())
    return number if 0 <= number < shown else None


def selection_prompt_answers(draws: Sequence[Completion]) -> list[int]:
    """The positions of the draws shown to the selector: the answered ones."""
    return [i for i, d in enumerate(draws) if d.error is None]


class UniversalSelfConsistency(Strategy):
    kind = "universal_self_consistency"
    options_model = UniversalSelfConsistencyOptions
    roles = frozenset({DRAWS})
    required = frozenset({DRAWS})

    @classmethod
    def check_config(cls, spec: StrategySpec, config: BenchConfig) -> None:
        options = UniversalSelfConsistencyOptions.model_validate(spec.options)
        member = config.entrant(spec.members[DRAWS])
        check_draws(DRAWS, member, options.samples, options.temperature)

    @classmethod
    def max_calls(cls, spec: StrategySpec) -> dict[str, int]:
        return {DRAWS: UniversalSelfConsistencyOptions.model_validate(spec.options).samples + 1}

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        options: UniversalSelfConsistencyOptions = self.options
        member = self.members[DRAWS]
        draws = await ask_draws(
            [member], sample, index, ask, samples=options.samples, temperature=options.temperature
        )
        shown = selection_prompt_answers(draws)
        if len(shown) < 2:
            chosen = shown[0] if shown else 0
            note = "one answered draw: no selection" if shown else "every draw failed"
            return combine(annotate(draws[chosen], note), [draws])
        asked = ask or Ask.of(sample)
        context = {"prompt": asked.prompt, "answers": [draws[i].text for i in shown]}
        text = self.render("select_prompt", options.select_prompt, context)
        # Choosing among answers: no tools, no agent loop, no response schema.
        selecting = asked.instead(
            text, agent=None, tools=(), tool_choice=None, response_schema=None, extract=None
        )
        selected = await member.ask(sample, index, selecting, purpose="select")
        number = parse_selection(selected.text, len(shown)) if selected.error is None else None
        if number is None:
            chosen = shown[0]
            why = f"selection unparseable: fell back to draw {chosen}"
        else:
            chosen = shown[number]
            why = f"selected draw {chosen} of {len(draws)}"
        return combine(draws[chosen], [draws, [annotate(selected, why)]])

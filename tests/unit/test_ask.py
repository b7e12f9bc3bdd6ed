"""An :class:`Ask`: the sample's own sends exactly the sample's request (so strategy members
asked the sample keep hitting their own rows' cache entries); a built one keeps the
conversation's system prompt and tools and carries the asker's per-call settings."""

from __future__ import annotations

from llmbench.types import Ask, GenerationParams, Message, Sample, Tool

PARAMS = GenerationParams(temperature=0.7, max_tokens=64, stop=("\n\n",), seed=3)
SAMPLE = Sample(
    sample_id="1",
    prompt="What is 2+2?",
    system="Answer with a number.",
    references=("4",),
    tools=(Tool(name="add"),),
)


def test_the_samples_own_ask_is_its_request() -> None:
    for draw in (0, 2):
        assert Ask.of(SAMPLE).request(PARAMS, draw=draw) == SAMPLE.request(PARAMS, draw=draw)


def test_prompt_and_question_read_the_last_user_turn_and_the_system_prompt() -> None:
    ask = Ask.of(SAMPLE)
    assert ask.prompt == SAMPLE.prompt and ask.question() == SAMPLE.question()
    alone = Ask(messages=(Message(role="user", content="Grade it"),))
    assert alone.question() == "Grade it"


def test_instead_replaces_the_last_user_turn_and_keeps_the_rest() -> None:
    revised = Ask.of(SAMPLE).instead("Revise: 4?", max_tokens=9)
    assert [m.role for m in revised.messages] == ["system", "user"]
    assert revised.messages[0].content == SAMPLE.system and revised.prompt == "Revise: 4?"
    assert revised.tools == SAMPLE.tools
    request = revised.request(PARAMS)
    # The asker's answer length; the model's own sampling settings and stop sequences.
    assert request.params == PARAMS.model_copy(update={"max_tokens": 9})


def test_overrides_only_replace_what_the_asker_sets() -> None:
    judging = Ask(messages=(Message(role="user", content="g"),), max_tokens=512, stop=())
    params = judging.request(PARAMS).params
    assert (params.max_tokens, params.stop, params.temperature, params.seed) == (512, (), 0.7, 3)

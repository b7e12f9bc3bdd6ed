"""A strategy used as a member answers the prompt built for it, through the real model
client and the OpenAI SDK against scripted members on the loopback server: a vote used as a
cascade's verifier, a vote of classifiers, a cascade asked an evaluator-optimizer's
revisions, a mixture whose aggregator is a strategy."""

from __future__ import annotations

from typing import Any

import pytest

from llmbench import stages
from llmbench.config import BenchConfig
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.strategies.base import TaskView
from llmbench.strategies.build import identity
from llmbench.tables import frame_to_completions, samples_to_frame
from llmbench.types import Completion, Sample
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_strategies import (
    ZERO_WAIT,
    bench,
    cascade,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
    samples,
)

VERIFY = "Is this answer to the question correct?"


def answer_as(
    config: BenchConfig, name: str, items: list[Sample], settings: RunSettings | None = None
) -> list[Completion]:
    """The strategy ``name`` (its nested strategies built with it) over ``items``, as its
    step runs it."""
    models = {m.name: m for m in config.models}
    strategies = {s.name: s for s in config.strategies}
    frame = stages.answer(
        identity(strategies[name], models, strategies),
        {m.name: {"price": m.price.model_dump()} for m in config.models},  # type: ignore[union-attr]
        TaskView.of(config.tasks[0]),
        samples_to_frame(items),
        seed=1,
        settings=settings or RunSettings(retries=ZERO_WAIT),
        label="t",
    )
    return frame_to_completions(frame)


def jury() -> dict[str, Any]:
    """Both models vote, each once."""
    return {"name": "jury", "kind": "vote", "members": {"a": "cheap", "b": "strong"}}


def verified(request: RecordedRequest) -> Reply:
    """The question gets no answer from the cheap model; graders agree on 9 but mention
    different counts after it (the task's last-number extractor would see 2 against 3)."""
    text = request.last_user_text or ""
    if text.startswith(VERIFY):
        said = "2" if request.model == "gpt-cheap" else "3"
        return Reply(text=f"Right. [[9]] after {said} checks", input_tokens=40, output_tokens=6)
    return Reply(text="It is 4", input_tokens=10, output_tokens=3)


def test_a_vote_as_a_cascade_verifier_is_asked_the_verifier_prompt(
    server: ProviderServer,
) -> None:
    server.default = verified
    config = bench(
        [
            jury(),
            cascade(escalate_on=["low_grade"], verifier="checker")
            | {"members": {"cheap": "cheap", "strong": "strong", "checker": "jury"}},
        ]
    )
    [done] = answer_as(config, "cascade", samples("what is 2+2?"))

    grading = [r for r in server.requests if (r.last_user_text or "").startswith(VERIFY)]
    # Each juror is sent the verifier's prompt, with the question and the stage's answer,
    # at the verifier's answer length and without the task's stop sequences.
    assert sorted(r.model or "" for r in grading) == ["gpt-cheap", "gpt-strong"]
    for request in grading:
        assert "what is 2+2?" in (request.last_user_text or "")
        assert "It is 4" in (request.last_user_text or "")
        assert request.body["max_tokens"] == 512 and "stop" not in request.body
    # The jurors vote on the grade (the verifier prompt's [[n]]), not on the task's answer.
    votes = [c for c in done.trace if c.parent == "checker:jury" and c.note]
    assert [c.note for c in votes] == ["voted: 2 of 2 agree on '9' (tie: first)"]
    [whole] = [c for c in done.trace if c.kind == "strategy"]
    assert whole.purpose == "verify" and whole.score == 9.0
    assert whole.note == "accepted"
    assert done.answered_by == "cheap" and done.text == "It is 4"
    # Every juror call is in the cost.
    assert done.cost_usd == pytest.approx(sum(c.cost_usd for c in done.trace))
    assert len([c for c in done.trace if c.kind == "model"]) == 3


def test_a_vote_of_classifiers_votes_on_labels(server: ProviderServer) -> None:
    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Which kind"):
            label = "Hard" if request.model == "gpt-cheap" else "hard, 10 of 10"
            return Reply(text=label, input_tokens=30, output_tokens=2)
        return Reply(text=f"{request.model}: 1", input_tokens=10, output_tokens=2)

    server.default = members
    labels = {"easy": "small", "hard": "big"}
    config = bench(
        [
            jury(),
            {
                "name": "router",
                "kind": "router",
                "members": {"small": "cheap", "big": "strong", "triage": "jury"},
                "options": {"classifier": {"member": "triage", "labels": labels}},
            },
        ]
    )
    [done] = answer_as(config, "router", samples("an integral"))

    asked = [r for r in server.requests if (r.last_user_text or "").startswith("Which kind")]
    assert len(asked) == 2 and all(r.body["max_tokens"] == 16 for r in asked)
    assert done.answered_by == "strong"
    [vote] = [c for c in done.trace if c.parent == "triage:jury" and c.note]
    assert vote.note == "voted: 2 of 2 agree on 'hard' (tie: first)"


def test_a_cascade_as_generator_is_asked_the_revision(server: ProviderServer) -> None:
    """The evaluator-optimizer's revision prompt, critique verbatim, reaches the cascade's
    stages (the old code asked the cascade the original question again)."""
    critique = "The sum is off by one. [[REVISE]]"

    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Review this answer"):
            verdict = "[[PASS]]" if "It is 5" in text else critique
            return Reply(text=verdict, input_tokens=50, output_tokens=8)
        if "Your earlier answer" in text:
            if request.model == "gpt-cheap":  # unsure: the cascade escalates
                return Reply(text="not sure", input_tokens=60, output_tokens=2)
            return Reply(text="It is 5", input_tokens=60, output_tokens=3)
        return Reply(text="It is 4", input_tokens=10, output_tokens=3)

    server.default = members
    config = bench(
        [
            cascade(),
            {
                "name": "refine",
                "kind": "evaluator_optimizer",
                "members": {"generator": "cascade", "evaluator": "strong"},
            },
        ]
    )
    [done] = answer_as(config, "refine", samples("what is 2+3?"))

    revisions = [r for r in server.requests if "Your earlier answer" in (r.last_user_text or "")]
    assert [r.model for r in revisions] == ["gpt-cheap", "gpt-strong"]
    for request in revisions:
        text = request.last_user_text or ""
        assert text.startswith("what is 2+3?") and critique in text
        # A revision is an answer to the task: the member's own length and stop sequences.
        assert request.body["max_tokens"] == 16
    assert done.text == "It is 5" and done.answered_by == "strong"
    inner = [c for c in done.trace if c.parent == "generator:cascade"]
    assert [c.input is None for c in inner] == [True, False, False]  # the revisions show theirs
    assert [(c.kind, c.purpose) for c in done.trace if c.parent is None] == [
        ("strategy", "answer"),
        ("model", "critique"),
        ("strategy", "revise"),
        ("model", "critique"),
    ]


def test_a_strategy_aggregator_answers_the_aggregation_prompt(server: ProviderServer) -> None:
    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("You have been given several responses"):
            return Reply(text="combined: 4", input_tokens=80, output_tokens=3)
        return Reply(text=f"{request.model} says 4", input_tokens=10, output_tokens=3)

    server.default = members
    config = bench(
        [
            cascade(),
            {
                "name": "moa",
                "kind": "mixture_of_agents",
                "members": {"a": "cheap", "b": "strong", "aggregator": "cascade"},
            },
        ]
    )
    cache = ResponseCache(None)
    settings = RunSettings(retries=ZERO_WAIT, cache=cache)
    [done] = answer_as(config, "moa", samples("what is 2+2?"), settings)
    aggregating = [r for r in server.requests if "several responses" in (r.last_user_text or "")]
    assert [r.model for r in aggregating] == ["gpt-cheap"]  # the cascade's first stage
    assert "gpt-cheap says 4" in (aggregating[0].last_user_text or "")
    assert done.text == "combined: 4"

    server.clear()
    [again] = answer_as(config, "moa", samples("what is 2+2?"), settings)
    cache.close()
    assert server.requests == [] and again.cached and again.text == done.text

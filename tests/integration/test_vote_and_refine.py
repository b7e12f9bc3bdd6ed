"""Votes and evaluator-optimizer loops through the real model client and the OpenAI SDK,
against scripted members on the loopback server: what each member is sent, how many
times, what the answer is and what it costs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from llmbench.errors import ConfigError
from llmbench.report.strategies import agreement
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.strategies.registry import strategy_class
from llmbench.types import Completion
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_strategies import (
    CHEAP,
    ZERO_WAIT,
    answer,
    bench,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
    own_row,
    samples,
)

THIRD = {
    "name": "third",
    "provider": "openai",
    "model": "gpt-third",
    "params": {"max_tokens": 16},
    "price": CHEAP.model_dump(),
}


def vote(members: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    return {
        "name": "vote",
        "kind": "vote",
        "members": members or {"solo": "cheap"},
        "options": options,
    }


def by_seed(replies: dict[int, str]) -> Any:
    """The cheap model answers by the request's seed (draw d of a seed-1 run: seed 1 + d)."""

    def reply(request: RecordedRequest) -> Reply:
        seed = request.body.get("seed")
        assert isinstance(seed, int)
        return Reply(text=replies[seed], input_tokens=10, output_tokens=len(replies[seed]))

    return reply


def seeds(server: ProviderServer) -> list[object]:
    return sorted(r.body.get("seed") for r in server.requests)  # type: ignore[type-var]


def trace_cost(done: Completion) -> float:
    return sum(call.cost_usd for call in done.trace)


# ---------------------------------------------------------------- vote


def test_a_vote_of_draws_takes_the_majority_and_records_its_agreement(
    server: ProviderServer,
) -> None:
    replies = {1: "about 7", 2: "it is 8", 3: "8", 4: "no idea", 5: "8 sure"}
    server.default = by_seed(replies)
    config = bench([vote(samples=5, temperature=0.9)], temperature=0.7)
    [done] = answer(config, samples("q"))

    assert done.text == "it is 8" and done.answered_by == "cheap"
    assert seeds(server) == [1, 2, 3, 4, 5]  # 5 draws, 5 distinct requests
    assert {r.temperature for r in server.requests} == {0.9}  # the strategy's, not 0.7
    assert [c.purpose for c in done.trace] == ["answer", "draw 1", "draw 2", "draw 3", "draw 4"]
    chosen = done.trace[1]
    assert chosen.note == "voted: 3 of 5 agree on '8' (tie: first)"
    assert chosen.score == pytest.approx(0.6)
    assert agreement([done.trace]) == pytest.approx(0.6)
    assert all(c.round == 0 and c.start_s == 0.0 for c in done.trace)  # side by side
    assert done.latency_s == max(c.latency_s for c in done.trace)
    assert done.cost_usd == pytest.approx(trace_cost(done))
    assert done.output_tokens == sum(len(t) for t in replies.values())


@pytest.mark.parametrize(("tie", "text"), [("first", "the answer is 7"), ("shortest", "8")])
def test_a_tied_vote_follows_its_tie_rule(server: ProviderServer, tie: str, text: str) -> None:
    # 7 and 8 have two votes each: first is draw 0's 7; shortest is the first one-letter reply.
    server.default = by_seed({1: "the answer is 7", 2: "8", 3: "7", 4: "8"})
    [done] = answer(bench([vote(samples=4, tie=tie)], temperature=0.7), samples("q"))
    assert done.text == text
    [voted] = [c for c in done.trace if c.note]
    assert voted.score == 0.5 and voted.note is not None and voted.note.endswith(f"(tie: {tie})")


def test_a_vote_with_no_answer_gives_draw_0s_text(server: ProviderServer) -> None:
    server.default = by_seed({1: "no idea", 2: "none", 3: "unsure"})
    [done] = answer(bench([vote(samples=3)], temperature=0.7), samples("q"))
    assert done.text == "no idea"
    assert done.trace[0].score == 0.0
    assert done.trace[0].note == "voted: none of 3 answers had an answer; the first's text"


def test_a_vote_of_members_asks_each_once_at_its_own_settings(server: ProviderServer) -> None:
    answers = {"gpt-cheap": "7", "gpt-strong": "it is 8", "gpt-third": "8"}
    server.default = lambda r: Reply(text=answers[str(r.model)], input_tokens=10, output_tokens=3)
    config = bench([vote({"a": "cheap", "b": "strong", "c": "third"})], (THIRD,), temperature=0.3)
    [done] = answer(config, samples("q"))

    assert done.answered_by == "strong" and done.text == "it is 8"
    assert sorted(str(r.model) for r in server.requests) == ["gpt-cheap", "gpt-strong", "gpt-third"]
    assert {str(r.model): r.temperature for r in server.requests}["gpt-cheap"] == 0.3
    assert [(c.role, c.purpose) for c in done.trace] == [
        ("a", "answer"),
        ("b", "answer"),
        ("c", "answer"),
    ]
    assert done.trace[1].score == pytest.approx(2 / 3)
    cheap, strong, third = (c.cost_usd for c in done.trace)
    assert strong == pytest.approx((10 * 10.0 + 3 * 30.0) / 1e6)
    assert done.cost_usd == pytest.approx(cheap + strong + third)


@pytest.mark.parametrize(("temperature", "sent"), [(None, 2), (0.9, 3)])
def test_draw_0_is_the_members_own_row_only_at_its_own_temperature(
    server: ProviderServer, tmp_path: Path, temperature: float | None, sent: int
) -> None:
    """At the member's temperature draw 0 is its leaderboard request, from the cache; at
    another, all n draws are new. Either way an unchanged rerun sends nothing."""
    server.default = by_seed({1: "7", 2: "8", 3: "7"})
    config = bench([vote(samples=3, temperature=temperature)], temperature=0.7)
    items = samples("q")
    cache = ResponseCache(tmp_path)
    settings = RunSettings(cache=cache, retries=ZERO_WAIT)
    own_row(config, "cheap", items, settings)
    server.clear()

    [done] = answer(config, items, settings)
    assert len(server.requests) == sent
    assert done.trace[0].cached is (temperature is None)
    assert done.text == "7"

    server.clear()
    [again] = answer(config, items, settings)
    cache.close()
    assert server.requests == []
    assert again.cached and again.text == done.text
    assert again.cost_usd == pytest.approx(done.cost_usd)


def test_a_votes_worst_case_is_its_draws_per_member() -> None:
    config = bench([vote({"a": "cheap", "b": "strong"}, samples=4, temperature=0.5)])
    assert strategy_class("vote").max_calls(config.strategies[0]) == {"a": 4, "b": 4}
    plain = bench([vote({"a": "cheap", "b": "strong"})])
    assert strategy_class("vote").max_calls(plain.strategies[0]) == {"a": 1, "b": 1}


# ---------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("strategy", "field", "message"),
    [
        (vote(samplez=3), "options.samplez", "unknown option"),
        (vote(samples=1), "options.samples", "greater than or equal to 2"),
        (vote(), "options.samples", "a vote of one member needs samples"),
        (vote(samples=3, tie="longest"), "options.tie", "'first' or 'shortest'"),
        (vote(samples=3), "options.temperature", "at temperature 0"),
        (
            vote({"solo": "inner"}, samples=3, temperature=0.7),
            "members.solo",
            "draws and a temperature need a model",
        ),
    ],
)
def test_bad_votes_are_config_errors_naming_the_field(
    strategy: dict[str, Any], field: str, message: str
) -> None:
    inner = {"name": "inner", "kind": "router", "members": {"x": "cheap"}}
    inner["options"] = {"default": "x"}
    with pytest.raises(ConfigError) as refused:
        bench([inner, strategy])
    assert refused.value.field == f"strategies.1.{field}" and refused.value.exit_code == 2
    assert re.search(re.escape(message), refused.value.message)

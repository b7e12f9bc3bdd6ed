"""Votes and evaluator-optimizer loops through the real model client and the OpenAI SDK,
against scripted members on the loopback server: what each member is sent, how many
times, what the answer is and what it costs."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from llmbench.errors import ConfigError
from llmbench.report.strategies import agreement
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.strategies.registry import strategy_class
from llmbench.types import Completion, Sample
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_strategies import (
    CHEAP,
    ZERO_WAIT,
    answer,
    bench,
    cascade,
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


# ---------------------------------------------------------------- evaluator_optimizer


def refine(members: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    return {
        "name": "refine",
        "kind": "evaluator_optimizer",
        "members": members or {"generator": "cheap", "evaluator": "strong"},
        "options": options,
    }


def reviewer(verdicts: list[str]) -> Any:
    """The evaluator gives ``verdicts`` in turn; the
    generator answers 7, then 8, 9 ... on each revision."""
    said = iter(verdicts)

    def reply(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Review this answer"):
            critique = f"Check the units. [[{next(said)}]]"
            return Reply(text=critique, input_tokens=40, output_tokens=9)
        if "A reviewer's critique" in text:
            earlier = int(re.findall(r"Your earlier answer:\nit is (\d+)", text)[0])
            return Reply(text=f"it is {earlier + 1}", input_tokens=60, output_tokens=3)
        return Reply(text="it is 7", input_tokens=10, output_tokens=3)

    return reply


def critiques(server: ProviderServer) -> list[RecordedRequest]:
    return [r for r in server.requests if (r.last_user_text or "").startswith("Review")]


def test_a_loop_that_never_passes_revises_exactly_max_rounds_times(
    server: ProviderServer,
) -> None:
    server.default = reviewer(["REVISE", "REVISE", "REVISE", "REVISE"])
    [done] = answer(bench([refine(max_rounds=3)]), samples("q"))

    assert done.text == "it is 10" and done.answered_by == "cheap"
    assert len(critiques(server)) == 3 and len(server.requests) == 3 + 4
    assert [(c.role, c.purpose, c.round) for c in done.trace] == [
        ("generator", "answer", 0),
        ("evaluator", "critique", 1),
        ("generator", "revise", 2),
        ("evaluator", "critique", 3),
        ("generator", "revise", 4),
        ("evaluator", "critique", 5),
        ("generator", "revise", 6),
    ]
    assert [c.note for c in done.trace if c.purpose == "critique"] == [
        "round 1: revise",
        "round 2: revise",
        "round 3: revise",
    ]
    assert [c.output for c in done.trace if c.role == "generator"] == [
        "it is 7",
        "it is 8",
        "it is 9",
        "it is 10",
    ]
    assert done.trace[-1].note == "final: changed from the first answer ('7' -> '10')"
    assert done.cost_usd == pytest.approx(trace_cost(done))
    critique_cost = (40 * 10.0 + 9 * 30.0) / 1e6  # the evaluator is the strong model
    assert done.trace[1].cost_usd == pytest.approx(critique_cost)
    # one after another: each call starts when the one before it ends
    starts = [c.start_s for c in done.trace]
    ends = [c.start_s + c.latency_s for c in done.trace]
    assert starts[1:] == pytest.approx(ends[:-1]) and done.latency_s == pytest.approx(ends[-1])
    assert strategy_class("evaluator_optimizer").max_calls(
        bench([refine(max_rounds=3)]).strategies[0]
    ) == {
        "generator": 4,
        "evaluator": 3,
    }


def test_a_pass_in_round_1_stops_with_no_revision(server: ProviderServer) -> None:
    server.default = reviewer(["PASS"])
    [done] = answer(bench([refine(max_rounds=3)]), samples("q"))
    assert done.text == "it is 7"
    assert [c.purpose for c in done.trace] == ["answer", "critique"]
    assert done.trace[0].note == "final: the first answer"
    assert done.trace[1].note == "round 1: pass"
    assert len(server.requests) == 2


def test_the_critique_is_fed_back_verbatim_and_the_evaluator_gets_its_own_length(
    server: ProviderServer,
) -> None:
    critique = "Line one: the sum is off.\n  Line two: {{ not a template }} [[REVISE]]"

    def reply(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Review this answer"):
            return Reply(text=critique if "it is 7" in text else "Good. [[PASS]]")
        return Reply(text="it is 8" if "A reviewer's critique" in text else "it is 7")

    server.default = reply
    item = Sample(sample_id="0", prompt="2+2?", system="Answer in digits.", references=("4",))
    [done] = answer(bench([refine(evaluator_max_tokens=300)]), [item])

    [revise] = [r for r in server.requests if "A reviewer's critique" in (r.last_user_text or "")]
    assert critique in (revise.last_user_text or "")
    assert revise.system_text == "Answer in digits."  # the task's system prompt as it was
    assert (revise.last_user_text or "").startswith("2+2?\n")
    assert revise.max_tokens == 16
    first_review = critiques(server)[0]
    assert first_review.max_tokens == 300 and "stop" not in first_review.body
    assert "Answer in digits.\n\n2+2?" in (first_review.last_user_text or "")
    assert "Reference answer" not in (first_review.last_user_text or "")  # not an oracle
    assert [c.note for c in done.trace if c.purpose == "critique"] == [
        "round 1: revise",
        "round 2: pass",
    ]
    assert done.trace[2].input is not None and critique in done.trace[2].input[-1]["content"]


def test_self_refine_is_one_model_in_both_roles(server: ProviderServer) -> None:
    server.default = reviewer(["REVISE", "PASS"])
    config = bench([refine({"generator": "cheap", "evaluator": "cheap"})])
    [done] = answer(config, samples("q"))
    assert {str(r.model) for r in server.requests} == {"gpt-cheap"}
    assert [c.model for c in done.trace] == ["cheap"] * 4
    assert done.text == "it is 8"
    assert done.trace[2].note == "final: changed from the first answer ('7' -> '8')"


def test_an_oracle_evaluator_sees_the_reference_and_the_row_says_so(
    server: ProviderServer,
) -> None:
    server.default = reviewer(["PASS"])
    item = Sample(sample_id="0", prompt="2+2?", references=("4",))
    [done] = answer(bench([refine(oracle=True)]), [item])
    [review] = critiques(server)
    assert "Reference answer (the standard of correctness):\n4\n" in (review.last_user_text or "")
    assert done.trace[1].note == "round 1 (oracle): pass"
    oracle, plain = (bench([refine(oracle=o)]).strategies[0] for o in (True, False))
    assert "oracle" in strategy_class("evaluator_optimizer").describe(oracle)
    assert strategy_class("evaluator_optimizer").describe(plain) == "evaluator_optimizer"


def test_an_unchanged_loop_rerun_sends_nothing(server: ProviderServer, tmp_path: Path) -> None:
    server.default = reviewer(["REVISE", "PASS"])
    config = bench([refine()])
    cache = ResponseCache(tmp_path)
    settings = RunSettings(cache=cache, retries=ZERO_WAIT)
    [done] = answer(config, samples("q"), settings)
    server.clear()
    [again] = answer(config, samples("q"), settings)
    cache.close()
    assert server.requests == [] and again.cached
    assert again.text == done.text and again.cost_usd == pytest.approx(done.cost_usd)


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
        (refine(rounds=3), "options.rounds", "unknown option"),
        (refine({"generator": "cheap"}), "members.evaluator", "needs a 'evaluator' member"),
        (refine(max_rounds=0), "options.max_rounds", "greater than or equal to 1"),
        (refine(revise_prompt="{{ reference }}"), "options.revise_prompt", "uses reference"),
    ],
)
def test_bad_votes_and_loops_are_config_errors_naming_the_field(
    strategy: dict[str, Any], field: str, message: str
) -> None:
    assert_refused(strategy, field, message)


def assert_refused(
    strategy: dict[str, Any], field: str, message: str, extra_models: tuple[Any, ...] = ()
) -> None:
    """``strategy``, second after a router named ``inner``, is a config error (exit 2) at
    ``field`` saying ``message``."""
    inner = {
        "name": "inner",
        "kind": "router",
        "members": {"x": "cheap"},
        "options": {"default": "x"},
    }
    with pytest.raises(ConfigError) as refused:
        bench([inner, strategy], extra_models)
    assert refused.value.field == f"strategies.1.{field}" and refused.value.exit_code == 2
    assert message in refused.value.message


def test_the_dry_run_counts_a_loops_growing_prompts() -> None:
    """The worst case of a loop that never passes: each critique holds the question and the
    answer, each revision also the critique, and a critique is as long as its own limit."""
    from llmbench.estimate import Estimate, strategy_estimates
    from llmbench.strategies.evaluator_optimizer import EvaluatorOptimizerOptions

    config = bench([refine(max_rounds=2, evaluator_max_tokens=100)])
    members = [  # 10 samples; per sample 30 prompt tokens, at most 16 out (bench's max_tokens)
        Estimate(m.name, m.provider, 10, 300, "estimated", 160, None) for m in config.models
    ]
    [row] = strategy_estimates(config, members)
    options = EvaluatorOptimizerOptions.model_validate(config.strategies[0].options)
    critique_t = math.ceil(len(options.critique_prompt) / 4)
    revise_t = math.ceil(len(options.revise_prompt) / 4)
    critique = critique_t + 30 + 16
    revise = revise_t + 30 + 16 + 100
    assert row.prompt_tokens == 10 * (30 + 2 * revise + 2 * critique)
    assert row.max_output_tokens == 10 * (3 * 16 + 2 * 100)
    assert row.max_output_tokens > 10 * (3 + 2) * 16  # more than calls x a member's own
    cheap, strong = (m.price for m in config.models)
    expected = (
        (10 * (30 + 2 * revise)) * cheap.input_per_1m + 10 * 3 * 16 * cheap.output_per_1m  # type: ignore[union-attr, operator]
    ) / 1e6 + (
        (10 * 2 * critique) * strong.input_per_1m + 10 * 2 * 100 * strong.output_per_1m  # type: ignore[union-attr, operator]
    ) / 1e6
    assert row.max_cost_usd == pytest.approx(expected)


def test_the_dry_run_counts_a_verifiers_grading_prompts() -> None:
    from llmbench.estimate import Estimate, strategy_estimates
    from llmbench.strategies.cascade import CascadeOptions

    graded = cascade(escalate_on=["low_grade"], verifier="checker", verifier_max_tokens=200)
    config = bench(
        [graded | {"members": {"cheap": "cheap", "strong": "strong", "checker": "strong"}}]
    )
    members = [Estimate(m.name, m.provider, 10, 300, "estimated", 160, None) for m in config.models]
    [row] = strategy_estimates(config, members)
    template = math.ceil(len(CascadeOptions.model_validate(graded["options"]).verifier_prompt) / 4)
    # Two stages of 30 in, 16 out each; one grade of (template + question + answer) in, 200 out.
    assert row.prompt_tokens == 10 * (2 * 30 + template + 30 + 16)
    assert row.max_output_tokens == 10 * (2 * 16 + 200)

"""Mixture-of-agents through the real model client and the OpenAI SDK, against scripted
members on the loopback server: what the proposers and the aggregator are sent, in which
layer, what the answer is and what it costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.strategies.registry import strategy_class
from llmbench.types import Sample
from tests.fakes.provider_server import Fault, ProviderServer, RecordedRequest, Reply
from tests.integration.test_strategies import (
    ZERO_WAIT,
    answer,
    bench,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
    own_row,
    samples,
)
from tests.integration.test_vote_and_refine import THIRD, assert_refused, by_seed, trace_cost

AGGREGATE = "You have been given several responses"
LAYER = "Other assistants have answered"


def moa(members: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    return {
        "name": "moa",
        "kind": "mixture_of_agents",
        "members": members or {"a": "cheap", "b": "third", "aggregator": "strong"},
        "options": options,
    }


def kind_of(request: RecordedRequest) -> str:
    text = request.last_user_text or ""
    if text.startswith(AGGREGATE):
        return "aggregate"
    return "layer" if LAYER in text else "answer"


def scripted(request: RecordedRequest) -> Reply:
    """Proposers answer by model (and say which layer); the aggregator says how many
    responses it was shown."""
    kind, model = kind_of(request), str(request.model)
    if kind == "aggregate":
        shown = (request.last_user_text or "").count("Response ")
        return Reply(text=f"from {shown}: 8", input_tokens=50, output_tokens=4)
    said = {"gpt-cheap": "cheap says 7", "gpt-third": "third says 8", "gpt-strong": "strong 9"}
    text = said[model] if kind == "answer" else f"{said[model]} again"
    return Reply(text=text, input_tokens=10, output_tokens=3)


def of_kind(server: ProviderServer, kind: str) -> list[RecordedRequest]:
    return [r for r in server.requests if kind_of(r) == kind]


def test_every_proposal_reaches_the_aggregator_numbered_and_its_answer_is_the_answer(
    server: ProviderServer,
) -> None:
    server.default = scripted
    item = Sample(sample_id="0", prompt="3+5?", system="Answer in digits.", references=("8",))
    [done] = answer(bench([moa()], (THIRD,)), [item])

    assert done.text == "from 2: 8" and done.answered_by == "strong"
    [aggregate] = of_kind(server, "aggregate")
    asked = aggregate.last_user_text or ""
    assert "Question:\n3+5?\n" in asked
    assert "Response 1:\ncheap says 7\n" in asked and "Response 2:\nthird says 8\n" in asked
    assert aggregate.system_text == "Answer in digits."  # the task's system prompt kept
    assert aggregate.model == "gpt-strong" and aggregate.max_tokens == 16
    assert sorted(str(r.model) for r in of_kind(server, "answer")) == ["gpt-cheap", "gpt-third"]
    assert [(c.role, c.purpose, c.round) for c in done.trace] == [
        ("a", "answer", 0),
        ("b", "answer", 0),
        ("aggregator", "aggregate", 1),
    ]
    assert done.trace[-1].note == "aggregated 2 answers"
    assert (
        done.trace[-1].input is not None and "cheap says 7" in done.trace[-1].input[-1]["content"]
    )
    proposals = max(c.latency_s for c in done.trace[:2])
    assert done.trace[-1].start_s == pytest.approx(proposals)  # after the proposals, side by side
    assert done.cost_usd == pytest.approx(trace_cost(done))
    assert done.trace[-1].cost_usd == pytest.approx((50 * 10.0 + 4 * 30.0) / 1e6)
    assert done.input_tokens == 10 + 10 + 50 and done.output_tokens == 3 + 3 + 4


def test_a_second_layer_sees_the_first_layers_answers(server: ProviderServer) -> None:
    server.default = scripted
    [done] = answer(bench([moa(layers=2, aggregator_max_tokens=64)], (THIRD,)), samples("q"))

    second = of_kind(server, "layer")
    assert sorted(str(r.model) for r in second) == ["gpt-cheap", "gpt-third"]
    for request in second:
        text = request.last_user_text or ""
        assert text.startswith("q\n") and "round 1" in text
        assert "Response 1:\ncheap says 7\n" in text and "Response 2:\nthird says 8\n" in text
    [aggregate] = of_kind(server, "aggregate")
    asked = aggregate.last_user_text or ""
    assert "cheap says 7 again" in asked and "third says 8 again" in asked
    assert "Response 1:\ncheap says 7\n" not in asked  # only the last layer's answers
    assert aggregate.max_tokens == 64
    assert [(c.role, c.purpose, c.round) for c in done.trace] == [
        ("a", "answer", 0),
        ("b", "answer", 0),
        ("a", "layer 2", 1),
        ("b", "layer 2", 1),
        ("aggregator", "aggregate", 2),
    ]
    assert done.text == "from 2: 8"
    assert done.cost_usd == pytest.approx(trace_cost(done))
    members = {"a": "cheap", "b": "third", "aggregator": "strong"}
    spec = bench([moa(members, layers=3, samples=2, temperature=0.5)], (THIRD,)).strategies[0]
    assert strategy_class("mixture_of_agents").max_calls(spec) == {
        "a": 6,
        "b": 6,
        "aggregator": 1,
    }


def test_self_moa_is_n_draws_of_one_proposer_then_one_aggregation(
    server: ProviderServer,
) -> None:
    draws = by_seed({1: "about 7", 2: "it is 8", 3: "8"})

    def reply(request: RecordedRequest) -> Reply:
        if kind_of(request) == "aggregate":
            return Reply(text="8", input_tokens=50, output_tokens=1)
        return draws(request)

    server.default = reply
    config = bench([moa({"solo": "cheap", "aggregator": "cheap"}, samples=3)], temperature=0.7)
    [done] = answer(config, samples("q"))

    proposals = of_kind(server, "answer")
    assert sorted(r.body.get("seed") for r in proposals) == [1, 2, 3]  # type: ignore[type-var]
    [aggregate] = of_kind(server, "aggregate")
    asked = aggregate.last_user_text or ""
    for n, text in enumerate(["about 7", "it is 8", "8"], start=1):
        assert f"Response {n}:\n{text}\n" in asked
    assert [c.purpose for c in done.trace] == ["answer", "draw 1", "draw 2", "aggregate"]
    assert done.text == "8" and done.trace[-1].note == "aggregated 3 answers"
    assert done.cost_usd == pytest.approx(trace_cost(done))


def test_a_failed_proposal_is_left_out_of_the_aggregation(server: ProviderServer) -> None:
    def reply(request: RecordedRequest) -> Reply | Fault:
        if request.model == "gpt-third":
            return Fault(status=400)
        return scripted(request)

    server.default = reply
    [done] = answer(bench([moa()], (THIRD,)), samples("q"))
    assert done.text == "from 1: 8"
    assert done.trace[-1].note == "aggregated 1 answer (1 failed, left out)"


def test_layer_1_draw_0_is_the_proposers_own_row_and_a_rerun_sends_nothing(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.default = scripted
    config = bench([moa()], (THIRD,))
    items = samples("q")
    cache = ResponseCache(tmp_path)
    settings = RunSettings(cache=cache, retries=ZERO_WAIT)
    own_row(config, "cheap", items, settings)
    server.clear()

    [done] = answer(config, items, settings)
    assert sorted(str(r.model) for r in server.requests) == ["gpt-strong", "gpt-third"]
    assert [c.cached for c in done.trace] == [True, False, False]

    server.clear()
    [again] = answer(config, items, settings)
    cache.close()
    assert server.requests == [] and again.cached
    assert again.text == done.text and again.cost_usd == pytest.approx(done.cost_usd)


@pytest.mark.parametrize(
    ("strategy", "field", "message"),
    [
        (moa({"a": "cheap", "b": "strong"}), "members.aggregator", "needs a 'aggregator'"),
        (moa({"aggregator": "strong"}), "members", "at least one proposer"),
        (moa(samples=1), "options.samples", "greater than or equal to 2"),
        (moa(layers=0), "options.layers", "greater than or equal to 1"),
        (moa(layer=2), "options.layer", "unknown option"),
        (moa({"a": "cheap", "aggregator": "strong"}, samples=3), "options.temperature", "0"),
        (
            moa({"a": "inner", "aggregator": "strong"}, samples=2, temperature=0.5),
            "members.a",
            "draws and a temperature need a model",
        ),
        (moa(aggregate_prompt="{{ layer }}"), "options.aggregate_prompt", "uses layer"),
    ],
)
def test_bad_mixtures_are_config_errors_naming_the_field(
    strategy: dict[str, Any], field: str, message: str
) -> None:
    assert_refused(strategy, field, message, (THIRD,))


def test_the_dry_run_counts_the_answers_each_layer_is_shown() -> None:
    from llmbench.estimate import Estimate, strategy_estimates
    from llmbench.pricing import estimated_tokens
    from llmbench.strategies.moa import MixtureOfAgentsOptions

    spec = {
        "name": "moa",
        "kind": "mixture_of_agents",
        "members": {"a": "cheap", "b": "strong", "aggregator": "strong"},
        "options": {"layers": 2, "aggregator_max_tokens": 50},
    }
    config = bench([spec])
    members = [Estimate(m.name, m.provider, 10, 300, "estimated", 160, None) for m in config.models]
    [row] = strategy_estimates(config, members)
    options = MixtureOfAgentsOptions.model_validate(spec["options"])
    shown = 2 * 16  # two proposers' answers of at most 16 tokens
    later = estimated_tokens(options.propose_prompt) + 30 + shown
    aggregate = estimated_tokens(options.aggregate_prompt) + 30 + shown
    assert row.prompt_tokens == 10 * (2 * (30 + later) + aggregate)
    assert row.max_output_tokens == 10 * (2 * 2 * 16 + 50)


def test_the_dry_run_bounds_each_same_spend_baseline_by_its_strategys_worst_case() -> None:
    """A same-spend baseline draws its best member until it has spent about what the
    strategy did per item, the first draw from the cache: the strategy's worst case bounds
    it. A vote of one member's draws (self-consistency already) gets none."""
    from llmbench.estimate import Estimate, same_spend_estimates, strategy_estimates

    mixture = {
        "name": "moa",
        "kind": "mixture_of_agents",
        "members": {"a": "cheap", "b": "strong", "aggregator": "strong"},
    }
    votes = {"name": "x3", "kind": "vote", "members": {"solo": "cheap"}, "options": {"samples": 3}}
    config = bench([mixture, votes], temperature=0.7)
    members = [Estimate(m.name, m.provider, 10, 300, "estimated", 160, 0.01) for m in config.models]
    strategies = strategy_estimates(config, members)
    [baseline] = same_spend_estimates(config, strategies)
    [moa] = [row for row in strategies if row.model == "moa"]
    assert baseline.model == "moa.same-spend" and baseline.samples == 10
    assert (baseline.prompt_tokens, baseline.max_output_tokens) == (
        moa.prompt_tokens,
        moa.max_output_tokens,
    )
    assert baseline.max_cost_usd == moa.max_cost_usd and moa.max_cost_usd

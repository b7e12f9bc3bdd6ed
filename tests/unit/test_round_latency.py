"""A strategy's latency as a caller waits it: the calls of a round side by side, except local
models' (one request at a time on this machine's cores), which follow one another."""

from __future__ import annotations

import pytest

from llmbench.strategies.base import combine
from llmbench.types import Call, Completion


def answer(model: str, latency: float, *, local: bool, text: str = "x") -> Completion:
    call = Call(model=model, latency_s=latency, local=local, cost_usd=0.001)
    return Completion(text=text, latency_s=latency, trace=[call], cost_usd=0.001)


def test_remote_draws_take_the_slowest_local_draws_their_sum() -> None:
    remote = combine(
        answer("api", 1.0, local=False), [[answer("api", s, local=False) for s in (1.0, 2.0, 1.5)]]
    )
    assert remote.latency_s == pytest.approx(2.0)
    assert [c.start_s for c in remote.trace] == [0.0, 0.0, 0.0]

    local = combine(
        answer("gemma", 1.0, local=True),
        [[answer("gemma", s, local=True) for s in (1.0, 2.0, 1.5)]],
    )
    assert local.latency_s == pytest.approx(4.5)
    assert [c.start_s for c in local.trace] == pytest.approx([0.0, 1.0, 3.0])
    assert local.cost_usd == pytest.approx(0.003)


def test_a_round_mixing_both_waits_for_the_longer_and_the_next_round_starts_after_it() -> None:
    first = [
        answer("gemma", 1.0, local=True),
        answer("smollm", 2.0, local=True),
        answer("api", 2.5, local=False),
    ]
    second = [answer("api", 0.5, local=False)]
    done = combine(second[0], [first, second])
    assert done.latency_s == pytest.approx(3.0 + 0.5)  # local 1 + 2 beats the remote 2.5
    assert [(c.model, c.round, c.start_s) for c in done.trace] == [
        ("gemma", 0, 0.0),
        ("smollm", 0, 1.0),
        ("api", 0, 0.0),
        ("api", 1, 3.0),
    ]


def test_local_agents_and_nested_answers_follow_one_another_too() -> None:
    """An agent's answer holds tool calls and its 'agent' wrapper, a nested strategy's its
    'strategy' call: none is a model request, so they must not make the answer remote."""

    def agent(latency: float) -> Completion:
        trace = [
            Call(model="gemma", latency_s=latency / 2, local=True, cost_usd=0.001),
            Call(model="get_weather", kind="tool", latency_s=0.0),
            Call(model="gemma", latency_s=latency / 2, local=True, start_s=latency / 2),
            Call(model="gemma", kind="agent", latency_s=latency),
        ]
        return Completion(text="x", latency_s=latency, trace=trace, cost_usd=0.001)

    done = combine(agent(1.0), [[agent(1.0), agent(2.0)]])
    assert done.latency_s == pytest.approx(3.0)  # one after another, not the slowest (2.0)

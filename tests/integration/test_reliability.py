"""Retries, timeouts and the response cache under injected faults, on a scaled-down clock.

Waits are recorded instead of slept (a test's own Clock, else the `backoff` fixture), so a
storm of faults runs in seconds and the tests can check the waits against the policy.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from llmbench.config import ModelSpec, PriceEntry
from llmbench.providers.registry import build_provider
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, run_samples
from llmbench.types import Completion, GenerationParams, Sample
from tests.conftest import BackoffClock
from tests.fakes.provider_server import Fault, ProviderServer, Reply

KEY = "sk-reliability-test"
PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
PARAMS = GenerationParams(max_tokens=16, seed=1)


class Clock:
    """Records the waits the retry layer asks for and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)


def provider(name: str = "openai", **fields: Any) -> Any:
    model = {"openai": "gpt-4o-mini", "anthropic": "claude-3-haiku-20240307"}[name]
    spec = ModelSpec.model_validate(
        {"name": "m", "provider": name, "model": model, "price": PRICE, **fields}
    )
    return build_provider(spec)


def samples(n: int) -> list[Sample]:
    return [Sample(sample_id=str(i), prompt=f"question {i}", references=("x",)) for i in range(n)]


def run(
    p: Any, items: list[Sample], settings: RunSettings, params: GenerationParams = PARAMS
) -> list[Completion]:
    progress = GenerationProgress("t", len(items), live=False)
    return asyncio.run(
        run_samples(p, items, params, price=PRICE, progress=progress, settings=settings)
    )


def test_waits_follow_the_policy(server: ProviderServer, backoff: BackoffClock) -> None:
    clock = Clock()
    policy = RetryPolicy(max_attempts=6, backoff_base_s=2.0, backoff_max_s=5.0)
    server.script(
        Fault(status=429, retry_after=7),
        Fault(status=503),
        Fault(status=500),
        Fault(status=429, retry_after_ms=1500),
        Fault(status=502),
        Reply(text="finally"),
    )
    [row] = run(provider(), samples(1), RunSettings(retries=policy, sleep=clock.sleep))
    assert row.text == "finally" and row.error is None
    assert row.attempts == 6 and len(server.requests) == 6
    assert clock.waits[0] == 7.0  # Retry-After honoured exactly
    assert 0 <= clock.waits[1] <= 4.0  # full jitter in [0, base * 2^1]
    assert 0 <= clock.waits[2] <= 5.0  # capped at backoff_max_s
    assert clock.waits[3] == 1.5  # retry-after-ms
    assert 0 <= clock.waits[4] <= 5.0
    assert row.retry_wait_s == pytest.approx(sum(clock.waits))
    assert backoff.waits == []  # a clock passed in is the one used


def test_no_test_sleeps_in_backoff(server: ProviderServer, backoff: BackoffClock) -> None:
    """Requests sent with no clock of their own (RunSettings(), as the judge tests and
    in-process ZenML steps send them) wait on the `backoff` fixture: recorded, not slept."""
    server.script(Fault(status=429, retry_after=60), Fault(status=503), Reply(text="at last"))
    [row] = run(provider(), samples(1), RunSettings())
    assert (row.text, row.attempts) == ("at last", 3)
    assert len(backoff.waits) == 2 and backoff.waits[0] == 60.0  # a minute, not slept
    assert 0 <= backoff.waits[1] <= 2.0  # the default policy's jitter, base 1 s
    assert row.retry_wait_s == pytest.approx(sum(backoff.waits))


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_auth_and_invalid_requests_are_not_retried(server: ProviderServer, status: int) -> None:
    clock = Clock()
    server.script(Fault(status=status))
    [row] = run(provider(), samples(1), RunSettings(sleep=clock.sleep))
    assert row.error is not None and row.attempts == 1
    assert clock.waits == [] and len(server.requests) == 1


def test_attempts_run_out_into_an_error_row(server: ProviderServer) -> None:
    clock = Clock()
    server.script(*[Fault(status=503)] * 3)
    [row] = run(
        provider(), samples(1), RunSettings(retries=RetryPolicy(max_attempts=3), sleep=clock.sleep)
    )
    assert row.error is not None and "503" in row.error
    assert row.attempts == 3 and len(clock.waits) == 2


def test_a_stalled_request_is_cut_and_retried(server: ProviderServer) -> None:
    clock = Clock()
    server.script(Reply(text="too late", delay_s=5.0), Reply(text="on time"))
    p = provider(options={"timeout_s": 0.3})
    [row] = run(p, samples(1), RunSettings(sleep=clock.sleep))
    assert row.text == "on time" and row.attempts == 2


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_fault_storm(server: ProviderServer, name: str) -> None:
    """A seeded mix of every fault: each sample ends as a completion or a recorded error,
    attempts match the requests the server saw, and no answer is paid for twice."""
    rng = random.Random(1234)
    faults: list[Fault | Reply] = []
    for _ in range(400):
        roll = rng.random()
        if roll < 0.45:
            faults.append(Reply(text="ok", input_tokens=7, output_tokens=3))
        elif roll < 0.60:
            faults.append(Fault(status=429, retry_after=rng.choice([0.5, 2.0])))
        elif roll < 0.72:
            faults.append(Fault(status=rng.choice([500, 502, 503])))
        elif roll < 0.80:
            faults.append(Fault(malformed=True))
        elif roll < 0.90:
            faults.append(Fault(drop_stream_after=1))
        else:
            faults.append(Fault(reset_connection=True))
    server.script(*faults)
    clock = Clock()
    settings = RunSettings(
        concurrency=8,
        retries=RetryPolicy(max_attempts=5),
        sleep=clock.sleep,
        rng=random.Random(7),
    )
    items = samples(60)
    results = run(provider(name, stream=True), items, settings)

    assert len(results) == len(items)
    served = faults[: len(server.requests)]
    assert sum(r.attempts for r in results) == len(server.requests)
    succeeded = [r for r in results if r.error is None]
    failed = [r for r in results if r.error is not None]
    assert succeeded and all(r.text == "ok" for r in succeeded)
    # An answer is paid for once: one served reply per successful sample, no more.
    assert sum(isinstance(item, Reply) for item in served) == len(succeeded)
    assert all(1 <= r.attempts <= 5 for r in results)
    assert all(r.finish_reason == "error" and r.cost_usd == 0 for r in failed)
    assert sum(r.cost_usd for r in succeeded) == pytest.approx(len(succeeded) * (7 + 6) / 1e6)


def test_response_cache_skips_paid_requests(server: ProviderServer, tmp_path: Path) -> None:
    items = samples(5)
    cache = ResponseCache(tmp_path)
    first = run(provider(), items, RunSettings(cache=cache))
    assert len(server.requests) == 5 and not any(r.cached for r in first)

    second = run(provider(), items, RunSettings(cache=cache))
    assert len(server.requests) == 5  # nothing sent
    assert all(r.cached and r.attempts == 0 for r in second)
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.cost_usd for r in second] == [r.cost_usd for r in first]  # true cost kept

    refreshed = run(provider(), items, RunSettings(cache=cache, refresh=True))
    assert len(server.requests) == 10 and not any(r.cached for r in refreshed)


def test_cache_keys_ignore_the_key_and_count_unseeded_draws(
    server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ResponseCache(tmp_path)
    same = [Sample(sample_id=str(i), prompt="same prompt", references=("x",)) for i in range(3)]
    sampled = GenerationParams(max_tokens=8, temperature=0.7)
    run(provider(), same, RunSettings(cache=cache), sampled)
    assert len(server.requests) == 3  # three draws, not one answer reused
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key")
    again = run(provider(), same, RunSettings(cache=cache), sampled)
    assert len(server.requests) == 3 and all(r.cached for r in again)
    assert b"sk-another-key" not in cache.path.read_bytes()
    # How requests travel (transport, timeout) is not what they answer: still cache hits.
    transport = {"options": {"http_client": "httpx", "timeout_s": 5}}
    third = run(provider(**transport), same, RunSettings(cache=cache), sampled)
    assert len(server.requests) == 3 and all(r.cached for r in third)


def test_errors_are_not_cached(server: ProviderServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    server.script(Fault(status=401))
    [failed] = run(provider(), samples(1), RunSettings(cache=cache))
    assert failed.error is not None
    [retried] = run(provider(), samples(1), RunSettings(cache=cache))
    assert retried.error is None and not retried.cached and len(server.requests) == 2


def test_budget_stops_sending_before_the_limit(server: ProviderServer) -> None:
    from llmbench.runtime.budget import Budget, worst_case_cost

    items = samples(10)
    worst = worst_case_cost(items[0].messages(), PARAMS, PRICE)
    budget = Budget(limit_usd=worst * 1.5)  # room for the worst case once, then actual spend
    results = run(provider(), items, RunSettings(concurrency=1, budget=budget))
    sent = [r for r in results if r.error is None]
    refused = [r for r in results if r.error and r.error.startswith("budget:")]
    assert len(sent) + len(refused) == 10 and refused
    assert len(server.requests) == len(sent)
    assert budget.spent_usd <= budget.limit_usd
    assert budget.spent_usd == pytest.approx(sum(r.cost_usd for r in sent))


def test_error_rate_guard_aborts_early(server: ProviderServer) -> None:
    from llmbench.runtime.runner import ErrorRateExceeded

    server.default = lambda request: Fault(status=401)
    with pytest.raises(ErrorRateExceeded, match=r"above execution\.max_error_rate 50%"):
        run(provider(), samples(60), RunSettings(concurrency=2, max_error_rate=0.5))
    assert 20 <= len(server.requests) <= 23  # stopped after the first 20, not all 60


def test_rate_limits_shrink_concurrency(server: ProviderServer) -> None:
    from llmbench.runtime.limiter import ConnectionLimiter, RateLimits

    limiter = ConnectionLimiter(RateLimits(max_concurrency=8), default_concurrency=8)
    server.script(*[Fault(status=429, retry_after=0.0)] * 6)
    clock = Clock()
    settings = RunSettings(concurrency=8, limiter=limiter, sleep=clock.sleep)
    results = run(provider(), samples(16), settings)
    assert all(r.error is None for r in results)
    assert limiter.gate.limit < 8  # halved by the 429s, regrowing since
    assert server.peak_in_flight <= 8


def test_one_endpoint_limit_is_shared_by_steps_in_threads(server: ProviderServer) -> None:
    import threading

    from llmbench.runtime.limiter import ConnectionLimiter, RateLimits

    limiter = ConnectionLimiter(RateLimits(max_concurrency=3, adaptive=True), 3)
    server.latency_s = 0.05

    def step(tag: str) -> None:
        items = [
            Sample(sample_id=str(i), prompt=f"{tag} {i}", references=("x",)) for i in range(12)
        ]
        run(provider(), items, RunSettings(concurrency=8, limiter=limiter))

    threads = [threading.Thread(target=step, args=(t,)) for t in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(server.requests) == 24
    assert server.peak_in_flight <= 3

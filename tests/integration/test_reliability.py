"""Retries, timeouts and the response cache under injected faults, on a scaled-down clock.

Waits are recorded instead of slept (a test's own Clock, else the `backoff` fixture), so a
storm of faults runs in seconds and the tests can check the waits against the policy.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
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
from tests.fakes.provider_server import Fault, ProviderServer, RecordedRequest, Reply

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
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", server.url)
    monkeypatch.setenv("OLLAMA_HOST", server.url)


MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-haiku-20240307",
    "gemini": "gemini-2.0-flash",
    "ollama": "llama3.2",
}


def provider(name: str = "openai", **fields: Any) -> Any:
    model = MODELS[name]
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
    # The first answer would take 30 s: only the timeout ends it sooner. Every later one comes
    # at once; a machine too busy to send or read one within the timeout costs an attempt
    # more (cut before or after it reached the server), so the test counts rather than
    # expecting exactly two attempts.
    server.default = lambda request: Reply(text="on time")
    server.script(Reply(text="too late", delay_s=30.0))
    p = provider(options={"timeout_s": 0.3})
    [row] = run(p, samples(1), RunSettings(sleep=clock.sleep))
    assert row.error is None and row.text == "on time"  # not the stalled request's answer
    assert 2 <= len(server.requests) <= row.attempts
    assert len(clock.waits) == row.attempts - 1  # a wait before each retry


# The storm of issue 10 (30% 429s, 10% 5xx, 3% 200s with their JSON cut short), plus 200s whose
# stream ends early at an event boundary, and connections cut mid-answer or reset.
STORM: list[tuple[float, Callable[[random.Random], Fault]]] = [
    (0.30, lambda rng: Fault(status=429, retry_after=rng.choice([0.5, 2.0]))),
    (0.10, lambda rng: Fault(status=rng.choice([500, 502, 503]))),
    (0.03, lambda rng: Fault(malformed=True)),
    (0.02, lambda rng: Fault(end_stream_after=1)),
    (0.02, lambda rng: Fault(drop_stream_after=1)),
    (0.02, lambda rng: Fault(reset_connection=True)),
]
ANSWER = Reply(text="ok", input_tokens=7, output_tokens=3)


def storm_plans(n: int, attempts: int, seed: int) -> dict[str, list[Fault | Reply]]:
    """What each sample's attempts meet, in order: faults drawn from STORM, then the answer.

    Drawn per sample, not per arrival, so each sample meets the same faults whichever order
    concurrent requests arrive in, and its attempts are known in advance. At most attempts - 1
    faults: a sample that met more would be lost by any policy with that many attempts.
    """
    rng = random.Random(seed)
    plans: dict[str, list[Fault | Reply]] = {}
    for i in range(n):
        plan: list[Fault | Reply] = []
        while len(plan) < attempts - 1:
            roll, threshold = rng.random(), 0.0
            fault = None
            for share, make in STORM:
                threshold += share
                if roll < threshold:
                    fault = make(rng)
                    break
            if fault is None:
                break
            plan.append(fault)
        plans[f"question {i}"] = [*plan, ANSWER]
    return plans


def following(server: ProviderServer, plans: dict[str, list[Fault | Reply]]) -> Any:
    """A responder that answers a sample's k-th request with the k-th item of its plan."""

    def respond(request: RecordedRequest) -> Fault | Reply:
        prompt = request.last_user_text or ""
        mine = [r for r in server.requests if r.last_user_text == prompt]
        return plans[prompt][next(k for k, r in enumerate(mine) if r is request)]

    return respond


def fault_kind(item: Fault | Reply) -> str:
    if isinstance(item, Reply):
        return "answer"
    for flag in ("malformed", "end_stream_after", "drop_stream_after", "reset_connection"):
        if getattr(item, flag) not in (None, False):
            return flag
    return str(item.status)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fault_storm_loses_no_sample(
    server: ProviderServer, backoff: BackoffClock, name: str, stream: bool
) -> None:
    """Every fault of the storm, a 200 cut short included, is retried within the default
    attempt budget: every sample is answered, after exactly the attempts its faults took,
    each answer paid for once, each retry's wait recorded (not slept)."""
    policy = RetryPolicy()
    plans = storm_plans(96, policy.max_attempts, seed=1234)
    served = Counter(fault_kind(item) for plan in plans.values() for item in plan)
    assert served["malformed"] and served["end_stream_after"] and served["429"]  # the storm
    server.default = following(server, plans)
    settings = RunSettings(concurrency=8, retries=policy, rng=random.Random(7))
    results = run(provider(name, stream=stream), samples(96), settings)

    expected = [len(plans[f"question {i}"]) for i in range(96)]
    assert [r.error for r in results] == [None] * 96
    assert [r.text for r in results] == ["ok"] * 96
    assert [r.attempts for r in results] == expected
    assert len(server.requests) == sum(expected) == served.total()
    assert len(backoff.waits) == sum(expected) - 96  # one wait before each retry
    assert sum(r.retry_wait_s for r in results) == pytest.approx(sum(backoff.waits))
    assert sum(r.cost_usd for r in results) == pytest.approx(96 * (7 + 3 * 2) / 1e6)


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


def test_a_cache_hit_reports_no_retries_of_its_own(server: ProviderServer, tmp_path: Path) -> None:
    """The waits of the call that paid for an answer are that call's, not a cache hit's."""
    cache, clock = ResponseCache(tmp_path), Clock()
    server.script(Fault(status=429, retry_after=2.0), Reply(text="paid for"))
    [first] = run(provider(), samples(1), RunSettings(cache=cache, sleep=clock.sleep))
    assert (first.text, first.attempts, first.retry_wait_s) == ("paid for", 2, 2.0)
    [again] = run(provider(), samples(1), RunSettings(cache=cache, sleep=clock.sleep))
    assert again.cached and again.text == "paid for" and len(server.requests) == 2
    assert (again.attempts, again.retry_wait_s) == (0, 0.0)


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
    worst = worst_case_cost(items[0].request(PARAMS), PRICE)
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
    # One more attempt than there are refusals: the script is played in arrival order, so
    # however retries and first tries interleave, no sample can run out of attempts.
    retries = RetryPolicy(max_attempts=7)
    settings = RunSettings(concurrency=8, limiter=limiter, sleep=clock.sleep, retries=retries)
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

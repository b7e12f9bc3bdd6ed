"""Token buckets and the adaptive gate, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from llmbench.runtime.limiter import AdaptiveGate, ConnectionLimiter, RateLimits, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_bursts_then_paces() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)  # 60 a minute = 1 a second, burst of 60
    assert [bucket.reserve(1) for _ in range(60)] == [0.0] * 60
    assert bucket.reserve(1) == pytest.approx(1.0)
    assert bucket.reserve(1) == pytest.approx(2.0)  # queued behind the previous one
    clock.now = 10.0
    assert bucket.reserve(1) == 0.0  # refilled meanwhile


def test_tokens_per_minute_wait() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = ConnectionLimiter(RateLimits(tokens_per_minute=600), default_concurrency=4)
    asyncio.run(limiter.wait_for_budget(600, sleep))  # the whole burst
    asyncio.run(limiter.wait_for_budget(100, sleep))  # 100 tokens at 10/s
    assert waits == [pytest.approx(10.0, rel=1e-3)]


def test_aimd_halves_on_429_and_regrows() -> None:
    gate = AdaptiveGate(8)
    gate.on_rate_limited()
    assert gate.limit == 4
    gate.on_rate_limited()
    gate.on_rate_limited()
    gate.on_rate_limited()
    assert gate.limit == 1  # never below one
    for _ in range(1):
        gate.on_success()
    assert gate.limit == 2
    for _ in range(2 + 3 + 4 + 5 + 6 + 7 + 20):
        gate.on_success()
    assert gate.limit == 8  # never above the maximum


def test_gate_bounds_concurrency() -> None:
    gate = AdaptiveGate(2)
    peak = 0
    active = 0

    async def job() -> None:
        nonlocal peak, active
        await gate.acquire()
        try:
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
        finally:
            gate.release()

    async def main() -> None:
        await asyncio.gather(*(job() for _ in range(10)))

    asyncio.run(main())
    assert peak == 2 and gate.in_use == 0


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        RateLimits(max_concurrency=0)
    with pytest.raises(ValueError):
        RateLimits.model_validate({"rpm": 10})


def test_live_progress_bars_from_parallel_steps_share_one_display() -> None:
    """Overlapping steps draw into one live display (several would overwrite each other's
    lines); it stops when the last bar closes."""
    from llmbench.runtime import progress as progress_module
    from llmbench.runtime.progress import GenerationProgress

    bars = [GenerationProgress(f"m{i} / t", 5, live=True) for i in range(3)]  # all alive at once
    assert len({id(bar._bar) for bar in bars}) == 1
    for bar in bars:
        bar.advance(error=False, cost=0.0)
    for bar in bars:
        bar.close()
    assert progress_module._DISPLAY is None  # stopped when the last bar closed

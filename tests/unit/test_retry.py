"""The one retry layer: a plain first attempt, then tenacity, with the same attempt budget,
backoff sequence and Retry-After handling whichever path an attempt takes."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest

from llmbench.runtime.retry import Attempts, RetryPolicy, with_retries

POLICY = RetryPolicy(max_attempts=4, backoff_base_s=1.0, backoff_max_s=60.0)


class Flaky(Exception):
    def __init__(self, retry_after: str | None = None) -> None:
        super().__init__("flaky")
        headers = {"retry-after": retry_after} if retry_after else {}
        self.response = SimpleNamespace(headers=headers)


def run(
    failures: list[BaseException], policy: RetryPolicy = POLICY
) -> tuple[Attempts, list[float], object]:
    """with_retries over a call that raises ``failures`` in turn, then answers "ok"."""
    slept: list[float] = []
    attempts = Attempts()
    pending = list(failures)

    async def call() -> str:
        if pending:
            raise pending.pop(0)
        return "ok"

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def go() -> object:
        try:
            return await with_retries(
                call,
                retryable=lambda e: isinstance(e, Flaky),
                policy=policy,
                attempts=attempts,
                sleep=sleep,
                rng=random.Random(7),
            )
        except Exception as exc:
            return exc

    return attempts, slept, asyncio.run(go())


def test_a_first_success_neither_waits_nor_retries() -> None:
    attempts, slept, result = run([])
    assert result == "ok" and attempts.count == 1 and slept == [] and attempts.waited_s == 0


def test_waits_follow_full_jitter_backoff_from_the_first_failure_on() -> None:
    attempts, slept, result = run([Flaky(), Flaky(), Flaky()])
    assert result == "ok" and attempts.count == 4
    rng = random.Random(7)  # the same draws, in order: ceilings 1, 2, 4 seconds
    assert slept == [rng.uniform(0, 1.0), rng.uniform(0, 2.0), rng.uniform(0, 4.0)]
    assert attempts.waited_s == pytest.approx(sum(slept))


def test_retry_after_is_honoured_on_any_attempt() -> None:
    _, slept, result = run([Flaky("7"), Flaky(), Flaky("3")])
    assert result == "ok" and slept[0] == 7.0 and slept[2] == 3.0 and 0 <= slept[1] <= 2.0


def test_the_attempt_budget_counts_the_first_attempt() -> None:
    attempts, slept, result = run([Flaky()] * 10)
    assert isinstance(result, Flaky) and attempts.count == 4 and len(slept) == 3


def test_an_error_not_worth_retrying_is_raised_at_once() -> None:
    attempts, slept, result = run([ValueError("bad request")])
    assert isinstance(result, ValueError) and attempts.count == 1 and slept == []
    single = RetryPolicy(max_attempts=1)
    attempts, slept, result = run([Flaky()], single)
    assert isinstance(result, Flaky) and attempts.count == 1 and slept == []

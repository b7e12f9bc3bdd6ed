"""The one retry layer (tenacity): exponential backoff with full jitter, Retry-After honoured.

The SDKs' own retries are off, so attempts are never multiplied. Whether an error is worth
retrying is the provider's call (429, 5xx, timeouts, cut connections, a 200 whose body is cut
short or not the API's answer: yes; auth and invalid requests: no). Attempts and waits are
returned so every sample records them.

Waits are slept by the ``sleep`` a caller passes (``RunSettings.sleep``: tests pass a clock that
records), else by ``default_sleep`` (asyncio.sleep). Nothing in llmbench changes
``default_sleep``; the test suite replaces it for every test (``backoff`` in tests/conftest.py)
so that no test sleeps in backoff unless it passes a clock of its own.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

default_sleep: Sleep = asyncio.sleep  # how waits pass when the caller gives no ``sleep``


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=6, ge=1, le=100)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    max_retry_after_s: float = Field(
        default=300.0, ge=0, description="longest server-requested wait that is honoured"
    )


@dataclass
class Attempts:
    """What it took to get an answer: number of attempts and seconds spent waiting."""

    count: int = 0
    waited_s: float = 0.0


def retry_after_s(error: BaseException) -> float | None:
    """The wait a server asked for (retry-after-ms, then Retry-After seconds or HTTP date)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


class BackoffWait:
    """Full jitter (AWS): a random wait in [0, min(cap, base * 2^n)], unless the server said."""

    def __init__(self, policy: RetryPolicy, rng: random.Random, *, done: int = 0) -> None:
        self.policy, self.rng = policy, rng
        self.done = done  # attempts made before tenacity's first (the fast path's)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return self.after(error, self.done + state.attempt_number)

    def after(self, error: BaseException | None, failed_attempts: int) -> float:
        """The wait before the next attempt, ``failed_attempts`` having failed."""
        asked = retry_after_s(error) if error is not None else None
        if asked is not None:
            return min(asked, self.policy.max_retry_after_s)
        ceiling = min(
            self.policy.backoff_max_s, self.policy.backoff_base_s * 2 ** (failed_attempts - 1)
        )
        return self.rng.uniform(0.0, ceiling)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    retryable: Callable[[BaseException], bool],
    policy: RetryPolicy,
    attempts: Attempts,
    sleep: Sleep | None = None,
    rng: random.Random | None = None,
) -> T:
    """``call()`` until it succeeds, fails for good, or runs out of attempts (then re-raises).

    The first attempt is a plain call: most requests succeed at once, and tenacity's
    per-call machinery (~0.1 ms of CPU) bounds how many requests a second one process sends.
    Only after a retryable failure does tenacity take over, counting that first attempt."""
    attempts.count += 1
    try:
        return await call()
    except Exception as error:
        if policy.max_attempts <= 1 or not retryable(error):
            raise
        first_error = error
    wait = BackoffWait(policy, rng or random.Random(), done=1)
    pause = sleep if sleep is not None else default_sleep  # looked up per call
    first_wait = wait.after(first_error, 1)
    attempts.waited_s += first_wait
    await pause(first_wait)

    def record(state: RetryCallState) -> None:
        attempts.waited_s += state.upcoming_sleep

    options: dict[str, Any] = {
        "stop": stop_after_attempt(policy.max_attempts - 1),
        "wait": wait,
        "retry": retry_if_exception(retryable),
        "before_sleep": record,
        "reraise": True,
        "sleep": pause,
    }
    async for attempt in AsyncRetrying(**options):
        with attempt:
            attempts.count += 1
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")

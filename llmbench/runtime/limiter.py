"""Request limits per connection key (provider + endpoint): concurrency, RPM and TPM.

Steps run as threads, each with its own event loop, so a limit shared by the models that use
one endpoint must work across loops: waiters are woken with ``call_soon_threadsafe``. The
concurrency limit adapts to rate limiting as promptfoo and inspect do: halved on a 429
(multiplicative decrease), raised by one after as many successes as the current limit
(additive increase), never above the configured maximum.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

Sleep = Callable[[float], Awaitable[None]]


class RateLimits(BaseModel):
    """Limits for one connection key; ``None`` means unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrency: int | None = Field(default=None, ge=1, le=4096)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    adaptive: bool = Field(default=True, description="halve concurrency on 429, then regrow")


@dataclass
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class AdaptiveGate:
    """A cross-thread, cross-loop semaphore whose size follows AIMD."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_use = 0
        self._successes = 0
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()

    async def acquire(self) -> None:
        with self._lock:
            if self.in_use < int(self.limit) and not self._waiters:
                self.in_use += 1
                return
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.future.done() and not waiter.future.cancelled():
                    self.in_use -= 1  # it was handed a slot it will not use
                    self._wake_locked()
            raise

    def try_acquire(self) -> bool:
        """A slot now if one is free and nobody waits for it (for a caller that cannot
        await: the dispatcher that hands requests to worker processes)."""
        with self._lock:
            if self.in_use < int(self.limit) and not self._waiters:
                self.in_use += 1
                return True
            return False

    def release(self) -> None:
        with self._lock:
            self.in_use -= 1
            self._wake_locked()

    def _wake_locked(self) -> None:
        while self._waiters and self.in_use < int(self.limit):
            waiter = self._waiters.popleft()
            self.in_use += 1
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future)

    def on_rate_limited(self) -> None:
        with self._lock:
            self.limit = max(1.0, self.limit / 2)
            self._successes = 0

    def on_success(self) -> None:
        with self._lock:
            self._successes += 1
            if self.limit < self.maximum and self._successes >= int(self.limit):
                self.limit = min(float(self.maximum), self.limit + 1)
                self._successes = 0
                self._wake_locked()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TokenBucket:
    """``rate_per_minute`` units a minute, bursting up to one minute's worth."""

    def __init__(self, rate_per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_minute / 60.0
        self.capacity = rate_per_minute
        self.level = rate_per_minute
        self.clock = clock
        self.updated = clock()
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> float:
        """Take ``amount`` now (possibly into debt); returns how long to wait before using it."""
        with self._lock:
            now = self.clock()
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
            self.level -= min(amount, self.capacity)
            return 0.0 if self.level >= 0 else -self.level / self.rate


class ConnectionLimiter:
    """Everything that limits requests to one endpoint."""

    def __init__(self, limits: RateLimits, default_concurrency: int) -> None:
        self.limits = limits
        self.gate = AdaptiveGate(limits.max_concurrency or default_concurrency)
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    async def wait_for_budget(self, estimated_tokens: int, sleep: Sleep) -> None:
        wait = 0.0
        if self.requests is not None:
            wait = max(wait, self.requests.reserve(1))
        if self.tokens is not None:
            wait = max(wait, self.tokens.reserve(estimated_tokens))
        if wait > 0:
            await sleep(wait)


_LIMITERS: dict[str, ConnectionLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(key: str, limits: RateLimits, default_concurrency: int) -> ConnectionLimiter:
    """The process-wide limiter of a connection key, shared by every step using it."""
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = ConnectionLimiter(limits, default_concurrency)
        return _LIMITERS[key]

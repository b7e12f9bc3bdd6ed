"""One request with retries, as every sender makes it (a model client in the step's thread,
a worker process): the endpoint's concurrency gate, RPM/TPM waits, the provider's
per-request timeout, retries with backoff, and a failure as a redacted error row."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

from llmbench.pricing import estimated_prompt_tokens
from llmbench.providers.base import Provider
from llmbench.providers.keys import redact
from llmbench.runtime.limiter import ConnectionLimiter
from llmbench.runtime.retry import Attempts, RetryPolicy, Sleep, with_retries
from llmbench.types import Completion, Request


def error_row(error: BaseException, secrets: Iterable[str]) -> Completion:
    """A failed request as a row: the error's first line, with the provider's keys redacted."""
    message = str(error).splitlines()[0] if str(error) else ""
    return Completion(
        finish_reason="error", error=redact(f"{type(error).__name__}: {message}", secrets)
    )


async def send_with_retries(
    provider: Provider,
    limiter: ConnectionLimiter,
    request: Request,
    *,
    retries: RetryPolicy,
    rng: random.Random,
    sleep: Sleep | None = None,
) -> Completion:
    """The provider's answer, or an error row; never raises. ``sleep`` is the clock of the
    RPM/TPM waits and backoff (None: the real one; tests pass their own)."""
    refusal = provider.unsupported(request)
    if refusal is not None:  # nothing sent: no attempt, and no retry would change it
        return Completion(finish_reason="error", error=f"UnsupportedRequest: {refusal}")
    attempts = Attempts()
    timeout = provider.request_timeout_s()
    # Only a TPM bucket reads the estimate: no per-request count without one.
    estimated = estimated_prompt_tokens(request.messages) if limiter.tokens is not None else 0

    rate_limited = 0

    async def once() -> Completion:
        nonlocal rate_limited
        await limiter.gate.acquire()
        try:
            await limiter.wait_for_budget(estimated, sleep or asyncio.sleep)
            async with asyncio.timeout(timeout):  # a stalled stream is cut, then retried
                completion = await provider.generate(request)
        except Exception as exc:
            if provider.rate_limited(exc):
                rate_limited += 1
                if limiter.limits.adaptive:
                    limiter.gate.on_rate_limited()
            raise
        finally:
            limiter.gate.release()
        limiter.gate.on_success()
        return completion

    try:
        completion = await with_retries(
            once,
            retryable=provider.retryable,
            policy=retries,
            attempts=attempts,
            sleep=sleep,
            rng=rng,
        )
    except Exception as exc:  # a failed request is a row, never a crashed run
        completion = error_row(exc, provider.secrets())
    return completion.model_copy(
        update={
            "attempts": attempts.count,
            "retry_wait_s": attempts.waited_s,
            "rate_limited": rate_limited,
        }
    )

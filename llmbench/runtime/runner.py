"""Run one model over one task's samples: bounded async fan-out, the response cache first,
then requests with retries; every sample ends as a completion or a recorded error."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmbench.config import ModelSpec, PriceEntry, TaskSpec
from llmbench.errors import BenchError
from llmbench.providers.base import Provider
from llmbench.providers.keys import redact
from llmbench.providers.registry import build_provider
from llmbench.runtime.budget import Budget, estimated_prompt_tokens, worst_case_cost
from llmbench.runtime.cache import ResponseCache, cache_key
from llmbench.runtime.limiter import ConnectionLimiter, RateLimits, limiter_for
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.retry import Attempts, RetryPolicy, Sleep, with_retries
from llmbench.types import Completion, GenerationParams, Sample


def request_params(model: ModelSpec, task: TaskSpec, seed: int) -> GenerationParams:
    """The model's sampling settings with the task's answer length and stop sequences."""
    base = model.params
    stops = tuple(dict.fromkeys((*base.stop, *task.stop)))
    return base.model_copy(
        update={
            "max_tokens": task.max_tokens or base.max_tokens,
            "stop": stops,
            "seed": base.seed if base.seed is not None else seed,
        }
    )


def price_completion(completion: Completion, price: PriceEntry) -> Completion:
    cost = price.cost(
        completion.input_tokens,
        completion.output_tokens,
        completion.latency_s,
        completion.cached_tokens,
    )
    return completion.model_copy(update={"cost_usd": cost})


@dataclass
class RunSettings:
    """How requests are sent; none of it changes what a model answers."""

    concurrency: int = 4
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    cache: ResponseCache | None = None
    refresh: bool = False  # ignore cached answers (still store new ones)
    budget: Budget | None = None  # the run's spend limit, shared with its other steps
    limiter: ConnectionLimiter | None = None  # the endpoint's limits, shared across steps
    max_error_rate: float | None = None  # abort once this share of requests failed
    sleep: Sleep | None = None  # tests pass a scaled clock
    rng: random.Random = field(default_factory=random.Random)


MIN_SAMPLES_FOR_ERROR_RATE = 20


class ErrorRateExceeded(BenchError):
    exit_code = 1


@dataclass
class _Tally:
    """Live counts of one step, for the error-rate guard."""

    done: int = 0
    errors: int = 0
    abort: str | None = None

    def record(self, completion: Completion, settings: RunSettings, label: str) -> None:
        self.done += 1
        self.errors += int(completion.error is not None)
        limit = settings.max_error_rate
        if (
            limit is not None
            and self.abort is None
            and self.done >= MIN_SAMPLES_FOR_ERROR_RATE
            and self.errors / self.done > limit
        ):
            self.abort = (
                f"{label}: {self.errors} of the first {self.done} requests failed "
                f"({self.errors / self.done:.0%}), above execution.max_error_rate {limit:.0%}"
            )


async def _request(
    provider: Provider, sample: Sample, params: GenerationParams, settings: RunSettings
) -> Completion:
    attempts = Attempts()
    timeout = provider.request_timeout_s()

    limiter = settings.limiter
    assert limiter is not None, "run_samples always sets one"
    sleep = settings.sleep or asyncio.sleep

    async def once() -> Completion:
        await limiter.gate.acquire()
        try:
            await limiter.wait_for_budget(estimated_prompt_tokens(sample.messages()), sleep)
            async with asyncio.timeout(timeout):  # a stalled stream is cut, then retried
                completion = await provider.generate(sample.messages(), params)
        except Exception as exc:
            if provider.rate_limited(exc) and limiter.limits.adaptive:
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
            policy=settings.retries,
            attempts=attempts,
            sleep=settings.sleep,
            rng=settings.rng,
        )
    except Exception as exc:  # a failed request is a row, never a crashed run
        message = str(exc).splitlines()[0] if str(exc) else ""
        error = redact(f"{type(exc).__name__}: {message}", provider.secrets())
        completion = Completion(finish_reason="error", error=error)
    return completion.model_copy(
        update={"attempts": attempts.count, "retry_wait_s": attempts.waited_s}
    )


async def _send(
    provider: Provider,
    sample: Sample,
    params: GenerationParams,
    price: PriceEntry,
    settings: RunSettings,
    tally: _Tally,
) -> Completion:
    """A request unless the run was aborted or its budget would be crossed."""
    if tally.abort is not None:
        return Completion(finish_reason="error", error="aborted: too many errors (not sent)")
    reserved = worst_case_cost(sample.messages(), params, price)
    budget = settings.budget
    if budget is not None and not budget.reserve(reserved):
        return Completion(
            finish_reason="error",
            error=f"budget: not sent (execution.max_cost_usd ${budget.limit_usd:g} reached)",
        )
    completion = await _request(provider, sample, params, settings)
    if budget is not None:
        budget.settle(reserved, price_completion(completion, price).cost_usd)
    return completion


async def _one(
    provider: Provider,
    index: int,
    sample: Sample,
    params: GenerationParams,
    gate: asyncio.Semaphore,
    price: PriceEntry,
    progress: GenerationProgress,
    settings: RunSettings,
    tally: _Tally,
) -> Completion:
    async with gate:
        key = None
        cached = None
        if settings.cache is not None:
            key = cache_key(provider.cache_identity(), sample.messages(), params, index)
            cached = None if settings.refresh else settings.cache.get(key)
        if cached is not None:
            completion = cached.model_copy(update={"cached": True, "attempts": 0})
        else:
            completion = await _send(provider, sample, params, price, settings, tally)
            if settings.cache is not None and key is not None:
                settings.cache.put(key, completion)
    tally.record(completion, settings, progress.label)
    completion = price_completion(completion, price)
    progress.advance(
        error=completion.error is not None,
        cost=0.0 if completion.cached else completion.cost_usd,
        retries=max(completion.attempts - 1, 0),
        cached=completion.cached,
    )
    return completion


async def run_samples(
    provider: Provider,
    samples: Sequence[Sample],
    params: GenerationParams,
    *,
    price: PriceEntry,
    progress: GenerationProgress,
    settings: RunSettings | None = None,
    concurrency: int | None = None,
) -> list[Completion]:
    settings = settings or RunSettings()
    if settings.limiter is None:  # no endpoint-wide limits: this step's own, unlimited
        settings = replace(settings, limiter=ConnectionLimiter(RateLimits(), settings.concurrency))
    gate = asyncio.Semaphore(concurrency or settings.concurrency)
    tally = _Tally()
    jobs = [
        _one(provider, i, s, params, gate, price, progress, settings, tally)
        for i, s in enumerate(samples)
    ]
    try:
        completions = list(await asyncio.gather(*jobs))
    finally:
        await provider.aclose()
    if tally.abort is not None:
        raise ErrorRateExceeded(
            tally.abort,
            hint="check the errors in the step log; fix the cause or raise max_error_rate",
        )
    return completions


def generate(
    model: ModelSpec,
    samples: Sequence[Sample],
    params: GenerationParams,
    *,
    settings: RunSettings,
    label: str,
) -> list[Completion]:
    """Completions for every sample, in sample order."""
    if model.price is None:
        raise ValueError(f"model {model.name} has no resolved price")
    provider = build_provider(model)
    if settings.limiter is None:
        settings.limiter = limiter_for(
            provider.connection_key(), model.limits, settings.concurrency
        )
    progress = GenerationProgress(label, len(samples))
    try:
        return asyncio.run(
            run_samples(
                provider, samples, params, price=model.price, progress=progress, settings=settings
            )
        )
    finally:
        progress.close()


def open_cache(enabled: bool, cache_dir: str | None) -> ResponseCache | None:
    if not enabled:
        return None
    return ResponseCache(Path(cache_dir).expanduser() if cache_dir else None)

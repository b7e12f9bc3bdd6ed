"""Run one entrant (a model or a strategy) over one task's samples: bounded async fan-out,
progress, and the error-rate guard. Everything a single call needs (cache, budget, limits,
retries, price) is the model client's (:mod:`llmbench.runtime.client`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from llmbench.errors import BenchError
from llmbench.providers.base import Provider
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import ModelClient, RunSettings
from llmbench.runtime.limiter import ConnectionLimiter, RateLimits
from llmbench.runtime.progress import GenerationProgress
from llmbench.schema import ModelSpec, PriceEntry
from llmbench.types import Completion, GenerationParams, Sample

__all__ = [
    "Answerer",
    "ErrorRateExceeded",
    "ModelAnswerer",
    "RunSettings",
    "generate",
    "open_cache",
    "request_params",
    "run_answers",
    "run_samples",
]


class AnswerLimits(Protocol):
    """What of a task shapes its requests (a TaskSpec, or a strategy's view of one)."""

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def stop(self) -> tuple[str, ...]: ...


def request_params(model: ModelSpec, task: AnswerLimits, seed: int) -> GenerationParams:
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


class Answerer(Protocol):
    """What the runner fans out over: a model, or a strategy built from model clients."""

    async def answer(self, sample: Sample, index: int) -> Completion: ...

    async def aclose(self) -> None: ...


class ModelAnswerer:
    """A plain model: one call per sample."""

    def __init__(self, client: ModelClient, params: GenerationParams) -> None:
        self.client, self.params = client, params

    async def answer(self, sample: Sample, index: int) -> Completion:
        return await self.client.generate(sample.messages(), self.params, index=index)

    async def aclose(self) -> None:
        await self.client.aclose()


MIN_SAMPLES_FOR_ERROR_RATE = 20


class ErrorRateExceeded(BenchError):
    exit_code = 1


@dataclass
class _Tally:
    """Live counts of one step, for the error-rate guard."""

    done: int = 0
    errors: int = 0
    abort: str | None = None

    def record(self, completion: Completion, limit: float | None, label: str) -> None:
        self.done += 1
        self.errors += int(completion.error is not None)
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


def spend_usd(completion: Completion) -> float:
    """What this answer cost this run: calls served by the response cache cost nothing."""
    if not completion.trace:
        return 0.0 if completion.cached else completion.cost_usd
    return sum(c.cost_usd for c in completion.trace if not c.cached)


async def run_answers(
    answerer: Answerer,
    samples: Sequence[Sample],
    *,
    progress: GenerationProgress,
    settings: RunSettings,
    concurrency: int | None = None,
) -> list[Completion]:
    """Every sample's answer, in sample order; at most ``concurrency`` in progress."""
    gate = asyncio.Semaphore(concurrency or settings.concurrency)
    tally = _Tally()

    async def one(index: int, sample: Sample) -> Completion:
        async with gate:
            if tally.abort is not None:
                completion = Completion(
                    finish_reason="error", error="aborted: too many errors (not sent)"
                )
            else:
                completion = await answerer.answer(sample, index)
        tally.record(completion, settings.max_error_rate, progress.label)
        attempts = [c.attempts for c in completion.trace] or [completion.attempts]
        progress.advance(
            error=completion.error is not None,
            cost=spend_usd(completion),
            retries=sum(max(a - 1, 0) for a in attempts),
            cached=completion.cached,
        )
        return completion

    try:
        completions = list(await asyncio.gather(*(one(i, s) for i, s in enumerate(samples))))
    finally:
        await answerer.aclose()
    if tally.abort is not None:
        raise ErrorRateExceeded(
            tally.abort,
            hint="check the errors in the step log; fix the cause or raise max_error_rate",
        )
    return completions


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
    """One provider over ``samples`` through a client of its own (tests and benchmarks);
    without endpoint-wide limits in ``settings`` the client's limiter is private."""
    settings = settings or RunSettings()
    if settings.limiter is None:
        settings = replace(settings, limiter=ConnectionLimiter(RateLimits(), settings.concurrency))
    spec = provider.spec.model_copy(update={"price": price})
    client = ModelClient(spec, settings, provider=provider)
    return await run_answers(
        ModelAnswerer(client, params),
        samples,
        progress=progress,
        settings=settings,
        concurrency=concurrency,
    )


def generate(
    model: ModelSpec,
    samples: Sequence[Sample],
    params: GenerationParams,
    *,
    settings: RunSettings,
    label: str,
) -> list[Completion]:
    """A plain model's completions for every sample, in sample order."""
    progress = GenerationProgress(label, len(samples))
    try:
        client = ModelClient(model, settings)
        return asyncio.run(
            run_answers(
                ModelAnswerer(client, params), samples, progress=progress, settings=settings
            )
        )
    finally:
        progress.close()


def open_cache(enabled: bool, cache_dir: str | None) -> ResponseCache | None:
    if not enabled:
        return None
    return ResponseCache(Path(cache_dir).expanduser() if cache_dir else None)

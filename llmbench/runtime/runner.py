"""Run one entrant (a model or a strategy) over one task's samples: bounded async fan-out of
the per-sample driver (:mod:`llmbench.runtime.driver`), progress, and the error-rate guard.
Everything a single call needs (cache, budget, limits, retries, price) is the model
client's (:mod:`llmbench.runtime.client`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from llmbench.providers.base import Provider
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import ModelClient, RunSettings
from llmbench.runtime.driver import Driver, Entrant
from llmbench.runtime.limiter import ConnectionLimiter, RateLimits
from llmbench.runtime.offload import generate_in_workers
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.tally import ErrorRateExceeded, Tally, aborted, spend_usd
from llmbench.runtime.workers import claimed_slots, run_coroutine, worker_count
from llmbench.schema import ModelSpec, PriceEntry
from llmbench.tools.agent import ToolBox, ask_model
from llmbench.types import Ask, Completion, GenerationParams, Sample

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
    "spend_usd",
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


Answerer = Entrant  # what the runner fans out over: a model, or a strategy


class ModelAnswerer:
    """A plain model as an entrant: one call per ask on its own settings, or its agent loop
    where the ask carries one (a tool task; the tool set opened once for the step). The
    driver asks it each user turn of a conversation in turn."""

    def __init__(self, client: ModelClient, params: GenerationParams) -> None:
        self.client, self.params = client, params
        self.toolbox = ToolBox()

    async def answer(self, sample: Sample, index: int, ask: Ask | None = None) -> Completion:
        asked = ask or Ask.of(sample)
        return await ask_model(
            self.client,
            self.params,
            asked,
            self.toolbox,
            index=index,
            record_input=asked.messages != tuple(sample.messages()),
        )

    async def aclose(self) -> None:
        try:
            await self.toolbox.aclose()
        finally:
            await self.client.aclose()


async def run_answers(
    answerer: Answerer,
    samples: Sequence[Sample],
    *,
    progress: GenerationProgress,
    settings: RunSettings,
    concurrency: int | None = None,
) -> list[Completion]:
    """Every sample's answer from ``answerer`` through the per-sample driver, in sample
    order; at most ``concurrency`` in progress."""
    gate = asyncio.Semaphore(concurrency or settings.concurrency)
    tally = Tally(progress, settings.max_error_rate)
    driver = Driver(answerer)

    async def one(index: int, sample: Sample) -> Completion:
        async with gate:
            if tally.abort is not None:
                completion = aborted()
            else:
                completion = await driver.answer(sample, index)
        tally.record(completion)
        return completion

    try:
        completions = list(await asyncio.gather(*(one(i, s) for i, s in enumerate(samples))))
    finally:
        await driver.aclose()
    tally.raise_if_aborted()
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
    """A plain model's completions for every sample, in sample order. A conversation's
    turns and a tool-using task's agent steps wait for each other's answers: asked in
    this process, as a strategy's calls are."""
    progress = GenerationProgress(label, len(samples))
    try:
        client = ModelClient(model, settings)
        in_process = any(sample.follow_ups or sample.agent for sample in samples)
        wanted = 0 if in_process else worker_count(model, len(samples), settings.concurrency)
        if wanted:
            with claimed_slots(wanted) as workers:  # the cores, shared with other steps
                return generate_in_workers(
                    client, samples, params, settings=settings, progress=progress, workers=workers
                )
        return run_coroutine(
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

"""Run one model over one task's samples: bounded async fan-out, errors kept as rows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from llmbench.config import ModelSpec, PriceEntry, TaskSpec
from llmbench.providers.base import Provider
from llmbench.providers.keys import redact
from llmbench.providers.registry import build_provider
from llmbench.runtime.progress import GenerationProgress
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


async def _one(
    provider: Provider,
    sample: Sample,
    params: GenerationParams,
    gate: asyncio.Semaphore,
    price: PriceEntry,
    progress: GenerationProgress,
) -> Completion:
    async with gate:
        try:
            completion = await provider.generate(sample.messages(), params)
        except Exception as exc:  # a failed request is a row, never a crashed run
            message = str(exc).splitlines()[0] if str(exc) else ""
            error = redact(f"{type(exc).__name__}: {message}", provider.secrets())
            completion = Completion(finish_reason="error", error=error)
    completion = price_completion(completion, price)
    progress.advance(error=completion.error is not None, cost=completion.cost_usd)
    return completion


async def run_samples(
    provider: Provider,
    samples: Sequence[Sample],
    params: GenerationParams,
    *,
    concurrency: int,
    price: PriceEntry,
    progress: GenerationProgress,
) -> list[Completion]:
    gate = asyncio.Semaphore(concurrency)
    jobs = [_one(provider, s, params, gate, price, progress) for s in samples]
    try:
        return list(await asyncio.gather(*jobs))
    finally:
        await provider.aclose()


def generate(
    model: ModelSpec,
    samples: Sequence[Sample],
    params: GenerationParams,
    *,
    concurrency: int,
    label: str,
) -> list[Completion]:
    """Completions for every sample, in sample order."""
    if model.price is None:
        raise ValueError(f"model {model.name} has no resolved price")
    provider = build_provider(model)
    progress = GenerationProgress(label, len(samples))
    try:
        return asyncio.run(
            run_samples(
                provider,
                samples,
                params,
                concurrency=concurrency,
                price=model.price,
                progress=progress,
            )
        )
    finally:
        progress.close()

"""A plain model's step sent from worker processes (:mod:`llmbench.runtime.workers`).

ZenML runs steps as threads of one process: in-process request loops of two models share a
GIL, and one SDK client is CPU-bound at a few hundred requests a second. When
``worker_count`` says so, a step's requests leave from workers while everything that must
stay in one place stays here, in the step's thread, exactly as a :class:`ModelClient` does it
in process, through the client's own steps (``from_cache``, ``reserve``, ``settle``): the
response cache (a hit is answered here, nothing is sent), identical requests sent once (the
first of them is sent, the others share its answer), the run's budget (reserved before a
request is handed out, settled on its answer), the error-rate guard, progress, the price and
trace of every answer, and the endpoint's concurrency limit: a request is handed to a worker
only while the run-wide gate of its connection key has room, and holds its slot until the
answer is back, so every step and process of the run shares one limit, which the 429s the
workers meet narrow (AIMD) as they would in process.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmbench.runtime.cache import reused
from llmbench.runtime.client import ModelClient, RunSettings
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.tally import Tally, aborted
from llmbench.runtime.workers import run_in_workers
from llmbench.types import Completion, GenerationParams, Request, Sample


def generate_in_workers(
    client: ModelClient,
    samples: Sequence[Sample],
    params: GenerationParams,
    *,
    settings: RunSettings,
    progress: GenerationProgress,
    workers: int,
) -> list[Completion]:
    """Every sample's priced completion, in sample order, sent from ``workers`` processes."""
    requests = [sample.request(params) for sample in samples]
    keys = [client.key(request, i) for i, request in enumerate(requests)]
    first: dict[str, int] = {}  # cache key -> the sample whose request answers it
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    tally = Tally(progress, settings.max_error_rate)
    reserved: dict[int, float] = {}
    counted: dict[int, Completion] = {}  # a sent sample's answer, priced and counted once

    def finished(completion: Completion) -> Completion:
        priced = client.priced(completion)
        tally.record(priced)
        return priced

    def admit(index: int, request: Request) -> Completion | None:
        if tally.abort is not None:
            return finished(aborted())
        hit = client.from_cache(keys[index])
        if hit is not None:
            return finished(hit)
        held = client.reserve(request)
        if isinstance(held, Completion):
            return finished(held)
        reserved[index] = held
        return None

    def on_result(index: int, completion: Completion) -> None:
        client.settle(keys[index], reserved.pop(index), completion)
        counted[index] = finished(completion)

    leaders = sorted(set(first.values()))
    answers = run_in_workers(
        client.spec,
        [(i, requests[i]) for i in leaders],
        workers=workers,
        concurrency=settings.concurrency,
        retries=settings.retries,
        admit=admit,
        on_result=on_result,
        gate=client.limiter.gate,
    )
    by_leader = dict(zip(leaders, answers, strict=True))
    completions: list[Completion] = []
    for index, key in enumerate(keys):
        leader = first[key]
        answer = counted.get(leader, by_leader[leader])
        if leader != index:  # an identical request: it shares the answer of the first
            client.counts.shared += 1
            answer = finished(reused(answer))
        elif not answer.trace:  # never sent (every worker gone): not priced yet
            answer = finished(answer)
        completions.append(answer)
    tally.raise_if_aborted()
    return completions

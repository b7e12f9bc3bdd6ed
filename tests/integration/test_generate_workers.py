"""A plain model's step sent from worker processes (llmbench.runtime.offload), through
``runner.generate`` as the generate step calls it, against the loopback fake.

What a ModelClient does in process still holds when the requests leave from workers: the
response cache answers hits without sending, identical prompts are one request, the budget
stops sending at its limit, every answer is priced with its trace, the error-rate guard
aborts, and a second run is all cache hits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbench.config import ModelSpec, PriceEntry
from llmbench.providers.registry import build_provider
from llmbench.runtime import workers
from llmbench.runtime.budget import Budget
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.runtime.limiter import limiter_for
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import ErrorRateExceeded, generate
from llmbench.runtime.tally import MIN_SAMPLES_FOR_ERROR_RATE
from llmbench.types import GenerationParams, Sample
from tests.fakes.provider_server import Fault, ProviderServer, RecordedRequest, Reply, echo_reply

KEY = "sk-test-offload-4c2a"
PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
PARAMS = GenerationParams(max_tokens=64, temperature=0.0)
NO_WAIT = RetryPolicy(max_attempts=2, backoff_base_s=0.0, backoff_max_s=0.0)


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    server.clear()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    yield
    workers.shutdown()


def spec(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {"name": "api", "provider": "openai", "model": "gpt-4o-mini", "price": PRICE, **fields}
    )


def samples(prompts: list[str]) -> list[Sample]:
    return [Sample(sample_id=f"s{i}", prompt=p, references=("x",)) for i, p in enumerate(prompts)]


def settings(tmp_path: Path, **fields: Any) -> RunSettings:
    return RunSettings(
        concurrency=8, retries=NO_WAIT, cache=ResponseCache(tmp_path / "cache"), **fields
    )


def test_a_large_step_is_sent_from_workers_priced_and_cached(
    server: ProviderServer, tmp_path: Path
) -> None:
    model = spec()
    assert workers.worker_count(model, 40, 8) == 1
    rows = samples([f"prompt {i}" for i in range(40)])
    run = settings(tmp_path)
    first = generate(model, rows, PARAMS, settings=run, label="api/t")
    assert len(server.requests) == 40
    assert workers._IDLE, "the step's workers went back to the pool: they sent the requests"
    assert [c.text for c in first] == [f"echo: prompt {i}" for i in range(40)]
    for completion in first:
        assert completion.error is None and not completion.cached
        assert completion.answered_by == "api" and len(completion.trace) == 1
        expected = (completion.input_tokens * 1.0 + completion.output_tokens * 2.0) / 1e6
        assert completion.cost_usd == pytest.approx(expected) and expected > 0
        assert completion.trace[0].cost_usd == pytest.approx(expected)

    again = generate(model, rows, PARAMS, settings=settings(tmp_path), label="api/t")
    assert len(server.requests) == 40  # nothing sent: every answer from the cache
    assert all(c.cached for c in again)
    assert [c.text for c in again] == [c.text for c in first]


def test_identical_prompts_are_one_request(server: ProviderServer, tmp_path: Path) -> None:
    prompts = [f"prompt {i % 30}" for i in range(45)]  # 15 repeats of earlier prompts
    completions = generate(spec(), samples(prompts), PARAMS, settings=settings(tmp_path), label="a")
    assert len(server.requests) == 30
    assert [c.text for c in completions] == [f"echo: {p}" for p in prompts]
    assert [c.cached for c in completions] == [i >= 30 for i in range(45)]
    assert all(c.error is None for c in completions)


def test_the_budget_stops_sending(server: ProviderServer, tmp_path: Path) -> None:
    rows = samples([f"prompt {i}" for i in range(40)])
    # Each request's worst case is about (prompt + 64 output tokens) at these prices: a
    # budget of five worst cases lets at most five go before the first answers settle.
    budget = Budget(limit_usd=5 * 140 / 1e6)
    completions = generate(
        spec(), rows, PARAMS, settings=settings(tmp_path, budget=budget), label="a"
    )
    refused = [c for c in completions if c.error and c.error.startswith("budget: not sent")]
    answered = [c for c in completions if c.error is None]
    assert refused and answered
    assert len(answered) + len(refused) == 40
    assert len(server.requests) == len(answered) == 40 - budget.refused
    assert budget.spent_usd == pytest.approx(sum(c.cost_usd for c in answered))
    assert budget.spent_usd <= budget.limit_usd and budget.reserved_usd == pytest.approx(0)


def test_cache_hits_from_workers_report_no_retries_of_their_own(
    server: ProviderServer, tmp_path: Path
) -> None:
    rows = samples([f"prompt {i}" for i in range(40)])
    server.script(Fault(status=429, retry_after=0.05))  # one request waits, then retries
    first = generate(spec(), rows, PARAMS, settings=settings(tmp_path), label="a")
    waited = [c for c in first if c.retry_wait_s > 0]
    assert len(waited) == 1 and waited[0].attempts == 2 and waited[0].error is None
    again = generate(spec(), rows, PARAMS, settings=settings(tmp_path), label="a")
    assert len(again) == 40 and all(c.cached for c in again) and len(server.requests) == 41
    assert [(c.attempts, c.retry_wait_s) for c in again] == [(0, 0.0)] * 40


def test_the_error_rate_guard_aborts(server: ProviderServer, tmp_path: Path) -> None:
    server.default = lambda request: Fault(status=500)
    rows = samples([f"prompt {i}" for i in range(200)])
    with pytest.raises(ErrorRateExceeded, match=r"above execution\.max_error_rate 50%"):
        generate(spec(), rows, PARAMS, settings=settings(tmp_path, max_error_rate=0.5), label="a")
    # The guard counts MIN_SAMPLES_FOR_ERROR_RATE failed samples (each after all its attempts)
    # before it trips; requests already handed to the worker finish, no new ones after it.
    assert MIN_SAMPLES_FOR_ERROR_RATE * NO_WAIT.max_attempts <= len(server.requests)
    assert len(server.requests) < 200 * NO_WAIT.max_attempts


def test_each_answer_is_counted_once(server: ProviderServer, tmp_path: Path) -> None:
    """Progress, spend and the error-rate guard see every sample once, as in process."""
    from llmbench.runtime.client import ModelClient
    from llmbench.runtime.offload import generate_in_workers
    from llmbench.runtime.progress import GenerationProgress

    prompts = [f"prompt {i % 30}" for i in range(40)]  # 10 share an earlier answer
    run = settings(tmp_path)
    progress = GenerationProgress("api/t", len(prompts), live=False)
    completions = generate_in_workers(
        ModelClient(spec(), run),
        samples(prompts),
        PARAMS,
        settings=run,
        progress=progress,
        workers=1,
    )
    assert len(server.requests) == 30
    assert progress.done == 40 and progress.cached == 10 and progress.errors == 0
    assert progress.spend == pytest.approx(sum(c.cost_usd for c in completions if not c.cached))
    assert all(len(c.trace) == 1 for c in completions)


def test_one_endpoint_limit_holds_across_steps_and_their_worker_processes(
    server: ProviderServer, tmp_path: Path
) -> None:
    """Two generate steps of one model (threads of the run, each sending from its own worker
    processes) share the endpoint's concurrency limit: never more requests in flight than
    ``concurrency``, as when both send in-process."""
    model = spec(model="gpt-shared-limit")
    assert workers.worker_count(model, 40, 8) == 1
    server.latency_s = 0.05  # answers take a while, so the steps' requests overlap
    steps = [
        threading.Thread(
            target=generate,
            args=(model, samples([f"{task} {i}" for i in range(40)]), PARAMS),
            kwargs={"settings": settings(tmp_path / task), "label": task},
        )
        for task in ("one", "two")
    ]
    for step in steps:
        step.start()
    for step in steps:
        step.join()
    assert len(server.requests) == 80
    assert 1 < server.peak_in_flight <= 8


def test_429s_met_by_workers_narrow_the_runs_limit(server: ProviderServer, tmp_path: Path) -> None:
    model = spec(model="gpt-narrowed-limit")
    # The last three prompts are refused once each, whichever order their retries arrive in:
    # too late for the successes after them to grow the limit back (28 would be needed from
    # 1 to 8). Keyed by prompt, not by arrival order: a retry that overtook another sample's
    # first try would otherwise meet all three refusals and run out of attempts.
    refused: set[str | None] = set()

    def refuse_last_three_once(request: RecordedRequest) -> Reply | Fault:
        prompt = request.last_user_text
        if prompt in {"p 37", "p 38", "p 39"} and prompt not in refused:
            refused.add(prompt)
            return Fault(429, retry_after=0)
        return echo_reply(request)

    server.default = refuse_last_three_once
    rows = generate(model, samples([f"p {i}" for i in range(40)]), PARAMS, **run_args(tmp_path))
    assert [r.error for r in rows] == [None] * 40
    assert sum(r.attempts for r in rows) == 43 and len(refused) == 3
    gate = limiter_for(build_provider(model).connection_key(), model.limits, 8).gate
    assert gate.limit < gate.maximum == 8  # halved by each 429, regrown by the successes


def run_args(tmp_path: Path) -> dict[str, Any]:
    retries = RetryPolicy(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0)
    run = RunSettings(concurrency=8, retries=retries, cache=ResponseCache(tmp_path / "c"))
    return {"settings": run, "label": "t"}

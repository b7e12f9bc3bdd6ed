"""run_in_workers: one model's requests in worker processes, against the loopback fake.

Results come back in sample order whatever worker answered; failed requests, workers that
cannot start and workers that die are error rows; the caller's admit/on_result callbacks
see every sample exactly once; the caller's environment reaches the workers.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from llmbench.config import ModelSpec, PriceEntry
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.workers import WorkerJob, WorkerStats, run_in_workers, shutdown
from llmbench.types import Completion, GenerationParams, Request, Sample
from tests.fakes.provider_server import Fault, ProviderServer

KEY = "sk-test-workers-9d1f"
PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
PARAMS = GenerationParams(max_tokens=64)
NO_WAIT = RetryPolicy(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0)
HERE = "tests.integration.test_workers"


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.clear()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")


def spec(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {"name": "w", "provider": "openai", "model": "gpt-4o-mini", "price": PRICE, **fields}
    )


def items(n: int) -> list[tuple[int, Request]]:
    # Indices are the caller's (a task's sample positions), not 0..n-1.
    return [
        (
            100 + i,
            Sample(sample_id=f"s{i}", prompt=f"prompt {i}", references=("x",)).request(PARAMS),
        )
        for i in range(n)
    ]


def test_results_in_order_from_several_workers(server: ProviderServer) -> None:
    stats = WorkerStats()
    results = run_in_workers(
        spec(), items(60), workers=3, concurrency=6, retries=NO_WAIT, stats=stats
    )
    assert [r.text for r in results] == [f"echo: prompt {i}" for i in range(60)]
    assert all(r.error is None and r.attempts == 1 and r.output_tokens == 3 for r in results)
    assert len(server.requests) == 60
    assert sorted(r.last_user_text or "" for r in server.requests) == sorted(
        f"prompt {i}" for i in range(60)
    )
    assert stats.workers == 3 and sum(stats.per_worker) == 60 and stats.sent == 60
    assert server.peak_in_flight <= 6
    assert stats.cpu_s > 0 and 0 < stats.startup_cpu_s <= stats.cpu_s


def test_every_worker_shares_the_work_and_order_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No answer until all three workers hold a sample: none can take everything.
    monkeypatch.setenv("LLMBENCH_TEST_BARRIER", str(tmp_path))
    stats = WorkerStats()
    results = run_in_workers(
        spec(),
        items(40),
        workers=3,
        concurrency=3,
        sender=f"{HERE}:barrier_sender",
        stats=stats,
    )
    assert [r.text for r in results] == [f"ok {i}" for i in range(40)]
    assert all(answered > 0 for answered in stats.per_worker), stats.per_worker
    assert len({r.model_version for r in results}) == 3  # each names the worker that answered


def test_workers_are_kept_for_the_next_run(server: ProviderServer) -> None:
    shutdown()  # none left idle by other tests
    first, second, other = WorkerStats(), WorkerStats(), WorkerStats()
    run_in_workers(spec(), items(4), workers=2, concurrency=2, stats=first)
    results = run_in_workers(spec(), items(6), workers=2, concurrency=2, stats=second)
    assert [r.text for r in results] == [f"echo: prompt {i}" for i in range(6)]
    assert second.reused == 2 and sorted(second.pids) == sorted(first.pids)
    run_in_workers(spec(name="other"), items(2), workers=1, concurrency=1, stats=other)
    assert other.reused == 1  # any idle worker serves any model
    shutdown()
    after = WorkerStats()
    run_in_workers(spec(), items(2), workers=1, concurrency=1, stats=after)
    assert after.reused == 0 and after.pids[0] not in first.pids


def test_failed_requests_are_redacted_rows_and_retries_happen_in_the_worker(
    server: ProviderServer,
) -> None:
    echoed = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "x"}}
    server.script(
        Fault(status=401, body=echoed),  # not retryable: a row
        Fault(status=500),  # retried, then answered
        Fault(status=500),
    )
    results = run_in_workers(spec(), items(10), workers=2, concurrency=2, retries=NO_WAIT)
    failed = [r for r in results if r.error is not None]
    assert len(failed) == 1 and failed[0].finish_reason == "error"
    assert failed[0].error is not None and "AuthenticationError" in failed[0].error
    assert KEY not in failed[0].error and "***" in failed[0].error
    assert sum(r.attempts for r in results) == 10 + 2
    assert len(server.requests) == 12


def test_admit_and_on_result_see_every_sample_once_in_the_calling_thread(
    server: ProviderServer,
) -> None:
    caller = threading.get_ident()
    admitted: list[int] = []
    answered: list[int] = []

    def admit(index: int, request: Request) -> Completion | None:
        assert threading.get_ident() == caller
        admitted.append(index)
        return Completion(text="from cache", cached=True) if index % 2 == 0 else None

    def on_result(index: int, completion: Completion) -> None:
        assert threading.get_ident() == caller
        answered.append(index)

    results = run_in_workers(
        spec(), items(20), workers=2, concurrency=4, admit=admit, on_result=on_result
    )
    assert sorted(admitted) == list(range(100, 120))
    assert sorted(answered) == list(range(101, 120, 2))  # only what was sent
    assert [r.text for r in results] == [
        "from cache" if i % 2 == 0 else f"echo: prompt {i}" for i in range(20)
    ]
    assert len(server.requests) == 10


def test_the_callers_environment_reaches_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBENCH_TEST_MARK", "set-after-the-fork-server-started")
    results = run_in_workers(
        spec(), items(3), workers=1, concurrency=2, sender=f"{HERE}:environment_sender"
    )
    assert [r.text for r in results] == ["set-after-the-fork-server-started"] * 3


def test_a_worker_that_cannot_start_gives_error_rows(server: ProviderServer) -> None:
    results = run_in_workers(
        spec(), items(5), workers=2, concurrency=2, sender=f"{HERE}:broken_sender"
    )
    assert len(results) == 5
    assert all(r.finish_reason == "error" for r in results)
    assert all(
        "worker could not start: RuntimeError: no provider" in (r.error or "") for r in results
    )
    assert server.requests == []


def test_a_worker_that_dies_fails_its_samples_and_the_others_finish(server: ProviderServer) -> None:
    answered: list[int] = []
    results = run_in_workers(
        spec(),
        items(30),
        workers=2,
        concurrency=2,
        sender=f"{HERE}:dying_sender",
        on_result=lambda index, completion: answered.append(index),
    )
    dead = [r for r in results if r.error is not None]
    assert dead and all(r.error == "worker process exited (code 3)" for r in dead)
    assert len(dead) <= 3  # what the dead worker held: its concurrency (1) + prefetch (2)
    assert all(r.text == f"ok {i}" for i, r in enumerate(results) if r.error is None)
    assert sorted(answered) == list(range(100, 130))


def test_an_error_in_a_callback_stops_the_run() -> None:
    def on_result(index: int, completion: Completion) -> None:
        raise KeyboardInterrupt

    stats = WorkerStats()
    with pytest.raises(KeyboardInterrupt):
        run_in_workers(spec(), items(8), workers=2, concurrency=2, on_result=on_result, stats=stats)
    # ... the interrupted workers are ended, and the next run is not disturbed by them.
    again = WorkerStats()
    results = run_in_workers(spec(), items(4), workers=2, concurrency=2, stats=again)
    assert [r.text for r in results] == [f"echo: prompt {i}" for i in range(4)]
    assert not set(again.pids) & set(stats.pids)


# ---------------------------------------------------------------- senders the workers import

Sender = tuple[Callable[[int, Request], Awaitable[Completion]], Callable[[], Awaitable[None]]]


async def _nothing() -> None:
    return None


async def environment_sender(job: WorkerJob) -> Sender:
    async def send(index: int, request: Request) -> Completion:
        return Completion(text=os.environ.get("LLMBENCH_TEST_MARK", "unset"))

    return send, _nothing


async def barrier_sender(job: WorkerJob) -> Sender:
    folder = Path(os.environ["LLMBENCH_TEST_BARRIER"])

    async def send(index: int, request: Request) -> Completion:
        (folder / f"worker-{job.seed}").touch()  # this worker holds a sample
        for _ in range(3000):  # 30 s at most
            if len(list(folder.glob("worker-*"))) >= 3:
                break
            await asyncio.sleep(0.01)
        return Completion(text=f"ok {index - 100}", model_version=f"worker-{job.seed}")

    return send, _nothing


async def broken_sender(job: WorkerJob) -> Sender:
    raise RuntimeError("no provider")


async def dying_sender(job: WorkerJob) -> Sender:
    async def send(index: int, request: Request) -> Completion:
        if index == 110:  # the worker that gets the eleventh sample dies with it
            os._exit(3)
        return Completion(text=f"ok {index - 100}")

    return send, _nothing


def test_a_worker_sends_the_request_whole(server: ProviderServer) -> None:
    """What a request carries besides text (a per-call answer length, a response schema)
    reaches the wire from a worker process exactly as from the step's thread."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    [(index, request)] = items(1)
    asked = request.with_params(max_tokens=7).model_copy(update={"response_schema": schema})
    [result] = run_in_workers(spec(), [(index, asked)], workers=1, concurrency=1)
    assert result.error is None
    (sent,) = server.requests
    assert sent.body["max_tokens"] == 7
    assert sent.body["response_format"]["json_schema"]["schema"] == schema

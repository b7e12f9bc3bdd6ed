"""When a generate step sends through worker processes, and through how many."""

from __future__ import annotations

import os
from typing import Any

import pytest

from llmbench.config import ModelSpec
from llmbench.runtime.workers import MIN_SAMPLES, _shares, _split_limits, worker_count


def spec(provider: str, model: str, **fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({"name": "m", "provider": provider, "model": model, **fields})


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def test_local_models_and_small_steps_stay_in_process(tmp_path: Any) -> None:
    recorded = tmp_path / "answers.jsonl"
    recorded.write_text('{"prompt": "a", "output": "b"}\n')
    assert worker_count(spec("recorded", str(recorded)), 1000, 64) == 0
    assert worker_count(spec("openai", "gpt-4o-mini"), MIN_SAMPLES - 1, 64) == 0


def test_models_with_endpoint_limits_stay_in_process() -> None:
    """An endpoint's gate and token buckets are shared by every step using it."""
    for limits in (
        {"requests_per_minute": 600},
        {"tokens_per_minute": 90_000},
        {"max_concurrency": 8},
    ):
        assert worker_count(spec("openai", "gpt-4o-mini", limits=limits), 1000, 64) == 0
    assert worker_count(spec("openai", "gpt-4o-mini"), 99, 4) == 1


def test_one_worker_per_32_in_flight_up_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    api = spec("openai", "gpt-4o-mini")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert worker_count(api, 1000, 4) == 1  # its own process: no GIL shared with other steps
    assert worker_count(api, 1000, 64) == 2
    assert worker_count(api, 1000, 1000) == 8
    assert worker_count(api, 40, 1000) == 2  # never more than the samples need


def test_concurrency_and_limits_are_split() -> None:
    assert _shares(64, 3) == [22, 21, 21]
    assert _shares(2, 4) == [1, 1, 1, 1]
    limits = spec(
        "openai",
        "gpt-4o-mini",
        limits={"max_concurrency": 10, "requests_per_minute": 600, "tokens_per_minute": 9000},
    ).limits
    split = _split_limits(limits, 3)
    assert split.max_concurrency == 4 and split.requests_per_minute == 200
    assert split.tokens_per_minute == 3000 and split.adaptive == limits.adaptive


def test_steps_at_once_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step gets what the cores have left of its worker count, never less than one."""
    from llmbench.runtime import workers

    monkeypatch.setattr(workers, "WORKER_SLOTS", 2)
    with workers.claimed_slots(2) as first:
        assert first == 2
        with workers.claimed_slots(2) as second:
            assert second == 1  # the cores are taken: one process, not two
    with workers.claimed_slots(1) as alone, workers.claimed_slots(2) as other:
        assert (alone, other) == (1, 1)
    with workers.claimed_slots(2) as again:
        assert again == 2  # every claim was given back

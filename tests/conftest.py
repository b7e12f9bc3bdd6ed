"""Shared fixtures. Everything runs offline; ZenML and MLflow state lives in tmp dirs.

`backoff` applies to every test: it records retry waits instead of sleeping them, so no test
sleeps in backoff unless it passes a clock of its own.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from llmbench.runtime import retry

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")


class BackoffClock:
    """The retry waits asked for during one test, recorded instead of slept."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def backoff(monkeypatch: pytest.MonkeyPatch) -> BackoffClock:
    """Retry waits of requests sent with no clock of their own (``RunSettings()``, ZenML steps
    run in this process) are recorded here and not slept; request the fixture to read them.
    A test that passes ``RunSettings(sleep=...)`` gets that clock instead (``asyncio.sleep``
    for real waits). run.py in a subprocess is out of reach: those tests configure
    ``execution.retries`` with no waits (tests/cli_runs.py)."""
    clock = BackoffClock()
    monkeypatch.setattr(retry, "default_sleep", clock.sleep)
    return clock


@pytest.fixture
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA

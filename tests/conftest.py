"""Shared fixtures. Everything runs offline; ZenML and MLflow state lives in tmp dirs.

Two fixtures apply to every test. `process_state` puts back what a test may change for the
whole process: os.environ, the loggers run.py and `configure_environment()` set up, the
package scan that `configure_environment()` memoizes and its sqlite settings. `backoff`
records retry waits instead of sleeping them, so no test sleeps in backoff unless it passes a
clock of its own.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench import environment
from llmbench.environment import QUIETED_LOGGERS
from llmbench.runtime import retry

pytest_plugins = ["pytester"]  # tests/integration/test_isolation.py runs tests inside a test

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
# The loggers the code under test sets up for the process (run.py's progress log and those
# configure_environment() quiets); the root logger is pytest's own and left alone.
PROCESS_LOGGERS = ("llmbench", *QUIETED_LOGGERS)
PYTEST_OWN = "PYTEST_CURRENT_TEST"  # pytest sets it per test phase: not the test's to restore

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")


@pytest.fixture(autouse=True)
def process_state() -> Iterator[None]:
    """os.environ, PROCESS_LOGGERS, importlib.metadata and SQLAlchemy's sqlite settings as
    they were before the test."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    write_ahead = event.contains(Engine, "connect", environment._write_ahead)
    environ = {k: v for k, v in os.environ.items() if k != PYTEST_OWN}
    loggers = [logging.getLogger(name) for name in PROCESS_LOGGERS]
    states = [(lg, lg.level, lg.propagate, lg.disabled, list(lg.handlers)) for lg in loggers]
    scan = importlib.metadata.packages_distributions
    try:
        yield
    finally:
        importlib.metadata.packages_distributions = scan  # type: ignore[assignment]
        if not write_ahead and event.contains(Engine, "connect", environment._write_ahead):
            event.remove(Engine, "connect", environment._write_ahead)
        for logger, level, propagate, disabled, handlers in states:
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
            logger.handlers[:] = handlers
        for key in set(os.environ) - set(environ) - {PYTEST_OWN}:
            del os.environ[key]
        for key, value in environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


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

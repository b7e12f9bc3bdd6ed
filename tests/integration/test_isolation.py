"""What one test changes never reaches the next, checked with the suite's own fixtures.

Each check runs two tests in a pytest session of their own (pytester): the first changes
what the second must not see (the fake's responder, script, latency and hold; os.environ and
the loggers, through run.py in this process; the memoized package scan).
"""

from __future__ import annotations

import pytest

# The session inside the test uses the suite's real fixtures, not copies of them.
CONFTEST = 'pytest_plugins = ["tests.conftest", "tests.integration.conftest"]\n'

PAIR = """
import importlib.metadata
import logging
import os

import httpx

import run as cli
from tests.fakes.provider_server import Fault, Reply

IGNORED = {"PYTEST_CURRENT_TEST"}  # pytest's own, set per test phase
ENVIRON = {k: v for k, v in os.environ.items() if k not in IGNORED}
LOG = logging.getLogger("llmbench")
LOGGING = (LOG.level, LOG.propagate, list(LOG.handlers))
SCAN = importlib.metadata.packages_distributions


def test_first_changes_the_process_and_the_fake(server, tmp_path):
    server.script(Fault(status=500), Fault(status=503))
    assert httpx.post(server.url + "/api/chat", json={}, timeout=10).status_code == 500
    server.default = lambda request: Reply("left over from the first test")
    server.latency_s = 30
    server.hold(2)
    assert cli.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert os.environ["ZENML_LOGGING_VERBOSITY"] and os.environ["MLFLOW_DISABLE_TELEMETRY"]
    assert LOG.handlers and not LOG.propagate
    assert importlib.metadata.packages_distributions is not SCAN


def test_second_finds_them_as_new(server):
    assert {k: v for k, v in os.environ.items() if k not in IGNORED} == ENVIRON
    assert (LOG.level, LOG.propagate, list(LOG.handlers)) == LOGGING
    assert importlib.metadata.packages_distributions is SCAN
    assert (server.latency_s, server.pending, server.requests) == (0.0, 0, [])
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    answer = httpx.post(server.url + "/api/chat", json=body, timeout=10).json()
    assert answer["message"]["content"] == "echo: hi"
"""


def test_nothing_one_test_changes_reaches_the_next(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_pair=PAIR)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2)

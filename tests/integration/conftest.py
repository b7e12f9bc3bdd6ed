"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider_server import ProviderServer


@pytest.fixture(scope="module")
def provider_server() -> Iterator[ProviderServer]:
    """A loopback fake of the OpenAI, Anthropic, Gemini and Ollama APIs, one per module."""
    with ProviderServer() as running:
        yield running


@pytest.fixture
def server(provider_server: ProviderServer) -> Iterator[ProviderServer]:
    """The module's fake as each test must find it: nothing recorded or scripted, the echo
    responder, no latency, no hold. Reset after the test too, so what one test scripted or
    set (a judge responder, a latency) never answers the next one's requests."""
    provider_server.reset()
    yield provider_server
    provider_server.reset()

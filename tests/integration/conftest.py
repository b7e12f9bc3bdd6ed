"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider_server import ProviderServer


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    """A loopback fake of the OpenAI, Anthropic, Gemini and Ollama APIs, one per module."""
    with ProviderServer() as running:
        yield running

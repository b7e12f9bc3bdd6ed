"""Keys: a model's ZenML secret is read by that model alone."""

from __future__ import annotations

import os

import pytest

from llmbench.providers.keys import read_key


def test_a_models_secret_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ZenML secret's key reaches the model that names it and no other, and never the
    process environment (steps are threads: a concurrent step's other model read it)."""
    from llmbench.config import ModelSpec
    from llmbench.providers.keys import forget_keys, keys_for, provide_keys
    from llmbench.providers.openai import OpenAIProvider

    monkeypatch.setenv("OPENAI_API_KEY", "sk-environment")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    secret = {"OPENAI_API_KEY": "sk-secret", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    provide_keys("mini", secret)
    try:
        mini = ModelSpec(name="mini", provider="openai", model="gpt-4o-mini")
        other = ModelSpec(name="big", provider="openai", model="gpt-4o")
        assert read_key(["OPENAI_API_KEY"], model="mini") == "sk-secret"
        assert OpenAIProvider.resolve_key(mini) == "sk-secret"
        assert OpenAIProvider.resolve_base_url(mini) == "http://127.0.0.1:9/v1"
        assert OpenAIProvider.resolve_key(other) == "sk-environment"
        assert OpenAIProvider.resolve_base_url(other) != "http://127.0.0.1:9/v1"
        assert os.environ["OPENAI_API_KEY"] == "sk-environment"
        assert keys_for("mini") == secret and keys_for("big") == {}
    finally:
        forget_keys()
    assert read_key(["OPENAI_API_KEY"], model="mini") == "sk-environment"

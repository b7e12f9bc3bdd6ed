"""Anthropic's prompt-cache usage billed as Anthropic bills it: reads at the cached rate,
5-minute writes at the model's cache-write rate (1.25x input where the price gives none),
from the provider's own Completion of an SDK usage object, through the pricing module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Usage

from llmbench import config as cfg
from llmbench import pricing
from llmbench.providers.anthropic import AnthropicProvider
from llmbench.runtime.client import ModelClient, RunSettings
from llmbench.schema import ModelSpec
from llmbench.types import Completion
from tests.unit.test_config import write

# 10 fresh prompt tokens, 100 read from the prompt cache, 50 written to it; 4 out.
USAGE = Usage(
    input_tokens=10,
    output_tokens=4,
    cache_read_input_tokens=100,
    cache_creation_input_tokens=50,
)


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-pricing-test")


def loaded(tmp_path: Path, provider: str, **price: Any) -> ModelSpec:
    """The model as a loaded config resolves it (its price with the provider's defaults)."""
    entry = {"input_per_1m": 1.0, "output_per_1m": 2.0, "cached_input_per_1m": 0.1, **price}
    fields = ", ".join(f"{k}: {v}" for k, v in entry.items())
    bench = (
        "models:\n"
        f"  - {{name: m, provider: {provider}, model: some-model,"
        f" price: {{{fields}, source: t, date: d}}}}\n"
        "tasks: [task.yaml]\n"
    )
    [model] = cfg.load(write(tmp_path, bench)).models
    return model


def completion_of(model: ModelSpec) -> Completion:
    provider = AnthropicProvider(model)
    return provider._completion("ok", (), "end_turn", USAGE, model.model, 0.5, None)


def test_cache_writes_cost_a_quarter_more_than_input_by_default(tmp_path: Path) -> None:
    model = loaded(tmp_path, "anthropic")
    completion = completion_of(model)
    assert (completion.input_tokens, completion.cached_tokens) == (160, 100)
    assert completion.cache_write_tokens == 50
    priced = ModelClient(model, RunSettings()).priced(completion)
    # 10 fresh x $1 + 100 read x $0.1 + 50 written x $1.25 + 4 out x $2, per million
    expected = (10 * 1.0 + 100 * 0.1 + 50 * 1.25 + 4 * 2.0) / 1e6
    assert priced.cost_usd == pytest.approx(expected)
    assert priced.trace[0].cache_write_tokens == 50
    assert model.price is not None
    # Re-priced from its trace (the score step), the writes keep their rate.
    again = pricing.price_completion(priced, {model.name: model.price})
    assert again.cost_usd == pytest.approx(expected)


def test_a_price_with_its_own_cache_write_rate_keeps_it(tmp_path: Path) -> None:
    model = loaded(tmp_path, "anthropic", cache_write_per_1m=2.0)
    assert model.price is not None
    cost = pricing.call_cost(completion_of(model), model.price)
    assert cost == pytest.approx((10 * 1.0 + 100 * 0.1 + 50 * 2.0 + 4 * 2.0) / 1e6)


def test_other_providers_bill_cache_writes_as_input(tmp_path: Path) -> None:
    model = loaded(tmp_path, "openai")
    assert model.price is not None and model.price.cache_write_per_1m is None
    written = Completion(
        input_tokens=160, output_tokens=4, cached_tokens=100, cache_write_tokens=50
    )
    cost = pricing.call_cost(written, model.price)
    assert cost == pytest.approx((60 * 1.0 + 100 * 0.1 + 4 * 2.0) / 1e6)

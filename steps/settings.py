"""How a model-calling step sends requests, read from its ZenML ``extra`` settings.

``extra`` is not part of ZenML's cache key: concurrency, retries, the response cache, the
budget and the price for the live spend figure change how requests are sent, never what a
model answers, so changing them never reruns a cached step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zenml import get_step_context
from zenml.client import Client

from llmbench.providers.keys import provide_keys
from llmbench.runtime.budget import budget_for
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, open_cache
from llmbench.schema import ExecutionSpec, ModelSpec


def request_extra(
    model: ModelSpec, execution: ExecutionSpec, *, refresh: bool, run_name: str
) -> dict[str, Any]:
    """The ``extra`` settings of a step that sends ``model`` requests."""
    assert model.price is not None
    return {
        "concurrency": execution.concurrency,
        "price": model.price.model_dump(mode="json"),
        "limits": model.limits.model_dump(mode="json", exclude_none=True),
        "retries": execution.retries.model_dump(mode="json"),
        "response_cache": execution.response_cache,
        "cache_dir": execution.cache_dir,
        "refresh": refresh,
        "run": run_name,
        "max_cost_usd": execution.max_cost_usd,
        "max_error_rate": execution.max_error_rate,
    }


def strategy_extra(
    members: list[ModelSpec], execution: ExecutionSpec, *, refresh: bool, run_name: str
) -> dict[str, Any]:
    """The ``extra`` settings of a strategy step: the run's send settings and each member
    model's price and limits (each member keeps its own endpoint's limits)."""
    assert members and all(m.price is not None for m in members)
    extra = request_extra(members[0], execution, refresh=refresh, run_name=run_name)
    del extra["price"], extra["limits"]
    extra["models"] = {
        m.name: {
            "price": m.price.model_dump(mode="json"),  # type: ignore[union-attr]
            "limits": m.limits.model_dump(mode="json", exclude_none=True),
        }
        for m in members
    }
    return extra


def spec_with_extra(model: dict[str, Any], extra: dict[str, Any]) -> ModelSpec:
    """The model spec as configured: its identity plus the price and limits from ``extra``."""
    return ModelSpec.model_validate(
        {**model, "price": extra["price"], "limits": extra.get("limits") or {}}
    )


def run_settings(extra: dict[str, Any]) -> RunSettings:
    return RunSettings(
        concurrency=int(extra["concurrency"]),
        retries=RetryPolicy.model_validate(extra["retries"]),
        # ZenML drops None values from `extra`: absent means "default".
        cache=open_cache(bool(extra.get("response_cache", True)), extra.get("cache_dir")),
        refresh=bool(extra.get("refresh", False)),
        budget=budget_for(extra["run"], float(extra["max_cost_usd"]))
        if extra.get("max_cost_usd")
        else None,
        max_error_rate=extra.get("max_error_rate"),
    )


@contextmanager
def step_requests() -> Iterator[tuple[dict[str, Any], RunSettings]]:
    """This step's ``extra`` and the settings built from it; the response cache is closed
    when the step's requests are done."""
    extra = get_step_context().step_run.config.extra
    for model, secret in (extra.get("secrets") or {}).items():
        # Its model's alone, never the process environment (llmbench.providers.keys).
        provide_keys(model, Client().get_secret(secret).secret_values)
    settings = run_settings(extra)
    try:
        yield extra, settings
    finally:
        if settings.cache is not None:
            settings.cache.close()

"""Strategy kinds as written in YAML, mapped lazily to their classes."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from llmbench.errors import ConfigError
from llmbench.suggest import did_you_mean

if TYPE_CHECKING:
    from llmbench.strategies.base import Strategy

STRATEGIES: dict[str, str] = {
    "router": "llmbench.strategies.router:Router",
    "cascade": "llmbench.strategies.cascade:Cascade",
}


def strategy_class(kind: str) -> type[Strategy]:
    if kind not in STRATEGIES:
        raise ConfigError(f"unknown strategy kind {kind!r}", hint=did_you_mean(kind, STRATEGIES))
    module_name, _, class_name = STRATEGIES[kind].partition(":")
    cls: type[Strategy] = getattr(importlib.import_module(module_name), class_name)
    return cls

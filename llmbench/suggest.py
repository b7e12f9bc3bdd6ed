""" "Did you mean" hints for names looked up in registries, and the lazy lookup itself."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from llmbench.errors import ConfigError


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A hint naming the closest known names, or listing them all when none is close."""
    options = sorted(known)
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known: " + ", ".join(options)


def lookup(registry: Mapping[str, str], name: str, what: str) -> Any:
    """The object a registry names as ``"module:attribute"``, imported only now (a
    provider's SDK is imported when a model of it is built, never to validate a config)."""
    if name not in registry:
        raise ConfigError(f"unknown {what} {name!r}", hint=did_you_mean(name, registry))
    module_name, _, attribute = registry[name].partition(":")
    return getattr(importlib.import_module(module_name), attribute)

"""Checks run before anything is written or any model is called.

Rendering every task against its real data catches a template variable the data lacks,
a missing or empty file, or a broken Hub id up front, with exit code 2 instead of a
failed pipeline step minutes later.
"""

from __future__ import annotations

from llmbench.config import BenchConfig
from llmbench.providers.registry import provider_class
from llmbench.tasks.build import build_samples
from llmbench.tasks.loader import source_fingerprint


def preflight(config: BenchConfig) -> dict[str, str]:
    """Validate data, templates and models; returns each task's data fingerprint."""
    fingerprints = {}
    for task in config.tasks:
        fingerprints[task.name] = source_fingerprint(task.source)
        build_samples(task, config.execution.limit)
    for model in config.models:
        provider_class(model.provider).preflight(model)
    return fingerprints

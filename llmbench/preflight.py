"""Checks run before anything is written or any model is called.

Rendering every task against its real data catches a template variable the data lacks,
a missing or empty file, or a broken Hub id up front, with exit code 2 instead of a
failed pipeline step minutes later.
"""

from __future__ import annotations

from llmbench.errors import MissingKeyError
from llmbench.providers.recorded import RecordedProvider
from llmbench.providers.registry import provider_class
from llmbench.schema import BenchConfig
from llmbench.scoring.judge import template_text
from llmbench.scoring.judged import read_human_labels
from llmbench.tasks.build import build_samples, data_fingerprint
from llmbench.tools.toolset import check_servers


def preflight(config: BenchConfig, *, missing_keys: list[str] | None = None) -> dict[str, str]:
    """Validate data, templates, judges and models; returns each task's data fingerprint
    (and each recorded-outputs model's, under ``model:<name>``).

    With ``missing_keys`` given (a dry run), a missing API key is collected there instead
    of stopping the check."""
    fingerprints = {}
    for task in config.tasks:
        fingerprints[task.name] = data_fingerprint(task)
        build_samples(task, config.execution.limit)
        if task.tools is not None:
            check_servers(task.tools, source=f"task {task.name}", field="tools")
        if task.judge is not None:
            template_text(task.judge)
            if task.judge.human_labels is not None:
                read_human_labels(task.judge.human_labels, task.name, task.judge.bounds)
    judges = {name for task in config.tasks if task.judge for name in task.judge.panel}
    graders = [m for m in config.judges if m.name in judges]
    for model in (*config.models, *graders):
        try:
            provider_class(model.provider).preflight(model)
        except MissingKeyError as exc:
            if missing_keys is None:
                raise
            missing_keys.append(exc.message)
        if model.provider == "recorded":
            fingerprints[f"model:{model.name}"] = RecordedProvider.fingerprint(model)
    return fingerprints

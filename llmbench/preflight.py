"""Checks run before anything is written or any model is called.

Rendering every task against its real data catches a template variable the data lacks,
a missing or empty file, or a broken Hub id up front, with exit code 2 instead of a
failed pipeline step minutes later.
"""

from __future__ import annotations

from llmbench.errors import ConfigError, MissingKeyError
from llmbench.providers.registry import provider_class
from llmbench.retrieval.corpus import load_corpus
from llmbench.schema import BenchConfig, ModelSpec
from llmbench.scoring.judge import task_template
from llmbench.scoring.judged import read_human_labels
from llmbench.scoring.relevance import relevance_prompt
from llmbench.tasks.build import build_samples, data_fingerprint
from llmbench.tools.toolset import check_servers
from llmbench.types import Message, Request, Tool


def preflight(config: BenchConfig, *, missing_keys: list[str] | None = None) -> dict[str, str]:
    """Validate data, templates, judges and models; returns each task's data fingerprint
    (and each recorded-outputs model's, under ``model:<name>``).

    With ``missing_keys`` given (a dry run), a missing API key is collected there instead
    of stopping the check."""
    fingerprints = {}
    tool_tasks: list[str] = []
    for task in config.tasks:
        fingerprints[task.name] = data_fingerprint(task)
        if task.retrieval is not None:  # names the task's index steps (llmbench.plan)
            fingerprints[f"corpus:{task.name}"] = load_corpus(task.retrieval.corpus).fingerprint
        samples = build_samples(task, config.execution.limit)
        if task.tools is not None:
            check_servers(task.tools, source=f"task {task.name}", field="tools")
        if task.tools is not None or any(s.tools for s in samples):
            tool_tasks.append(task.name)
        if task.judge is not None:
            task_template(task)
            relevance_prompt(task)  # its prompt file read and checked
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
        found = provider_class(model.provider).fingerprint(model)
        if found is not None:
            fingerprints[f"model:{model.name}"] = found
    if tool_tasks:  # once per model, after its file is known to exist
        for model in config.models:
            check_local_tools(model, tool_tasks[0])
    return fingerprints


# A request offering one tool: what a tool task's every request looks like to a provider.
TOOL_PROBE = Request(
    messages=(Message(role="user", content="?"),),
    tools=(Tool(name="probe", parameters={"type": "object"}),),
)


def check_local_tools(model: ModelSpec, task: str) -> None:
    """A local llama.cpp model that cannot take tools (its chat template has none, a base
    model) would answer a tool task with an error row per item: refused before the run, with
    the option that fixes it. (A cloud provider's support is known by its class; an engine
    that is a server is asked when it runs.)"""
    if model.provider != "llamacpp" or model.options.get("engine", "in_process") != "in_process":
        return
    from llmbench.providers.llamacpp import LlamaCppProvider

    reason = LlamaCppProvider(model).unsupported(TOOL_PROBE)
    if reason is not None:
        raise ConfigError(
            f"task {task} offers tools, but {reason}",
            field=f"models.{model.name}.options.tool_format",
            hint="set options: {tool_format: json} on a chat model, or leave this model "
            "out of tool tasks (--models)",
        )

"""The run's prompt templates in MLflow's Prompt Registry: each task's prompt, each judge
template, each strategy prompt (a classifier's, a verifier's ...) and the selection prompt
of judged tasks' same-spend baselines, one prompt per name, a
new version only when its text changed since the last.

The versions are linked to the benchmark's parent run (the run page's "Prompts" and the
registry's "Runs"), so a score can be traced back to the exact wording behind it.
"""

from __future__ import annotations

from typing import Any

from llmbench.estimate import same_spend_entrants
from llmbench.report.same_spend import method_of
from llmbench.schema import BenchConfig, TaskSpec
from llmbench.scoring.judge import default_template, task_template
from llmbench.scoring.relevance import DEFAULT_TEMPLATE, relevance_prompt
from llmbench.strategies.registry import strategy_class
from llmbench.strategies.usc import UniversalSelfConsistencyOptions

PREFIX = "llmbench"


Template = str | list[dict[str, str]]


def _task_template(task: TaskSpec) -> Template:
    """What a model is asked: its template, as a chat prompt when the task has a system one
    (a BFCL task asks its data's own conversations: it has no template)."""
    if task.turns is not None:
        return f"the user turns {{{{ {task.turns} }}}} of {task.source.describe()}, one by one"
    if task.template is None:
        return f"the conversations of {task.source.describe()}"
    if task.system:
        return [
            {"role": "system", "content": task.system},
            {"role": "user", "content": task.template},
        ]
    return task.template


def templates_of(config: BenchConfig) -> dict[str, tuple[Template, dict[str, str]]]:
    """Registry name -> (template, tags) for every prompt this run used."""
    out: dict[str, tuple[Template, dict[str, str]]] = {}
    for task in config.tasks:
        tags = {"llmbench.kind": "task", "llmbench.task": task.name}
        out[f"{PREFIX}.task.{task.name}"] = (_task_template(task), tags)
        if task.judge is not None:
            default = default_template(task.judge, task.turns is not None)
            name = (
                f"{PREFIX}.judge.{task.name}"
                if task.judge.prompt
                else (f"{PREFIX}.judge.{default.removesuffix('.j2')}")
            )
            tags = {"llmbench.kind": "judge", "llmbench.mode": task.judge.mode}
            out[name] = (task_template(task), tags)
            relevance = task.judge.answer_relevance
            for text in relevance_prompt(task).values():
                name = (
                    f"{PREFIX}.judge.{task.name}.answer_relevance"
                    if relevance is not None and relevance.prompt
                    else f"{PREFIX}.judge.{DEFAULT_TEMPLATE.removesuffix('.j2')}"
                )
                out[name] = (text, {**tags, "llmbench.mode": "answer_relevance"})
    for strategy in config.strategies:
        for option, text in strategy_class(strategy.kind).prompts(strategy).items():
            tags = {
                "llmbench.kind": "strategy",
                "llmbench.strategy": strategy.name,
                "llmbench.option": option,
            }
            out[f"{PREFIX}.strategy.{strategy.name}.{option}"] = (text, tags)
    if any(method_of(t) == "usc" and same_spend_entrants(config, t) for t in config.tasks):
        # A judged task's same-spend baselines pick their answer with this prompt.
        text = UniversalSelfConsistencyOptions(samples=2).select_prompt
        tags = {"llmbench.kind": "same_spend", "llmbench.option": "select_prompt"}
        out[f"{PREFIX}.same_spend.select_prompt"] = (text, tags)
    return out


def _latest(client: Any, name: str) -> Any | None:
    if client.get_prompt(name) is None:
        return None
    versions = list(client.search_prompt_versions(name, max_results=1000))
    return max(versions, key=lambda v: int(v.version)) if versions else None


def register_prompts(config: BenchConfig, run_ids: list[str]) -> dict[str, int]:
    """Register what changed, link every version to ``run_ids``; name -> version used."""
    import mlflow

    client = mlflow.MlflowClient()
    used: dict[str, int] = {}
    for name, (text, tags) in templates_of(config).items():
        latest = _latest(client, name)
        if latest is None or latest.template != text:
            latest = client.register_prompt(
                name=name, template=text, commit_message=f"used by {config.name}", tags=tags
            )
        used[name] = int(latest.version)
        for run_id in run_ids:
            client.link_prompt_version_to_run(run_id, latest)
    return used

"""The benchmark pipeline: load -> generate per (model, task) -> judge -> score -> leaderboard
-> MLflow.

A dynamic pipeline: every (model, task) generation is submitted at once and runs in its own
thread, so models on different backends run concurrently. Each step has a stable id
(``generate__<model>__<task>``) and the model spec is a step parameter, so adding a model to
the config runs only that model's steps; everything else is a cache hit. Judges are steps
of their own (``grade__<model>__<task>__<judge>``, ``compare__<a>__<b>__<task>__<judge>``),
so changing a judge or a metric re-scores without regenerating.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from llmbench.config import BenchConfig, TaskSpec
from llmbench.runtime.runner import request_params
from llmbench.scoring.judge import model_pairs, template_text
from llmbench.scoring.judged import labels_for, read_human_labels
from llmbench.scoring.verdict import PARSER_VERSION
from steps.generate import generate
from steps.judge import compare, grade
from steps.leaderboard import leaderboard
from steps.load_task import load_task
from steps.score import score
from steps.settings import request_extra
from steps.track import track


def _verdict_identity(task: TaskSpec) -> dict[str, Any]:
    """The judge settings that shape a verdict; aggregation and labels only re-score."""
    assert task.judge is not None
    return task.judge.model_dump(mode="json", exclude={"aggregate", "human_labels", "panel"})


def _judge_prices(bench: BenchConfig, task: TaskSpec) -> dict[str, Any]:
    """The task's judges' prices: a price change re-prices judging without re-judging."""
    if task.judge is None:
        return {}
    prices = {name: bench.grader(name).price for name in task.judge.panel}
    return {name: price.model_dump(mode="json") for name, price in prices.items() if price}


@pipeline(dynamic=True, enable_cache=True)
def benchmark(
    config: dict[str, Any], fingerprints: dict[str, str], run_name: str, refresh: bool = False
) -> None:
    bench = BenchConfig.model_validate(config)
    execution = bench.execution
    samples = {
        task.name: load_task.submit(
            task=task.sample_spec().model_dump(mode="json"),
            limit=execution.limit,
            data_fingerprint=fingerprints[task.name],
            id=f"load__{task.name}",
        )
        for task in bench.tasks
    }

    def with_requests(step: Any, model_name: str) -> Any:
        """A step that sends ``model``'s requests: its send settings and ZenML secret."""
        spec = bench.grader(model_name)
        return step.with_options(
            extra=request_extra(spec, execution, refresh=refresh, run_name=run_name),
            # A secret's keys become environment variables during this step only.
            secrets=[spec.secret] if spec.secret else None,
        )

    completions: dict[tuple[str, str], Any] = {}
    for model in bench.models:
        for task in bench.tasks:
            params = request_params(model, task, execution.seed)
            completions[model.name, task.name] = with_requests(generate, model.name).submit(
                samples=samples[task.name],
                model=model.generation_identity(),
                params=params.model_dump(mode="json"),
                label=f"{model.name} / {task.name}",
                data_fingerprint=fingerprints.get(f"model:{model.name}"),
                id=f"generate__{model.name}__{task.name}",
            )

    judgments: dict[tuple[str, str], list[Any]] = {}
    verdicts: list[Any] = []
    for task in bench.tasks:
        if task.judge is None:
            continue
        spec, template = _verdict_identity(task), template_text(task.judge)
        for judge_name in task.judge.panel:
            identity = bench.grader(judge_name).generation_identity()
            if task.judge.mode == "pairwise":
                names = [m.name for m in bench.models]
                for a, b in model_pairs(names, task.judge.baseline):
                    verdict = (
                        with_requests(compare, judge_name)
                        .submit(
                            samples=samples[task.name],
                            completions_a=completions[a, task.name],
                            completions_b=completions[b, task.name],
                            model_a=a,
                            model_b=b,
                            task=task.name,
                            spec=spec,
                            prompt_template=template,
                            # ZenML's cache key sees only the step's own source, not the parser's.
                            parser_version=PARSER_VERSION,
                            judge=identity,
                            seed=execution.seed,
                            label=f"{judge_name} judges {a} vs {b} / {task.name}",
                            id=f"compare__{a}__{b}__{task.name}__{judge_name}",
                        )
                        .get_artifact("verdicts")
                    )
                    verdicts.append(verdict)
                    for name in (a, b):
                        judgments.setdefault((name, task.name), []).append(verdict)
                continue
            for model in bench.models:
                judgments.setdefault((model.name, task.name), []).append(
                    with_requests(grade, judge_name)
                    .submit(
                        samples=samples[task.name],
                        completions=completions[model.name, task.name],
                        task=task.name,
                        spec=spec,
                        prompt_template=template,
                        # ZenML's cache key sees only the step's own source, not the parser's.
                        parser_version=PARSER_VERSION,
                        judge=identity,
                        seed=execution.seed,
                        label=f"{judge_name} grades {model.name} / {task.name}",
                        id=f"grade__{model.name}__{task.name}__{judge_name}",
                    )
                    .get_artifact("grades")
                )

    results, aggregates = [], []
    for task in bench.tasks:
        labels = None
        if task.judge is not None and task.judge.human_labels is not None:
            labels = read_human_labels(task.judge.human_labels, task.name, task.judge.bounds)
        for model in bench.models:
            scored = score.submit(
                samples=samples[task.name],
                completions=completions[model.name, task.name],
                judgments=judgments.get((model.name, task.name), []),
                human_labels=labels_for(labels, model.name) if labels is not None else None,
                judge_prices=_judge_prices(bench, task),
                model=model.model_dump(mode="json"),
                task=task.model_dump(mode="json"),
                id=f"score__{model.name}__{task.name}",
            )
            results.append(scored.get_artifact("results"))
            aggregates.append(scored.get_artifact("aggregates"))
    board = leaderboard.submit(
        config=config, results=results, aggregates=aggregates, verdicts=verdicts, id="leaderboard"
    )
    track.with_options(
        settings={"experiment_tracker": {"experiment_name": bench.tracking.experiment}}
    ).submit(
        config=config,
        leaderboard=board.get_artifact("leaderboard"),
        all_results=board.get_artifact("all_results"),
        statistics=board.get_artifact("statistics"),
        run_name=run_name,
        id="track",
    )

"""The benchmark pipeline: load (a retrieval task: load, index per corpus, retrieve) ->
generate per (entrant, task) -> judge -> score ->
leaderboard -> report and MLflow, as planned by :func:`llmbench.plan.plan`.

Each task is scored in one step (``score__<task>``, every entrant of it); each multi-step
strategy then gets a same-spend baseline, chosen from the task's scored rows, drawn and
scored as ``<strategy>.same-spend`` in one step per task (``same_spend__<task>``), for the
report only.

A dynamic pipeline: every generation is submitted at once and runs in its own thread, so
models on different backends run concurrently; a strategy's step waits for its members'
steps, so the calls their rows already made are response-cache hits. Step ids are stable
(``generate__<model>__<task>``, ``answer__<strategy>__<task>``, ``grade__...``,
``compare__...``, ``score__<task>``), and each step's parameters are what shapes its output,
so adding a model runs only its generation steps (and re-scores its tasks, which sends no
request) and changing a judge or a metric re-scores without regenerating.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from llmbench.plan import plan
from llmbench.schema import BenchConfig
from llmbench.scoring.judged import labels_for, read_human_labels
from steps.generate import generate
from steps.judge import compare, grade
from steps.leaderboard import leaderboard
from steps.load_task import load_task
from steps.report import report
from steps.retrieval import index_corpus, load_questions, retrieve
from steps.same_spend import same_spend
from steps.score import score
from steps.settings import request_extra, strategy_extra
from steps.strategy import answer
from steps.track import track


@pipeline(dynamic=True, enable_cache=True)
def benchmark(
    config: dict[str, Any], fingerprints: dict[str, str], run_name: str, refresh: bool = False
) -> None:
    bench = BenchConfig.model_validate(config)
    execution = bench.execution
    steps = plan(bench, fingerprints)
    tasks = {task.name: task for task in bench.tasks}
    indexes = {
        built.id: index_corpus.submit(id=built.id, **built.params) for built in steps.indexes
    }
    samples = {}
    for name in steps.tasks:
        retrieving = steps.retrievals.get(name)
        if retrieving is None:
            samples[name] = load_task.submit(
                task=tasks[name].sample_spec().model_dump(mode="json"),
                limit=execution.limit,
                data_fingerprint=fingerprints[name],
                id=f"load__{name}",
            )
            continue
        questions = load_questions.submit(
            task=retrieving.load_task,
            limit=execution.limit,
            data_fingerprint=fingerprints[name],
            id=f"load__{name}",
        )
        samples[name] = retrieve.submit(
            task=retrieving.task,
            questions=questions,
            indexes=[indexes[i] for i in retrieving.indexes],
            id=retrieving.id,
        )

    def sending(step: Any, models: tuple[str, ...], extra: dict[str, Any]) -> Any:
        """A step that sends requests: its send settings and its models' ZenML secrets, by
        name. The step gives each secret's values to its model alone
        (steps.settings.step_requests): ZenML's own step ``secrets`` would set them in the
        process environment, where a step running beside it reads them for another model."""
        secrets = {m: s for m in models if (s := bench.grader(m).secret)}
        return step.with_options(extra={**extra, "secrets": secrets} if secrets else extra)

    futures: dict[str, Any] = {}
    answers: dict[tuple[str, str], Any] = {}
    for planned in steps.generations:
        if planned.kind == "model":
            spec = bench.grader(planned.entrant)
            extra = request_extra(spec, execution, refresh=refresh, run_name=run_name)
            future = sending(generate, planned.request_models, extra).submit(
                samples=samples[planned.task], id=planned.id, **planned.params
            )
        else:
            members = [bench.grader(m) for m in planned.request_models]
            extra = strategy_extra(members, execution, refresh=refresh, run_name=run_name)
            future = sending(answer, planned.request_models, extra).submit(
                samples=samples[planned.task],
                after=[futures[i] for i in planned.after],
                id=planned.id,
                **planned.params,
            )
        futures[planned.id] = future
        answers[planned.entrant, planned.task] = future

    verdicts: list[Any] = []
    judged: dict[str, Any] = {}
    for judging in steps.judgings:
        spec = bench.grader(judging.judge)
        extra = request_extra(spec, execution, refresh=refresh, run_name=run_name)
        step = sending(compare if judging.mode == "compare" else grade, (judging.judge,), extra)
        if judging.mode == "compare":
            a, b = judging.entrants
            judged[judging.id] = step.submit(
                samples=samples[judging.task],
                completions_a=answers[a, judging.task],
                completions_b=answers[b, judging.task],
                id=judging.id,
                **judging.params,
            ).get_artifact("verdicts")
            verdicts.append(judged[judging.id])
        else:
            judged[judging.id] = step.submit(
                samples=samples[judging.task],
                completions=answers[judging.entrants[0], judging.task],
                id=judging.id,
                **judging.params,
            ).get_artifact("grades")

    labels: dict[str, Any] = {}
    for task in bench.tasks:
        if task.judge is not None and task.judge.human_labels is not None:
            labels[task.name] = read_human_labels(
                task.judge.human_labels, task.name, task.judge.bounds
            )
    results, aggregates = [], []
    scored_tasks: dict[str, Any] = {}
    for scoring in steps.scorings:
        task_labels = labels.get(scoring.task)
        scored = score.submit(
            samples=samples[scoring.task],
            completions=[answers[entrant, scoring.task] for entrant in scoring.entrants],
            judgments=[judged[i] for i in scoring.judgings],
            human_labels={e: labels_for(task_labels, e) for e in scoring.entrants}
            if task_labels is not None
            else None,
            judge_prices=scoring.judge_prices,
            entrants=list(scoring.entrants),
            judged=scoring.judged,
            prices=scoring.prices,
            task=tasks[scoring.task].model_dump(mode="json"),
            id=scoring.id,
        )
        scored_tasks[scoring.task] = rows = scored.get_artifact("results")
        results.append(rows)
        aggregates.append(scored.get_artifact("aggregates"))
    # Each multi-step strategy's same-spend baseline, chosen from its task's scored rows,
    # drawn and scored in one step per task.
    baselines = []
    for baseline in steps.same_spend:
        # Its members draw; on a judged task its panel grades the draws in the step too.
        members = [bench.grader(m) for m in baseline.request_models]
        extra = strategy_extra(members, execution, refresh=refresh, run_name=run_name)
        baselines.append(
            sending(same_spend, baseline.request_models, extra).submit(
                samples=samples[baseline.task],
                scored=scored_tasks[baseline.task],
                id=baseline.id,
                **baseline.params,
            )
        )
    board = leaderboard.submit(
        config=config,
        results=results,
        aggregates=aggregates,
        verdicts=verdicts,
        baselines=baselines,
        id="leaderboard",
    )
    rendered = report.submit(
        config=config,
        leaderboard=board.get_artifact("leaderboard"),
        all_results=board.get_artifact("all_results"),
        statistics=board.get_artifact("statistics"),
        figures=board.get_artifact("figures"),
        run_name=run_name,
        id="report",
    )
    tracked = track.with_options(
        settings={"experiment_tracker": {"experiment_name": bench.tracking.experiment}}
    ).submit(
        config=config,
        leaderboard=board.get_artifact("leaderboard"),
        all_results=board.get_artifact("all_results"),
        statistics=board.get_artifact("statistics"),
        page=rendered,
        figures=board.get_artifact("figures"),
        run_name=run_name,
        id="track",
    )
    # Every step feeds track. Waiting on it here returns as soon as it ends: ZenML's runner,
    # left to settle unawaited steps itself, polls once a second (half a second lost on
    # average, a fully cached run's 5%).
    tracked.wait()

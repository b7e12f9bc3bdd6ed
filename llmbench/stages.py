"""The stages of a benchmark run as plain functions over DataFrames.

ZenML steps (``steps/``) are one-line wrappers around these, so the whole flow can also be
run and tested without ZenML.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmbench import pricing
from llmbench.report.leaderboard import JUDGE_RESULT_COLUMNS, RESULT_COLUMNS
from llmbench.retrieval.corpus import load_corpus
from llmbench.retrieval.index import Index, Kind, build_index
from llmbench.retrieval.trace import with_retrieval
from llmbench.runtime import runner
from llmbench.runtime.progress import GenerationProgress
from llmbench.schema import (
    CorpusSpec,
    JudgeSpec,
    ModelSpec,
    PriceEntry,
    SampleSpec,
    TaskSpec,
)
from llmbench.scoring import judge, judged, relevance
from llmbench.scoring.score import score_completions
from llmbench.strategies.base import TaskView
from llmbench.strategies.build import build_strategy, from_identity
from llmbench.tables import (
    JSON_SAMPLE_COLUMNS,
    completions_to_frame,
    frame_to_completions,
    frame_to_samples,
    samples_to_frame,
)
from llmbench.tasks.build import build_samples, load_questions, retrieved_samples
from llmbench.tasks.questions import frame_to_questions, questions_to_frame
from llmbench.types import Completion, GenerationParams, Sample


def load_task(task: SampleSpec, limit: int | None) -> pd.DataFrame:
    return samples_to_frame(build_samples(task, limit))


def load_retrieval_task(task: SampleSpec, limit: int | None) -> pd.DataFrame:
    """A retrieval task's rows with their queries, before retrieval (:func:`retrieve`)."""
    return questions_to_frame(
        load_questions(task, limit), source=f"task {task.name} ({task.source.describe()})"
    )


def index_corpus(corpus: CorpusSpec, kind: Kind, embedding_model: str) -> Index:
    """One index of one corpus: what every task retrieving from it with ``kind`` shares."""
    return build_index(load_corpus(corpus), kind, embedding_model)


def retrieve(task: SampleSpec, questions: pd.DataFrame, indexes: Sequence[Index]) -> pd.DataFrame:
    """A retrieval task's samples: each question's passages searched in ``indexes`` and
    shown by the task's templates."""
    found = {index.kind: index for index in indexes}
    return samples_to_frame(retrieved_samples(task, frame_to_questions(questions), found))


def _answers_frame(items: list[Sample], completions: list[Completion]) -> pd.DataFrame:
    """The answers as a table, each with its sample's retrieval (if any) first in its trace."""
    traced = [with_retrieval(s, c) for s, c in zip(items, completions, strict=True)]
    return completions_to_frame([s.sample_id for s in items], traced)


def generate(
    model: ModelSpec,
    samples: pd.DataFrame,
    params: GenerationParams,
    *,
    settings: runner.RunSettings,
    label: str,
) -> pd.DataFrame:
    items = frame_to_samples(samples)
    completions = runner.generate(model, items, params, settings=settings, label=label)
    return _answers_frame(items, completions)


def answer(
    strategy: dict[str, Any],
    model_settings: Mapping[str, dict[str, Any]],
    task: TaskView,
    samples: pd.DataFrame,
    *,
    seed: int,
    settings: runner.RunSettings,
    label: str,
) -> pd.DataFrame:
    """A strategy's answers to one task's samples (``strategy``: its identity, members
    included; ``model_settings``: each member model's price and limits)."""
    spec, models, strategies = from_identity(strategy, model_settings)
    items = frame_to_samples(samples)
    progress = GenerationProgress(label, len(items))
    try:
        built = build_strategy(spec, models, strategies, task, seed=seed, settings=settings)
        completions = asyncio.run(
            runner.run_answers(built, items, progress=progress, settings=settings)
        )
    finally:
        progress.close()
    return _answers_frame(items, completions)


def same_spend(
    strategy: str,
    task: TaskSpec,
    samples: pd.DataFrame,
    strategy_results: pd.DataFrame,
    member_results: Mapping[str, pd.DataFrame],
    models: Mapping[str, ModelSpec],
    *,
    seed: int,
    settings: runner.RunSettings,
    label: str,
) -> pd.DataFrame:
    """A strategy's same-spend baseline on one task (:mod:`llmbench.report.same_spend`):
    chosen from the scored rows of the strategy and of its model members (``models``, by
    name, priced), then drawn: one answer of the member (its own row's requests, from the
    response cache), or n draws of it, voted (a task scored by metrics) or one picked by
    the member as the most consistent (universal self-consistency, a judged task). No
    member scored: a failed row per sample, saying so."""
    from llmbench.report.same_spend import choose, member_temperatures, method_of, replayed

    items = frame_to_samples(samples)
    ids = [s.sample_id for s in items]
    temperatures = member_temperatures(list(models.values()), task, seed)
    chosen = choose(
        strategy,
        task,
        strategy_results,
        member_results,
        temperatures,
        replayed(models.values()),
    )
    if chosen is None or method_of(task) is None:
        why = "no member was scored" if chosen is None else "the task takes none"
        failed = Completion(error=f"no same-spend baseline for {strategy}: {why}")
        return completions_to_frame(ids, [failed] * len(items))
    model = models[chosen.member]
    if chosen.draws == 1:
        params = runner.request_params(model, task, seed)
        return completions_to_frame(
            ids, runner.generate(model, items, params, settings=settings, label=label)
        )
    progress = GenerationProgress(label, len(items))
    try:
        built = build_strategy(
            chosen.spec(), {model.name: model}, {}, TaskView.of(task), seed=seed, settings=settings
        )
        completions = asyncio.run(
            runner.run_answers(built, items, progress=progress, settings=settings)
        )
    finally:
        progress.close()
    return completions_to_frame(ids, completions)


def score_same_spend(
    task: TaskSpec,
    samples: pd.DataFrame,
    scored: pd.DataFrame,
    strategies: Mapping[str, Mapping[str, ModelSpec]],
    *,
    seed: int,
    settings: runner.RunSettings,
    judges: Mapping[str, ModelSpec] | None = None,
) -> pd.DataFrame:
    """The same-spend baselines of a task's strategies (``strategies``: each one's model
    members, by name, priced), each drawn (:func:`same_spend`) and scored as
    ``<strategy>.same-spend`` (:func:`score`) at its members' prices, one strategy after
    the other: ``scored`` is the task's scored rows (:func:`score_task`). On a judged task
    each baseline's answers are graded by every judge of the panel (``judges``, by name,
    priced) through :func:`grade`, as the leaderboard's rows are, and scored with them."""
    from llmbench.report.same_spend import SUFFIX

    def rows(entrant: str) -> pd.DataFrame:
        return scored[scored["model"] == entrant].reset_index(drop=True)

    baselines = []
    for strategy, models in strategies.items():
        entrant = strategy + SUFFIX
        drawn = same_spend(
            strategy,
            task,
            samples,
            rows(strategy),
            {name: rows(name) for name in models},
            models,
            seed=seed,
            settings=settings,
            label=f"{entrant} / {task.name}",
        )
        prices = {name: m.price for name, m in models.items() if m.price is not None}
        grades = _grade_panel(task, judges or {}, samples, drawn, entrant, seed, settings)
        judge_prices = {n: m.price for n, m in (judges or {}).items() if m.price is not None}
        results, _aggregates = score(
            entrant, task, samples, drawn, grades, judge_prices=judge_prices, prices=prices
        )
        baselines.append(results)
    return pd.concat(baselines, ignore_index=True)


def _grade_panel(
    task: TaskSpec,
    judges: Mapping[str, ModelSpec],
    samples: pd.DataFrame,
    completions: pd.DataFrame,
    entrant: str,
    seed: int,
    settings: runner.RunSettings,
) -> list[pd.DataFrame]:
    """Each panel judge's grades of ``entrant``'s answers (:func:`grade`, the grade
    step's own path: one judge as the panel, the task's template and relevance prompt);
    none on a task without a judge."""
    if task.judge is None:
        return []
    template = judge.task_template(task)
    relevance_template = relevance.relevance_prompt(task).get("relevance_template")
    missing = [name for name in task.judge.panel if name not in judges]
    if missing:
        raise ValueError(f"same-spend grading of {task.name} lacks judges {missing}")
    return [
        grade(
            task.name,
            task.judge.model_copy(update={"panel": [name]}),
            template,
            judges[name],
            samples,
            completions,
            seed=seed,
            settings=settings,
            label=f"{name} grades {entrant} / {task.name}",
            relevance_template=relevance_template,
        )
        for name in task.judge.panel
    ]


def _judge_runner(settings: runner.RunSettings, label: str) -> judge.Runner:
    def run(model: ModelSpec, requests: list[Sample], params: GenerationParams) -> list[Completion]:
        return runner.generate(model, requests, params, settings=settings, label=label)

    return run


def grade(
    task: str,
    spec: JudgeSpec,
    template: str,
    grader: ModelSpec,
    samples: pd.DataFrame,
    completions: pd.DataFrame,
    *,
    seed: int,
    settings: runner.RunSettings,
    label: str,
    relevance_template: str | None = None,
) -> pd.DataFrame:
    """One judge's rubric, reference-guided or faithfulness grades of one model's answers,
    with each answer's relevance beside its grade when the judge scores that too
    (``relevance_template``: the text of its prompt)."""
    items, answers = frame_to_samples(samples), frame_to_completions(completions)
    run = _judge_runner(settings, label)
    sent = judge.judge_model(grader, spec)
    grades = judge.grade_answers(
        task, spec, sent, items, answers, run, judge.judge_params(sent, spec, seed), template
    )
    if spec.answer_relevance is None:
        return grades
    if relevance_template is None:
        relevance_template = relevance.template_text(spec.answer_relevance)
    scored = relevance.score_answers(
        task, spec, grader, items, answers, run, seed=seed, template=relevance_template
    )
    return relevance.with_relevance(grades, scored)


def compare(
    task: str,
    spec: JudgeSpec,
    template: str,
    grader: ModelSpec,
    samples: pd.DataFrame,
    model_a: tuple[str, pd.DataFrame],
    model_b: tuple[str, pd.DataFrame],
    *,
    seed: int,
    settings: runner.RunSettings,
    label: str,
) -> pd.DataFrame:
    """One judge's pairwise verdicts on two models' answers, in both orders."""
    grader = judge.judge_model(grader, spec)
    return judge.judge_pair(
        task,
        spec,
        grader,
        frame_to_samples(samples),
        (model_a[0], frame_to_completions(model_a[1])),
        (model_b[0], frame_to_completions(model_b[1])),
        _judge_runner(settings, label),
        judge.judge_params(grader, spec, seed),
        template,
    )


def score(
    model: ModelSpec | str,
    task: TaskSpec,
    samples: pd.DataFrame,
    completions: pd.DataFrame,
    judgments: Sequence[pd.DataFrame] = (),
    human_labels: Mapping[str, Any] | None = None,
    judge_prices: Mapping[str, PriceEntry] | None = None,
    *,
    prices: Mapping[str, PriceEntry] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sample result rows, aggregate rows) for one model or strategy on one task.

    ``judgments`` are the task judge's outputs: each panel judge's grades of this model, or
    every pairwise verdict involving it; they are re-priced at ``judge_prices``. Cost is
    recomputed here from the price in force, so a price change rescoring a cached generation
    still reports tokens x the snapshotted price: each call of an answer's trace at its
    model's price in ``prices`` (the entrant's own, or every member's for a strategy; a
    model spec passed as ``model`` brings its own).
    """
    if isinstance(model, ModelSpec):
        entrant = model.name
        prices = {**(prices or {}), **({entrant: model.price} if model.price else {})}
    else:
        entrant = model
    prices = prices or {}
    items = frame_to_samples(samples)
    priced = [
        pricing.price_completion(c, prices, own=entrant) for c in frame_to_completions(completions)
    ]
    scores, aggregates = score_completions(task, items, priced)
    if task.judge is not None:
        ids = [s.sample_id for s in items]
        failed = [c.error is not None for c in priced]
        judgments = [judge.reprice(frame, judge_prices or {}) for frame in judgments]
        if task.judge.mode == "pairwise":
            zero = task.failed_requests == "zero"
            judgments = [judge.score_failures(frame, zero) for frame in judgments]
            columns, row = judged.pairwise_columns(entrant, ids, judgments)
            rows = [row]
        else:
            columns, row = judged.graded_columns(task, ids, judgments, failed)
            rows = [row]
            if task.judge.answer_relevance is not None:
                relevant, relevant_row = judged.relevance_columns(task, ids, judgments, failed)
                columns = columns.merge(relevant, on="sample_id", validate="1:1")
                rows.append(relevant_row)
            if any(s.follow_ups for s in items):  # MT-Bench's turn 1, turn 2 beside the mean
                turns, turn_rows = judged.turn_columns(task, ids, judgments, failed)
                columns = columns.merge(turns, on="sample_id", validate="1:1")
                rows.extend(turn_rows)
        if human_labels is not None:
            columns["human_label"] = columns["sample_id"].map(
                lambda s: human_labels.get(s)  # type: ignore[union-attr]
            )
        scores = scores.merge(columns, on="sample_id", validate="1:1")
        aggregates = pd.concat([aggregates, pd.DataFrame(rows)], ignore_index=True)
    generated = completions_to_frame([s.sample_id for s in items], priced)
    generated["spend_usd"] = [runner.spend_usd(c) for c in priced]
    # The samples re-framed: a load step cached before a sample field existed lacks its column.
    results = (
        samples_to_frame(items)
        .drop(columns=["choices"])
        .merge(generated, on="sample_id", validate="1:1")
    )
    results = results.rename(columns={"text": "output"}).merge(
        scores, on="sample_id", validate="1:1"
    )
    results.insert(0, "task", task.name)
    results.insert(0, "model", entrant)
    score_columns = [c for c in results.columns if c.startswith("score.")]
    extra = [c for c in JUDGE_RESULT_COLUMNS if c in results.columns]
    # The sample's structured fields (its conversation, tools, expected calls, retrieval)
    # travel with its rows, as JSON text, to samples.jsonl and MLflow's evaluation datasets.
    structured = [
        c for c in JSON_SAMPLE_COLUMNS if c in results.columns and c not in RESULT_COLUMNS
    ]
    aggregates.insert(0, "task", task.name)
    aggregates.insert(0, "model", entrant)
    return results[RESULT_COLUMNS + structured + extra + score_columns], aggregates


def score_task(
    task: TaskSpec,
    samples: pd.DataFrame,
    completions: Mapping[str, pd.DataFrame],
    judgments: Mapping[str, Sequence[pd.DataFrame]] | None = None,
    human_labels: Mapping[str, Mapping[str, Any]] | None = None,
    judge_prices: Mapping[str, PriceEntry] | None = None,
    *,
    prices: Mapping[str, Mapping[str, PriceEntry]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(result rows, aggregate rows) of every entrant of one task, in ``completions``'
    order: :func:`score` per entrant (its answers, its judgments, its human labels, its
    prices, each keyed by entrant name), concatenated. One call per task lets the pipeline
    score a task in one step (ZenML's own work is ~0.1 s of CPU per step, cached or not)."""
    results, aggregates = [], []
    for entrant, answers in completions.items():
        rows, aggregate = score(
            entrant,
            task,
            samples,
            answers,
            (judgments or {}).get(entrant, ()),
            (human_labels or {}).get(entrant),
            judge_prices,
            prices=(prices or {}).get(entrant),
        )
        results.append(rows)
        aggregates.append(aggregate)
    return pd.concat(results, ignore_index=True), pd.concat(aggregates, ignore_index=True)

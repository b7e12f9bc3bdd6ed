"""From a task spec to the list of samples a model is asked: load, few-shot, render."""

from __future__ import annotations

from collections.abc import Mapping

from llmbench.errors import DatasetError
from llmbench.retrieval.augment import retrieve
from llmbench.retrieval.corpus import load_corpus
from llmbench.retrieval.index import Index, Kind
from llmbench.schema import SampleSpec, SourceSpec
from llmbench.tasks.bfcl import load_bfcl
from llmbench.tasks.loader import load_rows, source_fingerprint
from llmbench.tasks.prompt import TaskRenderer
from llmbench.tasks.questions import Question
from llmbench.tasks.split import in_train
from llmbench.types import Sample


def _renderer(task: SampleSpec) -> TaskRenderer:
    given = task.references_from
    return TaskRenderer(task, load_rows(given.source) if given is not None else None)


def _rendered(task: SampleSpec, limit: int | None) -> list[Sample]:
    if task.bfcl is not None:
        return load_bfcl(task.source, task.bfcl, limit)
    renderer = _renderer(task)
    fewshot = ""
    if task.fewshot is not None:
        shots = load_rows(task.fewshot.source, limit=task.fewshot.n)
        fewshot = renderer.fewshot_block(shots)
    rows = load_rows(task.source, limit=limit)
    return [renderer.sample(row, index, fewshot) for index, row in enumerate(rows)]


def load_questions(task: SampleSpec, limit: int | None = None) -> list[Question]:
    """A retrieval task's rows with their queries and gold ids, its subset and ``limit``
    applied (a subset is drawn by sample id before the limit, as for any task)."""
    assert task.retrieval is not None, "only a retrieval task has questions"
    renderer = _renderer(task)
    subset = task.subset
    rows = list(enumerate(load_rows(task.source, limit=None if subset else limit)))
    if subset is not None:
        train = subset.part == "train"
        rows = [
            (index, row)
            for index, row in rows
            if in_train(renderer.sample_id_of(row, index), subset.share, subset.seed) == train
        ]
        rows = rows[:limit] if limit is not None else rows
    return [
        Question(index, row, renderer.query_of(row, index), renderer.gold_of(row, index))
        for index, row in rows
    ]


def retrieved_samples(
    task: SampleSpec, questions: list[Question], indexes: Mapping[Kind, Index] | None = None
) -> list[Sample]:
    """The questions' samples, their passages retrieved (from ``indexes``, the pipeline's
    index artifacts, or from indexes built or loaded here) and shown by the templates."""
    assert task.retrieval is not None, "only a retrieval task retrieves"
    renderer = _renderer(task)
    retrievals = retrieve(
        task.retrieval,
        [q.query for q in questions],
        [q.gold for q in questions],
        source=f"task {task.name} ({task.source.describe()})",
        indexes=indexes,
    )
    samples = [
        renderer.sample(q.row, q.index, "", retrieval)
        for q, retrieval in zip(questions, retrievals, strict=True)
    ]
    return _finished(task, samples)


def data_fingerprint(task: SampleSpec) -> str:
    """Changes whenever the task's data may have changed (a BFCL task's answers too, a tool
    task's tools, a retrieval corpus's passages)."""
    answers = task.bfcl.possible_answer if task.bfcl is not None else None
    extra = "" if answers is None else "+" + source_fingerprint(SourceSpec(path=answers))
    if task.tools is not None:
        from llmbench.tools.toolset import tools_fingerprint

        extra += "+tools:" + tools_fingerprint(task.tools)
    if task.retrieval is not None:  # the passages' content, wherever the file is
        extra += "+corpus:" + load_corpus(task.retrieval.corpus).fingerprint
    if task.references_from is not None:
        extra += "+" + source_fingerprint(task.references_from.source)
    return source_fingerprint(task.source) + extra


def build_samples(task: SampleSpec, limit: int | None = None) -> list[Sample]:
    if task.retrieval is not None:
        return retrieved_samples(task, load_questions(task, limit))
    subset = task.subset
    samples = _rendered(task, None if subset else limit)
    if subset is not None:  # the split is by id, so it is drawn before --limit
        train = subset.part == "train"
        samples = [s for s in samples if in_train(s.sample_id, subset.share, subset.seed) == train]
        samples = samples[:limit] if limit is not None else samples
    return _finished(task, samples)


def _finished(task: SampleSpec, samples: list[Sample]) -> list[Sample]:
    """The samples with the task's tools, their ids checked unique."""
    if task.tools is not None:
        samples = [s.model_copy(update={"agent": task.tools}) for s in samples]
    seen: set[str] = set()
    for sample in samples:
        if sample.sample_id in seen:
            raise DatasetError(
                f"sample id {sample.sample_id!r} occurs twice",
                source=f"task {task.name}",
                field="sample_id",
                hint="make sample_id unique per row, or remove it to number rows",
            )
        seen.add(sample.sample_id)
    return samples

"""From a task spec to the list of samples a model is asked: load, few-shot, render."""

from __future__ import annotations

from llmbench.errors import DatasetError
from llmbench.schema import SampleSpec, SourceSpec
from llmbench.tasks.bfcl import load_bfcl
from llmbench.tasks.loader import load_rows, source_fingerprint
from llmbench.tasks.prompt import TaskRenderer
from llmbench.tasks.split import in_train
from llmbench.types import Sample


def _rendered(task: SampleSpec, limit: int | None) -> list[Sample]:
    if task.bfcl is not None:
        return load_bfcl(task.source, task.bfcl, limit)
    renderer = TaskRenderer(task)
    fewshot = ""
    if task.fewshot is not None:
        shots = load_rows(task.fewshot.source, limit=task.fewshot.n)
        fewshot = renderer.fewshot_block(shots)
    rows = load_rows(task.source, limit=limit)
    return [renderer.sample(row, index, fewshot) for index, row in enumerate(rows)]


def data_fingerprint(task: SampleSpec) -> str:
    """Changes whenever the task's data may have changed (a BFCL task's answers too, a tool
    task's tools)."""
    answers = task.bfcl.possible_answer if task.bfcl is not None else None
    extra = "" if answers is None else "+" + source_fingerprint(SourceSpec(path=answers))
    if task.tools is not None:
        from llmbench.tools.toolset import tools_fingerprint

        extra += "+tools:" + tools_fingerprint(task.tools)
    return source_fingerprint(task.source) + extra


def build_samples(task: SampleSpec, limit: int | None = None) -> list[Sample]:
    subset = task.subset
    samples = _rendered(task, None if subset else limit)
    if subset is not None:  # the split is by id, so it is drawn before --limit
        train = subset.part == "train"
        samples = [s for s in samples if in_train(s.sample_id, subset.share, subset.seed) == train]
        samples = samples[:limit] if limit is not None else samples
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

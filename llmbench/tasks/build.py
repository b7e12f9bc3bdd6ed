"""From a task spec to the list of samples a model is asked: load, few-shot, render."""

from __future__ import annotations

from llmbench.errors import DatasetError
from llmbench.schema import SampleSpec
from llmbench.tasks.loader import load_rows
from llmbench.tasks.prompt import TaskRenderer
from llmbench.tasks.split import in_train
from llmbench.types import Sample


def build_samples(task: SampleSpec, limit: int | None = None) -> list[Sample]:
    renderer = TaskRenderer(task)
    fewshot = ""
    if task.fewshot is not None:
        shots = load_rows(task.fewshot.source, limit=task.fewshot.n)
        fewshot = renderer.fewshot_block(shots)
    subset = task.subset
    rows = load_rows(task.source, limit=None if subset else limit)
    samples = [renderer.sample(row, index, fewshot) for index, row in enumerate(rows)]
    if subset is not None:  # the split is by id, so it is drawn before --limit
        train = subset.part == "train"
        samples = [s for s in samples if in_train(s.sample_id, subset.share, subset.seed) == train]
        samples = samples[:limit] if limit is not None else samples
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

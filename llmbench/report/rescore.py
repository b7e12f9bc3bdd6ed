"""The task's scoring of answers a strategy's trace holds but its row does not (a vote's
draws, an evaluator-optimizer's answer before its last revision): each text extracted and
scored exactly as a row's own answer is (:func:`score_completions`), on the task's headline
(0-1, 1 the best end). No model is called: the texts are in the traces."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmbench.report.statistics import headline
from llmbench.schema import TaskSpec
from llmbench.scoring.metrics import METRICS
from llmbench.scoring.score import score_completions
from llmbench.types import Completion, Sample


def unscorable(task: TaskSpec) -> str | None:
    """Why answers found only in traces cannot be scored on ``task`` (None: they can)."""
    if not task.metrics:
        return "scored by a judge, which graded only the rows' answers"
    definition = METRICS[task.metrics[0].name]
    if definition.structured:
        return "its metric reads tool calls, which a trace does not keep"
    if definition.corpus:
        return "a corpus score has no value per answer"
    return None


def references_of(row: dict[str, object]) -> tuple[str, ...]:
    refs = row.get("references")
    if isinstance(refs, str):
        return (refs,)
    return tuple(str(r) for r in refs) if refs is not None else ()  # type: ignore[attr-defined]


def headline_values(
    task: TaskSpec, rows: pd.DataFrame, texts: Sequence[Sequence[str | None]]
) -> list[np.ndarray]:
    """Per row of ``rows`` (result rows of ``task``), the normalised headline score of each
    of its ``texts``, scored against that row's references; None (no answer, a failed call)
    is NaN. All texts go through the metric in one batch."""
    if unscorable(task) is not None:
        raise ValueError(f"task {task.name}: {unscorable(task)}")
    samples: list[Sample] = []
    completions: list[Completion] = []
    where: list[tuple[int, int]] = []
    for r, (row, answers) in enumerate(zip(rows.to_dict("records"), texts, strict=True)):
        references = references_of(row)
        for t, text in enumerate(answers):
            if text is None:
                continue
            samples.append(
                Sample(
                    sample_id=f"{r}:{t}", prompt=str(row.get("prompt") or ""), references=references
                )
            )
            completions.append(Completion(text=text))
            where.append((r, t))
    out = [np.full(len(answers), np.nan) for answers in texts]
    if not samples:
        return out
    line = headline(task)
    scores, _ = score_completions(task, samples, completions)
    values = line.normalise(scores[f"score.{line.key}"].to_numpy(np.float64))
    for (r, t), value in zip(where, values, strict=True):
        out[r][t] = value
    return out


def binary(values: Sequence[np.ndarray]) -> bool:
    """Whether every scored value is 0 or 1 (right or wrong), as pass@k and counts of
    answers turning right or wrong need."""
    joined = np.concatenate([np.asarray(v, np.float64) for v in values]) if values else np.array([])
    scored = joined[~np.isnan(joined)]
    return bool(np.all((scored == 0) | (scored == 1)))

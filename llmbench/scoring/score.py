"""Score one model's completions on one task: extract answers, then run the metrics.

A failed request is unscored (NaN) and left out of every aggregate, unless the task says
``failed_requests: zero``; an answer that could not be extracted is scored as wrong.
"""

from __future__ import annotations

import math

import pandas as pd

from llmbench.schema import TaskSpec
from llmbench.scoring.extract import extract
from llmbench.scoring.metrics import METRICS, compute_metric, compute_structured
from llmbench.types import Completion, Sample

SCORE_PREFIX = "score."


def score_completions(
    task: TaskSpec, samples: list[Sample], completions: list[Completion]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sample scores, aggregates) — aggregates hold one row per metric value.

    Judge grades are joined afterwards (:mod:`llmbench.scoring.judged`)."""
    answers = [_answer(c, task) for c in completions]
    zero = task.failed_requests == "zero"  # a failed request scores as an empty answer
    scorable = [i for i, c in enumerate(completions) if c.error is None or zero]
    per_sample: dict[str, list[float]] = {}
    aggregate_rows = []
    for metric in task.metrics:
        # The retrieval happened whether or not the request then failed: every item scores.
        rows = list(range(len(samples))) if METRICS[metric.name].retrieval else scorable
        if METRICS[metric.name].structured:
            result = compute_structured(
                metric.name,
                [samples[i] for i in rows],
                [completions[i] for i in rows],
                metric.options,
            )
        else:
            result = compute_metric(
                metric.name,
                metric.options,
                [answers[i] or "" for i in scorable],
                [samples[i].references for i in scorable],
            )
        for key, values in result.per_sample.items():
            column = [math.nan] * len(samples)
            for i, value in zip(rows, values, strict=True):
                column[i] = value
            per_sample[SCORE_PREFIX + key] = column
            aggregate_rows.append(
                {
                    "metric": key,
                    "value": result.aggregate[key],
                    "scored": sum(not math.isnan(v) for v in values)
                    if METRICS[metric.name].retrieval  # items without gold ids: unscored
                    else len(rows),
                    "samples": len(samples),
                }
            )
    scores = pd.DataFrame(
        {"sample_id": [s.sample_id for s in samples], "answer": answers, **per_sample}
    )
    return scores, pd.DataFrame(aggregate_rows, columns=["metric", "value", "scored", "samples"])


def _answer(completion: Completion, task: TaskSpec) -> str | None:
    """What the answer says: its extracted text, or the calls it makes (``name(arguments)``)."""
    if completion.error is not None:
        return None
    if completion.tool_calls:
        return "; ".join(f"{c.name}({c.arguments})" for c in completion.tool_calls)
    return extract(completion.text, task.extract)

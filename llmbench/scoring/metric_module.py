"""Shared shape of the project's Hugging Face ``evaluate`` modules (``metrics/*/``).

Every module takes string predictions and a list of reference strings per sample, and
returns its aggregate values plus ``per_sample``: ``{key: [value per prediction]}``, so a
leaderboard can show the aggregate and samples.jsonl the score of each item.
"""

from __future__ import annotations

import evaluate

import datasets

FEATURES = datasets.Features(
    {
        "predictions": datasets.Value("string"),
        "references": datasets.Sequence(datasets.Value("string")),
    }
)


def metric_info(description: str, citation: str = "", inputs: str = "") -> evaluate.MetricInfo:
    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs
        or "predictions: list of str; references: list of list of str (one or more per item)",
        features=FEATURES,
    )


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")

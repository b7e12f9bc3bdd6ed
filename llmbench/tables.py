"""Samples and completions as pandas DataFrames: the form they take between pipeline steps.

One DataFrame per artifact (ZenML stores a list of objects as one folder per item).
"""

from __future__ import annotations

import json

import pandas as pd

from llmbench.types import Call, Completion, Sample

SAMPLE_COLUMNS = list(Sample.model_fields)
# What is stored of a completion (fields excluded from its dump, such as a request's 429 count,
# are not part of the answer).
COMPLETION_COLUMNS = [name for name, f in Completion.model_fields.items() if not f.exclude]


def samples_to_frame(samples: list[Sample]) -> pd.DataFrame:
    rows = [s.model_dump() for s in samples]
    frame = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    for column in ("references", "choices"):
        frame[column] = frame[column].map(list)
    return frame


def frame_to_samples(frame: pd.DataFrame) -> list[Sample]:
    return [
        Sample(
            sample_id=str(row["sample_id"]),
            prompt=row["prompt"],
            system=row["system"] if isinstance(row["system"], str) else None,
            references=tuple(row["references"]),
            choices=tuple(row["choices"]),
        )
        for row in frame.to_dict("records")
    ]


def completions_to_frame(sample_ids: list[str], completions: list[Completion]) -> pd.DataFrame:
    """A row per completion; its trace is a JSON text column (nested records of varying
    shape do not survive every artifact store's parquet round trip)."""
    rows = []
    for completion in completions:
        row = completion.model_dump(exclude={"trace"})
        row["trace"] = json.dumps([c.model_dump() for c in completion.trace], ensure_ascii=False)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COMPLETION_COLUMNS)
    frame.insert(0, "sample_id", sample_ids)
    return frame


def trace_of(value: object) -> list[Call]:
    """A trace column's value back as calls (absent in frames stored before traces)."""
    if not isinstance(value, str) or not value:
        return []
    return [Call.model_validate(c) for c in json.loads(value)]


def frame_to_completions(frame: pd.DataFrame) -> list[Completion]:
    out = []
    for row in frame.to_dict("records"):
        values = {k: row[k] for k in COMPLETION_COLUMNS if k in row}
        for key in ("ttft_s", "model_version", "error", "answered_by", "reasoning"):
            if key in values and values[key] is not None and pd.isna(values[key]):
                values[key] = None
        values["trace"] = trace_of(values.get("trace"))
        out.append(Completion.model_validate(values))
    return out

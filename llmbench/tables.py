"""Samples and completions as pandas DataFrames: the form they take between pipeline steps.

One DataFrame per artifact (ZenML stores a list of objects as one folder per item).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from llmbench.types import Call, Completion, Sample

SAMPLE_COLUMNS = list(Sample.model_fields)
# Plain columns hold text (or a list of texts); every other sample field, structured or added
# later, travels as JSON text, so no field is dropped or mangled by a parquet round trip.
TEXT_LISTS = ("references", "choices")
JSON_SAMPLE_COLUMNS = [
    name
    for name, f in Sample.model_fields.items()
    if name not in TEXT_LISTS and f.annotation not in (str, str | None)
]
# What is stored of a completion (fields excluded from its dump, such as a request's 429 count,
# are not part of the answer).
COMPLETION_COLUMNS = [name for name, f in Completion.model_fields.items() if not f.exclude]


def samples_to_frame(samples: list[Sample]) -> pd.DataFrame:
    rows = []
    for sample in samples:
        row = sample.model_dump(mode="json")
        for column in JSON_SAMPLE_COLUMNS:
            row[column] = json.dumps(row[column], ensure_ascii=False)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    for column in TEXT_LISTS:
        frame[column] = frame[column].map(list)
    return frame


def _sample_values(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row's fields (columns absent from frames stored before them keep defaults)."""
    values = {k: row[k] for k in SAMPLE_COLUMNS if k in row}
    values["sample_id"] = str(values["sample_id"])
    if not isinstance(values.get("system"), str):
        values["system"] = None
    for column in TEXT_LISTS:
        values[column] = tuple(values.get(column, ()))
    for column in JSON_SAMPLE_COLUMNS:
        if isinstance(values.get(column), str):
            values[column] = json.loads(values[column])
        else:
            values.pop(column, None)
    return values


def frame_to_samples(frame: pd.DataFrame) -> list[Sample]:
    return [Sample.model_validate(_sample_values(row)) for row in frame.to_dict("records")]


def completions_to_frame(sample_ids: list[str], completions: list[Completion]) -> pd.DataFrame:
    """A row per completion; its trace is a JSON text column (nested records of varying
    shape do not survive every artifact store's parquet round trip)."""
    rows = []
    for completion in completions:
        row = completion.model_dump(exclude={"trace", "tool_calls", "turn_answers"})
        row["trace"] = json.dumps([c.model_dump() for c in completion.trace], ensure_ascii=False)
        row["tool_calls"] = json.dumps(
            [c.model_dump() for c in completion.tool_calls], ensure_ascii=False
        )
        row["turn_answers"] = json.dumps(list(completion.turn_answers), ensure_ascii=False)
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
        for column in ("tool_calls", "turn_answers"):  # JSON text; absent in older frames
            stored = values.get(column)
            values[column] = json.loads(stored) if isinstance(stored, str) and stored else ()
        out.append(Completion.model_validate(values))
    return out

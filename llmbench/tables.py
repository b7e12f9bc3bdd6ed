"""Samples and completions as pandas DataFrames: the form they take between pipeline steps.

One DataFrame per artifact (ZenML stores a list of objects as one folder per item).
"""

from __future__ import annotations

import pandas as pd

from llmbench.types import Completion, Sample

SAMPLE_COLUMNS = list(Sample.model_fields)
COMPLETION_COLUMNS = list(Completion.model_fields)


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
    frame = pd.DataFrame([c.model_dump() for c in completions], columns=COMPLETION_COLUMNS)
    frame.insert(0, "sample_id", sample_ids)
    return frame


def frame_to_completions(frame: pd.DataFrame) -> list[Completion]:
    out = []
    for row in frame.to_dict("records"):
        values = {k: row[k] for k in COMPLETION_COLUMNS}
        for key in ("ttft_s", "model_version", "error"):
            if values[key] is not None and pd.isna(values[key]):
                values[key] = None
        out.append(Completion.model_validate(values))
    return out

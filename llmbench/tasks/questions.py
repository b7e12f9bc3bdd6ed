"""A retrieval task's rows between loading and retrieval: each row with its query and gold
passage ids, and the table form the load step stores them in.

Loading and retrieval are separate pipeline steps so that changing the retriever re-runs
retrieval (and what follows it), not loading; the prompt is rendered after retrieval, since
its template shows the passages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llmbench.errors import DatasetError

COLUMNS = ["index", "row", "query", "gold"]


@dataclass(frozen=True)
class Question:
    """A loaded row (``index``: its position in the data, which sample ids and errors count
    by), what is searched for it and the ids of its gold passages."""

    index: int
    row: dict[str, Any]
    query: str
    gold: tuple[str, ...]


def questions_to_frame(questions: list[Question], *, source: str) -> pd.DataFrame:
    """The rows as JSON text (any column survives a parquet round trip unchanged); a row
    that is not JSON data is a DatasetError naming ``source``."""
    records = []
    for q in questions:
        try:
            row = json.dumps(q.row, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise DatasetError(
                f"row {q.index} is not JSON data ({exc})",
                source=source,
                hint="a retrieval task's rows are stored between its load and retrieval "
                "steps as JSON: keep its columns to text, numbers, lists and objects",
            ) from None
        records.append({"index": q.index, "row": row, "query": q.query, "gold": list(q.gold)})
    return pd.DataFrame(records, columns=COLUMNS)


def frame_to_questions(frame: pd.DataFrame) -> list[Question]:
    return [
        Question(int(r["index"]), json.loads(r["row"]), str(r["query"]), tuple(r["gold"]))
        for r in frame.to_dict("records")
    ]

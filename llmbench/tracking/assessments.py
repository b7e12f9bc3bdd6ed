"""A result row's scores as MLflow assessments on its trace, so the GenAI views (quality
charts, the Traces table's assessment columns, an evaluation run's results) show them.

Metrics are CODE feedback; the judge's combined grade (``judge``) or pairwise win score
(``win_rate``) and each judge's own verdict are LLM_JUDGE feedback with the judge's
rationale; an imported human label is HUMAN feedback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from llmbench.scoring.judged import JUDGE_KEY, WIN_RATE_KEY
from llmbench.tracking.trace_writer import FeedbackRecord

SOURCE_ID = "llmbench"
HUMAN_SOURCE_ID = "human_labels"
RATIONALE_CHARS = 4000


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def judgments_of(value: Any) -> list[dict[str, Any]]:
    """The ``judgments`` cell as a list of dicts (a list, an array after parquet, or JSON)."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [dict(j) for j in value] if isinstance(value, list) else []


def _verdict(judgment: Mapping[str, Any], at_ms: int) -> FeedbackRecord | None:
    """One judge's verdict; None when it gave neither a verdict nor an error."""
    judge = str(judgment.get("judge"))
    error = judgment.get("error") if isinstance(judgment.get("error"), str) else None
    # Judgments of several tasks share one frame: a grade's row has opponent None.
    if isinstance(judgment.get("opponent"), str):  # a pairwise verdict, in its terms
        name = f"pairwise/{judge}/vs/{judgment['opponent']}"
        value: Any = judgment.get("verdict")
        metadata = {k: str(judgment.get(k)) for k in ("forward", "swapped")}
        rationale = f"forward order: {metadata['forward']}; swapped order: {metadata['swapped']}"
    else:
        name = f"{JUDGE_KEY}/{judge}"
        value = _finite(judgment.get("grade"))
        explanation = judgment.get("explanation")
        rationale = str(explanation)[:RATIONALE_CHARS] if explanation else ""
        metadata = {}
    if value is None and error is None:
        return None
    return FeedbackRecord(
        name=name,
        value=value if error is None else None,
        source_type="LLM_JUDGE",
        source_id=judge,
        create_time_ms=at_ms,
        rationale=rationale or None,
        error=str(error) if error is not None else None,
        metadata=metadata or None,
    )


def assessments_for(record: Mapping[str, Any], at_ms: int) -> list[FeedbackRecord]:
    """Every score of one result row, each judge's verdict and its human label."""
    judgments = judgments_of(record.get("judgments"))
    out = []
    for column, cell in record.items():
        if not str(column).startswith("score.") or (value := _finite(cell)) is None:
            continue
        metric = str(column).removeprefix("score.")
        if metric in (JUDGE_KEY, WIN_RATE_KEY) or metric.startswith(f"{JUDGE_KEY}_turn"):
            rationales = [
                f"{j.get('judge')}: {j['explanation']}" for j in judgments if j.get("explanation")
            ]
            judges = ",".join(sorted({str(j.get("judge")) for j in judgments}))
            source_type, source_id = "LLM_JUDGE", judges
            rationale = "\n\n".join(rationales)[:RATIONALE_CHARS] or None
        else:
            source_type, source_id, rationale = "CODE", SOURCE_ID, None
        out.append(FeedbackRecord(metric, value, source_type, source_id, at_ms, rationale))
    verdicts = (_verdict(j, at_ms) for j in judgments)
    out.extend(v for v in verdicts if v is not None)
    if (label := _finite(record.get("human_label"))) is not None:
        out.append(FeedbackRecord("human_label", label, "HUMAN", HUMAN_SOURCE_ID, at_ms))
    return out

"""Judge results joined onto one model's per-sample scores.

Rubric and reference grades become ``score.judge`` (the panel's grade, in the task's scale;
a conversation's, the mean of its turns', each turn's also ``score.judge_turn<k>``);
pairwise verdicts become ``score.win_rate`` (this model's mean outcome per sample: 1 win,
0.5 tie, 0 loss); a judge that also scores answer relevance adds ``score.answer_relevance``
(:mod:`llmbench.scoring.relevance`). Each sample also keeps every judge's verdict
(``judgments``), what judging it cost, and the human label when the task has one, so
calibration is computed later from samples.jsonl or the results artifact alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmbench.errors import DatasetError
from llmbench.schema import HumanLabelsSpec, TaskSpec
from llmbench.scoring.judge import (
    combine_grades,
    combine_verdicts,
    outcomes_for,
    turn_grades_of,
)
from llmbench.scoring.relevance import RELEVANCE_KEY

JUDGE_KEY = "judge"
WIN_RATE_KEY = "win_rate"
JUDGE_COST_COLUMNS = ["judge_cost_usd", "judge_latency_s"]


def turn_key(turn: int) -> str:
    """The score of a conversation's user turn ``turn`` (from 1): MT-Bench's turn 1, turn 2."""
    return f"{JUDGE_KEY}_turn{turn}"


def judged_key(task: TaskSpec) -> str | None:
    if task.judge is None:
        return None
    return WIN_RATE_KEY if task.judge.mode == "pairwise" else JUDGE_KEY


def judged_keys(task: TaskSpec) -> list[str]:
    """Every score the task's judge reports: its grade (or win rate), then answer relevance
    when it scores that too."""
    key = judged_key(task)
    relevant = task.judge is not None and task.judge.answer_relevance is not None
    return [*([key] if key else []), *([RELEVANCE_KEY] if relevant else [])]


def _aggregate(key: str, values: pd.Series, samples: int) -> dict[str, Any]:
    scored = values.dropna()
    value = float(scored.mean()) if len(scored) else math.nan
    return {"metric": key, "value": value, "scored": len(scored), "samples": samples}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def graded_columns(
    task: TaskSpec,
    sample_ids: Sequence[str],
    grades: Sequence[pd.DataFrame],
    failed: Sequence[bool] = (),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-sample columns from a panel's rubric/reference grades, and the aggregate row.

    ``failed`` marks samples whose request failed: unjudged, so unscored, or the lowest
    grade when the task scores failed requests as zero."""
    assert task.judge is not None
    frame = pd.concat(grades, ignore_index=True)
    combined = combine_grades(frame, task.judge.aggregate)
    if task.failed_requests == "zero":
        lowest = task.judge.bounds[0]
        for sample_id, is_failed in zip(sample_ids, failed, strict=True):
            if is_failed:
                combined[sample_id] = lowest
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for record in frame.to_dict("records"):
        by_sample.setdefault(str(record["sample_id"]), []).append(
            {
                "judge": record["judge"],
                "grade": _clean(record["grade"]),
                "explanation": _clean(record["explanation"]),
                "error": _clean(record["judge_error"]),
                "cost_usd": _clean(record["judge_cost_usd"]),
                "latency_s": _clean(record["judge_latency_s"]),
                **(
                    {"turn_grades": [_clean(g) for g in turns]}
                    if (turns := turn_grades_of(record.get("turn_grades")))
                    else {}
                ),
                **_relevance_judgment(record),
            }
        )
    costs = frame.groupby("sample_id")[JUDGE_COST_COLUMNS].sum(min_count=1)
    return _sample_columns(JUDGE_KEY, sample_ids, combined, by_sample, costs)


def _relevance_judgment(record: dict[str, Any]) -> dict[str, Any]:
    """What a judge said about an answer's relevance, kept with its grade."""
    if RELEVANCE_KEY not in record:
        return {}
    questions = record.get("relevance_questions")
    return {
        RELEVANCE_KEY: _clean(record[RELEVANCE_KEY]),
        "relevance_questions": json.loads(questions) if isinstance(questions, str) else None,
        "noncommittal": _clean(record.get("relevance_noncommittal")),
        "relevance_error": _clean(record.get("relevance_error")),
    }


def relevance_columns(
    task: TaskSpec,
    sample_ids: Sequence[str],
    grades: Sequence[pd.DataFrame],
    failed: Sequence[bool] = (),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``score.answer_relevance`` per sample (the panel's mean: a similarity, not a grade
    to vote on) and its aggregate row. Failed requests follow the task's
    ``failed_requests`` (zero: relevance 0)."""
    frame = pd.concat(grades, ignore_index=True)
    if RELEVANCE_KEY not in frame:  # graded before relevance was asked: unscored
        frame[RELEVANCE_KEY] = math.nan
    table = frame.pivot(index="sample_id", columns="judge", values=RELEVANCE_KEY)
    combined = table.astype(float).mean(axis=1, skipna=True)
    if task.failed_requests == "zero":
        for sample_id, is_failed in zip(sample_ids, failed, strict=True):
            if is_failed:
                combined[sample_id] = 0.0
    columns = pd.DataFrame({"sample_id": list(sample_ids)})
    column = f"score.{RELEVANCE_KEY}"
    columns[column] = columns["sample_id"].map(combined).astype(float)
    return columns, _aggregate(RELEVANCE_KEY, columns[column], len(sample_ids))


def turn_columns(
    task: TaskSpec,
    sample_ids: Sequence[str],
    grades: Sequence[pd.DataFrame],
    failed: Sequence[bool] = (),
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A conversation task's per-turn scores (``score.judge_turn<k>``: the panel's grade of
    each sample's turn k) and an aggregate row per turn, as MT-Bench reports turn 1 and
    turn 2 beside their average. Failed requests follow the task's ``failed_requests``."""
    assert task.judge is not None
    long = [
        {"sample_id": str(record["sample_id"]), "judge": record["judge"], "turn": n, "grade": g}
        for frame in grades
        for record in frame.to_dict("records")
        for n, g in enumerate(turn_grades_of(record.get("turn_grades")), start=1)
    ]
    table = pd.DataFrame(long, columns=["sample_id", "judge", "turn", "grade"])
    columns = pd.DataFrame({"sample_id": list(sample_ids)})
    rows = []
    for turn in sorted(table["turn"].unique()):
        one = table[table["turn"] == turn].drop(columns="turn")
        combined = combine_grades(one, task.judge.aggregate)
        if task.failed_requests == "zero":
            for sample_id, is_failed in zip(sample_ids, failed, strict=True):
                if is_failed:
                    combined[sample_id] = task.judge.bounds[0]
        key = turn_key(int(turn))
        columns[f"score.{key}"] = columns["sample_id"].map(combined).astype(float)
        rows.append(_aggregate(key, columns[f"score.{key}"], len(sample_ids)))
    return columns, rows


def _sample_columns(
    key: str,
    sample_ids: Sequence[str],
    scores: pd.Series,
    judgments: dict[str, list[dict[str, Any]]],
    costs: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The judge's columns in sample order (by sample id), and the aggregate row."""
    columns = pd.DataFrame({"sample_id": list(sample_ids)})
    columns[f"score.{key}"] = columns["sample_id"].map(scores).astype(float)
    columns["judgments"] = columns["sample_id"].map(lambda s: judgments.get(s, []))
    for column in JUDGE_COST_COLUMNS:
        columns[column] = columns["sample_id"].map(costs[column]).fillna(0.0).astype(float)
    return columns, _aggregate(key, columns[f"score.{key}"], len(sample_ids))


def pairwise_columns(
    model: str, sample_ids: Sequence[str], verdicts: Sequence[pd.DataFrame]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-sample win scores of ``model`` from every pairwise verdict involving it.

    A judge call compares two models, so half of its cost is charged to each."""
    frame = pd.concat(verdicts, ignore_index=True) if verdicts else pd.DataFrame()
    if frame.empty:  # no pair was judged: every sample unscored
        none = pd.DataFrame(columns=JUDGE_COST_COLUMNS, dtype=float)
        return _sample_columns(WIN_RATE_KEY, sample_ids, pd.Series(dtype=float), {}, none)
    mine = frame[(frame["model_a"] == model) | (frame["model_b"] == model)]
    outcomes = outcomes_for(model, combine_verdicts(mine))
    per_sample = outcomes.groupby("sample_id")["outcome"].mean()
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for record in mine.to_dict("records"):
        first = record["model_a"] == model
        by_sample.setdefault(str(record["sample_id"]), []).append(
            {
                "judge": record["judge"],
                "opponent": record["model_b"] if first else record["model_a"],
                # Verdicts in this model's terms: "win", "loss", "tie" or None.
                "forward": _as_seen_by(record["forward"], first),
                "swapped": _as_seen_by(record["swapped"], first),
                "verdict": _as_seen_by(record["winner"], first),
                "error": _clean(record["judge_error"]),
            }
        )
    costs = mine.groupby("sample_id")[JUDGE_COST_COLUMNS].sum(min_count=1) / 2.0
    return _sample_columns(WIN_RATE_KEY, sample_ids, per_sample, by_sample, costs)


def _as_seen_by(winner: Any, is_model_a: bool) -> str | None:
    if not isinstance(winner, str):
        return None
    if winner == "tie":
        return "tie"
    return "win" if (winner == "a") == is_model_a else "loss"


def read_human_labels(
    spec: HumanLabelsSpec, task: str, bounds: tuple[float, float] | None = None
) -> pd.DataFrame:
    """The task's human labels as (model, sample_id, label); blank labels are dropped.

    Labels are grades (numbers, within ``bounds`` when given) or PASS/FAIL; anything else
    is an error naming the row, before any model is called."""
    path = Path(spec.path)
    if not path.is_file():
        raise DatasetError(
            "human labels file not found",
            source=str(path),
            field=f"tasks.{task}.judge.human_labels.path",
            hint="export a file to rate with 'python -m llmbench.calibrate export', "
            "fill in its label column, and point human_labels.path at it",
        )
    try:
        is_csv = path.suffix.lower() == ".csv"
        if is_csv:
            # Only an empty cell is missing: "n/a" is a (bad) label, not a blank one.
            frame = pd.read_csv(
                path, dtype={spec.sample_id: str}, keep_default_na=False, na_values=[""]
            )
        else:
            frame = pd.read_json(path, lines=True, dtype={spec.sample_id: str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"cannot read human labels: {exc}", source=str(path)) from None
    needed = [spec.sample_id, spec.label, *([spec.model] if spec.model else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns))})",
            source=str(path),
            field=f"tasks.{task}.judge.human_labels",
            hint="set human_labels.sample_id / label / model to the file's column names",
        )
    out = pd.DataFrame(
        {
            # A blank model cell stays missing (None): that label applies to every model.
            "model": frame[spec.model].map(lambda m: None if pd.isna(m) else str(m))
            if spec.model
            else None,
            "sample_id": frame[spec.sample_id].astype(str),
            "label": frame[spec.label],
        }
    )
    out = out[out["label"].notna() & (out["label"].astype(str).str.strip() != "")]
    out["label"] = out["label"].map(_label_value)
    for row, value in out["label"].items():
        numeric = isinstance(value, float)
        if not numeric or (bounds is not None and not bounds[0] <= value <= bounds[1]):
            expected = "a grade" + (f" from {bounds[0]:g} to {bounds[1]:g}" if bounds else "")
            raise DatasetError(
                f"{'row' if is_csv else 'line'} {int(str(row)) + (2 if is_csv else 1)}: "
                "human label "
                f"{f'{value:g}' if numeric else repr(value)} is not {expected} "
                "or PASS/FAIL",
                source=str(path),
                field=f"tasks.{task}.judge.human_labels.label",
                hint="use the judge's scale (or PASS/FAIL) in the label column; leave a "
                "row blank to skip it",
            )
    return out.reset_index(drop=True)


def labels_for(labels: pd.DataFrame, model: str) -> dict[str, Any]:
    """sample_id -> human label for one model (rows without a model apply to every model)."""
    mine = labels[labels["model"].isna() | (labels["model"] == model)]
    return {str(k): _label_value(v) for k, v in zip(mine["sample_id"], mine["label"], strict=True)}


def _label_value(value: Any) -> Any:
    """Grades as floats where they are numbers; PASS/FAIL as 1/0."""
    text = str(value).strip()
    if text.upper() in ("PASS", "FAIL"):
        return float(text.upper() == "PASS")
    try:
        return float(text)
    except ValueError:
        return text

"""The report's sample browser: every item with each entrant's answer side by side, and the
flags its filters read (an entrant failed, entrants scored it differently, a pairwise judge's
two orders disagreed).

A run can hold thousands of items; the browser keeps the flagged ones first and at most
``limit`` in all, in the run's order (samples.jsonl has every one)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmbench.report.statistics import headline, score_keys
from llmbench.schema import BenchConfig
from llmbench.scoring.judged import JUDGE_KEY

BROWSER_LIMIT = 400
OUTPUT_MAX_CHARS = 4000
# Two scores closer than this are the same score.
SAME_SCORE = 1e-9
FILTERS = ("errors", "disagree", "judge-order")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _score(value: Any) -> float | None:
    """A score, or None when unscored (NaN or missing)."""
    return float(value) if _present(value) else None


def _as_list(value: Any) -> list[Any]:
    """A list column as a list: parquet hands lists back as numpy arrays."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if hasattr(value, "tolist"):
        return list(value.tolist())
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _turns(texts: list[Any], value: Any) -> str:
    """A conversation's turns as one text, each marked ``[turn k]``; ``value`` when the row
    is not a conversation (``texts`` one long at most)."""
    if len(texts) < 2:
        return str(value) if _present(value) else ""
    return "\n\n".join(f"[turn {n}] {text}" for n, text in enumerate(texts, start=1))


def _json_list(value: Any) -> list[Any]:
    """A JSON list cell (``follow_ups``, ``turn_answers``) as a list."""
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else []


def _clip(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    if len(text) <= OUTPUT_MAX_CHARS:
        return text
    return text[:OUTPUT_MAX_CHARS] + f" … [{len(text) - OUTPUT_MAX_CHARS} more characters]"


@dataclass(frozen=True)
class Judgment:
    """One judge's word on one answer: a grade with its rationale, or a pairwise verdict
    with what each order said."""

    judge: str
    grade: float | None = None
    rationale: str = ""
    opponent: str = ""
    verdict: str = ""
    forward: str = ""
    swapped: str = ""
    error: str = ""

    @property
    def orders_disagree(self) -> bool:
        return bool(self.forward and self.swapped and self.forward != self.swapped)


@dataclass(frozen=True)
class Answer:
    entrant: str
    answer: str
    output: str
    error: str
    scores: dict[str, float | None]
    headline: float | None  # on 0-1, 1 the best end
    judgments: list[Judgment] = field(default_factory=list)
    answered_by: str = ""  # a strategy's member whose answer this is


@dataclass(frozen=True)
class Item:
    task: str
    sample_id: str
    prompt: str
    system: str
    references: list[str]
    answers: list[Answer]

    @property
    def key(self) -> str:
        return f"{self.task}/{self.sample_id}"

    @property
    def has_error(self) -> bool:
        return any(a.error for a in self.answers)

    @property
    def disagree(self) -> bool:
        """Entrants scored this item differently (a right and a wrong answer, or different
        scores); an entrant that failed disagrees with one that answered."""
        scores = [a.headline for a in self.answers]
        known = [s for s in scores if s is not None]
        if len(known) < len(scores) and known:
            return True
        return len(known) > 1 and max(known) - min(known) > SAME_SCORE

    @property
    def judge_orders_disagree(self) -> bool:
        return any(j.orders_disagree for a in self.answers for j in a.judgments)

    @property
    def flags(self) -> dict[str, bool]:
        """The filters this item passes, by the filter's name (the buttons' data-filter)."""
        return {
            "errors": self.has_error,
            "disagree": self.disagree,
            "judge-order": self.judge_orders_disagree,
        }


def _judgments(value: Any) -> list[Judgment]:
    found = []
    for entry in _as_list(value):
        if not isinstance(entry, dict):
            continue
        grade = entry.get("grade")
        found.append(
            Judgment(
                judge=str(entry.get("judge", "")),
                grade=float(grade)
                if isinstance(grade, (int, float)) and not math.isnan(grade)
                else None,
                rationale=str(entry.get("explanation") or ""),
                opponent=str(entry.get("opponent") or ""),
                verdict=str(entry.get("verdict") or ""),
                forward=str(entry.get("forward") or ""),
                swapped=str(entry.get("swapped") or ""),
                error=str(entry.get("error") or ""),
            )
        )
    return found


@dataclass(frozen=True)
class Browser:
    items: list[Item]
    total: int  # items in the run; len(items) of them are shown

    def counts(self) -> dict[str, int]:
        """Per filter, how many shown items pass it."""
        return {name: sum(i.flags[name] for i in self.items) for name in FILTERS}


def sample_browser(
    config: BenchConfig, results: pd.DataFrame, limit: int = BROWSER_LIMIT
) -> Browser:
    """The items of ``results`` (a row per entrant, task and sample) grouped per (task,
    sample) in the run's order, flagged items kept first when there are more than
    ``limit``."""
    names = [e.name for e in config.entrants]
    wanted = ["model", "task", "sample_id", "prompt", "system", "references", "answer"]
    wanted += ["output", "error", "judgments", "answered_by", "follow_ups", "turn_answers"]
    wanted += [c for c in results.columns if c.startswith("score.")]
    records = results[[c for c in wanted if c in results.columns]].to_dict("records")
    # (task, sample id) -> entrant -> row, in the run's order (one pass: no per-item pandas)
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for record in records:
        key = (str(record["task"]), str(record["sample_id"]))
        grouped.setdefault(key, {})[str(record["model"])] = record
    items: list[Item] = []
    for task in config.tasks:
        line = headline(task)
        keys = score_keys(task)
        for (task_name, sample_id), by_model in grouped.items():
            if task_name != task.name:
                continue
            answers = []
            for name in names:
                row = by_model.get(name)
                if row is None:
                    continue
                value = _score(row.get(f"score.{line.key}"))
                answers.append(
                    Answer(
                        entrant=name,
                        answer=str(row["answer"]) if _present(row.get("answer")) else "",
                        output=_clip(
                            _turns(_json_list(row.get("turn_answers")), row.get("output"))
                        ),
                        error=str(row["error"]) if _present(row.get("error")) else "",
                        scores={
                            **{k: _score(row.get(f"score.{k}")) for k in keys},
                            **{  # a conversation's per-turn grades
                                c.removeprefix("score."): _score(v)
                                for c, v in row.items()
                                if c.startswith(f"score.{JUDGE_KEY}_turn") and _present(v)
                            },
                        },
                        headline=None if value is None else float(line.normalise(value)),
                        judgments=_judgments(row.get("judgments")),
                        answered_by=str(row["answered_by"])
                        if _present(row.get("answered_by")) and row["answered_by"] != name
                        else "",
                    )
                )
            first = next(iter(by_model.values()))
            items.append(
                Item(
                    task=task.name,
                    sample_id=sample_id,
                    prompt=_clip(
                        _turns(
                            [first.get("prompt"), *_json_list(first.get("follow_ups"))],
                            first.get("prompt"),
                        )
                    ),
                    system=_clip(first.get("system")),
                    references=[str(r) for r in _as_list(first.get("references"))],
                    answers=answers,
                )
            )
    if len(items) <= limit:
        return Browser(items, len(items))
    flagged = [n for n, item in enumerate(items) if any(item.flags.values())]
    chosen = set(flagged)
    rest = [n for n in range(len(items)) if n not in chosen]
    keep = sorted((flagged + rest)[:limit])
    return Browser([items[n] for n in keep], len(items))

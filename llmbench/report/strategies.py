"""What orchestration buys: cost per item and per correct answer, the Pareto frontier of
(cost, score) over every leaderboard row, and for strategies who answered, how many calls
each member took, how often an answer escalated, how far a vote's draws agreed and how many
member calls were free."""

from __future__ import annotations

import json
import math
from collections import Counter

import pandas as pd

from llmbench.schema import BenchConfig, StrategySpec
from llmbench.strategies.registry import strategy_class
from llmbench.tables import trace_of
from llmbench.types import Call

STRATEGY_COLUMNS = [
    "model",
    "kind",
    "items",
    "score",
    "cost_usd",
    "cost_per_item_usd",
    "correct",
    "cost_per_correct_usd",
    "pareto",
    "escalation_rate",
    "agreement",
    "answers_by",
    "calls_by",
    "member_calls",
    "free_member_calls",
    "summary",
]


def pareto(points: dict[str, tuple[float, float]]) -> set[str]:
    """The rows no other row beats: as cheap or cheaper and as good or better, one strictly."""
    live = {k: v for k, v in points.items() if not any(map(math.isnan, v))}
    frontier = set()
    for name, (cost, score) in live.items():
        beaten = any(
            c <= cost and s >= score and (c < cost or s > score)
            for other, (c, s) in live.items()
            if other != name
        )
        if not beaten:
            frontier.add(name)
    return frontier


def agreement(traces: list[list[Call]]) -> float:
    """A vote's mean agreement: the score on each answer's "voted" call (the share of its
    draws giving the chosen answer); NaN for a strategy that does not vote."""
    shares = [
        c.score
        for trace in traces
        for c in trace
        if c.score is not None and (c.note or "").startswith("voted")
    ]
    return math.fsum(shares) / len(shares) if shares else math.nan


def correct_per_row(config: BenchConfig, results: pd.DataFrame) -> pd.Series:
    """Per row, the headline score on 0-1 (1 = a right answer), NaN when unscored."""
    from llmbench.report.statistics import headline

    values = pd.Series(math.nan, index=results.index)
    for task in config.tasks:
        line = headline(task)
        mine = results["task"] == task.name
        column = f"score.{line.key}"
        if column in results:
            values[mine] = line.normalise(results.loc[mine, column].to_numpy(float))
    return values


def strategy_table(
    config: BenchConfig, leaderboard: pd.DataFrame, results: pd.DataFrame
) -> pd.DataFrame:
    """A row per leaderboard entrant (models too, so strategies read against them)."""
    if leaderboard.empty:
        return pd.DataFrame(columns=STRATEGY_COLUMNS)
    board = leaderboard.set_index("model")
    points = {str(m): (float(r["cost_usd"]), float(r["score"])) for m, r in board.iterrows()}
    frontier = pareto(points)
    correct = correct_per_row(config, results)
    # Summaries read against the best single model: what orchestrating it buys.
    models = board.loc[[m.name for m in config.models], "score"].astype(float)
    best = models.idxmax() if models.notna().any() else None
    rows = []
    for entrant in config.entrants:
        mine = results[results["model"] == entrant.name]
        cost = float(board.loc[entrant.name, "cost_usd"])
        score = float(board.loc[entrant.name, "score"])
        right = float(correct[mine.index].sum(skipna=True))
        row: dict[str, object] = {
            "model": entrant.name,
            "kind": (
                strategy_class(entrant.kind).describe(entrant)
                if isinstance(entrant, StrategySpec)
                else "model"
            ),
            "items": len(mine),
            "score": score,
            "cost_usd": cost,
            "cost_per_item_usd": cost / len(mine) if len(mine) else math.nan,
            "correct": right,
            "cost_per_correct_usd": cost / right if right > 0 else math.nan,
            "pareto": entrant.name in frontier,
            "escalation_rate": math.nan,
            "agreement": math.nan,
            "answers_by": None,
            "calls_by": None,
            "member_calls": 0,
            "free_member_calls": 0,
            "summary": "",
        }
        if isinstance(entrant, StrategySpec) and len(mine):
            # Its own level only: a nested strategy member counts as one call (its
            # "strategy" call), so a cascade's escalations are not an inner cascade's.
            # A retrieval (kind "retriever") is the task's, not a member's: not counted.
            traces = [
                [c for c in trace_of(t) if c.parent is None and c.kind != "retriever"]
                for t in mine["trace"]
            ]
            requests = [c for t in mine["trace"] for c in trace_of(t) if c.kind == "model"]
            answers = Counter(str(a) for a in mine["answered_by"].dropna())
            row["answers_by"] = json.dumps(
                {k: v / len(mine) for k, v in sorted(answers.items())}, sort_keys=True
            )
            by_member = Counter(c.model for trace in traces for c in trace)
            row["calls_by"] = json.dumps(dict(sorted(by_member.items())), sort_keys=True)
            row["member_calls"] = len(requests)
            row["free_member_calls"] = sum(c.cached for c in requests)
            escalated = [any((c.note or "").startswith("escalated") for c in t) for t in traces]
            row["escalation_rate"] = sum(escalated) / len(traces)
            row["agreement"] = agreement(traces)
            if config.partial(entrant.name):
                row["summary"] = _partial_summary(config, board, results, entrant.name)
            elif best is not None and best != entrant.name:
                top = board.loc[best]
                if float(top["score"]) > 0 and float(top["cost_usd"]) > 0:
                    row["summary"] = (
                        f"{entrant.name} reaches {score / float(top['score']):.0%} of {best}'s "
                        f"score at {cost / float(top['cost_usd']):.0%} of its cost"
                    )
        rows.append(row)
    return pd.DataFrame(rows, columns=STRATEGY_COLUMNS)


def _partial_summary(
    config: BenchConfig, board: pd.DataFrame, results: pd.DataFrame, name: str
) -> str:
    """A strategy on some tasks only, read against the best model on those tasks (its
    overall score is undefined: the models' is over every task)."""
    from llmbench.report.statistics import headline

    tasks = [t for t in config.tasks if config.runs_on(name, t.name)]

    def on_tasks(entrant: str) -> tuple[float, float]:
        values = [
            headline(t).normalise(float(board.loc[entrant, f"{t.name}/{headline(t).key}"]))
            for t in tasks
        ]
        mine = results[
            (results["model"] == entrant) & results["task"].isin([t.name for t in tasks])
        ]
        return math.fsum(values) / len(values), float(mine["cost_usd"].sum())

    score, cost = on_tasks(name)
    figures = {m.name: on_tasks(m.name) for m in config.models}
    live = {m: v for m, v in figures.items() if not math.isnan(v[0])}
    where = ", ".join(t.name for t in tasks)
    if math.isnan(score) or not live:
        return ""
    best = max(live, key=lambda m: live[m][0])
    top_score, top_cost = live[best]
    if top_score <= 0 or top_cost <= 0:
        return ""
    return (
        f"{name} (on {where} only) reaches {score / top_score:.0%} of {best}'s score there "
        f"at {cost / top_cost:.0%} of its cost"
    )

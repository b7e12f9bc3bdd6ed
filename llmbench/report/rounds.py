"""What each round (or step) of a strategy buys: for every round r, the quality of the answer
it would give had it stopped after round r, with an interval, what the rounds up to r cost
and took per item, and how many answers turned right or wrong from the round before.

Rounds are :attr:`Call.round` of the strategy's own calls (a nested strategy's calls sit
in the round of the answer they led to). The answer after round r is the row's own answer
once the row has no later round (a loop that stopped early keeps it); before that, the
answer of the last round up to r that answered (calls that judge, such as a critique,
a verification, a classification or a chain's gate, give none; nor do a supervisor's plan
and sub-answers): its one answer, or the majority of
its answers side by side (by the task's extractors; ties to the first). A row with no
answer yet at r is not counted at r (``n``). Cost and latency are cumulative: the calls of
rounds up to r, on the answer's own clock (``Call.start_s``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmbench.report.rescore import binary, headline_values, unscorable
from llmbench.report.strategies import correct_per_row
from llmbench.schema import BenchConfig, TaskSpec
from llmbench.scoring import stats
from llmbench.strategies.base import JUDGING, TaskView
from llmbench.strategies.vote import majority
from llmbench.tables import trace_of
from llmbench.types import Call, Completion

ROUND_COLUMNS = [
    "model",
    "task",
    "round",
    "step",
    "reached",
    "n",
    "quality",
    "low",
    "high",
    "mean_cost_usd",
    "mean_latency_s",
    "wrong_to_right",
    "right_to_wrong",
]
# Purposes of calls that give no answer to the question: judging calls, a supervisor's plan
# and its sub-questions' answers, a chain's gates.
NO_ANSWER = frozenset(JUDGING) | {"plan", "delegate", "gate"}
NUMBERED = ("draw", "layer", "delegate")  # "draw 3", "layer 2", "delegate <role>"


def purpose_of(call: Call) -> str:
    """A call's purpose without its draw, retry, layer number or role ("draw 3" -> "draw",
    "critique, draw 2" -> "critique", "solve, retry 1" -> "solve", "solve gate" -> "gate",
    "delegate math" -> "delegate")."""
    words = call.purpose.split(",")[0].split()
    if not words:
        return ""
    if len(words) > 1 and words[-1] == "gate":
        return "gate"
    return words[0] if words[0] in NUMBERED else " ".join(words)


def outer_rounds(trace: Sequence[Call]) -> list[int]:
    """Each call's round at the strategy's own level: its own, or for a nested strategy's
    call the round of the answer it led to (the next call of the strategy's own level)."""
    out = [0] * len(trace)
    following = max((c.round for c in trace if c.parent is None), default=0)
    for i in range(len(trace) - 1, -1, -1):
        if trace[i].parent is None:
            following = trace[i].round
        out[i] = following
    return out


def answers_by_round(trace: Sequence[Call], view: TaskView) -> dict[int, str | None]:
    """Per round that answered, its answer's text (see the module docstring)."""
    rounds = outer_rounds(trace)
    answered: dict[int, list[Call]] = {}
    for call, r in zip(trace, rounds, strict=True):
        if call.parent is None and call.error is None and purpose_of(call) not in NO_ANSWER:
            answered.setdefault(r, []).append(call)
    out: dict[int, str | None] = {}
    for r, calls in answered.items():
        texts = [c.output for c in calls]
        tally = majority([view.answer_of(Completion(text=t)) for t in texts], texts)
        out[r] = texts[tally.chosen]
    return out


def round_table(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """``statistics/rounds.csv``: a row per (strategy, task, round), for strategies that
    took more than one round and tasks whose answers can be rescored (metrics, not a judge
    or a corpus score)."""
    correct = correct_per_row(config, results)
    rows: list[dict[str, object]] = []
    for task in config.tasks:
        if unscorable(task) is not None:
            continue
        for strategy in config.strategies:
            if not config.runs_on(strategy.name, task.name):
                continue
            mine = results[(results["model"] == strategy.name) & (results["task"] == task.name)]
            if len(mine):
                rows += _rounds(config, strategy.name, task, mine, correct[mine.index])
    return pd.DataFrame(rows, columns=ROUND_COLUMNS)


def _rounds(
    config: BenchConfig, name: str, task: TaskSpec, mine: pd.DataFrame, own: pd.Series
) -> list[dict[str, object]]:
    view = TaskView.of(task)
    traces = [trace_of(t) for t in mine["trace"]]
    placed = [outer_rounds(t) for t in traces]
    last = [max(r, default=0) for r in placed]
    top = max(last, default=0)
    if top == 0:  # one round: its row says it all (a vote's draws are in draws.csv)
        return []
    by_round = [answers_by_round(t, view) for t in traces]
    # The answer each row would give after each round (None: none yet; the row's own
    # answer from its last round on, scored as the row was).
    texts: list[list[str | None]] = []
    for answers, end in zip(by_round, last, strict=True):
        current: str | None = None
        item: list[str | None] = []
        for r in range(top + 1):
            current = answers.get(r, current)
            item.append(current if r < end else None)
        texts.append(item)
    values = headline_values(task, mine, texts)
    for scored, end, right in zip(values, last, own.to_numpy(np.float64), strict=True):
        scored[end:] = right
    counts = binary(values)
    spec = config.stats
    purposes: dict[int, list[str]] = {}
    for trace, rounds in zip(traces, placed, strict=True):
        for call, r in zip(trace, rounds, strict=True):
            if call.parent is None and purpose_of(call) not in purposes.setdefault(r, []):
                purposes[r].append(purpose_of(call))
    rows = []
    for r in range(top + 1):
        quality = np.array([item[r] for item in values])
        ci = stats.bootstrap_ci(
            quality, resamples=spec.resamples, confidence=spec.confidence, seed=spec.seed
        )
        upto = [
            [c for c, q in zip(t, p, strict=True) if q <= r]
            for t, p in zip(traces, placed, strict=True)
        ]
        cost = [math.fsum(c.cost_usd for c in calls) for calls in upto]
        latency = [max((c.start_s + c.latency_s for c in calls), default=0.0) for calls in upto]
        row: dict[str, object] = {
            "model": name,
            "task": task.name,
            "round": r,
            "step": "+".join(purposes.get(r, [])),
            "reached": sum(1 for p in placed if r in p),
            "n": ci.n,
            "quality": ci.estimate,
            "low": ci.low,
            "high": ci.high,
            "mean_cost_usd": float(np.mean(cost)) if cost else math.nan,
            "mean_latency_s": float(np.mean(latency)) if latency else math.nan,
            "wrong_to_right": math.nan,
            "right_to_wrong": math.nan,
        }
        if counts and r > 0:
            before = np.array([item[r - 1] for item in values])
            both = ~np.isnan(before) & ~np.isnan(quality)
            row["wrong_to_right"] = int(((before == 0) & (quality == 1) & both).sum())
            row["right_to_wrong"] = int(((before == 1) & (quality == 0) & both).sum())
        rows.append(row)
    return rows
